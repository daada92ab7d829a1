/* Tests for deploy/templates/busybox: builds the template into a temporary
 * directory, checks the tree, rebuilds it (idempotent, atomic; a previous tree
 * that a mount in another namespace uses is kept aside), and boots its
 * /sbin/init as PID 1 of a new pid namespace to check that it runs /etc/rc,
 * stays up, reaps orphans and exits 0 on SIGTERM. Needs root, busybox-static
 * and the source tree (VFLEET_SOURCE_DIR, set by ctest); skipped (77)
 * otherwise. The teardown removes everything even when an assertion fails. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <sched.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <dirent.h>
#include <unistd.h>
#include <cmocka.h>

struct fx {
    char dir[256];       /* the test's temporary directory */
    char dest[PATH_MAX]; /* where the template is built */
    pid_t init;          /* the booted init, 0 when none runs */
};

static int
setup(void **state)
{
    struct fx *fx = calloc(1, sizeof(*fx));
    snprintf(fx->dir, sizeof(fx->dir), "/tmp/vf-template-test-%d-XXXXXX", (int)getpid());
    if (!mkdtemp(fx->dir))
        return -1;
    snprintf(fx->dest, sizeof(fx->dest), "%s/busybox", fx->dir);
    *state = fx;
    return 0;
}

static int
teardown(void **state)
{
    struct fx *fx = *state;
    if (fx->init > 0) {
        kill(fx->init, SIGKILL);
        waitpid(fx->init, NULL, 0);
    }
    char cmd[PATH_MAX + 16];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", fx->dir);
    if (system(cmd) != 0)
        fprintf(stderr, "teardown: could not remove %s\n", fx->dir);
    free(fx);
    return 0;
}

static void
build(struct fx *fx)
{
    char cmd[2 * PATH_MAX];
    snprintf(cmd, sizeof(cmd), "'%s/deploy/templates/busybox' '%s' >/dev/null",
             getenv("VFLEET_SOURCE_DIR"), fx->dest);
    assert_int_equal(system(cmd), 0);
}

static void
assert_exec(const struct fx *fx, const char *rel)
{
    char path[PATH_MAX + 64];
    snprintf(path, sizeof(path), "%s/%s", fx->dest, rel);
    struct stat st;
    assert_int_equal(stat(path, &st), 0); /* follows the relative applet links */
    assert_true(S_ISREG(st.st_mode) && (st.st_mode & 0111));
}

/* Entries in fx->dir: the template and nothing left over from a build. */
static int
count_entries(const char *dir)
{
    DIR *d = opendir(dir);
    assert_non_null(d);
    int n = 0;
    struct dirent *de;
    while ((de = readdir(d)))
        n += strcmp(de->d_name, ".") != 0 && strcmp(de->d_name, "..") != 0;
    closedir(d);
    return n;
}

static void
test_tree(void **state)
{
    struct fx *fx = *state;
    build(fx);
    assert_exec(fx, "sbin/init");
    assert_exec(fx, "bin/sh");
    assert_exec(fx, "bin/busybox");
    assert_exec(fx, "usr/bin/env");
    assert_exec(fx, "sbin/ip");
    assert_exec(fx, "etc/rc");
    char path[PATH_MAX + 64];
    const char *files[] = {"etc/passwd", "etc/group", "etc/hostname", "etc/profile", "proc", "sys",
                           "dev",        "tmp",       "run",          "var",         "root"};
    for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
        snprintf(path, sizeof(path), "%s/%s", fx->dest, files[i]);
        assert_int_equal(access(path, F_OK), 0);
    }
    /* init is vfleet's shell init, not busybox's. */
    struct stat st;
    snprintf(path, sizeof(path), "%s/sbin/init", fx->dest);
    assert_int_equal(lstat(path, &st), 0);
    assert_true(S_ISREG(st.st_mode));

    /* The shell runs (busybox is static, so it runs from the host too). */
    char cmd[2 * PATH_MAX + 64];
    snprintf(cmd, sizeof(cmd), "'%s/bin/sh' -n '%s/sbin/init'", fx->dest, fx->dest);
    assert_int_equal(system(cmd), 0);

    /* A rebuild replaces the tree and leaves nothing else behind. */
    snprintf(path, sizeof(path), "%s/marker", fx->dest);
    FILE *f = fopen(path, "we");
    assert_non_null(f);
    fclose(f);
    build(fx);
    assert_int_equal(access(path, F_OK), -1);
    assert_int_equal(count_entries(fx->dir), 1);
}

