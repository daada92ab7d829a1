/* Exporting a guest (op_transfer.h): the guest's node packs its files into a
 * vfleet archive (frozen meanwhile when it runs) and sends it over the data
 * channel to a receiver of the master's, which keeps it as an archive for
 * the client to download (archives.h). Steps: "send", then done. The guest
 * is not changed: it runs (or not) as before, and is busy only while it is
 * packed and sent. Params: "endpoint", "_secret", "channel" ("curve" or
 * "plaintext", archives_channel); result: "archive", "size", "sha256",
 * "channel". */
#include "master/op_transfer.h"

#include <errno.h>
#include <sodium.h>
#include <stdio.h>
#include <string.h>

#include "common/log.h"
#include "common/mem.h"
#include "master/archives.h"
#include "master/guests_move.h"
#include "proto/xfer.h"

#define EXPORT_SILENCE_MS (180 * 1000) /* the node said nothing this long: give up */

/* The receiver: the master's end of the data channel for this export. */
static int
receiver_start(master_t *m, struct op *o, bool fresh)
{
    char path[PATH_MAX_ARCHIVE], bind[XFER_ENDPOINT_MAX + 1], ep[XFER_ENDPOINT_MAX + 1];
    xfer_recv_t *r = NULL;
    struct archives_keys keys;
    const struct xfer_keys *k = NULL;

    if (archives_curve(o) && !(k = archives_keys(m, o->node, false, &keys)))
        return -EKEYREVOKED; /* the node's key went since the export began */
    int rc = archives_path(m, o->id, path, sizeof(path));
    if (rc < 0)
        return rc;
    _cleanup_free_ char *state = xasprintf("%s.state", path);
    archives_endpoint(m, o->id, bind, sizeof(bind));
    struct xfer_recv_config c = {.bind = bind,
                                 .secret = op_pstr(o, "_secret"),
                                 .keys = k,
                                 .path = path,
                                 .state = state,
                                 .fresh = fresh};
    rc = xfer_recv_new(&c, NULL, NULL, &r, ep);
    sodium_memzero(&keys, sizeof(keys));
    if (rc < 0)
        return rc;
    o->rt = r;
    op_pset(o, "endpoint", json_string(ep));
    return 0;
}

static void
send_send(master_t *m, struct op *o)
{
    struct msg_migrate *mg = operations_queue(m, o, o->node, MSG_MIGRATE_SEND);

    strscpy(mg->peer, "master", sizeof(mg->peer));
    strscpy(mg->endpoint, op_pstr(o, "endpoint"), sizeof(mg->endpoint));
    strscpy(mg->secret, op_pstr(o, "_secret"), sizeof(mg->secret));
    archives_peer_key(m, o, mg->peer_key, sizeof(mg->peer_key));
    mg->archive = true;
}

static void
send_abort(master_t *m, struct op *o)
{
    struct msg_migrate *mg = operations_queue(m, o, o->node, MSG_MIGRATE_ABORT);

    strscpy(mg->role, "source", sizeof(mg->role));
}

int
op_export_start(master_t *m, const char *name, char id[SPEC_ID_LEN + 1], struct guest_err *e)
{
    struct db_guest g = {0};
    struct guest_spec spec;
    char secret[2 * XFER_SECRET_LEN + 1];
    int r = guests_load(m, NULL, name, NULL, &g, &spec);

    if (r < 0)
        return guest_fail(e, r, NULL, r == -ENOENT ? "no such guest" : "cannot read the guest");
    spec.flags &= ~SPEC_FLAG_LOCK; /* a locked guest may still be exported */
    r = guests_move_check(m, &g, &spec, e);
    if (r < 0) {
        db_guest_clear(&g);
        return r;
    }
    struct op *o = operations_add(m, OP_EXPORT, NULL);
    strscpy(o->guest_id, g.id, sizeof(o->guest_id));
    strscpy(o->guest, g.name, sizeof(o->guest));
    strscpy(o->node, g.node, sizeof(o->node));
    db_guest_clear(&g);
    xfer_secret_new(secret);
    op_pset(o, "_secret", json_string(secret));
    op_pset(o, "channel", json_string(archives_channel(m, o->id, o->node)));
    r = receiver_start(m, o, true);
    if (r >= 0 && (r = db_begin(m->db)) >= 0) {
        r = operations_step(m, o, "send", "node %s packs and sends the guest's files", o->node);
        if (r >= 0)
            send_send(m, o);
        r = r >= 0 ? db_commit(m->db) : (db_rollback(m->db), r);
    }
    if (r < 0) {
        o->gone = true;
        return guest_fail(e, r, NULL, "cannot start the export: %s", strerror(-r));
    }
    strscpy(id, o->id, SPEC_ID_LEN + 1);
    return 0;
}

