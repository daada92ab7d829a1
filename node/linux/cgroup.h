/* The cgroup layer of the linux backend: one cgroup per guest, its limits,
 * its usage, and killing everything in it.
 *
 * One interface, two drivers picked at start-up by cgroup_mgr_new():
 *   - v1: every controller in its own hierarchy under <root>/<controller>
 *     (cpu, cpuacct, cpuset, memory, pids, blkio, devices, freezer; a
 *     combined mount such as "cpu,cpuacct" reached through a symlink counts
 *     once). A guest is <root>/<controller>/<prefix>/<id> in each of them.
 *   - v2: one unified hierarchy at <root>; a guest is <root>/<prefix>/<id>,
 *     with the controllers it needs enabled in the parents' subtree_control.
 * A hybrid host (v1 controllers plus an empty cgroup2 at <root>/unified)
 * uses the v1 driver: that is where the controllers are.
 *
 * Limits follow proto/spec.h: 0 means "unset", and the driver writes the
 * kernel's unlimited value, so every limit can be raised, lowered or removed
 * on a running guest by calling cgroup_set_limits() again with a new spec.
 *
 * Errors: every int-returning function returns >= 0 on success and -errno on
 * failure. -EINVAL for an id that is not a safe path component, -ENOENT for
 * a guest whose cgroup does not exist (where existence matters).
 *
 * Threads: the linux backend calls the per-guest functions from several
 * threads, for distinct guests (parallel_guests, node/backend.h); the record
 * of limits written (cgroup_set_limits_changed) has its own lock. Nothing
 * here forks or spawns threads. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "proto/spec.h"
#include "proto/usage.h"

/* How the host mounts cgroups. */
enum cgroup_mode {
    CGROUP_V1,     /* controllers on v1 hierarchies, no cgroup2 */
    CGROUP_V2,     /* one cgroup2 hierarchy at the root */
    CGROUP_HYBRID, /* controllers on v1, plus a cgroup2 at <root>/unified */
};

/* The longest guest id accepted (a UUID is 36). */
#define CGROUP_ID_MAX 64

/* How long cgroup_kill() waits for a cgroup to empty before -EBUSY, in ms. */
#define CGROUP_KILL_TIMEOUT_MS 5000

typedef struct cgroup_mgr cgroup_mgr_t;

/* Looks at the file system mounted at root (normally "/sys/fs/cgroup") and
 * stores what it finds in *out. Returns 0, -ENOMEDIUM when root holds no
 * cgroup hierarchy, or the -errno of statfs(). */
int cgroup_detect(const char *root, enum cgroup_mode *out);

/* "v1", "v2" or "hybrid", as node_facts.cgroup carries it. */
const char *cgroup_mode_to_string(enum cgroup_mode mode);

/* Detects the mode of root and makes a manager with the matching driver.
 * prefix is the directory under each hierarchy that holds vfleet's guests
 * ("vfleet"); it must be a safe path component. On success stores a new
 * manager in *ret (free with cgroup_mgr_destroy). Returns 0 or -errno. */
int cgroup_mgr_new(const char *root, const char *prefix, cgroup_mgr_t **ret);

/* Forces a driver on a given root, for tests and for hosts where the caller
 * knows better than detection (for example a delegated v2 subtree): v1 takes
 * a directory of per-controller hierarchies, v2 a cgroup2 directory. Nothing
 * is checked about the file system type, so a v2 manager can run on a plain
 * directory laid out like a cgroup2 mount. */
int cgroup_mgr_new_v1(const char *root, const char *prefix, cgroup_mgr_t **ret);
int cgroup_mgr_new_v2(const char *root, const char *prefix, cgroup_mgr_t **ret);

/* Frees the manager (not the cgroups) and clears *mgr. NULL-safe. */
void cgroup_mgr_destroy(cgroup_mgr_t **mgr);

/* The mode the manager was made for (cgroup_mgr_new_v1 says CGROUP_V1). */
enum cgroup_mode cgroup_mgr_mode(const cgroup_mgr_t *mgr);

/* True when the driver enforces the guest device policy (the allowed list
 * below) itself. The v1 driver does, through the devices controller; the v2
 * driver through a BPF_PROG_TYPE_CGROUP_DEVICE program (devices_bpf.h). The
 * backend drops CAP_MKNOD from the guest when this is false. */
bool cgroup_has_device_policy(const cgroup_mgr_t *mgr);

