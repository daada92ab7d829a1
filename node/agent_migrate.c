/* Moving a guest, the node's half (docs/protocol.md, "Moving a guest"): the
 * master's guest.migrate.* commands, the receiving side, and the lane jobs
 * that freeze, thaw, commit and destroy. The sending side (the copy passes)
 * is agent_migrate_send.c. Every command is answered by guest.migrate.status
 * and is idempotent on its operation: a re-sent prepare finds the receiver
 * (or, after an agent restart, the incoming image and where it got to), a
 * re-sent commit of a guest already here answers with its state, a finish or
 * abort of a guest that is gone answers done. Loop thread. */
#include "node/agent_migrate.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "common/errtext.h"
#include "common/fsutil.h"
#include "common/log.h"
#include "common/mem.h"
#include "common/mtime.h"
#include "proto/spec_json.h"
#include "archive/archive.h"
#include "node/agent_template.h"

/* ---- the list, the status ---- */

struct migration *
mig_find(agent_t *a, const char *op)
{
    for (struct migration *m = a->migrations; m; m = m->next)
        if (strcmp(m->op, op) == 0)
            return m;
    return NULL;
}

static void
mig_handle_closed(uv_handle_t *h)
{
    struct migration *m = h->data;

    if (--m->handles == 0 && m->closing) {
        pthread_mutex_destroy(&m->lock);
        free(m);
    }
}

struct migration *
mig_new(agent_t *a, const char *op, const char *id, bool source)
{
    struct migration *m = xcalloc(1, sizeof(*m));

    m->agent = a;
    strscpy(m->op, op, sizeof(m->op));
    strscpy(m->id, id, sizeof(m->id));
    m->source = source;
    pthread_mutex_init(&m->lock, NULL);
    uv_async_init(a->loop, &m->wake, mig_on_wake);
    uv_timer_init(a->loop, &m->timer);
    m->wake.data = m->timer.data = m;
    m->handles = 2;
    m->next = a->migrations;
    a->migrations = m;
    return m;
}

void
mig_free(struct migration *m)
{
    agent_t *a = m->agent;

    for (struct migration **p = &a->migrations; *p; p = &(*p)->next)
        if (*p == m) {
            *p = m->next;
            break;
        }
    mig_stop_thread(m);
    xfer_send_destroy(&m->send);
    xfer_recv_destroy(&m->recv);
    m->closing = true;
    uv_close((uv_handle_t *)&m->wake, mig_handle_closed);
    uv_close((uv_handle_t *)&m->timer, mig_handle_closed);
}

const struct xfer_keys *
mig_keys(agent_t *a, struct migration *m, struct xfer_keys *out)
{
    if (!a->cfg.curve || !m->peer_key[0])
        return NULL;
    *out = (struct xfer_keys){.public_key = a->cfg.public_key, .secret_key = a->cfg.secret_key};
    if (m->source)
        out->server_key = m->peer_key;
    else
        out->client_key = m->peer_key;
    return out;
}

void
mig_status_ref(agent_t *a, uint64_t ref, const char *op, const char *id, const char *phase,
               const char *state, int err, const char *text)
{
    struct msg s = {.type = MSG_MIGRATE_STATUS};
    struct msg_migrate_status *st = &s.u.migrate_status;

    st->ref = ref;
    strscpy(st->op, op, sizeof(st->op));
    strscpy(st->id, id, sizeof(st->id));
    strscpy(st->phase, phase, sizeof(st->phase));
    strscpy(st->state, err < 0 ? "failed" : state, sizeof(st->state));
    if (err < 0)
        strscpy(st->code, msg_error_name(msg_error_from_errno(err)), sizeof(st->code));
    snprintf(st->message, sizeof(st->message), "%s", text ? text : "");
    agent_send(a, &s);
}

