/* Who is calling the API: roles, bearer tokens and the caller identity the
 * guest domain checks.
 *
 * Roles: admin (everything), operator (guests, nodes and pools of every
 * project, but no tokens or projects to manage), tenant (the guests of its
 * own project; another project's objects do not exist for it).
 *
 * A token is "<id>.<secret>": the id names it in lists and logs, the
 * secret is 256 random bits in hex. The store keeps only the SHA-256 of the
 * whole text (GnuTLS): a token is random, not a password, so a plain hash
 * is enough, and a leaked database gives no usable token. Root on the
 * master's host is admin over the Unix socket without a token (its peer
 * uid, SO_PEERCRED, says so).
 *
 * Loop thread only. */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include "common/name.h"
#include "master/db.h"

typedef struct master master_t;
struct guest_err;

enum auth_role {
    AUTH_ADMIN,    /* everything */
    AUTH_OPERATOR, /* guests, nodes and pools of every project */
    AUTH_TENANT,   /* its own project's guests */
    AUTH__ROLE_MAX,
};

#define AUTH_ROLE_BIT(r) (1u << (r))
#define AUTH_ANY                                                                                   \
    (AUTH_ROLE_BIT(AUTH_ADMIN) | AUTH_ROLE_BIT(AUTH_OPERATOR) | AUTH_ROLE_BIT(AUTH_TENANT))
#define AUTH_STAFF      (AUTH_ROLE_BIT(AUTH_ADMIN) | AUTH_ROLE_BIT(AUTH_OPERATOR))
#define AUTH_ADMIN_ONLY AUTH_ROLE_BIT(AUTH_ADMIN)

#define AUTH_ID_LEN    12 /* "tk" and 10 hex digits */
#define AUTH_TOKEN_LEN 77 /* id, '.', 64 hex digits */
#define AUTH_HASH_LEN  64 /* SHA-256 in hex */
#define AUTH_MAX_TTL_S (10ULL * 365 * 86400)
#define AUTH_DESC_MAX  200 /* bytes of a token's description */

/* The caller of a request, as the domain sees it. */
struct caller {
    enum auth_role role;            /* what it may do */
    char project[NAME_MAX_LEN + 1]; /* a tenant's project, "" for the other roles */
    char who[NAME_MAX_LEN + 16];    /* for logs: "token tk0123456789", "root (unix socket)" */
    char token[AUTH_ID_LEN + 1];    /* the token's id, "" for root on the socket */
    uint64_t expires_ms;            /* the token's expiry (real-time ms), 0 = never */
};

const char *auth_role_name(enum auth_role r);
/* The role of a name, or -EINVAL. */
int auth_role_from_string(const char *s);

/* Whether c may see an object of project (admin and operator see all). A
 * NULL caller is the master itself. */
bool auth_sees_project(const struct caller *c, const char *project);

/* Whether what c holds open (a shell, an event stream) must end: its
 * token is revoked (the id a deletion names; NULL for none) or has expired
 * by now_ms (real time). A request is checked once; what stays open is
 * checked again on each token deletion and on the tick. */
bool auth_caller_over(const struct caller *c, const char *revoked, uint64_t now_ms);

/* The caller of an Authorization header value ("Bearer TOKEN"). 0 with out
 * filled; -ENOKEY when the header is not a bearer token, -EKEYREJECTED for
 * an unknown token, -EKEYEXPIRED for an expired one; -errno of the store. */
int auth_token_check(master_t *m, const char *authorization, struct caller *out);

/* A token to make. */
struct auth_token_req {
    enum auth_role role;     /* its role */
    const char *project;     /* a tenant's project (required then, refused otherwise) */
    uint64_t ttl_s;          /* life in seconds, 0 = no expiry */
    const char *description; /* a note, NULL = none */
};

/* Makes a token (in the caller's transaction, when one is open): secret
 * gets its text, shown this once; row the stored record (cleared by the
 * caller with db_token_clear). -EINVAL, -ENOENT (no such project), or the
 * store's -errno; e says which field. */
int auth_token_create(master_t *m, const struct auth_token_req *rq, char secret[AUTH_TOKEN_LEN + 1],
                      struct db_token *row, struct guest_err *e);
/* Deletes a token by id: -ENOENT when there is none. */
int auth_token_delete(master_t *m, const char *id);
