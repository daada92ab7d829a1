/* Tests for node/linux/spawn: real guests (root, a busybox rootfs in a temp
 * directory), each property proven by its effect as seen from inside the
 * guest through spawner_exec. Skips (77) without root or /bin/busybox. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
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

static void
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

static void
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

static int
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

static void
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

static void
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

static void
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
static int
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

/* ---- group fixtures ---- */

static int
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
    /* Before any thread: the spawner is forked here. */
    int err;
    spawner = spawner_new(&err);
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

static int
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
    if (rootfs[0]) {
        char log[128];
        snprintf(log, sizeof(log), "%s.console.ring", rootfs);
        unlink(log);
        remove_tree(rootfs);
    }
    return 0;
}

/* ---- proc helpers ---- */

static uint64_t
uptime_ticks(void)
{
    FILE *f = fopen("/proc/uptime", "re");
    assert_non_null(f);
    double up;
    assert_int_equal(fscanf(f, "%lf", &up), 1);
    fclose(f);
    return (uint64_t)(up * (double)sysconf(_SC_CLK_TCK)) + 1;
}

static void
test_proc_start_time(void **state)
{
    uint64_t self;
    assert_int_equal(proc_start_time(getpid(), &self), 0);
    assert_true(self > 0 && self <= uptime_ticks());
    assert_int_equal(proc_is_same(getpid(), self), 1);
    assert_int_equal(proc_is_same(getpid(), self + 1), 0);

    /* A command name with spaces and ')' must not shift the fields. */
    int p[2];
    assert_int_equal(pipe2(p, O_CLOEXEC), 0);
    pid_t child = fork();
    assert_true(child >= 0);
    if (child == 0) {
        prctl(PR_SET_NAME, "a) (b c) d", 0, 0, 0);
        close(p[1]);
        char c;
        (void)!read(p[0], &c, 1);
        _exit(0);
    }
    close(p[0]);
    /* Wait until the child has renamed itself. */
    char comm[64] = "";
    char path[64];
    snprintf(path, sizeof(path), "/proc/%d/comm", (int)child);
    for (int i = 0; i < 1000 && strncmp(comm, "a) (b c) d", 10) != 0; i++) {
        FILE *f = fopen(path, "re");
        if (f) {
            if (!fgets(comm, sizeof(comm), f))
                comm[0] = '\0';
            fclose(f);
        }
        usleep(1000);
    }
    assert_memory_equal(comm, "a) (b c) d", 10);
    uint64_t t;
    assert_int_equal(proc_start_time(child, &t), 0);
    /* A wrong field (priority, nice, utime...) would be far below our own start. */
    assert_true(t >= self && t <= uptime_ticks());
    assert_int_equal(proc_is_same(child, t), 1);
    close(p[1]);
    assert_int_equal(waitpid(child, NULL, 0), child);
    assert_int_equal(proc_is_same(child, t), 0);
    assert_int_equal(proc_start_time(child, &t), -ESRCH);
}

/* ---- starting guests ---- */

static void
test_identity_and_pid_ns(void **state)
{
    struct guest g;
    char name[32];
    snprintf(name, sizeof(name), "vf-id-%d", (int)getpid());
    make_cfg(&g.cfg, name, spec_default_caps());
    start_guest(&g);
    struct exec_result r;

    RUN(&g, &r, "hostname");
    char want[40];
    snprintf(want, sizeof(want), "%s\n", name);
    assert_string_equal(r.out, want);
    exec_result_clear(&r);

    RUN(&g, &r, "cat", "/proc/sys/kernel/domainname");
    assert_string_equal(r.out, "example.test\n");
    exec_result_clear(&r);

    /* busybox ps reads the guest's /proc: init is pid 1 and nothing of the host shows. */
    RUN(&g, &r, "ps");
    assert_int_equal(r.exit_code, 0);
    int lines = 0;
    bool init_is_1 = false;
    for (char *line = strtok(r.out, "\n"); line; line = strtok(NULL, "\n")) {
        int pid;
        if (sscanf(line, "%d", &pid) != 1)
            continue; /* the header */
        lines++;
        assert_true(pid < 100);
        if (pid == 1 && strstr(line, "/bin/sh -c trap"))
            init_is_1 = true;
        assert_null(strstr(line, "spawn_test"));
    }
    assert_true(init_is_1);
    /* init, its sleep, ps itself. */
    assert_true(lines >= 2 && lines <= 4);
    exec_result_clear(&r);

    /* Our own host pid does not exist in the guest's /proc. */
    char proc_self[32];
    snprintf(proc_self, sizeof(proc_self), "/proc/%d/status", (int)getpid());
    RUN(&g, &r, "cat", proc_self);
    if (getpid() > 100)
        assert_int_not_equal(r.exit_code, 0);
    exec_result_clear(&r);

    /* RLIMIT_NOFILE reached init. */
    RUN(&g, &r, "cat", "/proc/1/limits");
    assert_non_null(strstr(r.out, "Max open files            4096                 4096"));
    exec_result_clear(&r);

    /* Only lo in the new network namespace, and it is up (IFF_UP = 0x1). */
    RUN(&g, &r, "ls", "/sys/class/net");
    assert_string_equal(r.out, "lo\n");
    exec_result_clear(&r);
    RUN(&g, &r, "cat", "/sys/class/net/lo/flags");
    assert_true(strtoul(r.out, NULL, 16) & 0x1);
    exec_result_clear(&r);

    /* init's environment is the clean one. */
    RUN(&g, &r, "cat", "/proc/1/environ");
    assert_true(r.out_len > 0);
    assert_non_null(memmem(r.out, r.out_len, "container=vfleet", 16));
    assert_null(memmem(r.out, r.out_len, "HOME=", 5));
    exec_result_clear(&r);

    stop_guest(&g);
}