void
mig_status(agent_t *a, const struct migration *m, const char *phase, const char *state, int err,
           const char *text)
{
    struct msg s = {.type = MSG_MIGRATE_STATUS};
    struct msg_migrate_status *st = &s.u.migrate_status;

    st->ref = m->ref;
    strscpy(st->op, m->op, sizeof(st->op));
    strscpy(st->id, m->id, sizeof(st->id));
    strscpy(st->phase, phase, sizeof(st->phase));
    strscpy(st->state, err < 0 ? "failed" : state, sizeof(st->state));
    if (err < 0)
        strscpy(st->code, msg_error_name(msg_error_from_errno(err)), sizeof(st->code));
    snprintf(st->message, sizeof(st->message), "%s", text ? text : "");
    strscpy(st->endpoint, m->endpoint, sizeof(st->endpoint));
    if (!m->source && m->curve)
        strscpy(st->key, a->cfg.public_key, sizeof(st->key)); /* what the source pins */
    st->pass = m->stats.pass;
    st->bytes_total = m->stats.data_total;
    st->bytes_done =
        m->stats.scanned < m->stats.data_total ? m->stats.scanned : m->stats.data_total;
    if (m->step == MIG_SENT) {
        xfer_hex_encode(m->digest, XFER_HASH_LEN, st->digest);
        /* Done: every pass's bytes (a near-live move sends changed chunks again). */
        st->bytes_done = m->bytes_sent;
        if (st->bytes_total < m->bytes_sent)
            st->bytes_total = m->bytes_sent;
        st->copy_ms = m->copy_ms;
        st->last_bytes = m->stats.sent;
        st->frozen_ms = m->frozen_ms;
        st->running = m->was_running;
        st->counters = m->counters;
    }
    strscpy(st->note, m->note, sizeof(st->note));
    agent_send(a, &s);
}

/* ---- the incoming image ---- */

/* The incoming file, its state file and its marker ("op\nendpoint\n"): the
 * backend's place for it, or a file in the state directory when guests have
 * no image (sim), so the data channel still carries the move. */
static int
incoming_path(agent_t *a, const struct guest_spec *spec, const char *op, char *out, size_t n)
{
    char image[512];

    if (a->backend->ops->migrate_paths)
        return a->backend->ops->migrate_paths(a->backend, spec, image, out, n);
    if (snprintf(out, n, "%s/migrate-%.8s.img", a->cfg.state_dir[0] ? a->cfg.state_dir : "/tmp",
                 op) >= (int)n)
        return -ENAMETOOLONG;
    return 0;
}

static void
incoming_remove(const char *incoming, bool rmdir_too)
{
    const char *sfx[] = {"", ".state", ".op", ".state.tmp"};

    for (size_t i = 0; i < ARRAY_SIZE(sfx); i++) {
        _cleanup_free_ char *p = xasprintf("%s%s", incoming, sfx[i]);
        if (unlink(p) < 0 && errno != ENOENT)
            log_warning("cannot remove \"%s\": %m, ignoring", p);
    }
    if (rmdir_too) {
        _cleanup_free_ char *dir = xstrdup(incoming);
        (void)rmdir(dirname(dir)); /* only when empty: the guest's own directory */
    }
}

/* The endpoint a previous prepare of op bound, "" when the marker is not op's. */
static void
marker_read(const char *incoming, const char *op, char *endpoint, size_t n)
{
    _cleanup_free_ char *p = xasprintf("%s.op", incoming);
    _cleanup_fclose_ FILE *f = fopen(p, "re");
    char line[SPEC_ID_LEN + 2] = "";

    endpoint[0] = '\0';
    if (!f || !fgets(line, sizeof(line), f) || strncmp(line, op, SPEC_ID_LEN) != 0)
        return;
    if (fgets(endpoint, (int)n, f))
        endpoint[strcspn(endpoint, "\n")] = '\0';
}

static int
marker_write(const char *incoming, const char *op, const char *endpoint)
{
    _cleanup_free_ char *p = xasprintf("%s.op", incoming);
    _cleanup_close_ int fd = open(p, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);

    if (fd < 0 || dprintf(fd, "%s\n%s\n", op, endpoint) < 0 || fsync(fd) < 0)
        return -errno;
    return 0;
}

/* Starts the receiver, on the endpoint a previous life bound when it can.
 * The master sends imports itself: it reaches the node the way the node
 * reaches it, so with an ipc:// master link the receiver is ipc:// too. */
static int
recv_start(agent_t *a, struct migration *m, bool fresh, const char *old_endpoint, bool from_master)
{
    _cleanup_free_ char *state = xasprintf("%s.state", m->incoming);
    bool ipc = !a->cfg.data_address[0] || (from_master && !strncmp(a->cfg.master, "ipc://", 6));
    _cleanup_free_ char *bind =
        !ipc ? xasprintf("tcp://%s:*", a->cfg.data_address)
             : xasprintf("ipc://%s/migrate-%.8s.sock",
                         a->cfg.state_dir[0] ? a->cfg.state_dir : "/tmp", m->op);
    int r = -EADDRINUSE;
    struct xfer_keys keys;

    m->curve = mig_keys(a, m, &keys) != NULL;
    struct xfer_recv_config c = {.secret = m->secret,
                                 .keys = m->curve ? &keys : NULL,
                                 .path = m->incoming,
                                 .state = state,
                                 .fresh = fresh};
    if (old_endpoint[0] && !fresh) {
        c.bind = old_endpoint;
        r = xfer_recv_new(&c, NULL, NULL, &m->recv, m->endpoint);
    }
    if (r < 0) {
        c.bind = bind;
        r = xfer_recv_new(&c, NULL, NULL, &m->recv, m->endpoint);
    }
    if (r >= 0)
        r = marker_write(m->incoming, m->op, m->endpoint);
    return r;
}

