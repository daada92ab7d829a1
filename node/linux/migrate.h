/* What moving a guest needs from the linux backend: where its disk image
 * and an incoming one live, and freezing it so the image holds still.
 *
 * Freezing is two steps, in this order: the cgroup freezer stops every
 * process of the guest (v1: the freezer controller's freezer.state, v2:
 * cgroup.freeze, both waited for until the kernel says frozen), then the
 * disk's filesystem is frozen (FIFREEZE): ext4 writes everything out, marks
 * its journal clean and blocks new writes, so the image file read through
 * the page cache is a consistent filesystem that mounts without recovery.
 * Thawing goes the other way round. A stopped guest has only its
 * filesystem frozen. Both steps are idempotent: freezing a frozen guest or
 * thawing a thawed one is 0.
 *
 * The filesystem is frozen only when the guest's disk directory is the mount
 * point of an ext4 filesystem on a loop device: an unmounted disk is still
 * (and FIFREEZE on a plain directory would freeze the host's filesystem).
 *
 * Threads: no shared state; called from the backend's one worker thread. */
#pragma once

#include <stdbool.h>
#include <stddef.h>

#include "proto/spec.h"

/* The cgroup layout the freezer writes to. */
struct migrate_cgroups {
    const char *root;   /* "/sys/fs/cgroup" */
    const char *prefix; /* "vfleet" */
    bool v2;            /* cgroup.freeze (else the v1 freezer controller) */
};

/* Freezes (processes when running, then the filesystem at disk_mount) or
 * thaws. Returns 0, -EBUSY when the kernel did not finish freezing in time
 * (the guest is thawed again), or -errno. */
int migrate_freeze(const struct migrate_cgroups *cg, const char *id, const char *disk_mount,
                   bool running, bool freeze);
/* 1 when the guest's processes are frozen, 0 when not (or no cgroup). */
int migrate_frozen(const struct migrate_cgroups *cg, const char *id);

/* The result of the CRIU preflight (`criu check`), run once per process:
 * 0 when it passed, else -errno with the reason in why (the last line criu
 * printed, or that criu is not installed). */
int migrate_criu_check(char *why, size_t n);
