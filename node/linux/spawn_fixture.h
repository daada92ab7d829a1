/* The fixture of the spawner's tests (spawn_test.c, spawn_cgroup_test.c,
 * spawn_exec_test.c): real guests (root, a busybox rootfs in a temp
 * directory), a spawner made before any thread, the guest the exec tests
 * run in, and the helpers that start, run in and stop them. Each test
 * program includes it once. */
#pragma once
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <glob.h>
#include <inttypes.h>
#include <linux/capability.h>
#include <poll.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>
#include <cmocka.h>

#include "common/mem.h"
#include "node/linux/console.h"
#include "node/linux/proc.h"
#include "node/linux/spawn.h"
#include "proto/spec.h"

#define BUSYBOX "/bin/busybox"

static const char *const applets[] = {"sh", "sleep", "ps",   "hostname", "cat",   "mknod", "mount",
                                      "id", "ls",    "head", "yes",      "touch", "rm",    "wc"};

/* What every test shares: the rootfs and a spawner made before any thread. */
static char rootfs[64];
static spawner_t *spawner;

/* Inits started by the tests: a failed assertion jumps out of a test, so the
 * group teardown kills whatever is still here (guests outlive their starter). */
static pid_t live[16];
/* Cgroup directories test_cgroups made, for the same reason. */
static char cg_dirs[2][128];
/* A plain directory beside the rootfs a test made (test_cgroup_joined_by_self's
 * stand-in for a cgroup), for the same reason. */
static char side_dir[128];

static __attribute__((unused)) void
track(pid_t pid, bool add)
{
    for (size_t i = 0; i < ARRAY_SIZE(live); i++)
        if (live[i] == (add ? 0 : pid)) {
            live[i] = add ? pid : 0;
            return;
        }
}

/* A running guest; stop_guest kills and reaps it. */
struct guest {
    struct spawn_config cfg; /* how it was started */
    struct spawn_result res; /* its init */
};

static __attribute__((unused)) void
copy_file(const char *from, const char *to)
{
    int in = open(from, O_RDONLY | O_CLOEXEC);
    assert_true(in >= 0);
    int out = open(to, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0755);
    assert_true(out >= 0);
    char buf[65536];
    ssize_t n;
    while ((n = read(in, buf, sizeof(buf))) > 0)
        assert_int_equal(write(out, buf, (size_t)n), n);
    assert_int_equal(n, 0);
    close(in);
    close(out);
}

static __attribute__((unused)) int
remove_tree(const char *path)
{
    DIR *d = opendir(path);
    if (!d)
        return unlink(path);
    struct dirent *e;
    while ((e = readdir(d))) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        char sub[512];
        snprintf(sub, sizeof(sub), "%s/%s", path, e->d_name);
        struct stat st;
        if (lstat(sub, &st) == 0 && S_ISDIR(st.st_mode))
            remove_tree(sub);
        else
            unlink(sub);
    }
    closedir(d);
    return rmdir(path);
}

static __attribute__((unused)) void
make_cfg(struct spawn_config *cfg, const char *hostname, uint64_t caps)
{
    memset(cfg, 0, sizeof(*cfg));
    strcpy(cfg->rootfs, rootfs);
    strcpy(cfg->hostname, hostname);
    strcpy(cfg->domainname, "example.test");
    strcpy(cfg->init, "/bin/sh");
    strcpy(cfg->args[0], "-c");
    strcpy(cfg->args[1], "trap 'exit 0' TERM; while :; do sleep 1; done");
    cfg->caps = caps;
    cfg->nofile = 4096;
}

static __attribute__((unused)) void
start_guest(struct guest *g)
{
    int r = spawner_start(spawner, &g->cfg, &g->res);
    if (r < 0)
        fail_msg("spawner_start: %s (%s)", strerror(-r), g->res.error);
    assert_true(g->res.pid > 0);
    track(g->res.pid, true);
    assert_true(g->res.pidfd >= 0);
    assert_int_equal(proc_is_same(g->res.pid, g->res.start_time), 1);
}

static __attribute__((unused)) void
stop_guest(struct guest *g)
{
    if (g->res.pid <= 0)
        return;
    /* The pidfd names init: not readable while it runs, readable once it has exited. */
    struct pollfd pfd = {.fd = g->res.pidfd, .events = POLLIN};
    assert_int_equal(poll(&pfd, 1, 0), 0);
    /* SIGKILL to init ends the whole pid namespace. */
    kill(g->res.pid, SIGKILL);
    assert_int_equal(poll(&pfd, 1, -1), 1);
    int st;
    assert_int_equal(waitpid(g->res.pid, &st, 0), g->res.pid);
    track(g->res.pid, false);
    assert_true(WIFSIGNALED(st));
    close(g->res.pidfd);
    g->res.pid = 0;
}

