/* Benchmark of guest start on the linux backend: one guest (256M disk, procs,
 * memory, cpu_max and nofile limits) started and stopped N times, each start
 * timed from the call to backend start until it returns, which is when the
 * guest's init has exec'd inside its namespaces, cgroups and overlay root on
 * the loop-mounted disk. Stop + kill + reap after each run are not timed.
 *
 * Modes (each run separately, all by default):
 *  - start:        the disk and overlay stay mounted between runs, as they do
 *                  for a created guest that is stopped (what `vfleet start`
 *                  pays on a node that has not rebooted);
 *  - start+mounts: the overlay and the disk are unmounted (rootfs_umount,
 *                  disk_umount, untimed) before each start, so the start
 *                  attaches the loop device and mounts ext4 and the overlay
 *                  again (what the first start after a host reboot pays);
 *  - start+exec:   start, then exec of /bin/true in the guest through the
 *                  backend, timed until the exec returns: a usable guest.
 *                  The exec alone is reported as "exec".
 *  - mounts-cold:  start+mounts with the host's page cache, dentries and
 *                  inodes dropped (sync, then 3 into /proc/sys/vm/drop_caches,
 *                  untimed) before each start, so that the template's files
 *                  and the agent's unmapped ones are read from the disk too,
 *                  as after a real reboot; not in the default modes (it
 *                  drops every cache on the host). bench/start.sh pairs it
 *                  with bwrap under the same drop.
 *  - parts:        on the stopped guest, the steps a start does before the
 *                  clone, each timed alone: disk mount (loop + ext4), overlay
 *                  mount, the mount checks of a start whose mounts are there,
 *                  and cgroup create + limits on the existing cgroup. They are
 *                  printed, not written to the JSON file.
 *
 * The guest is a default one: its own user namespace (a uid block far from
 * any a node on this host hands out), the seccomp filter, the console ring
 * and its reader, and the LXCFS files when LXCFS is mounted (-L DIR, default
 * /var/lib/lxcfs; the backend warns and goes on without). -P makes it
 * privileged (no user namespace), as guests were before issue 10.
 *
 * Usage: bench_start [-n RUNS] [-w WARMUP] [-m MODES] [-s STATE_DIR] [-j FILE]
 *                    [-P] [-L LXCFS_DIR] [-d PAUSE_MS] TEMPLATE_DIR
 * TEMPLATE_DIR is a built template (deploy/templates/busybox DEST); the guest
 * is made from it by name, with its parent directory as the template
 * directory. MODES is a comma list of start, mounts, mounts-cold, exec, parts (all
 * but mounts-cold by default). -j writes the
 * results as JSON ({"results":[{"command","runs","median","p90","min","max",
 * "mean","times"}]}, seconds, like hyperfine's export) for bench/start.sh.
 * -d sleeps PAUSE_MS (untimed) before each start and, in mode exec, before
 * the exec: each then finds the kernel's cgroup lock idle, as on a quiet
 * host (pause_ms says why that matters on cgroup2).
 *
 * Needs root. Creates the cgroups vfleet/<id> and one loop device, and
 * removes them (and its state dir, when it made it) at the end, also after a
 * failed run. Never run by ctest: no timed assertion anywhere. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <libgen.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "common/errtext.h"
#include "common/log.h"
#include "common/mem.h"
#include "common/mtime.h"
#include "node/backend.h"
#include "node/linux/cgroup.h"
#include "node/linux/disk.h"
#include "node/linux/idmap.h"
#include "node/linux/linux_backend.h"
#include "node/linux/mountinfo.h"
#include "node/linux/rootfs.h"
#include "proto/spec.h"

#define MiB (1ULL << 20)

enum bench_mode {
    MODE_START = 1u << 0,  /* mounts kept between runs */
    MODE_MOUNTS = 1u << 1, /* disk and overlay unmounted before each start */
    MODE_EXEC = 1u << 2,   /* start, then exec /bin/true */
    MODE_PARTS = 1u << 3,  /* the steps of a start that happen before the clone, alone */
    MODE_COLD = 1u << 4,   /* as MODE_MOUNTS, and the host's caches dropped before each start */
};

