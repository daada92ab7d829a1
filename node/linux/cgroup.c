/* Detection, dispatch to the v1/v2 driver, and the file helpers both share. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <linux/magic.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <time.h>
#include <unistd.h>

#include "common/log.h"
#include "common/mem.h"
#include "common/mtime.h"
#include "node/linux/cgroup.h"
#include "node/linux/cgroup_driver.h"
#include "node/linux/fdwalk.h"

/* A guest id becomes a directory name in every hierarchy, so it must be one
 * plain path component: no "/", no "." or "..", nothing a shell or the
 * kernel would read specially. */
static int
cgroup_check_name(const char *s)
{
    if (!s || !*s || strlen(s) > CGROUP_ID_MAX)
        return -EINVAL;
    if (strcmp(s, ".") == 0 || strcmp(s, "..") == 0)
        return -EINVAL;
    for (const char *p = s; *p; p++) {
        char c = *p;
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                  c == '-' || c == '_' || c == '.';
        if (!ok)
            return -EINVAL;
    }
    /* "cgroup.*" and controller-looking names would clash with control files. */
    if (strncmp(s, "cgroup.", 7) == 0)
        return -EINVAL;
    return 0;
}

static bool
cgroup_is_fs(const char *path, long magic)
{
    struct statfs sfs;
    return statfs(path, &sfs) == 0 && sfs.f_type == magic;
}

int
cgroup_detect(const char *root, enum cgroup_mode *out)
{
    struct statfs sfs;
    if (statfs(root, &sfs) < 0)
        return -errno;
    if (sfs.f_type == CGROUP2_SUPER_MAGIC) {
        *out = CGROUP_V2;
        return 0;
    }
    if (sfs.f_type != TMPFS_MAGIC)
        return -ENOMEDIUM;

    /* A tmpfs root is v1 when any controller hierarchy hangs off it. */
    static const char *const ctrls[] = {"memory", "pids", "cpu", "cpuacct", "blkio", "devices"};
    bool v1 = false;
    for (size_t i = 0; i < ARRAY_SIZE(ctrls) && !v1; i++) {
        _cleanup_free_ char *p = xasprintf("%s/%s", root, ctrls[i]);
        v1 = cgroup_is_fs(p, CGROUP_SUPER_MAGIC);
    }
    if (!v1)
        return -ENOMEDIUM;
    _cleanup_free_ char *unified = xasprintf("%s/unified", root);
    *out = cgroup_is_fs(unified, CGROUP2_SUPER_MAGIC) ? CGROUP_HYBRID : CGROUP_V1;
    return 0;
}

const char *
cgroup_mode_to_string(enum cgroup_mode mode)
{
    switch (mode) {
    case CGROUP_V1:
        return "v1";
    case CGROUP_V2:
        return "v2";
    case CGROUP_HYBRID:
        return "hybrid";
    }
    return "unknown";
}

static int
cgroup_mgr_make(const char *root, const char *prefix, enum cgroup_mode mode,
                const struct cgroup_ops *ops, cgroup_mgr_t **ret)
{
    if (!root || !*root || cgroup_check_name(prefix) < 0)
        return -EINVAL;
    cgroup_mgr_t *m = xcalloc(1, sizeof(*m));
    pthread_mutex_init(&m->written_lock, NULL);
    m->ops = ops;
    m->mode = mode;
    m->root = xstrdup(root);
    size_t len = strlen(m->root);
    while (len > 1 && m->root[len - 1] == '/')
        m->root[--len] = '\0';
    m->prefix = xstrdup(prefix);
    int r = ops->init(m);
    if (r < 0) {
        cgroup_mgr_destroy(&m);
        return r;
    }
    log_debug("cgroup: driver=%s mode=%s root=\"%s\" prefix=\"%s\"", ops->name,
              cgroup_mode_to_string(mode), m->root, m->prefix);
    *ret = m;
    return 0;
}

int
cgroup_mgr_new(const char *root, const char *prefix, cgroup_mgr_t **ret)
{
    enum cgroup_mode mode;
    int r = cgroup_detect(root, &mode);
    if (r < 0)
        return r;
    return cgroup_mgr_make(root, prefix, mode, mode == CGROUP_V2 ? &cgroup_v2_ops : &cgroup_v1_ops,
                           ret);
}

