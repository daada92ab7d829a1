/* The stream helper: nsexec's sibling for guest.shell. A child of the
 * spawner joins the running guest (nsexec_join), makes the command's stdio —
 * a terminal from the guest's own /dev/ptmx (so `tty` inside names a
 * /dev/pts entry of the guest), or three pipes — forks the command into it,
 * hands the agent's ends over, and reports the command's end.
 *
 * Over its SOCK_SEQPACKET socket the helper sends exactly:
 *   1. a struct nsexec_started: err 0 with the command's host pid and its
 *      ends attached (SCM_RIGHTS: the terminal; or stdin, stdout, stderr),
 *      or err set when it could not start it;
 *   2. when the command has ended, a struct shell_status (node/backend.h)
 *      with its wait status;
 * then exits. Runs only in a fork of the single-threaded spawner. */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include "node/linux/nsexec.h"

/* The first message (same size and leading fields as nsexec_status, so a
 * failure that nsexec_join reports reads the same way). */
struct nsexec_started {
    int32_t err;                /* 0, or a positive errno */
    int32_t pid;                /* the command's pid in the host's pid namespace */
    int32_t n_fds;              /* descriptors attached: 1 (terminal) or 3 (pipes) */
    char what[SPAWN_ERROR_MAX]; /* the failed step when err is not 0 */
};

/* What the stream helper needs besides nsexec_params (whose status is the
 * socket and whose null, out and err are unused). */
struct nsexec_stream {
    bool tty;      /* a terminal, else pipes */
    uint16_t cols; /* the terminal's size */
    uint16_t rows; /* ... */
    char term[64]; /* TERM, "" = "xterm" */
    bool login;    /* no argv: root's shell from the guest's /etc/passwd, as a login shell */
};

/* Never returns. */
_noreturn_ void nsexec_stream_run(const struct nsexec_params *p, const struct nsexec_stream *s);
