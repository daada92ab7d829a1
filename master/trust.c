/* The node link's trust (trust.h): keys, the ZAP table, join tokens,
 * joining and revoking. */
#include "master/trust.h"

#include <errno.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "common/log.h"
#include "common/mem.h"
#include "common/mtime.h"
#include "master/api.h"
#include "master/events.h"
#include "master/oncommit.h"
#include "master/session.h"
#include "proto/keys.h"
#include "proto/ratelimit.h"
#include "proto/zap.h"

/* A token the ZAP handler admits: live (unused, not expired). */
struct live_token {
    char id[DB_TOKEN_ID_SIZE];    /* its id */
    char public_key[DB_KEY_SIZE]; /* its key in the ZAP table */
    uint64_t expires_ms;          /* wall clock it leaves the table */
};

/* A node with a key, and which key. */
struct keyed_node {
    char name[64];                /* the node (the map's key lives here) */
    char public_key[DB_KEY_SIZE]; /* its key in the ZAP table */
};

struct trust {
    bool curve;                      /* some endpoint uses CurveZMQ */
    struct keys_file master;         /* the master's key pair */
    struct link_keys lkeys;          /* master's keys as a link wants them */
    char fingerprint[KEYS_FPR_SIZE]; /* of master.public_key */
    zap_t *zap;                      /* the ZAP handler, when curve */
    struct hmap_str nodes;           /* name -> struct keyed_node * */
    struct live_token *tokens;       /* live tokens */
    size_t n_tokens;                 /* entries in tokens */
    uint64_t next_expire;            /* monotonic ms of the next token expiry sweep */
    uint64_t next_purge;             /* monotonic ms of the next store purge */
    struct link_stats seen;          /* link counters already logged */
    struct ratelimit logrl;          /* refusals and link trouble, logged */
};

/* ---- opening ---------------------------------------------------------- */

bool
trust_endpoint_curve(const master_t *m, const char *endpoint)
{
    return strncmp(endpoint, "tcp://", 6) == 0 && !m->cfg.insecure;
}

static char *
key_path(const master_t *m)
{
    if (m->cfg.key_file)
        return xstrdup(m->cfg.key_file);
    if (strcmp(m->cfg.db_path, ":memory:") == 0)
        return NULL;
    _cleanup_free_ char *dir = xstrdup(m->cfg.db_path);
    char *slash = strrchr(dir, '/');
    if (!slash)
        return xstrdup("master.key");
    *slash = '\0';
    return xasprintf("%s/master.key", slash == dir ? "" : dir);
}

/* The master's key pair: loaded, or made and saved on first start (an
 * in-memory store gets one that lives as long as the process). */
static int
load_master_key(master_t *m, char *err, size_t errlen)
{
    struct trust *t = m->trust;
    _cleanup_free_ char *path = key_path(m);
    int r = path ? keys_file_load(path, &t->master) : -ENOENT;

    if (r == -ENOENT) {
        r = keys_generate(&t->master);
        if (r == 0 && path)
            r = keys_file_save(path, &t->master);
        if (r == 0 && path)
            log_notice("made the master's CurveZMQ key pair in \"%s\"", path);
    }
    if (r == 0 && !t->master.secret_key[0])
        r = -EBADMSG;
    if (r < 0) {
        snprintf(err, errlen, "cannot %s the master's key \"%s\": %s", path ? "use" : "make",
                 path ? path : ":memory:",
                 r == -EPERM     ? "group or others may read it (chmod 600)"
                 : r == -EBADMSG ? "not a key file with public and secret keys"
                                 : strerror(-r));
        return r;
    }
    t->lkeys = (struct link_keys){t->master.public_key, t->master.secret_key, NULL};
    keys_fingerprint(t->master.public_key, t->fingerprint);
    return 0;
}

