/* Provisioning: the spec's provision group written into a guest's files —
 * root's password hash into /etc/shadow, root's authorized_keys, and
 * /etc/resolv.conf — through the guest's mounted root (its overlay, so the
 * writes land in the guest's upper layer on its own disk).
 *
 * Every path is resolved with openat2(RESOLVE_IN_ROOT) from a descriptor of
 * the guest's root: a symlink the guest planted (/etc -> /host/etc, or
 * /root/.ssh -> ../../../) resolves inside the guest's tree, never out of it.
 * Files are replaced by a temporary file in the same directory and renameat,
 * so a half-written shadow never exists and a symlink at the name is
 * replaced, not followed. New files and directories belong to the owner of
 * the guest's root directory (the guest's root user, whatever uid it maps
 * to on the host).
 *
 * A stamp file on the host side (outside the guest) holds a hash of the
 * group last written, so the files are written when the group changes (and
 * after a rebuild, which removes the stamp), not on every apply: a guest
 * that changed its own password keeps it until the operator sets one. */
#pragma once

#include "proto/spec.h"

/* Writes p into the guest whose mounted root is root_dir when it differs
 * from what the stamp at stamp_path records, then updates the stamp. An
 * empty member leaves its file alone. Returns 0 (also when nothing had to
 * be written) or -errno with errtext set (the file that could not be
 * written). */
int provision_apply(const char *root_dir, const char *stamp_path, const struct spec_provision *p);

/* The same, unconditionally and without a stamp (tests, rebuild). */
int provision_write(const char *root_dir, const struct spec_provision *p);
