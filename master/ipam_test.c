/* Tests for master/ipam: pools, auto and explicit allocation, the database
 * guarantee, rollback, selectors, IPv6. */
#include <arpa/inet.h>
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "master/db.h"
#include "master/ipam.h"

struct fx {
    db_t *db;      /* in-memory database */
    ipam_t *ip;    /* the allocator under test */
    char err[256]; /* last error text */
};

static void
add_guest(db_t *db, const char *id)
{
    struct db_guest g = {.id = (char *)id,
                         .name = (char *)id,
                         .spec = "{}",
                         .generation = 1,
                         .desired = DB_DESIRED_RUNNING,
                         .observed = DB_OBS_PENDING};
    assert_int_equal(db_guest_insert(db, &g, NULL, 0), 0);
}

static int
setup(void **state)
{
    struct fx *f = calloc(1, sizeof(*f));

    assert_int_equal(db_open(":memory:", &f->db, NULL, 0), 0);
    assert_int_equal(ipam_new(f->db, NULL, &f->ip, f->err, sizeof(f->err)), 0);
    for (int i = 0; i < 8; i++) {
        char id[8];
        snprintf(id, sizeof(id), "g%d", i);
        add_guest(f->db, id);
    }
    *state = f;
    return 0;
}

static int
teardown(void **state)
{
    struct fx *f = *state;

    ipam_destroy(&f->ip);
    assert_null(f->ip);
    db_destroy(&f->db);
    free(f);
    return 0;
}

static void
pool(struct fx *f, const char *name, const char *cidr, const char *gw)
{
    struct ipam_pool_def d = {.name = name, .cidr = cidr, .gateway = gw};
    assert_int_equal(ipam_pool_create(f->ip, &d, f->err, sizeof(f->err)), 0);
}

/* Allocates one auto address for guest and returns its text (static buffer). */
static int
auto1(struct fx *f, const char *guest, int family, const char **text)
{
    static char buf[NETADDR_STRLEN];
    struct ipam_request rq = {.family = family};
    struct netaddr a;
    int r = ipam_alloc(f->ip, guest, &rq, 1, NULL, 0, &a, f->err, sizeof(f->err));

    if (r == 0)
        *text = netaddr_format(&a, false, buf, sizeof(buf));
    return r;
}

static int
explicit1(struct fx *f, const char *guest, const char *addr)
{
    struct ipam_request rq = {.address = addr};
    struct netaddr a;

    return ipam_alloc(f->ip, guest, &rq, 1, NULL, 0, &a, f->err, sizeof(f->err));
}

static void
test_auto_sequence_and_exhaustion(void **state)
{
    struct fx *f = *state;
    const char *expect[] = {"10.1.0.2", "10.1.0.3", "10.1.0.4", "10.1.0.5", "10.1.0.6"};
    struct ipam_pool_info info;
    const char *t;

    /* A /29 has 8 addresses: .0 network, .7 broadcast, .1 gateway: 5 usable. */
    pool(f, "p1", "10.1.0.0/29", "10.1.0.1");
    assert_int_equal(ipam_pool_info(f->ip, "p1", &info), 0);
    assert_int_equal(info.usable, 5);
    for (size_t i = 0; i < 5; i++) {
        char id[8];
        snprintf(id, sizeof(id), "g%zu", i);
        assert_int_equal(auto1(f, id, AF_INET, &t), 0);
        assert_string_equal(t, expect[i]);
    }
    assert_int_equal(auto1(f, "g5", AF_INET, &t), -ENOSPC);
    assert_non_null(strstr(f->err, "exhausted"));
    assert_int_equal(ipam_pool_info(f->ip, "p1", &info), 0);
    assert_int_equal(info.allocated, 5);
    /* No IPv6 pool at all says so. */
    assert_int_equal(auto1(f, "g5", AF_INET6, &t), -ENOSPC);
    assert_non_null(strstr(f->err, "no IPv6 pool"));
}

