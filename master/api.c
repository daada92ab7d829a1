#include "master/api.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#include "common/mem.h"
#include "common/units.h"
#include "master/db_usage.h"
#include "master/guests.h"
#include "master/http_handlers.h"
#include "proto/msg.h"
#include "proto/spec_json.h"

/* One row of the route table. A pattern is split in segments; "*" matches a
 * name. */
struct route_def {
    enum api_route route; /* what it is */
    const char *method;   /* HTTP method */
    const char *pattern;  /* the OpenAPI path template: {name} a name, any other {x} an argument */
    const char *name;     /* for logs */
    api_handler handler;  /* who answers it */
    unsigned roles;       /* who may use it (the guest domain narrows a tenant to its project) */
    const struct api_param *params; /* its query parameters, NULL for none */
};

/* The query parameters of each route that takes any (api.h, struct
 * api_param): the edge (http_edge.c) refuses a request with another name, a
 * name given twice or a value outside these, with a 400 naming the
 * parameter, before the handler runs. Handlers read what is left to them
 * (a time, a command, how parameters go together). tests/contract/
 * spec_check.py holds these arrays equal to docs/openapi.yaml's: keep one
 * parameter per line, with designated fields and literal values. */
static const struct api_param p_node_list[] = {
    {.name = "limit", .kind = API_P_INT, .min = 1, .max = 4294967295},
    {.name = "after", .kind = API_P_NAME},
    {.name = NULL},
};
static const struct api_param p_guest_list[] = {
    {.name = "node", .kind = API_P_NAME},
    {.name = "state",
     .kind = API_P_ENUM,
     .values = "pending|running|stopped|unknown|lost|orphan|error"},
    {.name = "label", .kind = API_P_TEXT, .max = 319},
    {.name = "project", .kind = API_P_NAME},
    {.name = "limit", .kind = API_P_INT, .min = 1, .max = 4294967295},
    {.name = "after", .kind = API_P_NAME},
    {.name = NULL},
};
static const struct api_param p_wait_running[] = {
    {.name = "wait", .kind = API_P_ENUM, .values = "running"},
    {.name = "timeout", .kind = API_P_INT, .min = 1, .max = 86400},
    {.name = NULL},
};
static const struct api_param p_wait_stopped[] = {
    {.name = "wait", .kind = API_P_ENUM, .values = "stopped"},
    {.name = "timeout", .kind = API_P_INT, .min = 1, .max = 86400},
    {.name = NULL},
};
static const struct api_param p_guest_delete[] = {
    {.name = "force", .kind = API_P_ENUM, .values = "true|false"},
    {.name = NULL},
};
static const struct api_param p_guest_usage[] = {
    {.name = "from", .kind = API_P_TEXT, .max = 64},
    {.name = "to", .kind = API_P_TEXT, .max = 64},
    {.name = "step", .kind = API_P_TEXT, .max = 64},
    {.name = NULL},
};
static const struct api_param p_guest_console[] = {
    {.name = "bytes", .kind = API_P_INT, .min = 1, .max = 1048576},
    {.name = NULL},
};
static const struct api_param p_guest_shell[] = {
    {.name = "command", .kind = API_P_TEXT, .max = 65536},
    {.name = "tty", .kind = API_P_ENUM, .values = "true|false|1|0"},
    {.name = "cols", .kind = API_P_INT, .min = 0, .max = 65535},
    {.name = "rows", .kind = API_P_INT, .min = 0, .max = 65535},
    {.name = "term", .kind = API_P_TERM},
    {.name = "console", .kind = API_P_ENUM, .values = "true|false"},
    {.name = NULL},
};
static const struct api_param p_operation_list[] = {
    {.name = "state", .kind = API_P_ENUM, .values = "running|done|failed|cancelled"},
    {.name = "guest", .kind = API_P_NAME},
    {.name = "parent", .kind = API_P_UUID},
    {.name = "limit", .kind = API_P_INT, .min = 1, .max = 4294967295},
    {.name = "after", .kind = API_P_UUID},
    {.name = NULL},
};
static const struct api_param p_archive_get[] = {
    {.name = "offset", .kind = API_P_INT, .min = 0, .max = 9223372036854775807},
    {.name = NULL},
};
static const struct api_param p_usage_traffic[] = {
    {.name = "period", .kind = API_P_ENUM, .values = "hour|day|month"},
    {.name = "from", .kind = API_P_TEXT, .max = 64},
    {.name = "to", .kind = API_P_TEXT, .max = 64},
    {.name = "guest", .kind = API_P_NAME},
    {.name = "project", .kind = API_P_NAME},
    {.name = "by", .kind = API_P_ENUM, .values = "guest|project"},
    {.name = NULL},
};
/* type: the event types of docs/api.md's catalogue (events.h), and the
 * prefixes that match a family of them. */