/* Before a receiver goes: the handshakes it refused (a sender with another
 * key than the source's) are worth a warning. */
static void
recv_stop(agent_t *a, struct migration *m)
{
    struct xfer_recv_status st;

    if (!m->recv)
        return;
    xfer_recv_status(m->recv, &st);
    if (st.refused)
        log_warning("node=%s op=%s the data channel refused %u CurveZMQ handshake(s) with "
                    "another key than the source's",
                    a->cfg.name, m->op, st.refused);
    xfer_recv_destroy(&m->recv);
}

/* Why this node cannot take the guest, or 0. */
static int
prepare_check(agent_t *a, const struct guest_spec *s, char *why, size_t n)
{
    struct agent_guest *same = agent_guest_find_name(a, s->name);
    bool tmpl = false;

    if (agent_guest_find(a, s->id))
        return snprintf(why, n, "the guest is already on this node"), -EEXIST;
    if (same)
        return snprintf(why, n, "another guest on this node is named \"%s\"", s->name), -EEXIST;
    for (uint32_t i = 0; i < a->facts.n_templates; i++)
        tmpl |= strcmp(a->facts.templates[i], s->template_name) == 0;
    if (!tmpl && a->facts.n_templates)
        return snprintf(why, n, "template \"%s\" is not on this node", s->template_name), -ENOENT;
    if ((uint32_t)a->n_guests >= a->facts.max_guests)
        return snprintf(why, n, "this node is at its guest limit"), -ENOSPC;
    return 0;
}

static void
cmd_prepare(agent_t *a, const struct msg *msg)
{
    const struct msg_migrate *mg = &msg->u.migrate;
    struct migration *m = mig_find(a, mg->op);
    char why[256], old[XFER_ENDPOINT_MAX + 1];

    if (m && m->recv) {
        m->ref = msg->id;
        mig_status(a, m, "prepare", "ready", 0, NULL);
        return;
    }
    int r = prepare_check(a, &mg->spec, why, sizeof(why));
    if (r < 0) {
        mig_status_ref(a, msg->id, mg->op, mg->id, "prepare", "failed", r, why);
        return;
    }
    if (!m)
        m = mig_new(a, mg->op, mg->id, false);
    m->ref = msg->id;
    strscpy(m->secret, mg->secret, sizeof(m->secret));
    strscpy(m->peer_key, mg->peer_key, sizeof(m->peer_key));
    if (mg->peer_key[0] && !a->cfg.curve)
        log_warning("node=%s op=%s the master passed node %s's key but this node has no key "
                    "pair: the data channel is plaintext (secret only)",
                    a->cfg.name, mg->op, mg->peer);
    r = incoming_path(a, &mg->spec, mg->op, m->incoming, sizeof(m->incoming));
    if (r >= 0 && mg->archive && strlen(m->incoming) + 5 < sizeof(m->incoming))
        strcat(m->incoming, ".vfx"); /* an import: an archive, unpacked at commit */
    _cleanup_free_ char *dir = xstrdup(m->incoming);
    if (r >= 0)
        r = fs_mkdir_p(dirname(dir), 0700);
    marker_read(m->incoming, mg->op, old, sizeof(old));
    /* Another operation's leftovers are never resumed into. */
    if (r >= 0)
        r = recv_start(a, m, !old[0], old, mg->archive);
    if (r < 0) {
        snprintf(why, sizeof(why), "cannot receive the image: %s", strerror(-r));
        mig_status(a, m, "prepare", "failed", r, why);
        mig_free(m);
        return;
    }
    log_info("node=%s guest=%s op=%s receiving at %s%s, %s%s%s", a->cfg.name, mg->spec.name, mg->op,
             m->endpoint, old[0] ? " (resuming)" : "",
             m->curve ? "CurveZMQ, only the key of node " : "plaintext, secret only",
             m->curve ? mg->peer : "", m->curve ? " let in" : "");
    mig_status(a, m, "prepare", "ready", 0, NULL);
}

