/* Fetching a template to a node (op_template.h): an operation of kind
 * "template". The node prepares a receiver (or says it has the template
 * already), the master sends the library's archive over the data channel
 * (op_sender.h), the node checks the digest, unpacks and renames the tree in
 * place and answers with the tree's sum; the master records the template
 * as the node's, and only then do the guests that waited for it get their
 * create command. A failure (a refused prepare, a failed copy or unpack, a
 * deadline) aborts: the node drops what it received and every waiting guest
 * goes to its error state with the reason.
 *
 * The data channel is CurveZMQ between the master's key pair and the key
 * the node joined with when it has one (archives_channel), as an import's.
 *
 * Params: "name", "sha256" (the archive's), "channel", "digest" (its data channel
 * digest, which the node checks what it received against), "_secret", "endpoint",
 * "guests" (ids waiting for it), "abort_why", "abort_cancelled". */
#include "master/op_template.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "common/log.h"
#include "common/mem.h"
#include "master/archives.h"
#include "master/guests.h"
#include "master/op_sender.h"
#include "master/registry.h"
#include "master/template_lib.h"
#include "master/trust.h"
#include "proto/xfer.h"

#define PREPARE_TIMEOUT_MS (60 * 1000)  /* the node must be listening by then */
#define COMMIT_TIMEOUT_MS  (600 * 1000) /* unpacking a large template takes a while */
#define ABORT_TIMEOUT_MS   (60 * 1000)  /* a node that does not answer an abort: end anyway */

static void
send_prepare(master_t *m, struct op *o)
{
    struct msg_migrate *mg = operations_queue(m, o, o->target, MSG_MIGRATE_PREPARE);

    strscpy(mg->id, o->id, sizeof(mg->id)); /* no guest: the operation's id */
    strscpy(mg->peer, "master", sizeof(mg->peer));
    strscpy(mg->secret, op_pstr(o, "_secret"), sizeof(mg->secret));
    strscpy(mg->template_name, op_pstr(o, "name"), sizeof(mg->template_name));
    archives_peer_key(m, o, mg->peer_key, sizeof(mg->peer_key));
    mg->archive = true;
}

static void
send_commit(master_t *m, struct op *o)
{
    struct msg_migrate *mg = operations_queue(m, o, o->target, MSG_MIGRATE_COMMIT);

    strscpy(mg->id, o->id, sizeof(mg->id));
    strscpy(mg->digest, op_pstr(o, "digest"), sizeof(mg->digest));
    strscpy(mg->template_name, op_pstr(o, "name"), sizeof(mg->template_name));
    mg->archive = true;
}

static void
send_abort(master_t *m, struct op *o)
{
    struct msg_migrate *mg = operations_queue(m, o, o->target, MSG_MIGRATE_ABORT);

    strscpy(mg->id, o->id, sizeof(mg->id));
    strscpy(mg->role, "target", sizeof(mg->role));
    strscpy(mg->template_name, op_pstr(o, "name"), sizeof(mg->template_name));
}

bool
op_template_waits(const struct op *o, const char *guest_id)
{
    size_t i;
    json_t *v;

    if (o->kind != OP_TEMPLATE)
        return false;
    json_array_foreach(json_object_get(o->params, "guests"), i, v)
    {
        if (strcmp(json_string_value(v), guest_id) == 0)
            return true;
    }
    return false;
}

/* ---- the end ---- */

/* The template is on the node: the waiting guests are created there. */
static void
release_guests(master_t *m, struct op *o)
{
    size_t i;
    json_t *v;

    json_array_foreach(json_object_get(o->params, "guests"), i, v)
    {
        struct db_guest g = {0};
        struct guest_spec spec;
        if (guests_load(m, NULL, NULL, json_string_value(v), &g, &spec) < 0)
            continue; /* deleted meanwhile */
        if (g.node && strcmp(g.node, o->target) == 0 && !g.deleting && g.applied_generation == 0) {
            guests_send_apply(m, o->target, &spec);
            if (g.desired == DB_DESIRED_RUNNING)
                guests_send(m, o->target, MSG_GUEST_START, g.id, g.generation);
        }
        db_guest_clear(&g);
    }
}

