/* Tests for node/leftovers: what `vfleet-node leftovers` lists and removes,
 * with the sim backend and a store on disk. Above all: a guest the store has
 * a record of is never removed, nor one whose record was set aside. */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cmocka.h>
#include <jansson.h>

#include "common/mem.h"
#include "node/leftovers.h"
#include "node/leftovers_cli.h"
#include "node/sim/sim.h"
#include "node/store.h"

#define ID1 "11111111-1111-4111-8111-111111111111" /* recorded */
#define ID2 "22222222-2222-4222-8222-222222222222" /* no record written */
#define ID3 "33333333-3333-4333-8333-333333333333" /* record set aside */
#define ID4 "44444444-4444-4444-8444-444444444444" /* nothing here */

struct fixture {
    char dir[64]; /* the state directory */
    backend_t *b; /* sim, holding ID1..ID3 */
};

static void
spec_of(struct guest_spec *s, const char *id)
{
    memset(s, 0, sizeof(*s));
    strcpy(s->id, id);
    strcpy(s->name, "g");
    s->generation = 1;
    strcpy(s->template_name, "busybox");
    s->limits.memory = 256ULL << 20;
    s->limits.cpu_max = 500;
    s->limits.disk = 1ULL << 30;
    s->limits.inodes = 100000;
    s->limits.procs = 64;
}

/* Makes dir/data/sub (sub "": dir/data). */
static void
mkdir_in(const char *dir, const char *sub)
{
    char path[256];
    snprintf(path, sizeof(path), "%s/data/%s", dir, sub);
    assert_int_equal(mkdir(path, 0700), 0);
}

static bool
exists(backend_t *b, const char *id)
{
    struct guest_spec s;
    enum guest_state st = GUEST_ABSENT;
    spec_of(&s, id);
    (void)b->ops->state(b, &s, &(struct guest_runtime){0}, &st);
    return st != GUEST_ABSENT;
}

static int
setup(void **state)
{
    struct fixture *f = xcalloc(1, sizeof(*f));
    struct sim_config sc = {
        .cpus = 8000, .memory = 16ULL << 30, .disk = 100ULL << 30, .max_guests = 8, .seed = 7};
    _cleanup_free_ struct store_record *rec = xcalloc(1, sizeof(*rec));
    store_t *s = NULL;
    struct guest_spec spec;
    struct guest_ids ids = {0};
    struct guest_runtime rt = {0};

    snprintf(f->dir, sizeof(f->dir), "/tmp/vf-leftovers-%d-XXXXXX", (int)getpid());
    assert_non_null(mkdtemp(f->dir));
    f->b = sim_backend_new(&sc);
    const char *all[] = {ID1, ID2, ID3};
    mkdir_in(f->dir, "");
    for (size_t i = 0; i < 3; i++) {
        spec_of(&spec, all[i]);
        assert_int_equal(f->b->ops->create(f->b, &spec, &ids), 0);
        assert_int_equal(f->b->ops->start(f->b, &spec, &ids, &rt), 0);
        mkdir_in(f->dir, all[i]);
    }
    /* Not a guest id: never a leftover. */
    mkdir_in(f->dir, "lost+found");
    assert_true(store_open(f->dir, &s) >= 0);
    spec_of(&rec->spec, ID1);
    assert_int_equal(store_put(s, rec), 0);
    store_close(&s);
    /* ID3's record is unreadable: the next open sets it aside. */
    char path[256];
    snprintf(path, sizeof(path), "%s/guests/%s.json", f->dir, ID3);
    FILE *fp = fopen(path, "we");
    assert_non_null(fp);
    fputs("{\"version\":1,", fp);
    fclose(fp);
    *state = f;
    return 0;
}

static int
rm_entry(const char *path, const struct stat *st, int type, struct FTW *ftw)
{
    (void)st;
    (void)type;
    (void)ftw;
    return remove(path);
}

