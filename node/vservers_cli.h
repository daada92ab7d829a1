/* `vfleet-node vservers FILE` (vservers_cli.c). */
#pragma once

#include <stdbool.h>
#include <stddef.h>

/* Where the FreeVPS views go, into out: value ([node] vservers / --vservers;
 * NULL = not set: STATE_DIR/vservers when by_default, else nowhere); "none"
 * and nowhere are "". */
void vservers_mount_path(const char *value, const char *state_dir, bool by_default, char *out,
                         size_t n);

/* Prints view FILE (setup, trafstat, routes_ipv4, self) of the node whose
 * store is state_dir and whose agent mounts its views at mount ("" =
 * none). Returns 0 or -errno (a message went to stderr). */
int vservers_cli(const char *state_dir, const char *mount, const char *file);
