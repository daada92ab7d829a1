/* Internal to the cgroup layer: the driver table, the manager's layout and
 * the file helpers the v1 and v2 drivers share. Nothing outside
 * node/linux/cgroup*.c includes this; the public contract is cgroup.h. */
#pragma once

#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>

#include "common/hmap.h"
#include "common/mem.h"
#include "node/linux/cgroup.h"

/* The largest control file read whole (cgroup.procs of a busy guest). */
#define CGROUP_READ_MAX (8u << 20)

/* One guest's kill in progress (cgroup_kill_wait): a driver's kill_pass
 * reads and updates it. */
struct cgroup_kill_one {
    const char *id;  /* the guest */
    int result;      /* 1 while processes remain, then 0 (none left) or -errno */
    bool killed;     /* some process of it was signalled */
    bool removing;   /* a destroy's kill (v2: cgroup.kill, the directory goes next) */
    bool all;        /* v1: the next pass reads every hierarchy, not one */
    bool probed;     /* v2: has_kill and has_freeze are known */
    bool has_kill;   /* v2: the pass writes cgroup.kill (removing, and the kernel has it) */
    bool has_freeze; /* v2: the cgroup has cgroup.freeze */
};

/* One driver: the public per-guest operations, with the id already checked. */
struct cgroup_ops {
    const char *name; /* "v1" or "v2", for debug logs */
    int (*init)(cgroup_mgr_t *m);
    void (*fini)(cgroup_mgr_t *m);
    int (*create)(cgroup_mgr_t *m, const char *id);
    bool (*exists)(cgroup_mgr_t *m, const char *id);
    int (*list)(cgroup_mgr_t *m, char ***ret, size_t *n);
    bool (*complete)(cgroup_mgr_t *m, const char *id);
    int (*attach)(cgroup_mgr_t *m, const char *id, pid_t pid);
    int (*open_v2_fd)(cgroup_mgr_t *m, const char *id);
    int (*procs_paths)(cgroup_mgr_t *m, const char *id, char ***ret);
    int (*set_limits)(cgroup_mgr_t *m, const char *id, const struct spec_limits *l);
    int (*usage)(cgroup_mgr_t *m, const char *id, struct guest_usage *u);
    int (*pids)(cgroup_mgr_t *m, const char *id, pid_t **ret, size_t *n);
    /* One pass of a kill: reads the guest's processes; with none left sets
     * k->result 0, else signals them (frozen, so none forks meanwhile),
     * sets k->killed and leaves k->result 1; -errno in k->result when the
     * list cannot be read. Never waits. */
    void (*kill_pass)(cgroup_mgr_t *m, struct cgroup_kill_one *k);
    int (*thaw)(cgroup_mgr_t *m, const char *id);
    int (*destroy)(cgroup_mgr_t *m, const char *id);
    int (*oom_watch)(cgroup_mgr_t *m, const char *id, bool *prio);
    int (*oom_read)(cgroup_mgr_t *m, const char *id, int fd, uint64_t *count);
    bool device_policy; /* the driver enforces the guest device list */
};

extern const struct cgroup_ops cgroup_v1_ops;
extern const struct cgroup_ops cgroup_v2_ops;

struct cgroup_mgr {
    const struct cgroup_ops *ops;   /* the driver */
    enum cgroup_mode mode;          /* what detection found (or what was forced) */
    char *root;                     /* the cgroup mount root, no trailing slash */
    char *prefix;                   /* vfleet's directory under each hierarchy */
    struct cgroup_test_hooks hooks; /* fake-tree hooks, zero in production */
    void *driver;                   /* the driver's private state */
    pthread_mutex_t written_lock;   /* guards written */
    struct hmap_str written;        /* id -> struct cgroup_written: the limits last written */
};

/* Writes value to dir/file with one write() (O_WRONLY|O_TRUNC|O_CLOEXEC; the
 * kernel takes one value per write). Returns 0 or -errno. */
int cgroup_write(cgroup_mgr_t *m, const char *dir, const char *file, const char *value);
int cgroup_writef(cgroup_mgr_t *m, const char *dir, const char *file, const char *fmt, ...)
    _printf_(4, 5);

