/* Tests for the cgroup v1 driver on the real kernel: needs root and a v1
 * memory hierarchy at /sys/fs/cgroup/memory (exits 77 otherwise). Every
 * cgroup lives under a per-run prefix "vfleet-test-<pid>", removed at the end
 * even when a test fails. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <linux/magic.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <unistd.h>
#include <cmocka.h>

#include "common/mem.h"
#include "node/linux/cgroup.h"

#define ROOT "/sys/fs/cgroup"

static const char *const ctrls[] = {"cpu",  "cpuacct", "cpuset",  "memory",
                                    "pids", "blkio",   "devices", "freezer"};

static char prefix[64];
static cgroup_mgr_t *mgr;

static char *
file_text(const char *ctrl, const char *id, const char *file)
{
    _cleanup_free_ char *path = xasprintf("%s/%s/%s/%s/%s", ROOT, ctrl, prefix, id, file);
    FILE *f = fopen(path, "re");
    if (!f)
        return xasprintf("<%s: %s>", path, strerror(errno));
    char *buf = xcalloc(1, 65536);
    size_t n = fread(buf, 1, 65535, f);
    buf[n] = '\0';
    fclose(f);
    return buf;
}

static void
expect_file(const char *ctrl, const char *id, const char *file, const char *want)
{
    _cleanup_free_ char *got = file_text(ctrl, id, file);
    if (strcmp(got, want) != 0)
        fail_msg("%s/%s: got \"%s\", want \"%s\"", ctrl, file, got, want);
}

static bool
has_line(const char *text, const char *line)
{
    size_t n = strlen(line);
    for (const char *p = text; p && *p; p = strchr(p, '\n') ? strchr(p, '\n') + 1 : NULL)
        if (strncmp(p, line, n) == 0 && (p[n] == '\n' || p[n] == '\0'))
            return true;
    return false;
}

static char *
make_id(const char *what)
{
    return xasprintf("g%d-%s", (int)getpid(), what);
}

/* Forks a child that attaches itself to the guest's cgroup and then runs fn;
 * its exit status comes back from waitpid. */
static pid_t
spawn_in(const char *id, int (*fn)(void *), void *arg)
{
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        if (cgroup_attach(mgr, id, getpid()) < 0)
            _exit(100);
        _exit(fn(arg));
    }
    return pid;
}

static int
wait_status(pid_t pid)
{
    int st;
    while (waitpid(pid, &st, 0) < 0)
        assert_int_equal(errno, EINTR);
    return st;
}

