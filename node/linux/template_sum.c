#include "node/linux/template_sum.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <nettle/sha2.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "common/mem.h"

#define SUM_MAX_DEPTH 64          /* directory nesting walked */
#define SUM_BLOCK     (64 * 1024) /* a file is summed in blocks this long */
#define SUM_CACHE_TAG "2"         /* the cache's lines of this way of summing */

static int
by_name(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static int walk(struct sha256_ctx *h, int dirfd, const char *rel, int depth, uint64_t *size);

/* A run of zero blocks: "Z" and their count (8 bytes, little-endian). */
static void
zeros_flush(struct sha256_ctx *h, uint64_t *run)
{
    unsigned char z[9] = {'Z'};

    if (!*run)
        return;
    for (int i = 0; i < 8; i++)
        z[1 + i] = (unsigned char)(*run >> (8 * i));
    sha256_update(h, sizeof(z), (const uint8_t *)z);
    *run = 0;
}

/* A file's bytes, block by block: a block of zeros (a hole, or zeros
 * written out) counts in a run of zero blocks, any other is "D" and its
 * bytes. So a sparse copy and a full one sum the same, and a hole is
 * skipped with SEEK_DATA instead of read: a file of 100 GB of holes sums
 * in no time. */
static int
file_sum(struct sha256_ctx *h, int fd, uint64_t len)
{
    static const unsigned char zero[SUM_BLOCK];
    unsigned char buf[SUM_BLOCK];
    uint64_t off = 0, run = 0;

    while (off < len) {
        off_t d = lseek(fd, (off_t)off, SEEK_DATA);
        if (d < 0 && errno != ENXIO)
            return -errno;
        if (d < 0) { /* a hole to the end */
            run += (len - off + SUM_BLOCK - 1) / SUM_BLOCK;
            break;
        }
        uint64_t block = (uint64_t)d / SUM_BLOCK * SUM_BLOCK;
        if (block > off) {
            run += (block - off) / SUM_BLOCK;
            off = block;
            continue;
        }
        size_t n = len - off < SUM_BLOCK ? (size_t)(len - off) : SUM_BLOCK, got = 0;
        while (got < n) {
            ssize_t k = pread(fd, buf + got, n - got, (off_t)(off + got));
            if (k < 0 && errno == EINTR)
                continue;
            if (k <= 0)
                return k < 0 ? -errno : -EIO; /* shorter than its size said */
            got += (size_t)k;
        }
        if (memcmp(buf, zero, n) == 0) {
            run++;
        } else {
            zeros_flush(h, &run);
            sha256_update(h, 1, (const uint8_t *)"D");
            sha256_update(h, n, (const uint8_t *)buf);
        }
        off += n;
    }
    zeros_flush(h, &run);
    return 0;
}

/* One entry: its header, then what it holds. */
static int
entry(struct sha256_ctx *h, int dirfd, const char *name, const char *rel, int depth, uint64_t *size)
{
    struct stat st;
    char head[PATH_MAX + 128], buf[65536];
    int r = 0;

    if (fstatat(dirfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0)
        return -errno;
    char type = S_ISDIR(st.st_mode)    ? 'd'
                : S_ISREG(st.st_mode)  ? 'f'
                : S_ISLNK(st.st_mode)  ? 'l'
                : S_ISCHR(st.st_mode)  ? 'c'
                : S_ISBLK(st.st_mode)  ? 'b'
                : S_ISFIFO(st.st_mode) ? 'p'
                                       : 's';
    int n = snprintf(head, sizeof(head), "%s/%s%c%c%o:%u:%u:", rel, name, '\0', type,
                     (unsigned)(st.st_mode & 07777), (unsigned)st.st_uid, (unsigned)st.st_gid);
    /* A path longer than the header holds (a tree nested deep with long
     * names): refused, never summed from a cut header or past it. */
    if (n < 0 || (size_t)n >= sizeof(head) - 64)
        return -ENAMETOOLONG;
    if (type == 'f')
        n += snprintf(head + n, sizeof(head) - (size_t)n, "%" PRIu64 ":", (uint64_t)st.st_size);
    else if (type == 'c' || type == 'b')
        n += snprintf(head + n, sizeof(head) - (size_t)n, "%u:%u:", major(st.st_rdev),
                      minor(st.st_rdev));
    sha256_update(h, (size_t)n, (const uint8_t *)head);
    if (type == 'l') {
        ssize_t k = readlinkat(dirfd, name, buf, sizeof(buf));
        if (k < 0)
            return -errno;
        sha256_update(h, (size_t)k, (const uint8_t *)buf);
    } else if (type == 'f') {
        int fd = openat(dirfd, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
        if (fd < 0)
            return -errno;
        r = file_sum(h, fd, (uint64_t)st.st_size);
        close(fd);
        *size += (uint64_t)st.st_size;
    } else if (type == 'd') {
        if (depth >= SUM_MAX_DEPTH)
            return -ELOOP;
        int sub = openat(dirfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        _cleanup_free_ char *path = xasprintf("%s/%s", rel, name);
        if (sub < 0)
            return -errno;
        r = walk(h, sub, path, depth + 1, size);
        close(sub);
    }
    return r;
}

/* Every entry of dirfd (closed by the caller) in name order. */
static int
walk(struct sha256_ctx *h, int dirfd, const char *rel, int depth, uint64_t *size)
{
    int fd = dup(dirfd);
    DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
    char **names = NULL;
    size_t n = 0, cap = 0;
    struct dirent *e;
    int r = 0;

    if (!d) {
        if (fd >= 0)
            close(fd);
        return -errno;
    }
    while ((e = readdir(d))) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
            continue;
        if (n == cap)
            names = xrealloc(names, (cap = cap ? cap * 2 : 64) * sizeof(*names));
        names[n++] = xstrdup(e->d_name);
    }
    closedir(d);
    if (n)
        qsort(names, n, sizeof(*names), by_name);
    for (size_t i = 0; i < n; i++) {
        if (r == 0)
            r = entry(h, dirfd, names[i], rel, depth, size);
        free(names[i]);
    }
    free(names);
    return r;
}

int
template_sum(const char *dir, char sum[TEMPLATE_SUM_LEN + 1], uint64_t *size)
{
    struct sha256_ctx h;
    unsigned char d[32];
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC), r;

    *size = 0;
    if (fd < 0)
        return -errno;
    sha256_init(&h);
    r = walk(&h, fd, "", 0, size);
    close(fd);
    sha256_digest(&h, sizeof(d), d);
    if (r < 0)
        return r;
    strcpy(sum, "sha256:");
    for (int i = 0; i < 32; i++)
        snprintf(sum + 7 + 2 * i, 3, "%02x", d[i]);
    return 0;
}

int
template_sum_cached(const char *dir, const char *name, const char *cache_path,
                    char sum[TEMPLATE_SUM_LEN + 1], uint64_t *size)
{
    struct stat st;
    char line[512], key[256];
    FILE *f;

    if (stat(dir, &st) < 0)
        return -errno;
    snprintf(key, sizeof(key), SUM_CACHE_TAG " %s %llu %lld.%09ld", name,
             (unsigned long long)st.st_ino, (long long)st.st_ctim.tv_sec, st.st_ctim.tv_nsec);
    if ((f = fopen(cache_path, "re"))) {
        while (fgets(line, sizeof(line), f)) {
            size_t kl = strlen(key);
            unsigned long long sz;
            char s[TEMPLATE_SUM_LEN + 2];
            if (strncmp(line, key, kl) == 0 && line[kl] == ' ' &&
                sscanf(line + kl, " %llu %72s", &sz, s) == 2 && strlen(s) == TEMPLATE_SUM_LEN) {
                fclose(f);
                memcpy(sum, s, TEMPLATE_SUM_LEN + 1);
                *size = sz;
                return 0;
            }
        }
        fclose(f);
    }
    int r = template_sum(dir, sum, size);
    if (r < 0)
        return r;
    /* Appended: a stale line of an older tree is simply never matched again. */
    if ((f = fopen(cache_path, "ae"))) {
        fprintf(f, "%s %llu %s\n", key, (unsigned long long)*size, sum);
        fclose(f);
    }
    return 0;
}
