/* What usage history costs the master's store: G guests (default 1,000)
 * report a sample every 10 s; each round of samples goes through
 * usage_report in one transaction (the node batch) and is committed
 * (synchronous=FULL, as the master runs), and history_tick rolls up and
 * expires on a test clock. Prints the time per sample, per commit and per
 * rollup, and the bytes per row and per guest of each table (SQLite's
 * dbstat), from which the storage per guest-day follows.
 *
 * Not a test: it prints figures, asserts nothing. Usage:
 *   observe_store [guests] [simulated-hours] [dir]   (default 1000 3 /var/tmp) */
#include <errno.h>
#include <inttypes.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "common/mem.h"
#include "master/core.h"
#include "master/events.h"
#include "master/history.h"
#include "master/oncommit.h"
#include "master/usage.h"

static uint64_t fake_now;

static uint64_t
clock_fn(void *userdata)
{
    (void)userdata;
    return fake_now;
}

static uint64_t
now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

static int
cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

static void
make_guests(master_t *m, unsigned n, char (*ids)[SPEC_ID_LEN + 1])
{
    struct db_node node = {.name = "n1",
                           .labels = "{}",
                           .kernel = "{}",
                           .cpus = 1000000,
                           .memory = 1ULL << 40,
                           .disk = 1ULL << 50};
    db_begin(m->db);
    db_node_upsert(m->db, &node);
    for (unsigned i = 0; i < n; i++) {
        char name[32];
        snprintf(ids[i], SPEC_ID_LEN + 1, "00000000-0000-4000-8000-%012x", i);
        snprintf(name, sizeof(name), "g%u", i);
        struct db_guest g = {.id = ids[i],
                             .name = name,
                             .node = "n1",
                             .spec = "{}",
                             .generation = 1,
                             .created_ms = 1,
                             .updated_ms = 1};
        if (db_guest_insert(m->db, &g, NULL, 0) < 0) {
            fprintf(stderr, "insert: %s\n", db_errmsg(m->db));
            exit(1);
        }
    }
    db_commit(m->db);
}

/* Bytes per table and index (dbstat). */
static void
storage(const char *path, unsigned guests)
{
    sqlite3 *db;
    sqlite3_stmt *s;
    static const char sql[] =
        "SELECT name, SUM(pgsize), (SELECT COUNT(*) FROM pragma_table_info(name)) FROM dbstat "
        "WHERE name LIKE 'usage%' GROUP BY name ORDER BY name";

    sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL);
    if (sqlite3_prepare_v2(db, sql, -1, &s, NULL) != SQLITE_OK) {
        fprintf(stderr, "dbstat: %s\n", sqlite3_errmsg(db));
        return;
    }
    printf("%-20s %12s %10s %14s\n", "table/index", "bytes", "rows", "bytes/row");
    while (sqlite3_step(s) == SQLITE_ROW) {
        const char *name = (const char *)sqlite3_column_text(s, 0);
        uint64_t bytes = (uint64_t)sqlite3_column_int64(s, 1), rows = 0;
        char q[128];
        sqlite3_stmt *c;
        const char *table = strncmp(name, "usage_raw", 9) == 0     ? "usage_raw"
                            : strncmp(name, "usage_1m", 8) == 0    ? "usage_1m"
                            : strncmp(name, "usage_1h", 8) == 0    ? "usage_1h"
                            : strncmp(name, "usage_last", 10) == 0 ? "usage_last"
                                                                   : "usage_meta";
        snprintf(q, sizeof(q), "SELECT COUNT(*) FROM %s", table);
        if (sqlite3_prepare_v2(db, q, -1, &c, NULL) == SQLITE_OK && sqlite3_step(c) == SQLITE_ROW)
            rows = (uint64_t)sqlite3_column_int64(c, 0);
        sqlite3_finalize(c);
        printf("%-20s %12" PRIu64 " %10" PRIu64 " %14.1f\n", name, bytes, rows,
               rows ? (double)bytes / (double)rows : 0.0);
    }
    sqlite3_finalize(s);
    sqlite3_close(db);
    (void)guests;
}

