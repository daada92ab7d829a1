/* The REST API's shape: the route table (a handler per row), the one
 * mapping from -errno (and from a node's nack code) to an HTTP status and
 * error code, and the JSON of every object the API returns
 * (docs/openapi.yaml is the contract).
 *
 * No state: pure functions, safe from any thread. Every json_t returned is a
 * new reference the caller owns. */
#pragma once

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "common/netaddr.h"
#include "master/auth.h"
#include "master/db.h"
#include "master/ipam.h"
#include "master/registry.h"
#include "master/sched.h"
#include "proto/msg.h"

enum api_route {
    API_NONE,
    API_HEALTH,              /* GET /healthz */
    API_NODES_LIST,          /* GET /v1/nodes */
    API_NODE_GET,            /* GET /v1/nodes/{name} */
    API_NODE_CORDON,         /* POST /v1/nodes/{name}/cordon */
    API_NODE_UNCORDON,       /* POST /v1/nodes/{name}/uncordon */
    API_GUESTS_LIST,         /* GET /v1/guests */
    API_GUEST_CREATE,        /* POST /v1/guests */
    API_GUEST_BATCH,         /* POST /v1/guests:batch */
    API_GUEST_GET,           /* GET /v1/guests/{name} */
    API_GUEST_PATCH,         /* PATCH /v1/guests/{name} */
    API_GUEST_DELETE,        /* DELETE /v1/guests/{name} */
    API_GUEST_START,         /* POST /v1/guests/{name}/start */
    API_GUEST_STOP,          /* POST /v1/guests/{name}/stop */
    API_GUEST_RESTART,       /* POST /v1/guests/{name}/restart */
    API_GUEST_EXEC,          /* POST /v1/guests/{name}/exec */
    API_GUEST_USAGE,         /* GET /v1/guests/{name}/usage */
    API_GUEST_CONSOLE,       /* GET /v1/guests/{name}/console */
    API_GUEST_TRAFFIC,       /* GET /v1/guests/{name}/traffic */
    API_GUEST_TRAFFIC_RESET, /* POST /v1/guests/{name}/traffic/reset */
    API_POOLS_LIST,          /* GET /v1/pools */
    API_POOL_CREATE,         /* POST /v1/pools */
    API_POOL_DELETE,         /* DELETE /v1/pools/{name} */
    API_GUEST_IP_ADD,        /* POST /v1/guests/{name}/ips */
    API_GUEST_IP_DEL,        /* DELETE /v1/guests/{name}/ips/{addr} */
    API_NODE_ROUTES,         /* GET /v1/nodes/{name}/routes */
    API_OPERATIONS_LIST,     /* GET /v1/operations */
    API_OPERATION_GET,       /* GET /v1/operations/{id} */
    API_OPERATION_CANCEL,    /* DELETE /v1/operations/{id} */
    API_GUEST_MOVE,          /* POST /v1/guests/{name}/move */
    API_NODE_DRAIN,          /* POST /v1/nodes/{name}/drain */
    API_GUEST_EXPORT,        /* POST /v1/guests/{name}/export */
    API_GUEST_IMPORT,        /* POST /v1/guests:import */
    API_ARCHIVE_CREATE,      /* POST /v1/archives */
    API_ARCHIVE_GET,         /* GET /v1/archives/{id} */
    API_ARCHIVE_PUT,         /* POST /v1/archives/{id} */
    API_ARCHIVE_DELETE,      /* DELETE /v1/archives/{id} */
    API_TOKENS_LIST,         /* GET /v1/tokens */
    API_TOKEN_CREATE,        /* POST /v1/tokens */
    API_TOKEN_DELETE,        /* DELETE /v1/tokens/{id} */
    API_PROJECTS_LIST,       /* GET /v1/projects */
    API_PROJECT_CREATE,      /* POST /v1/projects */
    API_PROJECT_GET,         /* GET /v1/projects/{name} */
    API_PROJECT_PATCH,       /* PATCH /v1/projects/{name} */
    API_PROJECT_DELETE,      /* DELETE /v1/projects/{name} */
    API_GUEST_SHELL,         /* GET /v1/guests/{name}/shell (WebSocket) */
    API_TEMPLATES_LIST,      /* GET /v1/templates */
    API_TEMPLATE_ADD,        /* POST /v1/templates */
    API_TEMPLATE_DELETE,     /* DELETE /v1/templates/{name} */
    API_TEMPLATE_DISTRIBUTE, /* POST /v1/templates/{name}/distribute */
    API_GUEST_REBUILD,       /* POST /v1/guests/{name}/rebuild */
    API_NODE_ORPHANS,        /* GET /v1/nodes/{name}/orphans */
    API_ORPHAN_ADOPT,        /* POST /v1/nodes/{name}/orphans/{id}/adopt */
    API_ORPHAN_DESTROY,      /* DELETE /v1/nodes/{name}/orphans/{id} */
    API_EVENTS,              /* GET /v1/events */
    API_USAGE_TRAFFIC,       /* GET /v1/usage/traffic */
    API_METRICS,             /* GET /metrics */
    API_NODE_REVOKE,         /* POST /v1/nodes/{name}/revoke */
    API_JOIN_TOKEN_CREATE,   /* POST /v1/join-tokens */
    API_JOIN_TOKENS_LIST,    /* GET /v1/join-tokens */
    API__ROUTE_MAX,
};