static const struct api_param p_events[] = {
    {.name = "after", .kind = API_P_INT, .min = 0, .max = 9223372036854775807},
    {.name = "type",
     .kind = API_P_LIST,
     .values = "guest.*|guest.orphan.*|node.*|operation.*|guest.created|guest.placed|"
               "guest.state|guest.deleted|guest.address|guest.oom|guest.limit|guest.exited|"
               "guest.drift|guest.moved|guest.adopted|guest.orphan|guest.orphan.gone|"
               "guest.orphan.conflict|node.state|node.token|node.joined|node.revoked|"
               "operation.step",
     .max = 16},
    {.name = "guest", .kind = API_P_NAME},
    {.name = "node", .kind = API_P_NAME},
    {.name = "project", .kind = API_P_NAME},
    {.name = "follow", .kind = API_P_ENUM, .values = "true|false"},
    {.name = "limit", .kind = API_P_INT, .min = 1, .max = 5000},
    {.name = "tail", .kind = API_P_INT, .min = 1, .max = 5000},
    {.name = NULL},
};
static const struct api_param p_metrics[] = {
    {.name = "node", .kind = API_P_NAME},
    {.name = "project", .kind = API_P_NAME},
    {.name = NULL},
};

#define ANY   AUTH_ANY
#define STAFF AUTH_STAFF
#define ADMIN AUTH_ADMIN_ONLY
#define OPEN  0 /* no authentication */

