/* The templates' detached clones; see tmpl_tree.h. */
#include "node/linux/tmpl_tree.h"

#include <fcntl.h>
#include <pthread.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/mem.h"
#include "node/linux/idmap.h"

/* One template's clone. */
struct tmpl_tree {
    char *path; /* templates/<name> */
    dev_t dev;  /* the directory the clone shows: a template replaced by */
    ino_t ino;  /* a rename is a new directory, and gets a new clone */
    int fd;     /* the clone, -1 = clone the path (a kernel before 6.15) */
};

struct tmpl_trees {
    pthread_mutex_t lock; /* over v: a rebuild closes the fd another create would clone */
    struct tmpl_tree *v;  /* one per template used */
    size_t n;             /* entries in v */
};

tmpl_trees_t *
tmpl_trees_new(void)
{
    tmpl_trees_t *t = xcalloc(1, sizeof(*t));

    pthread_mutex_init(&t->lock, NULL);
    return t;
}

void
tmpl_trees_free(tmpl_trees_t **p)
{
    tmpl_trees_t *t = *p;

    if (!t)
        return;
    for (size_t i = 0; i < t->n; i++) {
        if (t->v[i].fd >= 0)
            close(t->v[i].fd);
        free(t->v[i].path);
    }
    free(t->v);
    pthread_mutex_destroy(&t->lock);
    free(t);
    *p = NULL;
}

/* The entry of path, its clone made (again) when needed; under t->lock. */
static int
tree_fd(tmpl_trees_t *t, const char *path)
{
    struct stat st;
    struct tmpl_tree *e = NULL;

    if (stat(path, &st) < 0)
        return -1;
    for (size_t i = 0; i < t->n && !e; i++)
        if (strcmp(t->v[i].path, path) == 0)
            e = &t->v[i];
    if (e && e->dev == st.st_dev && e->ino == st.st_ino)
        return e->fd;
    if (!e) {
        t->v = xreallocarray(t->v, t->n + 1, sizeof(*t->v));
        e = &t->v[t->n++];
        e->path = xstrdup(path);
        e->fd = -1;
    }
    if (e->fd >= 0)
        close(e->fd);
    e->fd = idmap_tree(path);
    if (e->fd < 0)
        e->fd = -1;
    else if (fstat(e->fd, &st) < 0) /* what the clone shows, if path changed meanwhile */
        st.st_ino = 0;
    e->dev = st.st_dev;
    e->ino = st.st_ino;
    return e->fd;
}

int
tmpl_trees_get(tmpl_trees_t *t, const char *path)
{
    pthread_mutex_lock(&t->lock);
    int fd = tree_fd(t, path);
    /* A descriptor of its own: the entry's may be closed by the next call. */
    int dup = fd >= 0 ? fcntl(fd, F_DUPFD_CLOEXEC, 3) : -1;
    pthread_mutex_unlock(&t->lock);
    return dup;
}