static void
test_limits_roundtrip(void **state)
{
    _cleanup_free_ char *id = make_id("lim");
    assert_int_equal(cgroup_create(mgr, id), 0);
    assert_int_equal(cgroup_create(mgr, id), 0); /* idempotent */
    assert_true(cgroup_exists(mgr, id));

    struct spec_limits l = {
        .procs = 50,
        .memory = 64 << 20,
        .rss = 32 << 20,
        .swap = 16 << 20,
        .cpu_weight = 200,
        .cpu_max = 1500,
        .cpu_burst = 500,
        .io_weight = 300,
        .n_io_devs = 1,
        .io_devs = {{.major = 7, .minor = 0, .read_bps = 1048576, .write_iops = 100}},
    };
    bool loop0 = access("/sys/block/loop0", F_OK) == 0;
    if (!loop0)
        l.n_io_devs = 0;
    assert_int_equal(cgroup_set_limits(mgr, id, &l), 0);
    expect_file("pids", id, "pids.max", "50\n");
    expect_file("memory", id, "memory.limit_in_bytes", "67108864\n");
    expect_file("memory", id, "memory.memsw.limit_in_bytes", "83886080\n");
    expect_file("memory", id, "memory.soft_limit_in_bytes", "33554432\n");
    expect_file("cpu", id, "cpu.shares", "2048\n");
    expect_file("cpu", id, "cpu.cfs_period_us", "100000\n");
    expect_file("cpu", id, "cpu.cfs_quota_us", "150000\n");
    expect_file("cpu", id, "cpu.cfs_burst_us", "50000\n");
    if (loop0) {
        expect_file("blkio", id, "blkio.throttle.read_bps_device", "7:0 1048576\n");
        expect_file("blkio", id, "blkio.throttle.write_iops_device", "7:0 100\n");
        expect_file("blkio", id, "blkio.throttle.write_bps_device", "");
        expect_file("blkio", id, "blkio.throttle.read_iops_device", "");
    }

    /* Lower memory and swap: the memory limit must go down before memsw. */
    l.memory = 32 << 20;
    l.swap = 8 << 20;
    l.cpu_max = 500;
    l.cpu_burst = 900; /* clamped to the quota */
    assert_int_equal(cgroup_set_limits(mgr, id, &l), 0);
    expect_file("memory", id, "memory.limit_in_bytes", "33554432\n");
    expect_file("memory", id, "memory.memsw.limit_in_bytes", "41943040\n");
    expect_file("cpu", id, "cpu.cfs_quota_us", "50000\n");
    expect_file("cpu", id, "cpu.cfs_burst_us", "50000\n");

    /* Raise both past the old memsw: memsw must go up first. */
    l.memory = 128 << 20;
    l.swap = 64 << 20;
    l.io_devs[0].read_bps = 0; /* drop the read cap, keep the write iops one */
    assert_int_equal(cgroup_set_limits(mgr, id, &l), 0);
    expect_file("memory", id, "memory.limit_in_bytes", "134217728\n");
    expect_file("memory", id, "memory.memsw.limit_in_bytes", "201326592\n");
    if (loop0) {
        expect_file("blkio", id, "blkio.throttle.read_bps_device", "");
        expect_file("blkio", id, "blkio.throttle.write_iops_device", "7:0 100\n");
    }

    /* Everything unset: the unlimited values, and no device caps left. */
    struct spec_limits none = {0};
    assert_int_equal(cgroup_set_limits(mgr, id, &none), 0);
    expect_file("pids", id, "pids.max", "max\n");
    _cleanup_free_ char *unlimited = file_text("memory", "", "memory.limit_in_bytes");
    expect_file("memory", id, "memory.limit_in_bytes", unlimited);
    expect_file("memory", id, "memory.memsw.limit_in_bytes", unlimited);
    expect_file("memory", id, "memory.soft_limit_in_bytes", unlimited);
    expect_file("cpu", id, "cpu.shares", "1024\n");
    expect_file("cpu", id, "cpu.cfs_quota_us", "-1\n");
    expect_file("cpu", id, "cpu.cfs_burst_us", "0\n");
    if (loop0)
        expect_file("blkio", id, "blkio.throttle.write_iops_device", "");

    /* The device allow-list, exactly. */
    _cleanup_free_ char *devs = file_text("devices", id, "devices.list");
    static const char *const want[] = {"c 1:3 rwm", "c 1:5 rwm", "c 1:7 rwm",
                                       "c 1:8 rwm", "c 1:9 rwm", "c 5:0 rwm",
                                       "c 5:1 rwm", "c 5:2 rwm", "c 136:* rwm"};
    size_t lines = 0;
    for (const char *p = devs; *p; p++)
        lines += *p == '\n';
    assert_int_equal(lines, ARRAY_SIZE(want));
    for (size_t i = 0; i < ARRAY_SIZE(want); i++)
        if (!has_line(devs, want[i]))
            fail_msg("devices.list lacks \"%s\": %s", want[i], devs);

    /* Unknown guests and bad ids. */
    assert_int_equal(cgroup_set_limits(mgr, "nosuchguest", &l), -ENOENT);
    assert_int_equal(cgroup_create(mgr, "../evil"), -EINVAL);
    assert_int_equal(cgroup_create(mgr, ""), -EINVAL);

    assert_int_equal(cgroup_destroy(mgr, id), 0);
}

static int
child_wait_pipe(void *arg)
{
    int fd = *(int *)arg;
    char c;
    (void)!read(fd, &c, 1);
    return 0;
}

/* The fewest of kids[0..2] that any hierarchy's cgroup.procs of guest id
 * holds; also checks there is one procs file per controller. */
static int
procs_holding(const char *id, const pid_t kids[3])
{
    char **paths = NULL;
    int fewest = 3;
    size_t np = 0;

    assert_int_equal(cgroup_procs_paths(mgr, id, &paths), 0);
    for (char **q = paths; *q; q++, np++) {
        FILE *f = fopen(*q, "re");
        assert_non_null(f);
        int count = 0, v;
        while (fscanf(f, "%d", &v) == 1)
            count += v == kids[0] || v == kids[1] || v == kids[2];
        fclose(f);
        if (count < fewest)
            fewest = count;
    }
    assert_int_equal(np, ARRAY_SIZE(ctrls));
    cgroup_strv_free(&paths);
    assert_null(paths);
    return fewest;
}