static const struct route_def routes[] = {
    {API_HEALTH, "GET", "/healthz", "health", h_health, OPEN, NULL},
    {API_NODES_LIST, "GET", "/v1/nodes", "node.list", h_node_list, STAFF, p_node_list},
    {API_NODE_GET, "GET", "/v1/nodes/{name}", "node.get", h_node_get, STAFF, NULL},
    {API_NODE_CORDON, "POST", "/v1/nodes/{name}/cordon", "node.cordon", h_node_cordon, STAFF, NULL},
    {API_NODE_UNCORDON, "POST", "/v1/nodes/{name}/uncordon", "node.uncordon", h_node_uncordon,
     STAFF, NULL},
    {API_GUESTS_LIST, "GET", "/v1/guests", "guest.list", h_guest_list, ANY, p_guest_list},
    {API_GUEST_CREATE, "POST", "/v1/guests", "guest.create", h_guest_create, ANY, p_wait_running},
    {API_GUEST_BATCH, "POST", "/v1/guests:batch", "guest.batch", h_guest_batch, ANY, NULL},
    {API_GUEST_GET, "GET", "/v1/guests/{name}", "guest.get", h_guest_get, ANY, NULL},
    {API_GUEST_PATCH, "PATCH", "/v1/guests/{name}", "guest.patch", h_guest_patch, ANY, NULL},
    {API_GUEST_DELETE, "DELETE", "/v1/guests/{name}", "guest.delete", h_guest_delete, ANY,
     p_guest_delete},
    {API_GUEST_START, "POST", "/v1/guests/{name}/start", "guest.start", h_guest_start, ANY,
     p_wait_running},
    {API_GUEST_STOP, "POST", "/v1/guests/{name}/stop", "guest.stop", h_guest_stop, ANY,
     p_wait_stopped},
    {API_GUEST_RESTART, "POST", "/v1/guests/{name}/restart", "guest.restart", h_guest_restart, ANY,
     p_wait_running},
    {API_GUEST_EXEC, "POST", "/v1/guests/{name}/exec", "guest.exec", h_guest_exec, ANY, NULL},
    {API_GUEST_CONSOLE, "GET", "/v1/guests/{name}/console", "guest.console", h_guest_console, ANY,
     p_guest_console},
    {API_GUEST_USAGE, "GET", "/v1/guests/{name}/usage", "guest.usage", h_guest_usage, ANY,
     p_guest_usage},
    {API_GUEST_SHELL, "GET", "/v1/guests/{name}/shell", "guest.shell", h_guest_shell, ANY,
     p_guest_shell},
    {API_TEMPLATES_LIST, "GET", "/v1/templates", "template.list", h_template_list, ANY, NULL},
    {API_TEMPLATE_ADD, "POST", "/v1/templates", "template.add", h_template_add, ADMIN, NULL},
    {API_TEMPLATE_DELETE, "DELETE", "/v1/templates/{name}", "template.delete", h_template_delete,
     ADMIN, NULL},
    {API_TEMPLATE_DISTRIBUTE, "POST", "/v1/templates/{name}/distribute", "template.distribute",
     h_template_distribute, ADMIN, NULL},
    {API_GUEST_REBUILD, "POST", "/v1/guests/{name}/rebuild", "guest.rebuild", h_guest_rebuild, ANY,
     NULL},
    {API_GUEST_TRAFFIC, "GET", "/v1/guests/{name}/traffic", "guest.traffic", h_guest_traffic, ANY,
     NULL},
    {API_GUEST_TRAFFIC_RESET, "POST", "/v1/guests/{name}/traffic/reset", "guest.traffic.reset",
     h_guest_traffic_reset, ANY, NULL},
    {API_POOLS_LIST, "GET", "/v1/pools", "pool.list", h_pool_list, STAFF, NULL},
    {API_POOL_CREATE, "POST", "/v1/pools", "pool.create", h_pool_create, STAFF, NULL},
    {API_POOL_DELETE, "DELETE", "/v1/pools/{name}", "pool.delete", h_pool_delete, STAFF, NULL},
    {API_GUEST_IP_ADD, "POST", "/v1/guests/{name}/ips", "guest.ip_add", h_guest_ip_add, ANY, NULL},
    {API_GUEST_IP_DEL, "DELETE", "/v1/guests/{name}/ips/{addr}", "guest.ip_del", h_guest_ip_del,
     ANY, NULL},
    {API_NODE_ROUTES, "GET", "/v1/nodes/{name}/routes", "node.routes", h_node_routes, STAFF, NULL},
    {API_TOKENS_LIST, "GET", "/v1/tokens", "token.list", h_token_list, ADMIN, NULL},
    {API_TOKEN_CREATE, "POST", "/v1/tokens", "token.create", h_token_create, ADMIN, NULL},
    {API_TOKEN_DELETE, "DELETE", "/v1/tokens/{name}", "token.delete", h_token_delete, ADMIN, NULL},
    {API_PROJECTS_LIST, "GET", "/v1/projects", "project.list", h_project_list, ANY, NULL},
    {API_PROJECT_CREATE, "POST", "/v1/projects", "project.create", h_project_create, ADMIN, NULL},
    {API_PROJECT_GET, "GET", "/v1/projects/{name}", "project.get", h_project_get, ANY, NULL},
    {API_PROJECT_PATCH, "PATCH", "/v1/projects/{name}", "project.patch", h_project_patch, ADMIN,
     NULL},
    {API_PROJECT_DELETE, "DELETE", "/v1/projects/{name}", "project.delete", h_project_delete, ADMIN,
     NULL},
    {API_NODE_ORPHANS, "GET", "/v1/nodes/{name}/orphans", "node.orphans", h_node_orphans, STAFF,
     NULL},
    {API_ORPHAN_ADOPT, "POST", "/v1/nodes/{name}/orphans/{id}/adopt", "orphan.adopt",
     h_orphan_adopt, STAFF, NULL},
    {API_ORPHAN_DESTROY, "DELETE", "/v1/nodes/{name}/orphans/{id}", "orphan.destroy",
     h_orphan_destroy, STAFF, NULL},
    {API_OPERATIONS_LIST, "GET", "/v1/operations", "operation.list", h_operations_list, STAFF,
     p_operation_list},
    {API_OPERATION_GET, "GET", "/v1/operations/{name}", "operation.get", h_operation_get, STAFF,
     NULL},
    {API_OPERATION_CANCEL, "DELETE", "/v1/operations/{name}", "operation.cancel",
     h_operation_cancel, STAFF, NULL},
    {API_GUEST_MOVE, "POST", "/v1/guests/{name}/move", "guest.move", h_guest_move, STAFF, NULL},
    {API_NODE_DRAIN, "POST", "/v1/nodes/{name}/drain", "node.drain", h_node_drain, STAFF, NULL},
    {API_GUEST_EXPORT, "POST", "/v1/guests/{name}/export", "guest.export", h_guest_export, STAFF,
     NULL},
    {API_GUEST_IMPORT, "POST", "/v1/guests:import", "guest.import", h_guest_import, STAFF, NULL},
    {API_ARCHIVE_CREATE, "POST", "/v1/archives", "archive.create", h_archive_create, STAFF, NULL},
    {API_ARCHIVE_GET, "GET", "/v1/archives/{name}", "archive.get", h_archive_get, STAFF,
     p_archive_get},
    {API_ARCHIVE_PUT, "POST", "/v1/archives/{name}", "archive.put", h_archive_put, STAFF, NULL},
    {API_ARCHIVE_DELETE, "DELETE", "/v1/archives/{name}", "archive.delete", h_archive_delete, STAFF,
     NULL},
    {API_EVENTS, "GET", "/v1/events", "event.list", h_events, ANY, p_events},
    {API_USAGE_TRAFFIC, "GET", "/v1/usage/traffic", "usage.traffic", h_usage_traffic, STAFF,
     p_usage_traffic},
    {API_METRICS, "GET", "/metrics", "metrics", h_metrics, STAFF, p_metrics},
    /* The node link's trust, admin only: a join token lets a host become a
     * node, revoke cuts one off. */
    {API_NODE_REVOKE, "POST", "/v1/nodes/{name}/revoke", "node.revoke", h_node_revoke, ADMIN, NULL},
    {API_JOIN_TOKEN_CREATE, "POST", "/v1/join-tokens", "join_token.create", h_join_token_create,
     ADMIN, NULL},
    {API_JOIN_TOKENS_LIST, "GET", "/v1/join-tokens", "join_token.list", h_join_token_list, ADMIN,
     NULL},
};

