/* Export and import: operations of kind "export" and "import"
 * (operations.h) that carry a guest as a vfleet archive (archive/archive.h)
 * between a node and the master, over the same data channel moves use.
 *
 * Export (op_export.c): the guest's node packs it (frozen meanwhile when it
 * runs) and sends the archive to the master, which keeps it for the client
 * to download (GET /v1/archives/{id}).
 *
 * Import (op_import.c): a client uploads an archive (POST /v1/archives);
 * the import places and records a new guest from its manifest (a new id, a
 * name of its own or the archive's, addresses allocated anew, of the same
 * families), the chosen node prepares a receiver, the master sends the
 * archive, and the node creates the guest's disk, unpacks the files into it
 * and starts it. Steps: prepare, send, commit; abort on failure, which
 * drops the new guest again. */
#pragma once

#include <stdbool.h>
#include <stddef.h>

#include "master/guests.h"
#include "master/operations.h"

/* Starts exporting guest name; id gets the operation's id. */
int op_export_start(master_t *m, const char *name, char id[SPEC_ID_LEN + 1], struct guest_err *e);

struct op_import_req {
    const char *archive;            /* the uploaded archive's id */
    const char *name;               /* the new guest's name, NULL = the archive's */
    const char *to;                 /* the node, NULL = the scheduler's choice */
    const struct sched_label *cons; /* node labels the node must have */
    size_t n_cons;                  /* entries in cons */
    bool keep_ips;                  /* ask for the archive's own addresses, not new ones */
};

/* Starts importing an uploaded archive; id gets the operation's id. */
int op_import_start(master_t *m, const struct op_import_req *rq, char id[SPEC_ID_LEN + 1],
                    struct guest_err *e);
