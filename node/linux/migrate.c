#include "node/linux/migrate.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/fs.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <time.h>
#include <unistd.h>

#include "common/errtext.h"
#include "common/mem.h"
#include "common/mtime.h"
#include "node/linux/mountinfo.h"
#include "node/linux/runprog.h"

#define FREEZE_TIMEOUT_MS 10000 /* a guest that does not freeze in this long is thawed */

static char *
freezer_dir(const struct migrate_cgroups *cg, const char *id)
{
    return cg->v2 ? xasprintf("%s/%s/%s", cg->root, cg->prefix, id)
                  : xasprintf("%s/freezer/%s/%s", cg->root, cg->prefix, id);
}

static int
write_file(const char *dir, const char *file, const char *value)
{
    _cleanup_free_ char *path = xasprintf("%s/%s", dir, file);
    _cleanup_close_ int fd = open(path, O_WRONLY | O_CLOEXEC);

    if (fd < 0)
        return -errno;
    if (write(fd, value, strlen(value)) < 0)
        return -errno;
    return 0;
}

static int
read_file(const char *dir, const char *file, char *buf, size_t n)
{
    _cleanup_free_ char *path = xasprintf("%s/%s", dir, file);
    _cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC);

    if (fd < 0)
        return -errno;
    ssize_t k = read(fd, buf, n - 1);
    if (k < 0)
        return -errno;
    buf[k] = '\0';
    return 0;
}

/* Whether the kernel reports the cgroup at dir frozen (v1: freezer.state
 * says FROZEN, not FREEZING; v2: cgroup.events says "frozen 1"). */
static int
is_frozen(const struct migrate_cgroups *cg, const char *dir)
{
    char buf[512];
    int r = read_file(dir, cg->v2 ? "cgroup.events" : "freezer.state", buf, sizeof(buf));

    if (r < 0)
        return r == -ENOENT ? 0 : r;
    return cg->v2 ? strstr(buf, "frozen 1") != NULL : strncmp(buf, "FROZEN", 6) == 0;
}

int
migrate_frozen(const struct migrate_cgroups *cg, const char *id)
{
    _cleanup_free_ char *dir = freezer_dir(cg, id);
    int r = is_frozen(cg, dir);

    return r < 0 ? 0 : r;
}

static int
cgroup_freeze(const struct migrate_cgroups *cg, const char *id, bool freeze)
{
    _cleanup_free_ char *dir = freezer_dir(cg, id);
    const char *file = cg->v2 ? "cgroup.freeze" : "freezer.state";
    int r = write_file(dir, file, freeze ? (cg->v2 ? "1" : "FROZEN") : (cg->v2 ? "0" : "THAWED"));

    if (r == -ENOENT && !freeze)
        return 0; /* no cgroup: nothing is frozen */
    if (r < 0)
        return errtext_fail(r, "cannot %s the guest's cgroup: %s", freeze ? "freeze" : "thaw",
                            strerror(-r));
    if (!freeze)
        return 0;
    /* Freezing takes until every task reaches the freezer; a task stuck in
     * the kernel (a D state) can keep it FREEZING. */
    for (uint64_t until = time_mono_ms() + FREEZE_TIMEOUT_MS;;) {
        r = is_frozen(cg, dir);
        if (r != 0)
            return r < 0 ? r : 0;
        if (time_mono_ms() > until) {
            (void)write_file(dir, file, cg->v2 ? "0" : "THAWED");
            return errtext_fail(-EBUSY, "the guest did not freeze within %d s",
                                FREEZE_TIMEOUT_MS / 1000);
        }
        struct timespec ts = {0, 5 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
}

/* FIFREEZE/FITHAW on the ext4 disk mounted at disk_mount, if it is one. */
static int
fs_freeze(const char *disk_mount, bool freeze)
{
    struct mountinfo_entry e = {0};
    int r = mountinfo_find(disk_mount, &e);

    if (r == -ENOENT)
        return 0; /* not mounted: the image is still */
    if (r < 0)
        return r;
    bool ours = e.fstype && strcmp(e.fstype, "ext4") == 0 && e.source &&
                strncmp(e.source, "/dev/loop", 9) == 0;
    mountinfo_entry_clear(&e);
    if (!ours)
        return errtext_fail(-EINVAL, "\"%s\" is not the guest's disk", disk_mount);
    _cleanup_close_ int fd = open(disk_mount, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    if (ioctl(fd, freeze ? FIFREEZE : FITHAW, 0) < 0) {
        /* EBUSY: frozen already; EINVAL on thaw: not frozen. */
        if ((freeze && errno == EBUSY) || (!freeze && errno == EINVAL))
            return 0;
        return errtext_fail(-errno, "cannot %s the guest's filesystem: %s",
                            freeze ? "freeze" : "thaw", strerror(errno));
    }
    return 0;
}

int
migrate_freeze(const struct migrate_cgroups *cg, const char *id, const char *disk_mount,
               bool running, bool freeze)
{
    int r;

    if (freeze) {
        r = running ? cgroup_freeze(cg, id, true) : 0;
        if (r >= 0) {
            r = fs_freeze(disk_mount, true);
            if (r < 0 && running)
                (void)cgroup_freeze(cg, id, false);
        }
        return r;
    }
    r = fs_freeze(disk_mount, false);
    int t = cgroup_freeze(cg, id, false);
    return r < 0 ? r : t;
}

static pthread_once_t criu_once = PTHREAD_ONCE_INIT;
static int criu_result;
static char criu_why[256];

/* The line of criu's complaint that says why: the first about the vDSO (what
 * fails on kernels whose vDSO layout criu 3.17 does not know), else the
 * first error, without criu's "Error (file:line): " prefix. */
static void
criu_reason(char *text, char *out, size_t n)
{
    char *pick = NULL, *save = NULL;

    for (char *l = strtok_r(text, "\n", &save); l; l = strtok_r(NULL, "\n", &save)) {
        if (strstr(l, "vdso") || strstr(l, "vDSO")) {
            pick = l;
            break;
        }
        if (!pick && strncmp(l, "Error", 5) == 0)
            pick = l;
    }
    if (pick && strncmp(pick, "Error (", 7) == 0 && strstr(pick, "): "))
        pick = strstr(pick, "): ") + 3;
    snprintf(out, n, "%s", pick ? pick : "criu check failed");
}

static void
criu_run(void)
{
    const char *const argv[] = {"criu", "check", NULL};
    char err[4096] = "";
    int r = runprog(argv, NULL, err, sizeof(err));

    if (r == 0) {
        criu_result = 0;
        snprintf(criu_why, sizeof(criu_why), "criu check passed");
    } else if (r < 0) {
        criu_result = r;
        (void)strscpy(criu_why, err[0] ? err : "criu is not installed", sizeof(criu_why));
    } else {
        criu_result = -EOPNOTSUPP;
        criu_reason(err, criu_why, sizeof(criu_why));
    }
}

int
migrate_criu_check(char *why, size_t n)
{
    pthread_once(&criu_once, criu_run);
    snprintf(why, n, "%s", criu_why);
    return criu_result;
}