static void
node_add(struct trust *t, const char *name, const char *key)
{
    struct keyed_node *n = hmap_str_get(&t->nodes, name);

    if (!n) {
        n = xcalloc(1, sizeof(*n));
        strscpy(n->name, name, sizeof(n->name));
        hmap_str_put(&t->nodes, n->name, n);
    }
    strscpy(n->public_key, key, sizeof(n->public_key));
    if (t->zap && zap_allow(t->zap, key, name) < 0)
        log_error("node=%s cannot enter its key into the ZAP table, ignoring", name);
}

static void
node_remove(struct trust *t, const char *name)
{
    struct keyed_node *n = hmap_str_get(&t->nodes, name);

    if (!n)
        return;
    if (t->zap)
        (void)zap_deny(t->zap, n->public_key);
    hmap_str_del(&t->nodes, name);
    free(n);
}

static void
token_admit(struct trust *t, const struct db_join_token *tk)
{
    char user[sizeof(TRUST_JOIN_PREFIX) + DB_TOKEN_ID_SIZE];

    if (!t->zap || t->n_tokens >= TRUST_MAX_TOKENS)
        return;
    snprintf(user, sizeof(user), TRUST_JOIN_PREFIX "%s", tk->id);
    if (zap_allow(t->zap, tk->public_key, user) < 0)
        return;
    t->tokens = xreallocarray(t->tokens, t->n_tokens + 1, sizeof(*t->tokens));
    struct live_token *lt = &t->tokens[t->n_tokens++];
    strscpy(lt->id, tk->id, sizeof(lt->id));
    strscpy(lt->public_key, tk->public_key, sizeof(lt->public_key));
    lt->expires_ms = tk->expires_ms;
}

/* Takes token i out of the ZAP table (used or expired). */
static void
token_drop(struct trust *t, size_t i)
{
    if (t->zap)
        (void)zap_deny(t->zap, t->tokens[i].public_key);
    t->tokens[i] = t->tokens[--t->n_tokens];
}

static int
load_node_key(void *userdata, const struct db_node_key *k)
{
    node_add(userdata, k->name, k->public_key);
    return 0;
}

static int
load_token(void *userdata, const struct db_join_token *tk)
{
    if (!tk->used_by[0] && tk->expires_ms > time_real_ms())
        token_admit(userdata, tk);
    return 0;
}

int
trust_open(master_t *m, char *err, size_t errlen)
{
    struct trust *t = xcalloc(1, sizeof(*t));
    int r;

    m->trust = t;
    t->logrl = (struct ratelimit)RATELIMIT_INIT(10000, 10);
    for (unsigned i = 0; i < m->cfg.n_binds; i++)
        t->curve |= trust_endpoint_curve(m, m->cfg.binds[i]);
    if (t->curve) {
        if ((r = load_master_key(m, err, errlen)) < 0)
            return r;
        t->zap = zap_new(&r);
        if (!t->zap) {
            snprintf(err, errlen, "cannot start the ZAP handler: %s", strerror(-r));
            return r;
        }
    }
    /* Names with keys are known even without a curve endpoint: they are
     * refused on plaintext links all the same. */
    r = db_node_key_list(m->db, load_node_key, t);
    if (r >= 0)
        r = db_join_token_list(m->db, load_token, t);
    if (r < 0) {
        snprintf(err, errlen, "cannot load node keys and join tokens: %s", db_errmsg(m->db));
        return r;
    }
    if (t->curve)
        log_notice("node link: CurveZMQ, master key %s (%s), %zu node keys, %zu live join tokens",
                   t->master.public_key, t->fingerprint, t->nodes.len, t->n_tokens);
    return 0;
}

void
trust_close(master_t *m)
{
    struct trust *t = m ? m->trust : NULL;

    if (!t)
        return;
    zap_destroy(&t->zap);
    for (size_t i = 0; i < t->nodes.cap; i++)
        if (t->nodes.slots && t->nodes.slots[i].key)
            free(t->nodes.slots[i].val);
    hmap_str_free(&t->nodes);
    free(t->tokens);
    sodium_memzero(&t->master, sizeof(t->master));
    free(t);
    m->trust = NULL;
}