static void
test_explicit(void **state)
{
    struct fx *f = *state;

    pool(f, "p1", "10.2.0.0/24", "10.2.0.1");
    assert_int_equal(explicit1(f, "g0", "10.2.0.77"), 0);
    assert_int_equal(explicit1(f, "g1", "10.2.0.77"), -EADDRINUSE);
    assert_non_null(strstr(f->err, "allocated already"));
    assert_int_equal(explicit1(f, "g1", "10.3.0.1"), -EADDRNOTAVAIL);
    assert_non_null(strstr(f->err, "not inside any pool"));
    assert_int_equal(explicit1(f, "g1", "10.2.0.1"), -EADDRNOTAVAIL);   /* gateway */
    assert_int_equal(explicit1(f, "g1", "10.2.0.0"), -EADDRNOTAVAIL);   /* network */
    assert_int_equal(explicit1(f, "g1", "10.2.0.255"), -EADDRNOTAVAIL); /* broadcast */
    assert_int_equal(explicit1(f, "g1", "10.2.0.300"), -EINVAL);
    assert_int_equal(explicit1(f, "g1", "10.2.0.254"), 0);
    /* auto steps over an explicit address when its frontier gets there. */
    const char *t;
    pool(f, "p2", "10.8.0.0/29", NULL);
    assert_int_equal(explicit1(f, "g2", "10.8.0.2"), 0);
    assert_int_equal(auto1(f, "g3", AF_INET, &t), 0);
    assert_string_equal(t, "10.2.0.2"); /* pools in name order: p1 first */
    {
        struct ipam_request rq = {.family = AF_INET, .pool = "p2"};
        struct netaddr a;
        char buf[NETADDR_STRLEN];
        assert_int_equal(ipam_alloc(f->ip, "g3", &rq, 1, NULL, 0, &a, NULL, 0), 0);
        assert_string_equal(netaddr_format(&a, false, buf, sizeof(buf)), "10.8.0.1");
        assert_int_equal(ipam_alloc(f->ip, "g3", &rq, 1, NULL, 0, &a, NULL, 0), 0);
        assert_string_equal(netaddr_format(&a, false, buf, sizeof(buf)), "10.8.0.3");
    }
}

static void
test_db_is_the_judge(void **state)
{
    struct fx *f = *state;
    ipam_t *other = NULL;
    const char *t;

    pool(f, "p1", "10.4.0.0/24", NULL);
    /* A second allocator on the same database has stale memory: it believes
     * .1 is free. The primary key refuses it; auto moves on, explicit fails. */
    assert_int_equal(ipam_new(f->db, NULL, &other, NULL, 0), 0);
    assert_int_equal(auto1(f, "g0", AF_INET, &t), 0);
    assert_string_equal(t, "10.4.0.1");
    {
        struct ipam_request rq = {.address = "10.4.0.1"};
        struct netaddr a;
        assert_int_equal(ipam_alloc(other, "g1", &rq, 1, NULL, 0, &a, NULL, 0), -EADDRINUSE);
        rq = (struct ipam_request){.family = AF_INET};
        assert_int_equal(ipam_alloc(other, "g1", &rq, 1, NULL, 0, &a, NULL, 0), 0);
        char buf[NETADDR_STRLEN];
        assert_string_equal(netaddr_format(&a, false, buf, sizeof(buf)), "10.4.0.2");
    }
    ipam_destroy(&other);
    /* And the raw table refuses a duplicate whatever memory says. */
    assert_int_equal(db_ip_insert(f->db, "10.4.0.1", "p1", "g3"), -EADDRINUSE);
}

