/* Importing an archive (op_transfer.h). The master is the sending end: a
 * thread of its own runs the copy pass (proto/xfer.h blocks) and wakes the
 * loop for progress and at the end. Params: "archive", "endpoint",
 * "_secret", "_spec" (the new guest's spec), "channel" (archives_channel),
 * "abort_why". */
#include "master/op_transfer.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "archive/archive.h"
#include "common/log.h"
#include "common/mem.h"
#include "master/archives.h"
#include "master/guests_move.h"
#include "master/op_sender.h"
#include "master/trust.h"
#include "proto/spec_json.h"
#include "proto/xfer.h"

#define PREPARE_TIMEOUT_MS (60 * 1000)  /* the node must be listening by then */
#define COMMIT_TIMEOUT_MS  (300 * 1000) /* unpacking a large archive takes a while */

static void
spec_of(const struct op *o, struct guest_spec *s)
{
    *s = (struct guest_spec){0};
    json_t *j = json_object_get(o->params, "_spec");
    if (!j || spec_from_json(j, s, NULL, 0) < 0)
        log_error("op=%s the new guest's spec cannot be read back", o->id);
}

static void
send_prepare(master_t *m, struct op *o)
{
    struct msg_migrate *mg = operations_queue(m, o, o->target, MSG_MIGRATE_PREPARE);

    strscpy(mg->peer, "master", sizeof(mg->peer));
    strscpy(mg->secret, op_pstr(o, "_secret"), sizeof(mg->secret));
    archives_peer_key(m, o, mg->peer_key, sizeof(mg->peer_key));
    mg->archive = true;
    spec_of(o, &mg->spec);
}

static void
send_commit(master_t *m, struct op *o)
{
    struct msg_migrate *mg = operations_queue(m, o, o->target, MSG_MIGRATE_COMMIT);

    strscpy(mg->digest, op_pstr(o, "digest"), sizeof(mg->digest));
    mg->start = true;
    mg->archive = true;
    spec_of(o, &mg->spec);
}

static void
send_abort(master_t *m, struct op *o)
{
    struct msg_migrate *mg = operations_queue(m, o, o->target, MSG_MIGRATE_ABORT);

    strscpy(mg->role, "target", sizeof(mg->role));
}

/* ---- the sending thread (op_sender.h) ---- */

static void begin_abort(master_t *m, struct op *o, bool cancelled, const char *why);

static void
sent(master_t *m, struct op *o, int result, const char *err, const char *digest_hex)
{
    if (result < 0) {
        begin_abort(m, o, false, err);
        return;
    }
    op_pset(o, "digest", json_string(digest_hex));
    (void)operations_step(m, o, "commit", "archive sent; node %s unpacks and starts the guest",
                          o->target);
    send_commit(m, o);
}

static void
import_release(master_t *m, struct op *o)
{
    op_sender_release(m, o);
}

static void
sender_start(master_t *m, struct op *o)
{
    char path[PATH_MAX_ARCHIVE];

    archives_path(m, op_pstr(o, "archive"), path, sizeof(path));
    op_sender_start(m, o, path, sent);
}

/* ---- start ---- */

/* The create request an archive's manifest makes: its spec (a new id, the
 * name asked for), its addresses asked anew, of the same families. */
