/* Tests for node/linux/tmpl_tree: creates on several threads take clones of
 * a template while it is replaced by a rename (a rebuild), and each gets a
 * descriptor of its own that stays a clone it can clone again, whatever the
 * others do; a replaced template gets a new clone. Needs root and a kernel
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

static void *
taker(void *arg)
{
    (void)arg;
    for (int i = 0; i < ROUNDS; i++) {
        int fd = tmpl_trees_get(trees, tmpl);
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

static void
test_threads_and_rebuilds(void **state)
{
    (void)state;
    pthread_t t[THREADS];
    for (int i = 0; i < THREADS; i++)
        assert_int_equal(pthread_create(&t[i], NULL, taker, NULL), 0);
    /* A rebuild: a new tree renamed over the old, again and again. */
    while (atomic_load(&done) < THREADS) {
        assert_int_equal(mkdir(next, 0755), 0);
        assert_int_equal(renameat2(AT_FDCWD, next, AT_FDCWD, tmpl, RENAME_EXCHANGE), 0);
        assert_int_equal(rmdir(next), 0);
    }
    for (int i = 0; i < THREADS; i++)
        pthread_join(t[i], NULL);
    assert_int_equal(atomic_load(&failures), 0);
}

static void
test_replaced_gets_new_clone(void **state)
{
    (void)state;
    struct stat a, b, now;
    int fd = tmpl_trees_get(trees, tmpl);
    assert_true(fd >= 0);
    assert_int_equal(fstat(fd, &a), 0);
    close(fd);
    assert_int_equal(mkdir(next, 0755), 0);
    assert_int_equal(renameat2(AT_FDCWD, next, AT_FDCWD, tmpl, RENAME_EXCHANGE), 0);
    assert_int_equal(rmdir(next), 0);
    fd = tmpl_trees_get(trees, tmpl);
    assert_true(fd >= 0);
    assert_int_equal(fstat(fd, &b), 0);
    close(fd);
    assert_int_equal(stat(tmpl, &now), 0);
    assert_true(a.st_ino != b.st_ino);
    assert_int_equal(b.st_ino, now.st_ino);
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
        cmocka_unit_test(test_threads_and_rebuilds),
        cmocka_unit_test(test_replaced_gets_new_clone),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
