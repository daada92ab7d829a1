/* Tests for node/linux/seedns: a guest's mount namespace is cloned from a
 * seed that holds the same few mounts whatever the host's table holds.
 *
 * The test runs in a mount namespace of its own (made private), where it
 * mounts EXTRA tmpfs instances to stand for the mounts of other guests: the
 * real host is not touched and they go with the test process. Proven:
 *  - the seed's table (what a guest's clone copies) is the same with and
 *    without those mounts, never shows them, stays the same over many
 *    starts, and the caller is back in its namespace, root and directory;
 *  - a guest started through the spawner sees none of them, and (Linux 6.8+,
 *    unique mount ids) fewer mounts were made for its start than the host's
 *    table holds: a copy of the host's table would make one per mount.
 * Skips (77) without root or /bin/busybox. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <cmocka.h>

#include "common/mem.h"
#include "node/linux/proc.h"
#include "node/linux/seedns.h"
#include "node/linux/spawn.h"
#include "proto/spec.h"

#define BUSYBOX "/bin/busybox"
#define EXTRA   300 /* tmpfs mounts standing for other guests' */

/* statx's unique mount id (Linux 6.8); Debian 12's headers predate it. */
#define T_STATX_MNT_ID_UNIQUE 0x00004000U

static char base[64];    /* the test's directory: rootfs/ and extra/ */
static char rootfs[96];  /* a busybox tree, the guests' root */
static unsigned n_extra; /* extra mounts made so far */
static spawner_t *spawner;
static pid_t live[4]; /* guests to kill at teardown if a test fails midway */

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
    close(in);
    close(out);
}

static void
remove_tree(const char *path)
{
    DIR *d = opendir(path);
    if (!d) {
        unlink(path);
        return;
    }
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
    rmdir(path);
}

/* Mounts n more tmpfs instances under base/extra. */
static void
add_extra(unsigned n)
{
    char path[160];
    for (unsigned i = 0; i < n; i++, n_extra++) {
        snprintf(path, sizeof(path), "%s/extra/m%u", base, n_extra);
        assert_int_equal(mkdir(path, 0700), 0);
        assert_int_equal(mount("tmpfs", path, "tmpfs", 0, "size=4k"), 0);
    }
}

/* Lines of a mountinfo file; *mentions set when one names an extra mount. */
static unsigned
mount_lines(const char *file, bool *mentions)
{
    FILE *f = fopen(file, "re");
    assert_non_null(f);
    char line[4096];
    unsigned n = 0;
    *mentions = false;
    while (fgets(line, sizeof(line), f)) {
        n++;
        if (strstr(line, "/extra/m"))
            *mentions = true;
    }
    fclose(f);
    return n;
}

static int
setup(void **state)
{
    if (geteuid() != 0) {
        fprintf(stderr, "seedns_test: needs root, skipping\n");
        exit(77);
    }
    if (access(BUSYBOX, X_OK) != 0) {
        fprintf(stderr, "seedns_test: no %s (busybox-static), skipping\n", BUSYBOX);
        exit(77);
    }
    /* Our own namespace: the extra mounts never reach the host. */
    assert_int_equal(unshare(CLONE_NEWNS), 0);
    assert_int_equal(mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL), 0);
    snprintf(base, sizeof(base), "/tmp/vf-seed-%d-XXXXXX", (int)getpid());
    assert_non_null(mkdtemp(base));
    chmod(base, 0755);
    snprintf(rootfs, sizeof(rootfs), "%s/rootfs", base);
    char path[192];
    const char *dirs[] = {"", "/bin", "/proc", "/sys", "/dev", "/tmp"};
    for (size_t i = 0; i < ARRAY_SIZE(dirs); i++) {
        snprintf(path, sizeof(path), "%s%s", rootfs, dirs[i]);
        assert_int_equal(mkdir(path, 0755), 0);
    }
    snprintf(path, sizeof(path), "%s/bin/busybox", rootfs);
    copy_file(BUSYBOX, path);
    const char *applets[] = {"sh", "sleep"};
    for (size_t i = 0; i < ARRAY_SIZE(applets); i++) {
        snprintf(path, sizeof(path), "%s/bin/%s", rootfs, applets[i]);
        assert_int_equal(symlink("busybox", path), 0);
    }
    snprintf(path, sizeof(path), "%s/extra", base);
    assert_int_equal(mkdir(path, 0700), 0);
    /* Before the spawner: its seed is made from a table that holds them. */
    add_extra(EXTRA);
    int err;
    spawner = spawner_new(&err);
    if (!spawner)
        fail_msg("spawner_new: %s", strerror(-err));
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
    spawner_destroy(&spawner);
    char path[160];
    for (unsigned i = 0; i < n_extra; i++) {
        snprintf(path, sizeof(path), "%s/extra/m%u", base, i);
        umount2(path, MNT_DETACH);
    }
    if (base[0])
        remove_tree(base);
    return 0;
}