static uint64_t
cap_line(const char *status, const char *key)
{
    const char *p = strstr(status, key);
    assert_non_null(p);
    return strtoull(p + strlen(key), NULL, 16);
}

static void
test_caps_default(void **state)
{
    struct guest g;
    make_cfg(&g.cfg, "vf-caps", spec_default_caps());
    start_guest(&g);
    struct exec_result r;

    RUN(&g, &r, "cat", "/proc/1/status");
    assert_true(cap_line(r.out, "CapBnd:\t") == spec_default_caps());
    /* root's exec gave init exactly the bounding set. */
    assert_true(cap_line(r.out, "CapEff:\t") == spec_default_caps());
    assert_true(cap_line(r.out, "CapInh:\t") == 0);
    exec_result_clear(&r);

    /* An exec'd command has the same set and cannot gain more. */
    RUN(&g, &r, "cat", "/proc/self/status");
    assert_true(cap_line(r.out, "CapBnd:\t") == spec_default_caps());
    assert_non_null(strstr(r.out, "NoNewPrivs:\t1"));
    exec_result_clear(&r);
    RUN(&g, &r, "cat", "/proc/self/limits");
    assert_non_null(strstr(r.out, "Max open files            4096                 4096"));
    exec_result_clear(&r);

    /* CAP_MKNOD is in the default set: mknod works (the control for the next test). */
    RUN(&g, &r, "mknod", "/tmp/blk", "b", "8", "0");
    assert_int_equal(r.exit_code, 0);
    exec_result_clear(&r);
    RUN(&g, &r, "rm", "/tmp/blk");
    exec_result_clear(&r);

    /* No CAP_SYS_ADMIN: no mounts. */
    RUN(&g, &r, "mount", "-t", "tmpfs", "x", "/mnt");
    assert_int_not_equal(r.exit_code, 0);
    assert_non_null(strstr(r.err, "denied"));
    exec_result_clear(&r);

    stop_guest(&g);
}

static void
test_caps_without_mknod(void **state)
{
    struct guest g;
    uint64_t caps = spec_default_caps() & ~(UINT64_C(1) << CAP_MKNOD);
    make_cfg(&g.cfg, "vf-nomknod", caps);
    start_guest(&g);
    struct exec_result r;

    RUN(&g, &r, "cat", "/proc/1/status");
    assert_true(cap_line(r.out, "CapBnd:\t") == caps);
    exec_result_clear(&r);

    RUN(&g, &r, "mknod", "/tmp/blk", "b", "8", "0");
    assert_int_not_equal(r.exit_code, 0);
    assert_non_null(strstr(r.err, "not permitted"));
    exec_result_clear(&r);

    stop_guest(&g);
}

/* A guest in its own user namespace: root inside is host uid base, files of
 * host root read as nobody, the host's device nodes are bound in, exec lands
 * in the namespace as its root, and the syscall filter is on (the rest of
 * the battery: tests/integration/node_isolation.sh). */
