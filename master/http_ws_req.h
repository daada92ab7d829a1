/* The WebSocket request of GET /v1/guests/{name}/shell: its handshake's
 * headers and its query (master/http_ws_req.c), for master/http_ws.c. */
#pragma once

#include <stdbool.h>

#include "master/http_edge.h"
#include "proto/msg.h"

/* Sec-WebSocket-Accept of key (24 characters): 0, or -EIO. */
int accept_of(const char *key, char out[32]);
/* Whether a comma-separated header value holds token (case-insensitive). */
bool header_has(const char *v, const char *token);
/* The session's request into o: 0, or -EINVAL with *why. */
int parse_shell(struct http_req *req, struct msg_shell_open *o, const char **why);