/* Test hooks for a fake cgroup2 tree (a plain directory), where mkdir makes
 * no control files and rmdir of a directory with files fails. populate runs
 * after the driver made a cgroup directory, unpopulate before it removes one
 * (both return 0 or -errno, which the driver returns); written sees every
 * control-file write, in order, with the full path and the exact bytes. Any
 * of them may be NULL. Production code never sets these. */
struct cgroup_test_hooks {
    int (*populate)(const char *dir, void *userdata);   /* fills a new cgroup dir */
    int (*unpopulate)(const char *dir, void *userdata); /* empties a dir before rmdir */
    void (*written)(const char *path, const char *value, void *userdata); /* write trace */
    void *userdata;                                                       /* passed to all three */
};
void cgroup_mgr_set_test_hooks(cgroup_mgr_t *mgr, const struct cgroup_test_hooks *hooks);

/* Makes the guest's cgroup in every hierarchy (and the prefix directory and
 * controller enabling on the way). Idempotent: an existing cgroup is kept and
 * its fixed settings (v1 cpuset and device policy) are checked again. The v1
 * device policy denies everything, then allows rwm on c 1:3 null, 1:5 zero,
 * 1:7 full, 1:8 random, 1:9 urandom, 5:0 tty, 5:1 console, 5:2 ptmx and
 * 136:* pts. */
int cgroup_create(cgroup_mgr_t *mgr, const char *id);

/* The ids of the guests that have a cgroup under the prefix directory, in
 * any hierarchy (v1: the union over them), each once, in no set order: a
 * NULL-terminated array of malloc'd ids in *ret (free with
 * cgroup_strv_free); an empty one when there is no prefix directory. Names
 * that are not guest ids (cgroup_create would refuse them) are left out.
 * The agent's start-up finds with it the guests the store has no record of
 * (node/agent.c). */
int cgroup_list(cgroup_mgr_t *mgr, char ***ret);

/* True when the guest's cgroup exists (in the memory hierarchy for v1). */
bool cgroup_exists(cgroup_mgr_t *mgr, const char *id);

/* True when the guest's cgroup exists in every hierarchy (v1; on v2 the same
 * as cgroup_exists): what a start may take as made (lx_start), where a
 * cgroup found in some hierarchies only is made again. */
bool cgroup_complete(cgroup_mgr_t *mgr, const char *id);

/* Moves pid (and its threads) into the guest's cgroup in every hierarchy. */
int cgroup_attach(cgroup_mgr_t *mgr, const char *id, pid_t pid);

/* Opens the guest's cgroup2 directory (O_DIRECTORY|O_CLOEXEC) for clone3's
 * CLONE_INTO_CGROUP. Returns the fd (the caller closes it), or -EOPNOTSUPP
 * when the limits live on v1 and there is no cgroup2 to place the child in. */
int cgroup_open_v2_fd(cgroup_mgr_t *mgr, const char *id);

/* The cgroup.procs files the spawner writes a child's pid into, one per
 * hierarchy: a NULL-terminated array of malloc'd paths in *ret (free with
 * cgroup_strv_free). The spawner opens them before it forks, so the parent
 * of a clone3 child does not allocate while placing it. */
int cgroup_procs_paths(cgroup_mgr_t *mgr, const char *id, char ***ret);
void cgroup_strv_free(char ***strv);

/* Writes every cgroup limit of l (see the mapping at the top of cgroup_v1.c
 * and cgroup_v2.c). A cap the kernel cannot enforce here (no swap
 * accounting, no burst, a controller not mounted) is skipped when unset and
 * fails with -EOPNOTSUPP when set; the relative I/O weight is best effort and
 * skipped (debug log) when the kernel has no weight file (no BFQ/CFQ).
 * Devices that had caps before and are no longer in io_devs get their caps
 * removed. Returns -ENOENT when the guest has no cgroup. */
int cgroup_set_limits(cgroup_mgr_t *mgr, const char *id, const struct spec_limits *l);

/* cgroup_set_limits unless l is what this manager last wrote to the guest's
 * cgroup completely (with either call) since cgroup_create or
 * cgroup_destroy last ran for it: a start writes its setup limits, which
 * the set_limits of its create wrote a moment before. Returns 0 when it
 * skipped the write. A file changed by hand is written again by
 * cgroup_set_limits only, which an apply calls. */
int cgroup_set_limits_changed(cgroup_mgr_t *mgr, const char *id, const struct spec_limits *l);