/* Matches path against pattern, an OpenAPI path template: the "{name}"
 * segment must be a valid name and is copied to name; any other "{...}"
 * segment (an address, an id) is copied to arg, only its length checked (its
 * syntax is the handler's business). Returns 1 on a match, 0 on none, -1 when
 * only the name is not a valid name. */
static int
match(const char *pattern, const char *path, char *name, size_t n, char *arg, size_t argn)
{
    const char *p = pattern, *s = path;
    bool bad_name = false;

    while (*p && *s) {
        if (*p != '{') {
            if (*p != *s)
                return 0;
            p++;
            s++;
            continue;
        }
        const char *close = strchr(p, '}');
        const char *end = strchr(s, '/');
        size_t len = end ? (size_t)(end - s) : strlen(s);
        bool is_name = close && (size_t)(close - p) == 5 && strncmp(p, "{name}", 6) == 0;
        if (!close || len == 0)
            return 0;
        if (!is_name) {
            if (len >= argn)
                return 0;
            memcpy(arg, s, len);
            arg[len] = '\0';
        } else if (len >= n) {
            bad_name = true;
            name[0] = '\0';
        } else {
            memcpy(name, s, len);
            name[len] = '\0';
            bad_name |= !name_is_valid(name);
        }
        s += len;
        p = close + 1;
    }
    /* A trailing slash is not part of any route. */
    if (*p || *s)
        return 0;
    return bad_name ? -1 : 1;
}

int
api_route(const char *method, const char *path, struct api_match *out, char *allow,
          size_t allow_len)
{
    bool path_known = false, bad_name = false;
    size_t at = 0;

    if (allow && allow_len)
        allow[0] = '\0';
    *out = (struct api_match){.route = API_NONE};
    for (size_t i = 0; i < ARRAY_SIZE(routes); i++) {
        char name[NAME_MAX_LEN + 1] = "", arg[NETADDR_STRLEN] = "";
        int m = match(routes[i].pattern, path, name, sizeof(name), arg, sizeof(arg));
        if (m == 0)
            continue;
        if (m < 0) {
            bad_name = true;
            continue;
        }
        path_known = true;
        if (strcmp(routes[i].method, method) != 0) {
            if (allow && at < allow_len) {
                int n =
                    snprintf(allow + at, allow_len - at, "%s%s", at ? ", " : "", routes[i].method);
                at += n > 0 ? (size_t)n : 0;
            }
            continue;
        }
        out->route = routes[i].route;
        out->handler = routes[i].handler;
        out->roles = routes[i].roles;
        out->public = routes[i].roles == OPEN;
        memcpy(out->name, name, sizeof(out->name));
        memcpy(out->arg, arg, sizeof(out->arg));
        out->params = routes[i].params;
        return 0;
    }
    if (path_known)
        return -EOPNOTSUPP;
    (void)bad_name;
    return -ENOENT;
}

const char *
api_route_name(enum api_route r)
{
    for (size_t i = 0; i < ARRAY_SIZE(routes); i++)
        if (routes[i].route == r)
            return routes[i].name;
    return "none";
}

const struct api_param *
api_param_find(const struct api_param *params, const char *name)
{
    for (const struct api_param *p = params; p && p->name; p++)
        if (strcmp(p->name, name) == 0)
            return p;
    return NULL;
}

/* Whether s (len bytes) is one of values ("a|b|c"). */
static bool
value_in(const char *values, const char *s, size_t len)
{
    for (const char *v = values; *v;) {
        size_t n = strcspn(v, "|");
        if (n == len && strncmp(v, s, n) == 0)
            return true;
        v += n + (v[n] == '|');
    }
    return false;
}

/* "a, b or c" of values ("a|b|c") into buf. */
static void
values_text(const char *values, char *buf, size_t n)
{
    size_t at = 0, left = strlen(values);

    buf[0] = '\0';
    for (const char *v = values; *v && at < n;) {
        size_t len = strcspn(v, "|");
        left -= len + (v[len] == '|');
        int w = snprintf(buf + at, n - at, "%s%.*s",
                         at == 0     ? ""
                         : left == 0 ? " or "
                                     : ", ",
                         (int)len, v);
        at += w > 0 ? (size_t)w : 0;
        v += len + (v[len] == '|');
    }
}

