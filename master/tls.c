#include "master/tls.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <gnutls/abstract.h>
#include <gnutls/crypto.h>
#include <gnutls/gnutls.h>
#include <gnutls/x509.h>
#include <ifaddrs.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "common/mem.h"

#define TLS_MAX_FILE  (1u << 20)               /* bytes of a PEM file */
#define TLS_LIFETIME  (10LL * 365 * 24 * 3600) /* a self-signed certificate's life */
#define TLS_MAX_NAMES 64                       /* subject alternative names */

void
tls_creds_clear(struct tls_creds *c)
{
    free(c->cert_pem);
    if (c->key_pem)
        explicit_bzero(c->key_pem, strlen(c->key_pem));
    free(c->key_pem);
    *c = (struct tls_creds){0};
}

static void
crtp(gnutls_x509_crt_t *c)
{
    if (*c)
        gnutls_x509_crt_deinit(*c);
}

static void
keyp(gnutls_x509_privkey_t *k)
{
    if (*k)
        gnutls_x509_privkey_deinit(*k);
}

static int fail(char *err, size_t errlen, int r, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static int
fail(char *err, size_t errlen, int r, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
    return r;
}

/* The pin and fingerprint of a certificate. */
static int
identify(gnutls_x509_crt_t crt, struct tls_creds *out)
{
    unsigned char fpr[32], digest[32];
    size_t n = sizeof(fpr);
    gnutls_pubkey_t pub = NULL;
    gnutls_datum_t der = {0}, b64 = {0};
    int r;

    if (gnutls_x509_crt_get_fingerprint(crt, GNUTLS_DIG_SHA256, fpr, &n) < 0 || n != 32)
        return -EBADMSG;
    char *w = out->fingerprint;
    for (size_t i = 0; i < n; i++)
        w += snprintf(w, 4, i ? ":%02X" : "%02X", fpr[i]);
    r = gnutls_pubkey_init(&pub);
    if (r >= 0)
        r = gnutls_pubkey_import_x509(pub, crt, 0);
    if (r >= 0)
        r = gnutls_pubkey_export2(pub, GNUTLS_X509_FMT_DER, &der);
    if (r >= 0)
        r = gnutls_hash_fast(GNUTLS_DIG_SHA256, der.data, der.size, digest);
    gnutls_datum_t d = {digest, sizeof(digest)};
    if (r >= 0)
        r = gnutls_base64_encode2(&d, &b64);
    if (r >= 0)
        snprintf(out->pin, sizeof(out->pin), "sha256//%.*s", (int)b64.size, (char *)b64.data);
    gnutls_free(der.data);
    gnutls_free(b64.data);
    if (pub)
        gnutls_pubkey_deinit(pub);
    return r < 0 ? -EBADMSG : 0;
}

/* Parses the PEM pair in out, checks the key is the certificate's, and
 * fills the pin. */
static int
check_pair(struct tls_creds *out, char *err, size_t errlen)
{
    _cleanup_(crtp) gnutls_x509_crt_t crt = NULL;
    _cleanup_(keyp) gnutls_x509_privkey_t key = NULL;
    unsigned char id1[64], id2[64];
    size_t n1 = sizeof(id1), n2 = sizeof(id2);
    gnutls_datum_t c = {(unsigned char *)out->cert_pem, (unsigned)strlen(out->cert_pem)};
    gnutls_datum_t k = {(unsigned char *)out->key_pem, (unsigned)strlen(out->key_pem)};

    if (gnutls_x509_crt_init(&crt) < 0 || gnutls_x509_privkey_init(&key) < 0)
        return fail(err, errlen, -ENOMEM, "out of memory");
    if (gnutls_x509_crt_import(crt, &c, GNUTLS_X509_FMT_PEM) < 0)
        return fail(err, errlen, -EINVAL, "%s", "the certificate is not a PEM X.509 certificate");
    if (gnutls_x509_privkey_import(key, &k, GNUTLS_X509_FMT_PEM) < 0)
        return fail(err, errlen, -EINVAL, "%s", "the key is not an unencrypted PEM private key");
    if (gnutls_x509_crt_get_key_id(crt, 0, id1, &n1) < 0 ||
        gnutls_x509_privkey_get_key_id(key, 0, id2, &n2) < 0 || n1 != n2 ||
        memcmp(id1, id2, n1) != 0)
        return fail(err, errlen, -EINVAL, "%s", "the key does not belong to the certificate");
    if (identify(crt, out) < 0)
        return fail(err, errlen, -EINVAL, "%s", "cannot read the certificate's public key");
    return 0;
}

static int
read_file(const char *path, char **out)
{
    _cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC);
    struct stat st;

    if (fd < 0)
        return -errno;
    if (fstat(fd, &st) < 0)
        return -errno;
    if (!S_ISREG(st.st_mode) || st.st_size > TLS_MAX_FILE)
        return -EINVAL;
    char *buf = xmalloc((size_t)st.st_size + 1);
    ssize_t n = read(fd, buf, (size_t)st.st_size);
    if (n != st.st_size) {
        free(buf);
        return n < 0 ? -errno : -EIO;
    }
    buf[n] = '\0';
    *out = buf;
    return 0;
}