/* The limits a guest's cgroup holds until its init has exec'd: the guest's
 * setup (mounts, pivot_root, filter, up to init's exec) is our work, and
 * under a 0.01-core ceiling (1 ms per 100 ms) it waited out a period or two
 * of each start; so a ceiling below a core is lifted and set once init runs,
 * and a guest that is not running holds none (the linux backend's start and
 * set_limits). A ceiling of a core or more never holds a one-process setup
 * and stays. Each change of a v1 quota walks every CPU cgroup on the host:
 * a create sets it once. Fills out; returns true when the ceiling is lifted. */
bool cgroup_setup_limits(const struct spec_limits *l, struct spec_limits *out);

/* Fills the cgroup part of *u: cpu_ns, memory, memory_peak, rss, swap,
 * procs, io_*, failcnt[USAGE_FAIL_PROCS/MEMORY/OOM]. Other fields are left
 * as they are. A counter this kernel does not provide is left 0. Returns
 * -ENOENT when the guest has no cgroup. */
int cgroup_usage(cgroup_mgr_t *mgr, const char *id, struct guest_usage *u);

/* The kernel's OOM notification for the guest's memory cgroup: a
 * descriptor (O_CLOEXEC, non-blocking; the caller closes it) that becomes
 * readable (v1: an eventfd registered on memory.oom_control through
 * cgroup.event_control) or, with *prio set, raises POLLPRI (v2: a change of
 * memory.events) when the OOM killer acts in the guest. -ENOENT when the
 * guest has no memory cgroup. */
int cgroup_oom_watch(cgroup_mgr_t *mgr, const char *id, bool *prio);
/* After fd woke: consumes the notification (so the next one wakes it again)
 * and reads the OOM kills the cgroup counted (v1 memory.oom_control and v2
 * memory.events "oom_kill"). -ENOENT when the cgroup is gone. */
int cgroup_oom_read(cgroup_mgr_t *mgr, const char *id, int fd, uint64_t *count);

/* The pids in the guest's cgroup and in the cgroups below it (processes,
 * not threads; v1: of the pids hierarchy, else memory): a malloc'd array
 * in *ret (the caller frees), its length in *n. */
int cgroup_pids(cgroup_mgr_t *mgr, const char *id, pid_t **ret, size_t *n);

/* Sends SIGKILL to every process of the guest, in its cgroup and in any
 * cgroup below it (a guest that mounts cgroupfs makes them), and waits, up to
 * CGROUP_KILL_TIMEOUT_MS, until no process is left (zombies of a parent
 * outside the cgroup do not count: the kernel drops them from the cgroup when
 * they exit). v1 freezes the freezer cgroup, kills, thaws, and repeats, so a
 * fork bomb cannot outrun it; v2 does the same with cgroup.freeze, never
 * cgroup.kill, which would make the kernel kill every later clone into the
 * cgroup at birth (cgroup_v2.c, v2_kill_as). Returns 0, -EBUSY when
 * processes remain at the timeout, or 0 when the cgroup does not exist. */
int cgroup_kill(cgroup_mgr_t *mgr, const char *id);

/* Kills the processes of the n guests in ids as cgroup_kill does, with one
 * deadline for all: every guest is signalled before any is waited for, and
 * the wait ends CGROUP_KILL_TIMEOUT_MS from the call however many guests
 * keep processes (the agent's start-up kills its unrecorded guests and the
 * recorded ones not running so: one by one, N guests whose processes will
 * not die held its hello for N times the timeout). res[i]: 1 when
 * processes of ids[i] were signalled and are gone, 0 when it had none (or
 * no cgroup), or -errno (-EBUSY: processes remain, -EINVAL: not a guest
 * id). Returns 0. */
int cgroup_kill_many(cgroup_mgr_t *mgr, char *const *ids, size_t n, int *res);

/* Thaws the guest's cgroup when it is frozen (v1: freezer.state is not
 * THAWED; v2: cgroup.freeze holds 1). A kill freezes, kills and thaws
 * (above): an agent killed between its freeze and its thaw leaves the
 * guest's processes frozen (or, killed already, dying only at the thaw),
 * and a process that joins the cgroup is frozen at once. One read when
 * nothing is frozen. Returns 1 when it thawed, 0 when there was nothing to
 * thaw (no freezer, no cgroup), or -errno. */
int cgroup_thaw(cgroup_mgr_t *mgr, const char *id);

/* Kills the guest's processes (v2: with cgroup.kill when the kernel has it)
 * and removes its cgroup, the cgroups below it first, from every hierarchy.
 * Idempotent: a guest with no cgroup is 0. The prefix directory stays. */
int cgroup_destroy(cgroup_mgr_t *mgr, const char *id);