/* The series of MODE_PARTS, in the order run_parts fills them. */
enum part {
    PART_DISK_MOUNT,    /* loop attach + ext4 mount of the disk image */
    PART_OVERLAY_MOUNT, /* idmapped template (unless -P) + overlay mount on the disk */
    PART_MOUNT_CHECKS,  /* what a start does to mounts that are there: disk_info + both mounts */
    PART_CGROUP,        /* cgroup_create + cgroup_set_limits on an existing cgroup */
    PART_N
};

/* Latencies of one measured series. */
struct series {
    const char *name; /* what was timed */
    uint64_t *ns;     /* one latency per run, nanoseconds */
    unsigned n;       /* runs recorded */
};

/* Everything one benchmark process works on. */
struct bench {
    backend_t *b;            /* the linux backend */
    struct guest_spec spec;  /* the one guest */
    struct guest_ids ids;    /* its uid block; zeros with -P (privileged) */
    struct linux_config cfg; /* where its files live */
    char disk[600];          /* state_dir/data/<id>/disk, the ext4 mount */
    char root[600];          /* state_dir/data/<id>/root, the overlay */
    char lower[600];         /* state_dir/data/<id>/lower, the idmapped template */
    char image[600];         /* state_dir/data/<id>/disk.img */
    char tmpl[600];          /* the template directory */
    unsigned runs;           /* measured runs per mode */
    unsigned warmup;         /* untimed runs before them */
    unsigned pause_ms;       /* untimed sleep before each start and each exec (-d) */
};

static int
cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* Nearest-rank percentile of a sorted array: the smallest value with at least
 * p percent of the samples at or below it. */
static uint64_t
percentile(const uint64_t *sorted, unsigned n, unsigned p)
{
    unsigned rank = (n * p + 99) / 100;
    return sorted[rank ? rank - 1 : 0];
}

/* The median of a sorted array (mean of the two middle values for even n,
 * as hyperfine computes it, so the ratios compare like with like). */
static double
median(const uint64_t *sorted, unsigned n)
{
    if (n % 2)
        return (double)sorted[n / 2];
    return ((double)sorted[n / 2 - 1] + (double)sorted[n / 2]) / 2;
}

/* Stops the running guest and waits until every process of it is gone. Its
 * init is our child (the spawner clones it with CLONE_PARENT): reap it. */
static int
guest_down(struct bench *B, struct guest_runtime *rt)
{
    int r;

    if (!rt->pid)
        return 0;
    r = B->b->ops->stop(B->b, &B->spec, rt);
    if (r < 0)
        return r;
    r = B->b->ops->kill(B->b, &B->spec, rt);
    if (r < 0)
        return r;
    while (waitpid(rt->pid, NULL, 0) < 0 && errno == EINTR)
        ;
    *rt = (struct guest_runtime){0};
    return 0;
}

/* Unmounts the overlay and the disk of the stopped guest, so that the next
 * start mounts them again. */
static int
guest_umount(struct bench *B)
{
    int r = rootfs_umount(B->root);
    if (r < 0)
        return r;
    r = idmap_umount(B->lower);
    if (r < 0)
        return r;
    return disk_umount(B->disk);
}

static int
run_exec(struct bench *B, struct guest_runtime *rt)
{
    char *const argv[] = {"/bin/true", NULL};
    struct exec_request req = {.argv = argv, .timeout_ms = 5000, .max_output = 4096};
    struct exec_result res = {0};
    int r = B->b->ops->exec(B->b, &B->spec, rt, &req, &res);

    if (r == 0 && (res.exit_code != 0 || res.signal))
        r = -EIO;
    exec_result_clear(&res);
    return r;
}

/* Writes the page cache's dirty pages back, then drops it with the
 * dentries and inodes (what a reboot leaves: nothing cached). */
static int
drop_caches(void)
{
    sync();
    _cleanup_close_ int fd = open("/proc/sys/vm/drop_caches", O_WRONLY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    return write(fd, "3", 1) == 1 ? 0 : -errno;
}

/* Sleeps ms milliseconds (-d): a start or an exec that follows another
 * within a few milliseconds finds the kernel's cgroup_threadgroup_rwsem
 * fresh from a writer (rcu_sync not yet idle) and skips the RCU grace period
 * a move into a cgroup by cgroup.procs waits for when it comes alone, as on
 * a host whose starts and execs are seconds apart. */
static void
pause_ms(unsigned ms)
{
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L};
    while (ms && nanosleep(&ts, &ts) < 0 && errno == EINTR)
        ;
}