static void
test_user_namespace(void **state)
{
    const uint32_t base = 0xF2000000u;
    struct guest g;
    make_cfg(&g.cfg, "vf-userns", spec_default_caps());
    g.cfg.uid_base = base;
    g.cfg.uid_count = 65536;
    start_guest(&g);
    struct exec_result r;

    char status[64], line[256];
    snprintf(status, sizeof(status), "/proc/%d/status", (int)g.res.pid);
    FILE *f = fopen(status, "re");
    assert_non_null(f);
    unsigned uid = 0, seccomp = 0;
    while (fgets(line, sizeof(line), f)) {
        sscanf(line, "Uid:\t%u", &uid);
        sscanf(line, "Seccomp:\t%u", &seccomp);
    }
    fclose(f);
    assert_int_equal(uid, base);
    assert_int_equal(seccomp, 2);

    RUN(&g, &r, "id", "-u");
    assert_string_equal(r.out, "0\n");
    exec_result_clear(&r);
    RUN(&g, &r, "cat", "/proc/self/uid_map");
    unsigned in, out, count;
    assert_int_equal(sscanf(r.out, "%u %u %u", &in, &out, &count), 3);
    assert_int_equal(in, 0);
    assert_int_equal(out, base);
    assert_int_equal(count, 65536);
    exec_result_clear(&r);
    /* The tree belongs to host root: nobody inside, and not writable. */
    RUN(&g, &r, "sh", "-c", "ls -ln /bin/busybox; touch /tmp/x");
    assert_non_null(strstr(r.out, " 65534 "));
    assert_int_not_equal(r.exit_code, 0);
    exec_result_clear(&r);
    RUN(&g, &r, "sh", "-c", "echo x >/dev/null && head -c 4 /dev/urandom | wc -c; ls -l /dev/null");
    assert_int_equal(r.exit_code, 0);
    assert_non_null(strstr(r.out, "4\n"));
    assert_non_null(strstr(r.out, "crw-rw-rw-"));
    exec_result_clear(&r);
    stop_guest(&g);
}

static bool
host_file_nonempty(const char *path)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return false;
    char c;
    bool some = read(fd, &c, 1) == 1;
    close(fd);
    return some;
}

static void
test_masked_and_readonly(void **state)
{
    struct guest g;
    make_cfg(&g.cfg, "vf-mask", spec_default_caps());
    start_guest(&g);
    struct exec_result r;

    RUN(&g, &r, "cat", "/proc/kcore");
    assert_int_equal(r.out_len, 0);
    exec_result_clear(&r);

    /* timer_list is readable by the host's root; in the guest /dev/null covers it. */
    RUN(&g, &r, "cat", "/proc/timer_list");
    assert_int_equal(r.exit_code, 0);
    assert_int_equal(r.out_len, 0);
    exec_result_clear(&r);
    if (!host_file_nonempty("/proc/timer_list"))
        fprintf(stderr, "note: host has no /proc/timer_list, masking not contrasted\n");

    /* /proc/sys is read-only even where the namespace would allow the write. */
    RUN(&g, &r, "sh", "-c", "echo other > /proc/sys/kernel/hostname");
    assert_int_not_equal(r.exit_code, 0);
    assert_non_null(strstr(r.err, "Read-only"));
    exec_result_clear(&r);

    /* /sys can be read, not written. */
    RUN(&g, &r, "ls", "/sys");
    assert_int_equal(r.exit_code, 0);
    assert_non_null(strstr(r.out, "kernel"));
    exec_result_clear(&r);
    RUN(&g, &r, "touch", "/sys/kernel/vf-test");
    assert_int_not_equal(r.exit_code, 0);
    assert_non_null(strstr(r.err, "Read-only"));
    exec_result_clear(&r);
    RUN(&g, &r, "ls", "/sys/firmware");
    assert_int_equal(r.exit_code, 0);
    assert_int_equal(r.out_len, 0);
    exec_result_clear(&r);

    /* The small /dev. */
    RUN(&g, &r, "ls", "/dev");
    assert_string_equal(r.out, "console\nfd\nfull\nnull\nptmx\npts\nrandom\nshm\nstderr\nstdin\n"
                               "stdout\ntty\nurandom\nzero\n");
    exec_result_clear(&r);
    RUN(&g, &r, "head", "-c", "4", "/dev/zero");
    assert_int_equal(r.out_len, 4);
    assert_memory_equal(r.out, "\0\0\0\0", 4);
    exec_result_clear(&r);
    RUN(&g, &r, "ls", "/dev/pts");
    assert_string_equal(r.out, "ptmx\n");
    exec_result_clear(&r);

    stop_guest(&g);
}