int
api_param_check(const struct api_param *p, const char *value, char *why, size_t n)
{
    char vals[512];
    size_t len = value ? strlen(value) : 0;

    if (len == 0) {
        snprintf(why, n, "%s needs a value (%s=...)", p->name, p->name);
        return -EINVAL;
    }
    switch (p->kind) {
    case API_P_TEXT:
        if (len <= p->max)
            return 0;
        snprintf(why, n, "%s is at most %llu bytes", p->name, (unsigned long long)p->max);
        return -EINVAL;
    case API_P_NAME:
        if (name_is_valid(value))
            return 0;
        snprintf(why, n, "%s must be a name (1 to %d lowercase letters, digits and hyphens)",
                 p->name, NAME_MAX_LEN);
        return -EINVAL;
    case API_P_TERM:
        /* The node's own rule: a value it would refuse is refused here,
         * before a session is asked of it. */
        if (msg_term_is_valid(value))
            return 0;
        snprintf(why, n, "%s must be a terminal name (1 to %d letters, digits and -_.+)", p->name,
                 MSG_TERM_MAX);
        return -EINVAL;
    case API_P_UUID:
        if (spec_is_uuid(value))
            return 0;
        snprintf(why, n, "%s must be an id (a UUID)", p->name);
        return -EINVAL;
    case API_P_INT: {
        char *end;
        errno = 0;
        unsigned long long v = strtoull(value, &end, 10);
        if (*value >= '0' && *value <= '9' && !errno && !*end && v >= p->min && v <= p->max)
            return 0;
        snprintf(why, n, "%s must be an integer from %llu to %llu", p->name,
                 (unsigned long long)p->min, (unsigned long long)p->max);
        return -EINVAL;
    }
    case API_P_ENUM:
        if (value_in(p->values, value, len))
            return 0;
        values_text(p->values, vals, sizeof(vals));
        snprintf(why, n, "%s must be %s", p->name, vals);
        return -EINVAL;
    case API_P_LIST: {
        uint64_t items = 0;
        for (const char *s = value;; s++) {
            size_t l = strcspn(s, ",");
            if (!value_in(p->values, s, l) || ++items > p->max)
                break;
            s += l;
            if (!*s)
                return 0;
        }
        values_text(p->values, vals, sizeof(vals));
        snprintf(why, n, "%s must be a comma-separated list of 1 to %llu of %s", p->name,
                 (unsigned long long)p->max, vals);
        return -EINVAL;
    }
    }
    snprintf(why, n, "%s is not understood", p->name);
    return -EINVAL;
}

void
api_param_names(const struct api_param *params, char *buf, size_t n)
{
    size_t at = 0;

    snprintf(buf, n, "none");
    for (const struct api_param *p = params; p && p->name && at < n; p++) {
        int w = snprintf(buf + at, n - at, "%s%s", at ? ", " : "", p->name);
        at += w > 0 ? (size_t)w : 0;
    }
}

const struct api_param *
api_route_params(enum api_route r)
{
    for (size_t i = 0; i < ARRAY_SIZE(routes); i++)
        if (routes[i].route == r)
            return routes[i].params;
    return NULL;
}

const char *
api_route_pattern(enum api_route r)
{
    for (size_t i = 0; i < ARRAY_SIZE(routes); i++)
        if (routes[i].route == r)
            return routes[i].pattern;
    return "";
}

void
api_error_from_errno(int err, struct api_error *out)
{
    switch (abs(err)) {
    case EINVAL:
    case E2BIG:
    case EADDRNOTAVAIL:
    case EBADMSG:
    case EDOM:
        *out = (struct api_error){400, "bad_request"};
        break;
    case ENOKEY:
    case EKEYREJECTED:
    case EKEYEXPIRED:
        *out = (struct api_error){401, "unauthorized"};
        break;
    case EACCES:
        *out = (struct api_error){403, "forbidden"};
        break;
    case ENOENT:
        *out = (struct api_error){404, "not_found"};
        break;
    case EDQUOT:
        *out = (struct api_error){409, "quota_exceeded"};
        break;
    case EPROTOTYPE:
        *out = (struct api_error){415, "unsupported_media_type"};
        break;
    case EEXIST:
    case EADDRINUSE:
    case EBUSY:
    case ESTALE:
    case EALREADY:
    case EPERM:
    case ENOLCK:
        *out = (struct api_error){409, "conflict"};
        break;
    case EXFULL:
        *out = (struct api_error){422, "unplaceable"};
        break;
    case ENOSPC:
        *out = (struct api_error){507, "insufficient_storage"};
        break;
    case ETIMEDOUT:
        *out = (struct api_error){504, "unavailable"};
        break;
    default:
        *out = (struct api_error){503, "unavailable"};
        break;
    }
}

void
api_error_from_nack(enum msg_error code, struct api_error *out)
{
    switch (code) {
    case MSG_ERR_BAD_REQUEST:
        *out = (struct api_error){400, "bad_request"};
        break;
    case MSG_ERR_CONFLICT:
    case MSG_ERR_STALE:
    case MSG_ERR_LOCKED:
    case MSG_ERR_PRIVATE:
    case MSG_ERR_NO_SPACE:
    case MSG_ERR_UNSUPPORTED:
    case MSG_ERR_NOT_FOUND:
        *out = (struct api_error){409, "conflict"};
        break;
    default:
        *out = (struct api_error){503, "unavailable"};
        break;
    }
}

