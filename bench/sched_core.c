/* Benchmark of the scheduler core alone: sched_place on an in-memory index
 * of 5,000 nodes, placing 100,000 guests (sizes vary, every third guest
 * shares an anti-affinity group with its two neighbours). Prints placements
 * per second, p50/p99/max latency and the mean number of nodes evaluated,
 * for binpack and spread. No SQLite, no network: the end-to-end benchmark is
 * bench/sched. Usage: sched_core [nodes] [guests] */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/mem.h"
#include "master/sched.h"

#define GiB (1ULL << 30)
#define MiB (1ULL << 20)

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

static int
run(enum sched_algo algo, unsigned nodes, unsigned guests)
{
    struct sched_config c;
    struct sched_capacity cap = {
        .cpu = 32000, .memory = 256 * GiB, .disk = 4000 * GiB, .max_guests = 400};
    _cleanup_free_ uint64_t *lat = xcalloc(guests, sizeof(*lat));
    struct sched_result res;
    uint64_t evaluated = 0, t0, total;
    unsigned used = 0;
    char name[32], group[32];
    sched_t *s;

    sched_config_default(&c);
    c.algo = algo;
    s = sched_new(&c);
    for (unsigned i = 0; i < nodes; i++) {
        struct sched_label lab[] = {{"zone", i % 3 == 0 ? "a" : i % 3 == 1 ? "b" : "c"}};
        snprintf(name, sizeof(name), "node%05u", i);
        sched_node_upsert(s, name, &cap, lab, 1);
    }
    total = now_ns();
    for (unsigned i = 0; i < guests; i++) {
        struct sched_request rq = {
            .res = {.cpu = 250 + (i % 4) * 250,
                    .memory = (256 + (i % 7) * 256) * MiB,
                    .disk = (5 + i % 11) * GiB,
                    .addrs = 1},
            .algo = SCHED_DEFAULT,
        };
        snprintf(group, sizeof(group), "g%u", i / 3);
        rq.group = group;
        t0 = now_ns();
        int r = sched_place(s, &rq, &res);
        lat[i] = now_ns() - t0;
        if (r < 0) {
            fprintf(stderr, "placement %u failed: %s\n", i, strerror(-r));
            sched_destroy(&s);
            return 1;
        }
        evaluated += res.nodes_evaluated;
    }
    total = now_ns() - total;
    for (unsigned i = 0; i < nodes; i++) {
        struct sched_node_info info;
        snprintf(name, sizeof(name), "node%05u", i);
        if (sched_node_info(s, name, &info) == 0 && info.guests > 0)
            used++;
    }
    qsort(lat, guests, sizeof(*lat), cmp_u64);
    printf("%-8s nodes=%u guests=%u  %.0f placements/s  p50=%.1fus p99=%.1fus max=%.1fus  "
           "mean nodes evaluated=%.1f  nodes holding guests=%u\n",
           sched_algo_name(algo), nodes, guests, guests / (total / 1e9), lat[guests / 2] / 1e3,
           lat[(size_t)(guests * 0.99)] / 1e3, lat[guests - 1] / 1e3, (double)evaluated / guests,
           used);
    sched_destroy(&s);
    return 0;
}

int
main(int argc, char **argv)
{
    unsigned nodes = argc > 1 ? (unsigned)atoi(argv[1]) : 5000;
    unsigned guests = argc > 2 ? (unsigned)atoi(argv[2]) : 100000;

    if (nodes == 0 || guests == 0) {
        fprintf(stderr, "usage: sched_core [nodes] [guests]\n");
        return 2;
    }
    return run(SCHED_BINPACK, nodes, guests) || run(SCHED_SPREAD, nodes, guests);
}
