/* `vfleet-node leftovers [remove ID --yes]` (leftovers_cli.c): the leftovers
 * of guests the store has no record of (node/leftovers.h). Each returns the
 * program's exit status (0; 1 failure; 2 usage; 3 no such leftovers) after
 * printing what went wrong to stderr. */
#pragma once

#include <stdbool.h>

#include "node/linux/linux_backend.h"

/* Lists the leftovers of state_dir (a table, or JSON with json). */
int leftovers_cli_ls(const char *state_dir, bool json);

/* args (n of them) are "remove" and the guest's id: removes its leftovers
 * with the linux backend configured by lc, when yes, the agent is not
 * running and the store has no record of it (leftovers_claim). */
int leftovers_cli_remove(const char *state_dir, char **args, int n, bool yes,
                         const struct linux_config *lc);
