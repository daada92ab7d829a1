#include "node/linux/provision.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <linux/openat2.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "common/errtext.h"
#include "common/mem.h"

#define SHADOW_MAX (1u << 20) /* bytes of /etc/shadow read; a larger one is refused */

/* Who new files belong to: the owner of the guest's root directory. */
struct owner {
    uid_t uid; /* the guest's root user on the host */
    gid_t gid; /* its group */
};

/* openat2 with the guest's root as "/" for every path and symlink in it. */
static int
open_in_root(int rootfd, const char *path, int flags, mode_t mode)
{
    struct open_how how = {
        .flags = (uint64_t)(flags | O_CLOEXEC),
        .mode = mode,
        .resolve = RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS,
    };
    int fd = (int)syscall(SYS_openat2, rootfd, path, &how, sizeof(how));
    return fd < 0 ? -errno : fd;
}

/* Writes len bytes of data as the file name in dirfd: a temporary file made
 * with O_EXCL|O_NOFOLLOW beside it, owned and moded, synced, renamed over. */
static int
replace_file(int dirfd, const char *name, const char *data, size_t len, mode_t mode,
             const struct owner *o)
{
    char tmp[64];
    int fd, r = 0;

    snprintf(tmp, sizeof(tmp), ".%s.vfleet-new", name);
    (void)unlinkat(dirfd, tmp, 0);
    fd = openat(dirfd, tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, mode);
    if (fd < 0)
        return -errno;
    for (size_t off = 0; off < len && r == 0;) {
        ssize_t n = write(fd, data + off, len - off);
        if (n < 0 && errno != EINTR)
            r = -errno;
        else if (n > 0)
            off += (size_t)n;
    }
    if (r == 0 && (fchown(fd, o->uid, o->gid) < 0 || fchmod(fd, mode) < 0 || fsync(fd) < 0))
        r = -errno;
    close(fd);
    if (r == 0 && renameat(dirfd, tmp, dirfd, name) < 0)
        r = -errno;
    if (r < 0)
        (void)unlinkat(dirfd, tmp, 0);
    return r;
}

