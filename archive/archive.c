#include "archive/archive.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <zstd.h>

#include "common/mem.h"
#include "common/subproc.h"

#define ZSTD_LEVEL 3 /* zstd's default: fast, and most of the ratio */

static int fail(char *err, size_t n, int r, const char *fmt, ...) _printf_(4, 5);

static int
fail(char *err, size_t n, int r, const char *fmt, ...)
{
    va_list ap;

    if (err && n) {
        va_start(ap, fmt);
        vsnprintf(err, n, fmt, ap);
        va_end(ap);
    }
    return r;
}

/* ---- GNU tar as a child ---- */

struct child {
    pid_t pid; /* tar */
    int errfd; /* its stderr: a memfd read after it exits */
};

/* Starts tar with argv; its stdin and stdout are in and out (-1: /dev/null). */
static int
tar_start(const char *const argv[], int in, int out, struct child *c)
{
    c->errfd = memfd_create("tar-stderr", MFD_CLOEXEC);
    if (c->errfd < 0)
        return -errno;
    int r = subproc_start("tar", argv, in, out, c->errfd, &c->pid);
    if (r < 0)
        close(c->errfd);
    return r;
}

/* Waits for tar; 0 when it exited 0, else -EIO with the end of what it said. */
static int
tar_wait(struct child *c, char *err, size_t n)
{
    int status = 0;
    char text[512] = "";

    while (waitpid(c->pid, &status, 0) < 0)
        if (errno != EINTR)
            return -errno;
    off_t size = lseek(c->errfd, 0, SEEK_END);
    off_t from = size > (off_t)sizeof(text) - 1 ? size - (off_t)sizeof(text) + 1 : 0;
    ssize_t k = pread(c->errfd, text, sizeof(text) - 1, from);
    close(c->errfd);
    size_t len = k > 0 ? (size_t)k : 0;
    while (len && (text[len - 1] == '\n' || text[len - 1] == ' '))
        len--;
    text[len] = '\0';
    /* tar's last line after an error it went on from is only "Exiting with
     * failure status due to previous errors": the line before says why. */
    char *last = strrchr(text, '\n') ? strrchr(text, '\n') + 1 : text;
    while (last > text && strstr(last, "Exiting with failure status")) {
        last[-1] = '\0';
        last = strrchr(text, '\n') ? strrchr(text, '\n') + 1 : text;
    }
    if (WIFEXITED(status) && WEXITSTATUS(status) == 0)
        return 0;
    return fail(err, n, -EIO, "tar failed: %s", last[0] ? last : "no message");
}

static int
write_all(int fd, const void *buf, size_t len, bool sock)
{
    const char *p = buf;

    while (len) {
        ssize_t k = sock ? send(fd, p, len, MSG_NOSIGNAL) : write(fd, p, len);
        if (k < 0 && errno == EINTR)
            continue;
        if (k < 0)
            return -errno;
        p += k;
        len -= (size_t)k;
    }
    return 0;
}

/* ---- pack ---- */

/* The manifest in a directory of its own, so tar finds it by name. */
static int
manifest_dir(const char *manifest, char dir[64])
{
    strscpy(dir, "/tmp/vfleet-archive-XXXXXX", 64);
    if (!mkdtemp(dir))
        return -errno;
    _cleanup_free_ char *p = xasprintf("%s/%s", dir, ARCHIVE_MANIFEST);
    _cleanup_close_ int fd = open(p, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0 || write_all(fd, manifest, strlen(manifest), false) < 0)
        return -errno;
    return 0;
}

static void
manifest_dir_remove(const char *dir)
{
    _cleanup_free_ char *p = xasprintf("%s/%s", dir, ARCHIVE_MANIFEST);
    _cleanup_free_ char *x = xasprintf("%s/excludes", dir);

    unlink(p);
    unlink(x);
    rmdir(dir);
}

/* The excludes as a file tar reads (-X): "./path" per line, anchored. */
static int
exclude_file(const char *mdir, const char *const *excludes, char **out)
{
    *out = xasprintf("%s/excludes", mdir);
    _cleanup_fclose_ FILE *f = fopen(*out, "we");
    if (!f)
        return -errno;
    for (size_t i = 0; excludes && excludes[i]; i++)
        fprintf(f, "./%s\n", excludes[i][0] == '/' ? excludes[i] + 1 : excludes[i]);
    return fflush(f) == 0 ? 0 : -errno;
}