/* ---- exec ---- */

static struct guest exec_guest;

static int
exec_setup(void **state)
{
    make_cfg(&exec_guest.cfg, "vf-exec", spec_default_caps());
    start_guest(&exec_guest);
    return 0;
}

static int
exec_teardown(void **state)
{
    stop_guest(&exec_guest);
    return 0;
}

static void
test_exec_exit_code_and_streams(void **state)
{
    struct exec_result r;
    RUN(&exec_guest, &r, "sh", "-c", "exit 3");
    assert_int_equal(r.exit_code, 3);
    assert_int_equal(r.signal, 0);
    assert_false(r.timed_out);
    exec_result_clear(&r);

    RUN(&exec_guest, &r, "sh", "-c", "echo to-out; echo to-err >&2");
    assert_int_equal(r.exit_code, 0);
    assert_string_equal(r.out, "to-out\n");
    assert_string_equal(r.err, "to-err\n");
    assert_false(r.truncated);
    exec_result_clear(&r);

    /* stdin is /dev/null, and the environment is the clean one. */
    RUN(&exec_guest, &r, "sh", "-c", "cat; echo \"$PATH\"");
    assert_string_equal(r.out, "/usr/sbin:/usr/bin:/sbin:/bin\n");
    exec_result_clear(&r);
}

static void
test_exec_truncates_without_deadlock(void **state)
{
    struct exec_result r;
    /* Far more than a pipe holds, stderr first: a reader that drained only
     * stdout would leave the command blocked on a full stderr pipe. */
    assert_int_equal(run_in(spawner, &exec_guest, 10000, 1000, &r, "sh", "-c",
                            "yes err | head -c 300000 >&2; yes out | head -c 300000", NULL),
                     0);
    assert_int_equal(r.exit_code, 0);
    assert_true(r.truncated);
    assert_int_equal(r.out_len, 1000);
    assert_int_equal(r.err_len, 1000);
    assert_memory_equal(r.out, "out\nout\n", 8);
    assert_memory_equal(r.err, "err\nerr\n", 8);
    exec_result_clear(&r);
}

static void
test_exec_timeout_kills_group(void **state)
{
    struct exec_result r;
    /* The background sleep holds the output pipes too; the group kill ends it. */
    assert_int_equal(
        run_in(spawner, &exec_guest, 300, 0, &r, "sh", "-c", "sleep 1000 & sleep 1001", NULL), 0);
    assert_true(r.timed_out);
    assert_int_equal(r.exit_code, -1);
    assert_int_equal(r.signal, SIGKILL);
    exec_result_clear(&r);

    RUN(&exec_guest, &r, "ps");
    assert_null(strstr(r.out, "sleep 100"));
    exec_result_clear(&r);
}

static void
test_exec_not_found(void **state)
{
    struct exec_result r;
    RUN(&exec_guest, &r, "no-such-command");
    assert_int_equal(r.exit_code, 127);
    assert_non_null(strstr(r.err, "no-such-command"));
    exec_result_clear(&r);
}

static void
test_exec_wrong_guest(void **state)
{
    struct exec_result r;
    char *argv[] = {"hostname", NULL};
    struct exec_request req = {.argv = argv};
    assert_int_equal(spawner_exec(spawner, &exec_guest.cfg, exec_guest.res.pid,
                                  exec_guest.res.start_time + 1, &req, &r),
                     -ESRCH);
    char *empty[] = {NULL};
    req.argv = empty;
    assert_int_equal(spawner_exec(spawner, &exec_guest.cfg, exec_guest.res.pid,
                                  exec_guest.res.start_time, &req, &r),
                     -EINVAL);
}

/* ---- cgroups ---- */

static void
rmdir_retry(const char *path)
{
    /* A killed task leaves its cgroup shortly after it is reaped. */
    for (int i = 0; i < 1000; i++) {
        if (rmdir(path) == 0 || errno == ENOENT)
            return;
        usleep(1000);
    }
    fail_msg("rmdir %s: %s", path, strerror(errno));
}

static bool
file_contains(const char *path, const char *needle)
{
    char buf[4096] = "";
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return false;
    ssize_t n = read(fd, buf, sizeof(buf) - 1);
    close(fd);
    if (n > 0)
        buf[n] = '\0';
    return strstr(buf, needle) != NULL;
}

