/* What one clone of the spawner costs: N user namespaces asked of it
 * (spawner_userns: its clone3 of the id-mapping helper, the helper's id maps
 * written, its fd sent back), in a process that maps what vfleet-node maps
 * (it is linked like it, every library kept), so a spawner forked from it
 * copies as much as the agent's did. Prints the spawner's mappings and the
 * wall time per request; run it under `perf stat -e task-clock` for the CPU
 * of the whole tree (this process, the spawner, the helpers).
 *
 * Usage: bench_spawner [N [THREADS]]   (default 2000 and 1; needs root)
 *
 * With THREADS > 1, that many threads share the spawner, each asking N /
 * THREADS in turn, as the agent's worker threads do: the rate then shows
 * what the exchange serializes besides the spawner's own work (a lock held
 * by one caller from its send to the read of its answer leaves the spawner
 * idle while the next caller wakes up).
 *
 * spawn.h is the same on main before the spawner had its own program, so
 * the same file built against an older tree's libraries compares the two
 * (docs/performance.md). Never run by ctest. */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "node/linux/spawn.h"

#define BASE 0x70000000u /* host ids far from any node's uid blocks */

static int
count_lines(const char *path)
{
    FILE *f = fopen(path, "re");
    if (!f)
        return -errno;
    int n = 0, c;
    while ((c = getc(f)) != EOF)
        n += c == '\n';
    fclose(f);
    return n;
}

/* One thread's share of the requests. */
struct share {
    spawner_t *sp; /* the spawner */
    int n;         /* requests to make */
    int failed;    /* the first error, 0 = none */
};

static void *
ask(void *arg)
{
    struct share *s = arg;
    for (int i = 0; i < s->n; i++) {
        int fd = spawner_userns(s->sp, BASE, 65536);
        if (fd < 0) {
            s->failed = fd;
            break;
        }
        close(fd);
    }
    return NULL;
}

int
main(int argc, char **argv)
{
    int n = argc > 1 ? atoi(argv[1]) : 2000, err;
    int threads = argc > 2 ? atoi(argv[2]) : 1;
    if (n <= 0 || threads <= 0 || threads > 64) {
        fprintf(stderr, "usage: bench_spawner [N [THREADS]]\n");
        return 2;
    }
    spawner_t *sp = spawner_new(&err);
    if (!sp) {
        fprintf(stderr, "bench_spawner: spawner_new: %s\n", strerror(-err));
        return 1;
    }
    /* One answer first: the spawner is serving (its program runs). */
    int fd = spawner_userns(sp, BASE, 65536);
    if (fd < 0) {
        fprintf(stderr, "bench_spawner: spawner_userns: %s\n", strerror(-fd));
        return 1;
    }
    close(fd);
    char path[64];
    snprintf(path, sizeof(path), "/proc/%d/maps", (int)spawner_pid(sp));
    int maps = count_lines(path);
    struct timespec a, b;
    clock_gettime(CLOCK_MONOTONIC, &a);
    struct share shares[64];
    pthread_t tid[64];
    for (int t = 0; t < threads; t++) {
        shares[t] = (struct share){.sp = sp, .n = n / threads + (t < n % threads)};
        if (pthread_create(&tid[t], NULL, ask, &shares[t]) != 0) {
            fprintf(stderr, "bench_spawner: pthread_create failed\n");
            return 1;
        }
    }
    for (int t = 0; t < threads; t++) {
        pthread_join(tid[t], NULL);
        if (shares[t].failed) {
            fprintf(stderr, "bench_spawner: spawner_userns: %s\n", strerror(-shares[t].failed));
            return 1;
        }
    }
    clock_gettime(CLOCK_MONOTONIC, &b);
    double us = ((double)(b.tv_sec - a.tv_sec) * 1e9 + (double)(b.tv_nsec - a.tv_nsec)) / 1e3 / n;
    printf("spawner mappings=%d userns=%d threads=%d wall_us_each=%.1f\n", maps, n, threads, us);
    spawner_destroy(&sp);
    return 0;
}