/* Runs one mode: warm-up runs, then B->runs timed ones. s[0] gets the start
 * (or start + exec) latency, s[1] the exec alone in MODE_EXEC. */
static int
run_mode(struct bench *B, enum bench_mode mode, struct series *s)
{
    struct guest_runtime rt = {0};
    int r = 0;

    for (unsigned i = 0; i < B->warmup + B->runs; i++) {
        if (mode == MODE_MOUNTS || mode == MODE_COLD) {
            r = guest_umount(B);
            if (r < 0) {
                fprintf(stderr, "unmount before run %u: %s\n", i, strerror(-r));
                return r;
            }
        }
        if (mode == MODE_COLD && (r = drop_caches()) < 0) {
            fprintf(stderr, "drop caches before run %u: %s\n", i, strerror(-r));
            return r;
        }
        pause_ms(B->pause_ms);
        uint64_t t0 = time_mono_ns();
        r = B->b->ops->start(B->b, &B->spec, &B->ids, &rt);
        uint64_t t1 = time_mono_ns();
        if (r < 0) {
            fprintf(stderr, "start %u: %s (%s)\n", i, strerror(-r), errtext_get());
            return r;
        }
        uint64_t t2 = t1;
        if (mode == MODE_EXEC && B->pause_ms) {
            /* The pause is not part of start+exec. */
            pause_ms(B->pause_ms);
            uint64_t t = time_mono_ns();
            t0 += t - t1;
            t1 = t;
        }
        if (mode == MODE_EXEC) {
            r = run_exec(B, &rt);
            t2 = time_mono_ns();
            if (r < 0) {
                fprintf(stderr, "exec %u: %s\n", i, strerror(-r));
                guest_down(B, &rt);
                return r;
            }
        }
        r = guest_down(B, &rt);
        if (r < 0) {
            fprintf(stderr, "stop %u: %s\n", i, strerror(-r));
            return r;
        }
        if (i < B->warmup)
            continue;
        s[0].ns[s[0].n++] = t2 - t0;
        if (mode == MODE_EXEC)
            s[1].ns[s[1].n++] = t2 - t1;
    }
    return 0;
}

/* Times, on the stopped guest, the steps a start does before it clones
 * init, each alone, so the start can be read as mounts + cgroup + spawn. The
 * cgroup steps use a second manager on the same hierarchies, as the backend's
 * own does. */
static int
run_parts(struct bench *B, struct series *s)
{
    _cleanup_(cgroup_mgr_destroy) cgroup_mgr_t *cg = NULL;
    struct disk_info di;
    int r = cgroup_mgr_new("/sys/fs/cgroup", "vfleet", &cg);

    if (r < 0)
        return r;
    for (unsigned i = 0; i < B->warmup + B->runs; i++) {
        uint64_t t[PART_N + 1];

        r = guest_umount(B);
        if (r < 0)
            return r;
        const char *lower = B->ids.uid_base ? B->lower : B->tmpl;
        t[0] = time_mono_ns();
        r = disk_mount(B->image, B->disk, NULL, 0);
        t[1] = time_mono_ns();
        if (r >= 0 && B->ids.uid_base) {
            /* What the backend does through its spawner, done here directly
             * (this process is single-threaded). */
            int userns = idmap_userns_fd(B->ids.uid_base, B->ids.uid_count);
            r = userns < 0 ? userns : idmap_mount(B->tmpl, userns, B->lower);
            if (userns >= 0)
                close(userns);
        }
        if (r >= 0)
            r = rootfs_mount(lower, B->disk, B->root);
        t[2] = time_mono_ns();
        if (r >= 0)
            r = disk_info(B->image, &di);
        if (r >= 0)
            r = disk_mount(B->image, B->disk, NULL, 0);
        if (r >= 0)
            r = mountinfo_is_mountpoint(B->lower);
        if (r >= 0)
            r = rootfs_mount(lower, B->disk, B->root);
        t[3] = time_mono_ns();
        if (r >= 0)
            r = cgroup_create(cg, B->spec.id);
        if (r >= 0)
            r = cgroup_set_limits(cg, B->spec.id, &B->spec.limits);
        t[4] = time_mono_ns();
        if (r < 0) {
            fprintf(stderr, "parts %u: %s\n", i, strerror(-r));
            return r;
        }
        if (i < B->warmup)
            continue;
        for (unsigned k = 0; k < PART_N; k++)
            s[k].ns[s[k].n++] = t[k + 1] - t[k];
    }
    return 0;
}

