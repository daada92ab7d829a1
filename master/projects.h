/* Projects: a name that guests and tenant tokens belong to, and quotas on
 * what its guests may take (guest count, CPU, memory, disk, addresses).
 *
 * A guest's charge to its project is its scheduler charge (CPU and memory
 * limits, or the cluster's defaults when unset; disk size; address count),
 * stored on its row when it is created or changed. A quota is checked
 * inside the transaction of the change, after the change is written, on
 * the project's totals: the master is the single writer, so two creates
 * can never both pass the last unit, and a refusal rolls the change back.
 * Only growth is refused: a project over its quota (the quota was lowered)
 * may still shrink, stop, start and delete.
 *
 * The project "default" always exists (guests from before projects are
 * there) and cannot be deleted.
 *
 * Loop thread only. */
#pragma once

#include <jansson.h>

#include "master/auth.h"
#include "master/db.h"

#define PROJECTS_DEFAULT "default"

struct guest_err;

/* Refuses growth past the project's quota: delta is what the change just
 * written added (a create: its charge and one guest). 0, or -EDQUOT with
 * the quota named in e->field ("quota.memory") and the numbers in the
 * message. Call inside the change's transaction. */
int projects_check(master_t *m, const char *project, const struct db_quota *delta,
                   struct guest_err *e);

/* ---- the API's operations ---- */

/* -EEXIST when taken; -EINVAL for a bad name. */
int projects_create(master_t *m, const char *name, const struct db_quota *q, struct guest_err *e);
/* Replaces the quota: -ENOENT when there is no such project. */
int projects_set_quota(master_t *m, const char *name, const struct db_quota *q,
                       struct guest_err *e);
/* -EBUSY while guests or tokens are in it, or for "default". */
int projects_delete(master_t *m, const char *name, struct guest_err *e);
/* The API's view of a project (quota and usage) if c may see it: NULL with
 * *err = -ENOENT otherwise (a tenant sees its own project only). */
json_t *projects_json(master_t *m, const struct caller *c, const char *name, int *err);
/* Every project c may see, as an array. NULL with *err on a store failure. */
json_t *projects_list_json(master_t *m, const struct caller *c, int *err);
