/* "A reply is a promise": with the master's database on a small filesystem
 * that is full, every change is refused with 507 and changes nothing —
 * create, PATCH, DELETE, address add, start/stop — while reads keep
 * working; once there is room again the same requests succeed. End to end
 * in one process (master_fixture.h), the store on a tmpfs of its own. */
#include <dirent.h>
#include <fcntl.h>
#include <sys/mount.h>

#include "master/master_fixture.h"
#include "master/oncommit.h"

static char mnt[120];
static char filler[260];

static int
setup(void **state)
{
    if (geteuid() != 0) {
        fprintf(stderr, "skipped: mounting a small tmpfs needs root\n");
        exit(77);
    }
    snprintf(mnt, sizeof(mnt), "/tmp/vfleet-store-test-%d", (int)getpid());
    if (mkdir(mnt, 0700) < 0 || mount("tmpfs", mnt, "tmpfs", MS_NOSUID | MS_NODEV, "size=2m") < 0) {
        perror("tmpfs");
        return -1;
    }
    snprintf(F.db_dir, sizeof(F.db_dir), "%s", mnt);
    snprintf(filler, sizeof(filler), "%s/filler", mnt);
    return group_setup(state);
}

static int
teardown(void **state)
{
    int r = group_teardown(state);
    umount2(mnt, MNT_DETACH);
    rmdir(mnt);
    return r;
}

