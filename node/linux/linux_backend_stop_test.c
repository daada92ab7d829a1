/* The linux backend's kill and destroy of a real guest whose processes are
 * not all in the guest's own cgroup: a guest that mounts cgroupfs may move
 * them into cgroups it makes below it (systemd moves its PID 1 into
 * init.scope). Needs root, loop devices, /bin/busybox and the source tree
 * (VFLEET_SOURCE_DIR, set by ctest); skipped (77) otherwise. The teardown
 * destroys the guest and removes its files even when an assertion fails.
 * (linux_backend_test.c has the start paths; this is apart from it for
 * deploy/check-size's 1,000 lines.) */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <setjmp.h>
#include <signal.h>
#include <stdbool.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <cmocka.h>

#include "common/fsutil.h"
#include "common/mem.h"
#include "node/backend.h"
#include "node/linux/linux_backend.h"
#include "node/linux/linux_backend_int.h"

#define MiB (1ULL << 20)

struct fx {
    char dir[128];           /* the test's temporary directory */
    backend_t *b;            /* the backend under test */
    struct guest_spec spec;  /* its one guest */
    struct guest_ids ids;    /* the guest's uid block */
    struct guest_runtime rt; /* the guest while it runs */
};

static int
setup(void **state)
{
    struct fx *fx = xcalloc(1, sizeof(*fx));
    snprintf(fx->dir, sizeof(fx->dir), "/tmp/vf-lxstop-test-%d-XXXXXX", (int)getpid());
    if (!mkdtemp(fx->dir))
        return -1;
    char cmd[2 * PATH_MAX];
    snprintf(cmd, sizeof(cmd), "'%s/deploy/templates/busybox' '%s/templates/busybox' >/dev/null",
             getenv("VFLEET_SOURCE_DIR"), fx->dir);
    if (system(cmd) != 0)
        return -1;

    struct linux_config cfg = {0};
    snprintf(cfg.state_dir, sizeof(cfg.state_dir), "%s/state", fx->dir);
    snprintf(cfg.templates, sizeof(cfg.templates), "%s/templates", fx->dir);
    snprintf(cfg.cgroup_prefix, sizeof(cfg.cgroup_prefix), "vftest-lxs%d", (int)getpid());
    int err = 0;
    fx->b = linux_backend_new(&cfg, &err);
    if (!fx->b)
        return -1;

    struct guest_spec *s = &fx->spec;
    snprintf(s->id, sizeof(s->id), "00000000-0000-4000-8000-4%011x", (unsigned)getpid());
    snprintf(s->name, sizeof(s->name), "lxstop-%u", (unsigned)getpid());
    strscpy(s->template_name, "busybox", sizeof(s->template_name));
    s->generation = 1;
    s->limits.disk = 64 * MiB;
    s->limits.procs = 64;
    s->limits.memory = 64 * MiB;
    /* A block far from any a node on this host hands out, and from
     * linux_backend_test's and bench_start's. */
    fx->ids = (struct guest_ids){0xD0000000u, BACKEND_UID_BLOCK};
    *state = fx;
    return 0;
}

static int
teardown(void **state)
{
    struct fx *fx = *state;
    if (fx->b) {
        if (fx->rt.pid) {
            fx->b->ops->kill(fx->b, &fx->spec, &fx->rt);
            while (waitpid(fx->rt.pid, NULL, 0) < 0 && errno == EINTR)
                ;
        }
        if (fx->b->ops->destroy(fx->b, &fx->spec) < 0)
            fprintf(stderr, "teardown: destroy failed, %s/state left\n", fx->dir);
        fx->b->ops->free(fx->b);
    }
    char cmd[PATH_MAX + 16];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", fx->dir);
    if (system(cmd) != 0)
        fprintf(stderr, "teardown: could not remove %s\n", fx->dir);
    /* The test's own prefix, in every hierarchy (v1 and v2 alike). */
    snprintf(cmd, sizeof(cmd),
             "rmdir /sys/fs/cgroup/*/vftest-lxs%d /sys/fs/cgroup/vftest-lxs%d 2>/dev/null",
             (int)getpid(), (int)getpid());
    (void)system(cmd);
    free(fx);
    return 0;
}

/* Makes <guest's cgroup>/init.scope in every hierarchy (cpuset's cpus
 * and mems copied from the guest's) and moves pid into each, as systemd
 * in a guest that mounts cgroupfs moves its PID 1; with pid 0 removes
 * them again instead (what the test cleans up after a failed kill). */
