#include "master/waiters.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "common/mem.h"
#include "common/mtime.h"
#include "master/api.h"
#include "master/guests.h"
#include "master/idem.h"
#include "master/oncommit.h"
#include "master/http_edge.h"

struct reply {
    struct http_req *req; /* the request */
    unsigned status;      /* the answer once committed */
    json_t *body;         /* its body (owned) */
};

static void
reply_after(master_t *m, void *ctx, int err)
{
    struct reply *r = ctx;

    if (err < 0) {
        json_decref(r->body);
        http_reply_errno(r->req, err, NULL, "the master could not store the outcome (%s); retry",
                         strerror(-err));
    } else {
        httpd_respond(r->req, r->status, r->body);
    }
    free(r);
}

void
reply_committed(master_t *m, struct http_req *req, unsigned status, json_t *body)
{
    struct reply *r = xcalloc(1, sizeof(*r));

    *r = (struct reply){req, status, body};
    oncommit_add(m->oncommit, reply_after, r);
}

struct waiter *
waiter_add(master_t *m, struct http_req *req, enum wait_kind kind, const char *guest,
           const char *node, uint32_t timeout_ms)
{
    struct waiter *w = xcalloc(1, sizeof(*w));

    w->req = req;
    w->kind = kind;
    strscpy(w->guest, guest, sizeof(w->guest));
    strscpy(w->node, node ? node : "", sizeof(w->node));
    w->deadline = time_mono_ms() + timeout_ms;
    w->next = m->waiters;
    m->waiters = w;
    return w;
}

/* Takes the waiters of kind for guest (and ref when nonzero) out of the
 * list, oldest first, and hands each to fn, which answers and frees it. */
static void
waiters_take(master_t *m, enum wait_kind kind, const char *guest, uint64_t ref,
             void (*fn)(master_t *m, struct waiter *w, const void *ctx), const void *ctx)
{
    for (struct waiter **pp = &m->waiters; *pp;) {
        struct waiter *w = *pp;
        if (w->kind != kind || (guest && strcmp(w->guest, guest) != 0) || (ref && w->ref != ref)) {
            pp = &w->next;
            continue;
        }
        *pp = w->next;
        fn(m, w, ctx);
        free(w->before);
        free(w);
    }
}

static void
answer_guest(master_t *m, struct waiter *w, const void *ctx)
{
    json_t *o = guests_json(m, w->guest);

    if (o)
        reply_committed(m, w->req, w->status, o);
    else
        httpd_error(w->req, 404, "not_found", NULL, "the guest is gone");
}

static void
answer_204(master_t *m, struct waiter *w, const void *ctx)
{
    reply_committed(m, w->req, 204, NULL);
}

static void
answer_nack(master_t *m, struct waiter *w, const void *ctx)
{
    const struct msg_nack *n = ctx;
    struct api_error e;

    api_error_from_nack(n->code, &e);
    reply_committed(m, w->req, e.status, api_error_json(e.code, NULL, n->message));
}

struct gen_ctx {
    uint64_t generation;         /* acked or refused */
    const struct msg_nack *nack; /* the refusal, NULL for an ack */
};

static void
answer_apply(master_t *m, struct waiter *w, const void *ctx)
{
    const struct gen_ctx *c = ctx;

    if (c->nack && w->before && guests_revert(m, w->guest, w->generation, w->before) < 0)
        log_warning("guest %s: cannot undo the refused generation %llu, ignoring", w->guest,
                    (unsigned long long)w->generation);
    if (c->nack)
        answer_nack(m, w, c->nack);
    else
        answer_guest(m, w, NULL);
}

/* Takes the apply waiters of a guest that gen answers. */
static void
take_apply(master_t *m, const char *guest, const struct gen_ctx *c)
{
    for (struct waiter **pp = &m->waiters; *pp;) {
        struct waiter *w = *pp;
        bool hit = w->kind == WAIT_APPLY && !strcmp(w->guest, guest) &&
                   (c->nack ? w->generation == c->generation : w->generation <= c->generation);
        if (!hit) {
            pp = &w->next;
            continue;
        }
        *pp = w->next;
        answer_apply(m, w, c);
        free(w->before);
        free(w);
    }
}

void
waiters_applied(master_t *m, const char *guest_id, uint64_t gen)
{
    struct gen_ctx c = {.generation = gen};
    take_apply(m, guest_id, &c);
}

void
waiters_apply_refused(master_t *m, const char *guest_id, uint64_t gen, const struct msg_nack *nack)
{
    struct gen_ctx c = {.generation = gen, .nack = nack};
    take_apply(m, guest_id, &c);
}

static void
answer_exec(master_t *m, struct waiter *w, const void *ctx)
{
    json_t *o = api_exec_json(ctx);

    if (w->idem[0] && idem_store_raw(m, w->idem, w->idem_hash, w->req->path, 200, o) < 0)
        log_debug("cannot store exec result under its key, ignoring");
    reply_committed(m, w->req, 200, o);
}

