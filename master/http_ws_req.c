/* The WebSocket request of GET /v1/guests/{name}/shell (master/http_ws.c):
 * its handshake's headers and its query, read without the loop's state. */
#include "master/http_ws_req.h"

#include <errno.h>
#include <gnutls/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "common/mem.h"
#include "master/http_handlers.h"

#define WS_GUID "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

/* Sec-WebSocket-Accept: base64 of SHA-1 of the key and the GUID. */
int
accept_of(const char *key, char out[32])
{
    static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    unsigned char d[20];
    char buf[128];
    size_t o = 0;

    snprintf(buf, sizeof(buf), "%s%s", key, WS_GUID);
    if (gnutls_hash_fast(GNUTLS_DIG_SHA1, buf, strlen(buf), d) < 0)
        return -EIO;
    for (size_t i = 0; i < 20; i += 3) {
        uint32_t v = (uint32_t)d[i] << 16 | (i + 1 < 20 ? (uint32_t)d[i + 1] << 8 : 0) |
                     (i + 2 < 20 ? d[i + 2] : 0);
        out[o++] = b64[v >> 18 & 63];
        out[o++] = b64[v >> 12 & 63];
        out[o++] = i + 1 < 20 ? b64[v >> 6 & 63] : '=';
        out[o++] = i + 2 < 20 ? b64[v & 63] : '=';
    }
    out[o] = '\0';
    return 0;
}

/* Whether a comma-separated header value holds token (case-insensitive). */
bool
header_has(const char *v, const char *token)
{
    size_t n = strlen(token);

    for (const char *p = v; p && *p;) {
        while (*p == ' ' || *p == ',')
            p++;
        if (strncasecmp(p, token, n) == 0 && (p[n] == ',' || p[n] == ' ' || !p[n]))
            return true;
        p = strchr(p, ',');
    }
    return false;
}

/* The session's request: ?command=JSON array, tty, cols, rows, term,
 * console; all but command checked by the edge (api.c's table). */
int
parse_shell(struct http_req *req, struct msg_shell_open *o, const char **why)
{
    const char *cmd = httpd_query(req, "command"), *tty = httpd_query(req, "tty");
    const char *cols = httpd_query(req, "cols"), *rows = httpd_query(req, "rows");
    const char *term = httpd_query(req, "term"), *console = httpd_query(req, "console");

    o->tty = !tty || !strcmp(tty, "1") || !strcmp(tty, "true");
    o->cols = cols ? (uint32_t)strtoul(cols, NULL, 10) : 80;
    o->rows = rows ? (uint32_t)strtoul(rows, NULL, 10) : 24;
    if (term)
        strscpy(o->term, term, sizeof(o->term));
    o->console = console && !strcmp(console, "true");
    if (o->console && cmd)
        return *why = "console takes no command", -EINVAL;
    if (cmd) {
        json_t *a = json_loads(cmd, 0, NULL), *e;
        size_t i;
        if (!json_is_array(a) || json_array_size(a) == 0 || json_array_size(a) > PROTO_MAX_ARGV) {
            json_decref(a);
            return *why = "command must be a JSON array of 1 to 256 strings", -EINVAL;
        }
        o->argv = xcalloc(json_array_size(a) + 1, sizeof(char *));
        json_array_foreach(a, i, e)
        {
            if (!json_is_string(e) || json_string_length(e) > PROTO_MAX_STRING) {
                json_decref(a);
                return *why = "command must be a JSON array of strings of at most 4096 bytes",
                       -EINVAL;
            }
            o->argv[i] = xstrdup(json_string_value(e));
            o->argc = (uint32_t)i + 1;
        }
        json_decref(a);
    }
    return 0;
}

const char *
http_ws_bearer(struct http_req *req, char *buf, size_t n)
{
    const char *proto = httpd_header(req, "Sec-WebSocket-Protocol");
    const char *up = httpd_header(req, "Upgrade");

    if (!proto || !up || !header_has(up, "websocket"))
        return NULL;
    for (const char *p = proto; *p;) {
        while (*p == ' ' || *p == ',')
            p++;
        size_t len = strcspn(p, ", ");
        if (len > 7 && strncmp(p, "bearer.", 7) == 0 && len - 7 < n - 8) {
            snprintf(buf, n, "Bearer %.*s", (int)(len - 7), p + 7);
            return buf;
        }
        p += len;
    }
    return NULL;
}
