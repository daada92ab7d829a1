/* The vfleet archive: one file holding a guest — its spec and its files —
 * that `vfleet guest export` writes, `vfleet guest import` restores on any
 * node, and the importers (vserver, openvz, freevps) build from an old host.
 *
 * It is a POSIX (pax) tar stream compressed with zstd (libzstd, with zstd's
 * own content checksum in every frame), whose members are:
 *   vfleet-guest.json  the manifest, always first: {"format": 1, "spec":
 *                      {...the guest's spec as the API writes it...},
 *                      "template": "busybox", "created": "...", "from": "..."}
 *   files/...          the guest's files: the overlay upper directory of an
 *                      exported guest (what it changed over its template,
 *                      whiteouts included), or the whole root tree of an
 *                      imported one
 * GNU tar writes and reads the members (--xattrs with every namespace, so
 * overlayfs's trusted.* attributes and whiteouts survive; numeric owners;
 * modes, times, hard links and device nodes kept; sparse files as sparse);
 * this module runs it through posix_spawn and (de)compresses its stream.
 *
 * Threads: no shared state; any thread. Returns >= 0 or -errno with a
 * sentence in err. */
#pragma once

#include <stddef.h>
#include <stdint.h>

#define ARCHIVE_MANIFEST     "vfleet-guest.json" /* the first member */
#define ARCHIVE_FORMAT       1                   /* the manifest's "format" */
#define ARCHIVE_MANIFEST_MAX (1u << 20)          /* bytes of a manifest read back */

struct archive_stats {
    uint64_t tar_bytes;  /* bytes of the tar stream */
    uint64_t file_bytes; /* bytes of the compressed file */
};

/* Writes an archive of manifest (a JSON object's text) and the tree at dir
 * to out_fd. excludes (NULL-terminated, may be NULL) are paths relative to
 * dir that are left out. */
int archive_pack(const char *manifest, const char *dir, const char *const *excludes, int out_fd,
                 struct archive_stats *st, char *err, size_t errlen);

/* Extracts the files/ members of the archive at in_fd into dir (created if
 * missing), owners, modes, times, xattrs, links and device nodes as they
 * were. The manifest is not extracted. */
int archive_unpack(int in_fd, const char *dir, char *err, size_t errlen);
/* archive_unpack, stopped with -ENOSPC when the tar stream passes
 * max_bytes: what a tree can take on disk is at most its tar stream (data,
 * sparse files' data only, and headers), so a bound on the stream bounds
 * what a hostile archive (a zstd bomb) can fill. */
int archive_unpack_max(int in_fd, const char *dir, uint64_t max_bytes, char *err, size_t errlen);

/* The manifest of the archive at in_fd (read from its start): a malloc'd
 * NUL-terminated JSON text in *out. -EBADMSG when the file is not an archive
 * or its first member is not the manifest. */
int archive_manifest(int in_fd, char **out, char *err, size_t errlen);
