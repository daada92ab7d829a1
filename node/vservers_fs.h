/* The FreeVPS /proc/vservers views as a FUSE filesystem served by the
 * agent (vservers_fs.c says what each caller sees). Loop thread only. */
#pragma once

#include <stdbool.h>

#include "proto/msg.h"

typedef struct agent agent_t;
typedef struct vservers_fs vservers_fs_t;

/* Mounts the filesystem at mount (made when missing; a stale mount of a
 * dead agent there is detached first) and serves it on a's loop. Returns
 * NULL and sets *err (-errno) when it cannot (no /dev/fuse, not root). */
vservers_fs_t *vservers_fs_start(agent_t *a, const char *mount, int *err);
/* Unmounts and stops; opens still waiting fail. NULL-safe, clears *p; the
 * memory goes once the handles closed and no job holds it. */
void vservers_fs_stop(vservers_fs_t **p);
/* A message from the master: true when it was the answer (traffic, or a
 * nack) to a trafstat read, which it completes. NULL-safe. */
bool vservers_fs_on_message(vservers_fs_t *fs, const struct msg *m);