int
cgroup_mgr_new_v1(const char *root, const char *prefix, cgroup_mgr_t **ret)
{
    return cgroup_mgr_make(root, prefix, CGROUP_V1, &cgroup_v1_ops, ret);
}

int
cgroup_mgr_new_v2(const char *root, const char *prefix, cgroup_mgr_t **ret)
{
    return cgroup_mgr_make(root, prefix, CGROUP_V2, &cgroup_v2_ops, ret);
}

void
cgroup_mgr_destroy(cgroup_mgr_t **mgr)
{
    if (!mgr || !*mgr)
        return;
    cgroup_mgr_t *m = *mgr;
    if (m->ops && m->ops->fini)
        m->ops->fini(m);
    for (size_t i = 0; i < m->written.cap; i++)
        free(m->written.slots[i].val);
    hmap_str_free(&m->written);
    pthread_mutex_destroy(&m->written_lock);
    free(m->root);
    free(m->prefix);
    free(m);
    *mgr = NULL;
}

enum cgroup_mode
cgroup_mgr_mode(const cgroup_mgr_t *mgr)
{
    return mgr->mode;
}

bool
cgroup_has_device_policy(const cgroup_mgr_t *mgr)
{
    return mgr->ops->device_policy;
}

void
cgroup_mgr_set_test_hooks(cgroup_mgr_t *mgr, const struct cgroup_test_hooks *hooks)
{
    if (hooks)
        mgr->hooks = *hooks;
    else
        memset(&mgr->hooks, 0, sizeof(mgr->hooks));
}

/* The limits last written to one guest's cgroup (cgroup_set_limits_changed). */
struct cgroup_written {
    char id[CGROUP_ID_MAX + 1]; /* the guest, the map's key */
    struct spec_limits lim;     /* what every file of the limits holds */
};

/* l with its padding and unused io_devs zeroed, for a byte compare. */
static void
cgroup_limits_norm(const struct spec_limits *l, struct spec_limits *out)
{
    memset(out, 0, sizeof(*out));
#define CGROUP_NORM_(name, ...) out->name = l->name;
    SPEC_LIMIT_FIELDS(CGROUP_NORM_)
#undef CGROUP_NORM_
    out->n_io_devs = l->n_io_devs < SPEC_MAX_IO_DEVS ? l->n_io_devs : SPEC_MAX_IO_DEVS;
    memcpy(out->io_devs, l->io_devs, out->n_io_devs * sizeof(l->io_devs[0]));
}

/* Records that id's cgroup holds l (or, l NULL, that nothing is known of it). */
static void
cgroup_written_set(cgroup_mgr_t *m, const char *id, const struct spec_limits *l)
{
    pthread_mutex_lock(&m->written_lock);
    struct cgroup_written *w = hmap_str_get(&m->written, id);
    if (!l && w) {
        hmap_str_del(&m->written, id);
        free(w);
    } else if (l) {
        if (!w) {
            w = xcalloc(1, sizeof(*w));
            strscpy(w->id, id, sizeof(w->id));
            hmap_str_put(&m->written, w->id, w);
        }
        cgroup_limits_norm(l, &w->lim);
    }
    pthread_mutex_unlock(&m->written_lock);
}

static bool
cgroup_written_is(cgroup_mgr_t *m, const char *id, const struct spec_limits *l)
{
    struct spec_limits want;
    cgroup_limits_norm(l, &want);
    pthread_mutex_lock(&m->written_lock);
    const struct cgroup_written *w = hmap_str_get(&m->written, id);
    bool same = w && memcmp(&w->lim, &want, sizeof(want)) == 0;
    pthread_mutex_unlock(&m->written_lock);
    return same;
}

/* The public per-guest calls: check the id, then hand over to the driver. */

int
cgroup_create(cgroup_mgr_t *mgr, const char *id)
{
    int r = cgroup_check_name(id);
    if (r < 0)
        return r;
    cgroup_written_set(mgr, id, NULL);
    return mgr->ops->create(mgr, id);
}

bool
cgroup_exists(cgroup_mgr_t *mgr, const char *id)
{
    return cgroup_check_name(id) == 0 && mgr->ops->exists(mgr, id);
}