/* The directory path inside the guest, made (mode, owner o) when missing. */
static int
dir_in_root(int rootfd, const char *parent, const char *name, mode_t mode, const struct owner *o)
{
    _cleanup_close_ int pfd = open_in_root(rootfd, parent, O_PATH | O_DIRECTORY, 0);
    if (pfd < 0)
        return pfd;
    if (mkdirat(pfd, name, mode) == 0) {
        _cleanup_close_ int d = openat(pfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (d < 0 || fchown(d, o->uid, o->gid) < 0)
            return -errno;
    } else if (errno != EEXIST) {
        return -errno;
    }
    char path[256];
    snprintf(path, sizeof(path), "%s/%s", parent, name);
    return open_in_root(rootfd, path, O_PATH | O_DIRECTORY, 0);
}

/* Reads a whole file of the guest, at most SHADOW_MAX bytes; *st its stat.
 * -ENOENT when it does not exist. */
static int
read_in_root(int rootfd, const char *path, char **out, size_t *len, struct stat *st)
{
    _cleanup_close_ int fd = open_in_root(rootfd, path, O_RDONLY | O_NOCTTY | O_NONBLOCK, 0);
    if (fd < 0)
        return fd;
    if (fstat(fd, st) < 0)
        return -errno;
    if (!S_ISREG(st->st_mode) || st->st_size > SHADOW_MAX)
        return -EINVAL;
    char *buf = xmalloc((size_t)st->st_size + 1);
    size_t n = 0;
    while (n < (size_t)st->st_size) {
        ssize_t k = read(fd, buf + n, (size_t)st->st_size - n);
        if (k < 0 && errno == EINTR)
            continue;
        if (k <= 0)
            break;
        n += (size_t)k;
    }
    buf[n] = '\0';
    *out = buf;
    *len = n;
    return 0;
}

/* /etc/shadow with root's hash replaced (and its last change set to today),
 * or a root line put first when there is none; the other lines as they were. */
static int
write_shadow(int rootfd, const char *hash, const struct owner *o)
{
    _cleanup_free_ char *old = NULL;
    struct stat st = {.st_mode = S_IFREG | 0600, .st_uid = o->uid, .st_gid = o->gid};
    size_t len = 0;
    int r = read_in_root(rootfd, "/etc/shadow", &old, &len, &st);
    if (r < 0 && r != -ENOENT)
        return r;
    long days = (long)(time(NULL) / 86400);
    char line[SPEC_HASH_MAX + 96];
    int ll = snprintf(line, sizeof(line), "root:%s:%ld:0:99999:7:::\n", hash, days);
    _cleanup_free_ char *out = xmalloc(len + (size_t)ll + 2);
    size_t n = 0;
    bool done = false;

    for (const char *p = old ? old : ""; *p;) {
        const char *end = strchr(p, '\n');
        size_t l = end ? (size_t)(end - p) : strlen(p);
        if (!done && strncmp(p, "root:", 5) == 0) {
            /* Keep root's aging fields after the hash and the date. */
            const char *f = p + 5;
            const char *rest = memchr(f, ':', l - 5);
            rest = rest ? memchr(rest + 1, ':', l - (size_t)(rest + 1 - p)) : NULL;
            n += (size_t)sprintf(out + n, "root:%s:%ld", hash, days);
            if (rest) {
                memcpy(out + n, rest, l - (size_t)(rest - p));
                n += l - (size_t)(rest - p);
            }
            out[n++] = '\n';
            done = true;
        } else {
            memcpy(out + n, p, l);
            n += l;
            out[n++] = '\n';
        }
        p += l + (end ? 1 : 0);
    }
    if (!done) {
        memmove(out + ll, out, n);
        memcpy(out, line, (size_t)ll);
        n += (size_t)ll;
    }
    _cleanup_close_ int etc = open_in_root(rootfd, "/etc", O_PATH | O_DIRECTORY, 0);
    if (etc < 0)
        return etc;
    struct owner keep = {st.st_uid, st.st_gid};
    return replace_file(etc, "shadow", out, n, st.st_mode & 07777, &keep);
}

static int
write_keys(int rootfd, const char *keys, const struct owner *o)
{
    _cleanup_close_ int root_home = dir_in_root(rootfd, "/", "root", 0700, o);
    if (root_home < 0)
        return root_home;
    close(root_home);
    _cleanup_close_ int ssh = dir_in_root(rootfd, "/root", ".ssh", 0700, o);
    if (ssh < 0)
        return ssh;
    size_t len = strlen(keys);
    _cleanup_free_ char *text = xmalloc(len + 2);
    memcpy(text, keys, len);
    text[len++] = '\n';
    return replace_file(ssh, "authorized_keys", text, len, 0600, o);
}

static int
write_resolv(int rootfd, const struct spec_provision *p, const struct owner *o)
{
    char text[1024];
    size_t n = (size_t)snprintf(text, sizeof(text), "# written by vfleet (provision.dns)\n");

    for (uint32_t i = 0; i < p->n_dns && i < SPEC_MAX_DNS; i++) {
        char a[NETADDR_STRLEN];
        n += (size_t)snprintf(text + n, sizeof(text) - n, "nameserver %s\n",
                              netaddr_format(&p->dns[i], false, a, sizeof(a)));
    }
    if (p->search[0])
        n += (size_t)snprintf(text + n, sizeof(text) - n, "search %s\n", p->search);
    _cleanup_close_ int etc = dir_in_root(rootfd, "/", "etc", 0755, o);
    if (etc < 0)
        return etc;
    return replace_file(etc, "resolv.conf", text, n, 0644, o);
}

int
provision_write(const char *root_dir, const struct spec_provision *p)
{
    _cleanup_close_ int rootfd = open(root_dir, O_PATH | O_DIRECTORY | O_CLOEXEC);
    struct stat st;
    int r;

    if (rootfd < 0 || fstat(rootfd, &st) < 0)
        return errtext_fail(-errno, "cannot open the guest's root to provision it");
    struct owner o = {st.st_uid, st.st_gid};
    if (p->password_hash[0] && (r = write_shadow(rootfd, p->password_hash, &o)) < 0)
        return errtext_fail(r, "cannot write the guest's /etc/shadow: %s", strerror(-r));
    if (p->ssh_keys[0] && (r = write_keys(rootfd, p->ssh_keys, &o)) < 0)
        return errtext_fail(r, "cannot write the guest's /root/.ssh/authorized_keys: %s",
                            strerror(-r));
    if ((p->n_dns || p->search[0]) && (r = write_resolv(rootfd, p, &o)) < 0)
        return errtext_fail(r, "cannot write the guest's /etc/resolv.conf: %s", strerror(-r));
    return 0;
}

/* FNV-1a over the group's members (not its padding): a change detector, not
 * a checksum anyone relies on for security. */
static uint64_t
provision_hash(const struct spec_provision *p)
{
    uint64_t h = 1469598103934665603ULL;
    const char *parts[] = {p->password_hash, p->ssh_keys, p->search};

    for (size_t i = 0; i < 3; i++)
        for (const char *c = parts[i];; c++) {
            h = (h ^ (unsigned char)*c) * 1099511628211ULL;
            if (!*c)
                break;
        }
    for (uint32_t i = 0; i < p->n_dns && i < SPEC_MAX_DNS; i++) {
        const uint8_t *b = (const uint8_t *)&p->dns[i];
        for (size_t k = 0; k < sizeof(p->dns[i]); k++)
            h = (h ^ b[k]) * 1099511628211ULL;
    }
    return h;
}

/* The stamp, replaced by rename so a crash leaves the old one or the new. */
static int
stamp_write(const char *path, const char *text)
{
    char tmp[600];
    int fd, r = 0;

    if (snprintf(tmp, sizeof(tmp), "%s.new", path) >= (int)sizeof(tmp))
        return -ENAMETOOLONG;
    fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (fd < 0)
        return -errno;
    if (write(fd, text, strlen(text)) != (ssize_t)strlen(text) || fsync(fd) < 0)
        r = errno ? -errno : -EIO;
    close(fd);
    if (r == 0 && rename(tmp, path) < 0)
        r = -errno;
    if (r < 0)
        (void)unlink(tmp);
    return r;
}

int
provision_apply(const char *root_dir, const char *stamp_path, const struct spec_provision *p)
{
    char want[32], have[32] = "";
    FILE *f;
    int r;

    if (spec_provision_empty(p))
        return 0;
    snprintf(want, sizeof(want), "%016" PRIx64 "\n", provision_hash(p));
    if ((f = fopen(stamp_path, "re"))) {
        if (!fgets(have, sizeof(have), f))
            have[0] = '\0';
        fclose(f);
    }
    if (strcmp(want, have) == 0)
        return 0;
    r = provision_write(root_dir, p);
    if (r < 0)
        return r;
    r = stamp_write(stamp_path, want);
    return r < 0 ? errtext_fail(r, "cannot write the provision stamp %s", stamp_path) : 0;
}
