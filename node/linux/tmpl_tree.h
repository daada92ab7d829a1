/* The templates' detached clones (idmap_tree), one per template directory,
 * which guests' idmapped lower layers are cloned from: cloning the
 * template's path walks every mount on the templates' mount, that is every
 * guest's, and a held clone has none (docs/performance.md, density). Safe
 * to use from several threads: distinct guests' creates run at once.
 *
 * A clone is held only while a guest uses it: each get names its user (the
 * guest's lower layer), and the clone is closed when its last user is put.
 * A held clone keeps the template's directory and file system alive, so
 * without this a template that no guest uses any more could be unmounted
 * or removed and its storage (a loop device, an ext4 superblock) would stay
 * until the agent exits. */
#pragma once

typedef struct tmpl_trees tmpl_trees_t;

tmpl_trees_t *tmpl_trees_new(void);
void tmpl_trees_free(tmpl_trees_t **p);

/* A new descriptor (O_CLOEXEC; the caller closes it) of the clone of the
 * template at path, made again when the directory at path is not the one
 * the clone shows (a template replaced by a rename); -1 when there is none
 * to use (the kernel cannot clone a detached tree, or path is gone): the
 * caller clones the path. user (a string unique to the guest: its lower
 * layer's path) is recorded as a user of path's clone, whether or not
 * there is one, and of no other template's (a guest rebuilt over another
 * template leaves its old one); recording it again changes nothing. */
int tmpl_trees_get(tmpl_trees_t *t, const char *path, const char *user);

/* Records user as a user of path's clone without making or returning one:
 * for a guest whose lower layer is already mounted (from before the agent
 * started), so that its template's clone is kept while it exists. */
void tmpl_trees_use(tmpl_trees_t *t, const char *path, const char *user);

/* user no longer uses a clone (its guest is destroyed); a clone is closed
 * when that was its last user. A user not recorded changes nothing.
 * Descriptors already handed out by get stay valid. */
void tmpl_trees_put(tmpl_trees_t *t, const char *user);
