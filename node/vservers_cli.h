/* `vfleet-node vservers FILE` (vservers_cli.c). */
#pragma once

#define VFLEET_CLI_VERSION "0.1.0"

/* Prints view FILE (setup, trafstat, routes_ipv4, self) of the node whose
 * store is state_dir and whose agent mounts its views at mount ("" =
 * none). Returns 0 or -errno (a message went to stderr). */
int vservers_cli(const char *state_dir, const char *mount, const char *file);