/* Fills the filesystem to the last byte. */
static void
fill(void)
{
    int fd = open(filler, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    char buf[4096];

    assert_true(fd >= 0);
    memset(buf, 0xa5, sizeof(buf));
    while (write(fd, buf, sizeof(buf)) > 0)
        ;
    while (write(fd, buf, 1) > 0)
        ;
    close(fd);
}

static void
json_field(const char *path, const char *key, json_t **out)
{
    json_t *o = NULL;
    assert_int_equal(http("GET", path, NULL, NULL, &o), 200);
    *out = json_deep_copy(json_object_get(o, key));
    json_decref(o);
}

static void
test_full_store(void **state)
{
    json_t *o = NULL, *before = NULL, *after = NULL;
    long st = 0;

    assert_int_equal(
        http("POST", "/v1/pools", "{\"name\":\"p\",\"cidr\":\"10.9.0.0/24\"}", NULL, NULL), 201);
    assert_int_equal(
        http("POST", "/v1/guests?wait=running&timeout=20",
             "{\"name\":\"g1\",\"template\":\"busybox\",\"limits\":{\"memory\":\"64M\","
             "\"cpu_max\":0.1}}",
             NULL, NULL),
        201);
    fill();
    /* SQLite's write-ahead log may still have room for a few writes; the
     * first create that needs more is refused, and it is not there. */
    int i;
    for (i = 0; i < 300; i++) {
        char body[160], name[16];
        snprintf(name, sizeof(name), "f%d", i);
        snprintf(body, sizeof(body),
                 "{\"name\":\"%s\",\"template\":\"busybox\",\"limits\":{\"cpu_max\":0.01}}", name);
        st = http("POST", "/v1/guests", body, NULL, &o);
        if (st != 201) {
            char path[64];
            assert_int_equal(st, 507);
            assert_string_equal(str(json_object_get(o, "error"), "code"), "insufficient_storage");
            json_decref(o);
            snprintf(path, sizeof(path), "/v1/guests/%s", name);
            assert_int_equal(http("GET", path, NULL, NULL, NULL), 404);
            break;
        }
        json_decref(o);
    }
    assert_true(i < 300);
    json_field("/v1/guests/g1", "limits", &before);

    /* PATCH: 507, and the guest keeps its generation and limits. */
    json_int_t gen;
    assert_int_equal(http("GET", "/v1/guests/g1", NULL, NULL, &o), 200);
    gen = num(o, "generation");
    json_decref(o);
    assert_int_equal(http("PATCH", "/v1/guests/g1", "{\"limits\":{\"memory\":\"96M\"}}", NULL, &o),
                     507);
    json_decref(o);
    assert_int_equal(http("GET", "/v1/guests/g1", NULL, NULL, &o), 200);
    assert_int_equal(num(o, "generation"), gen);
    assert_string_equal(str(o, "state"), "running");
    json_decref(o);
    json_field("/v1/guests/g1", "limits", &after);
    assert_true(json_equal(before, after));
    json_decref(after);

    /* An address: 507, none allocated. */
    assert_int_equal(http("POST", "/v1/guests/g1/ips", "{\"ip\":\"auto\"}", NULL, NULL), 507);
    json_field("/v1/guests/g1", "ips", &after);
    assert_int_equal(json_array_size(after), 0);
    json_decref(after);
    assert_int_equal(http("GET", "/v1/pools", NULL, NULL, &o), 200);
    assert_int_equal(num(json_array_get(json_object_get(o, "pools"), 0), "allocated"), 0);
    json_decref(o);

    /* DELETE: 507, nothing is sent to the node: the guest runs on. */
    assert_int_equal(http("DELETE", "/v1/guests/g1", NULL, NULL, &o), 507);
    json_decref(o);
    assert_int_equal(http("GET", "/v1/guests/g1", NULL, NULL, &o), 200);
    assert_string_equal(str(o, "state"), "running");
    assert_false(json_is_true(json_object_get(o, "deleting")));
    json_decref(o);
    /* Stop: 507, still running and desired running. */
    assert_int_equal(http("POST", "/v1/guests/g1/stop", NULL, NULL, NULL), 507);
    assert_int_equal(http("GET", "/v1/guests/g1", NULL, NULL, &o), 200);
    assert_string_equal(str(o, "desired"), "running");
    json_decref(o);
    /* Reads work, and the master says why it cannot write. */
    assert_int_equal(http("GET", "/v1/guests", NULL, NULL, NULL), 200);
    assert_int_equal(http("GET", "/healthz", NULL, NULL, NULL), 507);

    /* Room again: the same requests go through. */
    assert_int_equal(unlink(filler), 0);
    assert_int_equal(http("GET", "/healthz", NULL, NULL, NULL), 200);
    assert_int_equal(http("PATCH", "/v1/guests/g1", "{\"limits\":{\"memory\":\"96M\"}}", NULL, &o),
                     200);
    json_decref(o);
    assert_int_equal(http("POST", "/v1/guests/g1/ips", "{\"ip\":\"auto\"}", NULL, NULL), 200);
    json_decref(before);
    delete_all_guests();
    assert_int_equal(http("DELETE", "/v1/pools/p", NULL, NULL, NULL), 204);
}

/* Creates that the loop takes at once share one commit (http_edge.c): when
 * the disk is full, that commit fails and every one of them is refused
 * with 507, none stored; none is answered 201 for a guest that is not. */
static void
test_full_store_together(void **state)
{
    enum { N = 4 };
    char text[N][160];
    const char *bodies[N];
    long st[N];
    json_t *o = NULL;
    int round;

    fill();
    for (round = 0; round < 100; round++) {
        unsigned created = 0, full = 0;
        for (unsigned i = 0; i < N; i++) {
            snprintf(text[i], sizeof(text[i]),
                     "{\"name\":\"t%d-%u\",\"template\":\"busybox\",\"limits\":{\"cpu_max\":0.01}}",
                     round, i);
            bodies[i] = text[i];
        }
        assert_int_equal(fx_post_together("/v1/guests", bodies, N, st), N);
        for (unsigned i = 0; i < N; i++) {
            created += st[i] == 201;
            full += st[i] == 507;
        }
        if (created == N)
            continue;
        assert_int_equal(full, N);
        for (unsigned i = 0; i < N; i++) {
            char path[64];
            snprintf(path, sizeof(path), "/v1/guests/t%d-%u", round, i);
            assert_int_equal(http("GET", path, NULL, NULL, &o), 404);
            json_decref(o);
        }
        break;
    }
    assert_true(round < 100);
    assert_int_equal(unlink(filler), 0);
    assert_int_equal(http("GET", "/healthz", NULL, NULL, NULL), 200);
    delete_all_guests();
}

/* The "allocated" of every node (placement's charges) and the guests
 * count, as one JSON text (the caller frees it). */
static char *
nodes_allocated(void)
{
    json_t *o = NULL, *n, *out = json_object();
    size_t i;

    assert_int_equal(http("GET", "/v1/nodes", NULL, NULL, &o), 200);
    json_array_foreach(json_object_get(o, "nodes"), i, n)
    {
        json_object_set_new(out, str(n, "name"),
                            json_pack("{s:O, s:O}", "allocated", json_object_get(n, "allocated"),
                                      "guests", json_object_get(n, "guests")));
    }
    json_decref(o);
    char *text = json_dumps(out, JSON_COMPACT | JSON_SORT_KEYS);
    json_decref(out);
    return text;
}

/* Whether a node agent of the fixture holds a record of a guest named
 * name: what the master sent it (guest.apply.start). */
static bool
node_has(const char *name)
{
    char dir[300], path[600];

    for (int i = 1; i <= N_NODES; i++) {
        snprintf(dir, sizeof(dir), "%s/n%d/guests", F.dir, i);
        DIR *d = opendir(dir);
        struct dirent *e;
        if (!d)
            continue;
        while ((e = readdir(d))) {
            snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
            json_t *rec = json_load_file(path, 0, NULL);
            bool same = rec && strcmp(str(json_object_get(rec, "spec"), "name"), name) == 0;
            json_decref(rec);
            if (same) {
                closedir(d);
                return true;
            }
        }
        closedir(d);
    }
    return false;
}

static size_t pending_seen;

static void
read_pending(struct fx *f)
{
    pending_seen = oncommit_pending(f->master->oncommit);
}

/* A batch of creates that wait for their guest to run and take addresses
 * from a pool, on a full disk: each is answered 507 at once (no waiter for
 * a guest that is not there), no node is sent the guest, and the memory of
 * the master (addresses, node charges) forgets them as the store did: once
 * there is room, the same creates take the same addresses. */
static void
test_full_store_batch_forgets(void **state)
{
    enum { N = 4 };
    char text[N][256], name[N][32];
    const char *bodies[N];
    long st[N];
    json_t *o = NULL;
    int round;
    json_int_t alloc_before = 0;
    char *charges_before = NULL, *charges_after = NULL;

    assert_int_equal(
        http("POST", "/v1/pools", "{\"name\":\"pb\",\"cidr\":\"10.9.2.0/24\"}", NULL, NULL), 201);
    fill();
    for (round = 0; round < 100; round++) {
        unsigned created = 0, full = 0;
        for (unsigned i = 0; i < N; i++) {
            snprintf(name[i], sizeof(name[i]), "b%d-%u", round, i);
            snprintf(text[i], sizeof(text[i]),
                     "{\"name\":\"%s\",\"template\":\"busybox\",\"ips\":[\"auto4\"],"
                     "\"limits\":{\"cpu_max\":0.01}}",
                     name[i]);
            bodies[i] = text[i];
        }
        assert_int_equal(http("GET", "/v1/pools", NULL, NULL, &o), 200);
        alloc_before = num(json_array_get(json_object_get(o, "pools"), 0), "allocated");
        json_decref(o);
        free(charges_before);
        charges_before = nodes_allocated();
        uint64_t t0 = time_mono_ms();
        assert_int_equal(fx_post_together("/v1/guests?wait=running&timeout=10", bodies, N, st), N);
        for (unsigned i = 0; i < N; i++) {
            created += st[i] == 201;
            full += st[i] == 507;
        }
        if (created == N)
            continue;
        assert_int_equal(full, N);
        /* Refused at once, not when the wait's 10 s ran out. */
        assert_true(time_mono_ms() - t0 < 8000);
        break;
    }
    assert_true(round < 100);
    /* Time for a guest.apply.start that went out to land. */
    usleep(1500 * 1000);
    for (unsigned i = 0; i < N; i++) {
        char path[200];
        snprintf(path, sizeof(path), "/v1/guests/%s", name[i]);
        assert_int_equal(http("GET", path, NULL, NULL, NULL), 404);
        if (node_has(name[i]))
            fail_msg("guest %s was refused 507 but node has it", name[i]);
    }
    on_loop(read_pending);
    assert_int_equal(pending_seen, 0);
    assert_int_equal(http("GET", "/v1/pools", NULL, NULL, &o), 200);
    assert_int_equal(num(json_array_get(json_object_get(o, "pools"), 0), "allocated"),
                     alloc_before);
    json_decref(o);
    charges_after = nodes_allocated();
    assert_string_equal(charges_after, charges_before);
    free(charges_after);
    free(charges_before);

    /* Room again: the same creates succeed, with addresses of the pool. */
    assert_int_equal(unlink(filler), 0);
    assert_int_equal(fx_post_together("/v1/guests", bodies, N, st), N);
    for (unsigned i = 0; i < N; i++)
        assert_int_equal(st[i], 201);
    assert_int_equal(http("GET", "/v1/pools", NULL, NULL, &o), 200);
    assert_int_equal(num(json_array_get(json_object_get(o, "pools"), 0), "allocated"),
                     alloc_before + N);
    json_decref(o);
    /* And now the node has them: node_has sees what was sent. */
    for (int i = 0; i < 400 && !node_has(name[0]); i++)
        usleep(50 * 1000);
    assert_true(node_has(name[0]));
    delete_all_guests();
    assert_int_equal(http("DELETE", "/v1/pools/pb", NULL, NULL, NULL), 204);
}

/* Runs fn with the process's stderr (where the master logs) in a file and
 * returns how many of the lines it got hold needle. */
static unsigned
count_logged(void (*fn)(void), const char *needle)
{
    char path[] = "/tmp/vfleet-store-log-XXXXXX", line[1024];
    int fd = mkstemp(path), saved = dup(STDERR_FILENO);
    unsigned n = 0;

    assert_true(fd >= 0 && saved >= 0);
    unlink(path);
    fflush(stderr);
    dup2(fd, STDERR_FILENO);
    fn();
    fflush(stderr);
    dup2(saved, STDERR_FILENO);
    close(saved);
    FILE *f = fdopen(fd, "r");
    assert_non_null(f);
    rewind(f);
    while (fgets(line, sizeof(line), f)) {
        if (strstr(line, needle)) {
            n++;
            if (n <= 3)
                fprintf(stderr, "logged: %s", line);
        }
    }
    fclose(f);
    return n;
}

/* Fills the disk and lets the nodes report for a while. */
static void
fill_and_report(void)
{
    fill();
    usleep(4000 * 1000);
}

/* On a full disk the batch of every loop iteration with node messages
 * (usage, acks, events) fails to commit: that is logged once, not once an
 * iteration (proto/ratelimit.h). */
static void
test_full_store_log_bounded(void **state)
{
    json_t *o = NULL;

    for (int i = 0; i < 3; i++) {
        char body[160];
        snprintf(body, sizeof(body),
                 "{\"name\":\"l%d\",\"template\":\"busybox\",\"limits\":{\"cpu_max\":0.01}}", i);
        assert_int_equal(http("POST", "/v1/guests?wait=running&timeout=20", body, NULL, NULL), 201);
    }
    /* A master of its own: earlier tests' failures do not count. */
    on_loop(stop_master);
    on_loop(free_master);
    F.err = 0;
    on_loop(start_master);
    assert_int_equal(F.err, 0);
    json_decref(poll_until("/v1/nodes", nodes_ready, NULL));
    json_decref(poll_until("/v1/guests/l2", guest_state, "running"));
    unsigned n = count_logged(fill_and_report, "cannot store the batch");
    /* The first failure is logged (the disk filled under the capture). */
    assert_true(n >= 1);
    if (n > 1)
        fail_msg("a full store logged \"cannot store the batch\" %u times in 4 s", n);
    /* Still true after the log: writes are refused, reads work. */
    assert_int_equal(http("GET", "/healthz", NULL, NULL, NULL), 507);
    assert_int_equal(http("GET", "/v1/guests", NULL, NULL, &o), 200);
    json_decref(o);
    assert_int_equal(unlink(filler), 0);
    assert_int_equal(http("GET", "/healthz", NULL, NULL, NULL), 200);
    delete_all_guests();
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_full_store),
        cmocka_unit_test(test_full_store_together),
        cmocka_unit_test(test_full_store_batch_forgets),
        cmocka_unit_test(test_full_store_log_bounded),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
