/* The templates' detached clones (idmap_tree), one per template directory,
 * which guests' idmapped lower layers are cloned from: cloning the
 * template's path walks every mount on the templates' mount, that is every
 * guest's, and a held clone has none (docs/performance.md, density). Safe
 * to use from several threads: distinct guests' creates run at once. */
#pragma once

typedef struct tmpl_trees tmpl_trees_t;

tmpl_trees_t *tmpl_trees_new(void);
void tmpl_trees_free(tmpl_trees_t **p);

/* A new descriptor (O_CLOEXEC; the caller closes it) of the clone of the
 * template at path, made again when the directory at path is not the one
 * the clone shows (a template replaced by a rename); -1 when there is none
 * to use (the kernel cannot clone a detached tree, or path is gone): the
 * caller clones the path. */
int tmpl_trees_get(tmpl_trees_t *t, const char *path);
