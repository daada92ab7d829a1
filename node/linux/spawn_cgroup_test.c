/* Tests for node/linux/spawn: the guest's cgroups, real ones (v1 and the
 * unified hierarchy) and plain files in their place to show the form of
 * each write. Skips (77) without root or /bin/busybox. */
#include <linux/magic.h>
#include <sys/statfs.h>

#include "node/linux/spawn_fixture.h"

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

/* True once a child of the spawner (the console reader) is in procs. */
static bool
reader_in(const char *procs)
{
    for (int i = 0; i < 500; i++, usleep(10000)) {
        FILE *f = fopen(procs, "re");
        assert_non_null(f);
        int pid;
        bool in = false;
        while (!in && fscanf(f, "%d", &pid) == 1)
            in = parent_of(pid) == spawner_pid(spawner);
        fclose(f);
        if (in)
            return true;
    }
    return false;
}

/* The root of a writable cgroup2 hierarchy: the hybrid host's unified one
 * (/sys/fs/cgroup/unified) or a pure v2 host's /sys/fs/cgroup (Debian 12's
 * default: the VM test host runs these tests there, deploy/vm/scenarios/
 * vm_units.sh). NULL when there is none: the v2 tests skip. */
static const char *
cgroup2_root(void)
{
    static const char *const roots[] = {"/sys/fs/cgroup/unified", "/sys/fs/cgroup"};
    for (size_t i = 0; i < sizeof(roots) / sizeof(roots[0]); i++) {
        struct statfs sf;
        char procs[64];
        snprintf(procs, sizeof(procs), "%s/cgroup.procs", roots[i]);
        if (statfs(roots[i], &sf) == 0 && sf.f_type == CGROUP2_SUPER_MAGIC &&
            access(procs, W_OK) == 0)
            return roots[i];
    }
    return NULL;
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
    /* And its console reader (the spawner's child): cloned into the v2 one
     * as init was (or, when the kernel killed that clone at birth, joining
     * it by its cgroup.procs), and joining the v1 one itself by its tasks
     * file. */
    char procs[160];
    snprintf(procs, sizeof(procs), "%s/cgroup.procs", v1);
    assert_true(reader_in(procs));
    snprintf(procs, sizeof(procs), "%s/cgroup.procs", v2);
    assert_true(reader_in(procs));

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

/* What the backend asks for on a pure v2 host (lx_spawn_config_of): no
 * cgroup.procs for init to join, only cgroup2 to clone it into, with
 * CLONE_NEWUSER in the same clone3. The kernel checks write access to the
 * target's cgroup.procs with the caller's (the spawner's, host root's)
 * credentials, not the new namespace's, so init lands in the cgroup; the
 * console reader and an exec'd command join it by cgroup.procs. */
static void
test_cgroup2_user_namespace(void **state)
{
    const char *root = cgroup2_root();
    if (!root)
        skip();
    char v2[128], name[64];
    snprintf(name, sizeof(name), "vf-spawn-test2-%d", (int)getpid());
    snprintf(v2, sizeof(v2), "%s/%s", root, name);
    assert_int_equal(mkdir(v2, 0755), 0);
    strcpy(cg_dirs[1], v2);
    struct guest g;
    char ring[128];
    snprintf(ring, sizeof(ring), "%s.cg2.ring", rootfs);
    make_cfg(&g.cfg, "vf-cg2", spec_default_caps());
    g.cfg.uid_base = 0xF2800000u;
    g.cfg.uid_count = 65536;
    strcpy(g.cfg.cgroup2, v2);
    strcpy(g.cfg.console_ring, ring);
    g.cfg.console_size = CONSOLE_RING_MIN;
    start_guest(&g);

    char host_view[64], want[128], procs[160];
    snprintf(host_view, sizeof(host_view), "/proc/%d/cgroup", (int)g.res.pid);
    snprintf(want, sizeof(want), "0::/%s\n", name);
    assert_true(file_contains(host_view, want));
    snprintf(procs, sizeof(procs), "%s/cgroup.procs", v2);
    assert_true(reader_in(procs));

    /* Its cgroup namespace was made inside the cgroup: it is the root. */
    struct exec_result r;
    RUN(&g, &r, "cat", "/proc/1/cgroup", "/proc/self/cgroup");
    int unified_root = 0;
    for (char *line = strtok(r.out, "\n"); line; line = strtok(NULL, "\n"))
        if (strncmp(line, "0::", 3) == 0)
            unified_root += strcmp(line, "0::/") == 0;
    assert_int_equal(unified_root, 2);
    exec_result_clear(&r);

    stop_guest(&g);
    unlink(ring);
    rmdir_retry(v2);
    cg_dirs[1][0] = '\0';
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
    /* Removed by the group teardown if an assertion below fails. */
    strcpy(side_dir, dir);
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
    side_dir[0] = '\0';
}

/* Zombie children of this process (the agent's place: inits are cloned
 * with CLONE_PARENT), which nobody would reap. */
static int
zombie_children(void)
{
    DIR *d = opendir("/proc");
    assert_non_null(d);
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        char path[300], line[128];
        int ppid = 0;
        char state = 0;
        snprintf(path, sizeof(path), "/proc/%s/status", e->d_name);
        FILE *f = e->d_name[0] >= '1' && e->d_name[0] <= '9' ? fopen(path, "re") : NULL;
        while (f && fgets(line, sizeof(line), f)) {
            (void)sscanf(line, "State: %c", &state);
            (void)sscanf(line, "PPid: %d", &ppid);
        }
        if (f)
            fclose(f);
        n += ppid == (int)getpid() && state == 'Z';
    }
    closedir(d);
    return n;
}