static int
teardown(void **state)
{
    struct fixture *f = *state;
    f->b->ops->free(f->b);
    nftw(f->dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
    free(f);
    return 0;
}

static void
test_list(void **state)
{
    struct fixture *f = *state;
    _cleanup_(store_close) store_t *s = NULL;
    _cleanup_free_ struct leftover *v = NULL;
    size_t n = 99;

    assert_true(store_open_readonly(f->dir, &s) >= 0);
    assert_int_equal(leftovers_list(f->dir, s, &v, &n), 0);
    /* A reader does not set the unreadable record aside: the agent does.
     * It is listed as unreadable, not as never written. */
    assert_int_equal(n, 2);
    assert_string_equal(v[0].id, ID2);
    assert_string_equal(v[0].set_aside, "");
    assert_false(v[0].unreadable);
    assert_string_equal(v[1].id, ID3);
    assert_string_equal(v[1].set_aside, "");
    assert_true(v[1].unreadable);
    free(v);
    v = NULL;
    store_close(&s);

    assert_int_equal(store_open(f->dir, &s), 1); /* ID3's record set aside */
    assert_int_equal(leftovers_list(f->dir, s, &v, &n), 0);
    assert_int_equal(n, 2);
    assert_string_equal(v[0].id, ID2);
    assert_string_equal(v[0].set_aside, "");
    assert_string_equal(v[1].id, ID3);
    assert_true(strncmp(v[1].set_aside, ID3 ".json.corrupt-", strlen(ID3) + 14) == 0);
    assert_false(v[1].unreadable);
}

/* A guest the store has a record of is never removed, nor one whose record
 * was set aside as unreadable: both are refused and nothing of them changes.
 * A leftover with no record is killed and destroyed. */
static void
test_remove(void **state)
{
    struct fixture *f = *state;
    _cleanup_(store_close) store_t *s = NULL;
    char path[256];
    struct stat st;

    assert_int_equal(leftovers_claim(f->dir, ID1, &s), -EEXIST);
    assert_null(s);
    assert_int_equal(leftovers_claim(f->dir, ID3, &s), -EUCLEAN);
    assert_int_equal(leftovers_claim(f->dir, ID4, &s), -ENOENT);
    assert_int_equal(leftovers_claim(f->dir, "../data", &s), -EINVAL);
    assert_null(s);

    assert_int_equal(leftovers_claim(f->dir, ID2, &s), 0);
    assert_non_null(s);
    /* Even handed a recorded one, remove refuses it. */
    assert_int_equal(leftovers_remove(s, f->b, ID1), -EEXIST);
    assert_int_equal(leftovers_remove(s, f->b, ID3), -EEXIST);
    assert_true(exists(f->b, ID1));
    assert_true(exists(f->b, ID3));
    snprintf(path, sizeof(path), "%s/data/%s", f->dir, ID1);
    assert_int_equal(stat(path, &st), 0);

    assert_true(exists(f->b, ID2));
    assert_int_equal(leftovers_remove(s, f->b, ID2), 0);
    assert_false(exists(f->b, ID2));
    assert_true(exists(f->b, ID1));
    assert_true(exists(f->b, ID3));
}

/* While an agent has the store open, nothing is claimed; while a claim
 * holds it, no agent opens it. */
static void
test_claim_exclusive(void **state)
{
    struct fixture *f = *state;
    store_t *agent = NULL, *claim = NULL;

    assert_true(store_open(f->dir, &agent) >= 0);
    assert_int_equal(leftovers_claim(f->dir, ID2, &claim), -EALREADY);
    assert_null(claim);
    store_close(&agent);
    assert_int_equal(leftovers_claim(f->dir, ID2, &claim), 0);
    assert_int_equal(store_open(f->dir, &agent), -EBUSY);
    store_close(&claim);
}

/* The pid in dir's lock file. */
static int
lock_pid(const char *dir)
{
    char path[256], buf[32] = "";
    snprintf(path, sizeof(path), "%s/vfleet-node.pid", dir);
    FILE *fp = fopen(path, "re");
    assert_non_null(fp);
    assert_non_null(fgets(buf, sizeof(buf), fp));
    fclose(fp);
    return atoi(buf);
}

/* `leftovers remove` holds the agent's lock with its own pid in it, as the
 * agent does: whoever finds it locked (a second remove, an agent's start,
 * `vfleet-node status`) is told the pid that holds it. It left the pid of
 * the agent that last ran there, which a second remove then named as "the
 * agent runs ... (pid N): stop it first": a process long gone, or another
 * one by now. */
static void
test_cli_lock_pid(void **state)
{
    struct fixture *f = *state;
    char path[256], *args[] = {"remove", ID4};
    struct linux_config lc = {0};

    snprintf(path, sizeof(path), "%s/vfleet-node.pid", f->dir);
    FILE *fp = fopen(path, "we");
    assert_non_null(fp);
    fputs("999999\n", fp); /* an agent that ran here once */
    fclose(fp);
    /* Nothing of ID4 here: refused after the lock, before any backend. */
    assert_int_equal(leftovers_cli_remove(f->dir, args, 2, true, &lc), 3);
    assert_int_equal(lock_pid(f->dir), (int)getpid());

    /* Held (by another remove, or an agent): the message names its pid. */
    int fd = open(path, O_RDWR | O_CLOEXEC);
    assert_true(fd >= 0);
    assert_int_equal(flock(fd, LOCK_EX | LOCK_NB), 0);
    assert_int_equal(pwrite(fd, "4242\n", 5, 0), 5);
    assert_int_equal(ftruncate(fd, 5), 0);
    char out[] = "/tmp/vf-leftovers-err-XXXXXX";
    int efd = mkstemp(out), saved = dup(2);
    assert_true(efd >= 0 && saved >= 0);
    fflush(stderr);
    assert_int_equal(dup2(efd, 2), 2);
    int r = leftovers_cli_remove(f->dir, args, 2, true, &lc);
    fflush(stderr);
    assert_int_equal(dup2(saved, 2), 2);
    close(saved);
    char msg[512] = "";
    assert_true(pread(efd, msg, sizeof(msg) - 1, 0) > 0);
    close(efd);
    unlink(out);
    close(fd);
    assert_int_equal(r, 1);
    assert_non_null(strstr(msg, "pid 4242"));
    assert_int_equal(lock_pid(f->dir), 4242);
}

/* Runs `leftovers --json` on dir: its exit code in *code, what it printed
 * in out (n bytes), and that parsed (NULL when it is no JSON). */
static json_t *
ls_json(const char *dir, int *code, char *out, size_t n)
{
    char path[] = "/tmp/vf-leftovers-out-XXXXXX";
    int ofd = mkstemp(path), saved = dup(1);
    assert_true(ofd >= 0 && saved >= 0);
    fflush(stdout);
    assert_int_equal(dup2(ofd, 1), 1);
    *code = leftovers_cli_ls(dir, true);
    fflush(stdout);
    assert_int_equal(dup2(saved, 1), 1);
    close(saved);
    ssize_t got = pread(ofd, out, n - 1, 0);
    assert_true(got >= 0);
    out[got] = '\0';
    close(ofd);
    unlink(path);
    return json_loads(out, 0, NULL);
}

/* Entry i of `leftovers --json`'s array j, asserted to be id's with its
 * record said as record. */
static json_t *
entry(json_t *j, size_t i, const char *id, const char *record)
{
    json_t *e = json_array_get(j, i);
    assert_non_null(e);
    assert_string_equal(json_string_value(json_object_get(e, "id")), id);
    assert_string_equal(json_string_value(json_object_get(e, "record")), record);
    return e;
}

/* `leftovers --json` names the record of each: the path of the one set
 * aside, or of the one unreadable in place, beside the data directory. */
static void
test_cli_json(void **state)
{
    struct fixture *f = *state;
    char out[4096], path[256];
    int code;

    json_t *j = ls_json(f->dir, &code, out, sizeof(out));
    assert_int_equal(code, 0);
    assert_non_null(j);
    assert_int_equal(json_array_size(j), 2);
    json_t *e = entry(j, 1, ID3, "unreadable");
    snprintf(path, sizeof(path), "%s/guests/%s.json", f->dir, ID3);
    assert_string_equal(json_string_value(json_object_get(e, "file")), path);
    assert_null(json_object_get(e, "set_aside"));
    json_decref(j);

    store_t *s = NULL;
    assert_int_equal(store_open(f->dir, &s), 1); /* ID3's record set aside */
    store_close(&s);
    j = ls_json(f->dir, &code, out, sizeof(out));
    assert_int_equal(code, 0);
    assert_non_null(j);
    e = entry(j, 0, ID2, "none");
    assert_int_equal(json_object_size(e), 3);
    e = entry(j, 1, ID3, "set aside");
    snprintf(path, sizeof(path), "%s/guests/%s.json.corrupt-", f->dir, ID3);
    const char *aside = json_string_value(json_object_get(e, "set_aside"));
    assert_non_null(aside);
    assert_true(strncmp(aside, path, strlen(path)) == 0);
    snprintf(path, sizeof(path), "%s/data/%s", f->dir, ID3);
    assert_string_equal(json_string_value(json_object_get(e, "dir")), path);
    json_decref(j);
}

/* `leftovers --json` on a state directory named /tmp/vf-leftovers-PID-<tail>
 * (its name in dir, n bytes) with ID2's leftovers in it, as ls_json; the
 * directory is gone again on return. */
static json_t *
ls_json_named(const char *tail, char *dir, size_t n, int *code, char *out, size_t out_n)
{
    char path[256];

    snprintf(dir, n, "/tmp/vf-leftovers-%d-%s", (int)getpid(), tail);
    assert_int_equal(mkdir(dir, 0700), 0);
    mkdir_in(dir, "");
    mkdir_in(dir, ID2);
    json_t *j = ls_json(dir, code, out, out_n);
    snprintf(path, sizeof(path), "%s/data/%s", dir, ID2);
    assert_int_equal(rmdir(path), 0);
    snprintf(path, sizeof(path), "%s/data", dir);
    assert_int_equal(rmdir(path), 0);
    assert_int_equal(rmdir(dir), 0);
    return j;
}

/* `leftovers --json` is JSON whatever the state directory's path holds (a
 * quote, a backslash, a newline): it printed the path as it was, so a
 * reader got no JSON at all. */
static void
test_cli_json_path(void **state)
{
    (void)state;
    char dir[128], path[256], out[4096];
    int code;

    json_t *j = ls_json_named("a\"b\\c\nd", dir, sizeof(dir), &code, out, sizeof(out));
    assert_int_equal(code, 0);
    assert_non_null(j);
    assert_int_equal(json_array_size(j), 1);
    json_t *e = entry(j, 0, ID2, "none");
    snprintf(path, sizeof(path), "%s/data/%s", dir, ID2);
    assert_string_equal(json_string_value(json_object_get(e, "dir")), path);
    json_decref(j);
}

/* A state directory whose path is no UTF-8 cannot be said in JSON: an
 * error and nothing on stdout (the text output names it). It printed the
 * bytes as they were, which no JSON reader takes, and exited 0. */
static void
test_cli_json_not_utf8(void **state)
{
    (void)state;
    char dir[128], out[4096];
    int code;

    json_t *j = ls_json_named("\xff", dir, sizeof(dir), &code, out, sizeof(out));
    assert_int_equal(code, 1);
    assert_null(j);
    assert_string_equal(out, "");
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_list, setup, teardown),
        cmocka_unit_test_setup_teardown(test_remove, setup, teardown),
        cmocka_unit_test_setup_teardown(test_claim_exclusive, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cli_lock_pid, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cli_json, setup, teardown),
        cmocka_unit_test(test_cli_json_path),
        cmocka_unit_test(test_cli_json_not_utf8),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
