/* Tests for node/store: durable guest records under a state directory. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>
#include <cmocka.h>

#include "common/mem.h"
#include "node/store.h"

#define ID1 "11111111-1111-4111-8111-111111111111"
#define ID2 "22222222-2222-4222-8222-222222222222"
#define ID3 "33333333-3333-4333-8333-333333333333"

/* Crash points. This file defines the calls a put or a delete makes between
 * its steps (pwrite, fdatasync, renameat, renameat2, fsync); the program's
 * own definitions take the place of libc's for store.c too. Each does the
 * call with syscall(2), and a process with crash_at set dies (_exit) at the
 * crash_at-th point: before a call, after it, or halfway through a pwrite. */
static int crash_at = -1; /* the point to die at, -1: none */
static int crash_n;       /* points passed since crash_at was set */

static void
crash_point(void)
{
    if (crash_at >= 0 && crash_n++ == crash_at)
        _exit(0);
}

ssize_t
pwrite(int fd, const void *buf, size_t n, off_t off)
{
    crash_point();
    if (crash_at >= 0 && crash_n++ == crash_at) {
        (void)syscall(SYS_pwrite64, fd, buf, n / 2, off);
        _exit(0);
    }
    ssize_t r = syscall(SYS_pwrite64, fd, buf, n, off);
    crash_point();
    return r;
}

int
fdatasync(int fd)
{
    crash_point();
    int r = (int)syscall(SYS_fdatasync, fd);
    crash_point();
    return r;
}

int
fsync(int fd)
{
    crash_point();
    int r = (int)syscall(SYS_fsync, fd);
    crash_point();
    return r;
}

int
renameat2(int ofd, const char *old, int nfd, const char *new, unsigned flags)
{
    crash_point();
    int r = (int)syscall(SYS_renameat2, ofd, old, nfd, new, flags);
    crash_point();
    return r;
}

int
renameat(int ofd, const char *old, int nfd, const char *new)
{
    return renameat2(ofd, old, nfd, new, 0);
}

/* Per-test state: a fresh directory named after the pid, removed in teardown. */
struct fixture {
    char dir[128];    /* the state dir (does not exist until store_open) */
    char guests[160]; /* its guests/ subdirectory */
};

static int
rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    return remove(path);
}