/* Whether dir/file reads as value (with or without its newline); false
 * when it cannot be read. */
bool cgroup_holds(const char *dir, const char *file, const char *value);

/* cgroup_write unless dir/file reads as value already (one read, no write):
 * for files whose write costs whatever the value, e.g. a v1 CPU bandwidth
 * file, whose every write walks all of the host's CPU cgroups. Returns 1
 * when it wrote, 0 when the value was there, or -errno. */
int cgroup_write_changed(cgroup_mgr_t *m, const char *dir, const char *file, const char *value);

/* Appends to the NULL-terminated *v (n entries, grown as needed) the names
 * of dir's subdirectories that are guest ids and not in *v yet. A missing
 * dir adds nothing. Returns 0 or -errno of opendir(). */
int cgroup_list_dir(const char *dir, char ***v, size_t *n);

/* Reads dir/file whole (at most CGROUP_READ_MAX bytes) into a malloc'd,
 * NUL-terminated string. Returns 0 or -errno (-EFBIG past the cap). */
int cgroup_read(const char *dir, const char *file, char **ret);

/* Reads a file holding one number ("max" reads as UINT64_MAX). */
int cgroup_read_u64(const char *dir, const char *file, uint64_t *ret);

/* Finds "key value" in a flat-keyed text (memory.stat, pids.events, ...).
 * Returns 0, or -ENODATA when the key is absent, -EBADMSG on a bad number. */
int cgroup_text_key(const char *text, const char *key, uint64_t *ret);

/* Reads dir/file and looks key up in it. */
int cgroup_read_key(const char *dir, const char *file, const char *key, uint64_t *ret);

/* True when dir/file exists. */
bool cgroup_file_exists(const char *dir, const char *file);

/* Parses a cgroup.procs text into a malloc'd pid array (appended to *pids,
 * *n updated). Returns 0 or -EBADMSG. */
int cgroup_parse_pids(const char *text, pid_t **pids, size_t *n);

/* Makes a cgroup directory (an existing one is fine) and runs the populate
 * hook when it was new. Returns 1 when created, 0 when it existed, or -errno. */
int cgroup_mkdir(cgroup_mgr_t *m, const char *path);

/* Removes a cgroup directory; a missing one is fine. Retries -EBUSY briefly,
 * as the kernel may still be letting the last task go. */
int cgroup_rmdir(cgroup_mgr_t *m, const char *path);

/* True when the cgroup directory dir may have child cgroups (its link
 * count is not 2): one stat, so the common case, no children, costs no
 * directory read. False when dir is missing. */
bool cgroup_has_children(const char *dir);

/* Appends to *pids the processes of the cgroups below dir (the guest's
 * cgroup in one hierarchy), and with top those in dir's own cgroup.procs
 * first: a privileged guest that mounts cgroupfs, or anything on the host,
 * may move a process of the guest into a cgroup of its own below the
 * guest's. The walk is fdwalk_dirs' (by descriptor, no symlink followed,
 * one file system, bounded open directories, no stat of a control file),
 * entered only when cgroup_has_children says so; a cgroup removed during
 * it counts as empty.
 * Returns 0 or -errno (-ENOENT when top and dir is missing). */
int cgroup_tree_pids(const char *dir, bool top, pid_t **pids, size_t *n);

/* Removes the cgroups below dir, deepest first (the kernel refuses to
 * remove a cgroup with children), then dir as cgroup_rmdir does. The
 * processes must be gone (a kill first). A missing dir is fine. Returns 0
 * or -errno. */
int cgroup_tree_rmdir(cgroup_mgr_t *m, const char *dir);

/* Kills the processes of the n guests in k (id and removing set, the rest
 * zero) with one deadline, CGROUP_KILL_TIMEOUT_MS from now, for all: each
 * pass signals every guest that still has processes before the loop sleeps,
 * so guests whose processes will not die cost one timeout together, not one
 * each. Sets each k[i].result to 0 or -errno (-EBUSY: processes remain at
 * the deadline). */
void cgroup_kill_wait(cgroup_mgr_t *m, struct cgroup_kill_one *k, size_t n);

/* Sleeps ms milliseconds (for the bounded waits of kill and rmdir). */
void cgroup_sleep_ms(unsigned ms);
