/* Argument parsing shared by the `vfleet` commands, and the mapping from
 * `guest create` / `guest set` arguments to their JSON request bodies.
 *
 * Everything here is pure (no I/O, no HTTP), so the mapping is unit-tested.
 * Parsers take argv with the subcommand at argv[0] ("create", "set"), use
 * getopt_long (GNU argument permutation: the NAME may come before or after the
 * flags), and on a usage error return -EINVAL with a one-line reason in err.
 * They return ARGS_HELP when --help was asked for. Not thread-safe: getopt
 * keeps global state. */
#pragma once

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "cli/args_spec.h"
#include "cli/http.h"
#include "common/name.h"
#include "proto/spec_fields.h"

#define ARGS_HELP        1                        /* returned when --help (or -h) was given */
#define ARGS_MAX_TIMEOUT 86400                    /* longest --timeout accepted, seconds */
#define ARGS_MAX_CPU     (SPEC_MAX_MCORES / 1000) /* largest --cpu / --cpu-burst, cores */

/* `guest create`, parsed. */
struct args_create {
    char name[NAME_MAX_LEN + 1];             /* the guest's name */
    json_t *body;                            /* the POST /v1/guests body; owned */
    bool wait;                               /* --wait: until the guest runs */
    long timeout;                            /* --timeout seconds, 0 = the master's default */
    char idempotency_key[HTTP_UUID_LEN + 1]; /* --idempotency-key, "" = a random one */
    struct args_spec_files files;            /* password and key files to read */
};

/* `guest set`, parsed. */
struct args_set {
    char name[NAME_MAX_LEN + 1];  /* the guest's name */
    json_t *body;                 /* the PATCH body (JSON merge patch); owned */
    struct args_spec_files files; /* password and key files to read */
};

/* Parses `create NAME --template T [limits] [--ip A]... [--label k=v]...
 * [--constraint k=v]... [--group G] [--node N] [--algorithm A] [--wait]
 * [--timeout S] [--idempotency-key K]`. Returns 0, ARGS_HELP or -EINVAL.
 * out->body is set only on 0; free it with args_create_clear(). */
int args_guest_create(int argc, char **argv, struct args_create *out, char *err, size_t errlen);
void args_create_clear(struct args_create *a);

/* Prints one line per limit flag (the limits table of proto/spec_fields.h)
 * and what its values look like, for `vfleet guest --help`. */
void args_limits_help(FILE *f);

/* Parses `set NAME [limits] [--label k=v]... [--unlabel k]... [--flags F,F|none]`.
 * At least one change is required. Returns 0, ARGS_HELP or -EINVAL. */
int args_guest_set(int argc, char **argv, struct args_set *out, char *err, size_t errlen);
void args_set_clear(struct args_set *a);

/* Adds "key=value" to obj. The key must be a name (name_is_valid); the value
 * at most 255 bytes without control characters (it may be empty). Returns 0
 * or -EINVAL with the reason in err. `what` names the flag for the message. */
int args_kv_put(json_t *obj, const char *arg, const char *what, char *err, size_t errlen);

/* A size ("256M", "1G", "4096") as bytes, at most INT64_MAX so it fits a JSON
 * integer. Returns 0, -EINVAL or -ERANGE. */
int args_size(const char *s, uint64_t *out);
/* A count, 0..INT64_MAX. Returns 0, -EINVAL or -ERANGE. */
int args_count(const char *s, uint64_t *out);
/* CPU cores as a positive decimal ("0.5", "2") up to ARGS_MAX_CPU. */
int args_cpu(const char *s, double *cores);
/* An Idempotency-Key: 1..HTTP_UUID_LEN of letters, digits and "-_.:". */
int args_idempotency_key(const char *s);
/* A --timeout in seconds, 1..ARGS_MAX_TIMEOUT. */
int args_timeout(const char *s, long *out);
/* The index of the first "--" in argv after argv[0], or -1. The commands
 * that run a command in a guest (exec, shell) find it before getopt runs,
 * which then reads only the arguments before it: GNU getopt would otherwise
 * mix NAME into the command. */
int args_dash(int argc, char **argv);
