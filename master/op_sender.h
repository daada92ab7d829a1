/* The master as the sending end of the data channel (proto/xfer.h): a
 * thread of its own runs the copy pass of one file to a node's receiver
 * (xfer blocks) and wakes the loop for progress and at the end. Imports
 * (op_import.c) and template fetches (op_template.c) send this way.
 *
 * Loop thread, but the thread's own fields. */
#pragma once

#include "master/operations.h"

/* The end of a pass: result >= 0 with the digest sent (64 hex), or < 0
 * with a sentence. The sender is released already. */
typedef void (*op_sender_done_fn)(master_t *m, struct op *o, int result, const char *err,
                                  const char *digest_hex);

/* Sends the file at path to o's params "endpoint" with the secret
 * "_secret", over CurveZMQ when o chose it (archives_curve, archives.h:
 * the keys of now; done gets -EKEYREVOKED when they went since);
 * progress goes to operations_progress. o->rt holds the sender until done
 * runs (or op_sender_release). */
void op_sender_start(master_t *m, struct op *o, const char *path, op_sender_done_fn done);
/* Stops and frees o's sender; NULL-safe on o->rt. */
void op_sender_release(master_t *m, struct op *o);
