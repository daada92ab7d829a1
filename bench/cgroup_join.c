/* What placing a new process in a cgroup2 cgroup costs, the two ways a guest's
 * init can get there: forked, then writing "0" into the cgroup's
 * cgroup.procs (what init did on a pure v2 host before it was cloned into
 * its cgroup: the move takes the global cgroup_threadgroup_rwsem for
 * writing, whose RCU sync waits out a grace period when no move came just
 * before), or cloned there with clone3 CLONE_INTO_CGROUP (the read side
 * only). The children alternate, PAUSE_MS apart, so each move starts from an
 * idle lock as a guest start does; the wall time from the fork to the
 * child's exit is summed per way.
 *
 * Usage: bench_cgroup_join DIR [N]   (DIR an existing cgroup2 directory,
 *                                      N children each way, default 100; root)
 * Never run by ctest (docs/performance.md). */
#include <errno.h>
#include <fcntl.h>
#include <linux/sched.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define PAUSE_MS 30

static double
now_ms(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec * 1e3 + (double)t.tv_nsec / 1e6;
}

/* One child placed in the cgroup either way; its wall time in ms, or -1. */
static double
one(int into, int cg, const char *procs)
{
    double t0 = now_ms();
    pid_t pid;
    if (into) {
        struct clone_args a = {
            .flags = CLONE_INTO_CGROUP, .exit_signal = SIGCHLD, .cgroup = (uint64_t)cg};
        pid = (pid_t)syscall(SYS_clone3, &a, sizeof(a));
        if (pid == 0)
            _exit(0);
    } else {
        pid = fork();
        if (pid == 0) {
            int fd = open(procs, O_WRONLY | O_CLOEXEC);
            _exit(fd >= 0 && write(fd, "0", 1) == 1 ? 0 : 2);
        }
    }
    int st;
    if (pid < 0 || waitpid(pid, &st, 0) != pid || !WIFEXITED(st) || WEXITSTATUS(st) != 0)
        return -1;
    return now_ms() - t0;
}

int
main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: %s DIR [N]\n", argv[0]);
        return 2;
    }
    int n = argc > 2 ? atoi(argv[2]) : 100;
    char procs[4096];
    snprintf(procs, sizeof(procs), "%s/cgroup.procs", argv[1]);
    int cg = open(argv[1], O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (cg < 0 || n <= 0) {
        fprintf(stderr, "%s: %s\n", argv[1], cg < 0 ? strerror(errno) : "bad N");
        return 1;
    }
    double total[2] = {0, 0};
    for (int i = 0; i < 2 * n; i++) {
        usleep(PAUSE_MS * 1000);
        double t = one(i & 1, cg, procs);
        if (t < 0) {
            fprintf(stderr, "child %d failed\n", i);
            return 1;
        }
        total[i & 1] += t;
    }
    printf("fork, then \"0\" into cgroup.procs: %.3f ms a child\n", total[0] / n);
    printf("clone3 CLONE_INTO_CGROUP:          %.3f ms a child\n", total[1] / n);
    printf("(%d each, alternating, %d ms apart)\n", n, PAUSE_MS);
    return 0;
}
