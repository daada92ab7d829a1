/* The spec fields beyond limits, for `guest create` and `guest set`: the
 * provision group (--password-stdin, --password-file, --no-password,
 * --ssh-key, --ssh-key-file, --dns, --search) and --domainname, --init,
 * --halt-signal, --stop-timeout, --autostart, --cap-add, --cap-drop, --io.
 * Pure like args.c: files named by the password and key options are read
 * by args_spec_read_files, called by the command. */
#pragma once

#include <getopt.h>
#include <jansson.h>
#include <stddef.h>
#include <stdio.h>

#define ARGS_SPEC_BASE      0x300 /* getopt values of these options start here */
#define ARGS_SPEC_MAX_FILES 8     /* --ssh-key-file options */

enum {
    ARGS_SPEC_PASSWORD_STDIN = ARGS_SPEC_BASE,
    ARGS_SPEC_PASSWORD_FILE,
    ARGS_SPEC_NO_PASSWORD,
    ARGS_SPEC_SSH_KEY,
    ARGS_SPEC_SSH_KEY_FILE,
    ARGS_SPEC_DNS,
    ARGS_SPEC_SEARCH,
    ARGS_SPEC_DOMAINNAME,
    ARGS_SPEC_INIT,
    ARGS_SPEC_HALT_SIGNAL,
    ARGS_SPEC_STOP_TIMEOUT,
    ARGS_SPEC_AUTOSTART,
    ARGS_SPEC_CAP_ADD,
    ARGS_SPEC_CAP_DROP,
    ARGS_SPEC_IO,
    ARGS_SPEC_END,
};

#define ARGS_SPEC_OPTIONS                                                                          \
    {"password-stdin", no_argument, NULL, ARGS_SPEC_PASSWORD_STDIN},                               \
        {"password-file", required_argument, NULL, ARGS_SPEC_PASSWORD_FILE},                       \
        {"no-password", no_argument, NULL, ARGS_SPEC_NO_PASSWORD},                                 \
        {"ssh-key", required_argument, NULL, ARGS_SPEC_SSH_KEY},                                   \
        {"ssh-key-file", required_argument, NULL, ARGS_SPEC_SSH_KEY_FILE},                         \
        {"dns", required_argument, NULL, ARGS_SPEC_DNS},                                           \
        {"search", required_argument, NULL, ARGS_SPEC_SEARCH},                                     \
        {"domainname", required_argument, NULL, ARGS_SPEC_DOMAINNAME},                             \
        {"init", required_argument, NULL, ARGS_SPEC_INIT},                                         \
        {"halt-signal", required_argument, NULL, ARGS_SPEC_HALT_SIGNAL},                           \
        {"stop-timeout", required_argument, NULL, ARGS_SPEC_STOP_TIMEOUT},                         \
        {"autostart", required_argument, NULL, ARGS_SPEC_AUTOSTART},                               \
        {"cap-add", required_argument, NULL, ARGS_SPEC_CAP_ADD},                                   \
        {"cap-drop", required_argument, NULL, ARGS_SPEC_CAP_DROP},                                 \
    {                                                                                              \
        "io", required_argument, NULL, ARGS_SPEC_IO                                                \
    }

/* Files to read once parsing is done. */
struct args_spec_files {
    const char *password;                  /* "-" (stdin) or a path, NULL = none */
    const char *keys[ARGS_SPEC_MAX_FILES]; /* authorized_keys files */
    size_t n_keys;                         /* entries in keys */
};

/* Puts option c (one of the enum above) with its argument into body.
 * Returns 0 or -EINVAL with the reason in err. */
int args_spec_put(json_t *body, int c, const char *arg, struct args_spec_files *files, char *err,
                  size_t errlen);
/* Reads the files named in files into body's provision (the password's first
 * line; every key line that is not empty or a comment). Returns 0 or
 * -errno with the reason in err. */
int args_spec_read_files(json_t *body, const struct args_spec_files *files, char *err,
                         size_t errlen);
/* Help lines for these options. */
void args_spec_help(FILE *f);
