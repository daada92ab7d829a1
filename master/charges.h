/* Scheduler charges that follow transactions.
 *
 * The scheduler (sched.h) is memory only; the guest rows that justify its
 * charges are in the store. A charge made inside a transaction that then
 * rolls back (a validation error after placement, a full disk at commit)
 * must be given back, exactly as IPAM gives back its addresses. Every
 * charge and release of the master goes through here: inside a transaction
 * it is logged and undone on rollback of its level; outside one it is
 * simply made.
 *
 * Loop thread only. sched and db must outlive it. */
#pragma once

#include "master/db.h"
#include "master/sched.h"

typedef struct charges charges_t;

charges_t *charges_new(sched_t *sched, db_t *db);
void charges_destroy(charges_t **p);

/* sched_place, logged: 0 with out->node charged, or sched_place's -errno. */
int charges_place(charges_t *c, const struct sched_request *req, struct sched_result *out);
/* sched_reserve / sched_release, logged. */
int charges_reserve(charges_t *c, const char *node, const struct sched_resources *res,
                    const char *group);
int charges_release(charges_t *c, const char *node, const struct sched_resources *res,
                    const char *group);
/* Changes a guest's charge on its node from old to new. Growth in any
 * resource is checked with every placement filter on that node (out
 * explains a refusal: -ENOSPC, or -ENOENT for an unknown node), and a
 * refusal leaves the old charge; shrinking always succeeds. */
int charges_resize(charges_t *c, const char *node, const char *group,
                   const struct sched_resources *old_res, const struct sched_resources *new_res,
                   struct sched_result *out);