static void
export_done(master_t *m, struct op *o, const struct msg_migrate_status *st)
{
    struct xfer_recv_status rs;
    struct archives_info info;
    uint8_t want[XFER_HASH_LEN];

    xfer_recv_status(o->rt, &rs);
    if (!rs.done || xfer_hex_decode(st->digest, want, sizeof(want)) < 0 ||
        memcmp(want, rs.digest, sizeof(want)) != 0) {
        (void)operations_end(m, o, OP_FAILED, NULL,
                             "the archive that arrived differs from the one sent");
        return;
    }
    xfer_recv_destroy((xfer_recv_t **)&o->rt);
    int r = archives_export_done(m, o->id, &info);
    if (r < 0) {
        (void)operations_end(m, o, OP_FAILED, NULL, "cannot record the archive: %s", strerror(-r));
        return;
    }
    json_t *res = json_pack("{s:s, s:I, s:s, s:s}", "archive", o->id, "size", (json_int_t)info.size,
                            "sha256", info.sha256, "from", o->node);
    json_object_set_new(res, "channel", json_string(archives_curve(o) ? "curve" : "plaintext"));
    if (st->frozen_ms)
        json_object_set_new(res, "packed", json_integer((json_int_t)st->frozen_ms));
    (void)operations_end(m, o, OP_DONE, res, NULL);
}

static void
export_report(master_t *m, struct op *o, const char *node, const struct msg_migrate_status *st)
{
    (void)node;
    if (strcmp(st->phase, "send") != 0 || strcmp(o->step, "send") != 0)
        return;
    if (strcmp(st->state, "failed") == 0) {
        send_abort(m, o);
        (void)operations_end(m, o, OP_FAILED, NULL, "node %s: %s", o->node, st->message);
    } else if (strcmp(st->state, "done") == 0) {
        export_done(m, o, st);
    } else {
        operations_progress(m, o, st->bytes_done, st->bytes_total);
    }
}

static void
export_tick(master_t *m, struct op *o, uint64_t now)
{
    if (now - o->heard_mono > EXPORT_SILENCE_MS) {
        send_abort(m, o);
        (void)operations_end(m, o, OP_FAILED, NULL, "node %s went silent during the export",
                             o->node);
    }
}

static int
export_cancel(master_t *m, struct op *o, char *why, size_t n)
{
    o->cancel = true;
    send_abort(m, o);
    snprintf(why, n, "cancelled");
    return operations_end(m, o, OP_CANCELLED, NULL, "cancelled");
}

static void
export_resume(master_t *m, struct op *o, const char *node)
{
    if (node)
        return; /* the node's outbox re-sends send */
    if (receiver_start(m, o, false) < 0) {
        (void)operations_end(m, o, OP_FAILED, NULL, "cannot listen for the archive again");
        return;
    }
    send_send(m, o);
}

static void
export_release(master_t *m, struct op *o)
{
    (void)m;
    xfer_recv_destroy((xfer_recv_t **)&o->rt);
}

const struct op_kind_ops op_export_ops = {
    .name = "export",
    .report = export_report,
    .tick = export_tick,
    .cancel = export_cancel,
    .resume = export_resume,
    .release = export_release,
};