/* ---- commit, on the target ---- */

/* The image is complete and its digest is the source's. */
static int
commit_check(struct migration *m, const char *incoming, const char *digest, char *why, size_t n)
{
    struct xfer_recv_status st;
    uint8_t want[XFER_HASH_LEN];
    _cleanup_free_ char *state = xasprintf("%s.state", incoming);

    if (m && m->recv)
        xfer_recv_status(m->recv, &st);
    else if (xfer_recv_load_state(state, &st) < 0)
        return snprintf(why, n, "no incoming image for this operation"), -ENOENT;
    if (!st.done)
        return snprintf(why, n, "the image has not arrived whole (%llu of %llu bytes)",
                        (unsigned long long)st.offset, (unsigned long long)st.size),
               -EAGAIN;
    if (xfer_hex_decode(digest, want, sizeof(want)) < 0 || memcmp(want, st.digest, sizeof(want)))
        return snprintf(why, n, "the image here differs from the one sent (digest)"), -EBADMSG;
    return 0;
}

/* Moves the checked image into the guest's place. */
static int
commit_install(agent_t *a, const struct guest_spec *spec, const char *incoming)
{
    char image[512], inc[512];

    if (a->backend->ops->migrate_paths) {
        int r = a->backend->ops->migrate_paths(a->backend, spec, image, inc, sizeof(image));
        if (r < 0)
            return r;
        if (rename(incoming, image) < 0)
            return -errno;
    }
    incoming_remove(incoming, false);
    return 0;
}

static void
cmd_commit(agent_t *a, const struct msg *msg)
{
    const struct msg_migrate *mg = &msg->u.migrate;
    struct migration *m = mig_find(a, mg->op);
    struct agent_guest *g = agent_guest_find(a, mg->id);
    char incoming[512], why[256];

    int r = incoming_path(a, &mg->spec, mg->op, incoming, sizeof(incoming));
    if (r >= 0 && mg->archive && strlen(incoming) + 5 < sizeof(incoming))
        strcat(incoming, ".vfx");
    if (g) {
        /* Committed before (an answer lost, an agent restarted): do it again,
         * it is idempotent, and answer with what is. */
        mig_job_file(a, mg->id, MJ_COMMIT, msg->id, mg->op, mg->start,
                     mg->archive && access(incoming, F_OK) == 0 ? incoming : "");
        return;
    }
    if (r >= 0)
        r = commit_check(m, incoming, mg->digest, why, sizeof(why));
    else
        snprintf(why, sizeof(why), "%s", strerror(-r));
    if (r >= 0) {
        if (m)
            recv_stop(a, m);
        r = mg->archive ? 0 : commit_install(a, &mg->spec, incoming);
        if (r < 0)
            snprintf(why, sizeof(why), "cannot move the image in place: %s", strerror(-r));
    }
    if (r < 0) {
        mig_status_ref(a, msg->id, mg->op, mg->id, "commit", "failed", r, why);
        return;
    }
    struct store_record rec = {
        .spec = mg->spec, .desired = mg->start ? STORE_DESIRED_RUNNING : STORE_DESIRED_STOPPED};
    rec.baseline.net_rx_bytes = mg->counters.net_rx_bytes;
    rec.baseline.net_tx_bytes = mg->counters.net_tx_bytes;
    rec.baseline.net_rx_packets = mg->counters.net_rx_packets;
    rec.baseline.net_tx_packets = mg->counters.net_tx_packets;
    rec.baseline.failcnt[USAGE_FAIL_TCP] = mg->counters.tcp_refused;
    /* Its block of host uids here; the commit job gives its files those ids
     * (the source's block is another one, or none). */
    if (agent_pick_ids(a, &mg->spec, &rec.ids) < 0) {
        mig_status_ref(a, msg->id, mg->op, mg->id, "commit", "failed", -ENOSPC,
                       "no free block of host uids on this node");
        return;
    }
    g = agent_guest_add(a, &rec);
    /* A failure here is caught by the commit job's own write, which the
     * commit's answer waits for (done_commit). */
    agent_guest_save(a, g);
    log_info("node=%s guest=%s op=%s %s, committing", a->cfg.name, mg->spec.name, mg->op,
             mg->archive ? "archive here" : "image in place");
    mig_job_file(a, mg->id, MJ_COMMIT, msg->id, mg->op, mg->start, mg->archive ? incoming : "");
}

/* ---- finish (source) and abort (target) ---- */

