#include "master/auth.h"

#include <errno.h>
#include <gnutls/crypto.h>
#include <gnutls/gnutls.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "common/log.h"
#include "common/mem.h"
#include "common/mtime.h"
#include "master/core.h"
#include "master/guests.h"

static const char *const role_names[AUTH__ROLE_MAX] = {
    [AUTH_ADMIN] = "admin",
    [AUTH_OPERATOR] = "operator",
    [AUTH_TENANT] = "tenant",
};

const char *
auth_role_name(enum auth_role r)
{
    return (unsigned)r < AUTH__ROLE_MAX ? role_names[r] : "none";
}

int
auth_role_from_string(const char *s)
{
    for (int i = 0; s && i < AUTH__ROLE_MAX; i++)
        if (strcmp(s, role_names[i]) == 0)
            return i;
    return -EINVAL;
}

bool
auth_sees_project(const struct caller *c, const char *project)
{
    return !c || c->role != AUTH_TENANT || strcmp(c->project, project ? project : "") == 0;
}

bool
auth_caller_over(const struct caller *c, const char *revoked, uint64_t now_ms)
{
    if (!c->token[0])
        return false;
    return (revoked && strcmp(c->token, revoked) == 0) ||
           (c->expires_ms && c->expires_ms <= now_ms);
}

static void
hex(const unsigned char *b, size_t n, char *out)
{
    for (size_t i = 0; i < n; i++)
        snprintf(out + 2 * i, 3, "%02x", b[i]);
}

/* SHA-256 of the token text, hex. */
static int
token_hash(const char *token, char out[AUTH_HASH_LEN + 1])
{
    unsigned char d[32];

    if (gnutls_hash_fast(GNUTLS_DIG_SHA256, token, strlen(token), d) < 0)
        return -EIO;
    hex(d, sizeof(d), out);
    return 0;
}

/* A token's text has a fixed shape; anything else is not looked up. */
static bool
token_shaped(const char *t)
{
    if (strlen(t) != AUTH_TOKEN_LEN || strncmp(t, "tk", 2) != 0 || t[AUTH_ID_LEN] != '.')
        return false;
    for (size_t i = 2; i < AUTH_TOKEN_LEN; i++)
        if (i != AUTH_ID_LEN && !((t[i] >= '0' && t[i] <= '9') || (t[i] >= 'a' && t[i] <= 'f')))
            return false;
    return true;
}

int
auth_token_check(master_t *m, const char *authorization, struct caller *out)
{
    char hash[AUTH_HASH_LEN + 1];
    struct db_token t = {0};
    int r;

    if (!authorization || strncasecmp(authorization, "Bearer ", 7) != 0)
        return -ENOKEY;
    const char *tok = authorization + 7;
    while (*tok == ' ')
        tok++;
    if (!token_shaped(tok))
        return -EKEYREJECTED;
    r = token_hash(tok, hash);
    if (r < 0)
        return r;
    r = db_token_get_by_hash(m->db, hash, &t);
    if (r == -ENOENT)
        return -EKEYREJECTED;
    if (r < 0)
        return r;
    int role = auth_role_from_string(t.role);
    if (t.expires_ms && t.expires_ms <= time_real_ms())
        r = -EKEYEXPIRED;
    else if (role < 0)
        r = -EKEYREJECTED;
    if (r >= 0) {
        *out = (struct caller){.role = (enum auth_role)role};
        strscpy(out->project, t.project ? t.project : "", sizeof(out->project));
        snprintf(out->who, sizeof(out->who), "token %s", t.id);
        strscpy(out->token, t.id, sizeof(out->token));
        out->expires_ms = t.expires_ms;
    }
    db_token_clear(&t);
    return r;
}

int
auth_token_create(master_t *m, const struct auth_token_req *rq, char secret[AUTH_TOKEN_LEN + 1],
                  struct db_token *row, struct guest_err *e)
{
    unsigned char rnd[37];
    char id[AUTH_ID_LEN + 1], hash[AUTH_HASH_LEN + 1];
    struct db_project p = {0};
    int r;

    if ((unsigned)rq->role >= AUTH__ROLE_MAX)
        return guest_fail(e, -EINVAL, "role", "role must be admin, operator or tenant");
    if ((rq->role == AUTH_TENANT) != (rq->project != NULL))
        return guest_fail(e, -EINVAL, "project",
                          rq->project ? "only a tenant token has a project"
                                      : "a tenant token needs a project");
    if (rq->project) {
        r = db_project_get(m->db, rq->project, &p);
        db_project_clear(&p);
        if (r < 0)
            return guest_fail(e, r, "project", "%s",
                              r == -ENOENT ? "no such project" : "cannot read the project");
    }
    if (rq->ttl_s > AUTH_MAX_TTL_S)
        return guest_fail(e, -EINVAL, "ttl", "ttl must be at most ten years");
    if (rq->description && strlen(rq->description) > AUTH_DESC_MAX)
        return guest_fail(e, -EINVAL, "description", "description must be at most %d bytes",
                          AUTH_DESC_MAX);
    if (gnutls_rnd(GNUTLS_RND_KEY, rnd, sizeof(rnd)) < 0)
        return guest_fail(e, -EIO, NULL, "no randomness for a token");
    memcpy(id, "tk", 2);
    hex(rnd, 5, id + 2);
    snprintf(secret, AUTH_TOKEN_LEN + 1, "%s.", id);
    hex(rnd + 5, 32, secret + AUTH_ID_LEN + 1);
    explicit_bzero(rnd, sizeof(rnd));
    r = token_hash(secret, hash);
    if (r < 0)
        return guest_fail(e, r, NULL, "cannot hash the token");
    uint64_t now = time_real_ms();
    struct db_token t = {.id = id,
                         .hash = hash,
                         .role = (char *)auth_role_name(rq->role),
                         .project = (char *)rq->project,
                         .description = (char *)rq->description,
                         .created_ms = now,
                         .expires_ms = rq->ttl_s ? now + rq->ttl_s * 1000 : 0};
    r = db_token_insert(m->db, &t);
    if (r < 0)
        return guest_fail(e, r, r == -ENOENT ? "project" : NULL, "cannot store the token: %s",
                          r == -ENOENT ? "no such project" : db_errmsg(m->db));
    *row = (struct db_token){.id = xstrdup(id),
                             .role = xstrdup(t.role),
                             .project = rq->project ? xstrdup(rq->project) : NULL,
                             .description = rq->description ? xstrdup(rq->description) : NULL,
                             .created_ms = now,
                             .expires_ms = t.expires_ms};
    return 0;
}

int
auth_token_delete(master_t *m, const char *id)
{
    return db_token_delete(m->db, id);
}
