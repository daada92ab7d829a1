/* `vfleet guest export` and `vfleet guest import` (cmd_archive.c), and the
 * importers (`vfleet import vserver|openvz|freevps`, cmd_import.c), which
 * end in an import of the archive they build. */
#pragma once

#include <jansson.h>

#include "cli/cli.h"

int cmd_archive_export(struct cli_ctx *ctx, int argc, char **argv);
int cmd_archive_import(struct cli_ctx *ctx, int argc, char **argv);
/* Uploads file and imports it with body's members (name, to, constraints):
 * follows the operation; returns an exit code. */
int cmd_archive_import_file(struct cli_ctx *ctx, const char *file, json_t *body);

/* Uploads file (POST /v1/archives, then its chunks); id gets the upload's
 * id. Returns an exit code. */
int cmd_archive_upload(struct cli_ctx *ctx, const char *file, char id[64]);

/* `vfleet import SOURCE ...`. */
int cmd_import_run(struct cli_ctx *ctx, int argc, char **argv);
void cmd_import_help(FILE *f);