/* The parent of pid (PPid: in its status), 0 when it is gone. */
static pid_t
parent_of(pid_t pid)
{
    char path[64], line[128];
    snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
    FILE *f = fopen(path, "re");
    int ppid = 0;
    while (f && fgets(line, sizeof(line), f))
        if (sscanf(line, "PPid: %d", &ppid) == 1)
            break;
    if (f)
        fclose(f);
    return (pid_t)ppid;
}

static void
test_cgroups(void **state)
{
    if (access("/sys/fs/cgroup/pids/cgroup.procs", W_OK) != 0 ||
        access("/sys/fs/cgroup/unified/cgroup.procs", W_OK) != 0) {
        skip();
    }
    char v1[128], v2[128], name[64];
    snprintf(name, sizeof(name), "vf-spawn-test-%d", (int)getpid());
    snprintf(v1, sizeof(v1), "/sys/fs/cgroup/pids/%s", name);
    snprintf(v2, sizeof(v2), "/sys/fs/cgroup/unified/%s", name);
    assert_int_equal(mkdir(v1, 0755), 0);
    assert_int_equal(mkdir(v2, 0755), 0);

    /* Removed by the group teardown if an assertion below fails. */
    strcpy(cg_dirs[0], v1);
    strcpy(cg_dirs[1], v2);
    struct guest g;
    char ring[128];
    snprintf(ring, sizeof(ring), "%s.cg.ring", rootfs);
    make_cfg(&g.cfg, "vf-cg", spec_default_caps());
    g.cfg.n_cgroup_procs = 1;
    snprintf(g.cfg.cgroup_procs[0], sizeof(g.cfg.cgroup_procs[0]), "%s/cgroup.procs", v1);
    strcpy(g.cfg.cgroup2, v2);
    strcpy(g.cfg.console_ring, ring);
    g.cfg.console_size = CONSOLE_RING_MIN;
    start_guest(&g);

    /* From the host: init sits in both cgroups. */
    char host_view[64], want[128];
    snprintf(host_view, sizeof(host_view), "/proc/%d/cgroup", (int)g.res.pid);
    snprintf(want, sizeof(want), ":pids:/%s\n", name);
    assert_true(file_contains(host_view, want));
    snprintf(want, sizeof(want), "0::/%s\n", name);
    assert_true(file_contains(host_view, want));
    /* And its console reader (the spawner's child), which joins the v1
     * cgroup by itself beside the start; not the v2 one, which only the
     * children of CLONE_INTO_CGROUP are in. */
    char procs[160];
    snprintf(procs, sizeof(procs), "%s/cgroup.procs", v1);
    bool reader_in = false;
    for (int i = 0; i < 500 && !reader_in; i++, usleep(10000)) {
        FILE *f = fopen(procs, "re");
        assert_non_null(f);
        int pid;
        while (!reader_in && fscanf(f, "%d", &pid) == 1)
            reader_in = parent_of(pid) == spawner_pid(spawner);
        fclose(f);
    }
    assert_true(reader_in);

    /* From inside: the cgroup namespace was made after the move, so those
     * cgroups are its root; an exec'd command joined them too. */
    struct exec_result r;
    RUN(&g, &r, "cat", "/proc/1/cgroup", "/proc/self/cgroup");
    char *p = r.out;
    int pids_root = 0, unified_root = 0;
    for (char *line = strtok(p, "\n"); line; line = strtok(NULL, "\n")) {
        if (strstr(line, ":pids:"))
            pids_root += strcmp(strstr(line, ":pids:"), ":pids:/") == 0;
        if (strncmp(line, "0::", 3) == 0)
            unified_root += strcmp(line, "0::/") == 0;
    }
    assert_int_equal(pids_root, 2);
    assert_int_equal(unified_root, 2);
    exec_result_clear(&r);

    stop_guest(&g);
    unlink(ring);
    rmdir_retry(v1);
    rmdir_retry(v2);
    cg_dirs[0][0] = cg_dirs[1][0] = '\0';
}

/* The size of path and its first bytes (NUL-terminated) in buf. */
static off_t
file_head(const char *path, char *buf, size_t n)
{
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    assert_true(fd >= 0);
    ssize_t k = read(fd, buf, n - 1);
    close(fd);
    buf[k > 0 ? k : 0] = '\0';
    return st.st_size;
}

