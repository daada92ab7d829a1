/* What linux_backend.c shares with the files that hold some of its
 * operations (linux_backend_migrate.c, linux_backend_enter.c,
 * linux_backend_mounts.c): the backend's state and a guest's
 * paths. Not for the agent: it sees a backend_t (node/backend.h). */
#pragma once

#include <stdio.h>

#include "common/mem.h"
#include "node/backend.h"
#include "node/linux/cgroup.h"
#include "node/linux/linux_backend.h"
#include "node/linux/net.h"
#include "node/linux/spawn.h"
#include "node/linux/tmpl_tree.h"

struct linux_backend {
    struct backend base;     /* must stay first: the agent sees a backend_t */
    struct linux_config cfg; /* copy of the configuration */
    cgroup_mgr_t *cgroups;   /* cgroup driver picked at start-up */
    spawner_t *spawner;      /* the single-threaded clone3 helper */
    net_t *net;              /* guest networking (veth, routes, tc, nftables) */
    int arp_fd;              /* announce_addrs' packet socket, -1 before the first */
    tmpl_trees_t *trees;     /* the templates' detached clones (tmpl_tree.h) */
    uint64_t remade;         /* starts that made mounts or cgroups again (atomic) */
};

/* Paths of one guest's files. */
struct guest_paths {
    char dir[512];     /* data/<id> */
    char image[560];   /* data/<id>/disk.img */
    char disk[560];    /* data/<id>/disk */
    char lower[560];   /* data/<id>/lower: the idmapped template */
    char root[560];    /* data/<id>/root */
    char console[560]; /* data/<id>/console.ring */
    char stage[560];   /* data/<id>/stage: a cold start's mount conduit */
    char tmpl[560];    /* templates/<name> */
};

static inline struct linux_backend *
lb(backend_t *b)
{
    return container_of(b, struct linux_backend, base);
}

static inline void
paths_of(const struct linux_backend *l, const struct guest_spec *s, struct guest_paths *p)
{
    snprintf(p->dir, sizeof(p->dir), "%s/data/%s", l->cfg.state_dir, s->id);
    snprintf(p->image, sizeof(p->image), "%s/disk.img", p->dir);
    snprintf(p->disk, sizeof(p->disk), "%s/disk", p->dir);
    snprintf(p->lower, sizeof(p->lower), "%s/lower", p->dir);
    snprintf(p->root, sizeof(p->root), "%s/root", p->dir);
    snprintf(p->console, sizeof(p->console), "%s/console.ring", p->dir);
    snprintf(p->stage, sizeof(p->stage), "%s/stage", p->dir);
    snprintf(p->tmpl, sizeof(p->tmpl), "%s/%s", l->cfg.templates, s->template_name);
}

/* Takes down the guest's mount conduit, data/<id>/stage (start_cold), that an
 * agent that died in a cold start left mounted: it holds a bind of the
 * guest's overlay, and with it the disk's superblock and loop device, until
 * then. Whatever unmounts the guest's root or disk calls it first; with no
 * conduit there it costs one umount2 (EINVAL). 0, or the error (errtext set). */
int lx_conduit_sweep(const struct guest_paths *p);

/* The guest's mounts (linux_backend_mounts.c). Each returns 0 or the error
 * (errtext set). */
/* -ENOSPC when the node's filesystem has less free space than its reserve:
 * no new image and no growth then. */
int lx_check_reserve(struct linux_backend *l, const char *what);
/* The guest's directory, after checking its template is here. */
int lx_guest_dir_prepare(const struct guest_spec *s, const struct guest_paths *p);
/* The guest's disk (made when there is no image), mounted unless it is. */
int lx_guest_disk(struct linux_backend *l, const struct guest_spec *s, const struct guest_paths *p);
/* The overlay's lower layer, the template idmapped to the guest's block
 * unless it is mounted so; *lower says where it is. child > 0 lends its
 * user namespace to the idmap (a cold start's clone). */
int lx_mount_lower(struct linux_backend *l, const struct guest_ids *ids,
                   const struct guest_paths *p, pid_t child, const char **lower);
/* The guest's disk image mounted at its place (disk_mount_new when made;
 * else its loop device's path in loopdev when not NULL), with its error's
 * text. */
int lx_mount_disk(const struct guest_paths *p, bool made, char *loopdev, size_t n);
/* The overlay of the guest's root on lower and its disk, with its error's
 * text. */
int lx_mount_overlay(const char *lower, const struct guest_paths *p);
/* The guest's root: lower layer, then the overlay on its disk. */
int lx_mount_root(struct linux_backend *l, const struct guest_ids *ids, const struct guest_paths *p,
                  pid_t child);
/* A cold start's check of the guest's files (its disk mounted, its root
 * not, the start's conduit open): the upper directory's owner in ids'
 * block, or its files shifted into it, as a create does (upper_fit). The
 * agent starts a guest with the block the create that made it (or the one
 * sent again after it, which shifted them) gave its files, so one stat
 * finds them so; a start given another block would otherwise run its
 * template in that block and its own files as "nobody". */
int lx_upper_fit_cold(const struct guest_spec *s, const struct guest_ids *ids,
                      const struct guest_paths *p);
/* The guest's disk and root, mounted unless they are, its files and its
 * idmapped template in its block. */
int lx_guest_mounts(struct linux_backend *l, const struct guest_spec *s,
                    const struct guest_ids *ids, const struct guest_paths *p);

/* The spawner's view of a guest: root, identity, ids, caps, filter, console
 * and cgroups. ids is NULL for exec (which takes the user namespace from init). */
int lx_spawn_config_of(struct linux_backend *l, const struct guest_spec *s,
                       const struct guest_ids *ids, const struct guest_paths *p,
                       struct spawn_config *c);

/* Moving a guest (linux_backend_migrate.c): the backend_ops of node/backend.h. */
int lx_migrate_paths(backend_t *b, const struct guest_spec *s, char *image, char *incoming,
                     size_t n);
int lx_migrate_freeze(backend_t *b, const struct guest_spec *s, const struct guest_runtime *rt,
                      bool freeze);
int lx_migrate_frozen(backend_t *b, const struct guest_spec *s);
int lx_thaw_stray(backend_t *b, const struct guest_spec *s);
int lx_migrate_criu(backend_t *b, char *why, size_t n);
int lx_migrate_pack(backend_t *b, const struct guest_spec *s, const struct guest_runtime *rt,
                    const char *manifest, int out_fd);
int lx_migrate_unpack(backend_t *b, const struct guest_spec *s, int in_fd);
int lx_migrate_ids(backend_t *b, const struct guest_spec *s, const struct guest_ids *ids);
