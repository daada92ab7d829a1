/* Tests for the cgroup v2 driver against a fake cgroup2 tree: a temporary
 * directory with the control files a kernel would show. The test hooks fill
 * each new cgroup directory, empty it before rmdir, and record every write,
 * so the exact bytes and their order are what is checked.
 *
 * The real kernel (Debian 12's 6.1, pure v2) runs the same driver in the VM
 * test host: deploy/vm/scenarios/vm_limits.sh. What it showed that this fake
 * did not, and the cases below that now stand for it: io.bfq.weight beside
 * io.weight (test_io_weight_both_schedulers), and io.stat lines that name a
 * device with no counters at all ("7:0 ", test_usage_parsing). A file here
 * keeps what was written, where the kernel answers in its own form
 * (subtree_control reads "cpu io memory pids", io.max drops a line written
 * all "max"): the tests put that form back by hand. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cmocka.h>

#include "common/mem.h"
#include "node/linux/cgroup.h"

struct fake {
    char root[64];     /* the fake cgroup2 mount */
    char trace[16384]; /* "path<TAB>value\n" per write, path relative to root */
    cgroup_mgr_t *mgr; /* a v2 manager on root */
};

static void
put(const char *dir, const char *file, const char *text)
{
    _cleanup_free_ char *path = xasprintf("%s/%s", dir, file);
    FILE *f = fopen(path, "we");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

static char *
get(const char *dir, const char *file)
{
    _cleanup_free_ char *path = xasprintf("%s/%s", dir, file);
    FILE *f = fopen(path, "re");
    if (!f)
        return xstrdup("<missing>");
    char *buf = xcalloc(1, 4096);
    size_t n = fread(buf, 1, 4095, f);
    buf[n] = '\0';
    fclose(f);
    return buf;
}

/* What a kernel shows in a new child cgroup with cpu, io, memory, pids enabled. */
static int
fake_populate(const char *dir, void *userdata)
{
    static const char *const files[] = {
        "cgroup.procs",  "cgroup.subtree_control",
        "cgroup.kill",   "cgroup.freeze",
        "pids.max",      "memory.max",
        "memory.high",   "memory.swap.max",
        "cpu.weight",    "cpu.max",
        "cpu.max.burst", "io.weight",
        "io.max",
    };
    for (size_t i = 0; i < ARRAY_SIZE(files); i++)
        put(dir, files[i], "");
    put(dir, "cgroup.controllers", "cpu io memory pids\n");
    return 0;
}

static int
fake_unpopulate(const char *dir, void *userdata)
{
    DIR *d = opendir(dir);
    if (!d)
        return -errno;
    struct dirent *e;
    while ((e = readdir(d)))
        if (e->d_type == DT_REG)
            unlinkat(dirfd(d), e->d_name, 0);
    closedir(d);
    return 0;
}

/* Empties cgroup.procs of dir and of every cgroup below it: the freeze
 * and cgroup.kill of the kernel reach the whole subtree. */
static void
empty_tree(const char *dir)
{
    put(dir, "cgroup.procs", "");
    DIR *d = opendir(dir);
    assert_non_null(d);
    struct dirent *e;
    while ((e = readdir(d)))
        if (e->d_type == DT_DIR && e->d_name[0] != '.') {
            _cleanup_free_ char *sub = xasprintf("%s/%s", dir, e->d_name);
            empty_tree(sub);
        }
    closedir(d);
}

static void
fake_written(const char *path, const char *value, void *userdata)
{
    struct fake *f = userdata;
    size_t rl = strlen(f->root);
    const char *rel = strncmp(path, f->root, rl) == 0 ? path + rl + 1 : path;
    size_t len = strlen(f->trace);
    snprintf(f->trace + len, sizeof(f->trace) - len, "%s\t%s\n", rel, value);
    /* Like the kernel, cgroup.kill empties the cgroup, as do the SIGKILLs
     * sent while it was frozen (the fake's pids are never real ones: the
     * thaw that follows them empties it). */
    size_t pl = strlen(path);
    if (pl > 12 && strcmp(path + pl - 12, "/cgroup.kill") == 0) {
        _cleanup_free_ char *dir = xstrndup(path, pl - 12);
        empty_tree(dir);
    }
    /* A guest named "stuck..." keeps its processes whatever is done to
     * them (in the kernel: processes in uninterruptible sleep). */
    if (pl > 14 && strcmp(path + pl - 14, "/cgroup.freeze") == 0 && strcmp(value, "0") == 0 &&
        !strstr(path, "/stuck")) {
        _cleanup_free_ char *dir = xstrndup(path, pl - 14);
        empty_tree(dir);
    }
}

static int
setup(void **state)
{
    struct fake *f = xcalloc(1, sizeof(*f));
    snprintf(f->root, sizeof(f->root), "/tmp/vfleet-cgv2-%d-XXXXXX", (int)getpid());
    if (!mkdtemp(f->root))
        return -1;
    put(f->root, "cgroup.controllers", "cpuset cpu io memory hugetlb pids rdma misc\n");
    put(f->root, "cgroup.subtree_control", "");
    put(f->root, "cgroup.procs", "1\n");
    if (cgroup_mgr_new_v2(f->root, "vfleet", &f->mgr) < 0)
        return -1;
    struct cgroup_test_hooks hooks = {
        .populate = fake_populate,
        .unpopulate = fake_unpopulate,
        .written = fake_written,
        .userdata = f,
    };
    cgroup_mgr_set_test_hooks(f->mgr, &hooks);
    *state = f;
    return 0;
}

static int
teardown(void **state)
{
    struct fake *f = *state;
    _cleanup_free_ char *cmd = xasprintf("rm -rf '%s'", f->root);
    (void)!system(cmd);
    cgroup_mgr_destroy(&f->mgr);
    free(f);
    return 0;
}

static void
expect_trace(struct fake *f, const char *want)
{
    if (strcmp(f->trace, want) != 0)
        fail_msg("writes:\n%s\nwant:\n%s", f->trace, want);
    f->trace[0] = '\0';
}

static void
test_create_enables_controllers(void **state)
{
    struct fake *f = *state;
    assert_int_equal(cgroup_mgr_mode(f->mgr), CGROUP_V2);
    /* The device program (devices_bpf.h): on a real cgroup2, not on this fake tree. */
    assert_true(cgroup_has_device_policy(f->mgr));
    /* The root has cpu and memory on already; only io and pids are missing. */
    put(f->root, "cgroup.subtree_control", "cpu memory\n");
    assert_int_equal(cgroup_create(f->mgr, "g1"), 0);
    expect_trace(f, "cgroup.subtree_control\t+io +pids\n"
                    "vfleet/cgroup.subtree_control\t+cpu +io +memory +pids\n");
    _cleanup_free_ char *base = xasprintf("%s/vfleet", f->root);
    _cleanup_free_ char *sc = get(base, "cgroup.subtree_control");
    assert_string_equal(sc, "+cpu +io +memory +pids");
    assert_true(cgroup_exists(f->mgr, "g1"));

    /* With the kernel showing them enabled, a second create writes nothing. */
    put(f->root, "cgroup.subtree_control", "cpu io memory pids\n");
    put(base, "cgroup.subtree_control", "cpu io memory pids\n");
    assert_int_equal(cgroup_create(f->mgr, "g1"), 0);
    assert_int_equal(cgroup_create(f->mgr, "g2"), 0);
    expect_trace(f, "");
    assert_int_equal(cgroup_create(f->mgr, "a/b"), -EINVAL);
    assert_int_equal(cgroup_create(f->mgr, ".."), -EINVAL);
}

static void
test_limits_exact_bytes(void **state)
{
    struct fake *f = *state;
    assert_int_equal(cgroup_create(f->mgr, "g1"), 0);
    f->trace[0] = '\0';
    struct spec_limits l = {
        .procs = 50,
        .memory = 64 << 20,
        .rss = 32 << 20,
        .swap = 16 << 20,
        .cpu_weight = 200,
        .cpu_max = 1500,
        .cpu_burst = 500,
        .io_weight = 300,
        .n_io_devs = 2,
        .io_devs = {{.major = 8, .minor = 0, .read_bps = 1048576, .write_iops = 100},
                    {.major = 8, .minor = 16, .write_bps = 2000}},
    };
    assert_int_equal(cgroup_set_limits(f->mgr, "g1", &l), 0);
    expect_trace(f, "vfleet/g1/pids.max\t50\n"
                    "vfleet/g1/memory.max\t67108864\n"
                    "vfleet/g1/memory.high\t33554432\n"
                    "vfleet/g1/memory.swap.max\t16777216\n"
                    "vfleet/g1/cpu.weight\t200\n"
                    "vfleet/g1/cpu.max.burst\t0\n"
                    "vfleet/g1/cpu.max\t150000 100000\n"
                    "vfleet/g1/cpu.max.burst\t50000\n"
                    "vfleet/g1/io.weight\tdefault 300\n"
                    "vfleet/g1/io.max\t8:0 rbps=1048576 wbps=max riops=max wiops=100\n"
                    "vfleet/g1/io.max\t8:16 rbps=max wbps=2000 riops=max wiops=max\n");
    _cleanup_free_ char *dir = xasprintf("%s/vfleet/g1", f->root);
    _cleanup_free_ char *cpumax = get(dir, "cpu.max");
    assert_string_equal(cpumax, "150000 100000");

    /* The kernel lists both caps; an empty spec lifts every limit and cap. */
    put(dir, "io.max",
        "8:0 rbps=1048576 wbps=max riops=max wiops=100\n"
        "8:16 rbps=max wbps=2000 riops=max wiops=max\n");
    struct spec_limits none = {0};
    assert_int_equal(cgroup_set_limits(f->mgr, "g1", &none), 0);
    expect_trace(f, "vfleet/g1/pids.max\tmax\n"
                    "vfleet/g1/memory.max\tmax\n"
                    "vfleet/g1/memory.high\tmax\n"
                    "vfleet/g1/memory.swap.max\tmax\n"
                    "vfleet/g1/cpu.weight\t100\n"
                    "vfleet/g1/cpu.max.burst\t0\n"
                    "vfleet/g1/cpu.max\tmax 100000\n"
                    "vfleet/g1/io.weight\tdefault 100\n"
                    "vfleet/g1/io.max\t8:0 rbps=max wbps=max riops=max wiops=max\n"
                    "vfleet/g1/io.max\t8:16 rbps=max wbps=max riops=max wiops=max\n");

    /* A tiny ceiling is raised to the kernel's 1 ms minimum, the burst capped. */
    struct spec_limits small = {.cpu_max = 3, .cpu_burst = 50};
    put(dir, "io.max", "");
    assert_int_equal(cgroup_set_limits(f->mgr, "g1", &small), 0);
    _cleanup_free_ char *cpumax2 = get(dir, "cpu.max");
    _cleanup_free_ char *burst = get(dir, "cpu.max.burst");
    assert_string_equal(cpumax2, "1000 100000");
    assert_string_equal(burst, "1000");

    /* No swap accounting: unset swap is fine, a set one is refused. */
    _cleanup_free_ char *swap = xasprintf("%s/memory.swap.max", dir);
    assert_int_equal(unlink(swap), 0);
    f->trace[0] = '\0';
    assert_int_equal(cgroup_set_limits(f->mgr, "g1", &none), 0);
    assert_null(strstr(f->trace, "swap"));
    struct spec_limits with_swap = {.swap = 4096};
    assert_int_equal(cgroup_set_limits(f->mgr, "g1", &with_swap), -EOPNOTSUPP);
    assert_int_equal(cgroup_set_limits(f->mgr, "nosuch", &none), -ENOENT);
}

/* Debian's 6.1 kernel has iocost built in (io.weight in every cgroup) and BFQ
 * as a module (io.bfq.weight appears once it is loaded): each weighs other
 * devices, so both are written, BFQ's capped at its maximum of 1000. */
static void
test_io_weight_both_schedulers(void **state)
{
    struct fake *f = *state;
    assert_int_equal(cgroup_create(f->mgr, "g1"), 0);
    _cleanup_free_ char *dir = xasprintf("%s/vfleet/g1", f->root);
    put(dir, "io.bfq.weight", "default 100\n");
    f->trace[0] = '\0';
    struct spec_limits l = {.io_weight = 3000};
    assert_int_equal(cgroup_set_limits(f->mgr, "g1", &l), 0);
    assert_non_null(strstr(f->trace, "vfleet/g1/io.weight\tdefault 3000\n"
                                     "vfleet/g1/io.bfq.weight\tdefault 1000\n"));

    /* BFQ alone (a kernel without iocost). */
    _cleanup_free_ char *iow = xasprintf("%s/io.weight", dir);
    assert_int_equal(unlink(iow), 0);
    f->trace[0] = '\0';
    l.io_weight = 300;
    assert_int_equal(cgroup_set_limits(f->mgr, "g1", &l), 0);
    assert_null(strstr(f->trace, "io.weight\t"));
    assert_non_null(strstr(f->trace, "vfleet/g1/io.bfq.weight\tdefault 300\n"));
}

static void
test_usage_parsing(void **state)
{
    struct fake *f = *state;
    assert_int_equal(cgroup_create(f->mgr, "g1"), 0);
    _cleanup_free_ char *dir = xasprintf("%s/vfleet/g1", f->root);
    put(dir, "cpu.stat", "usage_usec 123456\nuser_usec 100000\nsystem_usec 23456\n");
    put(dir, "memory.current", "1048576\n");
    put(dir, "memory.peak", "2097152\n");
    put(dir, "memory.swap.current", "8192\n");
    put(dir, "memory.stat",
        "anon_thp 999\nanon 4096\nfile 8192\nfile_mapped_x 5\n"
        "file_mapped 12288\n");
    put(dir, "pids.current", "3\n");
    put(dir, "pids.events", "max 7\n");
    put(dir, "memory.events", "low 0\nhigh 5\nmax 9\noom 2\noom_kill 1\noom_group_kill 0\n");
    /* The kernel lists a device the guest touched before any counter moved
     * as a bare "maj:min " line. */
    put(dir, "io.stat",
        "7:0 \n"
        "8:0 rbytes=100 wbytes=200 rios=3 wios=4 dbytes=0 dios=0\n"
        "8:16 rbytes=1000 wbytes=2000 rios=30 wios=40 dbytes=7 dios=7\n");
    struct guest_usage u = {0};
    assert_int_equal(cgroup_usage(f->mgr, "g1", &u), 0);
    assert_true(u.cpu_ns == 123456000ULL);
    assert_true(u.memory == 1048576);
    assert_true(u.memory_peak == 2097152);
    assert_true(u.swap == 8192);
    assert_true(u.rss == 4096 + 12288);
    assert_true(u.procs == 3);
    assert_true(u.failcnt[USAGE_FAIL_PROCS] == 7);
    assert_true(u.failcnt[USAGE_FAIL_MEMORY] == 9);
    assert_true(u.failcnt[USAGE_FAIL_OOM] == 1);
    assert_true(u.io_read_bytes == 1100);
    assert_true(u.io_write_bytes == 2200);
    assert_true(u.io_read_ops == 33);
    assert_true(u.io_write_ops == 44);

    /* Files the kernel lacks (no memory.peak before 5.19) leave zeros. */
    _cleanup_free_ char *peak = xasprintf("%s/memory.peak", dir);
    assert_int_equal(unlink(peak), 0);
    struct guest_usage u2 = {0};
    assert_int_equal(cgroup_usage(f->mgr, "g1", &u2), 0);
    assert_true(u2.memory_peak == 0);
    assert_true(u2.memory == 1048576);
    assert_int_equal(cgroup_usage(f->mgr, "nosuch", &u2), -ENOENT);
}

/* Guests whose processes will not die are killed with one deadline for
 * all: every pass signals each guest that has processes before the wait, so
 * the kill ends after one timeout however many there are (the agent's
 * start-up killed its unrecorded guests one by one, CGROUP_KILL_TIMEOUT_MS
 * each). Each guest's answer says whether processes were killed, none ran,
 * or some remain. */
static void
test_kill_many_one_deadline(void **state)
{
    struct fake *f = *state;
    char *ids[] = {"stuck1", "empty", "stuck2", "dies", "../x", "stuck3", "absent"};
    int res[ARRAY_SIZE(ids)];

    for (size_t i = 0; i < 4; i++) {
        const char *id = i == 0 ? "stuck1" : i == 1 ? "stuck2" : i == 2 ? "stuck3" : "dies";
        assert_int_equal(cgroup_create(f->mgr, id), 0);
        _cleanup_free_ char *dir = xasprintf("%s/vfleet/%s", f->root, id);
        put(dir, "cgroup.procs", "4242\n");
    }
    assert_int_equal(cgroup_create(f->mgr, "empty"), 0);
    f->trace[0] = '\0';
    assert_int_equal(cgroup_kill_many(f->mgr, ids, ARRAY_SIZE(ids), res), 0);
    assert_int_equal(res[0], -EBUSY);
    assert_int_equal(res[1], 0);
    assert_int_equal(res[2], -EBUSY);
    assert_int_equal(res[3], 1);
    assert_int_equal(res[4], -EINVAL);
    assert_int_equal(res[5], -EBUSY);
    assert_int_equal(res[6], 0);
    /* The first pass signalled each before the second began: no guest was
     * waited for alone. */
    static const char first[] = "vfleet/stuck1/cgroup.freeze\t1\nvfleet/stuck1/cgroup.freeze\t0\n"
                                "vfleet/stuck2/cgroup.freeze\t1\nvfleet/stuck2/cgroup.freeze\t0\n"
                                "vfleet/dies/cgroup.freeze\t1\nvfleet/dies/cgroup.freeze\t0\n"
                                "vfleet/stuck3/cgroup.freeze\t1\nvfleet/stuck3/cgroup.freeze\t0\n"
                                "vfleet/stuck1/cgroup.freeze\t1\n";
    if (strncmp(f->trace, first, strlen(first)) != 0)
        fail_msg("writes:\n%.600s\nwant first:\n%s", f->trace, first);
    f->trace[0] = '\0';
}

static void
test_attach_kill_destroy(void **state)
{
    struct fake *f = *state;
    assert_int_equal(cgroup_create(f->mgr, "g1"), 0);
    _cleanup_free_ char *dir = xasprintf("%s/vfleet/g1", f->root);
    f->trace[0] = '\0';
    assert_int_equal(cgroup_attach(f->mgr, "g1", 4242), 0);
    expect_trace(f, "vfleet/g1/cgroup.procs\t4242\n");
    assert_int_equal(cgroup_attach(f->mgr, "g1", 0), -EINVAL);

    char **paths = NULL;
    assert_int_equal(cgroup_procs_paths(f->mgr, "g1", &paths), 0);
    _cleanup_free_ char *want = xasprintf("%s/cgroup.procs", dir);
    assert_string_equal(paths[0], want);
    assert_null(paths[1]);
    cgroup_strv_free(&paths);

    int fd = cgroup_open_v2_fd(f->mgr, "g1");
    assert_true(fd >= 0);
    struct stat st;
    assert_int_equal(fstat(fd, &st), 0);
    assert_true(S_ISDIR(st.st_mode));
    assert_true(fcntl(fd, F_GETFD) & FD_CLOEXEC);
    close(fd);

    /* Pids far beyond pid_max would never die; the fake kernel empties the
     * cgroup when it is thawed after the kills. A stop's kill freezes, kills
     * and thaws, and never writes cgroup.kill: the kernel would kill every
     * later clone into the cgroup (CLONE_INTO_CGROUP) at birth. */
    put(dir, "cgroup.procs", "4242\n4243\n");
    pid_t *pids = NULL;
    size_t n = 0;
    assert_int_equal(cgroup_pids(f->mgr, "g1", &pids, &n), 0);
    assert_int_equal(n, 2);
    assert_int_equal(pids[0], 4242);
    assert_int_equal(pids[1], 4243);
    free(pids);
    assert_int_equal(cgroup_kill(f->mgr, "g1"), 0);
    expect_trace(f, "vfleet/g1/cgroup.freeze\t1\nvfleet/g1/cgroup.freeze\t0\n");

    /* A destroy removes the cgroup right after: cgroup.kill there. */
    put(dir, "cgroup.procs", "4242\n");
    assert_int_equal(cgroup_destroy(f->mgr, "g1"), 0);
    expect_trace(f, "vfleet/g1/cgroup.kill\t1\n");
    assert_false(cgroup_exists(f->mgr, "g1"));
    assert_int_equal(access(dir, F_OK), -1);
    _cleanup_free_ char *base = xasprintf("%s/vfleet", f->root);
    assert_int_equal(access(base, F_OK), 0);
    assert_int_equal(cgroup_destroy(f->mgr, "g1"), 0);
    assert_int_equal(cgroup_open_v2_fd(f->mgr, "g1"), -ENOENT);
}

/* A process of the guest moved into a cgroup below the guest's (a
 * privileged guest that mounts cgroupfs and makes one) is the guest's: it
 * is listed, a stop's kill is not done while it lives (the kill read the
 * guest's own cgroup.procs only, found it empty and said "stopped"), and a
 * destroy removes the cgroups below before the guest's own (its rmdir
 * failed on the directory below). Without them the kill writes nothing
 * more than before. */
static void
test_kill_destroy_subtree(void **state)
{
    struct fake *f = *state;
    assert_int_equal(cgroup_create(f->mgr, "g1"), 0);
    _cleanup_free_ char *dir = xasprintf("%s/vfleet/g1", f->root);
    _cleanup_free_ char *sub = xasprintf("%s/init.scope", dir);
    _cleanup_free_ char *deep = xasprintf("%s/user/a", dir);
    _cleanup_free_ char *user = xasprintf("%s/user", dir);
    assert_int_equal(mkdir(sub, 0755), 0);
    assert_int_equal(fake_populate(sub, f), 0);
    assert_int_equal(mkdir(user, 0755), 0);
    assert_int_equal(fake_populate(user, f), 0);
    assert_int_equal(mkdir(deep, 0755), 0);
    assert_int_equal(fake_populate(deep, f), 0);
    put(sub, "cgroup.procs", "4242\n");
    put(deep, "cgroup.procs", "4243\n4244\n");

    pid_t *pids = NULL;
    size_t n = 0;
    assert_int_equal(cgroup_pids(f->mgr, "g1", &pids, &n), 0);
    assert_int_equal(n, 3);
    free(pids);

    f->trace[0] = '\0';
    assert_int_equal(cgroup_kill(f->mgr, "g1"), 0);
    expect_trace(f, "vfleet/g1/cgroup.freeze\t1\nvfleet/g1/cgroup.freeze\t0\n");
    _cleanup_free_ char *left = get(deep, "cgroup.procs");
    assert_string_equal(left, "");

    /* The process the fake kernel never lets go (a "stuck" guest) below
     * keeps the kill from saying the guest is empty. */
    assert_int_equal(cgroup_create(f->mgr, "stuck1"), 0);
    _cleanup_free_ char *ssub = xasprintf("%s/vfleet/stuck1/x", f->root);
    assert_int_equal(mkdir(ssub, 0755), 0);
    assert_int_equal(fake_populate(ssub, f), 0);
    put(ssub, "cgroup.procs", "4245\n");
    assert_int_equal(cgroup_kill(f->mgr, "stuck1"), -EBUSY);
    put(ssub, "cgroup.procs", "");

    /* A destroy: cgroup.kill on the guest's cgroup reaches the subtree,
     * then the directories go, the deepest first. */
    put(deep, "cgroup.procs", "4246\n");
    f->trace[0] = '\0';
    assert_int_equal(cgroup_destroy(f->mgr, "g1"), 0);
    expect_trace(f, "vfleet/g1/cgroup.kill\t1\n");
    assert_int_equal(access(dir, F_OK), -1);
    assert_false(cgroup_exists(f->mgr, "g1"));
    assert_int_equal(cgroup_destroy(f->mgr, "stuck1"), 0);
    assert_false(cgroup_exists(f->mgr, "stuck1"));
}

/* A cgroup a kill cut short left frozen (cgroup.freeze 1) is thawed, with
 * one write; one that is not frozen is only read, and one without a
 * freezer file (a kernel before 5.2) is not frozen. */
static void
test_thaw(void **state)
{
    struct fake *f = *state;
    assert_int_equal(cgroup_create(f->mgr, "g1"), 0);
    _cleanup_free_ char *dir = xasprintf("%s/vfleet/g1", f->root);
    put(dir, "cgroup.freeze", "1\n");
    f->trace[0] = '\0';
    assert_int_equal(cgroup_thaw(f->mgr, "g1"), 1);
    expect_trace(f, "vfleet/g1/cgroup.freeze\t0\n");
    put(dir, "cgroup.freeze", "0\n");
    assert_int_equal(cgroup_thaw(f->mgr, "g1"), 0);
    expect_trace(f, "");
    _cleanup_free_ char *freeze = xasprintf("%s/cgroup.freeze", dir);
    assert_int_equal(unlink(freeze), 0);
    assert_int_equal(cgroup_thaw(f->mgr, "g1"), 0);
    assert_int_equal(cgroup_destroy(f->mgr, "g1"), 0);
}

static int
cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The guests with a cgroup, as the agent's start-up looks for those with no
 * record: every guest directory under the prefix, nothing else. */
static void
test_list(void **state)
{
    struct fake *f = *state;
    char **ids = NULL;
    size_t n = 0;

    assert_int_equal(cgroup_list(f->mgr, &ids), 0); /* no prefix directory yet */
    assert_null(ids[0]);
    cgroup_strv_free(&ids);
    assert_int_equal(cgroup_create(f->mgr, "g2"), 0);
    assert_int_equal(cgroup_create(f->mgr, "g1"), 0);
    _cleanup_free_ char *odd = xasprintf("%s/vfleet/not an id", f->root);
    assert_int_equal(mkdir(odd, 0755), 0);
    _cleanup_free_ char *base = xasprintf("%s/vfleet", f->root);
    put(base, "g3", ""); /* a file, not a cgroup */
    assert_int_equal(cgroup_list(f->mgr, &ids), 0);
    while (ids[n])
        n++;
    assert_int_equal(n, 2);
    qsort(ids, n, sizeof(*ids), cmp_str);
    assert_string_equal(ids[0], "g1");
    assert_string_equal(ids[1], "g2");
    cgroup_strv_free(&ids);
    assert_null(ids);

    assert_int_equal(cgroup_destroy(f->mgr, "g1"), 0);
    assert_int_equal(cgroup_list(f->mgr, &ids), 0);
    assert_string_equal(ids[0], "g2");
    assert_null(ids[1]);
    cgroup_strv_free(&ids);
    assert_int_equal(rmdir(odd), 0);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_create_enables_controllers, setup, teardown),
        cmocka_unit_test_setup_teardown(test_limits_exact_bytes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_io_weight_both_schedulers, setup, teardown),
        cmocka_unit_test_setup_teardown(test_usage_parsing, setup, teardown),
        cmocka_unit_test_setup_teardown(test_attach_kill_destroy, setup, teardown),
        cmocka_unit_test_setup_teardown(test_kill_many_one_deadline, setup, teardown),
        cmocka_unit_test_setup_teardown(test_list, setup, teardown),
        cmocka_unit_test_setup_teardown(test_thaw, setup, teardown),
        cmocka_unit_test_setup_teardown(test_kill_destroy_subtree, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
