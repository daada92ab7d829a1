/* `vfleet guest shell`: an interactive session in a guest over the API's
 * WebSocket (GET /v1/guests/{name}/shell, docs/api.md "Shell"). */
#pragma once

#include "cli/cli.h"

/* Runs argv (NULL: root's login shell) in guest name. tty: a terminal (the
 * local one in raw mode, its size followed); else stdin, stdout and stderr
 * are streamed as they are. Returns the command's exit status, 128+N when a
 * signal N ended it, or a CLI exit code when the session could not start. */
int cli_shell_run(struct cli_ctx *ctx, const char *name, char *const *argv, bool tty);
/* Follows guest name's console (output only) until the detach key (^], on a
 * terminal) or SIGINT/SIGTERM. Returns 0 when detached, or a CLI exit code. */
int cli_console_run(struct cli_ctx *ctx, const char *name);
