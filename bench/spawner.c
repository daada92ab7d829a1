/* What one clone of the spawner costs: N user namespaces asked of it
 * (spawner_userns: its clone3 of the id-mapping helper, the helper's id maps
 * written, its fd sent back), in a process that maps what vfleet-node maps
 * (it is linked like it, every library kept), so a spawner forked from it
 * copies as much as the agent's did. Prints the spawner's mappings and the
 * wall time per request; run it under `perf stat -e task-clock` for the CPU
 * of the whole tree (this process, the spawner, the helpers).
 *
 * Usage: bench_spawner [N]     (default 2000; needs root)
 *
 * spawn.h is the same on main before the spawner had its own program, so
 * the same file built against an older tree's libraries compares the two
 * (docs/performance.md). Never run by ctest. */
#include <errno.h>
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

int
main(int argc, char **argv)
{
    int n = argc > 1 ? atoi(argv[1]) : 2000, err;
    if (n <= 0) {
        fprintf(stderr, "usage: bench_spawner [N]\n");
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
    for (int i = 0; i < n; i++) {
        fd = spawner_userns(sp, BASE, 65536);
        if (fd < 0) {
            fprintf(stderr, "bench_spawner: spawner_userns: %s\n", strerror(-fd));
            return 1;
        }
        close(fd);
    }
    clock_gettime(CLOCK_MONOTONIC, &b);
    double us = ((double)(b.tv_sec - a.tv_sec) * 1e9 + (double)(b.tv_nsec - a.tv_nsec)) / 1e3 / n;
    printf("spawner mappings=%d userns=%d wall_us_each=%.1f\n", maps, n, us);
    spawner_destroy(&sp);
    return 0;
}