int
tls_load(const char *cert_path, const char *key_path, struct tls_creds *out, char *err,
         size_t errlen)
{
    int r;

    *out = (struct tls_creds){0};
    r = read_file(cert_path, &out->cert_pem);
    if (r < 0)
        return fail(err, errlen, r, "cannot read the certificate \"%s\": %s", cert_path,
                    strerror(-r));
    r = read_file(key_path, &out->key_pem);
    if (r < 0) {
        fail(err, errlen, r, "cannot read the key \"%s\": %s", key_path, strerror(-r));
        tls_creds_clear(out);
        return r;
    }
    r = check_pair(out, err, errlen);
    if (r < 0)
        tls_creds_clear(out);
    return r;
}

/* ---- the self-signed pair ---- */

static int
add_name(gnutls_x509_crt_t crt, const char *name)
{
    unsigned char a[16];

    if (inet_pton(AF_INET, name, a) == 1)
        return gnutls_x509_crt_set_subject_alt_name(crt, GNUTLS_SAN_IPADDRESS, a, 4,
                                                    GNUTLS_FSAN_APPEND);
    if (inet_pton(AF_INET6, name, a) == 1)
        return gnutls_x509_crt_set_subject_alt_name(crt, GNUTLS_SAN_IPADDRESS, a, 16,
                                                    GNUTLS_FSAN_APPEND);
    return gnutls_x509_crt_set_subject_alt_name(crt, GNUTLS_SAN_DNSNAME, name,
                                                (unsigned)strlen(name), GNUTLS_FSAN_APPEND);
}

/* localhost, the host name, loopback, the interfaces' addresses, extra. */
static int
add_names(gnutls_x509_crt_t crt, const char *extra)
{
    char host[256] = "";
    struct ifaddrs *ifs = NULL;
    int r = 0, n = 0;

    r = add_name(crt, "localhost");
    if (r >= 0 && gethostname(host, sizeof(host) - 1) == 0 && host[0] &&
        strcmp(host, "localhost") != 0)
        r = add_name(crt, host);
    if (r >= 0)
        r = add_name(crt, "127.0.0.1");
    if (r >= 0)
        r = add_name(crt, "::1");
    if (r >= 0 && getifaddrs(&ifs) == 0) {
        for (struct ifaddrs *i = ifs; i && r >= 0 && n < TLS_MAX_NAMES; i = i->ifa_next) {
            char buf[INET6_ADDRSTRLEN];
            const void *a = NULL;
            if (!i->ifa_addr)
                continue;
            if (i->ifa_addr->sa_family == AF_INET)
                a = &((struct sockaddr_in *)i->ifa_addr)->sin_addr;
            else if (i->ifa_addr->sa_family == AF_INET6)
                a = &((struct sockaddr_in6 *)i->ifa_addr)->sin6_addr;
            if (!a || !inet_ntop(i->ifa_addr->sa_family, a, buf, sizeof(buf)) ||
                !strcmp(buf, "127.0.0.1") || !strcmp(buf, "::1") || !strncmp(buf, "fe80:", 5))
                continue;
            r = add_name(crt, buf);
            n++;
        }
        freeifaddrs(ifs);
    }
    _cleanup_free_ char *copy = xstrdup(extra ? extra : "");
    char *save = NULL;
    for (char *t = strtok_r(copy, ", ", &save); t && r >= 0; t = strtok_r(NULL, ", ", &save))
        r = add_name(crt, t);
    return r;
}