/* Init, its console reader and an exec helper each join a v1 cgroup by
 * writing "0" into its tasks file, never a pid into cgroup.procs: the kernel
 * moves a thread that moves itself without the global threadgroup lock, and
 * writing a pid made every start wait for an RCU grace period (and the
 * reader's, after the answer, held cgroup_mutex through one). Plain files
 * in place of the cgroup's show the form of each write; test_cgroups shows
 * that the real ones place the processes. */
static void
test_cgroup_joined_by_self(void **state)
{
    char dir[128], procs[160], tasks[160], ring[128], buf[32];
    snprintf(dir, sizeof(dir), "%s.fakecg", rootfs);
    snprintf(procs, sizeof(procs), "%s/cgroup.procs", dir);
    snprintf(tasks, sizeof(tasks), "%s/tasks", dir);
    snprintf(ring, sizeof(ring), "%s.fakecg.ring", rootfs);
    assert_int_equal(mkdir(dir, 0700), 0);
    for (int i = 0; i < 2; i++) {
        int fd = open(i ? tasks : procs, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
        assert_true(fd >= 0);
        close(fd);
    }
    struct guest g;
    make_cfg(&g.cfg, "vf-selfjoin", spec_default_caps());
    g.cfg.n_cgroup_procs = 1;
    strcpy(g.cfg.cgroup_procs[0], procs);
    strcpy(g.cfg.console_ring, ring);
    g.cfg.console_size = CONSOLE_RING_MIN;
    start_guest(&g);
    struct exec_result r;
    RUN(&g, &r, "true");
    exec_result_clear(&r);

    /* Init and the reader share one open file (its offset), the helper
     * opens its own: "0" or "00", depending on who wrote first. */
    assert_int_equal(file_head(procs, buf, sizeof(buf)), 0);
    off_t n = file_head(tasks, buf, sizeof(buf));
    assert_true(n >= 1 && n <= 2);
    assert_int_equal(strspn(buf, "0"), (size_t)n);

    /* No tasks file beside it: the start fails and says which cgroup. */
    assert_int_equal(unlink(tasks), 0);
    struct spawn_result res;
    assert_int_equal(spawner_start(spawner, &g.cfg, &res), -ENOENT);
    assert_non_null(strstr(res.error, dir));
    assert_int_equal(res.pidfd, -1);

    stop_guest(&g);
    unlink(procs);
    unlink(ring);
    assert_int_equal(rmdir(dir), 0);
}

/* ---- failures ---- */

static void
assert_no_zombie(void)
{
    int st;
    pid_t z = waitpid(-1, &st, WNOHANG);
    assert_true(z == 0 || (z < 0 && errno == ECHILD));
}

static void
test_start_errors(void **state)
{
    struct spawn_config cfg;
    struct spawn_result res;
    make_cfg(&cfg, "vf-bad", spec_default_caps());
    strcpy(cfg.rootfs, "/nonexistent-vf-rootfs");
    assert_int_equal(spawner_start(spawner, &cfg, &res), -ENOENT);
    assert_non_null(strstr(res.error, "nonexistent-vf-rootfs"));
    assert_int_equal(res.pidfd, -1);
    assert_no_zombie();

    make_cfg(&cfg, "vf-bad", spec_default_caps());
    strcpy(cfg.init, "/bin/no-such-init");
    assert_int_equal(spawner_start(spawner, &cfg, &res), -ENOENT);
    assert_non_null(strstr(res.error, "exec init"));
    assert_no_zombie();

    make_cfg(&cfg, "vf-bad", spec_default_caps());
    strcpy(cfg.console_ring, "/nonexistent-dir/ring");
    cfg.console_size = CONSOLE_RING_MIN;
    assert_int_equal(spawner_start(spawner, &cfg, &res), -ENOENT);
    assert_no_zombie();
    make_cfg(&cfg, "vf-bad", spec_default_caps());
    cfg.uid_base = 100000; /* without a count */
    assert_int_equal(spawner_start(spawner, &cfg, &res), -EINVAL);

    make_cfg(&cfg, "vf-bad", spec_default_caps());
    memset(cfg.hostname, 'x', sizeof(cfg.hostname));
    assert_int_equal(spawner_start(spawner, &cfg, &res), -EINVAL);
}

/* Waits up to 5 s until the ring at path holds want; returns what it holds. */
static struct console_log
ring_wait(const char *path, const char *want)
{
    struct console_log c = {0};
    for (int i = 0; i < 500; i++) {
        free(c.data);
        if (console_ring_read(path, 0, &c) == 0 && strstr(c.data, want))
            break;
        usleep(10000);
    }
    return c;
}

static void
test_console_ring(void **state)
{
    char ring[128];
    snprintf(ring, sizeof(ring), "%s.console.ring", rootfs);
    struct guest g;
    make_cfg(&g.cfg, "vf-log", spec_default_caps());
    strcpy(g.cfg.console_ring, ring);
    g.cfg.console_size = CONSOLE_RING_MIN;
    strcpy(g.cfg.args[1], "echo hello from init; echo and stderr >&2; exec sleep 1000");
    start_guest(&g);
    /* The reader copies init's stdout and stderr into the ring. */
    struct console_log c = ring_wait(ring, "hello from init\nand stderr\n");
    assert_non_null(strstr(c.data, "hello from init\nand stderr\n"));
    free(c.data);

    /* What a guest process writes to init's stdout lands there too (the
     * ring's bounds: console_test; a 5 MiB flood: node_isolation.sh). */
    struct exec_result r;
    RUN(&g, &r, "sh", "-c", "echo THE-END >/proc/1/fd/1");
    exec_result_clear(&r);
    c = ring_wait(ring, "THE-END\n");
    assert_non_null(strstr(c.data, "THE-END\n"));
    free(c.data);
    stop_guest(&g);
    unlink(ring);
}

/* ---- the spawner's own life ---- */

static void
test_guest_survives_spawner_death(void **state)
{
    int err;
    spawner_t *sp = spawner_new(&err);
    assert_non_null(sp);
    struct guest g;
    make_cfg(&g.cfg, "vf-survivor", spec_default_caps());
    assert_int_equal(spawner_start(sp, &g.cfg, &g.res), 0);
    track(g.res.pid, true);

    assert_int_equal(kill(spawner_pid(sp), SIGKILL), 0);
    struct exec_result r;
    char *argv[] = {"hostname", NULL};
    struct exec_request req = {.argv = argv};
    assert_int_equal(spawner_exec(sp, &g.cfg, g.res.pid, g.res.start_time, &req, &r), -EPIPE);
    spawner_destroy(&sp);

    /* Init did not die with the spawner, and it is still the same process. */
    assert_int_equal(kill(g.res.pid, 0), 0);
    assert_int_equal(proc_is_same(g.res.pid, g.res.start_time), 1);

    sp = spawner_new(&err);
    assert_non_null(sp);
    assert_int_equal(spawner_exec(sp, &g.cfg, g.res.pid, g.res.start_time, &req, &r), 0);
    assert_string_equal(r.out, "vf-survivor\n");
    exec_result_clear(&r);
    spawner_destroy(&sp);
    stop_guest(&g);
}

/* What the fake agent in test_guest_survives_agent_death reports. */
struct agent_report {
    int r;                   /* spawner_start's result */
    pid_t spawner;           /* its spawner */
    struct spawn_result res; /* the guest's init */
};

static void
test_guest_survives_agent_death(void **state)
{
    /* As a subreaper we inherit the orphans and can check who reaps them. */
    assert_int_equal(prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0), 0);
    int p[2];
    assert_int_equal(pipe2(p, O_CLOEXEC), 0);
    pid_t agent = fork();
    assert_true(agent >= 0);
    if (agent == 0) {
        /* A short-lived agent: its own spawner, one guest, then gone without cleanup. */
        struct agent_report rep = {0};
        struct guest g;
        make_cfg(&g.cfg, "vf-orphan", spec_default_caps());
        spawner_t *sp = spawner_new(&rep.r);
        if (sp) {
            rep.spawner = spawner_pid(sp);
            rep.r = spawner_start(sp, &g.cfg, &rep.res);
        }
        (void)!write(p[1], &rep, sizeof(rep));
        _exit(0);
    }
    close(p[1]);
    struct agent_report rep;
    assert_int_equal(read(p[0], &rep, sizeof(rep)), sizeof(rep));
    close(p[0]);
    assert_int_equal(waitpid(agent, NULL, 0), agent);
    assert_int_equal(rep.r, 0);
    track(rep.res.pid, true);
    /* The orphaned spawner sees end of file and exits; it is ours to reap now. */
    assert_int_equal(waitpid(rep.spawner, NULL, 0), rep.spawner);

    /* The guest outlived its agent, and we (the subreaper) are its parent now. */
    assert_int_equal(proc_is_same(rep.res.pid, rep.res.start_time), 1);
    char path[64], line[256];
    snprintf(path, sizeof(path), "/proc/%d/status", (int)rep.res.pid);
    FILE *f = fopen(path, "re");
    assert_non_null(f);
    int ppid = -1;
    while (fgets(line, sizeof(line), f))
        if (sscanf(line, "PPid: %d", &ppid) == 1)
            break;
    fclose(f);
    assert_int_equal(ppid, getpid());

    /* A new agent's spawner re-adopts it by pid + start time. */
    struct guest g = {.res = {.pid = rep.res.pid, .start_time = rep.res.start_time}};
    make_cfg(&g.cfg, "vf-orphan", spec_default_caps());
    g.res.pidfd = (int)syscall(SYS_pidfd_open, g.res.pid, 0);
    assert_true(g.res.pidfd >= 0);
    struct exec_result r;
    RUN(&g, &r, "hostname");
    assert_string_equal(r.out, "vf-orphan\n");
    exec_result_clear(&r);
    stop_guest(&g);
    assert_int_equal(prctl(PR_SET_CHILD_SUBREAPER, 0, 0, 0, 0), 0);
}