void
waiters_guest_state(master_t *m, const char *guest_id, enum db_observed obs)
{
    if (obs == DB_OBS_RUNNING || obs == DB_OBS_ERROR)
        waiters_take(m, WAIT_RUNNING, guest_id, 0, answer_guest, NULL);
    if (obs == DB_OBS_STOPPED || obs == DB_OBS_ERROR)
        waiters_take(m, WAIT_STOPPED, guest_id, 0, answer_guest, NULL);
}

/* A create, start, stop or PATCH whose guest was deleted before what it
 * waits for came: its change was stored, and the guest is gone. */
static void
answer_deleted(master_t *m, struct waiter *w, const void *ctx)
{
    reply_committed(m, w->req, 404,
                    api_error_json("not_found", NULL, "the guest was deleted meanwhile"));
}

void
waiters_guest_deleted(master_t *m, const char *guest_id)
{
    waiters_take(m, WAIT_DELETE, guest_id, 0, answer_204, NULL);
    /* Nothing else will come for them: the node applies, starts or stops
     * a deleted guest no more, and they held on until their deadline (a
     * PATCH 30 s, a create's ?wait=running up to 590 s). */
    waiters_take(m, WAIT_APPLY, guest_id, 0, answer_deleted, NULL);
    waiters_take(m, WAIT_RUNNING, guest_id, 0, answer_deleted, NULL);
    waiters_take(m, WAIT_STOPPED, guest_id, 0, answer_deleted, NULL);
}

void
waiters_nack(master_t *m, enum wait_kind kind, const char *guest_id, uint64_t ref,
             const struct msg_nack *nack)
{
    waiters_take(m, kind, guest_id, ref, answer_nack, nack);
}

static void
answer_console(master_t *m, struct waiter *w, const void *ctx)
{
    httpd_respond(w->req, 200, api_console_json(ctx));
}

void
waiters_console_result(master_t *m, uint64_t ref, const struct msg_console_result *r)
{
    waiters_take(m, WAIT_CONSOLE, NULL, ref, answer_console, r);
}

void
waiters_exec_result(master_t *m, uint64_t ref, const struct msg_exec_result *r)
{
    waiters_take(m, WAIT_EXEC, NULL, ref, answer_exec, r);
}

/* Answers a waiter whose wait is over before what it waits for happened:
 * its deadline passed, or the master stops. The change it waits on (a
 * create, a start, a stop, a PATCH, a DELETE) has committed: the answer
 * says what is true now, never a 503 that reads as "nothing was done". At
 * shutdown it goes at once (httpd_destroy follows), not after a commit. */
static void
answer_over(master_t *m, struct waiter *w, bool stopping)
{
    json_t *o;

    switch (w->kind) {
    case WAIT_RUNNING:
    case WAIT_STOPPED:
    case WAIT_APPLY:
        /* The wait is over: the guest as it is now (its state says
         * whether it got there). */
        if (!stopping) {
            answer_guest(m, w, NULL);
            break;
        }
        o = guests_json(m, w->guest);
        if (o)
            httpd_respond(w->req, w->status, o);
        else
            httpd_error(w->req, 404, "not_found", NULL, "the guest is gone");
        break;
    case WAIT_DELETE:
        /* A guest's delete (status 202) is recorded (deleting: true) and
         * its destroy stays queued, re-sent after a master restart: the
         * guest as it is, 202. A guest already gone was deleted: 204. An
         * orphan's destroy (status 0) is stored nowhere; a retry sends it
         * again. */
        if (!w->status) {
            httpd_error(w->req, 503, "unavailable", NULL,
                        "the node has not confirmed the destroy yet; it stays queued");
            break;
        }
        o = guests_json(m, w->guest);
        if (!stopping)
            reply_committed(m, w->req, o ? w->status : 204, o);
        else
            httpd_respond(w->req, o ? w->status : 204, o);
        break;
    case WAIT_EXEC:
    case WAIT_CONSOLE:
        if (stopping) {
            httpd_error(w->req, 503, "unavailable", NULL, "the master is shutting down");
            break;
        }
        dispatch_cancel(m->disp, w->node, w->ref);
        httpd_error(w->req, 504, "unavailable", NULL, "the node did not answer the %s",
                    w->kind == WAIT_EXEC ? "exec" : "console read");
        break;
    }
}

void
waiters_expire(master_t *m, uint64_t now)
{
    for (struct waiter **pp = &m->waiters; *pp;) {
        struct waiter *w = *pp;
        if (w->deadline > now) {
            pp = &w->next;
            continue;
        }
        *pp = w->next;
        answer_over(m, w, false);
        free(w->before);
        free(w);
    }
}

void
waiters_shutdown(master_t *m)
{
    while (m->waiters) {
        struct waiter *w = m->waiters;
        m->waiters = w->next;
        answer_over(m, w, true);
        free(w->before);
        free(w);
    }
}