static int
request_from(master_t *m, const struct op_import_req *rq, struct guest_create_req *c,
             json_t **manifest, char (*addrs)[NETADDR_STRLEN], struct guest_err *e)
{
    char path[PATH_MAX_ARCHIVE], err[256] = "";
    _cleanup_free_ char *text = NULL;

    archives_path(m, rq->archive, path, sizeof(path));
    _cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return guest_fail(e, -ENOENT, "archive", "no archive %s", rq->archive);
    int r = archive_manifest(fd, &text, err, sizeof(err));
    if (r < 0)
        return guest_fail(e, -EINVAL, "archive", "%s", err);
    *manifest = json_loads(text, 0, NULL);
    json_t *spec = json_object_get(*manifest, "spec");
    if (json_integer_value(json_object_get(*manifest, "format")) != ARCHIVE_FORMAT || !spec)
        return guest_fail(e, -EINVAL, "archive", "the archive's manifest is not format %d",
                          ARCHIVE_FORMAT);
    if (rq->name)
        json_object_set_new(spec, "name", json_string(rq->name));
    /* An importer's manifest has no id nor generation: create chooses them. */
    c->spec = (struct guest_spec){.id = "00000000-0000-4000-8000-000000000000", .generation = 1};
    r = spec_from_json(spec, &c->spec, e->field_buf, sizeof(e->field_buf));
    if (r < 0)
        return guest_fail(e, -EINVAL, "archive", "the archive's spec is invalid (%s)",
                          e->field_buf);
    for (uint32_t i = 0; i < c->spec.n_addrs; i++) {
        c->ips[c->n_ips] = (struct ipam_request){.family = c->spec.addrs[i].family};
        if (rq->keep_ips)
            c->ips[c->n_ips].address =
                netaddr_format(&c->spec.addrs[i], false, addrs[i], NETADDR_STRLEN);
        c->n_ips++;
    }
    c->spec.n_addrs = 0;
    c->pin = rq->to;
    c->algo = SCHED_DEFAULT;
    c->quiet = true;
    for (size_t i = 0; i < rq->n_cons && i < SCHED_MAX_LABELS; i++)
        c->cons[c->n_cons++] = rq->cons[i];
    return 0;
}

static int
start_locked(master_t *m, const struct op_import_req *rq, struct guest_create_req *c,
             char id[SPEC_ID_LEN + 1], struct guest_err *e)
{
    struct guest_created *g = xcalloc(1, sizeof(*g));
    char secret[2 * XFER_SECRET_LEN + 1];
    int r = guests_create(m, NULL, c, g, e);

    if (r < 0) {
        free(g);
        return r;
    }
    struct op *o = operations_add(m, OP_IMPORT, NULL);
    strscpy(o->guest_id, g->spec.id, sizeof(o->guest_id));
    strscpy(o->guest, g->spec.name, sizeof(o->guest));
    strscpy(o->target, g->node, sizeof(o->target));
    xfer_secret_new(secret);
    op_pset(o, "archive", json_string(rq->archive));
    op_pset(o, "_secret", json_string(secret));
    op_pset(o, "_spec", guests_created_spec_json(g));
    op_pset(o, "channel", json_string(archives_channel(m, o->id, o->target)));
    free(g);
    strscpy(id, o->id, SPEC_ID_LEN + 1);
    r = operations_step(m, o, "prepare", "guest %s placed on node %s", o->guest, o->target);
    if (r < 0) {
        o->gone = true;
        return guest_fail(e, r, NULL, "cannot store the operation: %s", strerror(-r));
    }
    send_prepare(m, o);
    return 0;
}

int
op_import_start(master_t *m, const struct op_import_req *rq, char id[SPEC_ID_LEN + 1],
                struct guest_err *e)
{
    struct guest_create_req *c = xcalloc(1, sizeof(*c));
    char(*addrs)[NETADDR_STRLEN] = xcalloc(SPEC_MAX_ADDRS, NETADDR_STRLEN);
    json_t *manifest = NULL;
    int r = archives_upload_verify(m, rq->archive);

    if (r == -EAGAIN)
        r = guest_fail(e, -EBUSY, "archive", "archive %s has not arrived whole", rq->archive);
    else if (r == -EBADMSG)
        r = guest_fail(e, -EINVAL, "archive", "archive %s does not have the checksum announced",
                       rq->archive);
    else if (r < 0)
        r = guest_fail(e, r, "archive", "no archive %s", rq->archive);
    if (r >= 0)
        r = request_from(m, rq, c, &manifest, addrs, e);
    if (r >= 0 && (r = db_begin(m->db)) >= 0) {
        r = start_locked(m, rq, c, id, e);
        r = r >= 0 ? db_commit(m->db) : (db_rollback(m->db), r);
    }
    json_decref(manifest);
    free(addrs);
    free(c);
    return r;
}

/* ---- the steps ---- */

static void
begin_abort(master_t *m, struct op *o, bool cancelled, const char *why)
{
    import_release(m, o);
    op_pset(o, "abort_why", json_string(why));
    op_pset(o, "abort_cancelled", json_boolean(cancelled));
    dispatch_forget_migrate(m->disp, o->target, o->guest_id);
    (void)operations_step(m, o, "abort", "%s", why);
    send_abort(m, o);
}

