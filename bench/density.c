/* Density on one host, the linux backend alone: creates and starts N guests
 * one after the other (each its own user namespace, 64M ext4 disk on a loop
 * device, overlay root, cgroups, the syscall filter, LXCFS when mounted) and
 * prints, for every STEP guests, the mean time of a create and of a start,
 * wall clock and CPU, and the size of the agent's mount table then. Shows
 * whether a start costs more with the guests already running. CPU, which a
 * loaded machine does not inflate as it does the wall clock: a create's is
 * ours and mkfs's (a reaped child); a start's is ours, the spawner's and the
 * new guest init's until its start returned (/proc/PID/schedstat, in ns: the
 * kernel's copy of a mount table is charged to the process that clones, its
 * detach to the child). At the end, the CPU time of one
 * mountinfo_find (what every start does twice) with the table at its
 * largest. Then stops and destroys them all.
 * The _rq columns: the time the same processes waited for a CPU while
 * runnable (schedstat's second field); what is left of the wall clock past
 * CPU and run-queue wait was spent blocked (I/O, locks, RCU grace periods).
 * Not a test; bench/density.sh runs it next to an older build.
 *
 * Usage: bench_density [-n GUESTS] [-k STEP] [-s STATE_DIR] [-c CPU_MILLICORES] TEMPLATE_DIR */
#include <dirent.h>
#include <errno.h>
#include <stdbool.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "common/errtext.h"
#include "common/log.h"
#include "common/mem.h"
#include "node/linux/linux_backend.h"
#include "node/linux/mountinfo.h"
#include "proto/spec.h"

#define MiB (1ULL << 20)

static uint64_t
now_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

static uint64_t
cpu_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

/* CPU µs of one look-up of the first guest's disk mount, over 200. */
static double
lookup_us(const char *state, const struct guest_spec *g)
{
    char path[600];
    struct mountinfo_entry e = {0};

    snprintf(path, sizeof(path), "%s/data/%s/disk", state, g->id);
    uint64_t t = cpu_ns();
    for (unsigned i = 0; i < 200; i++) {
        if (mountinfo_find(path, &e) < 0)
            return -1;
        mountinfo_entry_clear(&e);
    }
    return (double)(cpu_ns() - t) / 200 / 1000;
}

/* CPU ns of the reaped children (mkfs and other helpers). */
static uint64_t
children_ns(void)
{
    struct rusage ru;

    if (getrusage(RUSAGE_CHILDREN, &ru) < 0)
        return 0;
    return ((uint64_t)ru.ru_utime.tv_sec + (uint64_t)ru.ru_stime.tv_sec) * 1000000000ULL +
           ((uint64_t)ru.ru_utime.tv_usec + (uint64_t)ru.ru_stime.tv_usec) * 1000ULL;
}

/* CPU ns a live process has run (/proc/PID/schedstat's first field), 0 when
 * gone; with wait, also the ns it has waited on a run queue (the second:
 * runnable, but the CPUs busy with others). */
static uint64_t
sched_ns(pid_t pid, uint64_t *wait)
{
    char path[64];
    unsigned long long ns = 0, rq = 0;

    snprintf(path, sizeof(path), "/proc/%d/schedstat", (int)pid);
    FILE *f = fopen(path, "re");
    if (f && fscanf(f, "%llu %llu", &ns, &rq) != 2)
        ns = rq = 0;
    if (f)
        fclose(f);
    if (wait)
        *wait += rq;
    return ns;
}

static uint64_t
run_ns(pid_t pid)
{
    return sched_ns(pid, NULL);
}

/* Run-queue wait ns of us and the spawner so far. */
static uint64_t
queued_ns(pid_t spawner)
{
    uint64_t rq = 0;

    (void)sched_ns(getpid(), &rq);
    if (spawner)
        (void)sched_ns(spawner, &rq);
    return rq;
}

/* The backend's spawner: our child named vfleet-spawner (the backend's
 * interface does not name it, and the old build's has the same name). */
static pid_t
spawner_of_ours(void)
{
    char path[64], list[4096], comm[64];
    snprintf(path, sizeof(path), "/proc/self/task/%d/children", (int)getpid());
    FILE *f = fopen(path, "re");
    if (!f)
        return 0;
    size_t len = fread(list, 1, sizeof(list) - 1, f);
    fclose(f);
    list[len] = '\0';
    for (char *tok = strtok(list, " \n"); tok; tok = strtok(NULL, " \n")) {
        pid_t pid = (pid_t)atoi(tok);
        snprintf(path, sizeof(path), "/proc/%d/comm", (int)pid);
        f = fopen(path, "re");
        if (!f)
            continue;
        bool is = fgets(comm, sizeof(comm), f) && strcmp(comm, "vfleet-spawner\n") == 0;
        fclose(f);
        if (is)
            return pid;
    }
    return 0;
}

static unsigned
mount_count(void)
{
    FILE *f = fopen("/proc/self/mountinfo", "re");
    unsigned n = 0;
    int c;

    if (!f)
        return 0;
    while ((c = getc(f)) != EOF)
        n += c == '\n';
    fclose(f);
    return n;
}

