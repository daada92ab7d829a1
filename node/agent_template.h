/* Templates from the master's library, the node's half (agent_template.c).
 * Private to the agent. */
#pragma once

#include <stddef.h>
#include <stdint.h>

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
/* Removes the tree at path (no link followed); 0 when it is not there. */
int agent_template_rm_tree(const char *path);
