#include "master/archives.h"

#include <errno.h>
#include <fcntl.h>
#include <gnutls/crypto.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/fsutil.h"
#include "common/log.h"
#include "common/mem.h"
#include "common/mtime.h"
#include "common/uuid.h"
#include "master/operations.h"
#include "master/trust.h"
#include "proto/link.h"
#include "proto/xfer.h"

static int
dir_of(master_t *m, char *out, size_t n)
{
    if (strcmp(m->cfg.db_path, ":memory:") == 0) {
        snprintf(out, n, "/tmp/vfleet-master-%d-archives", (int)getpid());
    } else {
        _cleanup_free_ char *copy = xstrdup(m->cfg.db_path);
        snprintf(out, n, "%s/archives", dirname(copy));
    }
    return fs_mkdir_p(out, 0700);
}

static int
file_of(master_t *m, const char *id, const char *ext, char *out, size_t n)
{
    char dir[PATH_MAX_ARCHIVE];

    if (!spec_is_uuid(id))
        return -ENOENT;
    int r = dir_of(m, dir, sizeof(dir));
    if (r < 0)
        return r;
    if (snprintf(out, n, "%s/%s.%s", dir, id, ext) >= (int)n)
        return -ENAMETOOLONG;
    return 0;
}

int
archives_path(master_t *m, const char *id, char *out, size_t n)
{
    return file_of(m, id, "vfx", out, n);
}

void
archives_endpoint(master_t *m, const char *op, char *out, size_t n)
{
    /* On the address the operator named for it (nodes on other hosts reach
     * it); else beside the nodes' ipc:// socket when there is one (they
     * reach that path); else on loopback, which only a node on this host
     * reaches. */
    if (m->cfg.data_address) {
        bool v6 = strchr(m->cfg.data_address, ':') != NULL;
        snprintf(out, n, "tcp://%s%s%s:*", v6 ? "[" : "", m->cfg.data_address, v6 ? "]" : "");
        return;
    }
    for (unsigned i = 0; i < m->cfg.n_binds; i++) {
        if (strncmp(m->cfg.binds[i], "ipc://", 6) != 0)
            continue;
        _cleanup_free_ char *copy = xstrdup(m->cfg.binds[i] + 6);
        snprintf(out, n, "ipc://%s/xfer-%.8s.sock", dirname(copy), op);
        return;
    }
    snprintf(out, n, "tcp://127.0.0.1:*");
}

const char *
archives_channel(master_t *m, const char *op, const char *node)
{
    if (trust_link_keys(m) && trust_node_key(m, node))
        return "curve";
    log_notice("op=%s the data channel between the master and node %s is plaintext, guarded "
               "by the one-time secret only: %s (an ipc:// or insecure link)",
               op, node, trust_link_keys(m) ? "the node has no node key" : "the master has no key");
    return "plaintext";
}

bool
archives_curve(const struct op *o)
{
    return strcmp(op_pstr(o, "channel"), "curve") == 0;
}

void
archives_peer_key(master_t *m, const struct op *o, char *out, size_t n)
{
    const struct link_keys *lk = archives_curve(o) ? trust_link_keys(m) : NULL;

    strscpy(out, lk ? lk->public_key : "", n);
}

const struct xfer_keys *
archives_keys(master_t *m, const char *node, bool sender, struct archives_keys *keys)
{
    const struct link_keys *lk = trust_link_keys(m);
    const char *nk = trust_node_key(m, node);

    if (!lk || !nk)
        return NULL;
    strscpy(keys->public_key, lk->public_key, sizeof(keys->public_key));
    strscpy(keys->secret_key, lk->secret_key, sizeof(keys->secret_key));
    strscpy(keys->node_key, nk, sizeof(keys->node_key));
    keys->x = (struct xfer_keys){.public_key = keys->public_key,
                                 .secret_key = keys->secret_key,
                                 .server_key = sender ? keys->node_key : NULL,
                                 .client_key = sender ? NULL : keys->node_key};
    return &keys->x;
}

/* ---- the sidecar ---- */

static int
meta_write(master_t *m, const char *id, const struct archives_info *in)
{
    char path[PATH_MAX_ARCHIVE], tmp[PATH_MAX_ARCHIVE + 8];
    json_t *j = json_pack("{s:I, s:s, s:s}", "size", (json_int_t)in->size, "sha256", in->sha256,
                          "kind", in->kind);
    int r = file_of(m, id, "json", path, sizeof(path));

    if (r >= 0) {
        snprintf(tmp, sizeof(tmp), "%s.tmp", path);
        errno = 0;
        r = json_dump_file(j, tmp, JSON_COMPACT) == 0 && rename(tmp, path) == 0
                ? 0
                : -(errno ? errno : EIO);
        if (r < 0)
            (void)unlink(tmp);
    }
    json_decref(j);
    return r;
}

int
archives_info(master_t *m, const char *id, struct archives_info *out)
{
    char path[PATH_MAX_ARCHIVE], data[PATH_MAX_ARCHIVE];
    struct stat st;

    memset(out, 0, sizeof(*out));
    int r = file_of(m, id, "json", path, sizeof(path));
    if (r < 0)
        return r;
    json_t *j = json_load_file(path, 0, NULL);
    if (!j)
        return -ENOENT;
    out->size = (uint64_t)json_integer_value(json_object_get(j, "size"));
    snprintf(out->sha256, sizeof(out->sha256), "%s",
             json_string_value(json_object_get(j, "sha256")) ?: "");
    snprintf(out->kind, sizeof(out->kind), "%s",
             json_string_value(json_object_get(j, "kind")) ?: "");
    json_decref(j);
    if (file_of(m, id, "vfx", data, sizeof(data)) < 0 || stat(data, &st) < 0)
        return -ENOENT;
    out->received = (uint64_t)st.st_size;
    out->complete = out->received == out->size;
    return 0;
}

