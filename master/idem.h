/* Idempotency keys: a POST with an Idempotency-Key header is answered once;
 * a retry with the same key and the same request gets the stored answer, the
 * same key with another request a 409. The answer is stored in the same
 * transaction as the change it reports, so a crash between the two cannot
 * leave one without the other. Only successful answers are stored (a 4xx is
 * evaluated again on retry). Keys live 48 hours.
 *
 * Loop thread only. */
#pragma once

#include <stdbool.h>

#include "master/core.h"

#define IDEM_KEY_MAX 36 /* Idempotency-Key length */

struct idem {
    const char *key; /* the header, NULL = none */
    char hash[40];   /* of method, path and body */
};

/* Returns true when the request was answered (a replay, a conflict, a bad
 * key); otherwise fills id for idem_store. who (the caller, struct
 * caller's who) is part of the request: another caller's key is a 409,
 * never a replay of its answer. */
bool idem_begin(master_t *m, struct http_req *req, const char *who, struct idem *id);
/* Stores the answer under the request's key (nothing without a key), inside
 * the caller's transaction. 0 or -errno. */
int idem_store(master_t *m, const struct http_req *req, const struct idem *id, unsigned status,
               json_t *body);
/* The same with the body already JSON text (the caller answers with that
 * text too, instead of turning a large body into text twice). */
int idem_store_text(master_t *m, const struct http_req *req, const struct idem *id, unsigned status,
                    const char *text);
/* The same for an answer given later (an exec result). */
int idem_store_raw(master_t *m, const char *key, const char *hash, const char *path,
                   unsigned status, json_t *body);
/* Deletes keys older than their life, at most every ten minutes. */
void idem_sweep(master_t *m, uint64_t now_mono_ms);
