/* `vfleet op`, and following an operation to its end (cmd_op.c); the
 * commands that start one (guest move, node drain) follow it by default. */
#pragma once

#include "cli/cli.h"

/* `vfleet op ls|show|wait|cancel`. */
int cmd_op_run(struct cli_ctx *ctx, int argc, char **argv);
void cmd_op_help(FILE *f);

/* Polls operation id until it ends, showing its progress: a bar redrawn on
 * ctx->err when that is a terminal, one JSON line per change on ctx->out
 * with --json, else a line per step; then the summary. Returns 0 when it
 * ended done, 1 when it failed or was cancelled, or the exit code of a
 * failed request. */
int cmd_op_follow(struct cli_ctx *ctx, const char *id);

/* `vfleet guest move NAME ...` and `vfleet node drain NAME ...` (cmd_move.c);
 * argv[0] is the verb. */
int cmd_move_guest(struct cli_ctx *ctx, int argc, char **argv);
int cmd_move_drain(struct cli_ctx *ctx, int argc, char **argv);