int
main(int argc, char **argv)
{
    unsigned guests = argc > 1 ? (unsigned)atoi(argv[1]) : 1000;
    unsigned hours = argc > 2 ? (unsigned)atoi(argv[2]) : 3;
    const char *dir = argc > 3 ? argv[3] : "/var/tmp";
    char path[256], err[256];
    master_t *m = xcalloc(1, sizeof(*m));
    char(*ids)[SPEC_ID_LEN + 1] = xcalloc(guests, sizeof(*ids));
    struct guest_usage *s = xcalloc(guests, sizeof(*s));

    snprintf(path, sizeof(path), "%s/vfleet-observe-bench-%d.db", dir, (int)getpid());
    if (db_open(path, &m->db, err, sizeof(err)) < 0) {
        fprintf(stderr, "db_open: %s\n", err);
        return 1;
    }
    m->cfg.clock_ms = clock_fn;
    m->oncommit = oncommit_new(m, m->db);
    events_init(m);
    history_init(m);
    make_guests(m, guests, ids);
    fake_now = 1700000000000ULL;

    uint64_t rounds = (uint64_t)hours * 360, batch_ns = 0, commit_ns = 0, tick_ns = 0, ticks = 0;
    uint64_t max_batch = 0, max_tick = 0;
    uint64_t *round_ns = xcalloc(rounds, sizeof(*round_ns));
    for (uint64_t r = 0; r < rounds; r++) {
        fake_now += 10000;
        for (unsigned i = 0; i < guests; i++) {
            memcpy(s[i].id, ids[i], sizeof(s[i].id));
            s[i].time_ms = fake_now - (i % 1000);
            s[i].cpu_ns += 10000000ULL * (1 + i % 7);
            s[i].memory = (64ULL << 20) + (r % 13) * 4096 * (i % 50);
            s[i].rss = s[i].memory / 2;
            s[i].procs = 5 + i % 20;
            s[i].disk_bytes = (200ULL << 20) + r * 4096;
            s[i].disk_inodes = 12000 + r;
            s[i].net_rx_bytes += 1500 * (r % 31) + i;
            s[i].net_tx_bytes += 700 * (r % 17);
            s[i].net_rx_packets += r % 31 + 1;
            s[i].net_tx_packets += r % 17 + 1;
            s[i].io_write_bytes += 4096 * (r % 5);
            s[i].tcp_sockets = i % 9;
        }
        struct msg_usage mu = {.n_samples = guests, .samples = s};
        uint64_t t0 = now_ns();
        master_batch_begin(m);
        usage_report(m, "n1", &mu, UINT64_MAX);
        uint64_t t1 = now_ns();
        master_batch_commit(m);
        uint64_t t2 = now_ns();
        (void)history_tick(m, false);
        (void)master_batch_commit(m);
        uint64_t t3 = now_ns();
        round_ns[r] = t3 - t0;
        batch_ns += t1 - t0;
        commit_ns += t2 - t1;
        if (t2 - t0 > max_batch)
            max_batch = t2 - t0;
        if (t3 - t2 > 1000000) { /* a tick that did work (a commit) */
            tick_ns += t3 - t2;
            ticks++;
            if (t3 - t2 > max_tick)
                max_tick = t3 - t2;
        }
    }
    printf("%u guests, a sample each every 10 s, %u simulated hours (%" PRIu64 " rounds)\n", guests,
           hours, rounds);
    printf("usage_report: %.1f us per sample (%.2f ms per round of %u), commit %.2f ms per round,"
           " worst round %.2f ms\n",
           (double)batch_ns / 1e3 / (double)(rounds * guests), (double)batch_ns / 1e6 / rounds,
           guests, (double)commit_ns / 1e6 / rounds, (double)max_batch / 1e6);
    printf("history_tick with work (over 1 ms): %" PRIu64 " times, %.2f ms mean, %.2f ms worst\n",
           ticks, ticks ? (double)tick_ns / 1e6 / ticks : 0.0, (double)max_tick / 1e6);
    qsort(round_ns, rounds, sizeof(*round_ns), cmp_u64);
    printf("a round (samples, commit, tick): p50 %.1f ms, p90 %.1f ms, p99 %.1f ms, max %.1f ms\n",
           (double)round_ns[rounds / 2] / 1e6, (double)round_ns[rounds * 9 / 10] / 1e6,
           (double)round_ns[rounds * 99 / 100] / 1e6, (double)round_ns[rounds - 1] / 1e6);
    free(round_ns);
    printf("loop time spent on usage: %.3f%% of wall time at this rate\n",
           100.0 * (double)(batch_ns + commit_ns + tick_ns) / ((double)rounds * 10e9));
    usage_free(m);
    history_free(m);
    oncommit_destroy(&m->oncommit);
    events_free(m);
    db_destroy(&m->db);
    storage(path, guests);
    char wal[300];
    snprintf(wal, sizeof(wal), "%s-wal", path);
    unlink(wal);
    snprintf(wal, sizeof(wal), "%s-shm", path);
    unlink(wal);
    unlink(path);
    free(ids);
    free(s);
    free(m);
    return 0;
}