static void
test_attach_and_kill(void **state)
{
    _cleanup_free_ char *id = make_id("att");
    assert_int_equal(cgroup_create(mgr, id), 0);
    int p[2];
    assert_int_equal(pipe2(p, O_CLOEXEC), 0);
    pid_t kids[3];
    for (int i = 0; i < 3; i++)
        kids[i] = spawn_in(id, child_wait_pipe, &p[0]);

    /* Wait until all three have attached themselves to every hierarchy: a
     * child attaches to one hierarchy after the other, so one that shows all
     * three says nothing yet of the others. */
    for (int tries = 0;; tries++) {
        _cleanup_free_ pid_t *pids = NULL;
        size_t n = 0;
        assert_int_equal(cgroup_pids(mgr, id, &pids, &n), 0);
        int attached = n == 3 ? procs_holding(id, kids) : -1;
        if (attached == 3) {
            for (int i = 0; i < 3; i++) {
                bool found = false;
                for (size_t j = 0; j < n; j++)
                    found |= pids[j] == kids[i];
                assert_true(found);
            }
            break;
        }
        if (tries >= 1000)
            fail_msg("after 2 s the hierarchies hold %d of the 3 children", attached);
        usleep(2000);
    }
    assert_int_equal(cgroup_open_v2_fd(mgr, id), -EOPNOTSUPP);

    assert_int_equal(cgroup_kill(mgr, id), 0);
    _cleanup_free_ pid_t *left = NULL;
    size_t n = 99;
    assert_int_equal(cgroup_pids(mgr, id, &left, &n), 0);
    assert_int_equal(n, 0);
    for (int i = 0; i < 3; i++) {
        int st = wait_status(kids[i]);
        assert_true(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL);
    }
    close(p[0]);
    close(p[1]);

    assert_int_equal(cgroup_destroy(mgr, id), 0);
    assert_false(cgroup_exists(mgr, id));
    for (size_t i = 0; i < ARRAY_SIZE(ctrls); i++) {
        _cleanup_free_ char *dir = xasprintf("%s/%s/%s/%s", ROOT, ctrls[i], prefix, id);
        if (access(dir, F_OK) == 0)
            fail_msg("%s left behind", dir);
    }
    assert_int_equal(cgroup_destroy(mgr, id), 0); /* idempotent */
    assert_int_equal(cgroup_kill(mgr, id), 0);
}

/* cgroup_kill_many kills the processes of each guest and says which had
 * some: 1 for a guest whose processes were killed, 0 for an empty one. */
static void
test_kill_many(void **state)
{
    _cleanup_free_ char *a = make_id("kma");
    _cleanup_free_ char *b = make_id("kmb");
    _cleanup_free_ char *c = make_id("kmc");
    char *ids[] = {a, b, c};
    int res[3], p[2];
    pid_t ka[3], kc[3];

    for (int i = 0; i < 3; i++)
        assert_int_equal(cgroup_create(mgr, ids[i]), 0);
    assert_int_equal(pipe2(p, O_CLOEXEC), 0);
    ka[0] = spawn_in(a, child_wait_pipe, &p[0]);
    ka[1] = spawn_in(a, child_wait_pipe, &p[0]);
    ka[2] = ka[1];
    kc[0] = kc[1] = kc[2] = spawn_in(c, child_wait_pipe, &p[0]);
    for (int tries = 0; procs_holding(a, ka) < 2 || procs_holding(c, kc) < 1; tries++) {
        if (tries >= 1000)
            fail_msg("after 2 s the children are not in every hierarchy");
        usleep(2000);
    }
    assert_int_equal(cgroup_kill_many(mgr, ids, 3, res), 0);
    assert_int_equal(res[0], 1);
    assert_int_equal(res[1], 0);
    assert_int_equal(res[2], 1);
    pid_t all[3] = {ka[0], ka[1], kc[0]};
    for (int i = 0; i < 3; i++) {
        int st = wait_status(all[i]);
        assert_true(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL);
    }
    close(p[0]);
    close(p[1]);
    for (int i = 0; i < 3; i++)
        assert_int_equal(cgroup_destroy(mgr, ids[i]), 0);
}

/* What a kill cut short between its freeze and its thaw (an agent killed
 * there) leaves: the guest frozen, its process killed but alive until the
 * thaw. cgroup_thaw thaws it (and the process dies), then has nothing to
 * do, nor for a guest without a cgroup. */
static void
test_thaw(void **state)
{
    _cleanup_free_ char *id = make_id("thaw");
    _cleanup_free_ char *gone = make_id("nothaw");
    _cleanup_free_ char *dir = xasprintf("%s/freezer/%s/%s", ROOT, prefix, id);
    assert_int_equal(cgroup_create(mgr, id), 0);
    int p[2];
    assert_int_equal(pipe2(p, O_CLOEXEC), 0);
    pid_t kid = spawn_in(id, child_wait_pipe, &p[0]);
    char line[32];
    snprintf(line, sizeof(line), "%d", (int)kid);
    for (int tries = 0;; tries++) {
        _cleanup_free_ char *in = file_text("freezer", id, "cgroup.procs");
        if (has_line(in, line))
            break;
        if (tries >= 1000)
            fail_msg("the child did not join the freezer cgroup in 2 s");
        usleep(2000);
    }
    assert_int_equal(cgroup_thaw(mgr, id), 0); /* not frozen */
    _cleanup_free_ char *state_file = xasprintf("%s/freezer.state", dir);
    FILE *f = fopen(state_file, "we");
    assert_non_null(f);
    assert_true(fputs("FROZEN", f) >= 0);
    assert_int_equal(fclose(f), 0);
    _cleanup_free_ char *was = file_text("freezer", id, "freezer.state");
    assert_int_not_equal(strncmp(was, "THAWED", 6), 0);
    assert_int_equal(kill(kid, SIGKILL), 0);
    assert_int_equal(cgroup_thaw(mgr, id), 1);
    expect_file("freezer", id, "freezer.state", "THAWED\n");
    int st = wait_status(kid);
    assert_true(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL);
    assert_int_equal(cgroup_thaw(mgr, id), 0);
    assert_int_equal(cgroup_thaw(mgr, gone), 0);
    assert_int_equal(cgroup_thaw(mgr, "../x"), -EINVAL);
    close(p[0]);
    close(p[1]);
    assert_int_equal(cgroup_destroy(mgr, id), 0);
}