/* The guest goes from this node: whatever runs is killed, its data removed. */
static void
destroy_here(agent_t *a, struct migration *m, const struct msg *msg, const char *phase)
{
    const struct msg_migrate *mg = &msg->u.migrate;
    struct agent_guest *g = agent_guest_find(a, mg->id);

    if (!g) {
        mig_status_ref(a, msg->id, mg->op, mg->id, phase, "done", 0, NULL);
        if (m)
            mig_free(m);
        return;
    }
    g->destroying = true;
    agent_guest_quiet(g);
    mig_job(a, m, mg->id, MJ_DESTROY, msg->id, mg->op, strcmp(phase, "finish") == 0);
}

static void
cmd_finish(agent_t *a, const struct msg *msg)
{
    destroy_here(a, mig_find(a, msg->u.migrate.op), msg, "finish");
}

static void
abort_target(agent_t *a, const struct msg *msg)
{
    const struct msg_migrate *mg = &msg->u.migrate;
    struct migration *m = mig_find(a, mg->op);
    char incoming[512];

    struct guest_spec s = {0};

    if (m) {
        recv_stop(a, m);
        incoming_remove(m->incoming, !agent_guest_find(a, mg->id));
    } else {
        /* An agent restarted since prepare: the image's place follows from the id. */
        strscpy(s.id, mg->id, sizeof(s.id));
        if (incoming_path(a, &s, mg->op, incoming, sizeof(incoming)) >= 0)
            incoming_remove(incoming, !agent_guest_find(a, mg->id));
    }
    destroy_here(a, m, msg, "abort");
}

/* ---- the jobs: backend operations on the lifecycle lane ---- */

struct mjob {
    agent_t *agent;              /* back pointer */
    enum mig_job_kind kind;      /* what it does */
    char op[SPEC_ID_LEN + 1];    /* the operation */
    char id[SPEC_ID_LEN + 1];    /* the guest */
    uint64_t ref;                /* the command answered */
    bool flag;                   /* commit, thaw: start the guest; destroy: it is a finish */
    bool fake_pids;              /* the agent's cfg.fake_pids */
    char *packed;                /* the guest's spec as the job leaves the queue, spec_pack'd
                                  * (owned; NULL: the guest is gone): run unpacks it on its stack */
    size_t packed_len;           /* packed's bytes */
    char name[NAME_MAX_LEN + 1]; /* the guest's name, for logs */
    uint64_t generation;         /* its spec's generation */
    struct guest_runtime rt;     /* its runtime, in and out */
    struct guest_ids ids;        /* its block of host uids here */
    int result;                  /* the backend's */
    char errtext[ERRTEXT_MAX];   /* its detail */
    struct guest_usage run;      /* freeze: the current run's counters */
    bool have_run;               /* run was read */
    bool left_frozen;            /* freeze, pack: it failed and left the guest frozen */
    char path[512];              /* commit: the archive to unpack, "" = none; pack: the output */
    char node[NAME_MAX_LEN + 1]; /* pack: this node, for the manifest */
};

static void
mjob_start(void *arg)
{
    struct mjob *j = arg;
    struct agent_guest *g = agent_guest_find(j->agent, j->id);

    if (g) {
        j->packed = agent_guest_packed(g, &j->packed_len);
        strscpy(j->name, g->rec.spec.name, sizeof(j->name));
        j->generation = g->rec.spec.generation;
        j->rt = g->rec.rt;
        j->ids = g->rec.ids;
    }
}

/* A guest runs with its network or not at all (as agent_jobs.c's start). */
static int
start_with_network(backend_t *b, struct mjob *j, const struct guest_spec *s)
{
    const struct backend_ops *ops = b->ops;
    int r = ops->start(b, s, &j->ids, &j->rt);

    if (r < 0)
        return r;
    r = ops->apply_network(b, s, &j->rt);
    if (r < 0) {
        char why[ERRTEXT_MAX];
        struct guest_runtime none = {0};
        strscpy(why, errtext_get(), sizeof(why));
        ops->kill(b, s, &j->rt);
        ops->apply_network(b, s, &none);
        j->rt = none;
        errtext_set("cannot set up the guest's network: %s", why[0] ? why : strerror(-r));
    }
    return r;
}

