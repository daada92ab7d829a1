#include "node/linux/template_sum.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <gnutls/crypto.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "common/mem.h"

#define SUM_MAX_DEPTH 64 /* directory nesting walked */

static int
by_name(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static int walk(gnutls_hash_hd_t h, int dirfd, const char *rel, int depth, uint64_t *size);

/* One entry: its header, then what it holds. */
static int
entry(gnutls_hash_hd_t h, int dirfd, const char *name, const char *rel, int depth, uint64_t *size)
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
    if (type == 'f')
        n += snprintf(head + n, sizeof(head) - (size_t)n, "%" PRIu64 ":", (uint64_t)st.st_size);
    else if (type == 'c' || type == 'b')
        n += snprintf(head + n, sizeof(head) - (size_t)n, "%u:%u:", major(st.st_rdev),
                      minor(st.st_rdev));
    gnutls_hash(h, head, (size_t)n);
    if (type == 'l') {
        ssize_t k = readlinkat(dirfd, name, buf, sizeof(buf));
        if (k < 0)
            return -errno;
        gnutls_hash(h, buf, (size_t)k);
    } else if (type == 'f') {
        int fd = openat(dirfd, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
        ssize_t k;
        if (fd < 0)
            return -errno;
        while ((k = read(fd, buf, sizeof(buf))) > 0)
            gnutls_hash(h, buf, (size_t)k);
        r = k < 0 ? -errno : 0;
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
walk(gnutls_hash_hd_t h, int dirfd, const char *rel, int depth, uint64_t *size)
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
    gnutls_hash_hd_t h;
    unsigned char d[32];
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC), r;

    *size = 0;
    if (fd < 0)
        return -errno;
    if (gnutls_hash_init(&h, GNUTLS_DIG_SHA256) < 0) {
        close(fd);
        return -EIO;
    }
    r = walk(h, fd, "", 0, size);
    close(fd);
    gnutls_hash_deinit(h, d);
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
    snprintf(key, sizeof(key), "%s %llu %lld.%09ld", name, (unsigned long long)st.st_ino,
             (long long)st.st_ctim.tv_sec, st.st_ctim.tv_nsec);
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