/* What a query parameter's value may be (api_param_check). Every value is
 * at least one byte: "?force" and "?force=" are refused like "?force=maybe". */
enum api_param_kind {
    API_P_TEXT, /* text of 1 to max bytes, read by the handler (a time, a JSON array) */
    API_P_NAME, /* a name (name_is_valid) */
    API_P_UUID, /* an id (spec_is_uuid) */
    API_P_INT,  /* a decimal integer from min to max, no sign or spaces */
    API_P_ENUM, /* one of values ("a|b|c") */
    API_P_LIST, /* 1 to max of values ("a|b|c"), comma-separated */
    API_P_TERM, /* a terminal's name, as TERM (msg_term_is_valid, proto/msg.h) */
};

/* The query parameters a route may take: the edge keeps a bit per
 * parameter in a uint64_t (http_edge.c); api_test.c holds every route's
 * table to it. */
#define API_PARAMS_MAX 64

/* One query parameter a route takes. A route's parameters are one array in
 * api.c (at most API_PARAMS_MAX), ended by a row
 * without a name; tests/contract/spec_check.py reads
 * these arrays and holds them equal to the query parameters of
 * docs/openapi.yaml. */
struct api_param {
    const char *name;         /* exact, lower case */
    enum api_param_kind kind; /* what its value may be */
    const char *values;       /* API_P_ENUM, API_P_LIST: the values, "|" between; else NULL */
    uint64_t min;             /* API_P_INT: the least value */
    uint64_t max;             /* API_P_INT: the largest; TEXT: bytes; LIST: items */
};

struct http_req;
struct api_match;
typedef struct master master_t;
/* Answers one request of its route (http_*.c), on the master's loop thread. */
typedef void (*api_handler)(master_t *m, struct http_req *req, const struct api_match *am);

struct api_match {
    enum api_route route;           /* the route */
    api_handler handler;            /* its handler */
    unsigned roles;                 /* AUTH_ROLE_BIT of the roles that may use it */
    bool public;                    /* answered without authentication (health) */
    char name[NAME_MAX_LEN + 1];    /* the {name} path segment, "" when none */
    char arg[NETADDR_STRLEN];       /* the {addr} path segment (not checked), "" when none */
    const struct api_param *params; /* the query parameters it takes, NULL when none */
    struct caller caller;           /* who asks (filled by the edge after matching) */
};

/* Matches a request. Returns 0 with out filled; -ENOENT when no route has
 * this path, or its {name} is not a valid name, or its {addr} is empty or
 * longer than an address can be (404); -EOPNOTSUPP when the path exists but
 * not with this method (405), with the methods it has in allow ("GET,
 * POST") when allow is not NULL. */
int api_route(const char *method, const char *path, struct api_match *out, char *allow,
              size_t allow_len);
/* The route's name for logs ("guest.create"). */
const char *api_route_name(enum api_route r);
/* Its path template ("/v1/guests/{name}"). */
const char *api_route_pattern(enum api_route r);
/* The query parameters it takes (ended by a row without a name), NULL
 * when none or when r is no route. */
const struct api_param *api_route_params(enum api_route r);
/* The parameter named name of params (NULL-safe), NULL when it has none. */
const struct api_param *api_param_find(const struct api_param *params, const char *name);
/* Whether value (NULL: the parameter came without "=") is one p takes;
 * -EINVAL when not, with why (n bytes) saying what it takes. */
int api_param_check(const struct api_param *p, const char *value, char *why, size_t n);
/* "a, b and c": the names of params (n bytes), "none" when there are none. */
void api_param_names(const struct api_param *params, char *buf, size_t n);