/* Reads tar's stream from rd, compressed into out_fd. */
static int
compress_stream(int rd, int out_fd, struct archive_stats *st, char *err, size_t n)
{
    ZSTD_CCtx *c = ZSTD_createCCtx();
    size_t in_size = ZSTD_CStreamInSize(), out_size = ZSTD_CStreamOutSize();
    _cleanup_free_ char *in = xmalloc(in_size), *outb = xmalloc(out_size);
    int r = 0;

    if (!c)
        abort();
    ZSTD_CCtx_setParameter(c, ZSTD_c_compressionLevel, ZSTD_LEVEL);
    ZSTD_CCtx_setParameter(c, ZSTD_c_checksumFlag, 1);
    (void)ZSTD_CCtx_setParameter(c, ZSTD_c_nbWorkers, 2); /* a build without threads says no */
    for (bool last = false; !last && r >= 0;) {
        ssize_t k = read(rd, in, in_size);
        if (k < 0 && errno == EINTR)
            continue;
        if (k < 0) {
            r = fail(err, n, -errno, "cannot read tar's output: %s", strerror(errno));
            break;
        }
        last = k == 0;
        st->tar_bytes += (uint64_t)k;
        ZSTD_inBuffer ib = {in, (size_t)k, 0};
        size_t left;
        do {
            ZSTD_outBuffer ob = {outb, out_size, 0};
            left = ZSTD_compressStream2(c, &ob, &ib, last ? ZSTD_e_end : ZSTD_e_continue);
            if (ZSTD_isError(left)) {
                r = fail(err, n, -EIO, "zstd: %s", ZSTD_getErrorName(left));
                break;
            }
            if ((r = write_all(out_fd, outb, ob.pos, false)) < 0) {
                fail(err, n, r, "cannot write the archive: %s", strerror(-r));
                break;
            }
            st->file_bytes += ob.pos;
        } while (last ? left != 0 : ib.pos < ib.size);
    }
    ZSTD_freeCCtx(c);
    return r;
}

int
archive_pack(const char *manifest, const char *dir, const char *const *excludes, int out_fd,
             struct archive_stats *st, char *err, size_t errlen)
{
    struct archive_stats dummy = {0};
    char mdir[64];
    _cleanup_free_ char *xfile = NULL;
    struct child c;
    int p[2];

    st = st ? st : &dummy;
    *st = (struct archive_stats){0};
    int r = manifest_dir(manifest, mdir);
    if (r >= 0)
        r = exclude_file(mdir, excludes, &xfile);
    if (r < 0) {
        manifest_dir_remove(mdir);
        return fail(err, errlen, r, "cannot write the manifest: %s", strerror(-r));
    }
    _cleanup_free_ char *xopt = xasprintf("--exclude-from=%s", xfile);
    const char *const argv[] = {"tar",
                                "--create",
                                "--file=-",
                                "--format=posix",
                                "--numeric-owner",
                                "--xattrs",
                                "--xattrs-include=*",
                                "--sparse",
                                "-C",
                                mdir,
                                ARCHIVE_MANIFEST,
                                "--anchored",
                                xopt,
                                "-C",
                                dir,
                                "--transform=s,^\\.,files,S",
                                ".",
                                NULL};
    if (pipe2(p, O_CLOEXEC) < 0) {
        manifest_dir_remove(mdir);
        return -errno;
    }
    r = tar_start(argv, -1, p[1], &c);
    close(p[1]);
    if (r < 0) {
        close(p[0]);
        manifest_dir_remove(mdir);
        return fail(err, errlen, r, "cannot run tar: %s", strerror(-r));
    }
    r = compress_stream(p[0], out_fd, st, err, errlen);
    close(p[0]);
    int t = tar_wait(&c, r < 0 ? NULL : err, errlen);
    manifest_dir_remove(mdir);
    return r < 0 ? r : t;
}

/* ---- unpack ---- */

/* Decompresses in_fd into the socket wr (tar's stdin). */
static int
decompress_stream(int in_fd, int wr, uint64_t max, char *err, size_t n)
{
    uint64_t total = 0;
    ZSTD_DCtx *d = ZSTD_createDCtx();
    size_t in_size = ZSTD_DStreamInSize(), out_size = ZSTD_DStreamOutSize();
    _cleanup_free_ char *in = xmalloc(in_size), *outb = xmalloc(out_size);
    size_t pending = 0;
    int r = 0;

    if (!d)
        abort();
    for (;;) {
        ssize_t k = read(in_fd, in, in_size);
        if (k < 0 && errno == EINTR)
            continue;
        if (k < 0) {
            r = fail(err, n, -errno, "cannot read the archive: %s", strerror(errno));
            break;
        }
        if (k == 0) {
            if (pending)
                r = fail(err, n, -EBADMSG, "the archive ends in the middle of a zstd frame");
            break;
        }
        ZSTD_inBuffer ib = {in, (size_t)k, 0};
        while (ib.pos < ib.size && r >= 0) {
            ZSTD_outBuffer ob = {outb, out_size, 0};
            pending = ZSTD_decompressStream(d, &ob, &ib);
            if (ZSTD_isError(pending))
                r = fail(err, n, -EBADMSG, "the archive is damaged: zstd: %s",
                         ZSTD_getErrorName(pending));
            else if ((total += ob.pos) > max)
                r = fail(err, n, -ENOSPC,
                         "the archive unpacks to more than the %llu bytes there is room for",
                         (unsigned long long)max);
            else if ((r = write_all(wr, outb, ob.pos, true)) < 0)
                fail(err, n, r, "tar stopped reading: %s", strerror(-r));
        }
        if (r < 0)
            break;
    }
    ZSTD_freeDCtx(d);
    return r;
}