const struct link_keys *
trust_link_keys(master_t *m)
{
    return m->trust && m->trust->curve ? &m->trust->lkeys : NULL;
}

const char *
trust_fingerprint(master_t *m)
{
    return m->trust ? m->trust->fingerprint : "";
}

bool
trust_is_join_peer(const char *peer)
{
    return strncmp(peer, TRUST_JOIN_PREFIX, strlen(TRUST_JOIN_PREFIX)) == 0;
}

bool
trust_has_key(master_t *m, const char *name)
{
    return m->trust && hmap_str_get(&m->trust->nodes, name) != NULL;
}

const char *
trust_node_key(master_t *m, const char *name)
{
    const struct keyed_node *n = m->trust ? hmap_str_get(&m->trust->nodes, name) : NULL;

    return n ? n->public_key : NULL;
}

/* ---- tokens ----------------------------------------------------------- */

struct token_ctx {
    struct db_join_token row; /* what was stored */
};

static void
token_created(master_t *m, void *ctx, int err)
{
    struct token_ctx *c = ctx;

    if (err == 0 && m->trust)
        token_admit(m->trust, &c->row);
    free(c);
}

int
trust_token_create(master_t *m, const char *node, uint64_t ttl_ms, struct trust_token *out)
{
    struct trust *t = m->trust;
    struct jointoken jt = {0};
    struct keys_file pair = {0};
    uint8_t rnd[8];
    int r;

    if (!t || !t->curve)
        return -EPERM;
    if ((node && node[0] && !name_is_valid(node)) || ttl_ms > TRUST_TOKEN_TTL_MAX_MS)
        return -EINVAL;
    if (t->n_tokens >= TRUST_MAX_TOKENS)
        return -EBUSY;
    if ((r = keys_generate(&pair)) < 0)
        return r;
    *out = (struct trust_token){.created_ms = time_real_ms()};
    out->expires_ms = out->created_ms + (ttl_ms ? ttl_ms : TRUST_TOKEN_TTL_MS);
    randombytes_buf(rnd, sizeof(rnd));
    sodium_bin2hex(out->id, sizeof(out->id), rnd, sizeof(rnd));
    strscpy(out->node, node ? node : "", sizeof(out->node));
    strscpy(jt.secret_key, pair.secret_key, sizeof(jt.secret_key));
    strscpy(jt.master_key, t->master.public_key, sizeof(jt.master_key));
    r = jointoken_format(&jt, out->text);
    sodium_memzero(&jt, sizeof(jt));
    sodium_memzero(pair.secret_key, sizeof(pair.secret_key));
    if (r < 0)
        return r;

    struct token_ctx *c = xcalloc(1, sizeof(*c));
    strscpy(c->row.id, out->id, sizeof(c->row.id));
    strscpy(c->row.public_key, pair.public_key, sizeof(c->row.public_key));
    strscpy(c->row.node, out->node, sizeof(c->row.node));
    c->row.created_ms = out->created_ms;
    c->row.expires_ms = out->expires_ms;
    r = db_join_token_insert(m->db, &c->row);
    if (r < 0) {
        free(c);
        sodium_memzero(out->text, sizeof(out->text));
        return r;
    }
    events_emit(m, "node.token", out->node[0] ? out->node : NULL, NULL, NULL,
                json_pack("{s:s}", "token", out->id), "join token %s made%s%s", out->id,
                out->node[0] ? " for node " : "", out->node);
    oncommit_add(m->oncommit, token_created, c);
    return 0;
}