static int
run_destroy(backend_t *b, struct mjob *j, const struct guest_spec *s)
{
    const struct backend_ops *ops = b->ops;
    struct guest_runtime none = {0};
    int r = 0;

    /* Killed while frozen, so it never runs here again; a process blocked
     * on the frozen filesystem dies once it thaws. */
    if (j->rt.pid)
        (void)ops->kill(b, s, &j->rt);
    if (ops->migrate_freeze)
        r = ops->migrate_freeze(b, s, &none, false);
    if (r >= 0 && j->rt.pid)
        r = ops->kill(b, s, &j->rt);
    if (r >= 0) {
        r = ops->apply_network(b, s, &none);
        if (r == -ENOENT)
            r = 0;
    }
    if (r < 0)
        return r;
    /* A large image the loop device is still writing back leaves it attached
     * for a while after the unmount (-EBUSY): wait for it, within reason. */
    r = ops->destroy(b, s);
    for (int tries = 0; r == -EBUSY && tries < 30; tries++) {
        struct timespec ts = {1, 0};
        nanosleep(&ts, NULL);
        r = ops->destroy(b, s);
    }
    return r;
}

/* Import: the archive's files into the new guest's disk. */
static int
run_unpack(backend_t *b, struct mjob *j, const struct guest_spec *s)
{
    _cleanup_close_ int fd = open(j->path, O_RDONLY | O_CLOEXEC);

    if (fd < 0)
        return errtext_fail(-errno, "cannot open the archive: %s", strerror(errno));
    return b->ops->migrate_unpack ? b->ops->migrate_unpack(b, s, fd) : 0;
}

/* Export: the guest's archive, manifest first. */
static int
run_pack(backend_t *b, struct mjob *j, const struct guest_spec *s)
{
    char created[40], err[ERRTEXT_MAX] = "";
    json_t *spec = spec_to_json(s);

    time_t now = time(NULL);
    strftime(created, sizeof(created), "%Y-%m-%dT%H:%M:%SZ", gmtime(&now));
    json_t *man = json_pack("{s:i, s:o, s:s, s:s, s:s}", "format", ARCHIVE_FORMAT, "spec", spec,
                            "template", s->template_name, "from", j->node, "created", created);
    _cleanup_free_ char *text = json_dumps(man, JSON_COMPACT);
    json_decref(man);
    _cleanup_close_ int fd = open(j->path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0)
        return errtext_fail(-errno, "cannot write the archive: %s", strerror(errno));
    if (b->ops->migrate_pack)
        return b->ops->migrate_pack(b, s, &j->rt, text, fd);
    /* A backend without files (sim): the manifest alone. */
    char empty[] = "/tmp/vfleet-empty-XXXXXX";
    if (!mkdtemp(empty))
        return -errno;
    int r = archive_pack(text, empty, NULL, fd, NULL, err, sizeof(err));
    rmdir(empty);
    return r < 0 ? errtext_fail(r, "%s", err) : 0;
}

static void
mjob_run(void *arg)
{
    struct mjob *j = arg;
    backend_t *b = j->agent->backend;
    const struct backend_ops *ops = b->ops;
    /* 17 KB of the pool thread's stack, given back after the job (lane.c). */
    struct guest_spec spec;
    const struct guest_spec *s = &spec;

    errtext_clear();
    if (!j->packed) {
        j->result = -ENOENT;
        return;
    }
    agent_spec_unpack(j->packed, j->packed_len, &spec);
    switch (j->kind) {
    case MJ_FREEZE:
        j->result = ops->migrate_freeze ? ops->migrate_freeze(b, s, &j->rt, true) : 0;
        if (j->result >= 0 && j->rt.pid && ops->net_per_run)
            j->have_run = ops->usage(b, s, &j->rt, &j->run) >= 0;
        /* A failed freeze undoes itself, but may not have (its undo
         * failed), or found the guest frozen (an agent restarted after it). */
        if (j->result < 0 && ops->migrate_frozen)
            j->left_frozen = ops->migrate_frozen(b, s) == 1;
        break;
    case MJ_THAW:
        j->result = ops->migrate_freeze ? ops->migrate_freeze(b, s, &j->rt, false) : 0;
        break;
    case MJ_COMMIT:
        j->result = ops->create(b, s, &j->ids);
        if (j->result >= 0 && j->path[0])
            j->result = run_unpack(b, j, s);
        if (j->result >= 0 && ops->migrate_ids)
            j->result = ops->migrate_ids(b, s, &j->ids);
        if (j->result >= 0)
            j->result = ops->set_limits(b, s, &j->ids, &j->rt);
        if (j->result >= 0 && j->flag)
            j->result = start_with_network(b, j, s);
        break;
    case MJ_DESTROY:
        j->result = run_destroy(b, j, s);
        break;
    case MJ_PACK:
        j->result = run_pack(b, j, s);
        /* Its thaw may have failed too: the guest stays refused until an
         * abort (the master's, on the export's failure) thaws it. */
        if (j->result < 0 && ops->migrate_frozen)
            j->left_frozen = ops->migrate_frozen(b, s) == 1;
        break;
    }
    if (j->result < 0)
        strscpy(j->errtext, errtext_get()[0] ? errtext_get() : strerror(-j->result),
                sizeof(j->errtext));
}