static void
test_release_and_reuse(void **state)
{
    struct fx *f = *state;
    const char *t;

    pool(f, "p1", "192.168.5.0/30", NULL); /* .1 and .2 usable */
    assert_int_equal(auto1(f, "g0", AF_INET, &t), 0);
    assert_string_equal(t, "192.168.5.1");
    assert_int_equal(auto1(f, "g1", AF_INET, &t), 0);
    assert_string_equal(t, "192.168.5.2");
    assert_int_equal(auto1(f, "g2", AF_INET, &t), -ENOSPC);
    assert_int_equal(ipam_release(f->ip, "192.168.5.1"), 0);
    assert_int_equal(ipam_release(f->ip, "192.168.5.1"), -ENOENT);
    assert_int_equal(auto1(f, "g2", AF_INET, &t), 0);
    assert_string_equal(t, "192.168.5.1");
    assert_int_equal(ipam_release_guest(f->ip, "g1"), 1);
    assert_int_equal(ipam_release_guest(f->ip, "g1"), 0);
    assert_int_equal(auto1(f, "g3", AF_INET, &t), 0);
    assert_string_equal(t, "192.168.5.2");
    /* Deleting a pool in use is refused; once empty it goes. */
    assert_int_equal(ipam_pool_delete(f->ip, "p1"), -EBUSY);
    assert_int_equal(ipam_release_guest(f->ip, "g2"), 1);
    assert_int_equal(ipam_release_guest(f->ip, "g3"), 1);
    assert_int_equal(ipam_pool_delete(f->ip, "p1"), 0);
    assert_int_equal(ipam_pool_count(f->ip), 0);
    assert_int_equal(ipam_pool_delete(f->ip, "p1"), -ENOENT);
}

static void
test_v6(void **state)
{
    struct fx *f = *state;
    struct ipam_pool_def bad = {.name = "big", .cidr = "2001:db8::/48"};
    struct ipam_pool_info info;
    const char *t;

    pool(f, "v4", "10.9.0.0/24", NULL);
    pool(f, "v6", "2001:db8:1::/64", "2001:db8:1::1");
    assert_int_equal(ipam_pool_create(f->ip, &bad, f->err, sizeof(f->err)), -EINVAL);
    assert_non_null(strstr(f->err, "/64"));
    assert_int_equal(ipam_pool_info(f->ip, "v6", &info), 0);
    assert_int_equal(info.net.family, AF_INET6);
    assert_int_equal(auto1(f, "g0", AF_INET6, &t), 0);
    assert_string_equal(t, "2001:db8:1::2");
    assert_int_equal(auto1(f, "g0", AF_INET6, &t), 0);
    assert_string_equal(t, "2001:db8:1::3");
    /* AF_UNSPEC takes IPv4 first. */
    assert_int_equal(auto1(f, "g0", AF_UNSPEC, &t), 0);
    assert_string_equal(t, "10.9.0.1");
    assert_int_equal(explicit1(f, "g1", "2001:db8:1::"), -EADDRNOTAVAIL);
    assert_int_equal(explicit1(f, "g1", "2001:db8:1:0:ffff:ffff:ffff:ffff"), 0);
    assert_int_equal(explicit1(f, "g1", "2001:DB8:1::ABCD"), 0);
    /* Any spelling releases the canonical row. */
    assert_int_equal(ipam_release(f->ip, "2001:db8:1:0::abcd"), 0);
}

