/* A guest's root filesystem: an overlayfs whose read-only lower layer is the
 * shared template directory and whose upper and work dirs live on the guest's
 * own disk (disk.h).
 *
 * This is the modern form of VServer "unification": every guest made from a
 * template shares its files and their page cache; a file a guest writes is
 * copied up to its disk first, so the template is never changed by a guest
 * and the copy counts against the guest's disk limit.
 *
 * Mount options, and why:
 *  - index=off: with the index on, overlayfs records the lower root's identity
 *    in the upper dir and refuses to mount it over any other lower dir. A
 *    template is rebuilt by renaming a new tree into place
 *    (deploy/templates/), so guests must mount over the new tree.
 *  - metacopy=off: a metadata-only copy-up (chown, chmod) would leave the
 *    file's data in the template, so a rebuilt template would change the data
 *    of files the guest owns. With it off, a copied-up file is whole.
 *  - redirect_dir=on: renaming a template directory in the guest is a
 *    redirect record instead of EXDEV and a copy of the whole tree.
 *  - xino=auto: one st_dev and unique inode numbers for the guest when the
 *    layers' inode numbers leave the bits for it (ext4 does).
 *  - nodev: device nodes only work in the guest's own /dev mount.
 * A template changed while guests run has undefined effects (overlayfs does
 * not allow changes under a mounted lower layer): rebuild templates by rename,
 * which leaves running guests on the old tree until they restart. After a
 * rebuild, a guest sees the new template's files except those it has written
 * or deleted (copied up or whited out on its disk).
 *
 * Returns 0 or -errno. Threads: no shared state; operations on the same
 * target must not run concurrently. */
#pragma once

/* Mounts the overlay at target (created mode 0755 if missing), with
 * template_dir as lower layer (the template itself, or its idmapped mount for
 * a guest with a user namespace: idmap.h) and <disk_mount>/upper and
 * <disk_mount>/work (created on first use; upper takes the lower root's mode
 * and owner, as the lower layer shows them) as
 * upper and work dirs. disk_mount is where the guest's disk is mounted.
 * Idempotent: 0 when this overlay (same upper dir) is already mounted there.
 * Returns -ENOENT when disk_mount is not a mount point (an upper dir on the
 * host's filesystem would escape the disk limit), -EBUSY when something else
 * is mounted at target, -ENOTDIR when
 * template_dir is not a directory, -EINVAL when a path holds a character
 * overlayfs options can not carry (',', ':', '\\', whitespace). */
int rootfs_mount(const char *template_dir, const char *disk_mount, const char *target);

/* Unmounts the overlay at target. Idempotent: 0 when nothing is mounted there.
 * Returns -EBUSY while processes still use it (no lazy detach: the guest's disk
 * could then not be unmounted either; stop the guest first), -EINVAL when
 * what is mounted there is not an overlay. */
int rootfs_umount(const char *target);

/* The conduit of a cold start (spawn.h, spawner_start_with): dir (made mode
 * 0700 if missing) bound onto itself and shared, with an empty directory
 * "root" (mode 0755) in it, the spawn's rootfs. A conduit left by an
 * interrupted start is taken down first. Returns 0 or -errno. */
int rootfs_conduit_open(const char *dir);

/* Binds the mounted root at root into the conduit dir (at dir/root), from
 * where the kernel propagates it into the child's slave copy. Returns 0 or
 * -errno. */
int rootfs_conduit_fill(const char *dir, const char *root);

/* Detaches the conduit dir and what is bound in it (lazy unmounts until dir
 * is no mount point, at most ROOTFS_MAX_STACK; the root itself stays
 * mounted where it is). Idempotent. Returns 0 or -errno. */
int rootfs_conduit_close(const char *dir);
