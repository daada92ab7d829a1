/* The cgroup files a usage sample reads, held open per guest (cgroup_files.h). */
#include "node/linux/cgroup_files.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "common/mem.h"
#include "common/sorted.h"
#include "node/linux/fdhigh.h"

#define CGROUP_FILES_ID_MAX 63 /* longer guest ids are not held (a UUID is 36) */

/* One guest's held files. */
struct entry {
    char id[CGROUP_FILES_ID_MAX + 1]; /* the guest */
    int *fd;                          /* n_files descriptors, -1 where none is held */
};

struct cgroup_files {
    pthread_mutex_t lock; /* the usage lane and a destroy may run on two threads */
    unsigned n_files;     /* files per guest */
    struct entry *e;      /* sorted by id */
    size_t n, cap;        /* entries used and allocated */
    size_t held;          /* descriptors held */
    size_t budget;        /* at most this many held */
};

cgroup_files_t *
cgroup_files_new(unsigned n_files)
{
    cgroup_files_t *f = xcalloc(1, sizeof(*f));
    struct rlimit rl;

    pthread_mutex_init(&f->lock, NULL);
    f->n_files = n_files;
    f->budget = getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY
                    ? (size_t)rl.rlim_cur / 4
                    : 65536;
    return f;
}

static void
entry_close(cgroup_files_t *f, struct entry *e)
{
    for (unsigned k = 0; k < f->n_files; k++)
        if (e->fd[k] >= 0) {
            close(e->fd[k]);
            f->held--;
        }
    free(e->fd);
}

void
cgroup_files_free(cgroup_files_t **p)
{
    cgroup_files_t *f = *p;

    if (!f)
        return;
    for (size_t i = 0; i < f->n; i++)
        entry_close(f, &f->e[i]);
    free(f->e);
    pthread_mutex_destroy(&f->lock);
    free(f);
    *p = NULL;
}

static const char *
entry_key(const void *elem)
{
    return ((const struct entry *)elem)->id;
}

/* The index of id's entry, or where it would go (*found false). Locked. */
static size_t
find(const cgroup_files_t *f, const char *id, bool *found)
{
    return sorted_find(f->e, f->n, sizeof(*f->e), entry_key, id, found);
}

/* One read from offset 0 into buf, NUL-terminated: the length or -errno. */
static ssize_t
read_at0(int fd, char *buf, size_t size)
{
    size_t len = 0;

    if (size < 2)
        return -EINVAL;
    /* A cgroup file fits one read; a second one confirms the end. */
    for (;;) {
        ssize_t n = pread(fd, buf + len, size - 1 - len, (off_t)len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return -errno;
        if (n == 0)
            break;
        len += (size_t)n;
        if (len == size - 1)
            return -EFBIG;
    }
    buf[len] = '\0';
    return (ssize_t)len;
}

ssize_t
cgroup_files_pread(cgroup_files_t *f, const char *id, unsigned k, char *buf, size_t size)
{
    bool found;
    int fd = -1;

    if (k >= f->n_files)
        return -EINVAL;
    pthread_mutex_lock(&f->lock);
    size_t i = find(f, id, &found);
    if (found)
        fd = f->e[i].fd[k];
    if (fd < 0) {
        pthread_mutex_unlock(&f->lock);
        return -EBADF;
    }
    /* Read under the lock: a forget on another thread must not close it meanwhile. */
    ssize_t n = read_at0(fd, buf, size);
    if (n < 0 && n != -EFBIG) {
        close(fd);
        f->e[i].fd[k] = -1;
        f->held--;
        n = -EBADF;
    }
    pthread_mutex_unlock(&f->lock);
    return n;
}

ssize_t
cgroup_files_open(cgroup_files_t *f, const char *id, unsigned k, const char *path, char *buf,
                  size_t size)
{
    bool found;

    if (k >= f->n_files)
        return -EINVAL;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    ssize_t n = read_at0(fd, buf, size);
    pthread_mutex_lock(&f->lock);
    if (n < 0 || f->held >= f->budget || strlen(id) > CGROUP_FILES_ID_MAX) {
        pthread_mutex_unlock(&f->lock);
        close(fd);
        return n;
    }
    size_t i = find(f, id, &found);
    if (!found) {
        if (f->n == f->cap)
            f->e = xreallocarray(f->e, f->cap = f->cap ? 2 * f->cap : 64, sizeof(*f->e));
        memmove(&f->e[i + 1], &f->e[i], (f->n - i) * sizeof(*f->e));
        f->n++;
        strscpy(f->e[i].id, id, sizeof(f->e[i].id));
        f->e[i].fd = xmalloc(f->n_files * sizeof(int));
        for (unsigned j = 0; j < f->n_files; j++)
            f->e[i].fd[j] = -1;
    }
    if (f->e[i].fd[k] >= 0) {
        close(fd); /* another thread held it first */
    } else {
        f->e[i].fd[k] = fdhigh_move(fd); /* held long: above select(2)'s numbers */
        f->held++;
    }
    pthread_mutex_unlock(&f->lock);
    return n;
}

void
cgroup_files_forget(cgroup_files_t *f, const char *id)
{
    bool found;

    pthread_mutex_lock(&f->lock);
    size_t i = find(f, id, &found);
    if (found) {
        entry_close(f, &f->e[i]);
        memmove(&f->e[i], &f->e[i + 1], (f->n - i - 1) * sizeof(*f->e));
        f->n--;
    }
    pthread_mutex_unlock(&f->lock);
}

size_t
cgroup_files_count(cgroup_files_t *f)
{
    pthread_mutex_lock(&f->lock);
    size_t n = f->held;
    pthread_mutex_unlock(&f->lock);
    return n;
}
