/* HTTP handlers: archives (archives.h) — an upload for an import, arriving in
 * base64 chunks of at most 1 MiB in JSON bodies (the API is JSON only), and
 * an export's archive, downloaded the same way (?offset=N). A chunk is
 * resumable: an upload takes the next chunk at exactly the offset it has. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/base64.h"
#include "common/log.h"
#include "common/mem.h"
#include "master/archives.h"
#include "master/http_edge.h"
#include "master/http_handlers.h"
#include "master/idem.h"

static json_t *
info_json(const char *id, const struct archives_info *in)
{
    return json_pack("{s:s, s:s, s:I, s:I, s:s?, s:b}", "id", id, "kind", in->kind, "size",
                     (json_int_t)in->size, "received", (json_int_t)in->received, "sha256",
                     in->sha256[0] ? in->sha256 : NULL, "complete", in->complete);
}

static bool
is_sha256(const char *s)
{
    return s && strlen(s) == 64 && strspn(s, "0123456789abcdef") == 64;
}

/* Answers status with o, stored under the request's Idempotency-Key first
 * (a retry whose answer was lost gets this one). On failure answers the
 * error and returns it: the caller undoes what the answer reported. */
static int
respond_kept(master_t *m, struct http_req *req, const struct idem *key, unsigned status, json_t *o)
{
    int r = db_begin(m->db);

    if (r >= 0) {
        r = idem_store(m, req, key, status, o);
        r = r >= 0 ? db_commit(m->db) : (db_rollback(m->db), r);
    }
    if (r < 0) {
        json_decref(o);
        http_reply_errno(req, r, NULL, "cannot store the answer: %s", db_errmsg(m->db));
        return r;
    }
    httpd_respond(req, status, o);
    return 0;
}

/* POST /v1/archives {"size": N, "sha256": "..."}: a new upload. */
void
h_archive_create(master_t *m, struct http_req *req, const struct api_match *am)
{
    json_t *size = json_object_get(req->body, "size");
    const char *sha = json_string_value(json_object_get(req->body, "sha256"));
    char id[SPEC_ID_LEN + 1];
    struct archives_info in;
    struct idem key;

    (void)am;
    if (idem_begin(m, req, am->caller.who, &key))
        return;
    if (!json_is_object(req->body) || json_object_size(req->body) != 2 || !json_is_integer(size) ||
        json_integer_value(size) < 1) {
        httpd_error(req, 400, "bad_request", "size",
                    "the body must be {\"size\": bytes, \"sha256\": hex}");
        return;
    }
    if (!is_sha256(sha)) {
        httpd_error(req, 400, "bad_request", "sha256", "sha256 must be 64 lower-case hex digits");
        return;
    }
    int r = archives_upload_new(m, (uint64_t)json_integer_value(size), sha, id);
    if (r >= 0)
        r = archives_info(m, id, &in);
    if (r < 0) {
        http_reply_errno(req, r, NULL, "cannot make room for the archive: %s", strerror(-r));
        return;
    }
    if (respond_kept(m, req, &key, 201, info_json(id, &in)) < 0)
        (void)archives_delete(m, id);
}

/* POST /v1/archives/{id} {"offset": N, "data": base64}: the next chunk. */
void
h_archive_put(master_t *m, struct http_req *req, const struct api_match *am)
{
    json_t *off = json_object_get(req->body, "offset");
    json_t *data = json_object_get(req->body, "data");
    struct archives_info in;
    uint64_t received = 0;
    struct idem key;

    if (idem_begin(m, req, am->caller.who, &key))
        return;
    if (!json_is_integer(off) || json_integer_value(off) < 0 || !json_is_string(data) ||
        json_string_length(data) > base64_len(ARCHIVES_CHUNK_MAX)) {
        httpd_error(req, 400, "bad_request", "data",
                    "the body must be {\"offset\": bytes, \"data\": base64 of at most 1 MiB}");
        return;
    }
    _cleanup_free_ uint8_t *buf = xmalloc(json_string_length(data) / 4 * 3 + 3);
    long n = base64_decode(json_string_value(data), json_string_length(data), buf);
    if (n < 0) {
        httpd_error(req, 400, "bad_request", "data", "data is not base64");
        return;
    }
    int r = archives_upload_put(m, am->name, (uint64_t)json_integer_value(off), buf, (size_t)n,
                                &received);
    if (r == -EINVAL) {
        httpd_error(req, 409, "conflict", "offset",
                    "the archive has %llu bytes: the next chunk starts there",
                    (unsigned long long)received);
        return;
    }
    if (r < 0 || (r = archives_info(m, am->name, &in)) < 0) {
        http_reply_errno(req, r == -EEXIST ? -EALREADY : r, NULL, "%s",
                         r == -EEXIST ? "the archive is complete" : strerror(-r));
        return;
    }
    if (respond_kept(m, req, &key, 200, info_json(am->name, &in)) < 0)
        (void)archives_upload_truncate(m, am->name, (uint64_t)json_integer_value(off));
}

/* GET /v1/archives/{id}[?offset=N]: what is known; with offset, a chunk. */
void
h_archive_get(master_t *m, struct http_req *req, const struct api_match *am)
{
    const char *off = httpd_query(req, "offset");
    struct archives_info in;
    char *end = NULL;
    int r = archives_info(m, am->name, &in);

    if (r < 0) {
        httpd_error(req, 404, "not_found", NULL, "no archive %s", am->name);
        return;
    }
    json_t *o = info_json(am->name, &in);
    if (off) {
        unsigned long long v = strtoull(off, &end, 10);
        if (!*off || *end || v > in.received) {
            json_decref(o);
            httpd_error(req, 400, "bad_request", "offset", "offset must be 0..%llu",
                        (unsigned long long)in.received);
            return;
        }
        _cleanup_free_ uint8_t *buf = xmalloc(ARCHIVES_CHUNK_MAX);
        _cleanup_free_ char *text = xmalloc(base64_len(ARCHIVES_CHUNK_MAX) + 1);
        size_t got = 0;
        r = archives_read(m, am->name, v, ARCHIVES_CHUNK_MAX, buf, &got);
        if (r < 0) {
            json_decref(o);
            http_reply_errno(req, r, NULL, "cannot read the archive: %s", strerror(-r));
            return;
        }
        base64_encode(buf, got, text);
        json_object_set_new(o, "offset", json_integer((json_int_t)v));
        json_object_set_new(o, "data", json_string(text));
        json_object_set_new(o, "eof", json_boolean(v + got >= in.size));
    }
    httpd_respond(req, 200, o);
}

void
h_archive_delete(master_t *m, struct http_req *req, const struct api_match *am)
{
    int r = archives_delete(m, am->name);

    if (r < 0) {
        httpd_error(req, 404, "not_found", NULL, "no archive %s", am->name);
        return;
    }
    httpd_respond(req, 204, NULL);
}