/* A cgroup once killed with cgroup.kill: kernels with the fix for the race
 * between fork and cgroup.kill (6.14+ and the stable kernels that took it:
 * Debian 12's 6.1.0-50, this host's 6.18) kill at birth every child cloned into it with
 * CLONE_INTO_CGROUP (proc_killed_at_birth). The start then clones init
 * again and lets it join by cgroup.procs, the reader and an exec helper
 * join too, the killed child is reaped, and the spawner lives on. Before,
 * init died at once and the spawner with it (SIGPIPE on the go byte): the
 * start failed with EPIPE, "spawner is gone", as every start after it. */
static void
test_cgroup2_killed(void **state)
{
    const char *root = cgroup2_root();
    if (!root)
        skip();
    char v2[128], name[64], kill_file[160], procs[160];
    snprintf(name, sizeof(name), "vf-spawn-test3-%d", (int)getpid());
    snprintf(v2, sizeof(v2), "%s/%s", root, name);
    snprintf(kill_file, sizeof(kill_file), "%s/cgroup.kill", v2);
    snprintf(procs, sizeof(procs), "%s/cgroup.procs", v2);
    assert_int_equal(mkdir(v2, 0755), 0);
    strcpy(cg_dirs[1], v2);
    if (access(kill_file, W_OK) != 0)
        skip(); /* before 5.14: no cgroup.kill */
    int fd = open(kill_file, O_WRONLY | O_CLOEXEC);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, "1", 1), 1);
    close(fd);

    pid_t sp = spawner_pid(spawner);
    char ring[128];
    snprintf(ring, sizeof(ring), "%s.cg3.ring", rootfs);
    for (int round = 0; round < 2; round++) {
        struct guest g;
        make_cfg(&g.cfg, "vf-cg3", spec_default_caps());
        g.cfg.uid_base = 0xF2800000u;
        g.cfg.uid_count = 65536;
        strcpy(g.cfg.cgroup2, v2);
        strcpy(g.cfg.console_ring, ring);
        g.cfg.console_size = CONSOLE_RING_MIN;
        start_guest(&g);

        char host_view[64], want[128];
        snprintf(host_view, sizeof(host_view), "/proc/%d/cgroup", (int)g.res.pid);
        snprintf(want, sizeof(want), "0::/%s\n", name);
        assert_true(file_contains(host_view, want));
        assert_true(reader_in(procs));
        struct exec_result r;
        RUN(&g, &r, "cat", "/proc/self/cgroup");
        /* Inside its cgroup namespace's root, as init. */
        assert_non_null(strstr(r.out, "0::/\n"));
        exec_result_clear(&r);
        assert_int_equal(zombie_children(), 0);
        assert_int_equal(kill(sp, 0), 0);
        stop_guest(&g);
    }
    unlink(ring);
    rmdir_retry(v2);
    cg_dirs[1][0] = '\0';
}

/* The cgroup.freeze of the frozen test's cgroup, and whether the alarm
 * had to thaw it (the start hung on it). */
static char frozen_file[160];
static volatile sig_atomic_t thawed_by_alarm;

static void
thaw_on_alarm(int sig)
{
    (void)sig;
    int fd = open(frozen_file, O_WRONLY | O_CLOEXEC);
    if (fd >= 0) {
        (void)!write(fd, "0", 1);
        close(fd);
    }
    thawed_by_alarm = 1;
}

/* The frozen tests' start: their cgroup vf-spawn-testN-PID in v2 (removed by
 * frozen_end, or by the group's teardown when the test fails), its
 * cgroup.procs in procs, its cgroup.freeze in frozen_file and thaw_on_alarm
 * on SIGALRM (the action before it in *old). Skips the test without a
 * writable cgroup2 hierarchy or, before 5.2, without cgroup.freeze. */
static void
frozen_begin(int n, char v2[128], char procs[160], struct sigaction *old)
{
    const char *root = cgroup2_root();
    if (!root)
        skip();
    snprintf(v2, 128, "%s/vf-spawn-test%d-%d", root, n, (int)getpid());
    snprintf(frozen_file, sizeof(frozen_file), "%s/cgroup.freeze", v2);
    snprintf(procs, 160, "%s/cgroup.procs", v2);
    assert_int_equal(mkdir(v2, 0755), 0);
    strcpy(cg_dirs[1], v2);
    if (access(frozen_file, W_OK) != 0)
        skip(); /* before 5.2: no cgroup.freeze */
    struct sigaction sa = {.sa_handler = thaw_on_alarm};
    assert_int_equal(sigaction(SIGALRM, &sa, old), 0);
}