/* A process in the guest's memory cgroup alone (not in its pids cgroup,
 * whose list the kill waits on) is killed all the same: the kill reads every
 * hierarchy before it says the guest is empty. */
static void
test_kill_one_hierarchy(void **state)
{
    _cleanup_free_ char *id = make_id("one");
    assert_int_equal(cgroup_create(mgr, id), 0);
    _cleanup_free_ char *procs = xasprintf("%s/memory/%s/%s/cgroup.procs", ROOT, prefix, id);
    int p[2];
    assert_int_equal(pipe2(p, O_CLOEXEC), 0);
    pid_t kid = fork();
    assert_true(kid >= 0);
    if (kid == 0) {
        FILE *f = fopen(procs, "we");
        if (!f || fprintf(f, "%d", (int)getpid()) < 0 || fclose(f) != 0)
            _exit(100);
        (void)write(p[1], "x", 1);
        pause();
        _exit(0);
    }
    char c;
    assert_int_equal(read(p[0], &c, 1), 1);
    _cleanup_free_ char *in_pids = file_text("pids", id, "cgroup.procs");
    assert_string_equal(in_pids, "");

    assert_int_equal(cgroup_kill(mgr, id), 0);
    int st = 0;
    pid_t got = 0;
    for (int i = 0; i < 200 && got == 0; i++) {
        got = waitpid(kid, &st, WNOHANG);
        if (got == 0)
            usleep(10000);
    }
    if (got == 0) {
        kill(kid, SIGKILL);
        (void)wait_status(kid);
        fail_msg("the process in the memory hierarchy alone outlived the kill");
    }
    assert_true(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL);
    close(p[0]);
    close(p[1]);
    assert_int_equal(cgroup_destroy(mgr, id), 0);
}

/* A destroy without a kill before it kills what runs in the guest (here a
 * process in its memory cgroup alone) and removes every directory. */
static void
test_destroy_kills(void **state)
{
    _cleanup_free_ char *id = make_id("dk");
    assert_int_equal(cgroup_create(mgr, id), 0);
    _cleanup_free_ char *procs = xasprintf("%s/memory/%s/%s/cgroup.procs", ROOT, prefix, id);
    int p[2];
    assert_int_equal(pipe2(p, O_CLOEXEC), 0);
    pid_t kid = fork();
    assert_true(kid >= 0);
    if (kid == 0) {
        FILE *f = fopen(procs, "we");
        if (!f || fprintf(f, "%d", (int)getpid()) < 0 || fclose(f) != 0)
            _exit(100);
        (void)write(p[1], "x", 1);
        pause();
        _exit(0);
    }
    char c;
    assert_int_equal(read(p[0], &c, 1), 1);
    close(p[0]);
    close(p[1]);

    int r = cgroup_destroy(mgr, id);
    /* A process leaves its cgroups as it exits, a moment before it is a
     * zombie to reap. */
    int st = 0;
    pid_t got = 0;
    for (int i = 0; i < 200 && got == 0; i++)
        if ((got = waitpid(kid, &st, WNOHANG)) == 0)
            usleep(10000);
    if (got == 0) {
        kill(kid, SIGKILL);
        (void)wait_status(kid);
        fail_msg("the guest's process outlived the destroy");
    }
    assert_int_equal(r, 0);
    assert_true(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL);
    assert_false(cgroup_exists(mgr, id));
    for (size_t i = 0; i < ARRAY_SIZE(ctrls); i++) {
        _cleanup_free_ char *dir = xasprintf("%s/%s/%s/%s", ROOT, ctrls[i], prefix, id);
        if (access(dir, F_OK) == 0)
            fail_msg("%s left behind", dir);
    }
}

/* Moves the calling process into <guest>/<sub> of every hierarchy (made
 * here): 0, or the errno of the first step that failed. */
static int
move_below(const char *id, const char *sub)
{
    for (size_t i = 0; i < ARRAY_SIZE(ctrls); i++) {
        _cleanup_free_ char *dir = xasprintf("%s/%s/%s/%s/%s", ROOT, ctrls[i], prefix, id, sub);
        if (mkdir(dir, 0755) < 0 && errno != EEXIST)
            return errno;
        if (strcmp(ctrls[i], "cpuset") == 0) {
            static const char *const files[] = {"cpuset.cpus", "cpuset.mems"};
            for (size_t j = 0; j < ARRAY_SIZE(files); j++) {
                _cleanup_free_ char *v = file_text("cpuset", id, files[j]);
                _cleanup_free_ char *path = xasprintf("%s/%s", dir, files[j]);
                FILE *f = fopen(path, "we");
                if (!f || fputs(v, f) < 0 || fclose(f) != 0)
                    return errno ? errno : EIO;
            }
        }
        _cleanup_free_ char *procs = xasprintf("%s/cgroup.procs", dir);
        FILE *f = fopen(procs, "we");
        if (!f || fprintf(f, "%d", (int)getpid()) < 0 || fclose(f) != 0)
            return errno ? errno : EIO;
    }
    return 0;
}