static void
move_below(struct fx *fx, pid_t pid)
{
    char **paths = NULL;
    assert_int_equal(cgroup_procs_paths(lb(fx->b)->cgroups, fx->spec.id, &paths), 0);
    for (char **q = paths; *q; q++) {
        _cleanup_free_ char *dir = xstrndup(*q, strlen(*q) - strlen("/cgroup.procs"));
        _cleanup_free_ char *sub = xasprintf("%s/init.scope", dir);
        if (!pid) {
            (void)rmdir(sub);
            continue;
        }
        assert_true(mkdir(sub, 0755) == 0 || errno == EEXIST);
        static const char *const files[] = {"cpuset.cpus", "cpuset.mems"};
        for (size_t i = 0; i < ARRAY_SIZE(files); i++) {
            char buf[256];
            _cleanup_free_ char *from = xasprintf("%s/%s", dir, files[i]);
            _cleanup_free_ char *to = xasprintf("%s/%s", sub, files[i]);
            int fd = open(from, O_RDONLY | O_CLOEXEC);
            if (fd < 0)
                continue;
            ssize_t n = read(fd, buf, sizeof(buf));
            close(fd);
            assert_true(n > 0);
            fd = open(to, O_WRONLY | O_CLOEXEC);
            assert_true(fd >= 0);
            assert_int_equal(write(fd, buf, (size_t)n), n);
            close(fd);
        }
        _cleanup_free_ char *procs = xasprintf("%s/cgroup.procs", sub);
        char v[16];
        int len = snprintf(v, sizeof(v), "%d", (int)pid);
        int fd = open(procs, O_WRONLY | O_CLOEXEC);
        assert_true(fd >= 0);
        assert_int_equal(write(fd, v, (size_t)len), len);
        close(fd);
    }
    cgroup_strv_free(&paths);
}

/* Freezes <guest's cgroup>/init.scope (move_below's) in the hierarchies
 * that freeze (v2's cgroup.freeze, v1's freezer.state), as a guest may
 * freeze its own cgroups, and waits until the kernel says it is frozen;
 * with on false thaws it instead. */
static void
freeze_below(struct fx *fx, bool on)
{
    char **paths = NULL;
    int frozen = 0;
    assert_int_equal(cgroup_procs_paths(lb(fx->b)->cgroups, fx->spec.id, &paths), 0);
    for (char **q = paths; *q; q++) {
        _cleanup_free_ char *dir = xstrndup(*q, strlen(*q) - strlen("/cgroup.procs"));
        _cleanup_free_ char *v2 = xasprintf("%s/init.scope/cgroup.freeze", dir);
        _cleanup_free_ char *v1 = xasprintf("%s/init.scope/freezer.state", dir);
        const char *file = access(v2, F_OK) == 0 ? v2 : access(v1, F_OK) == 0 ? v1 : NULL;
        if (!file)
            continue;
        const char *word = file == v2 ? (on ? "1" : "0") : (on ? "FROZEN" : "THAWED");
        int fd = open(file, O_WRONLY | O_CLOEXEC);
        if (fd < 0 || write(fd, word, strlen(word)) != (ssize_t)strlen(word)) {
            if (on)
                fail_msg("could not write %s to %s: %s", word, file, strerror(errno));
        }
        if (fd >= 0)
            close(fd);
        if (!on)
            continue;
        /* The freeze is done once the kernel says so. */
        _cleanup_free_ char *events = xasprintf("%s/init.scope/cgroup.events", dir);
        const char *want = file == v2 ? "frozen 1" : "FROZEN";
        const char *from = file == v2 ? events : v1;
        bool done = false;
        for (int i = 0; i < 200 && !done; i++) {
            char buf[256] = "";
            fd = open(from, O_RDONLY | O_CLOEXEC);
            ssize_t n = fd >= 0 ? read(fd, buf, sizeof(buf) - 1) : -1;
            if (fd >= 0)
                close(fd);
            done = n > 0 && strstr(buf, want) != NULL;
            if (!done)
                usleep(10000);
        }
        if (!done)
            fail_msg("%s did not say %s", from, want);
        frozen++;
    }
    cgroup_strv_free(&paths);
    if (on && frozen == 0)
        fail_msg("no hierarchy of the guest's freezes");
}

/* A guest whose init moved itself into a cgroup below the guest's (systemd
 * with cgroupfs does, to init.scope) is stopped all the same: the kill
 * ends that init, the guest is stopped, and the destroy leaves no cgroup
 * directory. The kill read the guest's own cgroup.procs alone, killed what
 * was there and said "stopped" with init alive, and the next start ran
 * beside it; the destroy's rmdir failed on init.scope. */
