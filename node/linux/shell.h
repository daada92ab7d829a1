/* The agent's side of a stream helper's socket (nsexec_stream.h): waits for
 * the first message and turns it into the backend's struct shell_proc. */
#pragma once

#include "node/backend.h"

/* Reads the helper's first message from sock (waiting at most timeout_ms):
 * on success out holds the command's pid and ends and out->ctl is sock
 * (owned by out); on failure sock is closed, errtext says why, and the
 * helper's errno (-ESRCH, -ENOENT...) or -ETIMEDOUT/-EPROTO is returned. */
int linux_shell_handshake(int sock, int timeout_ms, struct shell_proc *out);