static void
test_selector(void **state)
{
    struct fx *f = *state;
    struct db_label sel[] = {{"rack", "r1"}};
    struct ipam_pool_def d = {
        .name = "rack1", .cidr = "172.16.0.0/24", .selector = sel, .n_selector = 1};
    struct db_label r1[] = {{"zone", "a"}, {"rack", "r1"}}, r2[] = {{"rack", "r2"}};
    struct ipam_request rq = {.family = AF_INET};
    struct netaddr a;
    char buf[NETADDR_STRLEN];

    assert_int_equal(ipam_pool_create(f->ip, &d, f->err, sizeof(f->err)), 0);
    assert_int_equal(ipam_alloc(f->ip, "g0", &rq, 1, r2, 1, &a, f->err, sizeof(f->err)), -ENOSPC);
    assert_non_null(strstr(f->err, "serves this node"));
    assert_int_equal(ipam_alloc(f->ip, "g0", &rq, 1, NULL, 0, &a, f->err, sizeof(f->err)), -ENOSPC);
    assert_int_equal(ipam_alloc(f->ip, "g0", &rq, 1, r1, 2, &a, f->err, sizeof(f->err)), 0);
    assert_string_equal(netaddr_format(&a, false, buf, sizeof(buf)), "172.16.0.1");
    rq = (struct ipam_request){.address = "172.16.0.9"};
    assert_int_equal(ipam_alloc(f->ip, "g1", &rq, 1, r2, 1, &a, f->err, sizeof(f->err)),
                     -EADDRNOTAVAIL);
    rq = (struct ipam_request){.family = AF_INET, .pool = "nope"};
    assert_int_equal(ipam_alloc(f->ip, "g1", &rq, 1, r1, 2, &a, f->err, sizeof(f->err)), -ENOENT);
    /* Overlapping pools are refused, so an address has one pool. */
    d = (struct ipam_pool_def){.name = "over", .cidr = "172.16.0.128/25"};
    assert_int_equal(ipam_pool_create(f->ip, &d, f->err, sizeof(f->err)), -EADDRINUSE);
    d = (struct ipam_pool_def){.name = "rack1", .cidr = "172.17.0.0/24"};
    assert_int_equal(ipam_pool_create(f->ip, &d, f->err, sizeof(f->err)), -EEXIST);
    d = (struct ipam_pool_def){.name = "gw", .cidr = "172.18.0.0/24", .gateway = "172.19.0.1"};
    assert_int_equal(ipam_pool_create(f->ip, &d, f->err, sizeof(f->err)), -EINVAL);
}

static void
test_limit_and_atomic_batch(void **state)
{
    struct fx *f = *state;
    struct ipam_config cfg = {.max_per_guest = 2};
    ipam_t *ip2 = NULL;
    struct ipam_request two[] = {{.family = AF_INET}, {.family = AF_INET}};
    struct ipam_request three[] = {{.family = AF_INET}, {.family = AF_INET}, {.family = AF_INET}};
    struct ipam_request bad[] = {{.family = AF_INET}, {.address = "10.5.0.1"}};
    struct netaddr a[3];
    char buf[NETADDR_STRLEN];
    const char *t;

    pool(f, "p1", "10.5.0.0/24", NULL);
    assert_int_equal(explicit1(f, "g0", "10.5.0.1"), 0);
    /* A batch whose second entry fails leaves nothing behind, in the
     * database or in memory: the next auto address is still .2. */
    assert_int_equal(ipam_alloc(f->ip, "g1", bad, 2, NULL, 0, a, f->err, sizeof(f->err)),
                     -EADDRINUSE);
    assert_int_equal(db_ip_count_guest(f->db, "g1"), 0);
    assert_int_equal(auto1(f, "g1", AF_INET, &t), 0);
    assert_string_equal(t, "10.5.0.2");

    ipam_destroy(&f->ip);
    assert_int_equal(ipam_new(f->db, &cfg, &ip2, NULL, 0), 0);
    f->ip = ip2;
    assert_int_equal(ipam_alloc(f->ip, "g2", three, 3, NULL, 0, a, f->err, sizeof(f->err)), -E2BIG);
    assert_int_equal(ipam_alloc(f->ip, "g2", two, 2, NULL, 0, a, f->err, sizeof(f->err)), 0);
    /* Reloaded from the database: .1 and .2 are known taken. */
    assert_string_equal(netaddr_format(&a[0], false, buf, sizeof(buf)), "10.5.0.3");
    assert_string_equal(netaddr_format(&a[1], false, buf, sizeof(buf)), "10.5.0.4");
    assert_int_equal(ipam_alloc(f->ip, "g2", two, 1, NULL, 0, a, f->err, sizeof(f->err)), -E2BIG);
    assert_non_null(strstr(f->err, "limit of 2"));
}

