#include "master/projects.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "common/log.h"
#include "common/mem.h"
#include "common/units.h"
#include "master/api.h"
#include "master/core.h"
#include "master/guests.h"

/* The quota fields, for checks and messages. */
static const struct {
    const char *field;                         /* the API's name, as e->field has it */
    size_t off;                                /* in struct db_quota */
    enum { AMOUNT, SIZE, MILLICORES } display; /* how the message shows it */
} quota_fields[] = {
    {"quota.guests", offsetof(struct db_quota, guests), AMOUNT},
    {"quota.cpus", offsetof(struct db_quota, cpu), MILLICORES},
    {"quota.memory", offsetof(struct db_quota, memory), SIZE},
    {"quota.disk", offsetof(struct db_quota, disk), SIZE},
    {"quota.addresses", offsetof(struct db_quota, addrs), AMOUNT},
};

static uint64_t
field(const struct db_quota *q, size_t off)
{
    return *(const uint64_t *)((const char *)q + off);
}

static void
show(int display, uint64_t v, char *buf, size_t n)
{
    if (display == SIZE)
        units_format_size(v, buf, n);
    else if (display == MILLICORES)
        snprintf(buf, n, "%g cores", (double)v / 1000.0);
    else
        snprintf(buf, n, "%" PRIu64, v);
}

int
projects_check(master_t *m, const char *project, const struct db_quota *delta, struct guest_err *e)
{
    struct db_project p = {0};
    struct db_quota used;
    int r = db_project_get(m->db, project, &p);

    if (r < 0)
        return guest_fail(e, r, "project", "cannot read project \"%s\"", project);
    /* Summing the project's guests visits every one of them: not done for a
     * project without a quota (the default one usually), where every create
     * paid it and placement slowed with the guests already there. */
    bool limited = false;
    for (size_t i = 0; i < ARRAY_SIZE(quota_fields); i++)
        limited |= field(&p.quota, quota_fields[i].off) != 0;
    if (!limited) {
        db_project_clear(&p);
        return 0;
    }
    r = db_project_usage(m->db, project, &used);
    for (size_t i = 0; r >= 0 && i < ARRAY_SIZE(quota_fields); i++) {
        uint64_t max = field(&p.quota, quota_fields[i].off);
        uint64_t now = field(&used, quota_fields[i].off);
        uint64_t add = field(delta, quota_fields[i].off);
        char a[48], b[48], c[48];
        if (!max || !add || now <= max)
            continue;
        show(quota_fields[i].display, now - add, a, sizeof(a));
        show(quota_fields[i].display, add, b, sizeof(b));
        show(quota_fields[i].display, max, c, sizeof(c));
        r = guest_fail(e, -EDQUOT, quota_fields[i].field,
                       "project \"%s\" would exceed its %s quota: %s in use, %s more asked, "
                       "the quota is %s",
                       project, quota_fields[i].field + 6, a, b, c);
    }
    if (r < 0 && r != -EDQUOT)
        guest_fail(e, r, NULL, "cannot sum project \"%s\"'s guests", project);
    db_project_clear(&p);
    return r;
}

int
projects_create(master_t *m, const char *name, const struct db_quota *q, struct guest_err *e)
{
    if (!name_is_valid(name))
        return guest_fail(e, -EINVAL, "name", "name is required: 1-63 of a-z, 0-9 and -");
    struct db_project p = {.name = (char *)name, .quota = *q};
    int r = db_project_insert(m->db, &p);
    if (r == -EEXIST)
        return guest_fail(e, r, "name", "a project named \"%s\" exists", name);
    if (r < 0)
        return guest_fail(e, r, NULL, "cannot store the project: %s", db_errmsg(m->db));
    log_notice("project=%s created", name);
    return 0;
}

int
projects_set_quota(master_t *m, const char *name, const struct db_quota *q, struct guest_err *e)
{
    int r = db_project_set_quota(m->db, name, q);

    if (r < 0)
        return guest_fail(e, r, NULL, "%s",
                          r == -ENOENT ? "no such project" : "cannot store the quota");
    log_notice("project=%s quota changed", name);
    return 0;
}

int
projects_delete(master_t *m, const char *name, struct guest_err *e)
{
    if (strcmp(name, PROJECTS_DEFAULT) == 0)
        return guest_fail(e, -EBUSY, NULL, "the default project cannot be deleted");
    int r = db_project_delete(m->db, name);
    if (r == -EBUSY)
        return guest_fail(e, r, NULL, "project \"%s\" still has guests or tokens", name);
    if (r < 0)
        return guest_fail(e, r, NULL, "%s",
                          r == -ENOENT ? "no such project" : "cannot delete the project");
    log_notice("project=%s deleted", name);
    return 0;
}

static json_t *
project_json(master_t *m, const struct db_project *p, int *err)
{
    struct db_quota used;
    int r = db_project_usage(m->db, p->name, &used);

    if (r < 0) {
        *err = r;
        return NULL;
    }
    return api_project_json(p, &used);
}

json_t *
projects_json(master_t *m, const struct caller *c, const char *name, int *err)
{
    struct db_project p = {0};
    json_t *o = NULL;

    *err = auth_sees_project(c, name) ? db_project_get(m->db, name, &p) : -ENOENT;
    if (*err >= 0)
        o = project_json(m, &p, err);
    db_project_clear(&p);
    return o;
}

struct list_ctx {
    master_t *m;            /* the master */
    const struct caller *c; /* who asks */
    json_t *items;          /* the answer */
    int err;                /* a failure on the way */
};

static int
list_one(void *userdata, const struct db_project *p)
{
    struct list_ctx *l = userdata;

    if (!auth_sees_project(l->c, p->name))
        return 0;
    json_t *o = project_json(l->m, p, &l->err);
    if (!o)
        return -1;
    json_array_append_new(l->items, o);
    return 0;
}

json_t *
projects_list_json(master_t *m, const struct caller *c, int *err)
{
    struct list_ctx l = {.m = m, .c = c, .items = json_array()};
    int r = db_project_list(m->db, list_one, &l);

    *err = l.err < 0 ? l.err : r < 0 ? r : 0;
    if (*err < 0) {
        json_decref(l.items);
        return NULL;
    }
    return l.items;
}
