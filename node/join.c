/* `vfleet-node join` (join.h). */
#include "node/join.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <zmq.h>

#include "common/config.h"
#include "common/fsutil.h"
#include "common/log.h"
#include "common/mem.h"
#include "common/mtime.h"
#include "proto/jointoken.h"
#include "proto/link.h"
#include "proto/msg.h"
#include "proto/spec.h"
#include "node/agent.h"

static char *
state_path(const char *dir, const char *file)
{
    return xasprintf("%s/%s", dir, file);
}

int
join_load(const char *state_dir, struct keys_file *k)
{
    _cleanup_free_ char *path = state_path(state_dir, JOIN_KEY_FILE);
    int r = keys_file_load(path, k);

    if (r == 0 && (!k->secret_key[0] || !k->node[0] || !k->master_key[0]))
        r = -EBADMSG;
    return r;
}

/* The pair to register: the one a join left pending (its join may have
 * reached the master), or a new one, saved before it is sent. */
static int
pending_pair(const char *state_dir, const char *name, const char *endpoint,
             const struct jointoken *t, struct keys_file *k)
{
    _cleanup_free_ char *path = state_path(state_dir, JOIN_PENDING_FILE);
    int r = keys_file_load(path, k);

    if (r < 0 || !k->secret_key[0]) {
        memset(k, 0, sizeof(*k));
        if ((r = keys_generate(k)) < 0)
            return r;
    }
    strscpy(k->node, name, sizeof(k->node));
    strscpy(k->master_key, t->master_key, sizeof(k->master_key));
    strscpy(k->endpoint, endpoint, sizeof(k->endpoint));
    return keys_file_save(path, k);
}

/* Waits for the master's answer to request id. Returns 0 (ack), 1 with why
 * (nack, refused handshake, no answer). */
static int
await_answer(link_t *l, const struct msg *join, unsigned timeout_s, char *why, size_t n)
{
    uint64_t deadline = time_mono_ms() + (uint64_t)timeout_s * 1000, next_send = 0;
    _cleanup_free_ char *frame = NULL;
    size_t flen = 0;

    if (msg_encode(join, &frame, &flen) < 0)
        return snprintf(why, n, "cannot encode the join message"), 1;
    while (time_mono_ms() < deadline) {
        zmq_pollitem_t it = {.socket = link_zsocket(l), .events = ZMQ_POLLIN};
        void *buf = NULL;
        size_t len = 0;
        struct msg m;

        /* With IMMEDIATE a send is refused until the handshake is done; the
         * join is idempotent on the master (a second one is "used"), so it
         * is sent until it is taken, once. */
        if (next_send != UINT64_MAX && time_mono_ms() >= next_send) {
            next_send = link_send(l, NULL, frame, flen) == 0 ? UINT64_MAX : time_mono_ms() + 100;
        }
        if (link_refused(l))
            return snprintf(why, n,
                            "the master refused the token at the handshake: it is unknown, "
                            "already used or expired"),
                   1;
        zmq_poll(&it, 1, 100);
        if (link_recv(l, NULL, 0, &buf, &len) < 0)
            continue;
        int r = msg_decode(buf, len, &m, NULL, 0);
        free(buf);
        if (r == 0 && m.type == MSG_ACK && m.u.ack.ref == join->id) {
            msg_clear(&m);
            return 0;
        }
        if (r == 0 && m.type == MSG_NACK && m.u.nack.ref == join->id) {
            snprintf(why, n, "the master refused the join: %.400s", m.u.nack.message);
            msg_clear(&m);
            return 1;
        }
        msg_clear(&m);
    }
    return snprintf(why, n,
                    "no answer within %u s: the master is not reachable there, or it is not "
                    "the master that made this token",
                    timeout_s),
           1;
}

static int
check_args(const char *endpoint, const char *name, const char *token, struct jointoken *t)
{
    if (!endpoint || strncmp(endpoint, "tcp://", 6) != 0) {
        fprintf(stderr, "vfleet-node: join: --master must be a tcp:// endpoint\n");
        return 2;
    }
    if (!name || !name_is_valid(name)) {
        fprintf(stderr, "vfleet-node: join: \"%s\" is not a valid node name (a DNS label)\n",
                name ? name : "");
        return 2;
    }
    if (!token || jointoken_parse(token, t) < 0) {
        fprintf(stderr, "vfleet-node: join: --token is not a join token (vfleet node token "
                        "create makes one)\n");
        return 2;
    }
    return 0;
}