static void
test_outer_rollback(void **state)
{
    struct fx *f = *state;
    const char *t;

    pool(f, "p1", "10.6.0.0/24", NULL);
    /* The caller's transaction rolls back after ipam committed its savepoint:
     * memory forgets the address along with the database. */
    assert_int_equal(db_begin(f->db), 0);
    assert_int_equal(auto1(f, "g0", AF_INET, &t), 0);
    assert_string_equal(t, "10.6.0.1");
    assert_int_equal(ipam_release(f->ip, "10.6.0.1"), 0);
    assert_int_equal(auto1(f, "g0", AF_INET, &t), 0);
    assert_string_equal(t, "10.6.0.2");
    assert_int_equal(db_rollback(f->db), 0);
    assert_int_equal(db_ip_count_guest(f->db, "g0"), 0);
    assert_int_equal(auto1(f, "g0", AF_INET, &t), 0);
    assert_string_equal(t, "10.6.0.1");
    /* A pool created in a rolled-back transaction is gone too. */
    assert_int_equal(db_begin(f->db), 0);
    pool(f, "p2", "10.7.0.0/24", NULL);
    assert_int_equal(ipam_pool_count(f->ip), 2);
    assert_int_equal(db_rollback(f->db), 0);
    assert_int_equal(ipam_pool_count(f->ip), 1);
    /* A committed outer transaction keeps everything. */
    assert_int_equal(db_begin(f->db), 0);
    assert_int_equal(auto1(f, "g1", AF_INET, &t), 0);
    assert_string_equal(t, "10.6.0.2");
    assert_int_equal(db_commit(f->db), 0);
    assert_int_equal(db_ip_count_guest(f->db, "g1"), 1);
}

/* A /22 filled to the last address, holes punched, the allocator reloaded
 * from the database: the holes and only the holes come back. */
static void
test_fill_reload(void **state)
{
    struct fx *f = *state;
    struct ipam_config cfg = {.max_per_guest = 1024};
    struct ipam_request rq = {.family = AF_INET};
    static bool taken[1024], released[1024];
    struct netaddr a;
    int n = 0;

    ipam_destroy(&f->ip);
    assert_int_equal(ipam_new(f->db, &cfg, &f->ip, NULL, 0), 0);
    pool(f, "big", "10.20.0.0/22", "10.20.0.1");
    memset(taken, 0, sizeof(taken));
    memset(released, 0, sizeof(released));
    while (ipam_alloc(f->ip, "g0", &rq, 1, NULL, 0, &a, f->err, sizeof(f->err)) == 0) {
        unsigned off = (unsigned)(a.bytes[2] & 3) * 256 + a.bytes[3];
        assert_false(taken[off]);
        taken[off] = true;
        n++;
    }
    assert_int_equal(n, 1021); /* 1024 - network - broadcast - gateway */
    assert_int_equal(db_ip_count_guest(f->db, "g0"), 1021);
    assert_false(taken[0] || taken[1] || taken[1023]);
    for (unsigned off = 7; off < 1023; off += 10) {
        char buf[32];
        snprintf(buf, sizeof(buf), "10.20.%u.%u", off / 256, off % 256);
        assert_int_equal(ipam_release(f->ip, buf), 0);
        released[off] = true;
    }
    ipam_destroy(&f->ip);
    assert_int_equal(ipam_new(f->db, &cfg, &f->ip, NULL, 0), 0);
    n = 0;
    while (ipam_alloc(f->ip, "g1", &rq, 1, NULL, 0, &a, f->err, sizeof(f->err)) == 0) {
        unsigned off = (unsigned)(a.bytes[2] & 3) * 256 + a.bytes[3];
        assert_true(released[off]);
        released[off] = false;
        n++;
    }
    assert_int_equal(n, 102);
    for (unsigned off = 0; off < 1024; off++)
        assert_false(released[off]);
}

