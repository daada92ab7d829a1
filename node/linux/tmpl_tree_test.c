/* Tests for node/linux/tmpl_tree: creates on several threads take clones of
 * a template while it is replaced by a rename (a rebuild), and each gets a
 * descriptor of its own that stays a clone it can clone again, whatever the
 * others do; a replaced template gets a new clone; a clone is reused while
 * a guest uses it and closed with its last user. Needs root and a kernel
 * that clones detached trees (6.15+); skipped (77) otherwise. */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <dirent.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cmocka.h>

#include "node/linux/idmap.h"
#include "node/linux/tmpl_tree.h"

#define THREADS 8
#define ROUNDS  200

static char dir[64], tmpl[96], next[96];
static tmpl_trees_t *trees;
static atomic_int failures, done;

static const char *const users[THREADS] = {"g0", "g1", "g2", "g3", "g4", "g5", "g6", "g7"};

static void *
taker(void *arg)
{
    const char *user = arg;
    for (int i = 0; i < ROUNDS; i++) {
        int fd = tmpl_trees_get(trees, tmpl, user);
        if (fd < 0)
            continue; /* between the two renames: no template there */
        /* Its own descriptor: a clone of a clone, as a create makes. */
        int again = open_tree(fd, "", OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | AT_EMPTY_PATH);
        struct stat st;
        if (again < 0 || fstat(fd, &st) < 0 || !S_ISDIR(st.st_mode))
            atomic_fetch_add(&failures, 1);
        if (again >= 0)
            close(again);
        close(fd);
    }
    atomic_fetch_add(&done, 1);
    return NULL;
}

/* How many of this process's descriptors show the directory st is of. */
static int
fds_on(const struct stat *st)
{
    DIR *d = opendir("/proc/self/fd");
    assert_non_null(d);
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        struct stat fst;
        if (e->d_name[0] == '.' || atoi(e->d_name) == dirfd(d) || fstat(atoi(e->d_name), &fst) < 0)
            continue;
        n += fst.st_dev == st->st_dev && fst.st_ino == st->st_ino;
    }
    closedir(d);
    return n;
}

static void
test_threads_and_rebuilds(void **state)
{
    (void)state;
    pthread_t t[THREADS];
    for (int i = 0; i < THREADS; i++)
        assert_int_equal(pthread_create(&t[i], NULL, taker, (void *)users[i]), 0);
    /* A rebuild: a new tree renamed over the old, again and again. */
    while (atomic_load(&done) < THREADS) {
        assert_int_equal(mkdir(next, 0755), 0);
        assert_int_equal(renameat2(AT_FDCWD, next, AT_FDCWD, tmpl, RENAME_EXCHANGE), 0);
        assert_int_equal(rmdir(next), 0);
    }
    for (int i = 0; i < THREADS; i++)
        pthread_join(t[i], NULL);
    assert_int_equal(atomic_load(&failures), 0);
    for (int i = 0; i < THREADS; i++)
        tmpl_trees_put(trees, users[i]);
}

static void
test_replaced_gets_new_clone(void **state)
{
    (void)state;
    struct stat a, b, now;
    int fd = tmpl_trees_get(trees, tmpl, "g");
    assert_true(fd >= 0);
    assert_int_equal(fstat(fd, &a), 0);
    close(fd);
    assert_int_equal(mkdir(next, 0755), 0);
    assert_int_equal(renameat2(AT_FDCWD, next, AT_FDCWD, tmpl, RENAME_EXCHANGE), 0);
    assert_int_equal(rmdir(next), 0);
    fd = tmpl_trees_get(trees, tmpl, "g");
    assert_true(fd >= 0);
    assert_int_equal(fstat(fd, &b), 0);
    close(fd);
    assert_int_equal(stat(tmpl, &now), 0);
    assert_true(a.st_ino != b.st_ino);
    assert_int_equal(b.st_ino, now.st_ino);
    /* The old directory's clone was closed: nothing here holds it. */
    assert_int_equal(fds_on(&a), 0);
    tmpl_trees_put(trees, "g");
}

#ifndef STATX_MNT_ID_UNIQUE
#define STATX_MNT_ID_UNIQUE 0x4000U /* Linux 6.8; the short id is reused */
#endif

/* The mount id of the clone fd shows (a new clone is a new mount). */
static uint64_t
mnt_id(int fd)
{
    struct statx stx;
    assert_int_equal(statx(fd, "", AT_EMPTY_PATH, STATX_MNT_ID_UNIQUE, &stx), 0);
    assert_true(stx.stx_mask & STATX_MNT_ID_UNIQUE);
    return stx.stx_mnt_id;
}