int
cgroup_list(cgroup_mgr_t *mgr, char ***ret)
{
    char **v = xcalloc(1, sizeof(char *));
    size_t n = 0;
    int r = mgr->ops->list(mgr, &v, &n);

    if (r < 0) {
        cgroup_strv_free(&v);
        return r;
    }
    *ret = v;
    return 0;
}

bool
cgroup_complete(cgroup_mgr_t *mgr, const char *id)
{
    return cgroup_check_name(id) == 0 && mgr->ops->complete(mgr, id);
}

int
cgroup_attach(cgroup_mgr_t *mgr, const char *id, pid_t pid)
{
    if (pid <= 0)
        return -EINVAL;
    int r = cgroup_check_name(id);
    return r < 0 ? r : mgr->ops->attach(mgr, id, pid);
}

int
cgroup_open_v2_fd(cgroup_mgr_t *mgr, const char *id)
{
    int r = cgroup_check_name(id);
    return r < 0 ? r : mgr->ops->open_v2_fd(mgr, id);
}

int
cgroup_procs_paths(cgroup_mgr_t *mgr, const char *id, char ***ret)
{
    int r = cgroup_check_name(id);
    return r < 0 ? r : mgr->ops->procs_paths(mgr, id, ret);
}

void
cgroup_strv_free(char ***strv)
{
    if (!strv || !*strv)
        return;
    for (char **p = *strv; *p; p++)
        free(*p);
    free(*strv);
    *strv = NULL;
}

int
cgroup_set_limits(cgroup_mgr_t *mgr, const char *id, const struct spec_limits *l)
{
    if (!l || l->n_io_devs > SPEC_MAX_IO_DEVS)
        return -EINVAL;
    int r = cgroup_check_name(id);
    if (r < 0)
        return r;
    r = mgr->ops->set_limits(mgr, id, l);
    /* A failure may have written some files: nothing is known then. */
    cgroup_written_set(mgr, id, r < 0 ? NULL : l);
    return r;
}

int
cgroup_set_limits_changed(cgroup_mgr_t *mgr, const char *id, const struct spec_limits *l)
{
    if (l && l->n_io_devs <= SPEC_MAX_IO_DEVS && cgroup_check_name(id) == 0 &&
        cgroup_written_is(mgr, id, l))
        return 0;
    return cgroup_set_limits(mgr, id, l);
}

int
cgroup_usage(cgroup_mgr_t *mgr, const char *id, struct guest_usage *u)
{
    int r = cgroup_check_name(id);
    return r < 0 ? r : mgr->ops->usage(mgr, id, u);
}

int
cgroup_oom_watch(cgroup_mgr_t *mgr, const char *id, bool *prio)
{
    int r = cgroup_check_name(id);
    return r < 0 ? r : mgr->ops->oom_watch(mgr, id, prio);
}

int
cgroup_oom_read(cgroup_mgr_t *mgr, const char *id, int fd, uint64_t *count)
{
    int r = cgroup_check_name(id);
    return r < 0 ? r : mgr->ops->oom_read(mgr, id, fd, count);
}

int
cgroup_pids(cgroup_mgr_t *mgr, const char *id, pid_t **ret, size_t *n)
{
    int r = cgroup_check_name(id);
    return r < 0 ? r : mgr->ops->pids(mgr, id, ret, n);
}

int
cgroup_kill(cgroup_mgr_t *mgr, const char *id)
{
    int r = cgroup_check_name(id);
    if (r < 0)
        return r;
    struct cgroup_kill_one k = {.id = id};
    cgroup_kill_wait(mgr, &k, 1);
    return k.result;
}

int
cgroup_kill_many(cgroup_mgr_t *mgr, char *const *ids, size_t n, int *res)
{
    _cleanup_free_ struct cgroup_kill_one *k = xcalloc(n ? n : 1, sizeof(*k));
    size_t m = 0;

    for (size_t i = 0; i < n; i++) {
        res[i] = cgroup_check_name(ids[i]);
        if (res[i] == 0)
            k[m++] = (struct cgroup_kill_one){.id = ids[i]};
    }
    cgroup_kill_wait(mgr, k, m);
    for (size_t i = 0, j = 0; i < n && j < m; i++) {
        if (res[i] < 0)
            continue;
        res[i] = k[j].result < 0 ? k[j].result : k[j].killed;
        j++;
    }
    return 0;
}

