/* oncommit and charges: follow-ups run after the outermost commit and are
 * told of a rollback; scheduler charges made in a transaction are undone
 * with it, savepoints included. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "master/charges.h"
#include "master/oncommit.h"

struct seen {
    int calls;    /* follow-ups run */
    int last_err; /* the err of the last one */
    int order[8]; /* tags in the order they ran */
};

static struct seen S;

struct tag {
    int tag; /* which follow-up */
};

static void
follow(master_t *m, void *ctx, int err)
{
    struct tag *t = ctx;

    if (S.calls < 8)
        S.order[S.calls] = t->tag;
    S.calls++;
    S.last_err = err;
    free(t);
}

static void
add(oncommit_t *o, int tag)
{
    struct tag *t = malloc(sizeof(*t));
    t->tag = tag;
    oncommit_add(o, follow, t);
}

static void
test_oncommit(void **state)
{
    db_t *db = NULL;
    assert_int_equal(db_open(":memory:", &db, NULL, 0), 0);
    oncommit_t *o = oncommit_new(NULL, db);

    /* No transaction: at once. */
    S = (struct seen){0};
    add(o, 1);
    assert_int_equal(S.calls, 1);
    assert_int_equal(S.last_err, 0);

    /* After the outermost commit, in order, not at a savepoint's release. */
    S = (struct seen){0};
    assert_int_equal(db_begin(db), 0);
    add(o, 1);
    assert_int_equal(db_begin(db), 0);
    add(o, 2);
    assert_int_equal(db_commit(db), 0);
    assert_int_equal(S.calls, 0);
    assert_int_equal(oncommit_pending(o), 2);
    assert_int_equal(db_commit(db), 0);
    assert_int_equal(S.calls, 2);
    assert_int_equal(S.order[0], 1);
    assert_int_equal(S.order[1], 2);
    assert_int_equal(S.last_err, 0);

    /* A savepoint rolled back: only its follow-ups are told. */
    S = (struct seen){0};
    assert_int_equal(db_begin(db), 0);
    add(o, 1);
    assert_int_equal(db_begin(db), 0);
    add(o, 2);
    assert_int_equal(db_rollback(db), 0);
    assert_int_equal(S.calls, 1);
    assert_int_equal(S.order[0], 2);
    assert_int_equal(S.last_err, -ECANCELED);
    assert_int_equal(db_commit(db), 0);
    assert_int_equal(S.calls, 2);
    assert_int_equal(S.order[1], 1);
    assert_int_equal(S.last_err, 0);

    /* The whole transaction rolled back: everyone is told. */
    S = (struct seen){0};
    assert_int_equal(db_begin(db), 0);
    add(o, 1);
    add(o, 2);
    assert_int_equal(db_rollback(db), 0);
    assert_int_equal(S.calls, 2);
    assert_int_equal(S.last_err, -ECANCELED);
    assert_int_equal(oncommit_pending(o), 0);

    /* Destroy tells what still waits. */
    S = (struct seen){0};
    assert_int_equal(db_begin(db), 0);
    add(o, 1);
    oncommit_destroy(&o);
    assert_null(o);
    assert_int_equal(S.calls, 1);
    assert_int_equal(S.last_err, -ECANCELED);
    assert_int_equal(db_rollback(db), 0);
    db_destroy(&db);
}

static uint64_t
used_mem(sched_t *s, const char *node)
{
    struct sched_node_info info;
    assert_int_equal(sched_node_info(s, node, &info), 0);
    return info.used.memory;
}

static void
test_charges(void **state)
{
    db_t *db = NULL;
    assert_int_equal(db_open(":memory:", &db, NULL, 0), 0);
    sched_t *s = sched_new(NULL);
    charges_t *c = charges_new(s, db);
    struct sched_capacity cap = {.cpu = 8000, .memory = 1000, .disk = 1000};
    struct sched_resources r100 = {.cpu = 100, .memory = 100}, r300 = {.cpu = 100, .memory = 300};
    struct sched_request req = {.res = r100, .algo = SCHED_DEFAULT};
    struct sched_result res;

    assert_int_equal(sched_node_upsert(s, "h1", &cap, NULL, 0), 0);
    /* A placement rolled back is given back. */
    assert_int_equal(db_begin(db), 0);
    assert_int_equal(charges_place(c, &req, &res), 0);
    assert_int_equal(used_mem(s, "h1"), 100);
    assert_int_equal(db_rollback(db), 0);
    assert_int_equal(used_mem(s, "h1"), 0);
    /* Committed, it stays. */
    assert_int_equal(db_begin(db), 0);
    assert_int_equal(charges_place(c, &req, &res), 0);
    assert_int_equal(db_commit(db), 0);
    assert_int_equal(used_mem(s, "h1"), 100);
    /* A resize in a savepoint that rolls back inside a transaction that
     * commits: the old charge stands. */
    assert_int_equal(db_begin(db), 0);
    assert_int_equal(db_begin(db), 0);
    assert_int_equal(charges_resize(c, "h1", NULL, &r100, &r300, &res), 0);
    assert_int_equal(used_mem(s, "h1"), 300);
    assert_int_equal(db_rollback(db), 0);
    assert_int_equal(used_mem(s, "h1"), 100);
    assert_int_equal(db_commit(db), 0);
    assert_int_equal(used_mem(s, "h1"), 100);
    /* Growth past capacity is refused and changes nothing. */
    struct sched_resources huge = {.cpu = 100, .memory = 5000};
    assert_int_equal(charges_resize(c, "h1", NULL, &r100, &huge, &res), -ENOSPC);
    assert_int_equal(used_mem(s, "h1"), 100);
    /* A release outside a transaction is simply made. */
    assert_int_equal(charges_release(c, "h1", &r100, NULL), 0);
    assert_int_equal(used_mem(s, "h1"), 0);
    charges_destroy(&c);
    sched_destroy(&s);
    db_destroy(&db);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_oncommit),
        cmocka_unit_test(test_charges),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