/* Puts the acknowledged pair in place of the key file. */
static int
commit_pair(const char *state_dir)
{
    _cleanup_free_ char *from = state_path(state_dir, JOIN_PENDING_FILE);
    _cleanup_free_ char *to = state_path(state_dir, JOIN_KEY_FILE);

    if (rename(from, to) < 0)
        return -errno;
    _cleanup_close_ int fd = open(state_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    return fd >= 0 && fsync(fd) == 0 ? 0 : -errno;
}

int
join_run(const char *endpoint, const char *name, const char *state_dir, const char *token,
         unsigned timeout_s)
{
    struct jointoken t;
    struct keys_file k;
    char why[512] = "", mfpr[KEYS_FPR_SIZE], nfpr[KEYS_FPR_SIZE];
    int r = check_args(endpoint, name, token, &t);

    if (r)
        return r;
    if ((r = fs_mkdir_p(state_dir, 0700)) < 0 ||
        (r = pending_pair(state_dir, name, endpoint, &t, &k)) < 0) {
        fprintf(stderr, "vfleet-node: join: cannot keep a key pair in \"%s\": %s\n", state_dir,
                strerror(-r));
        return 1;
    }
    struct link_keys lk = {t.public_key, t.secret_key, t.master_key};
    link_t *l = link_new_dealer_curve(endpoint, name, &lk, &r);
    if (!l) {
        fprintf(stderr, "vfleet-node: join: cannot connect to \"%s\": %s\n", endpoint,
                strerror(-r));
        return 1;
    }
    struct msg join = {.type = MSG_JOIN, .id = 1};
    strscpy(join.u.join.node, name, sizeof(join.u.join.node));
    strscpy(join.u.join.key, k.public_key, sizeof(join.u.join.key));
    r = await_answer(l, &join, timeout_s, why, sizeof(why));
    link_destroy(&l);
    if (r) {
        fprintf(stderr, "vfleet-node: join: %s\n", why);
        return 1;
    }
    if ((r = commit_pair(state_dir)) < 0) {
        fprintf(stderr, "vfleet-node: join: joined, but cannot put the key file in place: %s\n",
                strerror(-r));
        return 1;
    }
    printf("joined the master at %s as node %s\n"
           "  master key %s (pinned)\n"
           "  node key   %s\n"
           "  key file   %s/%s\n"
           "start the agent: vfleet-node run --name %s --master %s --state-dir %s\n",
           endpoint, name, keys_fingerprint(t.master_key, mfpr),
           keys_fingerprint(k.public_key, nfpr), state_dir, JOIN_KEY_FILE, name, endpoint,
           state_dir);
    return 0;
}

int
join_agent_keys(const config_t *cfg, const char *state_dir, bool sim, struct agent_config *ac)
{
    bool name_given = config_get(cfg, "node", "name") != NULL;
    bool master_given = config_get(cfg, "node", "master") != NULL;
    bool insecure = false;
    struct keys_file k;
    int r = config_get_bool(cfg, "node", "insecure", &insecure);

    if (r < 0 && r != -ENOENT) {
        fprintf(stderr, "vfleet-node: insecure is true or false\n");
        return r;
    }
    insecure |= sim;
    r = join_load(state_dir, &k);

    /* The endpoint a join recorded counts when none was configured. */
    if (r == 0 && !master_given && k.endpoint[0])
        strscpy(ac->master, k.endpoint, sizeof(ac->master));
    if (strncmp(ac->master, "tcp://", 6) != 0)
        return 0;
    if (insecure) {
        log_warning("node=%s talks to the master at \"%s\" in PLAINTEXT (insecure = true): "
                    "anyone on the path can read and forge its messages",
                    ac->name, ac->master);
        return 0;
    }
    if (r < 0) {
        if (r == -ENOENT)
            fprintf(stderr,
                    "vfleet-node: this node has not joined a master (no %s/%s): run "
                    "`vfleet-node join --master %s --token TOKEN` first (a token comes from "
                    "`vfleet node token create`), or use an ipc:// master\n",
                    state_dir, JOIN_KEY_FILE, ac->master);
        else
            fprintf(stderr, "vfleet-node: cannot use the key file %s/%s: %s\n", state_dir,
                    JOIN_KEY_FILE,
                    r == -EPERM     ? "group or others may read it (chmod 600)"
                    : r == -EBADMSG ? "it is damaged or incomplete"
                                    : strerror(-r));
        return r;
    }
    if (!name_given)
        strscpy(ac->name, k.node, sizeof(ac->name));
    if (strcmp(ac->name, k.node) != 0) {
        fprintf(stderr,
                "vfleet-node: this node joined as \"%s\", not \"%s\": its key speaks for %s "
                "only\n",
                k.node, ac->name, k.node);
        return -EINVAL;
    }
    ac->curve = true;
    strscpy(ac->public_key, k.public_key, sizeof(ac->public_key));
    strscpy(ac->secret_key, k.secret_key, sizeof(ac->secret_key));
    strscpy(ac->server_key, k.master_key, sizeof(ac->server_key));
    return 0;
}