static ino_t
ns_inode(void)
{
    struct stat st;
    assert_int_equal(stat("/proc/self/ns/mnt", &st), 0);
    return st.st_ino;
}

/* The mount at path in /proc/self/mountinfo: its id and its parent's; 0
 * when nothing is mounted there. */
static int
mount_at(const char *path, unsigned *parent)
{
    FILE *f = fopen("/proc/self/mountinfo", "re");
    assert_non_null(f);
    char line[4096], point[4096];
    unsigned id, par;
    int found = 0;
    while (fgets(line, sizeof(line), f))
        if (sscanf(line, "%u %u %*s %*s %4095s", &id, &par, point) == 3 &&
            strcmp(point, path) == 0) {
            found = (int)id; /* the last one: the top of a stack */
            *parent = par;
        }
    fclose(f);
    return found;
}

/* The staged trees hang off one holder mount, so that seedns_leave takes
 * them all with one unmount (one RCU grace period, not one per tree). */
static void
assert_one_holder(void)
{
    unsigned holder_parent = 0, guest_parent = 0, dev_parent = 0;
    int holder = mount_at(SEEDNS_STAGE, &holder_parent);
    assert_true(holder > 0);
    assert_true(mount_at(SEEDNS_GUEST, &guest_parent) > 0);
    assert_true(mount_at(SEEDNS_HOSTDEV, &dev_parent) > 0);
    assert_int_equal(guest_parent, (unsigned)holder);
    assert_int_equal(dev_parent, (unsigned)holder);
}

/* What a guest's clone would copy: the seed's table with one start's
 * mounts staged, seen from inside. */
static unsigned
staged_lines(struct seedns *s, const struct spawn_config *cfg)
{
    struct spawn_config staged;
    const char *dev;
    char what[300];
    bool mentions;
    assert_int_equal(seedns_enter(s, cfg, &staged, &dev, what, sizeof(what)), 0);
    assert_string_equal(staged.rootfs, SEEDNS_GUEST);
    assert_string_equal(dev, SEEDNS_HOSTDEV);
    unsigned n = mount_lines("/proc/self/mountinfo", &mentions);
    struct stat st;
    bool has_guest = stat(SEEDNS_GUEST "/bin/busybox", &st) == 0;
    assert_one_holder();
    assert_int_equal(seedns_leave(s), 0);
    assert_true(has_guest);
    return n;
}

static void
test_seed_is_small_and_constant(void **state)
{
    struct seedns s;
    ino_t home = ns_inode();
    char cwd[256], cwd2[256];
    assert_non_null(getcwd(cwd, sizeof(cwd)));
    bool mentions;
    unsigned host = mount_lines("/proc/self/mountinfo", &mentions);
    assert_true(mentions);
    assert_true(host > EXTRA);

    assert_int_equal(seedns_make(&s), 0);
    assert_true(s.seed >= 0);
    assert_int_equal(ns_inode(), home);
    struct spawn_config cfg = {.uid_base = 0xF3000000u, .uid_count = 65536};
    strcpy(cfg.rootfs, rootfs);
    unsigned first = staged_lines(&s, &cfg);
    /* Root, proc, sys, the guest's root, the host's /dev and what is on it. */
    assert_true(first < 20);
    add_extra(50);
    for (int i = 0; i < 20; i++)
        assert_int_equal(staged_lines(&s, &cfg), first);
    assert_int_equal(ns_inode(), home);
    assert_non_null(getcwd(cwd2, sizeof(cwd2)));
    assert_string_equal(cwd, cwd2);

    /* Only the guest's root staged: the seed's root, proc, sys, the holder
     * and the guest's root; no extra mount seen. */
    struct spawn_config bare = {0};
    strcpy(bare.rootfs, rootfs);
    struct spawn_config staged;
    const char *dev;
    char what[300];
    assert_int_equal(seedns_enter(&s, &bare, &staged, &dev, what, sizeof(what)), 0);
    assert_string_equal(dev, "/dev");
    unsigned n = mount_lines("/proc/self/mountinfo", &mentions);
    bool extra_seen = access(SEEDNS_STAGE "/../tmp", F_OK) == 0;
    assert_int_equal(seedns_leave(&s), 0);
    assert_true(n <= 5);
    assert_false(extra_seen);

    /* A tree that is not there: the error names it, and we are home. */
    strcpy(bare.rootfs, "/nonexistent-vf-seed");
    assert_int_equal(seedns_enter(&s, &bare, &staged, &dev, what, sizeof(what)), -ENOENT);
    assert_non_null(strstr(what, "/nonexistent-vf-seed"));
    assert_int_equal(ns_inode(), home);
    assert_int_equal(staged_lines(&s, &cfg), first);
    seedns_close(&s);
    assert_int_equal(s.seed, -1);

    /* Without a seed: the paths as given, nothing entered or left. */
    assert_int_equal(seedns_enter(&s, &cfg, &staged, &dev, what, sizeof(what)), 0);
    assert_string_equal(staged.rootfs, rootfs);
    assert_string_equal(dev, "/dev");
    assert_int_equal(seedns_leave(&s), 0);
    assert_int_equal(ns_inode(), home);
}