/* A process of the guest moved into a cgroup below the guest's in every
 * hierarchy (a privileged guest that mounts cgroupfs and makes one, two
 * levels deep here) is the guest's: it is listed, the kill is not done
 * while it lives (the kill read the guest's own cgroup.procs only, found
 * them empty and said "stopped"), and the destroy removes every directory,
 * the ones below first (its rmdir failed with EBUSY on them). */
static void
test_kill_subtree(void **state)
{
    _cleanup_free_ char *id = make_id("sub");
    assert_int_equal(cgroup_create(mgr, id), 0);
    int p[2];
    assert_int_equal(pipe2(p, O_CLOEXEC), 0);
    pid_t kid = fork();
    assert_true(kid >= 0);
    if (kid == 0) {
        int r = cgroup_attach(mgr, id, getpid()) < 0 ? 100 : move_below(id, "a");
        if (r == 0)
            r = move_below(id, "a/b");
        (void)!write(p[1], &r, sizeof(r));
        if (r)
            _exit(r);
        pause();
        _exit(0);
    }
    int r = -1;
    assert_int_equal(read(p[0], &r, sizeof(r)), sizeof(r));
    close(p[0]);
    close(p[1]);
    if (r != 0) {
        (void)wait_status(kid);
        fail_msg("the child could not move below the guest's cgroup: %s", strerror(r));
    }
    _cleanup_free_ char *own = file_text("pids", id, "cgroup.procs");
    assert_string_equal(own, "");
    _cleanup_free_ pid_t *pids = NULL;
    size_t n = 0;
    int lr = cgroup_pids(mgr, id, &pids, &n);
    int kr = cgroup_kill(mgr, id);
    /* A process leaves its cgroups as it exits, a moment before it is a
     * zombie to reap. */
    int st = 0;
    pid_t got = 0;
    for (int i = 0; i < 200 && got == 0; i++)
        if ((got = waitpid(kid, &st, WNOHANG)) == 0)
            usleep(10000);
    if (got == 0) {
        kill(kid, SIGKILL);
        (void)wait_status(kid);
        fail_msg("the process below the guest's cgroup outlived the kill (%d)", kr);
    }
    assert_int_equal(lr, 0);
    assert_int_equal(n, 1);
    assert_int_equal(pids[0], kid);
    assert_int_equal(kr, 0);
    assert_true(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL);

    assert_int_equal(cgroup_destroy(mgr, id), 0);
    assert_false(cgroup_exists(mgr, id));
    for (size_t i = 0; i < ARRAY_SIZE(ctrls); i++) {
        _cleanup_free_ char *dir = xasprintf("%s/%s/%s/%s", ROOT, ctrls[i], prefix, id);
        if (access(dir, F_OK) == 0)
            fail_msg("%s left behind", dir);
    }
}

/* A process below the guest's cgroup in a freezer cgroup that froze
 * itself (a guest may freeze its own cgroups) dies at the kill: the v1
 * freezer keeps such a cgroup frozen through the thaw of the guest's, and
 * a killed process there lived on, the kill ending in -EBUSY after
 * CGROUP_KILL_TIMEOUT_MS. */
static void
test_kill_frozen_below(void **state)
{
    _cleanup_free_ char *id = make_id("frz");
    assert_int_equal(cgroup_create(mgr, id), 0);
    int p[2];
    assert_int_equal(pipe2(p, O_CLOEXEC), 0);
    pid_t kid = fork();
    assert_true(kid >= 0);
    if (kid == 0) {
        int r = cgroup_attach(mgr, id, getpid()) < 0 ? 100 : move_below(id, "f");
        (void)!write(p[1], &r, sizeof(r));
        if (r)
            _exit(r);
        pause();
        _exit(0);
    }
    int r = -1;
    assert_int_equal(read(p[0], &r, sizeof(r)), sizeof(r));
    close(p[0]);
    close(p[1]);
    _cleanup_free_ char *state_file =
        xasprintf("%s/freezer/%s/%s/f/freezer.state", ROOT, prefix, id);
    FILE *f = r == 0 ? fopen(state_file, "we") : NULL;
    bool frozen = f && fputs("FROZEN", f) >= 0;
    if (f)
        frozen &= fclose(f) == 0;
    if (!frozen) {
        kill(kid, SIGKILL);
        (void)wait_status(kid);
        fail_msg("could not move the child below and freeze it (%s)", strerror(r ? r : errno));
    }
    int kr = cgroup_kill(mgr, id);
    int st = 0;
    pid_t got = 0;
    for (int i = 0; i < 200 && got == 0; i++)
        if ((got = waitpid(kid, &st, WNOHANG)) == 0)
            usleep(10000);
    if (got == 0) {
        f = fopen(state_file, "we");
        if (f) {
            fputs("THAWED", f);
            fclose(f);
        }
        kill(kid, SIGKILL);
        (void)wait_status(kid);
        fail_msg("the process in a frozen cgroup below the guest's outlived the kill (%d)", kr);
    }
    assert_int_equal(kr, 0);
    assert_true(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL);
    assert_int_equal(cgroup_destroy(mgr, id), 0);
    assert_false(cgroup_exists(mgr, id));
}