int
archive_unpack(int in_fd, const char *dir, char *err, size_t errlen)
{
    return archive_unpack_max(in_fd, dir, UINT64_MAX, err, errlen);
}

int
archive_unpack_max(int in_fd, const char *dir, uint64_t max_bytes, char *err, size_t errlen)
{
    struct child c;
    int sv[2];

    if (mkdir(dir, 0755) < 0 && errno != EEXIST)
        return fail(err, errlen, -errno, "cannot create \"%s\": %s", dir, strerror(errno));
    const char *const argv[] = {"tar",
                                "--extract",
                                "--file=-",
                                "--numeric-owner",
                                "--same-owner",
                                "--same-permissions",
                                "--xattrs",
                                "--xattrs-include=*",
                                "-C",
                                dir,
                                "--strip-components=1",
                                "--wildcards",
                                "files/*",
                                NULL};
    /* A socket, not a pipe: a tar that dies early is EPIPE for send's
     * MSG_NOSIGNAL instead of a SIGPIPE for this process. */
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
        return -errno;
    int r = tar_start(argv, sv[1], -1, &c);
    close(sv[1]);
    if (r < 0) {
        close(sv[0]);
        return fail(err, errlen, r, "cannot run tar: %s", strerror(-r));
    }
    r = decompress_stream(in_fd, sv[0], max_bytes, err, errlen);
    close(sv[0]);
    int t = tar_wait(&c, r < 0 ? NULL : err, errlen);
    return r < 0 ? r : t;
}

/* ---- the manifest ---- */

static uint64_t
octal(const char *p, size_t n)
{
    uint64_t v = 0;

    for (size_t i = 0; i < n && p[i] >= '0' && p[i] <= '7'; i++)
        v = v * 8 + (uint64_t)(p[i] - '0');
    return v;
}

/* The compressed bytes read but not yet inflated: a run of zeros is a few
 * bytes that stand for megabytes, so inflating all of a read could go far
 * past the manifest. */
struct inflate_in {
    char buf[16384];  /* what read returned */
    ZSTD_inBuffer ib; /* its part not inflated yet */
    bool full;        /* the last output chunk was filled: more may be pending */
};

/* Decompresses from in_fd until *have >= want bytes are in *buf, and no
 * further than the output chunk that gets there. */
static int
inflate_to(ZSTD_DCtx *d, int in_fd, struct inflate_in *in, char **buf, size_t *have, size_t want)
{
    while (*have < want) {
        if (in->ib.pos == in->ib.size && !in->full) {
            ssize_t k = read(in_fd, in->buf, sizeof(in->buf));
            if (k <= 0)
                return k < 0 ? -errno : -EBADMSG;
            in->ib = (ZSTD_inBuffer){in->buf, (size_t)k, 0};
        }
        *buf = xrealloc(*buf, *have + 65536);
        ZSTD_outBuffer ob = {*buf + *have, 65536, 0};
        size_t r = ZSTD_decompressStream(d, &ob, &in->ib);
        if (ZSTD_isError(r))
            return -EBADMSG;
        *have += ob.pos;
        in->full = ob.pos == ob.size;
        if (*have > 4 * ARCHIVE_MANIFEST_MAX)
            return -EBADMSG;
    }
    return 0;
}

int
archive_manifest(int in_fd, char **out, char *err, size_t errlen)
{
    ZSTD_DCtx *d = ZSTD_createDCtx();
    _cleanup_free_ struct inflate_in *in = xcalloc(1, sizeof(*in));
    _cleanup_free_ char *buf = NULL;
    size_t have = 0, at = 0;
    int r = 0;

    *out = NULL;
    for (int entries = 0; r >= 0 && entries < 4; entries++) {
        /* A pax extended header ('x', 'g') may come before the manifest. */
        if ((r = inflate_to(d, in_fd, in, &buf, &have, at + 512)) < 0)
            break;
        const char *h = buf + at;
        uint64_t size = octal(h + 124, 12);
        char type = h[156];
        if (memcmp(h + 257, "ustar", 5) != 0 || size > ARCHIVE_MANIFEST_MAX) {
            r = -EBADMSG;
            break;
        }
        if ((r = inflate_to(d, in_fd, in, &buf, &have, at + 512 + size)) < 0)
            break;
        if (type == 'x' || type == 'g') {
            at += 512 + (size + 511) / 512 * 512;
            continue;
        }
        if ((type != '0' && type != '\0') || strncmp(buf + at, ARCHIVE_MANIFEST, 100) != 0) {
            r = -EBADMSG;
            break;
        }
        *out = xstrndup(buf + at + 512, size);
        break;
    }
    ZSTD_freeDCtx(d);
    if (!*out && r >= 0)
        r = -EBADMSG;
    if (r < 0)
        return fail(err, errlen, r, "not a vfleet archive (no %s at its start)", ARCHIVE_MANIFEST);
    return 0;
}