/* A clone of the template made for one guest is the one the next guest
 * gets while the first still uses it, and while any guest does; with the
 * last one put, this process holds nothing of the template's directory
 * (which kept its file system alive), and the next guest gets a new clone. */
static void
test_held_while_used(void **state)
{
    (void)state;
    struct stat st;
    assert_int_equal(stat(tmpl, &st), 0);
    int a = tmpl_trees_get(trees, tmpl, "data/a/lower");
    int b = tmpl_trees_get(trees, tmpl, "data/b/lower");
    assert_true(a >= 0 && b >= 0);
    uint64_t held = mnt_id(a);
    assert_true(held == mnt_id(b));
    close(a);
    close(b);
    assert_int_equal(fds_on(&st), 1);

    tmpl_trees_put(trees, "data/a/lower");
    tmpl_trees_put(trees, "data/nobody/lower"); /* not a user: changes nothing */
    int c = tmpl_trees_get(trees, tmpl, "data/c/lower");
    assert_true(c >= 0);
    assert_true(mnt_id(c) == held);
    close(c);
    /* b again (a start after an agent restart) is still one user. */
    tmpl_trees_use(trees, tmpl, "data/b/lower");
    tmpl_trees_put(trees, "data/b/lower");
    assert_int_equal(fds_on(&st), 1);
    tmpl_trees_put(trees, "data/c/lower");
    assert_int_equal(fds_on(&st), 0);

    int d = tmpl_trees_get(trees, tmpl, "data/d/lower");
    assert_true(d >= 0);
    assert_true(mnt_id(d) != held);
    close(d);
    tmpl_trees_put(trees, "data/d/lower");
    assert_int_equal(fds_on(&st), 0);
}

/* A guest rebuilt over another template leaves its old one, whose clone
 * goes when that guest was its only user. */
static void
test_moved_to_other_template(void **state)
{
    (void)state;
    struct stat st;
    assert_int_equal(mkdir(next, 0755), 0);
    assert_int_equal(stat(tmpl, &st), 0);
    int fd = tmpl_trees_get(trees, tmpl, "data/a/lower");
    assert_true(fd >= 0);
    close(fd);
    assert_int_equal(fds_on(&st), 1);
    fd = tmpl_trees_get(trees, next, "data/a/lower");
    assert_true(fd >= 0);
    close(fd);
    assert_int_equal(fds_on(&st), 0);
    tmpl_trees_put(trees, "data/a/lower");
    assert_int_equal(rmdir(next), 0);
}

/* A template removed while a guest still uses it: the next get finds no
 * template (-1) and closes the clone of the removed directory. */
static void
test_removed_template(void **state)
{
    (void)state;
    struct stat st;
    assert_int_equal(mkdir(next, 0755), 0);
    assert_int_equal(stat(next, &st), 0);
    int fd = tmpl_trees_get(trees, next, "data/a/lower");
    assert_true(fd >= 0);
    close(fd);
    assert_int_equal(rmdir(next), 0);
    assert_int_equal(fds_on(&st), 1);
    assert_int_equal(tmpl_trees_get(trees, next, "data/b/lower"), -1);
    assert_int_equal(fds_on(&st), 0);
    tmpl_trees_put(trees, "data/a/lower");
    tmpl_trees_put(trees, "data/b/lower");
}

static int
setup(void **state)
{
    (void)state;
    if (geteuid() != 0)
        return -1;
    strcpy(dir, "/tmp/vf-tmpltree.XXXXXX");
    if (!mkdtemp(dir))
        return -1;
    snprintf(tmpl, sizeof(tmpl), "%s/busybox", dir);
    snprintf(next, sizeof(next), "%s/busybox.new", dir);
    if (mkdir(tmpl, 0755) < 0)
        return -1;
    trees = tmpl_trees_new();
    return 0;
}

static int
teardown(void **state)
{
    (void)state;
    tmpl_trees_free(&trees);
    rmdir(next);
    rmdir(tmpl);
    rmdir(dir);
    return 0;
}

int
main(void)
{
    if (geteuid() != 0) {
        fprintf(stderr, "tmpl_tree_test: needs root, skipped\n");
        return 77;
    }
    int probe = idmap_tree("/");
    if (probe < 0) {
        fprintf(stderr, "tmpl_tree_test: this kernel cannot clone a detached tree (%s), skipped\n",
                strerror(-probe));
        return 77;
    }
    close(probe);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_threads_and_rebuilds), cmocka_unit_test(test_replaced_gets_new_clone),
        cmocka_unit_test(test_held_while_used),      cmocka_unit_test(test_moved_to_other_template),
        cmocka_unit_test(test_removed_template),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