json_t *
api_error_json(const char *code, const char *field, const char *message)
{
    json_t *e = json_pack("{s:s, s:s}", "code", code, "message", message ? message : "");

    if (field)
        json_object_set_new(e, "field", json_string(field));
    return json_pack("{s:o}", "error", e);
}

void
api_time_format(uint64_t ms, char *buf, size_t n)
{
    struct tm tm;
    time_t t = (time_t)(ms / 1000);

    if (!ms || !gmtime_r(&t, &tm)) {
        snprintf(buf, n, "%s", "");
        return;
    }
    snprintf(buf, n, "%04d-%02d-%02dT%02d:%02d:%02d.%03uZ", tm.tm_year + 1900, tm.tm_mon + 1,
             tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, (unsigned)(ms % 1000));
}

static json_t *
time_json(uint64_t ms)
{
    char buf[40];

    if (!ms)
        return json_null();
    api_time_format(ms, buf, sizeof(buf));
    return json_string(buf);
}

const char *
api_filter_name(enum sched_filter f)
{
    static const char *const names[SCHED__F_MAX] = {
        [SCHED_F_STATE] = "ready",
        [SCHED_F_CORDONED] = "cordoned",
        [SCHED_F_CONSTRAINT] = "constraint",
        [SCHED_F_TEMPLATE] = "template",
        [SCHED_F_ANTI_AFFINITY] = "group",
        [SCHED_F_GUESTS] = "max_guests",
        [SCHED_F_CPU] = "cpus",
        [SCHED_F_MEMORY] = "memory",
        [SCHED_F_DISK] = "disk",
        [SCHED_F_ADDRS] = "addresses",
    };
    return (unsigned)f < SCHED__F_MAX ? names[f] : "unknown";
}

/* An amount of a resource in the API's units, for people: sizes as "12G",
 * CPU in cores, the rest as counts. */
static void
amount(enum sched_filter f, uint64_t v, char *buf, size_t n)
{
    if (f == SCHED_F_MEMORY || f == SCHED_F_DISK)
        units_format_size(v, buf, n);
    else if (f == SCHED_F_CPU)
        snprintf(buf, n, "%g cores", (double)v / 1000.0);
    else
        snprintf(buf, n, "%llu", (unsigned long long)v);
}

/* The same amount as a JSON number in the API's units: cores for cpus (the
 * scheduler counts millicores), bytes for memory and disk, counts for the
 * rest, as a node's capacity and a guest's limits are given. */
static json_t *
amount_json(enum sched_filter f, uint64_t v)
{
    if (f == SCHED_F_CPU)
        return json_real((double)v / 1000.0);
    return json_integer((json_int_t)v);
}

json_t *
api_placement_json(const struct sched_result *r, bool pin_unknown, const char *pin)
{
    json_t *filters = json_array();

    if (pin_unknown) {
        char reason[128];
        snprintf(reason, sizeof(reason), "no node named \"%s\"", pin ? pin : "");
        json_array_append_new(filters, json_pack("{s:s, s:I, s:s}", "filter", "pinned", "rejected",
                                                 (json_int_t)r->nodes_total, "reason", reason));
    }
    for (int f = 0; f < SCHED__F_MAX; f++) {
        if (!r->rejected[f])
            continue;
        json_t *o = json_pack("{s:s, s:I}", "filter", api_filter_name(f), "rejected",
                              (json_int_t)r->rejected[f]);
        if (r->near_miss.node[0] && r->near_miss.filter == (enum sched_filter)f) {
            char need[48], fr[48], reason[256];
            amount(r->near_miss.filter, r->near_miss.need, need, sizeof(need));
            amount(r->near_miss.filter, r->near_miss.free, fr, sizeof(fr));
            snprintf(reason, sizeof(reason), "needs %s, the most free is %s (node %s)", need, fr,
                     r->near_miss.node);
            json_object_set_new(o, "reason", json_string(reason));
        }
        json_array_append_new(filters, o);
    }
    json_t *o =
        json_pack("{s:s, s:I, s:I, s:I, s:o}", "algorithm", sched_algo_name(r->algo), "nodes_total",
                  (json_int_t)r->nodes_total, "nodes_evaluated", (json_int_t)r->nodes_evaluated,
                  "nodes_feasible", (json_int_t)r->nodes_feasible, "filters", filters);
    if (r->near_miss.node[0])
        json_object_set_new(o, "near_miss",
                            json_pack("{s:s, s:s, s:o, s:o}", "node", r->near_miss.node, "resource",
                                      api_filter_name(r->near_miss.filter), "need",
                                      amount_json(r->near_miss.filter, r->near_miss.need), "free",
                                      amount_json(r->near_miss.filter, r->near_miss.free)));
    return o;
}