/* An orphan's addresses stay held across a restart; the cursor goes on
 * where it was, so neither a held nor a just-released address comes first;
 * the holds end by adoption (the guest's again) or release (free). */
static void
test_holds_and_cursor_survive_restart(void **state)
{
    struct fx *f = *state;
    const char *t;
    char a1[32], a2[32], a3[32];

    pool(f, "p1", "10.3.0.0/24", "10.3.0.1");
    assert_int_equal(auto1(f, "g1", AF_INET, &t), 0);
    strcpy(a1, t); /* 10.3.0.2 */
    assert_int_equal(auto1(f, "g2", AF_INET, &t), 0);
    strcpy(a2, t); /* 10.3.0.3 */
    assert_int_equal(auto1(f, "g3", AF_INET, &t), 0);
    strcpy(a3, t); /* 10.3.0.4 */
    /* g1 is forgotten with force: its address is held for its copy on n1. */
    assert_int_equal(ipam_hold_guest(f->ip, "g1", "n1"), 1);
    assert_int_equal(db_ip_count_guest(f->db, "g1"), 0);
    assert_int_equal(explicit1(f, "g4", a1), -EADDRINUSE);
    /* g3's address is released a moment before the restart. */
    assert_int_equal(ipam_release(f->ip, a3), 0);
    ipam_destroy(&f->ip);
    assert_int_equal(ipam_new(f->db, NULL, &f->ip, f->err, sizeof(f->err)), 0);
    /* After the restart the cursor goes on (.5, .6): neither the held .2 nor
     * the just-released .4 comes first (without the stored cursor, .2 and .4
     * would be the first offsets tried). */
    assert_int_equal(auto1(f, "g4", AF_INET, &t), 0);
    assert_string_equal(t, "10.3.0.5");
    assert_int_equal(auto1(f, "g5", AF_INET, &t), 0);
    assert_string_equal(t, "10.3.0.6");
    assert_int_equal(explicit1(f, "g5", a1), -EADDRINUSE);
    assert_int_equal(db_hold_insert(f->db, a2, "p1", "n1", "g1"), -EADDRINUSE);
    /* An orphan's address the master knew nothing of is held when free. */
    assert_int_equal(ipam_hold(f->ip, "10.3.0.9", "n1", "g7"), 0);
    assert_int_equal(ipam_hold(f->ip, a2, "n1", "g7"), -EADDRINUSE);
    assert_int_equal(ipam_hold(f->ip, "192.0.2.1", "n1", "g7"), -EADDRNOTAVAIL);
    /* Adopted: g1's again. Destroyed: free again. */
    assert_int_equal(ipam_adopt_holds(f->ip, "n1", "g1"), 1);
    assert_int_equal(db_ip_count_guest(f->db, "g1"), 1);
    assert_int_equal(ipam_release_holds(f->ip, "n1", "g7"), 1);
    assert_int_equal(explicit1(f, "g6", "10.3.0.9"), 0);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_auto_sequence_and_exhaustion, setup, teardown),
        cmocka_unit_test_setup_teardown(test_explicit, setup, teardown),
        cmocka_unit_test_setup_teardown(test_db_is_the_judge, setup, teardown),
        cmocka_unit_test_setup_teardown(test_release_and_reuse, setup, teardown),
        cmocka_unit_test_setup_teardown(test_v6, setup, teardown),
        cmocka_unit_test_setup_teardown(test_selector, setup, teardown),
        cmocka_unit_test_setup_teardown(test_limit_and_atomic_batch, setup, teardown),
        cmocka_unit_test_setup_teardown(test_outer_rollback, setup, teardown),
        cmocka_unit_test_setup_teardown(test_fill_reload, setup, teardown),
        cmocka_unit_test_setup_teardown(test_holds_and_cursor_survive_restart, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