static void
fail_guests(master_t *m, struct op *o, const char *why)
{
    char text[700];
    size_t i;
    json_t *v;

    snprintf(text, sizeof(text), "template \"%s\" could not be fetched to node %s: %.500s",
             op_pstr(o, "name"), o->target, why);
    json_array_foreach(json_object_get(o->params, "guests"), i, v)
        guests_observed_id(m, json_string_value(v), DB_OBS_ERROR, text);
}

static void
fetched(master_t *m, struct op *o, const struct msg_migrate_status *st, bool kept)
{
    struct msg_template t = {.size = st->bytes_total};

    strscpy(t.name, op_pstr(o, "name"), sizeof(t.name));
    if (st->digest[0])
        snprintf(t.checksum, sizeof(t.checksum), "sha256:%s", st->digest);
    if (registry_node_template_add(m->reg, o->target, &t) < 0)
        log_warning("node=%s template \"%s\" cannot be recorded for the scheduler, ignoring",
                    o->target, t.name);
    release_guests(m, o);
    (void)operations_end(m, o, OP_DONE,
                         json_pack("{s:s, s:s, s:s, s:s?, s:b, s:s}", "node", o->target, "template",
                                   t.name, "sha256", op_pstr(o, "sha256"), "checksum",
                                   t.checksum[0] ? t.checksum : NULL, "kept", kept, "channel",
                                   archives_curve(o) ? "curve" : "plaintext"),
                         NULL);
}

static void
begin_abort(master_t *m, struct op *o, bool cancelled, const char *why)
{
    op_sender_release(m, o);
    op_pset(o, "abort_why", json_string(why));
    op_pset(o, "abort_cancelled", json_boolean(cancelled));
    dispatch_forget_migrate(m->disp, o->target, o->id);
    (void)operations_step(m, o, "abort", "%s", why);
    send_abort(m, o);
}

static void
abort_done(master_t *m, struct op *o)
{
    const char *why = op_pstr(o, "abort_why");

    fail_guests(m, o, why);
    (void)operations_end(m, o, op_pbool(o, "abort_cancelled") ? OP_CANCELLED : OP_FAILED, NULL,
                         "%s", why);
}

/* ---- start ---- */

/* The running fetch of name to node, or NULL. */
static struct op *
running_fetch(master_t *m, const char *node, const char *name)
{
    for (struct op *o = operations_find_kind(m, OP_TEMPLATE, NULL); o;
         o = operations_find_kind(m, OP_TEMPLATE, o))
        if (strcmp(o->target, node) == 0 && strcmp(op_pstr(o, "name"), name) == 0 &&
            strcmp(o->step, "abort") != 0)
            return o;
    return NULL;
}

int
op_template_fetch(master_t *m, const char *node, const char *name, const char *guest_id,
                  char id[SPEC_ID_LEN + 1])
{
    struct template_lib_entry e;
    struct op *o = running_fetch(m, node, name);
    char secret[2 * XFER_SECRET_LEN + 1];

    if (o) {
        /* One fetch per template and node: a second guest waits for it too. */
        if (guest_id)
            json_array_append_new(json_object_get(o->params, "guests"), json_string(guest_id));
        strscpy(id, o->id, SPEC_ID_LEN + 1);
        return operations_store(m, o);
    }
    int r = template_lib_get(m, name, &e);
    if (r < 0)
        return r;
    o = operations_add(m, OP_TEMPLATE, NULL);
    strscpy(o->target, node, sizeof(o->target));
    xfer_secret_new(secret);
    op_pset(o, "name", json_string(name));
    op_pset(o, "sha256", json_string(e.sha256));
    op_pset(o, "digest", json_string(e.digest));
    op_pset(o, "_secret", json_string(secret));
    op_pset(o, "guests", guest_id ? json_pack("[s]", guest_id) : json_array());
    op_pset(o, "channel", json_string(archives_channel(m, o->id, node)));
    o->bytes_total = e.size;
    strscpy(id, o->id, SPEC_ID_LEN + 1);
    r = operations_step(m, o, "prepare", "template %s goes to node %s", name, node);
    if (r < 0) {
        o->gone = true;
        return r;
    }
    send_prepare(m, o);
    return 0;
}

/* ---- the steps ---- */

static void
sent(master_t *m, struct op *o, int result, const char *err, const char *digest_hex)
{
    if (result < 0) {
        begin_abort(m, o, false, err);
        return;
    }
    if (strcmp(digest_hex, op_pstr(o, "digest")) != 0) {
        /* The library's file changed under it: never install what was not asked. */
        begin_abort(m, o, false, "the library's archive does not have its recorded checksum");
        return;
    }
    (void)operations_step(m, o, "commit", "archive sent; node %s checks and unpacks it", o->target);
    send_commit(m, o);
}

