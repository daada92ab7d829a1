#include "node/linux/nftlib.h"

#include <dlfcn.h>
#include <errno.h>
#include <nftables/libnftables.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "common/mem.h"
#include "common/mtime.h"

/* The library's entry points this file uses, and who is using them. */
static struct {
    pthread_mutex_t lock; /* guards everything below */
    void *handle;         /* dlopen's, NULL when not loaded */
    unsigned users;       /* calls running now */
    uint64_t last_ms;     /* when the last call started (monotonic) */
    struct nft_ctx *(*ctx_new)(uint32_t flags);
    void (*ctx_free)(struct nft_ctx *ctx);
    int (*buffer_output)(struct nft_ctx *ctx);
    int (*buffer_error)(struct nft_ctx *ctx);
    int (*run_cmd)(struct nft_ctx *ctx, const char *buf);
    const char *(*output)(struct nft_ctx *ctx);
    const char *(*error)(struct nft_ctx *ctx);
} lib = {.lock = PTHREAD_MUTEX_INITIALIZER};

/* Puts dlerror's text (why the last dlopen or dlsym failed) into why. */
static void
lib_why(char *why, size_t why_len)
{
    const char *e = dlerror();
    if (why && why_len)
        snprintf(why, why_len, "cannot load %s: %s", NFTLIB_SONAME, e ? e : "unknown error");
}

/* Resolves every entry point; false (and the handle closed, dlerror's text
 * in why) if one lacks. */
static bool
lib_resolve(void *h, char *why, size_t why_len)
{
    /* POSIX lets a void * from dlsym become a function pointer. */
#define SYM(field, name) (*(void **)&lib.field = dlsym(h, name)) != NULL
    if (SYM(ctx_new, "nft_ctx_new") && SYM(ctx_free, "nft_ctx_free") &&
        SYM(buffer_output, "nft_ctx_buffer_output") && SYM(buffer_error, "nft_ctx_buffer_error") &&
        SYM(run_cmd, "nft_run_cmd_from_buffer") && SYM(output, "nft_ctx_get_output_buffer") &&
        SYM(error, "nft_ctx_get_error_buffer"))
        return true;
#undef SYM
    lib_why(why, why_len);
    dlclose(h);
    return false;
}

/* Takes a use of the library, loading it as needed: 0, or -ELIBACC with
 * the reason in why. */
static int
lib_get(char *why, size_t why_len)
{
    int r = 0;

    pthread_mutex_lock(&lib.lock);
    if (!lib.handle) {
        void *h = dlopen(NFTLIB_SONAME, RTLD_NOW | RTLD_LOCAL);
        if (!h)
            lib_why(why, why_len);
        else if (lib_resolve(h, why, why_len))
            lib.handle = h;
    }
    if (lib.handle) {
        lib.users++;
        lib.last_ms = time_mono_ms();
    } else {
        r = -ELIBACC;
    }
    pthread_mutex_unlock(&lib.lock);
    return r;
}

static void
lib_put(void)
{
    pthread_mutex_lock(&lib.lock);
    lib.users--;
    pthread_mutex_unlock(&lib.lock);
}

int
nftlib_run(const char *cmd, char **out, char *err, size_t err_len)
{
    int r = lib_get(err, err_len);

    if (r < 0)
        return r;
    struct nft_ctx *ctx = lib.ctx_new(NFT_CTX_DEFAULT);
    if (!ctx) {
        lib_put();
        return -ENOMEM;
    }
    lib.buffer_output(ctx);
    lib.buffer_error(ctx);
    if (lib.run_cmd(ctx, cmd) != 0) {
        if (err && err_len)
            strscpy(err, lib.error(ctx), err_len);
        r = -EINVAL;
    } else if (out) {
        *out = xstrdup(lib.output(ctx));
    }
    lib.ctx_free(ctx);
    lib_put();
    return r;
}

void
nftlib_unload_idle(uint64_t idle_ms)
{
    pthread_mutex_lock(&lib.lock);
    if (lib.handle && !lib.users && time_mono_ms() - lib.last_ms >= idle_ms) {
        dlclose(lib.handle);
        lib.handle = NULL;
    }
    pthread_mutex_unlock(&lib.lock);
}

bool
nftlib_loaded(void)
{
    pthread_mutex_lock(&lib.lock);
    bool loaded = lib.handle != NULL;
    pthread_mutex_unlock(&lib.lock);
    return loaded;
}