static void
test_kill_below(void **state)
{
    struct fx *fx = *state;
    backend_t *b = fx->b;

    assert_int_equal(b->ops->create(b, &fx->spec, &fx->ids), 0);
    assert_int_equal(b->ops->start(b, &fx->spec, &fx->ids, &fx->rt), 0);
    assert_true(fx->rt.pid > 0);
    pid_t init = fx->rt.pid;
    move_below(fx, init);
    int kr = b->ops->kill(b, &fx->spec, &fx->rt);
    /* A process leaves its cgroups as it exits, a moment before it is a
     * zombie to reap. */
    int st = 0;
    pid_t got = 0;
    for (int i = 0; i < 200 && got == 0; i++)
        if ((got = waitpid(init, &st, WNOHANG)) == 0)
            usleep(10000);
    if (got == 0) {
        kill(init, SIGKILL);
        while (waitpid(init, NULL, 0) < 0 && errno == EINTR)
            ;
        fx->rt = (struct guest_runtime){0};
        move_below(fx, 0);
        fail_msg("the guest's init below its cgroup outlived the kill (%d)", kr);
    }
    assert_int_equal(kr, 0);
    assert_true(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL);
    enum guest_state gs = GUEST_RUNNING;
    assert_int_equal(b->ops->state(b, &fx->spec, &fx->rt, &gs), 0);
    assert_int_equal(gs, GUEST_STOPPED);
    fx->rt = (struct guest_runtime){0};

    char **paths = NULL;
    assert_int_equal(cgroup_procs_paths(lb(b)->cgroups, fx->spec.id, &paths), 0);
    int dr = b->ops->destroy(b, &fx->spec);
    for (char **q = paths; *q; q++) {
        _cleanup_free_ char *dir = xstrndup(*q, strlen(*q) - strlen("/cgroup.procs"));
        if (access(dir, F_OK) == 0) {
            _cleanup_free_ char *sub = xasprintf("%s/init.scope", dir);
            (void)rmdir(sub);
            (void)rmdir(dir);
            fail_msg("the destroy (%d) left %s", dr, dir);
        }
    }
    cgroup_strv_free(&paths);
    assert_int_equal(dr, 0);
}

/* A guest's process in a cgroup below the guest's that the guest froze
 * (cgroup.freeze 1 on v2, freezer.state FROZEN on v1) dies all the same,
 * at a stop's kill (destroy false) or at a destroy of the running guest,
 * which leaves no cgroup directory: on v2 a fatal signal ends a frozen
 * process (the kill's SIGKILL to each, the destroy's cgroup.kill), and the
 * guest's own thaw does not thaw a cgroup frozen by itself; v1's freezer
 * keeps such a cgroup frozen through the thaw of the guest's, so the v1
 * kill thaws the ones below first. */
static void
kill_frozen_below(struct fx *fx, bool destroy)
{
    backend_t *b = fx->b;

    assert_int_equal(b->ops->create(b, &fx->spec, &fx->ids), 0);
    assert_int_equal(b->ops->start(b, &fx->spec, &fx->ids, &fx->rt), 0);
    assert_true(fx->rt.pid > 0);
    pid_t init = fx->rt.pid;
    move_below(fx, init);
    freeze_below(fx, true);
    char **paths = NULL;
    assert_int_equal(cgroup_procs_paths(lb(b)->cgroups, fx->spec.id, &paths), 0);
    int kr = destroy ? b->ops->destroy(b, &fx->spec) : b->ops->kill(b, &fx->spec, &fx->rt);
    int st = 0;
    pid_t got = 0;
    for (int i = 0; i < 200 && got == 0; i++)
        if ((got = waitpid(init, &st, WNOHANG)) == 0)
            usleep(10000);
    if (got == 0) {
        freeze_below(fx, false);
        kill(init, SIGKILL);
        while (waitpid(init, NULL, 0) < 0 && errno == EINTR)
            ;
        fx->rt = (struct guest_runtime){0};
        move_below(fx, 0);
        cgroup_strv_free(&paths);
        fail_msg("the guest's init in a frozen cgroup below its own outlived the %s (%d)",
                 destroy ? "destroy" : "kill", kr);
    }
    fx->rt = (struct guest_runtime){0};
    assert_int_equal(kr, 0);
    assert_true(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL);
    if (!destroy) {
        enum guest_state gs = GUEST_RUNNING;
        assert_int_equal(b->ops->state(b, &fx->spec, &fx->rt, &gs), 0);
        assert_int_equal(gs, GUEST_STOPPED);
        assert_int_equal(b->ops->destroy(b, &fx->spec), 0);
    }
    for (char **q = paths; *q; q++) {
        _cleanup_free_ char *dir = xstrndup(*q, strlen(*q) - strlen("/cgroup.procs"));
        if (access(dir, F_OK) == 0) {
            _cleanup_free_ char *sub = xasprintf("%s/init.scope", dir);
            (void)rmdir(sub);
            (void)rmdir(dir);
            cgroup_strv_free(&paths);
            fail_msg("%s left behind", dir);
        }
    }
    cgroup_strv_free(&paths);
}

static void
test_kill_frozen_below(void **state)
{
    kill_frozen_below(*state, false);
}

static void
test_destroy_frozen_below(void **state)
{
    kill_frozen_below(*state, true);
}

int
main(void)
{
    if (geteuid() != 0 || access("/bin/busybox", X_OK) != 0 || !getenv("VFLEET_SOURCE_DIR") ||
        access("/dev/loop-control", F_OK) != 0) {
        fprintf(stderr, "linux_backend_stop_test: needs root, loop devices, /bin/busybox and "
                        "VFLEET_SOURCE_DIR, skipping\n");
        return 77;
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_kill_below, setup, teardown),
        cmocka_unit_test_setup_teardown(test_kill_frozen_below, setup, teardown),
        cmocka_unit_test_setup_teardown(test_destroy_frozen_below, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