/* Freezes ("1") or thaws ("0") the frozen test's cgroup. */
static void
frozen_set(const char *value)
{
    int fd = open(frozen_file, O_WRONLY | O_CLOEXEC);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, value, 1), 1);
    close(fd);
}

/* The frozen tests' end: SIGALRM's action back and the cgroup removed. */
static void
frozen_end(const char *v2, const struct sigaction *old)
{
    assert_int_equal(sigaction(SIGALRM, old, NULL), 0);
    rmdir_retry(v2);
    cg_dirs[1][0] = '\0';
}

/* A cgroup left frozen: a stop's kill freezes the guest's cgroup, kills
 * each process and thaws it (cgroup_v2.c), and an agent killed between the
 * freeze and the thaw leaves it frozen, its processes dead (a fatal signal
 * ends a frozen task on cgroup2). A child cloned into it, or joining it,
 * is frozen before its first instruction: the next start of the guest
 * waited forever for its console reader's first byte (fork_into), and with
 * it every start and exec of the node, the spawner being one process. The
 * start thaws it: init, its console reader and an exec run, with and
 * without a user namespace. */
static void
test_cgroup2_frozen(void **state)
{
    char v2[128], procs[160];
    struct sigaction old;
    frozen_begin(4, v2, procs, &old);
    char ring[128];
    snprintf(ring, sizeof(ring), "%s.cg4.ring", rootfs);
    for (int round = 0; round < 2; round++) {
        frozen_set("1");
        struct guest g;
        make_cfg(&g.cfg, "vf-cg4", spec_default_caps());
        g.cfg.uid_base = round ? 0xF2800000u : 0;
        g.cfg.uid_count = round ? 65536 : 0;
        strcpy(g.cfg.cgroup2, v2);
        strcpy(g.cfg.console_ring, ring);
        g.cfg.console_size = CONSOLE_RING_MIN;
        thawed_by_alarm = 0;
        alarm(10);
        start_guest(&g);
        alarm(0);
        assert_false(thawed_by_alarm);
        assert_true(reader_in(procs));

        struct exec_result r;
        RUN(&g, &r, "cat", "/proc/self/cgroup");
        assert_non_null(strstr(r.out, "0::/\n"));
        exec_result_clear(&r);
        stop_guest(&g);
    }
    unlink(ring);
    frozen_end(v2, &old);
}

/* Lines in the cgroup.procs at path. */
static int
procs_count(const char *path)
{
    FILE *f = fopen(path, "re");
    assert_non_null(f);
    int n = 0, pid;
    while (fscanf(f, "%d", &pid) == 1)
        n++;
    fclose(f);
    return n;
}

struct frozen_exec {
    struct guest *g;      /* the frozen guest */
    int result;           /* run_in's */
    struct exec_result r; /* its output */
};

static void *
frozen_exec_run(void *arg)
{
    struct frozen_exec *e = arg;
    e->result = run_in(spawner, e->g, 5000, 4096, &e->r, "cat", "/proc/self/cgroup", NULL);
    return NULL;
}

/* A running guest frozen on purpose (a move's last pass freezes it) and an
 * exec into it (a shell the master lets through: it does not check moves
 * before one): the exec waits for the thaw, alone. Its helper, cloned into
 * the frozen cgroup, wrote its first byte only at the thaw, and the spawner
 * waited for it (fork_into), so that another guest's start waited too. */
static void
test_cgroup2_frozen_exec(void **state)
{
    char v2[128], procs[160];
    struct sigaction old;
    frozen_begin(5, v2, procs, &old);

    struct guest a, b;
    make_cfg(&a.cfg, "vf-cg5", spec_default_caps());
    strcpy(a.cfg.cgroup2, v2);
    start_guest(&a);
    int before = procs_count(procs);
    frozen_set("1");

    struct frozen_exec e = {.g = &a};
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, frozen_exec_run, &e), 0);
    /* The exec's helper is in the cgroup (frozen there). */
    for (int i = 0; i < 500 && procs_count(procs) == before; i++)
        usleep(10000);
    assert_true(procs_count(procs) > before);

    make_cfg(&b.cfg, "vf-cg5b", spec_default_caps());
    thawed_by_alarm = 0;
    alarm(10);
    start_guest(&b);
    alarm(0);
    assert_false(thawed_by_alarm);
    stop_guest(&b);

    frozen_set("0");
    pthread_join(t, NULL);
    assert_int_equal(e.result, 0);
    assert_int_equal(e.r.exit_code, 0);
    assert_non_null(strstr(e.r.out, "0::/\n")); /* it ran in the guest's cgroup */
    exec_result_clear(&e.r);
    stop_guest(&a);
    frozen_end(v2, &old);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_cgroups),
        cmocka_unit_test(test_cgroup_joined_by_self),
        cmocka_unit_test(test_cgroup2_user_namespace),
        cmocka_unit_test(test_cgroup2_killed),
        cmocka_unit_test(test_cgroup2_frozen),
        cmocka_unit_test(test_cgroup2_frozen_exec),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
