/* What one clone of the spawner costs: N user namespaces asked of it
 * (spawner_userns: its clone3 of the id-mapping helper, the helper's id maps
 * written, its fd sent back), in a process that maps what vfleet-node maps
 * (it is linked like it, every library kept), so a spawner forked from it
 * copies as much as the agent's did. Prints the spawner's mappings and the
 * wall time per request; run it under `perf stat -e task-clock` for the CPU
 * of the whole tree (this process, the spawner, the helpers).
 *
 * Usage: bench_spawner [N [THREADS [MODE]]]   (default 2000, 1, userns; needs root)
 *
 * MODE exec asks for N execs instead (spawner_exec, `/bin/true -e
 * <48 bytes>`, the size of an ordinary command): "exec-esrch" at a pid that
 * is no guest's (this process with a wrong start time: the request's round
 * trip and its checks, the spawner forks nothing), "exec" at this process
 * itself as the "guest" (its start time right: the helper is forked, joins
 * this process's namespaces, which are the host's, and runs /bin/true there
 * with the guest's bounding set and syscall filter: a real exec, without a
 * guest). "exec-long" is "exec" with a command as long as the protocol
 * allows: /bin/true and 255 arguments of 4096 bytes (main refuses it).
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

#include "node/linux/proc.h"
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

/* MODE: 0 userns, 1 exec-esrch, 2 exec, 3 exec-long. */
static int mode;
static uint64_t self_start;
static char *long_argv[258]; /* exec-long: /bin/true and 255 arguments of 4096 bytes */

static int
exec_one(spawner_t *sp)
{
    struct spawn_config cfg = {0};
    char *argv[] = {"/bin/true", "-e", "0123456789012345678901234567890123456789012345", NULL};
    struct exec_request req = {.argv = mode == 3 ? long_argv : argv};
    struct exec_result res;
    int r = spawner_exec(sp, &cfg, getpid(), mode == 1 ? self_start + 1 : self_start, &req, &res);
    if (mode == 1)
        return r == -ESRCH ? 0 : r < 0 ? r : -EPROTO;
    if (r < 0)
        return r;
    r = res.exit_code == 0 ? 0 : -EPROTO;
    if (r < 0)
        fprintf(stderr, "bench_spawner: exit %d: %s\n", res.exit_code, res.err);
    exec_result_clear(&res);
    return r;
}

static void *
ask(void *arg)
{
    struct share *s = arg;
    for (int i = 0; i < s->n; i++) {
        if (mode) {
            int r = exec_one(s->sp);
            if (r < 0) {
                s->failed = r;
                break;
            }
            continue;
        }
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
    const char *what = argc > 3 ? argv[3] : "userns";
    mode = !strcmp(what, "exec-esrch")  ? 1
           : !strcmp(what, "exec")      ? 2
           : !strcmp(what, "exec-long") ? 3
                                        : 0;
    if (n <= 0 || threads <= 0 || threads > 64 || (!mode && strcmp(what, "userns"))) {
        fprintf(stderr, "usage: bench_spawner [N [THREADS [userns|exec-esrch|exec|exec-long]]]\n");
        return 2;
    }
    long_argv[0] = "/bin/true";
    for (int i = 1; i < 256; i++) {
        long_argv[i] = malloc(4097);
        if (!long_argv[i])
            return 1;
        memset(long_argv[i], 'a' + i % 26, 4096);
        long_argv[i][4096] = '\0';
    }
    if (mode && proc_start_time(getpid(), &self_start) < 0) {
        fprintf(stderr, "bench_spawner: no start time\n");
        return 1;
    }
    spawner_t *sp = spawner_new(&err);
    if (!sp) {
        fprintf(stderr, "bench_spawner: spawner_new: %s\n", strerror(-err));
        return 1;
    }
    /* One answer first: the spawner is serving (its program runs). An
     * exec mode's is an exec (under valgrind, which has no clone3, the
     * user namespace would fail). */
    int fd = mode ? exec_one(sp) : spawner_userns(sp, BASE, 65536);
    if (fd < 0) {
        fprintf(stderr, "bench_spawner: %s: %s\n", what, strerror(-fd));
        return 1;
    }
    if (!mode)
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
            fprintf(stderr, "bench_spawner: %s: %s\n", what, strerror(-shares[t].failed));
            return 1;
        }
    }
    clock_gettime(CLOCK_MONOTONIC, &b);
    double us = ((double)(b.tv_sec - a.tv_sec) * 1e9 + (double)(b.tv_nsec - a.tv_nsec)) / 1e3 / n;
    printf("spawner mappings=%d %s=%d threads=%d wall_us_each=%.1f\n", maps, what, n, threads, us);
    spawner_destroy(&sp);
    return 0;
}
