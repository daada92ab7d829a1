/* The node session: every frame a node sends, and what the master sends
 * back outside the outboxes (welcome, heartbeat echoes, nacks of bad
 * frames, requests to say hello).
 *
 * Frames are decoded strictly (proto/codec.h); anything malformed gets a
 * nack and changes nothing. What a node's outbox sends (events, exec
 * results) is recorded by node, request id and frame hash in the batch that
 * handles it and acknowledged only after that batch commits; a re-send of
 * it is acknowledged again and not handled twice. hello is answered by a
 * welcome naming it; an older hello sent again (its id below what the node
 * said since) is welcomed and otherwise ignored. A node must say hello before anything else it
 * sends counts. Acks, nacks, events and exec results are matched against
 * the node's outbox (dispatch.h) and the guests placed on that node.
 *
 * Loop thread only. */
#pragma once

#include "master/core.h"
#include "proto/msg.h"

/* The zwatch callback of a node link (userdata: its struct mlink). */
void session_on_frame(zwatch_t *w, const char *peer, const void *buf, size_t len, void *userdata);
/* Sends a message that expects no answer to peer on link ml. */
void session_send(master_t *m, struct mlink *ml, const char *peer, const struct msg *msg);
/* Puts an encoded frame on the wire to a node, on the link it last used. */
int session_send_raw(master_t *m, const char *node, const void *buf, size_t len);
/* Asks the nodes known from the store that have not said hello to this
 * master (it restarted) to say it now. */
void session_poke_unwelcomed(master_t *m);