static int
list_token(void *userdata, const struct db_join_token *tk)
{
    char created[40], expires[40], used[40];
    uint64_t now = time_real_ms();

    api_time_format(tk->created_ms, created, sizeof(created));
    api_time_format(tk->expires_ms, expires, sizeof(expires));
    api_time_format(tk->used_ms, used, sizeof(used));
    const char *state = tk->used_by[0] ? "used" : tk->expires_ms <= now ? "expired" : "unused";
    json_array_append_new(
        userdata, json_pack("{s:s, s:s?, s:s, s:s, s:s, s:s?, s:s?}", "id", tk->id, "node",
                            tk->node[0] ? tk->node : NULL, "state", state, "created", created,
                            "expires", expires, "used_by", tk->used_by[0] ? tk->used_by : NULL,
                            "used", tk->used_ms ? used : NULL));
    return 0;
}

int
trust_token_list(master_t *m, json_t *arr)
{
    return db_join_token_list(m->db, list_token, arr);
}

/* ---- joining ---------------------------------------------------------- */

/* What a join's commit completes. */
struct join_ctx {
    int link;                        /* index of the link the session uses */
    char peer[LINK_PEER_SIZE];       /* "join:<id>" */
    uint64_t ref;                    /* the join message's id */
    char node[64];                   /* the name joined */
    char key[DB_KEY_SIZE];           /* its key */
    char token_id[DB_TOKEN_ID_SIZE]; /* the token used */
};

static void
join_answer(master_t *m, int link, const char *peer, uint64_t ref, enum msg_error code,
            const char *text)
{
    struct msg a = {.type = code ? MSG_NACK : MSG_ACK};

    if (link < 0 || (unsigned)link >= m->n_links)
        return;
    if (code) {
        a.u.nack.ref = ref;
        a.u.nack.code = code;
        snprintf(a.u.nack.message, sizeof(a.u.nack.message), "%s", text);
    } else {
        a.u.ack.ref = ref;
    }
    session_send(m, &m->links[link], peer, &a);
}

static void
join_done(master_t *m, void *ctx, int err)
{
    struct join_ctx *c = ctx;
    struct trust *t = m->trust;

    if (err < 0 || !t) {
        log_error("node=%s join not stored: %s", c->node, strerror(-err));
        join_answer(m, c->link, c->peer, c->ref, MSG_ERR_INTERNAL,
                    "the master could not store the join; try again with a new token");
        free(c);
        return;
    }
    for (size_t i = 0; i < t->n_tokens; i++)
        if (!strcmp(t->tokens[i].id, c->token_id)) {
            token_drop(t, i);
            break;
        }
    node_add(t, c->node, c->key);
    for (unsigned i = 0; i < m->n_links; i++)
        (void)link_deny(m->links[i].link, c->node, false);
    log_notice("node=%s joined with token %s, key %s", c->node, c->token_id, c->key);
    join_answer(m, c->link, c->peer, c->ref, MSG_ERR_NONE, NULL);
    free(c);
}

/* Checks the token against the join; 0, or a nack code with why. */
static enum msg_error
join_check(master_t *m, const struct db_join_token *tk, const struct msg_join *j, char *why,
           size_t n)
{
    struct db_node_key k;
    char when[40];

    if (tk->used_by[0]) {
        snprintf(why, n, "this join token was used by node %s already", tk->used_by);
        return MSG_ERR_CONFLICT;
    }
    if (tk->expires_ms <= time_real_ms()) {
        api_time_format(tk->expires_ms, when, sizeof(when));
        snprintf(why, n, "this join token expired at %s", when);
        return MSG_ERR_CONFLICT;
    }
    if (tk->node[0] && strcmp(tk->node, j->node) != 0) {
        snprintf(why, n, "this join token is for node %s, not %s", tk->node, j->node);
        return MSG_ERR_CONFLICT;
    }
    if (db_node_key_get(m->db, j->node, &k) == 0) {
        snprintf(why, n, "node %s has joined already; `vfleet node revoke %s` first", j->node,
                 j->node);
        return MSG_ERR_CONFLICT;
    }
    return MSG_ERR_NONE;
}

/* The join's writes, in a savepoint of the batch: the node's key and the
 * token used. Returns 0, or a nack code with why (nothing written). */