/* Runs argv (NULL-terminated varargs) in g with the given limits. */
static __attribute__((unused)) int
run_in(spawner_t *sp, struct guest *g, uint32_t timeout_ms, uint32_t max_output,
       struct exec_result *res, ...)
{
    char *argv[16];
    size_t n = 0;
    va_list ap;
    va_start(ap, res);
    while (n < ARRAY_SIZE(argv) - 1 && (argv[n] = va_arg(ap, char *)))
        n++;
    va_end(ap);
    argv[n] = NULL;
    struct exec_request req = {.argv = argv, .timeout_ms = timeout_ms, .max_output = max_output};
    return spawner_exec(sp, &g->cfg, g->res.pid, g->res.start_time, &req, res);
}

#define RUN(g, res, ...)                                                                           \
    assert_int_equal(run_in(spawner, (g), 10000, 65536, (res), __VA_ARGS__, NULL), 0)

/* The guest the exec tests run in, one per test (exec_setup, exec_teardown). */
static __attribute__((unused)) struct guest exec_guest;

static __attribute__((unused)) int
exec_setup(void **state)
{
    make_cfg(&exec_guest.cfg, "vf-exec", spec_default_caps());
    start_guest(&exec_guest);
    return 0;
}

static __attribute__((unused)) int
exec_teardown(void **state)
{
    stop_guest(&exec_guest);
    return 0;
}

/* ---- group fixtures ---- */

static __attribute__((unused)) int
setup(void **state)
{
    if (geteuid() != 0) {
        fprintf(stderr, "spawn_test: needs root, skipping\n");
        exit(77);
    }
    if (access(BUSYBOX, X_OK) != 0) {
        fprintf(stderr, "spawn_test: no %s (busybox-static), skipping\n", BUSYBOX);
        exit(77);
    }
    /* Before any thread: the spawner is forked here. It starts with
     * SIGUSR2 ignored, as an agent's spawner may start with a signal
     * ignored: no guest process may keep it (test_signals_default). */
    int err;
    struct sigaction ign = {.sa_handler = SIG_IGN}, was;
    sigemptyset(&ign.sa_mask);
    assert_int_equal(sigaction(SIGUSR2, &ign, &was), 0);
    spawner = spawner_new(&err);
    assert_int_equal(sigaction(SIGUSR2, &was, NULL), 0);
    if (!spawner)
        fail_msg("spawner_new: %s", strerror(-err));

    snprintf(rootfs, sizeof(rootfs), "/tmp/vf-spawn-%d-XXXXXX", (int)getpid());
    assert_non_null(mkdtemp(rootfs));
    chmod(rootfs, 0755);
    const char *dirs[] = {"bin", "proc", "sys", "dev", "tmp", "mnt", "etc"};
    char path[256];
    for (size_t i = 0; i < ARRAY_SIZE(dirs); i++) {
        snprintf(path, sizeof(path), "%s/%s", rootfs, dirs[i]);
        assert_int_equal(mkdir(path, 0755), 0);
    }
    snprintf(path, sizeof(path), "%s/bin/busybox", rootfs);
    copy_file(BUSYBOX, path);
    for (size_t i = 0; i < ARRAY_SIZE(applets); i++) {
        snprintf(path, sizeof(path), "%s/bin/%s", rootfs, applets[i]);
        assert_int_equal(symlink("busybox", path), 0);
    }
    return 0;
}

static __attribute__((unused)) int
teardown(void **state)
{
    for (size_t i = 0; i < ARRAY_SIZE(live); i++)
        if (live[i] > 0) {
            kill(live[i], SIGKILL);
            waitpid(live[i], NULL, 0);
        }
    for (size_t i = 0; i < ARRAY_SIZE(cg_dirs); i++)
        if (cg_dirs[i][0])
            rmdir(cg_dirs[i]);
    spawner_destroy(&spawner);
    assert_null(spawner);
    if (side_dir[0])
        remove_tree(side_dir);
    if (rootfs[0]) {
        /* The console rings beside the rootfs ("<rootfs>.console.ring",
         * ".cg.ring", ...): a failed assertion jumps past a test's own
         * unlink of its ring, which left it in /tmp. */
        char pat[128];
        glob_t gl;
        snprintf(pat, sizeof(pat), "%s.*ring", rootfs);
        if (glob(pat, GLOB_NOSORT, NULL, &gl) == 0) {
            for (size_t i = 0; i < gl.gl_pathc; i++)
                unlink(gl.gl_pathv[i]);
            globfree(&gl);
        }
        remove_tree(rootfs);
    }
    return 0;
}

/* ---- proc helpers ---- */