int
cgroup_thaw(cgroup_mgr_t *mgr, const char *id)
{
    int r = cgroup_check_name(id);
    return r < 0 ? r : mgr->ops->thaw(mgr, id);
}

int
cgroup_destroy(cgroup_mgr_t *mgr, const char *id)
{
    int r = cgroup_check_name(id);
    if (r < 0)
        return r;
    cgroup_written_set(mgr, id, NULL);
    return mgr->ops->destroy(mgr, id);
}

/* Shared file helpers. */

int
cgroup_list_dir(const char *dir, char ***v, size_t *n)
{
    DIR *d = opendir(dir);
    struct dirent *e;

    if (!d)
        return errno == ENOENT ? 0 : -errno;
    while ((e = readdir(d))) {
        bool seen = false;
        struct stat st;
        if (cgroup_check_name(e->d_name) < 0)
            continue;
        if (e->d_type != DT_DIR &&
            (e->d_type != DT_UNKNOWN ||
             fstatat(dirfd(d), e->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0 || !S_ISDIR(st.st_mode)))
            continue;
        for (size_t i = 0; i < *n && !seen; i++)
            seen = strcmp((*v)[i], e->d_name) == 0;
        if (seen)
            continue;
        *v = xreallocarray(*v, *n + 2, sizeof(char *));
        (*v)[(*n)++] = xstrdup(e->d_name);
        (*v)[*n] = NULL;
    }
    closedir(d);
    return 0;
}

int
cgroup_write(cgroup_mgr_t *m, const char *dir, const char *file, const char *value)
{
    _cleanup_free_ char *path = xasprintf("%s/%s", dir, file);
    if (m->hooks.written)
        m->hooks.written(path, value, m->hooks.userdata);
    /* O_TRUNC does nothing on cgroupfs but keeps a fake tree's files exact. */
    _cleanup_close_ int fd = open(path, O_WRONLY | O_TRUNC | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    size_t len = strlen(value);
    ssize_t n = write(fd, value, len);
    if (n < 0) {
        int r = -errno;
        log_debug("cgroup: write \"%s\" to %s: %s", value, path, strerror(-r));
        return r;
    }
    return (size_t)n == len ? 0 : -EIO;
}

int
cgroup_writef(cgroup_mgr_t *m, const char *dir, const char *file, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    _cleanup_free_ char *value = NULL;
    int n = vasprintf(&value, fmt, ap);
    va_end(ap);
    if (n < 0)
        abort();
    return cgroup_write(m, dir, file, value);
}

/* Millicores from which a guest's CPU ceiling stays on during its setup. */
#define CGROUP_SETUP_CPU_MAX 1000

bool
cgroup_setup_limits(const struct spec_limits *l, struct spec_limits *out)
{
    *out = *l;
    if (!l->cpu_max || l->cpu_max >= CGROUP_SETUP_CPU_MAX)
        return false;
    out->cpu_max = 0;
    out->cpu_burst = 0;
    return true;
}

bool
cgroup_holds(const char *dir, const char *file, const char *value)
{
    _cleanup_free_ char *cur = NULL;
    if (cgroup_read(dir, file, &cur) < 0)
        return false;
    size_t n = strlen(value);
    return strncmp(cur, value, n) == 0 && (cur[n] == '\0' || (cur[n] == '\n' && !cur[n + 1]));
}

int
cgroup_write_changed(cgroup_mgr_t *m, const char *dir, const char *file, const char *value)
{
    if (cgroup_holds(dir, file, value))
        return 0;
    int r = cgroup_write(m, dir, file, value);
    return r < 0 ? r : 1;
}

/* Reads the file open at fd whole, as cgroup_read does. */
static int
cgroup_read_fd(int fd, char **ret)
{
    size_t cap = 4096, len = 0;
    _cleanup_free_ char *buf = xmalloc(cap + 1);
    for (;;) {
        if (len == cap) {
            if (cap >= CGROUP_READ_MAX)
                return -EFBIG;
            cap *= 2;
            buf = xrealloc(buf, cap + 1);
        }
        ssize_t n = read(fd, buf + len, cap - len);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return -errno;
        }
        if (n == 0)
            break;
        len += (size_t)n;
    }
    buf[len] = '\0';
    *ret = move_ptr(buf);
    return 0;
}

int
cgroup_read(const char *dir, const char *file, char **ret)
{
    _cleanup_free_ char *path = xasprintf("%s/%s", dir, file);
    _cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    return cgroup_read_fd(fd, ret);
}

static int
cgroup_parse_u64(const char *s, const char **end, uint64_t *ret)
{
    if (strncmp(s, "max", 3) == 0) {
        *ret = UINT64_MAX;
        *end = s + 3;
        return 0;
    }
    if (*s < '0' || *s > '9')
        return -EBADMSG;
    errno = 0;
    char *e;
    unsigned long long v = strtoull(s, &e, 10);
    if (errno == ERANGE)
        return -ERANGE;
    *ret = v;
    *end = e;
    return 0;
}

int
cgroup_read_u64(const char *dir, const char *file, uint64_t *ret)
{
    _cleanup_free_ char *text = NULL;
    int r = cgroup_read(dir, file, &text);
    if (r < 0)
        return r;
    const char *end;
    r = cgroup_parse_u64(text, &end, ret);
    if (r < 0)
        return r;
    return (*end == '\n' || *end == '\0') ? 0 : -EBADMSG;
}

int
cgroup_text_key(const char *text, const char *key, uint64_t *ret)
{
    size_t klen = strlen(key);
    for (const char *line = text; line && *line;) {
        if (strncmp(line, key, klen) == 0 && line[klen] == ' ') {
            const char *end;
            int r = cgroup_parse_u64(line + klen + 1, &end, ret);
            if (r < 0)
                return r;
            return (*end == '\n' || *end == '\0') ? 0 : -EBADMSG;
        }
        line = strchr(line, '\n');
        if (line)
            line++;
    }
    return -ENODATA;
}

int
cgroup_read_key(const char *dir, const char *file, const char *key, uint64_t *ret)
{
    _cleanup_free_ char *text = NULL;
    int r = cgroup_read(dir, file, &text);
    if (r < 0)
        return r;
    return cgroup_text_key(text, key, ret);
}

bool
cgroup_file_exists(const char *dir, const char *file)
{
    _cleanup_free_ char *path = xasprintf("%s/%s", dir, file);
    return access(path, F_OK) == 0;
}

int
cgroup_parse_pids(const char *text, pid_t **pids, size_t *n)
{
    for (const char *p = text; *p;) {
        if (*p == '\n') {
            p++;
            continue;
        }
        errno = 0;
        char *end;
        long v = strtol(p, &end, 10);
        if (end == p || errno || v <= 0 || v > INT32_MAX || (*end != '\n' && *end != '\0'))
            return -EBADMSG;
        *pids = xreallocarray(*pids, *n + 1, sizeof(pid_t));
        (*pids)[(*n)++] = (pid_t)v;
        p = end;
    }
    return 0;
}

int
cgroup_mkdir(cgroup_mgr_t *m, const char *path)
{
    if (mkdir(path, 0755) < 0) {
        if (errno != EEXIST)
            return -errno;
        return 0;
    }
    if (m->hooks.populate) {
        int r = m->hooks.populate(path, m->hooks.userdata);
        if (r < 0)
            return r;
    }
    return 1;
}

int
cgroup_rmdir(cgroup_mgr_t *m, const char *path)
{
    if (access(path, F_OK) < 0)
        return errno == ENOENT ? 0 : -errno;
    if (m->hooks.unpopulate) {
        int r = m->hooks.unpopulate(path, m->hooks.userdata);
        if (r < 0)
            return r;
    }
    for (unsigned i = 0;; i++) {
        if (rmdir(path) == 0 || errno == ENOENT)
            return 0;
        if (errno != EBUSY || i >= 50)
            return -errno;
        cgroup_sleep_ms(10);
    }
}

/* ---- A guest's cgroup with the cgroups below it ---- */

bool
cgroup_has_children(const char *dir)
{
    struct stat st;
    /* kernfs, like tmpfs and ext4, counts a directory's subdirectories in
     * its link count ("." and the parent's entry make 2); a file system
     * that does not (btrfs says 1) reads as "maybe", and is walked. */
    return stat(dir, &st) == 0 && st.st_nlink != 2;
}

/* What a walk of the cgroups below a guest's collects. */
struct tree_pids {
    pid_t **pids; /* the caller's array, appended to */
    size_t *n;    /* its length */
};

static int
tree_pids_one(int dirfd, const char *name, const struct stat *st, void *userdata)
{
    struct tree_pids *t = userdata;
    _cleanup_free_ char *text = NULL;
    if (!S_ISDIR(st->st_mode))
        return 0;
    _cleanup_close_ int dfd = openat(dirfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (dfd < 0)
        return errno == ENOENT ? 0 : -errno; /* removed since the readdir */
    _cleanup_close_ int fd = openat(dfd, "cgroup.procs", O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0)
        return errno == ENOENT ? 0 : -errno;
    int r = cgroup_read_fd(fd, &text);
    if (r < 0)
        return r == -ENODEV ? 0 : r; /* a cgroup removed while it was read */
    return cgroup_parse_pids(text, t->pids, t->n);
}

int
cgroup_tree_pids(const char *dir, bool top, pid_t **pids, size_t *n)
{
    if (top) {
        _cleanup_free_ char *text = NULL;
        int r = cgroup_read(dir, "cgroup.procs", &text);
        if (r < 0)
            return r;
        if ((r = cgroup_parse_pids(text, pids, n)) < 0)
            return r;
    }
    if (!cgroup_has_children(dir))
        return 0;
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    struct tree_pids t = {.pids = pids, .n = n};
    return fdwalk_dirs(fd, tree_pids_one, &t);
}

/* rmdir of name in dirfd, retrying -EBUSY briefly (cgroup_rmdir). */
static int
cgroup_rmdir_at(cgroup_mgr_t *m, int dirfd, const char *name)
{
    if (m->hooks.unpopulate) {
        _cleanup_free_ char *path = xasprintf("/proc/self/fd/%d/%s", dirfd, name);
        int r = m->hooks.unpopulate(path, m->hooks.userdata);
        if (r < 0)
            return r;
    }
    for (unsigned i = 0;; i++) {
        if (unlinkat(dirfd, name, AT_REMOVEDIR) == 0 || errno == ENOENT)
            return 0;
        if (errno != EBUSY || i >= 50)
            return -errno;
        cgroup_sleep_ms(10);
    }
}

static int
tree_rmdir_one(int dirfd, const char *name, const struct stat *st, void *userdata)
{
    return S_ISDIR(st->st_mode) ? cgroup_rmdir_at(userdata, dirfd, name) : 0;
}

int
cgroup_tree_rmdir(cgroup_mgr_t *m, const char *dir)
{
    if (cgroup_has_children(dir)) {
        int fd = open(dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (fd < 0)
            return errno == ENOENT ? 0 : -errno;
        /* The walk hands a directory over after its entries: the deepest
         * cgroups go first, as the kernel refuses to remove a parent. */
        int r = fdwalk_dirs(fd, tree_rmdir_one, m);
        if (r < 0)
            return r;
    }
    return cgroup_rmdir(m, dir);
}

void
cgroup_sleep_ms(unsigned ms)
{
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
        ;
}

void
cgroup_kill_wait(cgroup_mgr_t *m, struct cgroup_kill_one *k, size_t n)
{
    uint64_t deadline = time_mono_ms() + CGROUP_KILL_TIMEOUT_MS;
    unsigned nap = 1;

    for (size_t i = 0; i < n; i++)
        k[i].result = 1;
    for (;;) {
        size_t left = 0;
        for (size_t i = 0; i < n; i++) {
            if (k[i].result != 1)
                continue;
            m->ops->kill_pass(m, &k[i]);
            left += k[i].result == 1;
        }
        if (!left)
            return;
        if (time_mono_ms() > deadline) {
            for (size_t i = 0; i < n; i++) {
                if (k[i].result != 1)
                    continue;
                log_debug("cgroup: guest=%s still has processes after kill", k[i].id);
                k[i].result = -EBUSY;
            }
            return;
        }
        cgroup_sleep_ms(nap);
        if (nap < 64)
            nap *= 2;
    }
}