json_t *
api_guest_json(const struct db_guest *g, const struct guest_spec *spec)
{
    return api_guest_json_onto(spec_to_json(spec), g);
}

json_t *
api_guest_json_onto(json_t *o, const struct db_guest *g)
{
    json_object_set_new(o, "id", json_string(g->id));
    json_object_set_new(o, "name", json_string(g->name));
    json_object_set_new(o, "project", json_string(g->project ? g->project : "default"));
    json_object_set_new(o, "node", g->node ? json_string(g->node) : json_null());
    json_object_set_new(o, "state", json_string(db_observed_to_string(g->observed)));
    json_object_set_new(o, "desired", json_string(db_desired_to_string(g->desired)));
    json_object_set_new(o, "generation", json_integer((json_int_t)g->generation));
    json_object_set_new(o, "applied_generation", json_integer((json_int_t)g->applied_generation));
    json_object_set_new(o, "group", g->group ? json_string(g->group) : json_null());
    json_object_set_new(o, "deleting", json_boolean(g->deleting));
    json_object_set_new(o, "message", g->message ? json_string(g->message) : json_null());
    json_object_set_new(o, "created", time_json(g->created_ms));
    json_object_set_new(o, "updated", time_json(g->updated_ms));
    guest_provision_view(o);
    return o;
}

static json_t *
resources_json(uint64_t cpu_millis, uint64_t memory, uint64_t disk, uint32_t max_guests)
{
    return json_pack("{s:f, s:I, s:I, s:I}", "cpus", (double)cpu_millis / 1000.0, "memory",
                     (json_int_t)memory, "disk", (json_int_t)disk, "max_guests",
                     (json_int_t)max_guests);
}

json_t *
api_node_json(const struct registry_node *n, const struct sched_node_info *info, bool with_orphans)
{
    json_t *labels = json_object();

    for (uint32_t i = 0; i < n->n_labels; i++)
        json_object_set_new(labels, n->labels[i].key, json_string(n->labels[i].value));
    json_t *o = json_pack(
        "{s:s, s:s, s:b, s:o, s:o, s:s, s:s, s:s, s:s, s:o}", "name", n->name, "state",
        db_node_state_to_string(n->state), "cordoned", n->cordoned, "labels", labels, "capacity",
        resources_json(n->cap.cpu, n->cap.memory, n->cap.disk, n->cap.max_guests), "kernel",
        n->kernel, "cgroup", n->cgroup, "backend", n->backend, "agent_version", n->agent_version,
        "last_seen", time_json(n->last_seen_real));
    if (info) {
        json_object_set_new(
            o, "allocated",
            resources_json(info->used.cpu, info->used.memory, info->used.disk, info->guests));
        json_object_set_new(o, "guests", json_integer(info->guests));
        json_object_set_new(o, "addresses", json_integer(info->used.addrs));
    } else {
        json_object_set_new(o, "allocated", resources_json(0, 0, 0, 0));
        json_object_set_new(o, "guests", json_integer(0));
        json_object_set_new(o, "addresses", json_integer(0));
    }
    json_t *templates = json_array();
    if (n->templates && n->templates[0]) {
        _cleanup_free_ char *list = xstrdup(n->templates);
        char *save = NULL;
        for (char *t = strtok_r(list, ",", &save); t; t = strtok_r(NULL, ",", &save))
            json_array_append_new(templates, json_string(t));
    }
    json_object_set_new(o, "templates", templates);
    /* null: not known (an older node, or none has said hello). */
    json_object_set_new(o, "leftovers",
                        n->has_leftovers ? json_integer(n->leftovers) : json_null());
    if (with_orphans)
        json_object_set_new(o, "orphans", n->orphans ? json_copy(n->orphans) : json_array());
    else
        json_object_set_new(o, "orphan_count",
                            json_integer(n->orphans ? (json_int_t)json_array_size(n->orphans) : 0));
    return o;
}

void
api_node_usable(json_t *node, double cpu, double memory, double disk)
{
    json_t *cap = json_object_get(node, "capacity");
    double c = json_number_value(json_object_get(cap, "cpus"));
    json_int_t mem = json_integer_value(json_object_get(cap, "memory"));
    json_int_t dsk = json_integer_value(json_object_get(cap, "disk"));

    cpu = cpu >= 1 ? cpu : 1;
    memory = memory >= 1 ? memory : 1;
    disk = disk >= 1 ? disk : 1;
    json_object_set_new(node, "overcommit",
                        json_pack("{s:f, s:f, s:f}", "cpus", cpu, "memory", memory, "disk", disk));
    json_object_set_new(node, "usable",
                        json_pack("{s:f, s:I, s:I}", "cpus", c * cpu, "memory",
                                  (json_int_t)((double)mem * memory), "disk",
                                  (json_int_t)((double)dsk * disk)));
}