/* Removes the state directory this run made: what the backend leaves in
 * it besides the (destroyed) guest is the pristine disk images (256 MiB
 * each) and the templates' checksums. */
static void
remove_state(const char *state)
{
    _cleanup_free_ char *pristine = xasprintf("%s/pristine", state);
    DIR *d = opendir(pristine);
    for (struct dirent *e; d && (e = readdir(d));)
        if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0)
            (void)unlinkat(dirfd(d), e->d_name, 0);
    if (d)
        closedir(d);
    _cleanup_free_ char *data = xasprintf("%s/data", state);
    _cleanup_free_ char *sums = xasprintf("%s/template-sums", state);
    (void)rmdir(pristine);
    (void)rmdir(data);
    (void)unlink(sums);
    if (rmdir(state) < 0)
        fprintf(stderr, "bench_start: %s left behind: %s\n", state, strerror(errno));
}

static void
print_row(const struct series *s)
{
    _cleanup_free_ uint64_t *v = xcalloc(s->n, sizeof(*v));
    double sum = 0;

    memcpy(v, s->ns, s->n * sizeof(*v));
    qsort(v, s->n, sizeof(*v), cmp_u64);
    for (unsigned i = 0; i < s->n; i++)
        sum += (double)v[i];
    printf("%-14s %5u %10.3f %10.3f %10.3f %10.3f %10.3f\n", s->name, s->n, median(v, s->n) / 1e6,
           (double)percentile(v, s->n, 90) / 1e6, (double)v[0] / 1e6, (double)v[s->n - 1] / 1e6,
           sum / s->n / 1e6);
}

static int
write_json(const char *path, const struct series *s, unsigned n)
{
    _cleanup_fclose_ FILE *f = fopen(path, "we");

    if (!f)
        return -errno;
    fprintf(f, "{\"results\":[");
    for (unsigned k = 0; k < n; k++) {
        _cleanup_free_ uint64_t *v = xcalloc(s[k].n, sizeof(*v));
        double sum = 0;

        memcpy(v, s[k].ns, s[k].n * sizeof(*v));
        qsort(v, s[k].n, sizeof(*v), cmp_u64);
        for (unsigned i = 0; i < s[k].n; i++)
            sum += (double)v[i];
        fprintf(f,
                "%s{\"command\":\"vfleet %s\",\"runs\":%u,\"median\":%.9f,\"p90\":%.9f,"
                "\"min\":%.9f,\"max\":%.9f,\"mean\":%.9f,\"times\":[",
                k ? "," : "", s[k].name, s[k].n, median(v, s[k].n) / 1e9,
                (double)percentile(v, s[k].n, 90) / 1e9, (double)v[0] / 1e9,
                (double)v[s[k].n - 1] / 1e9, sum / s[k].n / 1e9);
        for (unsigned i = 0; i < s[k].n; i++)
            fprintf(f, "%s%.9f", i ? "," : "", (double)s[k].ns[i] / 1e9);
        fprintf(f, "]}");
    }
    fprintf(f, "]}\n");
    return fflush(f) == 0 ? 0 : -errno;
}