static void
sender_start(master_t *m, struct op *o)
{
    char path[PATH_MAX_ARCHIVE];

    if (template_lib_path(m, op_pstr(o, "name"), path, sizeof(path)) < 0) {
        begin_abort(m, o, false, "the template is not in the library any more");
        return;
    }
    op_sender_start(m, o, path, sent);
}

/* The node's receiver serves with the key the node joined with. */
static bool
key_is_joined(master_t *m, const struct op *o, const struct msg_migrate_status *st)
{
    const char *nk = trust_node_key(m, o->target);

    return nk && strcmp(st->key, nk) == 0;
}

static void
template_report(master_t *m, struct op *o, const char *node, const struct msg_migrate_status *st)
{
    bool failed = strcmp(st->state, "failed") == 0;
    char why[PROTO_MAX_STRING + 64];

    (void)node;
    snprintf(why, sizeof(why), "node %s: %.4000s", o->target, st->message);
    if (strcmp(o->step, "abort") == 0) {
        if (strcmp(st->phase, "abort") == 0 && !failed)
            abort_done(m, o);
        return;
    }
    if (strcmp(st->phase, "prepare") == 0 && strcmp(o->step, "prepare") == 0) {
        if (failed) {
            begin_abort(m, o, false, why);
        } else if (strcmp(st->state, "done") == 0) {
            fetched(m, o, st, true); /* the node has it already */
        } else if (archives_curve(o) && !key_is_joined(m, o, st)) {
            begin_abort(m, o, false,
                        st->key[0] ? "the node's data channel key is not the key it joined with"
                                   : "the node listens in plaintext, not with its node key");
        } else {
            op_pset(o, "endpoint", json_string(st->endpoint));
            (void)operations_step(m, o, "send", "the master sends template %s to node %s",
                                  op_pstr(o, "name"), o->target);
            sender_start(m, o);
        }
    } else if (strcmp(st->phase, "commit") == 0 && strcmp(o->step, "commit") == 0) {
        if (failed)
            begin_abort(m, o, false, why);
        else if (strcmp(st->state, "done") == 0)
            fetched(m, o, st, false);
    }
}

static void
template_tick(master_t *m, struct op *o, uint64_t now)
{
    uint64_t age = now - o->step_mono;

    if (strcmp(o->step, "prepare") == 0 && age > PREPARE_TIMEOUT_MS)
        begin_abort(m, o, false, "the node did not get ready in time");
    else if (strcmp(o->step, "commit") == 0 && age > COMMIT_TIMEOUT_MS)
        begin_abort(m, o, false, "the node did not confirm the template in time");
    else if (strcmp(o->step, "abort") == 0 && age > ABORT_TIMEOUT_MS)
        abort_done(m, o); /* the node may keep a hidden leftover; it never becomes a template */
}

static int
template_cancellable(const struct op *o, char *why, size_t n)
{
    if (strcmp(o->step, "prepare") != 0 && strcmp(o->step, "send") != 0) {
        snprintf(why, n, "the fetch is at step %s; it ends by itself", o->step);
        return -EBUSY;
    }
    return 0;
}

static int
template_cancel(master_t *m, struct op *o, char *why, size_t n)
{
    (void)why, (void)n; /* operations.c asked template_cancellable already */
    begin_abort(m, o, true, "cancelled");
    return 0;
}

static void
template_resume(master_t *m, struct op *o, const char *node)
{
    if (node && strcmp(o->step, "send") != 0)
        return;
    if (strcmp(o->step, "prepare") == 0 || strcmp(o->step, "send") == 0) {
        op_sender_release(m, o);
        (void)operations_step(m, o, "prepare", "%s; node %s listens again",
                              node ? "the node came back" : "the master came back", o->target);
        send_prepare(m, o);
    } else if (strcmp(o->step, "commit") == 0) {
        send_commit(m, o);
    } else if (strcmp(o->step, "abort") == 0) {
        send_abort(m, o);
    }
}

const struct op_kind_ops op_template_ops = {
    .name = "template",
    .report = template_report,
    .tick = template_tick,
    .cancellable = template_cancellable,
    .cancel = template_cancel,
    .resume = template_resume,
    .release = op_sender_release,
};
