/* HTTP handlers: API tokens (admin only; the route table says so). */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "common/mem.h"
#include "common/units.h"
#include "master/api.h"
#include "master/auth.h"
#include "master/events_stream.h"
#include "master/guests.h"
#include "master/http_edge.h"
#include "master/http_handlers.h"
#include "master/idem.h"
#include "master/shell.h"

static int
list_token(void *userdata, const struct db_token *t)
{
    json_array_append_new(userdata, api_token_json(t));
    return 0;
}

void
h_token_list(master_t *m, struct http_req *req, const struct api_match *am)
{
    json_t *items = json_array();
    int r = db_token_list(m->db, list_token, items);

    if (r < 0) {
        json_decref(items);
        http_reply_errno(req, r, NULL, "cannot list tokens");
        return;
    }
    httpd_respond(req, 200, json_pack("{s:o}", "tokens", items));
}

/* {"role":R, "project":P, "ttl":D, "description":S} */
static int
parse_token(const json_t *b, struct auth_token_req *rq, struct guest_err *e)
{
    const char *k;
    json_t *v;

    *rq = (struct auth_token_req){0};
    if (!json_is_object(b))
        return guest_fail(e, -EINVAL, "(root)", "the body must be a JSON object");
    json_object_foreach((json_t *)b, k, v)
    {
        if (strcmp(k, "role") && strcmp(k, "project") && strcmp(k, "ttl") &&
            strcmp(k, "description"))
            return guest_fail(e, -EINVAL, k, "unknown member %s", k);
    }
    int role = auth_role_from_string(json_string_value(json_object_get(b, "role")));
    if (role < 0)
        return guest_fail(e, -EINVAL, "role", "role must be admin, operator or tenant");
    rq->role = (enum auth_role)role;
    if ((v = json_object_get(b, "project")) && !json_is_null(v)) {
        if (!http_json_is_name(v))
            return guest_fail(e, -EINVAL, "project", "project must be a name");
        rq->project = json_string_value(v);
    }
    if ((v = json_object_get(b, "ttl")) && !json_is_null(v) && http_json_ttl(v, &rq->ttl_s) < 0)
        return guest_fail(e, -EINVAL, "ttl",
                          "ttl must be seconds or a number with s, m, h or d (\"12h\")");
    if ((v = json_object_get(b, "description")) && !json_is_null(v)) {
        if (!json_is_string(v))
            return guest_fail(e, -EINVAL, "description", "description must be a string");
        rq->description = json_string_value(v);
    }
    return 0;
}

void
h_token_create(master_t *m, struct http_req *req, const struct api_match *am)
{
    char secret[AUTH_TOKEN_LEN + 1];
    struct auth_token_req rq;
    struct db_token row = {0};
    struct guest_err e = {0};
    struct idem id;
    json_t *o = NULL;

    if (idem_begin(m, req, am->caller.who, &id))
        return;
    int r = parse_token(req->body, &rq, &e);
    if (r >= 0)
        r = db_begin(m->db);
    if (r < 0) {
        http_reply_guest_err(req, r, &e);
        return;
    }
    r = auth_token_create(m, &rq, secret, &row, &e);
    if (r >= 0) {
        o = api_token_json(&row);
        json_object_set_new(o, "token", json_string(secret));
        r = idem_store(m, req, &id, 201, o);
        if (r < 0)
            guest_fail(&e, r, NULL, "cannot store the request's key");
    }
    r = r >= 0 ? db_commit(m->db) : (db_rollback(m->db), r);
    explicit_bzero(secret, sizeof(secret));
    if (r < 0) {
        json_decref(o);
        if (!e.message[0])
            guest_fail(&e, r, NULL, "cannot store the token: %s", strerror(-r));
        http_reply_guest_err(req, r, &e);
    } else {
        log_notice("token=%s created (role %s%s%s) by %s", row.id, row.role,
                   row.project ? ", project " : "", row.project ? row.project : "", am->caller.who);
        httpd_respond(req, 201, o);
    }
    db_token_clear(&row);
}

void
h_token_delete(master_t *m, struct http_req *req, const struct api_match *am)
{
    int r = auth_token_delete(m, am->name);

    if (r < 0) {
        http_reply_errno(req, r, NULL, r == -ENOENT ? "no such token" : "cannot delete the token");
        return;
    }
    log_notice("token=%s deleted by %s", am->name, am->caller.who);
    /* What the token holds open ends with it, not only its next request. */
    shell_revoke(m, am->name);
    event_streams_revoke(m, am->name);
    httpd_respond(req, 204, NULL);
}