/* Entries of dir whose name starts with prefix. */
static int
count_prefixed(const char *dir, const char *prefix)
{
    DIR *d = opendir(dir);
    assert_non_null(d);
    int n = 0;
    struct dirent *de;
    while ((de = readdir(d)))
        n += strncmp(de->d_name, prefix, strlen(prefix)) == 0;
    closedir(d);
    return n;
}

/* A child in a mount namespace of its own that mounts the template at
 * fx->dir/mnt (an overlay naming it as lower layer, as a privileged guest's
 * root, or a bind of it, as a user-namespaced guest's idmapped lower) and
 * waits to be killed. Returns its pid once the mount is in place. */
static pid_t
hold_tree(struct fx *fx, bool overlay)
{
    char mnt[PATH_MAX + 16], up[PATH_MAX + 16], work[PATH_MAX + 16], opts[4 * PATH_MAX];
    int p[2];

    snprintf(mnt, sizeof(mnt), "%s/mnt", fx->dir);
    snprintf(up, sizeof(up), "%s/ovl-up", fx->dir);
    snprintf(work, sizeof(work), "%s/ovl-work", fx->dir);
    (void)mkdir(mnt, 0700);
    assert_int_equal(pipe2(p, O_CLOEXEC), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        int r = unshare(CLONE_NEWNS) == 0 && mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) == 0
                    ? 0
                    : -1;
        if (r == 0 && overlay) {
            (void)mkdir(up, 0700);
            (void)mkdir(work, 0700);
            snprintf(opts, sizeof(opts), "lowerdir=%s,upperdir=%s,workdir=%s", fx->dest, up, work);
            r = mount("overlay", mnt, "overlay", 0, opts);
        } else if (r == 0) {
            r = mount(fx->dest, mnt, NULL, MS_BIND, NULL);
        }
        char c = r == 0 ? 'y' : 'n';
        if (write(p[1], &c, 1) != 1)
            _exit(1);
        for (;;)
            pause();
    }
    close(p[1]);
    char c = 0;
    assert_int_equal(read(p[0], &c, 1), 1);
    close(p[0]);
    assert_int_equal(c, 'y');
    return pid;
}

/* A rebuild keeps the previous tree while a mount in another namespace
 * still uses it (lib.sh tpl_swap), and removes it once nothing does. */
static void
test_swap_keeps_used_tree(void **state)
{
    struct fx *fx = *state;
    const bool kinds[] = {true, false};

    build(fx);
    for (size_t i = 0; i < 2; i++) {
        pid_t holder = hold_tree(fx, kinds[i]);
        build(fx);
        kill(holder, SIGKILL);
        assert_int_equal(waitpid(holder, NULL, 0), holder);
        /* the held tree was kept aside as busybox.old.XXXXXX */
        assert_int_equal(count_prefixed(fx->dir, "busybox.old."), (int)i + 1);
        /* nothing holds the current one: the next rebuild removes it */
        build(fx);
        assert_int_equal(count_prefixed(fx->dir, "busybox.old."), (int)i + 1);
    }
}

/* Reads from fd until needle has been seen in everything read so far (kept in
 * buf), with a generous bound so a broken init fails the test, not hangs it. */
static void
read_until(int fd, char *buf, size_t n, size_t *len, const char *needle)
{
    for (int i = 0; i < 100 && !strstr(buf, needle); i++) {
        struct pollfd p = {.fd = fd, .events = POLLIN};
        if (poll(&p, 1, 100) <= 0)
            continue;
        ssize_t k = read(fd, buf + *len, n - 1 - *len);
        if (k <= 0)
            break;
        *len += (size_t)k;
        buf[*len] = '\0';
    }
    if (!strstr(buf, needle))
        fprintf(stderr, "init output so far: %s\n", buf);
    assert_non_null(strstr(buf, needle));
}