/* Forks (holding each child) until a fork fails; exits 0 when forks failed
 * with EAGAIN after at least one success, 1..3 otherwise. */
static int
child_fork_until_refused(void *arg)
{
    int ok = 0, eagain = 0;
    for (int i = 0; i < 5; i++) {
        pid_t p = fork();
        if (p == 0) {
            pause();
            _exit(0);
        }
        if (p > 0)
            ok++;
        else if (errno == EAGAIN)
            eagain++;
        else
            return 3;
    }
    if (ok == 0)
        return 1;
    return eagain > 0 ? 0 : 2;
}

static void
test_pids_limit(void **state)
{
    _cleanup_free_ char *id = make_id("pids");
    assert_int_equal(cgroup_create(mgr, id), 0);
    struct spec_limits l = {.procs = 2};
    assert_int_equal(cgroup_set_limits(mgr, id, &l), 0);
    pid_t kid = spawn_in(id, child_fork_until_refused, NULL);
    int st = wait_status(kid);
    assert_true(WIFEXITED(st));
    assert_int_equal(WEXITSTATUS(st), 0);

    struct guest_usage u = {0};
    assert_int_equal(cgroup_usage(mgr, id, &u), 0);
    assert_true(u.failcnt[USAGE_FAIL_PROCS] >= 3);
    assert_int_equal(u.procs, 1); /* the one grandchild that got in */
    assert_int_equal(cgroup_destroy(mgr, id), 0);
}

static int
child_eat_memory(void *arg)
{
    size_t len = 64 << 20;
    char *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED)
        return 1;
    for (size_t i = 0; i < len; i += 4096)
        p[i] = 1;
    return 0; /* survived: the limit did not hold */
}

static void
test_memory_oom(void **state)
{
    _cleanup_free_ char *id = make_id("oom");
    assert_int_equal(cgroup_create(mgr, id), 0);
    /* One page of swap: 0 would mean "swap unlimited". */
    struct spec_limits l = {.memory = 16 << 20, .swap = 4096};
    assert_int_equal(cgroup_set_limits(mgr, id, &l), 0);
    pid_t kid = spawn_in(id, child_eat_memory, NULL);
    int st = wait_status(kid);
    if (!(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL))
        fail_msg("child was not OOM-killed: status 0x%x", st);

    struct guest_usage u = {0};
    assert_int_equal(cgroup_usage(mgr, id, &u), 0);
    assert_true(u.failcnt[USAGE_FAIL_OOM] >= 1);
    assert_true(u.failcnt[USAGE_FAIL_MEMORY] >= 1);
    assert_true(u.memory_peak >= (8u << 20));
    assert_true(u.memory_peak <= (16u << 20) + 4096);
    assert_int_equal(u.procs, 0);
    assert_true(u.cpu_ns > 0);
    assert_int_equal(cgroup_destroy(mgr, id), 0);
}

/* In the guest: /dev/null opens, a block node made outside cannot be opened
 * and a new one cannot be made. Exit 0 when all three hold. */
static int
child_devices(void *arg)
{
    const char *dir = arg;
    int fd = open("/dev/null", O_RDWR | O_CLOEXEC);
    if (fd < 0)
        return 1;
    close(fd);
    _cleanup_free_ char *outside = xasprintf("%s/blk-outside", dir);
    fd = open(outside, O_RDONLY | O_CLOEXEC);
    if (fd >= 0 || errno != EPERM)
        return 2;
    _cleanup_free_ char *inside = xasprintf("%s/blk-inside", dir);
    if (mknod(inside, S_IFBLK | 0600, makedev(7, 0)) == 0 || errno != EPERM)
        return 3;
    return 0;
}

static void
test_devices(void **state)
{
    if (access("/dev/loop0", F_OK) < 0)
        skip();
    _cleanup_free_ char *id = make_id("dev");
    assert_int_equal(cgroup_create(mgr, id), 0);
    char tmpl[] = "/tmp/vfleet-cgroup-dev-XXXXXX";
    assert_non_null(mkdtemp(tmpl));
    _cleanup_free_ char *outside = xasprintf("%s/blk-outside", tmpl);
    /* The control: outside the cgroup the same node can be made and opened. */
    assert_int_equal(mknod(outside, S_IFBLK | 0600, makedev(7, 0)), 0);
    int fd = open(outside, O_RDONLY | O_CLOEXEC);
    assert_true(fd >= 0);
    close(fd);

    pid_t kid = spawn_in(id, child_devices, tmpl);
    int st = wait_status(kid);
    unlink(outside);
    _cleanup_free_ char *inside = xasprintf("%s/blk-inside", tmpl);
    unlink(inside);
    rmdir(tmpl);
    assert_true(WIFEXITED(st));
    assert_int_equal(WEXITSTATUS(st), 0);
    assert_int_equal(cgroup_destroy(mgr, id), 0);
}