static void
done_commit(agent_t *a, struct mjob *j, struct agent_guest *g)
{
    struct msg s = {.type = MSG_MIGRATE_STATUS};
    struct msg_migrate_status *st = &s.u.migrate_status;

    if (j->result >= 0 && g) {
        /* The spec committed is the guest's already (cmd_commit put it in
         * the table; the job ran alone, so nothing changed it since). */
        uint64_t was = g->rec.applied_generation;
        g->rec.applied_generation = j->generation;
        g->rec.rt = j->rt;
        g->rec.desired = j->flag ? STORE_DESIRED_RUNNING : g->rec.desired;
        int saved = agent_guest_save(a, g);
        if (j->rt.pid && !a->closing && agent_guest_watch(a, g) < 0)
            log_warning("node=%s guest=%s cannot watch init, ignoring", a->cfg.name, j->name);
        if (saved < 0) {
            /* A commit done is the master's word to remove the source's
             * copy: not before the record here names the guest (an agent
             * restarted without it would not know the guest it holds).
             * The master aborts, which removes this copy (its init too:
             * the runtime stays in the table for the destroy), and the
             * source's runs on. */
            g->rec.applied_generation = was;
            mig_status_ref(a, j->ref, j->op, j->id, "commit", "failed", saved,
                           "cannot write local store");
            return;
        }
        log_info("node=%s guest=%s op=%s moved in%s", a->cfg.name, j->name, j->op,
                 j->rt.pid ? ", running" : "");
    }
    if (j->result < 0 || !g) {
        mig_status_ref(a, j->ref, j->op, j->id, "commit", "failed", g ? j->result : -ENOENT,
                       j->errtext);
        return;
    }
    st->ref = j->ref;
    strscpy(st->op, j->op, sizeof(st->op));
    strscpy(st->id, j->id, sizeof(st->id));
    strscpy(st->phase, "commit", sizeof(st->phase));
    strscpy(st->state, "done", sizeof(st->state));
    st->running = g->rec.rt.pid != 0;
    st->running_ms = time_real_ms();
    agent_send(a, &s);
}

static void
done_destroy(agent_t *a, struct mjob *j, struct agent_guest *g)
{
    const char *phase = j->flag ? "finish" : "abort";
    struct migration *m = mig_find(a, j->op);

    if (j->result < 0) {
        if (g)
            g->destroying = false;
        mig_status_ref(a, j->ref, j->op, j->id, phase, "failed", j->result, j->errtext);
        return;
    }
    if (g) {
        if (j->rt.pid && !j->fake_pids)
            (void)waitpid(j->rt.pid, NULL, WNOHANG);
        store_delete(a->store, j->id);
        agent_guest_remove(a, g);
    }
    log_info("node=%s guest %s op=%s gone from this node (%s)", a->cfg.name, j->id, j->op, phase);
    mig_status_ref(a, j->ref, j->op, j->id, phase, "done", 0, NULL);
    if (m)
        mig_free(m);
}

static void
done_thaw(agent_t *a, struct mjob *j, struct agent_guest *g)
{
    struct migration *m = mig_find(a, j->op);

    if (j->result < 0 && j->result != -ENOENT) {
        /* Still frozen, flagged and marked: execs stay refused. Said here
         * too: a move's master logs it and leaves the operation at its
         * abort for an operator; an export's has ended its operation. */
        log_error("node=%s guest=%s op=%s cannot thaw it: %s", a->cfg.name, j->name, j->op,
                  j->errtext);
        mig_status_ref(a, j->ref, j->op, j->id, "abort", "failed", j->result, j->errtext);
        return;
    }
    if (g && j->flag && !g->rec.rt.pid) {
        /* The start writes the record again before its event, and undoes
         * itself when it cannot (start_unrecorded); the abort's answer
         * claims only that the guest stays here, which its record says. */
        g->rec.desired = STORE_DESIRED_RUNNING;
        agent_guest_save(a, g);
        agent_job_start(a, g, 0);
    }
    log_info("node=%s guest %s op=%s stays here%s", a->cfg.name, j->id, j->op,
             j->flag ? ", started again" : "");
    mig_status_ref(a, j->ref, j->op, j->id, "abort", "done", 0, NULL);
    if (m)
        mig_free(m);
}