json_t *
api_pool_json(const struct db_pool *p, const struct ipam_pool_info *info)
{
    json_t *sel = json_loads(p->selector ? p->selector : "{}", 0, NULL);
    json_t *o;

    if (!json_is_object(sel)) {
        json_decref(sel);
        sel = json_object();
    }
    o = json_pack("{s:s, s:s, s:s, s:o}", "name", p->name, "cidr", p->cidr, "family",
                  p->family == AF_INET6 ? "ipv6" : "ipv4", "selector", sel);
    json_object_set_new(o, "gateway", p->gateway ? json_string(p->gateway) : json_null());
    json_object_set_new(o, "allocated",
                        json_integer(info ? (json_int_t)info->allocated : (json_int_t)0));
    if (info && info->usable > (1ULL << 53)) {
        char buf[32];
        snprintf(buf, sizeof(buf), "%llu", (unsigned long long)info->usable);
        json_object_set_new(o, "size", json_string(buf));
    } else {
        json_object_set_new(o, "size", json_integer(info ? (json_int_t)info->usable : 0));
    }
    json_object_set_new(o, "created", time_json(p->created_ms));
    return o;
}

json_t *
api_usage_json(const struct guest_usage *u)
{
    json_t *o = usage_to_json(u);

    json_object_del(o, "time_ms");
    json_object_set_new(o, "time", time_json(u->time_ms));
    return o;
}

static json_t *
limit_json(uint64_t v)
{
    return v ? json_integer((json_int_t)v) : json_null();
}

static json_t *
quota_json(const struct db_quota *q, bool nulls)
{
    json_t *cpus = q->cpu || !nulls ? json_real((double)q->cpu / 1000.0) : json_null();

    return json_pack("{s:o, s:o, s:o, s:o, s:o}", "guests",
                     nulls ? limit_json(q->guests) : json_integer((json_int_t)q->guests), "cpus",
                     cpus, "memory",
                     nulls ? limit_json(q->memory) : json_integer((json_int_t)q->memory), "disk",
                     nulls ? limit_json(q->disk) : json_integer((json_int_t)q->disk), "addresses",
                     nulls ? limit_json(q->addrs) : json_integer((json_int_t)q->addrs));
}

json_t *
api_project_json(const struct db_project *p, const struct db_quota *usage)
{
    return json_pack("{s:s, s:o, s:o, s:o}", "name", p->name, "quota", quota_json(&p->quota, true),
                     "usage", quota_json(usage, false), "created", time_json(p->created_ms));
}

json_t *
api_token_json(const struct db_token *t)
{
    json_t *o = json_pack("{s:s, s:s, s:o, s:o}", "id", t->id, "role", t->role, "created",
                          time_json(t->created_ms), "expires", time_json(t->expires_ms));

    json_object_set_new(o, "project", t->project ? json_string(t->project) : json_null());
    json_object_set_new(o, "description",
                        t->description ? json_string(t->description) : json_null());
    return o;
}

json_t *
api_usage_point_json(const struct db_roll *r)
{
    json_t *o = json_pack("{s:o, s:I}", "time", time_json(r->time_ms), "samples", (json_int_t)r->n);

    for (unsigned i = 0; i < USAGE_N_METRICS; i++) {
        json_t *v;
        if (db_usage_is_counter(i))
            v = json_pack("{s:I}", "increase", (json_int_t)r->sum[i]);
        else
            v = json_pack("{s:I, s:I, s:I}", "min", (json_int_t)r->min[i], "max",
                          (json_int_t)r->max[i], "avg", (json_int_t)(r->n ? r->sum[i] / r->n : 0));
        json_object_set_new(o, db_usage_metric_name(i), v);
    }
    return o;
}

/* Output as a JSON string; bytes that are not UTF-8 become '?'. */
static json_t *
output_json(const char *buf, uint32_t len)
{
    json_t *s = json_stringn(buf ? buf : "", len);

    if (s)
        return s;
    _cleanup_free_ char *copy = xmalloc(len + 1);
    for (uint32_t i = 0; i < len; i++)
        copy[i] = (unsigned char)buf[i] < 0x80 && buf[i] ? buf[i] : '?';
    return json_stringn(copy, len);
}

json_t *
api_console_json(const struct msg_console_result *r)
{
    return json_pack("{s:I, s:I, s:o}", "total", (json_int_t)r->total, "dropped",
                     (json_int_t)(r->total - r->len), "data", output_json(r->data, r->len));
}

json_t *
api_exec_json(const struct msg_exec_result *r)
{
    json_t *o = json_pack("{s:I, s:b, s:b}", "signal", (json_int_t)r->signal, "timed_out",
                          r->timed_out, "truncated", r->truncated);

    json_object_set_new(o, "exit_code",
                        r->signal || r->exit_code < 0 ? json_null() : json_integer(r->exit_code));
    json_object_set_new(o, "stdout", output_json(r->out, r->out_len));
    json_object_set_new(o, "stderr", output_json(r->err, r->err_len));
    return o;
}