/* ---- uploads ---- */

int
archives_upload_new(master_t *m, uint64_t size, const char *sha256, char id[SPEC_ID_LEN + 1])
{
    struct archives_info in = {.size = size};
    char path[PATH_MAX_ARCHIVE];

    if (uuid_v4(id) < 0)
        abort(); /* no randomness at all: nothing sensible to do */
    strscpy(in.sha256, sha256, sizeof(in.sha256));
    strscpy(in.kind, "upload", sizeof(in.kind));
    int r = file_of(m, id, "vfx", path, sizeof(path));
    _cleanup_close_ int fd = r < 0 ? -1 : open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (r >= 0 && fd < 0)
        r = -errno;
    /* The room for it now, so a full disk is said at once (not mid-upload). */
    if (r >= 0 && fallocate(fd, FALLOC_FL_KEEP_SIZE, 0, (off_t)size) < 0 && errno != EOPNOTSUPP)
        r = -errno;
    if (r >= 0)
        r = meta_write(m, id, &in);
    if (r < 0 && fd >= 0)
        (void)unlink(path);
    return r;
}

int
archives_upload_put(master_t *m, const char *id, uint64_t offset, const uint8_t *data, size_t len,
                    uint64_t *received)
{
    struct archives_info in;
    char path[PATH_MAX_ARCHIVE];
    int r = archives_info(m, id, &in);

    if (r < 0)
        return r;
    *received = in.received;
    if (strcmp(in.kind, "upload") != 0 || in.complete)
        return -EEXIST;
    if (offset != in.received || len > in.size - in.received)
        return -EINVAL;
    file_of(m, id, "vfx", path, sizeof(path));
    _cleanup_close_ int fd = open(path, O_WRONLY | O_CLOEXEC);
    if (fd < 0 || pwrite(fd, data, len, (off_t)offset) != (ssize_t)len)
        return -errno ? -errno : -EIO;
    if (offset + len == in.size && fdatasync(fd) < 0)
        return -errno;
    *received = offset + len;
    return 0;
}

int
archives_upload_truncate(master_t *m, const char *id, uint64_t offset)
{
    char path[PATH_MAX_ARCHIVE];
    int r = file_of(m, id, "vfx", path, sizeof(path));

    return r < 0 ? r : truncate(path, (off_t)offset) < 0 ? -errno : 0;
}

static int
sha256_file(const char *path, char hex[65], uint64_t *size)
{
    gnutls_hash_hd_t h;
    uint8_t buf[1 << 16], out[32];
    _cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC);
    ssize_t k;

    if (fd < 0)
        return -errno;
    if (gnutls_hash_init(&h, GNUTLS_DIG_SHA256) < 0)
        abort();
    *size = 0;
    while ((k = read(fd, buf, sizeof(buf))) > 0) {
        (void)gnutls_hash(h, buf, (size_t)k);
        *size += (uint64_t)k;
    }
    gnutls_hash_deinit(h, out);
    if (k < 0)
        return -errno;
    xfer_hex_encode(out, sizeof(out), hex);
    return 0;
}

int
archives_upload_verify(master_t *m, const char *id)
{
    struct archives_info in;
    char path[PATH_MAX_ARCHIVE], hex[65];
    uint64_t size;
    int r = archives_info(m, id, &in);

    if (r < 0)
        return r;
    if (!in.complete)
        return -EAGAIN;
    file_of(m, id, "vfx", path, sizeof(path));
    r = sha256_file(path, hex, &size);
    if (r < 0)
        return r;
    return strcmp(hex, in.sha256) == 0 ? 0 : -EBADMSG;
}

int
archives_export_done(master_t *m, const char *id, struct archives_info *out)
{
    char path[PATH_MAX_ARCHIVE];
    int r = file_of(m, id, "vfx", path, sizeof(path));

    memset(out, 0, sizeof(*out));
    strscpy(out->kind, "export", sizeof(out->kind));
    if (r >= 0)
        r = sha256_file(path, out->sha256, &out->size);
    if (r >= 0)
        r = meta_write(m, id, out);
    out->received = out->size;
    out->complete = true;
    return r;
}

int
archives_read(master_t *m, const char *id, uint64_t offset, size_t max, uint8_t *buf, size_t *got)
{
    char path[PATH_MAX_ARCHIVE];
    int r = file_of(m, id, "vfx", path, sizeof(path));
    _cleanup_close_ int fd = r < 0 ? -1 : open(path, O_RDONLY | O_CLOEXEC);

    if (r < 0)
        return r;
    if (fd < 0)
        return -ENOENT;
    ssize_t k = pread(fd, buf, max, (off_t)offset);
    if (k < 0)
        return -errno;
    *got = (size_t)k;
    return 0;
}

int
archives_delete(master_t *m, const char *id)
{
    char a[PATH_MAX_ARCHIVE], b[PATH_MAX_ARCHIVE];

    if (file_of(m, id, "vfx", a, sizeof(a)) < 0 || file_of(m, id, "json", b, sizeof(b)) < 0)
        return -ENOENT;
    if (unlink(b) < 0)
        return -errno;
    (void)unlink(a);
    log_info("archive %s deleted", id);
    return 0;
}