/* The written hook: counts writes to CPU bandwidth and cpuset files. */
struct write_count {
    unsigned bandwidth; /* cpu.cfs_{period,quota,burst}_us */
    unsigned cpuset;    /* cpuset.cpus, cpuset.mems */
    unsigned all;       /* every control-file write */
};

static void
count_write(const char *path, const char *value, void *userdata)
{
    struct write_count *w = userdata;
    (void)value;
    w->all++;
    w->bandwidth += strstr(path, "/cpu.cfs_") != NULL;
    w->cpuset += strstr(path, "/cpuset.cpus") != NULL || strstr(path, "/cpuset.mems") != NULL;
}

/* cgroup_set_limits_changed writes nothing when the limits are what the
 * manager last wrote (the setup limits of a start after its create's
 * set_limits), writes changed ones, and forgets at destroy and create;
 * cgroup_set_limits always writes. */
static void
test_set_limits_changed(void **state)
{
    _cleanup_free_ char *id = make_id("chg");
    struct write_count w = {0};
    struct cgroup_test_hooks hooks = {.written = count_write, .userdata = &w};
    struct spec_limits l = {.cpu_max = 10, .memory = 64 << 20, .procs = 32};
    struct spec_limits l2 = l;
    l2.procs = 33;

    assert_int_equal(cgroup_create(mgr, id), 0);
    cgroup_mgr_set_test_hooks(mgr, &hooks);
    assert_int_equal(cgroup_set_limits_changed(mgr, id, &l), 0);
    unsigned n = w.all;
    assert_true(n > 0);
    expect_file("pids", id, "pids.max", "32\n");
    assert_int_equal(cgroup_set_limits_changed(mgr, id, &l), 0);
    assert_int_equal(w.all, n);
    assert_int_equal(cgroup_set_limits(mgr, id, &l), 0);
    assert_true(w.all > n);
    n = w.all;
    assert_int_equal(cgroup_set_limits_changed(mgr, id, &l2), 0);
    assert_true(w.all > n);
    expect_file("pids", id, "pids.max", "33\n");
    n = w.all;
    assert_int_equal(cgroup_set_limits_changed(mgr, id, &l2), 0);
    assert_int_equal(w.all, n);

    /* A cgroup made again holds the kernel's defaults, whatever was written before. */
    assert_int_equal(cgroup_destroy(mgr, id), 0);
    assert_int_equal(cgroup_create(mgr, id), 0);
    n = w.all;
    assert_int_equal(cgroup_set_limits_changed(mgr, id, &l2), 0);
    assert_true(w.all > n);
    expect_file("pids", id, "pids.max", "33\n");
    n = w.all;
    assert_int_equal(cgroup_create(mgr, id), 0);
    assert_int_equal(cgroup_set_limits_changed(mgr, id, &l2), 0);
    assert_true(w.all > n);
    cgroup_mgr_set_test_hooks(mgr, NULL);
    assert_int_equal(cgroup_destroy(mgr, id), 0);
}

/* A cgroup removed from one hierarchy still exists but is not complete: a
 * start makes it again rather than fail at the attach. */
static void
test_complete(void **state)
{
    _cleanup_free_ char *id = make_id("cmp");

    assert_int_equal(cgroup_create(mgr, id), 0);
    assert_true(cgroup_complete(mgr, id));
    _cleanup_free_ char *dir = xasprintf("%s/pids/%s/%s", ROOT, prefix, id);
    assert_int_equal(rmdir(dir), 0);
    assert_true(cgroup_exists(mgr, id));
    assert_false(cgroup_complete(mgr, id));
    assert_int_equal(cgroup_create(mgr, id), 0);
    assert_true(cgroup_complete(mgr, id));
    assert_int_equal(cgroup_destroy(mgr, id), 0);
    assert_false(cgroup_complete(mgr, id));
}

/* The guests with a cgroup in any hierarchy, each once: one removed from
 * the memory hierarchy alone still has a cgroup (and processes) elsewhere. */
static void
test_list(void **state)
{
    _cleanup_free_ char *a = make_id("ls1");
    _cleanup_free_ char *b = make_id("ls2");
    char **ids = NULL;

    assert_int_equal(cgroup_list(mgr, &ids), 0);
    assert_null(ids[0]);
    cgroup_strv_free(&ids);
    assert_int_equal(cgroup_create(mgr, a), 0);
    assert_int_equal(cgroup_create(mgr, b), 0);
    _cleanup_free_ char *dir = xasprintf("%s/memory/%s/%s", ROOT, prefix, b);
    assert_int_equal(rmdir(dir), 0);
    assert_int_equal(cgroup_list(mgr, &ids), 0);
    assert_non_null(ids[0]);
    assert_non_null(ids[1]);
    assert_null(ids[2]);
    bool a_first = strcmp(ids[0], a) == 0;
    assert_string_equal(ids[a_first ? 0 : 1], a);
    assert_string_equal(ids[a_first ? 1 : 0], b);
    cgroup_strv_free(&ids);
    assert_int_equal(cgroup_destroy(mgr, a), 0);
    assert_int_equal(cgroup_destroy(mgr, b), 0);
    assert_int_equal(cgroup_list(mgr, &ids), 0);
    assert_null(ids[0]);
    cgroup_strv_free(&ids);
}