static enum msg_error
join_store(master_t *m, const char *id, const struct msg_join *j, char *why, size_t n)
{
    struct db_node_key k = {0};
    int r = db_begin(m->db);

    strscpy(k.name, j->node, sizeof(k.name));
    strscpy(k.public_key, j->key, sizeof(k.public_key));
    strscpy(k.token, id, sizeof(k.token));
    if (r >= 0) {
        r = db_node_key_insert(m->db, &k);
        if (r >= 0)
            r = db_join_token_use(m->db, id, j->node, time_real_ms());
        r = r >= 0 ? db_commit(m->db) : (db_rollback(m->db), r);
    }
    if (r >= 0)
        return MSG_ERR_NONE;
    if (r == -EEXIST || r == -ESTALE) {
        snprintf(why, n, "%s",
                 r == -EEXIST ? "this key belongs to another node"
                              : "this join token was used already");
        return MSG_ERR_CONFLICT;
    }
    snprintf(why, n, "the master cannot store the join: %s", strerror(-r));
    return MSG_ERR_INTERNAL;
}

void
trust_join(master_t *m, struct mlink *ml, const char *peer, const struct msg *msg)
{
    const struct msg_join *j = &msg->u.join;
    const char *id = peer + strlen(TRUST_JOIN_PREFIX);
    struct db_join_token tk;
    enum msg_error code;
    char why[256] = "";
    int r = db_join_token_get(m->db, id, &tk);

    if (r < 0) {
        code = r == -ENOENT ? MSG_ERR_NOT_FOUND : MSG_ERR_INTERNAL;
        snprintf(why, sizeof(why), "%s", r == -ENOENT ? "unknown join token" : strerror(-r));
    } else {
        code = join_check(m, &tk, j, why, sizeof(why));
    }
    if (code == MSG_ERR_NONE)
        code = join_store(m, id, j, why, sizeof(why));
    if (code != MSG_ERR_NONE) {
        if (ratelimit_ok(&m->trust->logrl, time_mono_ms(), NULL))
            log_warning("join as node=%s with token %s refused: %s", j->node, id, why);
        join_answer(m, ml->index, peer, msg->id, code, why);
        return;
    }
    events_emit(m, "node.joined", j->node, NULL, NULL, json_pack("{s:s}", "token", id),
                "node %s joined", j->node);
    struct join_ctx *c = xcalloc(1, sizeof(*c));
    c->link = ml->index;
    c->ref = msg->id;
    strscpy(c->peer, peer, sizeof(c->peer));
    strscpy(c->node, j->node, sizeof(c->node));
    strscpy(c->key, j->key, sizeof(c->key));
    strscpy(c->token_id, id, sizeof(c->token_id));
    oncommit_add(m->oncommit, join_done, c);
}

/* ---- revoking --------------------------------------------------------- */

struct revoke_ctx {
    char node[64]; /* the node revoked */
};

static void
revoke_done(master_t *m, void *ctx, int err)
{
    struct revoke_ctx *c = ctx;

    if (err == 0 && m->trust) {
        node_remove(m->trust, c->node);
        unsigned kicked = 0;
        for (unsigned i = 0; i < m->n_links; i++) {
            struct link_stats before, after;
            link_get_stats(m->links[i].link, &before);
            (void)link_deny(m->links[i].link, c->node, true);
            (void)link_kick(m->links[i].link, c->node);
            link_get_stats(m->links[i].link, &after);
            kicked += (unsigned)(after.kicked_asked - before.kicked_asked);
        }
        struct registry_node *n = registry_get(m->reg, c->node);
        if (n)
            n->link = -1;
        master_node_down(m, c->node);
        log_notice("node=%s revoked: its key is refused and %u connection(s) shut", c->node,
                   kicked);
    }
    free(c);
}