struct api_error {
    unsigned status;  /* HTTP status */
    const char *code; /* the error code of the contract, a static string */
};
/* The one table from -errno to status and code (sign ignored):
 *   EINVAL, E2BIG, EADDRNOTAVAIL, EBADMSG, EDOM -> 400 bad_request
 *   ENOKEY, EKEYREJECTED, EKEYEXPIRED -> 401 unauthorized (no, unknown or
 *     expired token)
 *   EACCES -> 403 forbidden (the caller's role may not do it)
 *   ENOENT -> 404 not_found
 *   EEXIST, EADDRINUSE, EBUSY, ESTALE, EALREADY, EPERM, ENOLCK -> 409 conflict
 *   EDQUOT -> 409 quota_exceeded (a project's quota; the field names it)
 *   EPROTOTYPE -> 415 unsupported_media_type (a body that is not JSON)
 *   EXFULL -> 422 unplaceable (no node can take it)
 *   ENOSPC -> 507 insufficient_storage (the master's store is full)
 *   ETIMEDOUT -> 504 unavailable
 *   EHOSTUNREACH, ENOTCONN, EAGAIN, EIO, EROFS, ESHUTDOWN, ECANCELED,
 *   anything else -> 503 unavailable */
void api_error_from_errno(int err, struct api_error *out);
/* A node's nack code: bad_request -> 400; conflict, stale, locked, private,
 * no_space, unsupported, not_found -> 409 conflict; busy, internal and the
 * rest -> 503 unavailable. */
void api_error_from_nack(enum msg_error code, struct api_error *out);
/* {"error":{"code":code,"message":message[,"field":field]}} */
json_t *api_error_json(const char *code, const char *field, const char *message);

/* RFC 3339 UTC with milliseconds ("2026-11-22T19:46:24.123Z") of a wall
 * clock time in ms; "" for 0. */
void api_time_format(uint64_t ms, char *buf, size_t n);

/* A failed placement as the contract's Placement object: filters renamed to
 * the API's names (ready, cordoned, pinned, constraint, group, cpus, memory,
 * disk, max_guests, addresses), with a reason for the near miss. pin_unknown
 * is set when the pinned node does not exist (all nodes count as rejected by
 * "pinned"). */
json_t *api_placement_json(const struct sched_result *r, bool pin_unknown, const char *pin);
/* The API's name of a scheduler filter. */
const char *api_filter_name(enum sched_filter f);

/* A guest: the spec's fields (spec_to_json) plus project, node, state,
 * generation, applied_generation, desired, group, deleting, message,
 * created, updated; node, group and message are null when not set. */
json_t *api_guest_json(const struct db_guest *g, const struct guest_spec *spec);
/* The same from the spec's tree o (spec_to_json's; taken and returned). */
json_t *api_guest_json_onto(json_t *o, const struct db_guest *g);
/* A node; info (allocations from sched) may be NULL (then allocated,
 * guests and addresses are 0); orphans are included
 * when with_orphans (always as an array). */
json_t *api_node_json(const struct registry_node *n, const struct sched_node_info *info,
                      bool with_orphans);
/* A pool; info may be NULL (allocated 0, size unknown). */
/* Adds "overcommit" (the ratios) and "usable" (capacity times them: what
 * the scheduler places against) to a node's JSON. */
void api_node_usable(json_t *node, double cpu, double memory, double disk);
json_t *api_pool_json(const struct db_pool *p, const struct ipam_pool_info *info);
/* The latest usage sample, as the contract's Usage. */
json_t *api_usage_json(const struct guest_usage *u);
/* A project with its quota and what its guests use (0 in a quota = null:
 * no limit); cpus in cores, memory and disk in bytes. */
json_t *api_project_json(const struct db_project *p, const struct db_quota *usage);
/* A token as listed (never its secret nor its hash). */
json_t *api_token_json(const struct db_token *t);
/* One bucket of usage history, as the contract's UsagePoint: time, samples,
 * and per metric {min, max, avg} for a gauge or {increase} for a counter. */
struct db_roll;
json_t *api_usage_point_json(const struct db_roll *r);

/* A console read, as the contract's Console: {total, dropped, data}. */
json_t *api_console_json(const struct msg_console_result *r);
/* An exec result, as the contract's ExecResult (exit_code null when signalled). */
json_t *api_exec_json(const struct msg_exec_result *r);