static uint64_t
unique_mount_id(const char *path)
{
    struct statx stx;
    if (statx(AT_FDCWD, path, AT_STATX_SYNC_AS_STAT, T_STATX_MNT_ID_UNIQUE, &stx) < 0 ||
        !(stx.stx_mask & T_STATX_MNT_ID_UNIQUE))
        return 0;
    return stx.stx_mnt_id;
}

static void
start(struct spawn_config *cfg, struct spawn_result *res, const char *name, uint32_t uid_base)
{
    memset(cfg, 0, sizeof(*cfg));
    strcpy(cfg->rootfs, rootfs);
    strcpy(cfg->hostname, name);
    strcpy(cfg->init, "/bin/sh");
    strcpy(cfg->args[0], "-c");
    strcpy(cfg->args[1], "while :; do sleep 1; done");
    cfg->caps = spec_default_caps();
    cfg->uid_base = uid_base;
    cfg->uid_count = uid_base ? 65536 : 0;
    int r = spawner_start(spawner, cfg, res);
    if (r < 0)
        fail_msg("spawner_start: %s (%s)", strerror(-r), res->error);
    for (size_t i = 0; i < ARRAY_SIZE(live); i++)
        if (!live[i]) {
            live[i] = res->pid;
            break;
        }
}

static void
stop(struct spawn_result *res)
{
    kill(res->pid, SIGKILL);
    assert_int_equal(waitpid(res->pid, NULL, 0), res->pid);
    close(res->pidfd);
    for (size_t i = 0; i < ARRAY_SIZE(live); i++)
        if (live[i] == res->pid)
            live[i] = 0;
}

/* The guest's table from the host's side: /proc/<init>/mountinfo. */
static unsigned
guest_lines(pid_t pid, bool *mentions)
{
    char file[64];
    snprintf(file, sizeof(file), "/proc/%d/mountinfo", (int)pid);
    return mount_lines(file, mentions);
}

static void
test_guest_sees_only_its_mounts(void **state)
{
    char ref[160], root[64];
    struct spawn_config cfg;
    struct spawn_result a, b;
    bool mentions;

    for (int userns = 0; userns < 2; userns++) {
        uint32_t uid_base = userns ? 0xF3000000u : 0;
        start(&cfg, &a, "vf-seed-a", uid_base);
        unsigned n_a = guest_lines(a.pid, &mentions);
        assert_false(mentions);
        add_extra(100);

        /* A mount made just before the start: every mount made after it
         * has a larger unique id, the guest's root among them. */
        snprintf(ref, sizeof(ref), "%s/extra/m%u", base, n_extra - 1);
        uint64_t before = unique_mount_id(ref);
        start(&cfg, &b, "vf-seed-b", uid_base);
        snprintf(root, sizeof(root), "/proc/%d/root", (int)b.pid);
        uint64_t after = unique_mount_id(root);
        assert_int_equal(guest_lines(b.pid, &mentions), n_a);
        assert_false(mentions);
        if (before && after) {
            /* A copy of our table would have made one mount per line. */
            fprintf(stderr, "note: userns=%d: %llu mounts made for a start, table of %u\n", userns,
                    (unsigned long long)(after - before), n_extra);
            assert_true(after > before);
            assert_true(after - before < EXTRA / 3);
        } else {
            fprintf(stderr, "note: no unique mount ids (Linux < 6.8), mounts per start not "
                            "counted\n");
        }
        stop(&a);
        stop(&b);
    }
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_seed_is_small_and_constant),
        cmocka_unit_test(test_guest_sees_only_its_mounts),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
