/* The spawner process (spawn.h) and the wire between it and its client.
 *
 * Wire: one request struct per SOCK_SEQPACKET message, one response struct
 * back, with up to SPAWN_MAX_FDS descriptors attached (SCM_RIGHTS). A request
 * carries one descriptor only for an exec or stream whose arguments do not
 * fit in it: a memfd sealed against writes, growth and shrinking, which the
 * spawner copies and checks (sizes, NULs) before any use. The
 * spawner runs a program of its own (vfleet-spawner, spawnd/main.c) built
 * from these same sources in the same build and carried inside the agent
 * (spawnd_image.c), or, when that program cannot be run, the agent's own
 * code in the forked process; either way both ends have the same structs,
 * so they need no encoding; their sizes are still checked on both sides.
 *
 * Internal to node/linux: only spawn.c, spawnd*.c and spawnd/main.c. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "node/linux/nsexec_stream.h"
#include "node/linux/spawn.h"

#define SPAWN_MAX_FDS 3 /* descriptors in one response */

enum spawn_op {
    SPAWN_OP_START = 1,  /* start a guest: cfg */
    SPAWN_OP_EXEC = 2,   /* run a command in a guest: cfg (cgroups, caps), pid, argv */
    SPAWN_OP_USERNS = 3, /* a user namespace fd: cfg.uid_base, cfg.uid_count */
    SPAWN_OP_STREAM = 4, /* start a command with open stdio: as exec, and stream */
};

struct spawn_request {
    uint32_t op;                  /* enum spawn_op */
    struct spawn_config cfg;      /* the guest */
    int32_t pid;                  /* exec: the guest's init */
    uint64_t start_time;          /* exec: its start time */
    uint32_t timeout_ms;          /* exec: kill the command after this */
    uint32_t argc;                /* exec: arguments packed in args or in the memfd */
    uint32_t args_size;           /* exec: 0 = the arguments are in args; else they are the
                                     args_size bytes of a sealed memfd attached to the request
                                     (SPAWN_EXEC_INLINE < args_size <= SPAWN_EXEC_ARGS_SIZE) */
    char args[SPAWN_EXEC_INLINE]; /* exec: argc NUL-terminated strings back to back */
    struct nsexec_stream stream;  /* stream: terminal or pipes (argc 0 = login shell) */
};

struct spawn_response {
    int32_t result;      /* 0 or -errno */
    int32_t pid;         /* start: init's pid, also on failure if a child was made */
    int32_t dead_pid;    /* start: a child cloned into cgroup2 that the kernel killed at
                            birth (the start went on without CLONE_INTO_CGROUP), 0 = none;
                            the agent's child, which the client reaps */
    uint64_t start_time; /* start: init's start time */
    uint32_t n_fds; /* descriptors attached: start 2 (pidfd, verdict pipe; 3 with root_later: the
                       root socket), exec 3 (out, err, status) */
    char error[SPAWN_ERROR_MAX]; /* on failure, the step and reason */
};

/* 0 when every string of c is NUL-terminated and its counts and ranges are
 * sane, -EINVAL otherwise. */
int spawnd_config_check(const struct spawn_config *c);

/* Sends one message with n_fds (at most SPAWN_MAX_FDS) descriptors attached.
 * Returns 0 or -errno. */
int spawnd_send(int sock, const void *buf, size_t len, const int *fds, size_t n_fds);

/* Receives one message of exactly len bytes; up to max_fds descriptors land
 * in fds (O_CLOEXEC), the count in *n_fds. Returns 0, -EPIPE at end of file,
 * -EPROTO for a message of the wrong size (its descriptors closed), -errno. */
int spawnd_recv(int sock, void *buf, size_t len, int *fds, size_t max_fds, size_t *n_fds);

/* Puts "what: strerror(err)" (what from fmt) into resp->error and -err into
 * resp->result. Returns -err. */
int spawnd_set_error(struct spawn_response *resp, int err, const char *fmt, ...) _printf_(3, 4);

/* Closes the fds that are >= 0 and sets them to -1. */
void spawnd_close_all(int *fds, size_t n);

/* The spawner's loop on sock (the agent's end is the client): serves
 * requests until end of file, then _exits. Runs in a single-threaded
 * process: the forked agent or the vfleet-spawner program. */
_noreturn_ void spawnd_main(int sock);

/* In the freshly forked spawner: runs the vfleet-spawner program carried in
 * this binary (spawnd_image.c) from a sealed memfd, with sock as its fd 3 and
 * the agent's log level. Returns only on failure, with -errno (the caller
 * then runs spawnd_main itself); -ENOENT when this build carries no program. */
int spawnd_exec_image(int sock);
