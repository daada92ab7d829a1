/* The template library: packed templates the master keeps and sends to the
 * nodes that lack one (op_template.c), as Incus copies an image to a cluster
 * member when a guest is created there.
 *
 * A directory ([master] templates, default <db dir>/templates, or one in
 * /tmp for an in-memory store) with, per template, NAME.vfx (a vfleet
 * archive, archive/archive.h, whose manifest says {"kind": "template",
 * "template": NAME}) and NAME.json ({"name", "sha256", "digest", "size",
 * "added_ms"}; digest is what the data channel checks, the SHA-256 of the
 * file's chunk hashes, proto/xfer.h). An entry is added from a complete upload (archives.h) whose
 * SHA-256 matched the one announced; the archive is moved, not copied, and
 * the description written last, so an entry is listed only once whole.
 *
 * Loop thread only. Returns >= 0 or -errno: -EINVAL a bad name or not a
 * template archive (why says), -ENOENT no such entry or upload, -EEXIST
 * another archive under the name, -EBADMSG an upload whose checksum differs,
 * -EAGAIN an upload not complete. */
#pragma once

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "master/core.h"

struct template_lib_entry {
    char name[NAME_MAX_LEN + 1]; /* the template's name */
    char sha256[65];             /* the archive's SHA-256 in hex */
    char digest[65];             /* its data channel digest (xfer_file_digest) in hex */
    uint64_t size;               /* the archive's bytes */
    uint64_t added_ms;           /* wall clock when it was added */
};

/* The library's directory (created when missing; only an add makes it). */
int template_lib_dir(master_t *m, char *out, size_t n);
/* NAME.vfx's path. */
int template_lib_path(master_t *m, const char *name, char *out, size_t n);
/* Adds upload as template name (its upload is consumed). Adding the same
 * archive again is 0 (nothing changes). */
int template_lib_add(master_t *m, const char *name, const char *upload,
                     struct template_lib_entry *out, char *why, size_t n);
int template_lib_get(master_t *m, const char *name, struct template_lib_entry *out);
int template_lib_remove(master_t *m, const char *name);
/* Every entry as JSON, keyed by name: {"sha256", "size", "added"}. */
json_t *template_lib_json(master_t *m);
/* One entry as JSON. */
json_t *template_lib_entry_json(const struct template_lib_entry *e);