static int
parse_modes(const char *arg, unsigned *out)
{
    _cleanup_free_ char *copy = xstrdup(arg);
    char *save = NULL;

    *out = 0;
    for (char *t = strtok_r(copy, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
        if (strcmp(t, "start") == 0)
            *out |= MODE_START;
        else if (strcmp(t, "mounts") == 0)
            *out |= MODE_MOUNTS;
        else if (strcmp(t, "mounts-cold") == 0)
            *out |= MODE_COLD;
        else if (strcmp(t, "exec") == 0)
            *out |= MODE_EXEC;
        else if (strcmp(t, "parts") == 0)
            *out |= MODE_PARTS;
        else
            return -EINVAL;
    }
    return *out ? 0 : -EINVAL;
}

static void
usage(void)
{
    fprintf(stderr,
            "usage: bench_start [-n RUNS] [-w WARMUP] [-m start,mounts,mounts-cold,exec,parts] "
            "[-s STATE_DIR] [-j FILE] [-P] [-L LXCFS_DIR] [-d PAUSE_MS] TEMPLATE_DIR\n");
}

/* A guest with a few limits of each kind the start applies: the pids,
 * memory and cpu controllers and an rlimit. */
static void
bench_spec(struct guest_spec *s, const char *template_name)
{
    memset(s, 0, sizeof(*s));
    snprintf(s->id, sizeof(s->id), "00000000-0000-4000-8000-%012x", (unsigned)getpid());
    snprintf(s->name, sizeof(s->name), "bench-start-%u", (unsigned)getpid());
    strscpy(s->template_name, template_name, sizeof(s->template_name));
    s->generation = 1;
    s->limits.disk = 256 * MiB;
    s->limits.procs = 256;
    s->limits.memory = 256 * MiB;
    s->limits.cpu_max = 1000;
    s->limits.nofile = 1024;
}

int
main(int argc, char **argv)
{
    struct bench B = {.runs = 60, .warmup = 5};
    unsigned modes = MODE_START | MODE_MOUNTS | MODE_EXEC | MODE_PARTS;
    const char *state = NULL, *json = NULL, *field = NULL;
    char made_state[64] = "";
    int opt, r, err = 0, rc = 1;

    /* The default guest: its own user namespace (a block far from any
     * guest a node on this host may hold), the syscall filter (always) and
     * LXCFS when mounted. */
    B.ids = (struct guest_ids){0xF0000000u, BACKEND_UID_BLOCK};
    while ((opt = getopt(argc, argv, "n:w:m:s:j:PL:d:h")) != -1) {
        switch (opt) {
        case 'n':
            B.runs = (unsigned)strtoul(optarg, NULL, 10);
            break;
        case 'w':
            B.warmup = (unsigned)strtoul(optarg, NULL, 10);
            break;
        case 'm':
            if (parse_modes(optarg, &modes) < 0) {
                usage();
                return 2;
            }
            break;
        case 's':
            state = optarg;
            break;
        case 'j':
            json = optarg;
            break;
        case 'P':
            B.ids = (struct guest_ids){0};
            break;
        case 'd':
            B.pause_ms = (unsigned)strtoul(optarg, NULL, 10);
            break;
        case 'L':
            if (strscpy(B.cfg.lxcfs, optarg, sizeof(B.cfg.lxcfs)) < 0) {
                usage();
                return 2;
            }
            break;
        default:
            usage();
            return 2;
        }
    }
    if (optind + 1 != argc || B.runs == 0 || B.runs > 100000 || B.warmup > 100000) {
        usage();
        return 2;
    }
    if (geteuid() != 0) {
        fprintf(stderr, "bench_start: needs root (cgroups, loop devices, mounts)\n");
        return 2;
    }
    log_setup("bench_start", LOG_SINK_STDERR, LOG_WARNING);

    char tpl_path[512], tpl_dir[512], tpl_name[512];
    if (!realpath(argv[optind], tpl_path)) {
        fprintf(stderr, "template %s: %s\n", argv[optind], strerror(errno));
        return 2;
    }
    strscpy(tpl_dir, tpl_path, sizeof(tpl_dir));
    strscpy(tpl_name, tpl_path, sizeof(tpl_name));
    strscpy(B.cfg.templates, dirname(tpl_dir), sizeof(B.cfg.templates));
    bench_spec(&B.spec, basename(tpl_name));
    if (spec_validate(&B.spec, &field) < 0) {
        fprintf(stderr, "bad guest spec (field %s): is the template's name a valid name?\n", field);
        return 2;
    }
    if (!state) {
        strscpy(made_state, "/var/tmp/vfleet-bench-start.XXXXXX", sizeof(made_state));
        if (!mkdtemp(made_state)) {
            fprintf(stderr, "mkdtemp: %s\n", strerror(errno));
            return 1;
        }
        state = made_state;
    }
    strscpy(B.cfg.state_dir, state, sizeof(B.cfg.state_dir));
    snprintf(B.disk, sizeof(B.disk), "%s/data/%s/disk", state, B.spec.id);
    snprintf(B.root, sizeof(B.root), "%s/data/%s/root", state, B.spec.id);
    snprintf(B.lower, sizeof(B.lower), "%s/data/%s/lower", state, B.spec.id);
    snprintf(B.image, sizeof(B.image), "%s/data/%s/disk.img", state, B.spec.id);
    strscpy(B.tmpl, tpl_path, sizeof(B.tmpl));

    /* Before any thread: the backend forks its spawner. */
    B.b = linux_backend_new(&B.cfg, &err);
    if (!B.b) {
        fprintf(stderr, "linux backend: %s\n", strerror(-err));
        goto out;
    }
    struct node_facts facts;
    B.b->ops->probe(B.b, &facts);
    printf("bench_start: kernel %s, cgroups %s, %u cpus, template %s, runs %u (+%u warm-up)\n",
           facts.kernel, facts.cgroup, facts.cpus / 1000, tpl_path, B.runs, B.warmup);
    printf("guest: disk 256M (ext4 on loop), procs 256, memory 256M, cpu_max 1000m, "
           "nofile 1024, init /sbin/init, %s, seccomp filter, LXCFS %s\n",
           B.ids.uid_base ? "user namespace" : "privileged (no user namespace)",
           B.cfg.lxcfs[0] ? B.cfg.lxcfs : "at the default place when mounted");

    r = B.b->ops->create(B.b, &B.spec, &B.ids);
    if (r < 0) {
        fprintf(stderr, "create: %s (%s)\n", strerror(-r), errtext_get());
        goto out;
    }

    struct series s[5] = {{0}}, parts[PART_N] = {
                                    {.name = "disk-mount"},
                                    {.name = "overlay-mount"},
                                    {.name = "mount-checks"},
                                    {.name = "cgroup+limits"},
                                };
    unsigned ns = 0;
    for (unsigned i = 0; i < ARRAY_SIZE(s); i++)
        s[i].ns = xcalloc(B.runs, sizeof(uint64_t));
    for (unsigned i = 0; i < PART_N; i++)
        parts[i].ns = xcalloc(B.runs, sizeof(uint64_t));
    printf("%-14s %5s %10s %10s %10s %10s %10s\n", "measure", "runs", "median_ms", "p90_ms",
           "min_ms", "max_ms", "mean_ms");
    static const struct {
        enum bench_mode mode;
        const char *name;
    } plan[] = {{MODE_START, "start"},
                {MODE_MOUNTS, "start+mounts"},
                {MODE_COLD, "start+mounts, caches dropped"},
                {MODE_EXEC, "start+exec"}};
    for (unsigned k = 0; k < ARRAY_SIZE(plan); k++) {
        if (!(modes & plan[k].mode))
            continue;
        s[ns].name = plan[k].name;
        if (plan[k].mode == MODE_EXEC)
            s[ns + 1].name = "exec";
        r = run_mode(&B, plan[k].mode, &s[ns]);
        if (r < 0)
            goto free_series;
        print_row(&s[ns]);
        if (plan[k].mode == MODE_EXEC)
            print_row(&s[++ns]);
        ns++;
    }
    if (modes & MODE_PARTS) {
        r = run_parts(&B, parts);
        if (r < 0)
            goto free_series;
        printf(
            "steps of a start, alone (the rest of start is the clone, init's setup and exec):\n");
        for (unsigned i = 0; i < PART_N; i++)
            print_row(&parts[i]);
    }
    if (json) {
        r = write_json(json, s, ns);
        if (r < 0) {
            fprintf(stderr, "%s: %s\n", json, strerror(-r));
            goto free_series;
        }
    }
    rc = 0;
free_series:
    for (unsigned i = 0; i < ARRAY_SIZE(s); i++)
        free(s[i].ns);
    for (unsigned i = 0; i < PART_N; i++)
        free(parts[i].ns);
out:
    if (B.b) {
        struct guest_runtime none = {0};
        /* Whatever failed, take the guest down again: cgroups, mounts, loop
         * device and image. A kill of a stopped guest is a no-op. */
        B.b->ops->kill(B.b, &B.spec, &none);
        r = B.b->ops->destroy(B.b, &B.spec);
        if (r < 0) {
            fprintf(stderr, "destroy: %s: remove %s/data/%s by hand\n", strerror(-r), state,
                    B.spec.id);
            rc = 1;
        }
        B.b->ops->free(B.b);
    }
    if (made_state[0])
        remove_state(made_state);
    return rc;
}
