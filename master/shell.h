/* Interactive sessions (guest.shell) between WebSocket clients of the API
 * and the nodes: GET /v1/guests/{name}/shell upgraded to a WebSocket
 * (master/http_ws.c), bytes both ways over the node link as stream.data with
 * the stream's window (docs/protocol.md). Loop thread only. */
#pragma once

#include <stdbool.h>

#include "master/core.h"
#include "proto/msg.h"

/* Request ids of guest.shell have this bit set, so they never meet the
 * dispatch outboxes' ids (a guest.shell is never re-sent: a session does
 * not survive the link). */
#define SHELL_REF_BIT (1ULL << 62)

/* A node's ack or nack whose ref is a guest.shell's: handled (true), or
 * not ours (false). */
bool shell_on_answer(master_t *m, const char *node, const struct msg *msg);
/* stream.data, stream.ack, stream.exit from a node. */
void shell_on_stream(master_t *m, const char *node, const struct msg *msg);
/* Ends every session opened with the token of this id (it was deleted). */
void shell_revoke(master_t *m, const char *token);
/* Once a tick: sessions whose node went away, whose client never came or
 * whose token expired are ended. */
void shell_tick(master_t *m);
/* Ends every session (the master stops): clients get a close frame. */
void shell_close_all(master_t *m);