int
trust_revoke(master_t *m, const char *name)
{
    struct db_node_key k;
    int r = db_node_key_get(m->db, name, &k);

    if (r < 0)
        return r;
    if ((r = db_node_key_delete(m->db, name)) < 0)
        return r;
    events_emit(m, "node.revoked", name, NULL, NULL, NULL, "node %s revoked", name);
    struct revoke_ctx *c = xcalloc(1, sizeof(*c));
    strscpy(c->node, name, sizeof(c->node));
    oncommit_add(m->oncommit, revoke_done, c);
    return 0;
}

/* ---- housekeeping ----------------------------------------------------- */

/* trust.h */
void
trust_link_stats(master_t *m, struct link_stats *sum)
{
    *sum = (struct link_stats){0};
    for (unsigned i = 0; i < m->n_links; i++) {
        struct link_stats st;
        link_get_stats(m->links[i].link, &st);
        sum->dropped += st.dropped;
        sum->kicked_flood += st.kicked_flood;
        sum->kicked_denied += st.kicked_denied;
        sum->kicked_idle += st.kicked_idle;
        sum->kicked_junk += st.kicked_junk;
        sum->kicked_asked += st.kicked_asked;
        sum->violations += st.violations;
        sum->kicked_violation += st.kicked_violation;
        sum->stashed += st.stashed;
        sum->shrunk_bytes += st.shrunk_bytes;
        if (st.violation) {
            memcpy(sum->violator, st.violator, sizeof(sum->violator));
            sum->violation = st.violation;
        }
    }
}

static void
log_link_trouble(master_t *m, uint64_t now)
{
    struct link_stats sum, *seen = &m->trust->seen;

    trust_link_stats(m, &sum);
    if (sum.kicked_flood == seen->kicked_flood && sum.kicked_idle == seen->kicked_idle &&
        sum.kicked_junk == seen->kicked_junk && sum.dropped == seen->dropped &&
        sum.violations == seen->violations)
        return;
    if (!ratelimit_ok(&m->trust->logrl, now, NULL))
        return;
    /* Violations are a node's, by name: the line says whose (the latest). */
    char viol[LINK_PEER_SIZE + 200] = "";
    if (sum.violations != seen->violations)
        snprintf(viol, sizeof(viol),
                 "; %llu protocol violations, %llu connections shut for them (more than %d "
                 "within %d s), the latest: node=%s sent %s",
                 (unsigned long long)(sum.violations - seen->violations),
                 (unsigned long long)(sum.kicked_violation - seen->kicked_violation),
                 LINK_VIOLATIONS, LINK_VIOLATION_MS / 1000, sum.violator,
                 sum.violation ? sum.violation : "?");
    log_warning("node link: %llu messages dropped, %llu connections shut for flooding, %llu "
                "for saying nothing, %llu for sending without a valid name%s, since the last "
                "report",
                (unsigned long long)(sum.dropped - seen->dropped),
                (unsigned long long)(sum.kicked_flood - seen->kicked_flood),
                (unsigned long long)(sum.kicked_idle - seen->kicked_idle),
                (unsigned long long)(sum.kicked_junk - seen->kicked_junk), viol);
    *seen = sum;
}

void
trust_tick(master_t *m, uint64_t now)
{
    struct trust *t = m->trust;

    if (!t)
        return;
    for (unsigned i = 0; i < m->n_links; i++)
        link_tick(m->links[i].link, now);
    log_link_trouble(m, now);
    if (now >= t->next_expire) {
        uint64_t real = time_real_ms();
        t->next_expire = now + 1000;
        for (size_t i = 0; i < t->n_tokens;)
            if (t->tokens[i].expires_ms <= real)
                token_drop(t, i);
            else
                i++;
    }
    if (now >= t->next_purge) {
        t->next_purge = now + 60000;
        if (db_begin(m->db) < 0)
            return;
        int r = db_join_token_purge(m->db, time_real_ms() - TRUST_TOKEN_KEEP_MS, NULL, NULL);
        r = r >= 0 ? db_commit(m->db) : (db_rollback(m->db), r);
        if (r < 0)
            log_debug("cannot purge old join tokens: %s, ignoring", strerror(-r));
    }
}
