/* Rebuild: a guest's files go back to a template's (node/linux/rebuild.h),
 * keeping its id, addresses, limits, project and history. The guest domain
 * side: who may, from which state, onto which template; the change itself
 * is a new generation like any PATCH (guests_change), with the template and
 * the spec's rebuild counter moved, so the node's idempotency on
 * (guest, generation) and the re-sends after a reconnect hold for it too. */
#include <errno.h>
#include <string.h>

#include "common/mem.h"
#include "master/guests.h"
#include "master/registry.h"
#include "master/template_lib.h"

int
guests_rebuild(master_t *m, const struct caller *c, struct db_guest *g, struct guest_spec *cur,
               const char *tmpl, struct guest_spec *next, struct guest_err *e)
{
    if (!tmpl)
        tmpl = cur->template_name;
    if (!name_is_valid(tmpl))
        return guest_fail(e, -EINVAL, "template", "template must be a name");
    if (cur->flags & SPEC_FLAG_LOCK)
        return guest_fail(e, -ENOLCK, "flags", "guest \"%s\" is locked", g->name);
    if (g->observed != DB_OBS_STOPPED || g->desired != DB_DESIRED_STOPPED)
        return guest_fail(e, -EBUSY, "state",
                          "guest \"%s\" is %s: stop it first (vfleet guest rebuild stops and "
                          "starts it)",
                          g->name, db_observed_to_string(g->observed));
    if (!g->node || !master_node_connected(m, g->node))
        return guest_fail(e, -EHOSTUNREACH, NULL, "the guest's node is not connected");
    struct template_lib_entry lib;
    if (!registry_node_has_template(m->reg, g->node, tmpl))
        return guest_fail(e, -EBUSY, "template",
                          template_lib_get(m, tmpl, &lib) == 0
                              ? "node %s has no template \"%s\": send the library's copy first "
                                "(vfleet template push %s --to %s)"
                              : "node %s has no template \"%s\" (vfleet template ls)",
                          g->node, tmpl, tmpl, g->node);
    *next = *cur;
    strscpy(next->template_name, tmpl, sizeof(next->template_name));
    next->rebuild = cur->rebuild + 1;
    return guests_change(m, c, g, cur, next, e);
}
