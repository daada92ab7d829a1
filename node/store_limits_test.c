/* Tests for node/store at its limits (hostile review of db6060e, the spare
 * files): the host's disk full in the middle of a put, and more deleted
 * records than spare slots. store_test.c has the rest. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <sched.h>
#include <setjmp.h>
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
#include "node/store.h"

#define ID1 "11111111-1111-4111-8111-111111111111"
#define ID2 "22222222-2222-4222-8222-222222222222"
#define ID3 "33333333-3333-4333-8333-333333333333"

/* Per-test state: a fresh directory named after the pid, removed in teardown. */
struct fixture {
    char dir[128];    /* the state dir (does not exist until store_open) */
    char guests[160]; /* its guests/ subdirectory */
};

static int
rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(path);
}

static int
setup(void **state)
{
    static unsigned n;
    struct fixture *f = xcalloc(1, sizeof(*f));

    snprintf(f->dir, sizeof(f->dir), "/tmp/vfleet-store-limits-%d-%u/state", (int)getpid(), n++);
    snprintf(f->guests, sizeof(f->guests), "%s/guests", f->dir);
    *state = f;
    return 0;
}

static int
teardown(void **state)
{
    struct fixture *f = *state;
    char *slash = strrchr(f->dir, '/');

    *slash = '\0';
    nftw(f->dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
    free(f);
    return 0;
}

static void
record(struct store_record *r, const char *id, const char *name, uint64_t gen)
{
    memset(r, 0, sizeof(*r));
    strcpy(r->spec.id, id);
    strcpy(r->spec.name, name);
    r->spec.generation = gen;
    strcpy(r->spec.template_name, "busybox");
    r->spec.limits.memory = 256ULL << 20;
    r->spec.limits.cpu_max = 500;
    r->spec.n_labels = 1;
    strcpy(r->spec.labels[0].key, "tier");
    strcpy(r->spec.labels[0].value, "web");
    r->applied_generation = gen - 1;
    r->desired = STORE_DESIRED_RUNNING;
    r->rt.pid = 4242;
    r->rt.start_time = 987654321;
    strcpy(r->baseline.id, id);
    r->baseline.cpu_ns = 5000000000ULL;
    r->baseline.net_rx_bytes = 77;
}

/* Counts the entries of dir whose names start with prefix. */
static int
count_prefix(const char *dir, const char *prefix)
{
    DIR *d = opendir(dir);
    struct dirent *de;
    int n = 0;

    if (!d)
        return -1;
    while ((de = readdir(d)))
        n += strncmp(de->d_name, prefix, strlen(prefix)) == 0;
    closedir(d);
    return n;
}

/* A record of about 4 KiB more than record()'s: a put of it needs blocks
 * that no spare of a small record has. */
static void
big_record(struct store_record *r, const char *id, const char *name, uint64_t gen)
{
    record(r, id, name, gen);
    r->spec.n_labels = SPEC_MAX_LABELS;
    for (size_t i = 0; i < SPEC_MAX_LABELS; i++) {
        snprintf(r->spec.labels[i].key, sizeof(r->spec.labels[i].key), "key%zu", i);
        memset(r->spec.labels[i].value, 'x', 60);
    }
}

/* The disk-full child: every check is a plain condition (cmocka does not
 * reach into a forked child); the exit status says which failed. */
static int
disk_full_child(const char *dir)
{
    _cleanup_free_ struct store_record *a = xmalloc(sizeof(*a));
    store_t *s = NULL, *ro = NULL;
    char parent[128], filler[160], guests[160];

    snprintf(parent, sizeof(parent), "%s", dir);
    *strrchr(parent, '/') = '\0';
    snprintf(filler, sizeof(filler), "%s/filler", parent);
    snprintf(guests, sizeof(guests), "%s/guests", dir);
    /* A small file system of our own, in a mount namespace of our own: it
     * goes with this process. */
    if (unshare(CLONE_NEWNS) < 0 || mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0)
        return 10;
    if (mkdir(parent, 0700) < 0 || mount("vf-store-full", parent, "tmpfs", 0, "size=64k") < 0)
        return 11;
    if (store_open(dir, &s) < 0)
        return 12;
    record(a, ID2, "web2", 1);
    if (store_put(s, a) < 0)
        return 13;
    record(a, ID1, "web1", 1);
    if (store_put(s, a) < 0 || store_put(s, a) < 0) /* the second leaves a spare */
        return 14;
    int fd = open(filler, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
    char block[4096] = {0};
    while (fd >= 0 && write(fd, block, sizeof(block)) == (ssize_t)sizeof(block))
        ;
    if (fd < 0 || errno != ENOSPC)
        return 15;
    close(fd);
    /* A record no bigger than the spare is written into the spare's blocks:
     * the put needs no space. */
    record(a, ID2, "web2", 2);
    if (store_put(s, a) != 0)
        return 16;
    /* One that needs blocks fails and changes nothing, nor does a new one. */
    big_record(a, ID1, "web1", 2);
    if (store_put(s, a) != -ENOSPC)
        return 17;
    big_record(a, ID3, "web3", 1);
    if (store_put(s, a) != -ENOSPC)
        return 18;
    if (store_get(s, ID1)->spec.generation != 1 || store_get(s, ID3) || store_count(s) != 2)
        return 19;
    if (store_open_readonly(dir, &ro) != 0 || store_count(ro) != 2 ||
        store_get(ro, ID1)->spec.generation != 1 || store_get(ro, ID2)->spec.generation != 2)
        return 20;
    store_close(&ro);
    store_close(&s);
    if (store_open(dir, &s) != 0 || store_count(s) != 2 || store_get(s, ID1)->spec.generation != 1)
        return 21;
    /* Space again: the same puts go through, and a reload reads them. */
    if (unlink(filler) < 0)
        return 22;
    big_record(a, ID1, "web1", 2);
    if (store_put(s, a) != 0)
        return 23;
    big_record(a, ID3, "web3", 1);
    if (store_put(s, a) != 0)
        return 24;
    store_close(&s);
    if (store_open(dir, &s) != 0 || store_count(s) != 3 ||
        store_get(s, ID1)->spec.generation != 2 || store_get(s, ID3)->spec.generation != 1)
        return 25;
    store_close(&s);
    return 0;
}

/* The host's disk fills up under a put (hostile review of db6060e): a put
 * that needs blocks fails with -ENOSPC, the record stays the old one, whole,
 * in memory and on disk, a new record leaves no file behind, and once there
 * is space the same puts work. A put that fits its spare needs no space. */
static void
test_disk_full(void **state)
{
    struct fixture *f = *state;
    int status;

    if (geteuid() != 0) {
        skip();
        return;
    }
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0)
        _exit(disk_full_child(f->dir));
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
}

/* More deleted records than spare slots (STORE_SPARES): at most that many
 * spare files stay, the rest are removed; new records take the spares, and
 * a reload reads every record. */
static void
test_spare_limit(void **state)
{
    struct fixture *f = *state;
    _cleanup_free_ struct store_record *a = xmalloc(sizeof(*a));
    _cleanup_(store_close) store_t *s = NULL;
    const int n = STORE_SPARES + 10;
    char id[SPEC_ID_LEN + 1], name[32];

    assert_int_equal(store_open(f->dir, &s), 0);
    for (int i = 0; i < n; i++) {
        snprintf(id, sizeof(id), "%08x-1111-4111-8111-111111111111", i);
        snprintf(name, sizeof(name), "g%d", i);
        record(a, id, name, 1);
        assert_int_equal(store_put(s, a), 0);
    }
    for (int i = 0; i < n; i++) {
        snprintf(id, sizeof(id), "%08x-1111-4111-8111-111111111111", i);
        assert_int_equal(store_delete(s, id), 0);
    }
    assert_int_equal(store_count(s), 0);
    assert_int_equal(count_prefix(f->guests, ".spare-"), STORE_SPARES);
    assert_int_equal(count_prefix(f->guests, ""), STORE_SPARES + 2); /* . and .. */
    store_close(&s);
    assert_int_equal(store_open(f->dir, &s), 0);
    for (int i = 0; i < n; i++) {
        snprintf(id, sizeof(id), "%08x-2222-4222-8222-222222222222", i);
        snprintf(name, sizeof(name), "h%d", i);
        record(a, id, name, 2);
        assert_int_equal(store_put(s, a), 0);
    }
    assert_int_equal(count_prefix(f->guests, ".spare-"), 0);
    store_close(&s);
    assert_int_equal(store_open(f->dir, &s), 0);
    assert_int_equal(store_count(s), (size_t)n);
    for (int i = 0; i < n; i++) {
        snprintf(id, sizeof(id), "%08x-2222-4222-8222-222222222222", i);
        assert_true(store_get(s, id)->spec.generation == 2);
    }
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_disk_full, setup, teardown),
        cmocka_unit_test_setup_teardown(test_spare_limit, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
