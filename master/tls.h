/* The API's TLS credentials: an operator's certificate and key, or a
 * self-signed pair the master makes at its first start (GnuTLS).
 *
 * A self-signed certificate is trusted by pinning its public key: the master
 * logs the pin in curl's form ("sha256//" and the base64 SHA-256 of the
 * DER SubjectPublicKeyInfo), which `vfleet --pin` takes; the certificate
 * file itself may also serve as a CA file (`vfleet --ca`). The key is
 * written 0600 and never leaves the state directory.
 *
 * Plain functions; no state. */
#pragma once

#include <stdbool.h>
#include <stddef.h>

#define TLS_PIN_LEN 64  /* "sha256//" + 44 base64 characters, with room */
#define TLS_FPR_LEN 100 /* 32 bytes as hex pairs with colons */

struct tls_creds {
    char *cert_pem;                /* the certificate (chain), PEM, owned */
    char *key_pem;                 /* its private key, PEM, owned */
    char pin[TLS_PIN_LEN];         /* the public key's pin, "sha256//BASE64" */
    char fingerprint[TLS_FPR_LEN]; /* SHA-256 of the certificate, "AB:CD:..." */
    bool generated;                /* made just now (the first start) */
};

/* Reads an operator's PEM certificate and key and checks that they belong
 * together. 0, or -errno with a sentence in err. */
int tls_load(const char *cert_path, const char *key_path, struct tls_creds *out, char *err,
             size_t errlen);

/* The self-signed pair in dir (api.crt, api.key): read when both are
 * there, else made (ECDSA P-256, ten years, the subject alternative names
 * localhost, this host's name, 127.0.0.1, ::1, every local interface
 * address and the comma-separated extra_names, which may be DNS names or
 * addresses) and written, the key 0600. 0, or -errno with a sentence. */
int tls_self_signed(const char *dir, const char *extra_names, struct tls_creds *out, char *err,
                    size_t errlen);

/* Frees what c holds and zeroes it. */
void tls_creds_clear(struct tls_creds *c);
