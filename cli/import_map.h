/* The importers' mapping: an old host's guest configuration (util-vserver,
 * OpenVZ, FreeVPS) to a vfleet guest (docs/import.md has the tables). Pure:
 * files are read, nothing is changed; the plan says what would be created,
 * from which files, and every setting that has no vfleet equivalent.
 *
 * Errors: -errno with a sentence in plan->error (a file that cannot be
 * read, a value that is not a number). */
#pragma once

#include <jansson.h>
#include <stdint.h>

struct import_plan {
    json_t *spec;     /* the guest, as POST /v1/guests takes it (name, template, limits, ips...) */
    char root[1024];  /* the guest's root tree on this host */
    json_t *unmapped; /* [{"setting", "value", "why"}]: what has no equivalent */
    json_t *notes;    /* ["..."]: what was decided */
    json_t *excludes; /* paths under root left out (device nodes a guest may not have) */
    uint64_t root_bytes; /* bytes the tree uses */
    char error[512];     /* why it failed */
};

void import_plan_init(struct import_plan *p, const char *template_name);
void import_plan_clear(struct import_plan *p);

/* /etc/vservers/NAME: the util-vserver layout. root overrides the vdir link. */
int import_vserver(const char *dir, const char *root, struct import_plan *p);
/* CTID.conf of OpenVZ (VE_PRIVATE is the root unless root overrides it). */
int import_openvz(const char *conf, const char *root, struct import_plan *p);
/* A FreeVPS guest: its root and its /proc/vservers/self text (limits and
 * addresses). */
int import_freevps(const char *self, const char *root, struct import_plan *p);

/* After a mapping: the tree's size, the device nodes it may not carry, a
 * disk large enough when the source gave none, a name that is a name.
 * name (may be NULL) replaces the source's. */
int import_finish(struct import_plan *p, const char *name);
