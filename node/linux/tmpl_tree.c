/* The templates' detached clones; see tmpl_tree.h. */
#include "node/linux/tmpl_tree.h"

#include <fcntl.h>
#include <pthread.h>
#include <stdint.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/mem.h"
#include "node/linux/idmap.h"

/* A guest that uses a clone: the hash first, so that a look-up among a
 * thousand guests compares a thousand words, not a thousand paths. */
struct tmpl_user {
    uint64_t hash; /* user_hash(name) */
    char *name;    /* the guest's lower layer's path */
};

/* One template's clone. */
struct tmpl_tree {
    char *path;              /* templates/<name> */
    dev_t dev;               /* the directory the clone shows: a template replaced by */
    ino_t ino;               /* a rename is a new directory, and gets a new clone */
    int fd;                  /* the clone, -1 = none (a kernel before 6.15, or path gone) */
    struct tmpl_user *users; /* the guests whose lower layers use it */
    size_t nusers;           /* entries in users; the entry goes when the last is put */
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

static void
tree_clear(struct tmpl_tree *e)
{
    if (e->fd >= 0)
        close(e->fd);
    for (size_t i = 0; i < e->nusers; i++)
        free(e->users[i].name);
    free(e->users);
    free(e->path);
}

void
tmpl_trees_free(tmpl_trees_t **p)
{
    tmpl_trees_t *t = *p;

    if (!t)
        return;
    for (size_t i = 0; i < t->n; i++)
        tree_clear(&t->v[i]);
    free(t->v);
    pthread_mutex_destroy(&t->lock);
    free(t);
    *p = NULL;
}

/* FNV-1a. */
static uint64_t
user_hash(const char *s)
{
    uint64_t h = 14695981039346656037ULL;

    while (*s)
        h = (h ^ (unsigned char)*s++) * 1099511628211ULL;
    return h;
}

/* The index of user in e->users, or e->nusers. */
static size_t
user_find(const struct tmpl_tree *e, uint64_t hash, const char *user)
{
    size_t i = 0;

    while (i < e->nusers && (e->users[i].hash != hash || strcmp(e->users[i].name, user) != 0))
        i++;
    return i;
}

/* The entry of path, or NULL; under t->lock. */
static struct tmpl_tree *
tree_find(tmpl_trees_t *t, const char *path)
{
    for (size_t i = 0; i < t->n; i++)
        if (strcmp(t->v[i].path, path) == 0)
            return &t->v[i];
    return NULL;
}

/* user taken off every entry but keep's; an entry left with no user goes,
 * and its clone is closed: nothing keeps the template busy now. Under t->lock. */
static void
tree_unuse(tmpl_trees_t *t, uint64_t hash, const char *user, const char *keep)
{
    for (size_t i = t->n; i-- > 0;) {
        struct tmpl_tree *e = &t->v[i];
        if (keep && strcmp(e->path, keep) == 0)
            continue;
        size_t j = user_find(e, hash, user);
        if (j < e->nusers) {
            free(e->users[j].name);
            e->users[j] = e->users[--e->nusers];
        }
        if (!e->nusers) {
            tree_clear(e);
            *e = t->v[--t->n];
        }
    }
}

/* The entry of path with user recorded (and taken off any other: a guest
 * rebuilt over another template uses that one only), made when there is
 * none; under t->lock. */
static struct tmpl_tree *
tree_use(tmpl_trees_t *t, const char *path, const char *user)
{
    uint64_t hash = user_hash(user);
    tree_unuse(t, hash, user, path);
    struct tmpl_tree *e = tree_find(t, path);
    if (!e) {
        t->v = xreallocarray(t->v, t->n + 1, sizeof(*t->v));
        e = &t->v[t->n++];
        *e = (struct tmpl_tree){.path = xstrdup(path), .fd = -1};
    }
    if (user_find(e, hash, user) < e->nusers)
        return e;
    e->users = xreallocarray(e->users, e->nusers + 1, sizeof(*e->users));
    e->users[e->nusers++] = (struct tmpl_user){hash, xstrdup(user)};
    return e;
}

/* e's clone, made (again) when needed; under t->lock. */
static int
tree_fd(struct tmpl_tree *e)
{
    struct stat st;

    if (stat(e->path, &st) < 0) {
        /* The template is gone: its clone no longer serves, and would keep
         * the removed directory (and its file system) alive. */
        if (e->fd >= 0)
            close(e->fd);
        e->fd = -1;
        e->dev = 0;
        e->ino = 0;
        return -1;
    }
    if (e->dev == st.st_dev && e->ino == st.st_ino) /* a new entry's are 0 */
        return e->fd;
    if (e->fd >= 0)
        close(e->fd);
    e->fd = idmap_tree(e->path);
    if (e->fd < 0)
        e->fd = -1;
    else if (fstat(e->fd, &st) < 0) /* what the clone shows, if path changed meanwhile */
        st.st_ino = 0;
    e->dev = st.st_dev;
    e->ino = st.st_ino;
    return e->fd;
}

int
tmpl_trees_get(tmpl_trees_t *t, const char *path, const char *user)
{
    pthread_mutex_lock(&t->lock);
    int fd = tree_fd(tree_use(t, path, user));
    /* A descriptor of its own: the entry's may be closed by the next call. */
    int dup = fd >= 0 ? fcntl(fd, F_DUPFD_CLOEXEC, 3) : -1;
    pthread_mutex_unlock(&t->lock);
    return dup;
}

void
tmpl_trees_use(tmpl_trees_t *t, const char *path, const char *user)
{
    pthread_mutex_lock(&t->lock);
    tree_use(t, path, user);
    pthread_mutex_unlock(&t->lock);
}

void
tmpl_trees_put(tmpl_trees_t *t, const char *user)
{
    pthread_mutex_lock(&t->lock);
    tree_unuse(t, user_hash(user), user, NULL);
    pthread_mutex_unlock(&t->lock);
}
