/* The commands that act on one named object: `vfleet node routes NAME`,
 * `guest show NAME`, `pool rm NAME`, ... Each sends one request to
 * COLLECTION/NAME[SUB] and prints the master's JSON (--json, --output yaml)
 * or its own table or sentence. The commands describe themselves in a
 * struct cli_named; this module parses `VERB NAME`, sends, reports failures
 * (cli_call) and picks the output. Not thread-safe (getopt). */
#pragma once

#include <jansson.h>
#include <stdbool.h>
#include <stdio.h>

#include "cli/cli.h"

/* Prints a 2xx reply for people: a table (cli_print_table honours --output
 * csv) or a sentence. body may be NULL (an empty 204). */
typedef void (*cli_named_print_fn)(struct cli_ctx *ctx, const char *name, const json_t *body);

/* One command on a named object. */
struct cli_named {
    const char *method;       /* "GET", "POST" or "DELETE" */
    const char *collection;   /* "/v1/nodes": the path is COLLECTION/NAME then sub */
    const char *sub;          /* "/routes", "/console?bytes=100", or NULL for the object */
    const char *kind;         /* "node": the messages name the object node "NAME" */
    void (*help)(FILE *);     /* the group's help, for --help */
    cli_named_print_fn print; /* the output without --json */
    bool never_json;          /* print() in every format (a reply with nothing to show) */
    long timeout;             /* seconds for the exchange, 0 = HTTP_DEFAULT_TIMEOUT */
    /* After the output: the exit code a 2xx reply means (a 2xx that says
     * the thing is not done yet may be a failure), NULL = CLI_EXIT_OK. */
    int (*check)(struct cli_ctx *ctx, const char *name, const json_t *body);
};

/* Sends cmd for the object `name` (already checked) and prints the reply.
 * Returns an exit code (enum cli_exit). */
int cli_named_call(struct cli_ctx *ctx, const struct cli_named *cmd, const char *name);

/* `VERB NAME` with --help as the only option (cli_simple_args), then
 * cli_named_call. Returns an exit code. */
int cli_named_run(struct cli_ctx *ctx, int argc, char **argv, const struct cli_named *cmd);
