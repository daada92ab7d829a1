/* The HTTP server's start: TLS credentials and listeners (http_edge.h). */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "common/log.h"
#include "common/mem.h"
#include "master/http_edge.h"
#include "master/tls.h"

/* The directory of the self-signed pair: tls_dir, else the database's. */
static char *
tls_dir(const struct master_config *c)
{
    if (c->tls_dir)
        return xstrdup(c->tls_dir);
    if (!c->db_path || strcmp(c->db_path, ":memory:") == 0)
        return NULL;
    char *dir = xstrdup(c->db_path);
    char *slash = strrchr(dir, '/');
    if (!slash) {
        free(dir);
        return xstrdup(".");
    }
    if (slash == dir)
        slash[1] = '\0';
    else
        *slash = '\0';
    return dir;
}

static int
load_tls(const struct master_config *c, struct tls_creds *creds, char *err, size_t errlen)
{
    char why[300] = "";
    int r;

    if (c->tls_cert || c->tls_key) {
        if (!c->tls_cert || !c->tls_key) {
            snprintf(err, errlen, "tls_cert and tls_key go together");
            return -EINVAL;
        }
        r = tls_load(c->tls_cert, c->tls_key, creds, why, sizeof(why));
    } else {
        _cleanup_free_ char *dir = tls_dir(c);
        if (!dir) {
            snprintf(err, errlen,
                     "TLS needs a directory for its self-signed certificate (tls_dir), or "
                     "tls_cert and tls_key");
            return -EINVAL;
        }
        r = tls_self_signed(dir, c->api_names, creds, why, sizeof(why));
        if (r >= 0 && creds->generated)
            log_notice("a self-signed API certificate was made: %s/api.crt (key api.key, 0600)",
                       dir);
    }
    if (r < 0) {
        snprintf(err, errlen, "TLS: %s", why);
        return r;
    }
    log_notice("API certificate SHA-256 fingerprint %s; public key pin %s (vfleet --pin %s)",
               creds->fingerprint, creds->pin, creds->pin);
    return 0;
}

int
http_listen(master_t *m, char *err, size_t errlen)
{
    const struct master_config *c = &m->cfg;
    struct tls_creds creds = {0};
    struct httpd_config hc = {.addr = c->http_addr,
                              .port = c->http_port,
                              .unix_path = c->api_socket,
                              .max_conns = c->http_max_conns,
                              .max_per_addr = c->http_max_per_addr,
                              .idle_timeout_s = c->http_idle_s};
    int r = 0;

    if (c->tls_off)
        log_warning("the API on %s:%u is plain HTTP (tls = no): tokens cross the network in the "
                    "clear; use it only on loopback or a trusted network",
                    c->http_addr, (unsigned)c->http_port);
    else
        r = load_tls(c, &creds, err, errlen);
    if (r < 0)
        return r;
    hc.tls_cert = creds.cert_pem;
    hc.tls_key = creds.key_pem;
    m->httpd = httpd_new(m->loop, &hc, http_serve, m, &r);
    tls_creds_clear(&creds);
    if (!m->httpd) {
        if (r == -EADDRINUSE)
            snprintf(err, errlen, "cannot listen on %s:%u", c->http_addr, (unsigned)c->http_port);
        else
            snprintf(err, errlen, "cannot listen on %s:%u%s%s: %s", c->http_addr,
                     (unsigned)c->http_port, c->api_socket ? " or " : "",
                     c->api_socket ? c->api_socket : "", strerror(-r));
        return r;
    }
    if (c->web_dir)
        httpd_set_static(m->httpd, c->web_dir);
    log_notice("API on %s://%s:%u%s%s", c->tls_off ? "http" : "https", c->http_addr,
               (unsigned)c->http_port, c->api_socket ? " and unix:" : "",
               c->api_socket ? c->api_socket : "");
    return 0;
}