/* Children of pid, from /proc; a zombie stays listed until it is reaped. */
static int
children(pid_t pid)
{
    char path[64], buf[256] = "";
    snprintf(path, sizeof(path), "/proc/%d/task/%d/children", (int)pid, (int)pid);
    FILE *f = fopen(path, "re");
    assert_non_null(f);
    size_t k = fread(buf, 1, sizeof(buf) - 1, f);
    fclose(f);
    buf[k] = '\0';
    int n = 0;
    for (char *tok = strtok(buf, " \n"); tok; tok = strtok(NULL, " \n"))
        n++;
    return n;
}

static void
test_init(void **state)
{
    struct fx *fx = *state;
    build(fx);
    char path[PATH_MAX + 64];

    /* The guest runtime gives init a /dev; the chroot here needs /dev/null. */
    snprintf(path, sizeof(path), "%s/dev/null", fx->dest);
    assert_int_equal(mknod(path, S_IFCHR | 0666, makedev(1, 3)), 0);
    /* A service in rc.d leaves an orphan that exits at once; rc.shutdown
     * marks the halt. */
    snprintf(path, sizeof(path), "%s/etc/rc.d/10-test", fx->dest);
    FILE *f = fopen(path, "we");
    assert_non_null(f);
    fputs("#!/bin/sh\nsh -c 'true & exit 0'\necho rc-done\n", f);
    fclose(f);
    assert_int_equal(chmod(path, 0755), 0);
    snprintf(path, sizeof(path), "%s/etc/rc.shutdown", fx->dest);
    f = fopen(path, "we");
    assert_non_null(f);
    fputs("#!/bin/sh\necho shutdown-ran\n", f);
    fclose(f);
    assert_int_equal(chmod(path, 0755), 0);

    int p[2];
    assert_int_equal(pipe2(p, O_CLOEXEC), 0);
    /* fork-like clone into a new pid namespace: the child is its PID 1. The
     * test is single-threaded, so a raw clone is safe here. */
    pid_t pid = (pid_t)syscall(SYS_clone, CLONE_NEWPID | SIGCHLD, NULL, NULL, NULL, NULL);
    assert_true(pid >= 0);
    if (pid == 0) {
        char *const env[] = {"PATH=/usr/sbin:/usr/bin:/sbin:/bin", NULL};
        if (dup2(p[1], 1) < 0 || dup2(p[1], 2) < 0 || chroot(fx->dest) < 0 || chdir("/") < 0)
            _exit(120);
        execle("/sbin/init", "init", (char *)NULL, env);
        _exit(121);
    }
    fx->init = pid;
    close(p[1]);

    char out[4096] = "";
    size_t len = 0;
    read_until(p[0], out, sizeof(out), &len, "rc-done");
    assert_non_null(strstr(out, "up"));

    /* Orphans are reaped: in the end init's only child is its own sleep. */
    int n = 0;
    for (int i = 0; i < 500 && (n = children(pid)) != 1; i++)
        usleep(10000);
    assert_int_equal(n, 1);

    /* The halt signal stops the guest cleanly. */
    assert_int_equal(kill(pid, SIGTERM), 0);
    read_until(p[0], out, sizeof(out), &len, "shutdown-ran");
    int ws;
    assert_int_equal(waitpid(pid, &ws, 0), pid);
    fx->init = 0;
    close(p[0]);
    assert_true(WIFEXITED(ws));
    assert_int_equal(WEXITSTATUS(ws), 0);
}

int
main(void)
{
    if (geteuid() != 0 || access("/bin/busybox", X_OK) != 0 || !getenv("VFLEET_SOURCE_DIR")) {
        fprintf(stderr, "template_test: needs root, /bin/busybox and VFLEET_SOURCE_DIR, "
                        "skipping\n");
        return 77;
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_tree, setup, teardown),
        cmocka_unit_test_setup_teardown(test_init, setup, teardown),
        cmocka_unit_test_setup_teardown(test_swap_keeps_used_tree, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
