/* The master's sending end of the data channel (op_sender.h). */
#include "master/op_sender.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sodium.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/mem.h"
#include "master/archives.h"
#include "proto/xfer.h"

/* The sending thread and what it tells the loop. */
struct sender {
    master_t *m;                          /* the master */
    char op[SPEC_ID_LEN + 1];             /* the operation */
    op_sender_done_fn done_fn;            /* called on the loop at the end */
    pthread_t thread;                     /* runs send_main */
    uv_async_t wake;                      /* thread -> loop */
    pthread_mutex_t lock;                 /* guards stats */
    struct xfer_stats stats;              /* progress */
    atomic_bool done;                     /* the pass returned */
    bool joined;                          /* the thread was joined */
    atomic_bool cancel;                   /* stops it */
    int result;                           /* its result */
    char err[256];                        /* its sentence */
    uint8_t digest[XFER_HASH_LEN];        /* what was sent */
    char endpoint[XFER_ENDPOINT_MAX + 1]; /* the node's */
    struct archives_keys keys;            /* CurveZMQ's, when curve */
    bool curve;                           /* keys holds them */
    char secret[MIGRATE_SECRET_LEN + 1];  /* the transfer's */
    char path[PATH_MAX_ARCHIVE];          /* the file */
};

static void
on_progress(void *userdata, const struct xfer_stats *st)
{
    struct sender *s = userdata;

    pthread_mutex_lock(&s->lock);
    s->stats = *st;
    pthread_mutex_unlock(&s->lock);
    uv_async_send(&s->wake);
}

static void *
send_main(void *arg)
{
    struct sender *s = arg;
    xfer_send_t *x = NULL;
    int fd = open(s->path, O_RDONLY | O_CLOEXEC);
    int r =
        fd < 0 ? -errno : xfer_send_new(s->endpoint, s->secret, s->curve ? &s->keys.x : NULL, &x);

    if (r < 0)
        snprintf(s->err, sizeof(s->err), "cannot send the archive: %s", strerror(-r));
    else
        r = xfer_send_pass(x, fd, true, &s->cancel, on_progress, s, s->digest, NULL, s->err,
                           sizeof(s->err));
    xfer_send_destroy(&x);
    if (fd >= 0)
        close(fd);
    s->result = r;
    atomic_store(&s->done, true);
    uv_async_send(&s->wake);
    return NULL;
}

static void
sender_closed(uv_handle_t *h)
{
    struct sender *s = h->data;

    pthread_mutex_destroy(&s->lock);
    sodium_memzero(&s->keys, sizeof(s->keys));
    free(s);
}

void
op_sender_release(master_t *m, struct op *o)
{
    struct sender *s = o->rt;

    (void)m;
    if (!s)
        return;
    atomic_store(&s->cancel, true);
    if (!s->joined)
        pthread_join(s->thread, NULL);
    o->rt = NULL;
    uv_close((uv_handle_t *)&s->wake, sender_closed);
}

static void
on_wake(uv_async_t *h)
{
    struct sender *s = h->data;
    master_t *m = s->m;
    struct op *o = operations_find(m, s->op);

    if (!o || o->rt != s)
        return;
    pthread_mutex_lock(&s->lock);
    struct xfer_stats st = s->stats;
    pthread_mutex_unlock(&s->lock);
    master_batch_begin(m);
    operations_progress(m, o, st.sent + st.resumed, st.data_total);
    if (!atomic_load(&s->done) || s->joined)
        return;
    pthread_join(s->thread, NULL);
    s->joined = true;
    char hex[2 * XFER_HASH_LEN + 1] = "", err[sizeof(s->err)];
    int result = s->result;
    op_sender_done_fn fn = s->done_fn;
    if (result >= 0)
        xfer_hex_encode(s->digest, XFER_HASH_LEN, hex);
    strscpy(err, s->err, sizeof(err));
    op_sender_release(m, o);
    fn(m, o, result, err, hex);
}

void
op_sender_start(master_t *m, struct op *o, const char *path, op_sender_done_fn done)
{
    struct sender *s = xcalloc(1, sizeof(*s));

    op_sender_release(m, o);
    s->m = m;
    s->done_fn = done;
    strscpy(s->op, o->id, sizeof(s->op));
    strscpy(s->endpoint, op_pstr(o, "endpoint"), sizeof(s->endpoint));
    strscpy(s->secret, op_pstr(o, "_secret"), sizeof(s->secret));
    strscpy(s->path, path, sizeof(s->path));
    /* The channel the operation chose at its start (the node listens that
     * way); its keys now. A key gone since is a refusal, never plaintext. */
    s->curve = archives_curve(o);
    if (s->curve && !archives_keys(m, o->target, true, &s->keys)) {
        free(s);
        done(m, o, -EKEYREVOKED, "node's key or the master's went since the transfer began", "");
        return;
    }
    pthread_mutex_init(&s->lock, NULL);
    uv_async_init(m->loop, &s->wake, on_wake);
    s->wake.data = s;
    o->rt = s;
    if (pthread_create(&s->thread, NULL, send_main, s) != 0) {
        s->joined = true; /* there is no thread */
        o->rt = NULL;
        uv_close((uv_handle_t *)&s->wake, sender_closed);
        done(m, o, -EAGAIN, "cannot start the sending thread", "");
    }
}