/* The target dropped what it had: the new guest goes from the record too. */
static void
abort_done(master_t *m, struct op *o)
{
    int r = guests_remove(m, o->guest_id);

    if (r < 0 && r != -ENOENT)
        log_error("op=%s guest %s stays recorded: %s", o->id, o->guest, strerror(-r));
    (void)operations_end(m, o, op_pbool(o, "abort_cancelled") ? OP_CANCELLED : OP_FAILED, NULL,
                         "%s", op_pstr(o, "abort_why"));
}

static void
committed(master_t *m, struct op *o, const struct msg_migrate_status *st)
{
    struct db_guest g = {0};

    if (db_guest_get_by_id(m->db, o->guest_id, &g) == 0) {
        db_guest_set_applied(m->db, g.id, g.generation);
        guests_observed(m, &g, st->running ? DB_OBS_RUNNING : DB_OBS_STOPPED, NULL);
        db_guest_clear(&g);
    }
    (void)operations_end(m, o, OP_DONE,
                         json_pack("{s:s, s:s, s:s, s:s}", "guest", o->guest, "node", o->target,
                                   "archive", op_pstr(o, "archive"), "channel",
                                   archives_curve(o) ? "curve" : "plaintext"),
                         NULL);
}

static void
import_report(master_t *m, struct op *o, const char *node, const struct msg_migrate_status *st)
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
            return;
        }
        const char *nk = trust_node_key(m, o->target);
        if (archives_curve(o) && (!nk || strcmp(st->key, nk) != 0)) {
            /* It listens without its node key, or with another: the master
             * would refuse it (or talk to a stranger); stop here instead. */
            begin_abort(m, o, false,
                        st->key[0] ? "the node's data channel key is not the key it joined with"
                                   : "the node listens in plaintext, not with its node key");
            return;
        }
        op_pset(o, "endpoint", json_string(st->endpoint));
        (void)operations_step(m, o, "send", "the master sends the archive to node %s", o->target);
        sender_start(m, o);
    } else if (strcmp(st->phase, "commit") == 0 && strcmp(o->step, "commit") == 0) {
        if (failed)
            begin_abort(m, o, false, why);
        else if (strcmp(st->state, "done") == 0)
            committed(m, o, st);
    }
}

static void
import_tick(master_t *m, struct op *o, uint64_t now)
{
    if (strcmp(o->step, "prepare") == 0 && now - o->step_mono > PREPARE_TIMEOUT_MS)
        begin_abort(m, o, false, "the node did not get ready in time");
    else if (strcmp(o->step, "commit") == 0 && now - o->step_mono > COMMIT_TIMEOUT_MS)
        begin_abort(m, o, false, "the node did not confirm the import in time");
}

static int
import_cancellable(const struct op *o, char *why, size_t n)
{
    if (strcmp(o->step, "prepare") != 0 && strcmp(o->step, "send") != 0) {
        snprintf(why, n, "the import is at step %s; it ends by itself", o->step);
        return -EBUSY;
    }
    return 0;
}

static int
import_cancel(master_t *m, struct op *o, char *why, size_t n)
{
    (void)why, (void)n; /* operations.c asked import_cancellable already */
    begin_abort(m, o, true, "cancelled");
    return 0;
}

static void
import_resume(master_t *m, struct op *o, const char *node)
{
    if (node) {
        /* A restarted node lost its receiver: listen again, send again. */
        if (strcmp(o->step, "send") == 0) {
            import_release(m, o);
            (void)operations_step(m, o, "prepare", "node %s came back; it listens again",
                                  o->target);
            send_prepare(m, o);
        }
        return;
    }
    if (strcmp(o->step, "prepare") == 0 || strcmp(o->step, "send") == 0) {
        (void)operations_step(m, o, "prepare", "the master came back; node %s listens again",
                              o->target);
        send_prepare(m, o);
    } else if (strcmp(o->step, "commit") == 0) {
        send_commit(m, o);
    } else if (strcmp(o->step, "abort") == 0) {
        send_abort(m, o);
    }
}

const struct op_kind_ops op_import_ops = {
    .name = "import",
    .report = import_report,
    .tick = import_tick,
    .cancellable = import_cancellable,
    .cancel = import_cancel,
    .resume = import_resume,
    .release = import_release,
};
