/* The `vfleet` command groups. Each takes argv with the group's verb at
 * argv[0] ("ls", "create", ...), runs it against ctx, and returns an exit code
 * (enum cli_exit; `guest exec` returns the remote command's). argv may be
 * permuted by getopt. Not thread-safe (getopt). */
#pragma once

#include "cli/cli.h"

/* `vfleet node ls|show|routes|cordon|uncordon`. */
int cmd_node_run(struct cli_ctx *ctx, int argc, char **argv);
/* `vfleet guest create|ls|show|start|stop|restart|rm|set|exec|usage|ip add|ip rm`. */
int cmd_guest_run(struct cli_ctx *ctx, int argc, char **argv);
/* `vfleet guest shell` (cmd_console.c). */
int cmd_guest_shell(struct cli_ctx *ctx, int argc, char **argv);
/* `vfleet guest rebuild` (cmd_console.c). */
int cmd_guest_rebuild(struct cli_ctx *ctx, int argc, char **argv);
/* `vfleet guest console NAME [--log [--bytes N]]` (cmd_console.c). */
int cmd_guest_console(struct cli_ctx *ctx, int argc, char **argv);
/* `vfleet template ls` (cmd_console.c). */
int cmd_template_run(struct cli_ctx *ctx, int argc, char **argv);
void cmd_template_help(FILE *f);
/* `vfleet template push` and `rm`, the master's library (cmd_template.c). */
int cmd_template_push(struct cli_ctx *ctx, int argc, char **argv);
int cmd_template_rm(struct cli_ctx *ctx, int argc, char **argv);
void cmd_template_push_help(FILE *f);
/* `vfleet pool create|ls|rm`. */
int cmd_pool_run(struct cli_ctx *ctx, int argc, char **argv);

/* `vfleet token create|ls|rm`. */
int cmd_token_run(struct cli_ctx *ctx, int argc, char **argv);
/* `vfleet project create|set|ls|show|rm`. */
int cmd_project_run(struct cli_ctx *ctx, int argc, char **argv);
/* `vfleet events [--follow] [--type ...]` (argv[0] is "events"). */
int cmd_events_run(struct cli_ctx *ctx, int argc, char **argv);
/* `vfleet usage traffic`. */
int cmd_usage_run(struct cli_ctx *ctx, int argc, char **argv);
/* `vfleet guest usage NAME --since D|--from T [--to T] [--step S] [--spark]`
 * (argv[0] is "usage"). */
int cmd_guest_usage_history(struct cli_ctx *ctx, int argc, char **argv);

/* Help for each group, written to f. */
void cmd_node_help(FILE *f);
void cmd_guest_help(FILE *f);
void cmd_pool_help(FILE *f);
void cmd_token_help(FILE *f);
void cmd_project_help(FILE *f);
void cmd_events_help(FILE *f);
void cmd_usage_help(FILE *f);