static void *
idle_thread(void *arg)
{
    char c;
    (void)!read(*(int *)arg, &c, 1);
    return NULL;
}

static void
test_refuses_threads(void **state)
{
    int p[2];
    assert_int_equal(pipe2(p, O_CLOEXEC), 0);
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, idle_thread, &p[0]), 0);
    int err = 0;
    assert_null(spawner_new(&err));
    assert_int_equal(err, -EBUSY);
    close(p[1]);
    pthread_join(t, NULL);
    close(p[0]);
}

struct concurrent {
    struct guest *g;        /* where to run */
    char word[16];          /* what to echo */
    int r;                  /* spawner_exec's result */
    struct exec_result res; /* its output */
};

static void *
exec_thread(void *arg)
{
    struct concurrent *c = arg;
    char script[64];
    snprintf(script, sizeof(script), "sleep 0.2; echo %s", c->word);
    c->r = run_in(spawner, c->g, 10000, 0, &c->res, "sh", "-c", script, NULL);
    return NULL;
}

/* Execs from several threads share one spawner without mixing up replies. */
static void
test_exec_from_threads(void **state)
{
    struct concurrent c[4];
    pthread_t t[4];
    for (int i = 0; i < 4; i++) {
        c[i] = (struct concurrent){.g = &exec_guest};
        snprintf(c[i].word, sizeof(c[i].word), "word%d", i);
        assert_int_equal(pthread_create(&t[i], NULL, exec_thread, &c[i]), 0);
    }
    for (int i = 0; i < 4; i++) {
        pthread_join(t[i], NULL);
        assert_int_equal(c[i].r, 0);
        char want[20];
        snprintf(want, sizeof(want), "%s\n", c[i].word);
        assert_string_equal(c[i].res.out, want);
        exec_result_clear(&c[i].res);
    }
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_proc_start_time),
        cmocka_unit_test(test_identity_and_pid_ns),
        cmocka_unit_test(test_caps_default),
        cmocka_unit_test(test_caps_without_mknod),
        cmocka_unit_test(test_masked_and_readonly),
        cmocka_unit_test_setup_teardown(test_exec_exit_code_and_streams, exec_setup, exec_teardown),
        cmocka_unit_test_setup_teardown(test_exec_truncates_without_deadlock, exec_setup,
                                        exec_teardown),
        cmocka_unit_test_setup_teardown(test_exec_timeout_kills_group, exec_setup, exec_teardown),
        cmocka_unit_test_setup_teardown(test_exec_not_found, exec_setup, exec_teardown),
        cmocka_unit_test_setup_teardown(test_exec_wrong_guest, exec_setup, exec_teardown),
        cmocka_unit_test(test_cgroups),
        cmocka_unit_test(test_cgroup_joined_by_self),
        cmocka_unit_test(test_start_errors),
        cmocka_unit_test(test_console_ring),
        cmocka_unit_test(test_user_namespace),
        cmocka_unit_test(test_guest_survives_spawner_death),
        cmocka_unit_test(test_guest_survives_agent_death),
        /* Last: these make threads, and spawner_new refuses a threaded process. */
        cmocka_unit_test(test_refuses_threads),
        cmocka_unit_test_setup_teardown(test_exec_from_threads, exec_setup, exec_teardown),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