static int
setup(void **state)
{
    static unsigned n;
    struct fixture *f = xcalloc(1, sizeof(*f));

    snprintf(f->dir, sizeof(f->dir), "/tmp/vfleet-store-test-%d-%u/state", (int)getpid(), n++);
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

/* store_ids_match on the record of id (one lookup: the pointer lasts until the next call). */
static bool
ids_match(store_t *s, const char *id, const struct guest_spec *spec)
{
    const struct store_record *r = store_get(s, id);
    return store_ids_match(&r->ids, r->legacy_ids, spec);
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

static void
write_file(const char *dir, const char *name, const char *text)
{
    char path[256];
    FILE *fp;

    snprintf(path, sizeof(path), "%s/%s", dir, name);
    fp = fopen(path, "we");
    assert_non_null(fp);
    fputs(text, fp);
    assert_int_equal(fclose(fp), 0);
}

static bool
file_exists(const char *dir, const char *name)
{
    char path[256];
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    return access(path, F_OK) == 0;
}

/* The name of the one entry in dir starting with prefix, or "" (caller frees). */
static char *
find_entry(const char *dir, const char *prefix)
{
    DIR *d = opendir(dir);
    struct dirent *de;
    char *found = xstrdup("");

    assert_non_null(d);
    while ((de = readdir(d)))
        if (strncmp(de->d_name, prefix, strlen(prefix)) == 0) {
            free(found);
            found = xstrdup(de->d_name);
        }
    closedir(d);
    return found;
}

static void
test_put_get_reload(void **state)
{
    struct fixture *f = *state;
    _cleanup_free_ struct store_record *a = xmalloc(sizeof(*a));
    _cleanup_free_ struct store_record *b = xmalloc(sizeof(*b));
    _cleanup_(store_close) store_t *s = NULL;
    struct stat st;

    assert_int_equal(store_open(f->dir, &s), 0);
    assert_int_equal(stat(f->guests, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0700);
    assert_int_equal(store_count(s), 0);
    record(a, ID2, "web2", 5);
    record(b, ID1, "web1", 3);
    b->desired = STORE_DESIRED_STOPPED;
    memset(&b->rt, 0, sizeof(b->rt));
    assert_int_equal(store_put(s, a), 0);
    assert_int_equal(store_put(s, b), 0);
    assert_int_equal(store_count(s), 2);
    assert_memory_equal(store_get(s, ID2), a, sizeof(*a));
    assert_memory_equal(store_find_by_name(s, "web1"), b, sizeof(*b));
    assert_null(store_get(s, ID3));
    assert_null(store_find_by_name(s, "web3"));
    /* Iteration is in id order, whatever the order of puts. */
    assert_string_equal(store_at(s, 0)->spec.id, ID1);
    assert_string_equal(store_at(s, 1)->spec.id, ID2);
    assert_null(store_at(s, 2));

    /* One store per directory, even within a process. */
    {
        store_t *other = NULL;
        assert_int_equal(store_open(f->dir, &other), -EBUSY);
        assert_null(other);
    }

    /* A fresh store reads back exactly what was put. */
    store_close(&s);
    assert_null(s);
    assert_int_equal(store_open(f->dir, &s), 0);
    assert_int_equal(store_count(s), 2);
    assert_memory_equal(store_get(s, ID2), a, sizeof(*a));
    assert_memory_equal(store_get(s, ID1), b, sizeof(*b));
}

static void
test_put_invalid(void **state)
{
    struct fixture *f = *state;
    _cleanup_free_ struct store_record *a = xmalloc(sizeof(*a));
    _cleanup_(store_close) store_t *s = NULL;

    assert_int_equal(store_open(f->dir, &s), 0);
    record(a, ID1, "web1", 1);
    strcpy(a->spec.id, "../../etc/passwd");
    assert_int_equal(store_put(s, a), -EINVAL);
    record(a, ID1, "web1", 1);
    a->desired = 7;
    assert_int_equal(store_put(s, a), -EINVAL);
    assert_int_equal(store_count(s), 0);
    assert_false(file_exists(f->guests, ID1 ".json"));
}

/* Replacing a record leaves no temp file, and a temp file a crash left behind
 * (for an existing record or a new one) is ignored and removed on open. */
static void
test_atomic_replace(void **state)
{
    struct fixture *f = *state;
    _cleanup_free_ struct store_record *a = xmalloc(sizeof(*a));
    _cleanup_(store_close) store_t *s = NULL;
    _cleanup_free_ char *tmp = NULL;

    assert_int_equal(store_open(f->dir, &s), 0);
    record(a, ID1, "web1", 1);
    assert_int_equal(store_put(s, a), 0);
    record(a, ID1, "web1", 2);
    assert_int_equal(store_put(s, a), 0);
    assert_true(store_get(s, ID1)->spec.generation == 2);
    assert_int_equal(store_count(s), 1);
    tmp = find_entry(f->guests, "." ID1);
    assert_string_equal(tmp, "");
    store_close(&s);

    /* A crash mid-write: half a record in the temp files, the old record intact. */
    write_file(f->guests, "." ID1 ".json.tmp", "{\"version\":1,\"spec\":{\"id\":");
    write_file(f->guests, "." ID2 ".json.tmp", "{");
    assert_int_equal(store_open(f->dir, &s), 0);
    assert_int_equal(store_count(s), 1);
    assert_true(store_get(s, ID1)->spec.generation == 2);
    assert_null(store_get(s, ID2));
    assert_false(file_exists(f->guests, "." ID1 ".json.tmp"));
    assert_false(file_exists(f->guests, "." ID2 ".json.tmp"));

    /* A stray temp file does not block the next write either. */
    write_file(f->guests, "." ID1 ".json.tmp", "junk");
    record(a, ID1, "web1", 3);
    assert_int_equal(store_put(s, a), 0);
    store_close(&s);
    assert_int_equal(store_open(f->dir, &s), 0);
    assert_true(store_get(s, ID1)->spec.generation == 3);
}

/* store_set_aside finds a guest's records set aside as unreadable, by this
 * open or an earlier one (the newest when there are several), and nothing
 * for a guest with a readable record or none. */
static void
test_set_aside(void **state)
{
    struct fixture *f = *state;
    _cleanup_free_ struct store_record *a = xmalloc(sizeof(*a));
    _cleanup_(store_close) store_t *s = NULL;
    char name[128] = "";

    assert_int_equal(store_open(f->dir, &s), 0);
    record(a, ID1, "web1", 1);
    assert_int_equal(store_put(s, a), 0);
    store_close(&s);
    write_file(f->guests, ID2 ".json.corrupt-1700000000000", "{");
    write_file(f->guests, ID2 ".json", "{\"version\":1,");
    assert_int_equal(store_open(f->dir, &s), 1);
    assert_int_equal(store_set_aside(s, ID2, name, sizeof(name)), 1);
    assert_true(strncmp(name, ID2 ".json.corrupt-", strlen(ID2) + 14) == 0);
    assert_true(strcmp(name, ID2 ".json.corrupt-1700000000000") > 0);
    assert_int_equal(store_set_aside(s, ID2, NULL, 0), 1);
    assert_int_equal(store_set_aside(s, ID1, name, sizeof(name)), 0);
    assert_int_equal(store_set_aside(s, ID3, name, sizeof(name)), 0);
    store_close(&s);
    assert_int_equal(store_open_memory(&s), 0);
    assert_int_equal(store_set_aside(s, ID2, name, sizeof(name)), 0);
}

/* A record that cannot be read is set aside under a new name, not deleted,
 * and the rest of the store loads. */
static void
test_corrupt_quarantined(void **state)
{
    struct fixture *f = *state;
    _cleanup_free_ struct store_record *a = xmalloc(sizeof(*a));
    _cleanup_(store_close) store_t *s = NULL;
    _cleanup_free_ char *q2 = NULL, *q3 = NULL;
    const struct store_problem *p;
    char path[256], buf[64] = "";
    FILE *fp;

    assert_int_equal(store_open(f->dir, &s), 0);
    record(a, ID1, "web1", 1);
    assert_int_equal(store_put(s, a), 0);
    store_close(&s);
    write_file(f->guests, ID2 ".json", "{\"version\":1,\"spec\":{\"id\":");
    /* Well-formed JSON with a typo in the spec is corrupt too: strict all the way. */
    write_file(f->guests, ID3 ".json",
               "{\"version\":1,\"spec\":{\"id\":\"" ID3 "\",\"nmae\":\"x\"},"
               "\"applied_generation\":0,\"desired\":\"stopped\","
               "\"runtime\":{\"pid\":0,\"start_time\":0}}");

    assert_int_equal(store_open(f->dir, &s), 2);
    assert_int_equal(store_count(s), 1);
    assert_non_null(store_get(s, ID1));
    assert_int_equal(store_problem_count(s), 2);
    for (size_t i = 0; i < 2; i++) {
        p = store_problem_at(s, i);
        if (strcmp(p->file, ID2 ".json") == 0) {
            assert_int_equal(p->error, -EBADMSG);
        } else {
            assert_string_equal(p->file, ID3 ".json");
            assert_int_equal(p->error, -EINVAL);
            assert_string_equal(p->detail, "spec.nmae");
        }
        assert_non_null(strstr(p->quarantined, ".json.corrupt-"));
        assert_true(file_exists(f->guests, p->quarantined));
    }
    assert_null(store_problem_at(s, 2));
    assert_false(file_exists(f->guests, ID2 ".json"));
    assert_false(file_exists(f->guests, ID3 ".json"));
    /* The bytes are kept as they were. */
    q2 = find_entry(f->guests, ID2 ".json.corrupt-");
    snprintf(path, sizeof(path), "%s/%s", f->guests, q2);
    fp = fopen(path, "re");
    assert_non_null(fp);
    assert_non_null(fgets(buf, sizeof(buf), fp));
    fclose(fp);
    assert_string_equal(buf, "{\"version\":1,\"spec\":{\"id\":");

    /* Quarantined files are not records: the next open is clean. */
    store_close(&s);
    assert_int_equal(store_open(f->dir, &s), 0);
    assert_int_equal(store_count(s), 1);
    q3 = find_entry(f->guests, ID3 ".json.corrupt-");
    assert_string_not_equal(q3, "");
}

/* A record whose file name does not match its id is not trusted. */
static void
test_misnamed_record(void **state)
{
    struct fixture *f = *state;
    _cleanup_free_ struct store_record *a = xmalloc(sizeof(*a));
    _cleanup_(store_close) store_t *s = NULL;
    char from[256], to[256];

    assert_int_equal(store_open(f->dir, &s), 0);
    record(a, ID1, "web1", 1);
    assert_int_equal(store_put(s, a), 0);
    store_close(&s);
    snprintf(from, sizeof(from), "%s/%s.json", f->guests, ID1);
    snprintf(to, sizeof(to), "%s/%s.json", f->guests, ID2);
    assert_int_equal(rename(from, to), 0);
    assert_int_equal(store_open(f->dir, &s), 1);
    assert_int_equal(store_count(s), 0);
    assert_string_equal(store_problem_at(s, 0)->detail, "spec.id does not match the file name");
}

static void
test_delete_durable(void **state)
{
    struct fixture *f = *state;
    _cleanup_free_ struct store_record *a = xmalloc(sizeof(*a));
    _cleanup_(store_close) store_t *s = NULL;

    assert_int_equal(store_open(f->dir, &s), 0);
    record(a, ID1, "web1", 1);
    assert_int_equal(store_put(s, a), 0);
    record(a, ID2, "web2", 1);
    assert_int_equal(store_put(s, a), 0);
    assert_int_equal(store_delete(s, ID1), 0);
    assert_int_equal(store_delete(s, ID1), -ENOENT);
    assert_null(store_get(s, ID1));
    assert_int_equal(store_count(s), 1);
    assert_false(file_exists(f->guests, ID1 ".json"));
    store_close(&s);

    assert_int_equal(store_open(f->dir, &s), 0);
    assert_int_equal(store_count(s), 1);
    assert_null(store_get(s, ID1));
    assert_non_null(store_get(s, ID2));
}

/* The inode of dir/name, 0 when absent. */
static ino_t
ino_of(const char *dir, const char *name)
{
    char path[256];
    struct stat st;

    snprintf(path, sizeof(path), "%s/%s", dir, name);
    return lstat(path, &st) == 0 ? st.st_ino : 0;
}

/* Whether every entry of dir is one of the n inodes in held. */
static bool
all_held(const char *dir, const ino_t *held, size_t n)
{
    DIR *d = opendir(dir);
    struct dirent *de;
    bool ok = true;

    assert_non_null(d);
    while ((de = readdir(d))) {
        if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
            continue;
        ino_t ino = ino_of(dir, de->d_name);
        bool found = false;
        for (size_t i = 0; i < n; i++)
            found |= held[i] == ino;
        if (!found) {
            print_message("new inode: %s\n", de->d_name);
            ok = false;
        }
    }
    closedir(d);
    return ok;
}

/* A put makes no inode on the host's file system and frees none: after the
 * second put of a record, the record and its spare are the same two files
 * whatever the puts that follow (each held open here, so its number cannot
 * be reused by a new file); a deleted record's file is the next new
 * record's. (A temp file renamed over the record made a new one every time.) */
static void
test_put_reuses_inodes(void **state)
{
    struct fixture *f = *state;
    _cleanup_free_ struct store_record *a = xmalloc(sizeof(*a));
    _cleanup_(store_close) store_t *s = NULL;
    int held_fd[8];
    ino_t held[8];
    size_t n = 0;

    assert_int_equal(store_open(f->dir, &s), 0);
    record(a, ID1, "web1", 1);
    assert_int_equal(store_put(s, a), 0);
    record(a, ID1, "web1", 2);
    assert_int_equal(store_put(s, a), 0);
    DIR *d = opendir(f->guests);
    struct dirent *de;
    assert_non_null(d);
    while ((de = readdir(d)) && n < ARRAY_SIZE(held)) {
        char path[512];
        struct stat st;
        if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
            continue;
        snprintf(path, sizeof(path), "%s/%s", f->guests, de->d_name);
        held_fd[n] = open(path, O_PATH | O_CLOEXEC);
        assert_true(held_fd[n] >= 0);
        assert_int_equal(fstat(held_fd[n], &st), 0);
        held[n++] = st.st_ino;
    }
    closedir(d);
    for (uint64_t gen = 3; gen < 12; gen++) {
        record(a, ID1, "web1", gen);
        assert_int_equal(store_put(s, a), 0);
        assert_true(all_held(f->guests, held, n));
    }
    /* What was put is what a reload reads. */
    store_close(&s);
    assert_int_equal(store_open(f->dir, &s), 0);
    assert_true(store_get(s, ID1)->spec.generation == 11);

    /* Destroy one guest, create another: the files go round. */
    assert_int_equal(store_delete(s, ID1), 0);
    assert_true(all_held(f->guests, held, n));
    record(a, ID2, "web2", 1);
    assert_int_equal(store_put(s, a), 0);
    assert_true(ino_of(f->guests, ID2 ".json") != 0);
    assert_true(all_held(f->guests, held, n));
    store_close(&s);
    assert_int_equal(store_open(f->dir, &s), 0);
    assert_int_equal(store_count(s), 1);
    assert_non_null(store_get(s, ID2));
    for (size_t i = 0; i < n; i++)
        close(held_fd[i]);
}

/* A reader beside the agent (store_open_readonly) holds a shared lock on the
 * record it reads: the agent's puts never rewrite that file under it, and
 * the reader finds the newest record. */
static void
test_reader_lock(void **state)
{
    struct fixture *f = *state;
    _cleanup_free_ struct store_record *a = xmalloc(sizeof(*a));
    _cleanup_(store_close) store_t *s = NULL;
    _cleanup_(store_close) store_t *ro = NULL;
    char path[256], before[8192], after[8192];
    ssize_t len;

    assert_int_equal(store_open(f->dir, &s), 0);
    for (uint64_t gen = 1; gen <= 3; gen++) {
        record(a, ID1, "web1", gen);
        assert_int_equal(store_put(s, a), 0);
    }
    snprintf(path, sizeof(path), "%s/" ID1 ".json", f->guests);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    assert_true(fd >= 0);
    assert_int_equal(flock(fd, LOCK_SH), 0);
    len = pread(fd, before, sizeof(before), 0);
    assert_true(len > 0);
    for (uint64_t gen = 4; gen <= 7; gen++) {
        record(a, ID1, "web1", gen);
        a->spec.limits.memory = gen << 30; /* a record of another length too */
        assert_int_equal(store_put(s, a), 0);
    }
    assert_int_equal(pread(fd, after, sizeof(after), 0), len);
    assert_memory_equal(before, after, (size_t)len);
    assert_int_equal(store_open_readonly(f->dir, &ro), 0);
    assert_true(store_get(ro, ID1)->spec.generation == 7);
    close(fd);
    record(a, ID1, "web1", 8);
    assert_int_equal(store_put(s, a), 0);
    store_close(&ro);
    assert_int_equal(store_open_readonly(f->dir, &ro), 0);
    assert_true(store_get(ro, ID1)->spec.generation == 8);
}

/* Runs op on the store in a child that dies at crash point k; returns
 * whether it died there (false: op finished first). */
static bool
crash_child(const char *dir, int k, int (*op)(store_t *, uint64_t), uint64_t gen)
{
    pid_t pid = fork();
    int status;

    assert_true(pid >= 0);
    if (pid == 0) {
        store_t *s = NULL;
        if (store_open(dir, &s) < 0)
            _exit(2);
        crash_at = k;
        crash_n = 0;
        int r = op(s, gen);
        crash_at = -1;
        _exit(r < 0 ? 3 : 1);
    }
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status));
    assert_true(WEXITSTATUS(status) <= 1);
    return WEXITSTATUS(status) == 0;
}

/* The record of ID1 at generation gen: each differs from the next near the
 * start of the text, near its end and in length. */
static void
crash_record(struct store_record *a, uint64_t gen)
{
    record(a, ID1, "web1", gen);
    a->spec.limits.memory = gen << 30;
    a->baseline.cpu_ns = gen;
    a->rt.pid = (pid_t)gen;
    memset(a->spec.labels[0].value, 'v', gen % 2 ? 40 : 3);
}

static int
crash_put(store_t *s, uint64_t gen)
{
    _cleanup_free_ struct store_record *a = xmalloc(sizeof(*a));

    crash_record(a, gen);
    return store_put(s, a);
}

static int
crash_put_new(store_t *s, uint64_t gen)
{
    _cleanup_free_ struct store_record *a = xmalloc(sizeof(*a));

    record(a, ID2, "web2", gen);
    return store_put(s, a);
}

static int
crash_delete(store_t *s, uint64_t gen)
{
    (void)gen;
    return store_delete(s, ID2);
}

/* A put, a new record's put and a delete that die at every point between
 * their steps (and halfway through the write) leave the record old or new,
 * whole, never unreadable, and the store goes on: the next put and a reload
 * agree. */
static void
test_crash_points(void **state)
{
    struct fixture *f = *state;
    _cleanup_free_ struct store_record *a = xmalloc(sizeof(*a));
    store_t *s = NULL;
    uint64_t gen = 1;
    int points = 0;

    assert_int_equal(store_open(f->dir, &s), 0);
    assert_int_equal(crash_put(s, gen), 0);
    store_close(&s);
    for (int k = 0;; k++) {
        bool died = crash_child(f->dir, k, crash_put, gen + 1);
        assert_true(store_open(f->dir, &s) == 0); /* no record set aside */
        const struct store_record *r = store_get(s, ID1);
        assert_non_null(r);
        assert_true(r->spec.generation == gen || r->spec.generation == gen + 1);
        if (!died)
            assert_true(r->spec.generation == gen + 1);
        gen = r->spec.generation;
        /* Whole: exactly the record put at that generation. */
        crash_record(a, gen);
        assert_memory_equal(r, a, sizeof(*a));
        /* And a put after it works. */
        assert_int_equal(crash_put(s, gen + 1), 0);
        gen++;
        store_close(&s);
        if (!died)
            break;
        points++;
    }
    assert_true(points >= 6);

    for (int k = 0;; k++) {
        bool died = crash_child(f->dir, k, crash_put_new, 1);
        assert_true(store_open(f->dir, &s) == 0);
        const struct store_record *r = store_get(s, ID2);
        if (!died)
            assert_non_null(r);
        if (r)
            assert_true(r->spec.generation == 1);
        assert_true(store_get(s, ID1)->spec.generation == gen);
        if (r)
            assert_int_equal(store_delete(s, ID2), 0);
        store_close(&s);
        if (!died)
            break;
    }
    for (int k = 0;; k++) {
        assert_int_equal(store_open(f->dir, &s), 0);
        assert_int_equal(crash_put_new(s, 1), 0);
        store_close(&s);
        bool died = crash_child(f->dir, k, crash_delete, 0);
        assert_true(store_open(f->dir, &s) == 0);
        const struct store_record *r = store_get(s, ID2);
        if (!died)
            assert_null(r);
        if (r) {
            assert_true(r->spec.generation == 1);
            assert_int_equal(store_delete(s, ID2), 0);
        }
        assert_int_equal(store_count(s), 1);
        store_close(&s);
        if (!died)
            break;
    }
}

/* Counts the open file descriptors of this process. */
static int
count_fds(void)
{
    DIR *d = opendir("/proc/self/fd");
    int n = 0;

    assert_non_null(d);
    while (readdir(d))
        n++;
    closedir(d);
    return n;
}

/* The memory store keeps the API's semantics (validation, id order,
 * replacement, delete) without touching the disk: no directory appears, no
 * descriptor stays open, and two of them coexist in one process (no lock). */
static void
test_memory_store(void **state)
{
    struct fixture *f = *state;
    _cleanup_free_ struct store_record *a = xmalloc(sizeof(*a));
    _cleanup_(store_close) store_t *s = NULL;
    _cleanup_(store_close) store_t *t = NULL;
    int fds = count_fds();

    assert_int_equal(store_open_memory(&s), 0);
    assert_int_equal(store_open_memory(&t), 0);
    assert_int_equal(count_fds(), fds);
    assert_int_equal(store_count(s), 0);
    assert_int_equal(store_problem_count(s), 0);

    record(a, ID3, "web3", 1);
    assert_int_equal(store_put(s, a), 0);
    record(a, ID1, "web1", 2);
    assert_int_equal(store_put(s, a), 0);
    record(a, ID2, "web2", 1);
    assert_int_equal(store_put(t, a), 0);
    assert_int_equal(store_count(s), 2);
    assert_int_equal(store_count(t), 1);
    assert_string_equal(store_at(s, 0)->spec.id, ID1);
    assert_string_equal(store_at(s, 1)->spec.id, ID3);
    assert_null(store_get(s, ID2));
    assert_string_equal(store_find_by_name(s, "web3")->spec.id, ID3);
    assert_int_equal(store_get(s, ID1)->rt.pid, 4242);
    assert_int_equal(store_get(s, ID1)->baseline.net_rx_bytes, 77);

    /* Replacing keeps one record per id. */
    record(a, ID1, "web1", 5);
    a->desired = STORE_DESIRED_STOPPED;
    assert_int_equal(store_put(s, a), 0);
    assert_int_equal(store_count(s), 2);
    assert_int_equal(store_get(s, ID1)->applied_generation, 4);
    assert_int_equal(store_get(s, ID1)->desired, STORE_DESIRED_STOPPED);

    /* The same validation as on disk, with memory unchanged on refusal. */
    record(a, ID2, "Not A Name", 1);
    assert_int_equal(store_put(s, a), -EINVAL);
    record(a, ID2, "web2", 1);
    a->desired = 7;
    assert_int_equal(store_put(s, a), -EINVAL);
    assert_int_equal(store_count(s), 2);

    assert_int_equal(store_delete(s, ID3), 0);
    assert_int_equal(store_delete(s, ID3), -ENOENT);
    assert_null(store_get(s, ID3));
    assert_int_equal(store_count(s), 1);
    assert_int_equal(store_count(t), 1);

    /* Nothing was written anywhere: not in the fixture's dir, not in the default one's place. */
    assert_int_equal(access(f->dir, F_OK), -1);
    assert_int_equal(count_fds(), fds);
}

/* Uid blocks: kept across reload, never shared, legacy records stay legacy. */
static void
test_uid_blocks(void **state)
{
    struct fixture *f = *state;
    _cleanup_free_ struct store_record *a = xmalloc(sizeof(*a));
    _cleanup_free_ struct store_record *b = xmalloc(sizeof(*b));
    _cleanup_(store_close) store_t *s = NULL;
    char path[256];

    assert_int_equal(store_open(f->dir, &s), 0);
    record(a, ID1, "web1", 2);
    a->ids = (struct guest_ids){STORE_UID_FIRST, BACKEND_UID_BLOCK};
    assert_int_equal(store_put(s, a), 0);
    /* Another guest on an overlapping block is refused; on the next one it is fine. */
    record(b, ID2, "web2", 2);
    b->ids = (struct guest_ids){STORE_UID_FIRST + 4096, BACKEND_UID_BLOCK};
    assert_int_equal(store_put(s, b), -EEXIST);
    b->ids.uid_base = STORE_UID_FIRST + BACKEND_UID_BLOCK;
    assert_int_equal(store_put(s, b), 0);
    /* Replacing a record keeps its own block. */
    a->applied_generation = 2;
    assert_int_equal(store_put(s, a), 0);
    /* Not a whole block, a block at the host's own ids, a legacy record with a block. */
    b->ids.uid_count = 1000;
    assert_int_equal(store_put(s, b), -EINVAL);
    b->ids = (struct guest_ids){1000, BACKEND_UID_BLOCK};
    assert_int_equal(store_put(s, b), -EINVAL);
    b->ids = (struct guest_ids){UINT32_MAX - 1000, BACKEND_UID_BLOCK};
    assert_int_equal(store_put(s, b), -EINVAL);
    b->ids = (struct guest_ids){STORE_UID_FIRST + 5 * BACKEND_UID_BLOCK, BACKEND_UID_BLOCK};
    b->legacy_ids = true;
    assert_int_equal(store_put(s, b), -EINVAL);
    /* A legacy record (no block) is written without "ids" and reads back legacy. */
    b->ids = (struct guest_ids){0};
    assert_int_equal(store_put(s, b), 0);
    store_close(&s);
    snprintf(path, sizeof(path), "%s/%s.json", f->guests, ID2);
    _cleanup_free_ char *text = xmalloc(65536);
    FILE *fp = fopen(path, "re");
    assert_non_null(fp);
    size_t len = fread(text, 1, 65535, fp);
    fclose(fp);
    text[len] = '\0';
    assert_null(strstr(text, "\"ids\""));

    assert_int_equal(store_open(f->dir, &s), 0);
    assert_true(store_get(s, ID2)->legacy_ids);
    assert_false(store_get(s, ID1)->legacy_ids);
    assert_int_equal(store_get(s, ID1)->ids.uid_base, STORE_UID_FIRST);
    assert_int_equal(store_get(s, ID1)->ids.uid_count, BACKEND_UID_BLOCK);

    /* The privileged flag must agree with the block; a legacy guest takes any spec. */
    struct guest_spec spec = a->spec;
    assert_true(ids_match(s, ID1, &spec));
    spec.flags |= SPEC_FLAG_PRIVILEGED;
    assert_false(ids_match(s, ID1, &spec));
    assert_true(ids_match(s, ID2, &spec));
    a->ids = (struct guest_ids){0};
    assert_true(store_ids_match(&a->ids, a->legacy_ids, &spec));
    spec.flags = 0;
    assert_false(store_ids_match(&a->ids, a->legacy_ids, &spec));
}

/* The allocator: 1000 guests get 1000 disjoint blocks above STORE_UID_FIRST,
 * a freed block is reused, and a full range is -ENOSPC. */
static void
test_uid_block_pick(void **state)
{
    enum { N = 1000 };
    _cleanup_free_ uint32_t *used = xcalloc(STORE_UID_BLOCKS + 1, sizeof(*used));
    struct guest_ids ids;

    for (size_t i = 0; i < N; i++) {
        assert_int_equal(store_uid_block_pick(used, i, &ids), 0);
        assert_int_equal(ids.uid_count, BACKEND_UID_BLOCK);
        assert_true(ids.uid_base >= STORE_UID_FIRST);
        assert_true((uint64_t)ids.uid_base + ids.uid_count <= UINT32_MAX);
        used[i] = ids.uid_base;
    }
    /* Pairwise disjoint: sorted bases at least one block apart. */
    for (size_t i = 0; i < N; i++)
        for (size_t j = i + 1; j < N; j++) {
            uint32_t lo = used[i] < used[j] ? used[i] : used[j];
            uint32_t hi = used[i] < used[j] ? used[j] : used[i];
            assert_true(hi - lo >= BACKEND_UID_BLOCK);
        }
    /* Guest 500 is destroyed: the next guest gets its block. */
    uint32_t freed = used[500];
    used[500] = 0;
    assert_int_equal(store_uid_block_pick(used, N, &ids), 0);
    assert_int_equal(ids.uid_base, freed);
    /* A base off the block grid blocks both blocks it touches. */
    uint32_t odd[1] = {STORE_UID_FIRST + 10};
    assert_int_equal(store_uid_block_pick(odd, 1, &ids), 0);
    assert_int_equal(ids.uid_base, STORE_UID_FIRST + 2 * BACKEND_UID_BLOCK);
    /* Every block taken. */
    for (uint32_t i = 0; i < STORE_UID_BLOCKS; i++)
        used[i] = STORE_UID_FIRST + i * BACKEND_UID_BLOCK;
    assert_int_equal(store_uid_block_pick(used, STORE_UID_BLOCKS, &ids), -ENOSPC);
    used[STORE_UID_BLOCKS - 1] = 0;
    assert_int_equal(store_uid_block_pick(used, STORE_UID_BLOCKS, &ids), 0);
    assert_int_equal(ids.uid_base, STORE_UID_FIRST + (STORE_UID_BLOCKS - 1) * BACKEND_UID_BLOCK);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_put_get_reload, setup, teardown),
        cmocka_unit_test_setup_teardown(test_put_invalid, setup, teardown),
        cmocka_unit_test_setup_teardown(test_atomic_replace, setup, teardown),
        cmocka_unit_test_setup_teardown(test_corrupt_quarantined, setup, teardown),
        cmocka_unit_test_setup_teardown(test_set_aside, setup, teardown),
        cmocka_unit_test_setup_teardown(test_misnamed_record, setup, teardown),
        cmocka_unit_test_setup_teardown(test_delete_durable, setup, teardown),
        cmocka_unit_test_setup_teardown(test_put_reuses_inodes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_reader_lock, setup, teardown),
        cmocka_unit_test_setup_teardown(test_crash_points, setup, teardown),
        cmocka_unit_test_setup_teardown(test_memory_store, setup, teardown),
        cmocka_unit_test_setup_teardown(test_uid_blocks, setup, teardown),
        cmocka_unit_test(test_uid_block_pick),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