/* A create writes no cpuset file (the parent clones its cpus and mems into
 * the new cgroup: each write rebuilt the host's scheduling domains), and
 * limits set again with the same CPU values write no bandwidth file (each
 * write walks every CPU cgroup on the host); changed values are written. */
static void
test_costly_writes_skipped(void **state)
{
    _cleanup_free_ char *id = make_id("cost");
    _cleanup_free_ char *first = make_id("cost0");
    struct write_count w = {0};
    struct cgroup_test_hooks hooks = {.written = count_write, .userdata = &w};

    assert_int_equal(cgroup_create(mgr, first), 0); /* makes the prefix and its flag */
    cgroup_mgr_set_test_hooks(mgr, &hooks);
    assert_int_equal(cgroup_create(mgr, id), 0);
    assert_int_equal(w.cpuset, 0);
    _cleanup_free_ char *cpus = file_text("cpuset", "", "cpuset.cpus");
    expect_file("cpuset", id, "cpuset.cpus", cpus);
    _cleanup_free_ char *mems = file_text("cpuset", "", "cpuset.mems");
    expect_file("cpuset", id, "cpuset.mems", mems);

    struct spec_limits l = {.cpu_max = 10, .memory = 64 << 20};
    struct spec_limits unlimited = l;
    unlimited.cpu_max = 0;
    /* A fresh cgroup has no quota: lifting it (a start's setup) writes nothing. */
    assert_int_equal(cgroup_set_limits(mgr, id, &unlimited), 0);
    assert_int_equal(w.bandwidth, 0);
    assert_int_equal(cgroup_set_limits(mgr, id, &l), 0);
    assert_int_equal(w.bandwidth, 1); /* the quota; period and burst hold their values */
    expect_file("cpu", id, "cpu.cfs_quota_us", "1000\n");
    assert_int_equal(cgroup_set_limits(mgr, id, &l), 0);
    assert_int_equal(w.bandwidth, 1);
    assert_int_equal(cgroup_set_limits(mgr, id, &unlimited), 0);
    assert_int_equal(w.bandwidth, 2);
    expect_file("cpu", id, "cpu.cfs_quota_us", "-1\n");
    cgroup_mgr_set_test_hooks(mgr, NULL);
    assert_int_equal(cgroup_destroy(mgr, id), 0);
    assert_int_equal(cgroup_destroy(mgr, first), 0);
}

static int
setup(void **state)
{
    snprintf(prefix, sizeof(prefix), "vfleet-test-%d", (int)getpid());
    return cgroup_mgr_new(ROOT, prefix, &mgr) == 0 ? 0 : -1;
}

/* Removes whatever a failed test left: guests under the prefix, then the prefix. */
static int
teardown(void **state)
{
    static const char *const what[] = {"lim", "att", "pids", "oom", "dev",  "cost", "cost0",
                                       "chg", "one", "ls1",  "ls2", "thaw", "sub",  "frz"};
    for (size_t i = 0; i < ARRAY_SIZE(what); i++) {
        _cleanup_free_ char *id = make_id(what[i]);
        (void)cgroup_destroy(mgr, id);
    }
    for (size_t i = 0; i < ARRAY_SIZE(ctrls); i++) {
        _cleanup_free_ char *dir = xasprintf("%s/%s/%s", ROOT, ctrls[i], prefix);
        (void)rmdir(dir);
    }
    cgroup_mgr_destroy(&mgr);
    cgroup_mgr_destroy(&mgr); /* NULL-safe */
    return 0;
}

int
main(void)
{
    struct statfs sfs;
    if (geteuid() != 0 || statfs(ROOT "/memory", &sfs) < 0 || sfs.f_type != CGROUP_SUPER_MAGIC) {
        fprintf(stderr, "skip: needs root and a cgroup v1 memory hierarchy\n");
        return 77;
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_limits_roundtrip),
        cmocka_unit_test(test_attach_and_kill),
        cmocka_unit_test(test_pids_limit),
        cmocka_unit_test(test_memory_oom),
        cmocka_unit_test(test_devices),
        cmocka_unit_test(test_costly_writes_skipped),
        cmocka_unit_test(test_set_limits_changed),
        cmocka_unit_test(test_kill_one_hierarchy),
        cmocka_unit_test(test_kill_many),
        cmocka_unit_test(test_thaw),
        cmocka_unit_test(test_destroy_kills),
        cmocka_unit_test(test_kill_subtree),
        cmocka_unit_test(test_kill_frozen_below),
        cmocka_unit_test(test_complete),
        cmocka_unit_test(test_list),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
