#include "master/idem.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "common/log.h"
#include "common/mem.h"
#include "common/mtime.h"
#include "master/http_edge.h"

#define IDEM_KEEP_MS  (48ULL * 3600 * 1000) /* keys live at least 24 h; we keep 48 */
#define IDEM_SWEEP_MS (10ULL * 60 * 1000)   /* how often old keys are deleted */

/* The caller is part of the request: a key one caller used never replays
 * its answer (an exec's output) to another. */
static void
request_hash(const struct http_req *req, const char *who, char out[40])
{
    _cleanup_free_ char *body =
        req->body ? json_dumps(req->body, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
    _cleanup_free_ char *all =
        xasprintf("%s %s %s %s", who ? who : "", req->method, req->path, body ? body : "");
    uint64_t a = hmap_hash_str(all), b = 1469598103934665603ULL;

    for (const char *p = all; *p; p++)
        b = (b ^ (uint8_t)*p) * 1099511628211ULL + 0x9e3779b97f4a7c15ULL;
    snprintf(out, 40, "%016" PRIx64 "%016" PRIx64, a, hmap_hash_u64(b));
}

static bool
key_valid(const char *k)
{
    size_t n = strlen(k);

    if (n == 0 || n > IDEM_KEY_MAX)
        return false;
    for (const char *p = k; *p; p++)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
              *p == '.' || *p == '_' || *p == ':' || *p == '-'))
            return false;
    return true;
}

bool
idem_begin(master_t *m, struct http_req *req, const char *who, struct idem *id)
{
    struct db_idem rec = {0};

    *id = (struct idem){0};
    if (!req->idem_key || strcmp(req->method, "POST") != 0)
        return false;
    if (!key_valid(req->idem_key)) {
        httpd_error(req, 400, "bad_request", "Idempotency-Key",
                    "Idempotency-Key must be 1-36 of letters, digits and -_.:");
        return true;
    }
    id->key = req->idem_key;
    request_hash(req, who, id->hash);
    int r = db_idem_get(m->db, req->idem_key, &rec);
    if (r == -ENOENT)
        return false;
    if (r < 0) {
        http_reply_errno(req, r, NULL, "cannot read the idempotency store");
        return true;
    }
    if (strcmp(rec.request_hash, id->hash) != 0 || strcmp(rec.path, req->path) != 0) {
        httpd_error(req, 409, "conflict", "Idempotency-Key",
                    "Idempotency-Key was used with a different request");
    } else {
        json_t *body = rec.body[0] ? json_loads(rec.body, 0, NULL) : NULL;
        log_debug("replaying the response stored under key \"%s\"", rec.key);
        httpd_respond(req, (unsigned)rec.status, body);
    }
    db_idem_clear(&rec);
    return true;
}

/* The record of an answer whose body is already text (NULL for none). */
static int
store_text(master_t *m, const char *key, const char *hash, const char *path, unsigned status,
           const char *text)
{
    struct db_idem rec = {.key = (char *)key,
                          .method = "POST",
                          .path = (char *)path,
                          .request_hash = (char *)hash,
                          .status = (int)status,
                          .body = (char *)(text ? text : "")};
    return db_idem_put(m->db, &rec);
}

int
idem_store_raw(master_t *m, const char *key, const char *hash, const char *path, unsigned status,
               json_t *body)
{
    _cleanup_free_ char *text = body ? json_dumps(body, JSON_COMPACT) : NULL;
    return store_text(m, key, hash, path, status, text);
}

int
idem_store(master_t *m, const struct http_req *req, const struct idem *id, unsigned status,
           json_t *body)
{
    if (!id->key)
        return 0;
    return idem_store_raw(m, id->key, id->hash, req->path, status, body);
}

int
idem_store_text(master_t *m, const struct http_req *req, const struct idem *id, unsigned status,
                const char *text)
{
    if (!id->key)
        return 0;
    return store_text(m, id->key, id->hash, req->path, status, text);
}

void
idem_sweep(master_t *m, uint64_t now)
{
    if (now < m->next_sweep)
        return;
    uint64_t real = time_real_ms();
    m->next_sweep = now + IDEM_SWEEP_MS;
    if (real > IDEM_KEEP_MS && db_idem_expire(m->db, real - IDEM_KEEP_MS) < 0)
        log_warning("cannot expire old idempotency keys: %s, ignoring", db_errmsg(m->db));
}
