/* Templates from the master's library, the node's half (agent_template.c).
 * Private to the agent. */
#pragma once

#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "node/agent_internal.h"
#include "node/linux/template_sum.h"

/* guest.migrate.prepare / commit / abort naming a template. Loop thread. */
void agent_template_cmd(agent_t *a, const struct msg *m);

/* Unpacks the archive at fd into tmp (emptied first), at most max_bytes of
 * tar stream (-ENOSPC past it: archive_unpack_max), refuses device nodes
 * other than /dev's harmless ones, sums the tree and renames it to final.
 * Returns 0, 1 when final existed (it is kept, tmp removed), or -errno with
 * a sentence in err (tmp removed). Any thread. */
int agent_template_unpack(int fd, const char *tmp, const char *final, uint64_t max_bytes,
                          char sum[TEMPLATE_SUM_LEN + 1], uint64_t *size, char *err, size_t n);
/* The tar stream a template unpacked in dir may take: the filesystem's free
 * space less AGENT_TEMPLATE_RESERVE, so a fetch never fills the disk the
 * guests' images grow on. */
uint64_t agent_template_room(const char *dir);

#define AGENT_TEMPLATE_RESERVE (1ULL << 30) /* free bytes a template fetch leaves */
#define AGENT_TEMPLATE_STALE_S 3600         /* an archive received no byte for this long: dead */

/* At the agent's start, what fetches that ended while it was away left in
 * its templates directory: every half-unpacked tree (no unpack survives a
 * restart; a resumed commit unpacks again) and every archive that received
 * nothing for AGENT_TEMPLATE_STALE_S (the master gave up on it long ago; a
 * fresher one may still be committed). */
void agent_template_sweep(agent_t *a);
/* The same in dir at time now; returns how many entries went. */
int agent_template_sweep_dir(const char *dir, time_t now);
/* Removes the tree at path (no link followed); 0 when it is not there. */
int agent_template_rm_tree(const char *path);