/* MemAvailable of /proc/meminfo in kB, 0 when unreadable. */
static uint64_t
mem_available_kb(void)
{
    char line[128];
    unsigned long long kb = 0;
    FILE *f = fopen("/proc/meminfo", "re");

    if (!f)
        return 0;
    while (fgets(line, sizeof(line), f))
        if (sscanf(line, "MemAvailable: %llu kB", &kb) == 1)
            break;
    fclose(f);
    return kb;
}

static void
guest_spec_of(struct guest_spec *s, unsigned i, const char *template_name, uint32_t cpu_max)
{
    memset(s, 0, sizeof(*s));
    snprintf(s->id, sizeof(s->id), "00000000-0000-4000-8%03x-%012x", i & 0xfff, (unsigned)getpid());
    snprintf(s->name, sizeof(s->name), "bench-density-%u", i);
    strscpy(s->template_name, template_name, sizeof(s->template_name));
    s->generation = 1;
    s->limits.disk = 64 * MiB;
    s->limits.procs = 64;
    s->limits.memory = 64 * MiB;
    s->limits.cpu_max = cpu_max;
    s->limits.nofile = 1024;
}

int
main(int argc, char **argv)
{
    unsigned n = 200, step = 50;
    uint32_t cpu_max = 10; /* millicores: 0.01 core, as a dense host's small guests */
    const char *state = NULL, *field = NULL;
    char made_state[64] = "";
    struct linux_config cfg = {0};
    int opt, err = 0, rc = 1;

    while ((opt = getopt(argc, argv, "n:k:s:c:")) != -1) {
        if (opt == 'n')
            n = (unsigned)strtoul(optarg, NULL, 10);
        else if (opt == 'k')
            step = (unsigned)strtoul(optarg, NULL, 10);
        else if (opt == 's')
            state = optarg;
        else if (opt == 'c')
            cpu_max = (uint32_t)strtoul(optarg, NULL, 10);
        else
            return 2;
    }
    if (optind + 1 != argc || !n || n > 4000 || !step) {
        fprintf(stderr, "usage: bench_density [-n GUESTS] [-k STEP] [-s STATE_DIR] [-c "
                        "CPU_MILLICORES] TEMPLATE\n");
        return 2;
    }
    if (geteuid() != 0) {
        fprintf(stderr, "bench_density: needs root\n");
        return 2;
    }
    log_setup("bench_density", LOG_SINK_STDERR, LOG_WARNING);
    char tpl_path[512], tpl_dir[512], tpl_name[512];
    if (!realpath(argv[optind], tpl_path)) {
        fprintf(stderr, "template %s: %s\n", argv[optind], strerror(errno));
        return 2;
    }
    strscpy(tpl_dir, tpl_path, sizeof(tpl_dir));
    strscpy(tpl_name, tpl_path, sizeof(tpl_name));
    strscpy(cfg.templates, dirname(tpl_dir), sizeof(cfg.templates));
    if (!state) {
        strscpy(made_state, "/var/tmp/vfleet-bench-density.XXXXXX", sizeof(made_state));
        if (!mkdtemp(made_state))
            return fprintf(stderr, "mkdtemp: %s\n", strerror(errno)), 1;
        state = made_state;
    }
    strscpy(cfg.state_dir, state, sizeof(cfg.state_dir));

    struct guest_spec *specs = xcalloc(n, sizeof(*specs));
    struct guest_runtime *rts = xcalloc(n, sizeof(*rts));
    /* Each guest's create and start wall clock, ns: the 10th against the last. */
    uint64_t *each_create = xcalloc(n, sizeof(*each_create));
    uint64_t *each_start = xcalloc(n, sizeof(*each_start));
    uint64_t avail0 = mem_available_kb();
    unsigned made = 0;
    backend_t *b = linux_backend_new(&cfg, &err);
    if (!b) {
        fprintf(stderr, "linux backend: %s\n", strerror(-err));
        goto out;
    }
    printf("%-9s %10s %10s %10s %10s %10s %10s %10s %7s\n", "guests", "create_ms", "start_ms",
           "total_ms", "create_cpu", "start_cpu", "create_rq", "start_rq", "mounts");
    uint64_t t_create = 0, t_start = 0, c_create = 0, c_start = 0, q_create = 0, q_start = 0;
    /* Just forked, it may not have named itself yet. */
    pid_t spawner = 0;
    for (int i = 0; i < 100 && !(spawner = spawner_of_ours()); i++)
        usleep(10000);
    if (!spawner)
        fprintf(stderr, "bench_density: no spawner found, its CPU is not counted\n");
    for (unsigned i = 0; i < n; i++) {
        struct guest_ids ids = {0xF0000000u + i * BACKEND_UID_BLOCK, BACKEND_UID_BLOCK};
        guest_spec_of(&specs[i], i, basename(tpl_name), cpu_max);
        if (spec_validate(&specs[i], &field) < 0) {
            fprintf(stderr, "bad guest spec (field %s)\n", field);
            goto out;
        }
        uint64_t c0 = cpu_ns() + children_ns();
        uint64_t q0 = queued_ns(spawner);
        uint64_t t0 = now_ns();
        int r = b->ops->create(b, &specs[i], &ids);
        uint64_t t1 = now_ns();
        uint64_t c1 = cpu_ns() + children_ns();
        uint64_t s1 = spawner ? run_ns(spawner) : 0;
        uint64_t q1 = queued_ns(spawner);
        if (r < 0) {
            fprintf(stderr, "create %u: %s (%s)\n", i, strerror(-r), errtext_get());
            goto out;
        }
        made = i + 1;
        r = b->ops->start(b, &specs[i], &ids, &rts[i]);
        uint64_t t2 = now_ns();
        uint64_t c2 = cpu_ns() + children_ns() + (spawner ? run_ns(spawner) - s1 : 0);
        uint64_t q2 = queued_ns(spawner);
        if (r == 0)
            c2 += sched_ns(rts[i].pid, &q2);
        if (r < 0) {
            fprintf(stderr, "start %u: %s (%s)\n", i, strerror(-r), errtext_get());
            goto out;
        }
        t_create += t1 - t0, t_start += t2 - t1;
        each_create[i] = t1 - t0, each_start[i] = t2 - t1;
        c_create += c1 - c0, c_start += c2 - c1;
        q_create += q1 - q0, q_start += q2 - q1;
        if ((i + 1) % step == 0) {
            printf("%4u-%-4u %10.2f %10.2f %10.2f %10.2f %10.2f %10.2f %10.2f %7u\n", i + 2 - step,
                   i + 1, t_create / 1e6 / step, t_start / 1e6 / step,
                   (t_create + t_start) / 1e6 / step, c_create / 1e6 / step, c_start / 1e6 / step,
                   q_create / 1e6 / step, q_start / 1e6 / step, mount_count());
            fflush(stdout);
            t_create = t_start = c_create = c_start = q_create = q_start = 0;
        }
    }
    printf("mountinfo_find with %u mounts: %.1f us CPU\n", mount_count(),
           lookup_us(state, &specs[0]));
    if (n >= 10) {
        unsigned k = n < 20 ? n / 2 : 10, last = n - 1;
        uint64_t first_c = 0, last_c = 0, first_s = 0, last_s = 0;
        for (unsigned i = 0; i < k; i++) {
            first_c += each_create[i], last_c += each_create[n - k + i];
            first_s += each_start[i], last_s += each_start[n - k + i];
        }
        printf("create wall: guest 10 %.2f ms, guest %u %.2f ms (%.2fx); "
               "mean of the first %u %.2f ms, of the last %u %.2f ms (%.2fx)\n",
               each_create[9] / 1e6, n, each_create[last] / 1e6,
               (double)each_create[last] / (double)each_create[9], k, first_c / 1e6 / k, k,
               last_c / 1e6 / k, (double)last_c / (double)first_c);
        printf("start wall: guest 10 %.2f ms, guest %u %.2f ms (%.2fx); "
               "mean of the first %u %.2f ms, of the last %u %.2f ms (%.2fx)\n",
               each_start[9] / 1e6, n, each_start[last] / 1e6,
               (double)each_start[last] / (double)each_start[9], k, first_s / 1e6 / k, k,
               last_s / 1e6 / k, (double)last_s / (double)first_s);
    }
    uint64_t avail1 = mem_available_kb();
    if (avail0 > avail1)
        printf("host memory: MemAvailable fell %.1f MiB, %.0f KiB per guest\n",
               (avail0 - avail1) / 1024.0, (double)(avail0 - avail1) / n);
    /* The figures before the teardown, which takes longer than the creates. */
    fflush(stdout);
    rc = 0;
out:
    for (unsigned i = made; b && i-- > 0;) {
        b->ops->kill(b, &specs[i], &rts[i]);
        if (b->ops->destroy(b, &specs[i]) < 0) {
            fprintf(stderr, "destroy: remove %s/data/%s by hand\n", state, specs[i].id);
            rc = 1;
        }
    }
    if (b)
        b->ops->free(b);
    if (made_state[0]) {
        char data[128], pristine[128], file[400];
        snprintf(data, sizeof(data), "%s/data", made_state);
        rmdir(data);
        /* The new build's pristine disk images (disk_pristine.h). */
        snprintf(pristine, sizeof(pristine), "%s/pristine", made_state);
        DIR *d = opendir(pristine);
        for (struct dirent *e; d && (e = readdir(d));) {
            snprintf(file, sizeof(file), "%s/%s", pristine, e->d_name);
            if (e->d_name[0] != '.' || strncmp(e->d_name, ".ext4-", 6) == 0)
                unlink(file);
        }
        if (d)
            closedir(d);
        rmdir(pristine);
        rmdir(made_state);
    }
    free(specs);
    free(rts);
    free(each_create);
    free(each_start);
    return rc;
}
