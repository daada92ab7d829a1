/* Fetching a template from the master's library (template_lib.h) to a node
 * that lacks it: an operation of kind "template" (operations.h), the import's
 * machinery with a template instead of a guest. Steps: prepare, send,
 * commit; abort on failure. Guests whose create waits for the template are
 * listed in the operation; they get their create command once the node has
 * the template, or go to their error state when the fetch fails. */
#pragma once

#include <stdbool.h>

#include "master/operations.h"

/* Starts fetching template name to node, or joins the fetch already
 * running there; guest_id (NULL = none: an explicit push) waits for it.
 * Inside the caller's transaction: the commands go after its commit. id
 * gets the operation's id. -ENOENT when the library has no such template. */
int op_template_fetch(master_t *m, const char *node, const char *name, const char *guest_id,
                      char id[SPEC_ID_LEN + 1]);
/* Whether guest_id waits for o (a template fetch). */
bool op_template_waits(const struct op *o, const char *guest_id);