static int
make_pair(const char *extra, struct tls_creds *out)
{
    _cleanup_(crtp) gnutls_x509_crt_t crt = NULL;
    _cleanup_(keyp) gnutls_x509_privkey_t key = NULL;
    unsigned char serial[16], kid[64];
    size_t kid_len = sizeof(kid);
    char cn[300], host[256] = "";
    gnutls_datum_t c = {0}, k = {0};
    time_t now = time(NULL);
    int r;

    gethostname(host, sizeof(host) - 1);
    snprintf(cn, sizeof(cn), "vfleet-master %s", host[0] ? host : "localhost");
    r = gnutls_x509_privkey_init(&key);
    if (r >= 0)
        r = gnutls_x509_privkey_generate(key, GNUTLS_PK_ECDSA,
                                         GNUTLS_CURVE_TO_BITS(GNUTLS_ECC_CURVE_SECP256R1), 0);
    if (r >= 0)
        r = gnutls_x509_crt_init(&crt);
    if (r >= 0)
        r = gnutls_rnd(GNUTLS_RND_NONCE, serial, sizeof(serial));
    serial[0] &= 0x7f; /* a positive integer */
    if (r >= 0)
        r = gnutls_x509_crt_set_version(crt, 3);
    if (r >= 0)
        r = gnutls_x509_crt_set_serial(crt, serial, sizeof(serial));
    if (r >= 0)
        r = gnutls_x509_crt_set_activation_time(crt, now - 3600);
    if (r >= 0)
        r = gnutls_x509_crt_set_expiration_time(crt, now + TLS_LIFETIME);
    if (r >= 0)
        r = gnutls_x509_crt_set_dn_by_oid(crt, GNUTLS_OID_X520_COMMON_NAME, 0, cn,
                                          (unsigned)strlen(cn));
    if (r >= 0)
        r = gnutls_x509_crt_set_key(crt, key);
    if (r >= 0)
        r = add_names(crt, extra);
    if (r >= 0)
        r = gnutls_x509_crt_set_basic_constraints(crt, 0, -1);
    if (r >= 0)
        r = gnutls_x509_crt_set_key_usage(crt, GNUTLS_KEY_DIGITAL_SIGNATURE);
    if (r >= 0)
        r = gnutls_x509_crt_set_key_purpose_oid(crt, GNUTLS_KP_TLS_WWW_SERVER, 0);
    if (r >= 0)
        r = gnutls_x509_crt_get_key_id(crt, 0, kid, &kid_len);
    if (r >= 0)
        r = gnutls_x509_crt_set_subject_key_id(crt, kid, kid_len);
    if (r >= 0)
        r = gnutls_x509_crt_sign2(crt, crt, key, GNUTLS_DIG_SHA256, 0);
    if (r >= 0)
        r = gnutls_x509_crt_export2(crt, GNUTLS_X509_FMT_PEM, &c);
    if (r >= 0)
        r = gnutls_x509_privkey_export2(key, GNUTLS_X509_FMT_PEM, &k);
    if (r >= 0) {
        out->cert_pem = xstrndup((char *)c.data, c.size);
        out->key_pem = xstrndup((char *)k.data, k.size);
    }
    gnutls_free(c.data);
    if (k.data)
        explicit_bzero(k.data, k.size);
    gnutls_free(k.data);
    return r < 0 ? -EIO : 0;
}

/* Writes data to path with mode through a temporary file and a rename, so
 * a crash never leaves half a key. */
static int
write_file(const char *path, const char *data, mode_t mode)
{
    _cleanup_free_ char *tmp = xasprintf("%s.tmp", path);
    size_t n = strlen(data);
    int fd, r = 0;

    unlink(tmp);
    fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode);
    if (fd < 0)
        return -errno;
    errno = EIO; /* a short write sets no errno */
    if (fchmod(fd, mode) < 0 || write(fd, data, n) != (ssize_t)n || fsync(fd) < 0)
        r = -errno;
    close(fd);
    if (r >= 0 && rename(tmp, path) < 0)
        r = -errno;
    if (r < 0)
        unlink(tmp);
    return r;
}

int
tls_self_signed(const char *dir, const char *extra_names, struct tls_creds *out, char *err,
                size_t errlen)
{
    _cleanup_free_ char *crt = xasprintf("%s/api.crt", dir);
    _cleanup_free_ char *key = xasprintf("%s/api.key", dir);
    int r;

    if (access(crt, F_OK) == 0 && access(key, F_OK) == 0)
        return tls_load(crt, key, out, err, errlen);
    *out = (struct tls_creds){.generated = true};
    r = make_pair(extra_names, out);
    if (r < 0) {
        snprintf(err, errlen, "cannot make a self-signed certificate");
        return r;
    }
    r = write_file(key, out->key_pem, 0600);
    if (r >= 0)
        r = write_file(crt, out->cert_pem, 0644);
    if (r < 0) {
        snprintf(err, errlen, "cannot write \"%s\": %s", r == -EEXIST ? crt : key, strerror(-r));
        tls_creds_clear(out);
        return r;
    }
    r = check_pair(out, err, errlen);
    if (r < 0)
        tls_creds_clear(out);
    return r;
}