static void
mjob_done(void *arg)
{
    struct mjob *j = arg;
    agent_t *a = j->agent;
    struct agent_guest *g = agent_guest_find(a, j->id);

    /* A failed freeze thaws what it froze and a pack thaws after it, unless
     * the guest is still frozen after them; a thaw that found no guest has
     * nothing left frozen. A failed thaw leaves the flag (and the backend
     * its mark). */
    if (g && ((j->kind == MJ_FREEZE && j->result < 0 && !j->left_frozen) ||
              (j->kind == MJ_PACK && !j->left_frozen) ||
              (j->kind == MJ_THAW && (j->result >= 0 || j->result == -ENOENT))))
        g->move_frozen = false;
    if (j->left_frozen) {
        log_error("node=%s guest=%s op=%s its %s failed and left it frozen: %s", a->cfg.name,
                  j->name, j->op, j->kind == MJ_PACK ? "export's pack" : "move's freeze",
                  j->errtext);
        size_t n = strlen(j->errtext);
        snprintf(j->errtext + n, sizeof(j->errtext) - n,
                 "; the guest is left frozen: an abort thaws it");
    }
    switch (j->kind) {
    case MJ_PACK: {
        struct migration *m = mig_find(a, j->op);
        if (m)
            mig_packed(a, m, j->result, j->errtext);
        break;
    }
    case MJ_FREEZE: {
        struct migration *m = mig_find(a, j->op);
        if (m)
            mig_frozen(a, m, j->result, j->errtext, j->have_run ? &j->run : NULL);
        break;
    }
    case MJ_THAW:
        done_thaw(a, j, g);
        break;
    case MJ_COMMIT:
        if (j->path[0] && j->result >= 0)
            incoming_remove(j->path, false); /* the archive is unpacked */
        done_commit(a, j, g);
        break;
    case MJ_DESTROY:
        done_destroy(a, j, g);
        break;
    }
    free(j->packed);
    free(j);
}

static const struct lane_fns mjob_fns = {mjob_start, mjob_run, mjob_done};

void
mig_job(agent_t *a, struct migration *m, const char *id, enum mig_job_kind kind, uint64_t ref,
        const char *op, bool flag)
{
    (void)m;
    mig_job_file(a, id, kind, ref, op, flag, "");
}

void
mig_job_file(agent_t *a, const char *id, enum mig_job_kind kind, uint64_t ref, const char *op,
             bool flag, const char *path)
{
    struct mjob *j = xcalloc(1, sizeof(*j));

    strscpy(j->path, path, sizeof(j->path));
    strscpy(j->node, a->cfg.name, sizeof(j->node));
    j->agent = a;
    j->kind = kind;
    strscpy(j->op, op, sizeof(j->op));
    strscpy(j->id, id, sizeof(j->id));
    j->ref = ref;
    j->flag = flag;
    j->fake_pids = a->cfg.fake_pids;
    /* From the queueing on: an exec or shell that came after this freeze is
     * refused rather than frozen as it joined (AGENT_MOVE_FROZEN). */
    struct agent_guest *g = kind == MJ_FREEZE || kind == MJ_PACK ? agent_guest_find(a, id) : NULL;
    if (g) {
        g->move_frozen = true;
        /* And one running: it would freeze with the guest, holding the exec lane. */
        agent_job_exec_cancel(a, id);
    }
    lane_push(a->ops, &mjob_fns, j);
}

void
agent_migrate_cmd(agent_t *a, const struct msg *m)
{
    if (m->u.migrate.template_name[0]) {
        agent_template_cmd(a, m); /* a template from the master's library */
        return;
    }
    switch (m->type) {
    case MSG_MIGRATE_PREPARE:
        cmd_prepare(a, m);
        break;
    case MSG_MIGRATE_SEND:
        mig_send(a, m);
        break;
    case MSG_MIGRATE_COMMIT:
        cmd_commit(a, m);
        break;
    case MSG_MIGRATE_FINISH:
        cmd_finish(a, m);
        break;
    case MSG_MIGRATE_ABORT:
        if (strcmp(m->u.migrate.role, "target") == 0)
            abort_target(a, m);
        else
            mig_abort_source(a, m);
        break;
    default:
        break;
    }
}

void
agent_migrate_close_all(agent_t *a)
{
    while (a->migrations)
        mig_free(a->migrations);
}
