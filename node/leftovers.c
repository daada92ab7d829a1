#include "node/leftovers.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/mem.h"

static void
closedirp(DIR **d)
{
    if (*d)
        closedir(*d);
}

static int
cmp_leftover(const void *a, const void *b)
{
    return strcmp(((const struct leftover *)a)->id, ((const struct leftover *)b)->id);
}

/* Whether s (a reader) found id's record unreadable and left it where it
 * is: a record the agent holds, or set aside at its next start, is no
 * record "never written". */
static bool
unreadable_in_place(const store_t *s, const char *id)
{
    for (size_t i = 0; i < store_problem_count(s); i++) {
        const struct store_problem *p = store_problem_at(s, i);
        if (!p->quarantined[0] && strncmp(p->file, id, SPEC_ID_LEN) == 0 &&
            strcmp(p->file + SPEC_ID_LEN, ".json") == 0)
            return true;
    }
    return false;
}

int
leftovers_list(const char *state_dir, const store_t *s, struct leftover **out, size_t *n)
{
    _cleanup_free_ char *data = xasprintf("%s/data", state_dir);
    _cleanup_(closedirp) DIR *d = opendir(data);
    struct leftover *v = NULL;
    size_t count = 0;
    struct dirent *de;

    *out = NULL;
    *n = 0;
    if (!d)
        return errno == ENOENT ? 0 : -errno;
    while ((errno = 0, de = readdir(d))) {
        struct stat st;
        if (!spec_is_uuid(de->d_name) || store_get(s, de->d_name))
            continue;
        if (fstatat(dirfd(d), de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0 || !S_ISDIR(st.st_mode))
            continue;
        v = xreallocarray(v, count + 1, sizeof(*v));
        memset(&v[count], 0, sizeof(v[count]));
        strscpy(v[count].id, de->d_name, sizeof(v[count].id));
        int r = store_set_aside(s, de->d_name, v[count].set_aside, sizeof(v[count].set_aside));
        if (r < 0) {
            free(v);
            return r;
        }
        v[count].unreadable = r == 0 && unreadable_in_place(s, de->d_name);
        count++;
    }
    if (errno) {
        int r = -errno;
        free(v);
        return r;
    }
    if (count)
        qsort(v, count, sizeof(*v), cmp_leftover);
    *out = v;
    *n = count;
    return 0;
}

int
leftovers_claim(const char *state_dir, const char *id, store_t **out)
{
    _cleanup_(store_close) store_t *s = NULL;
    struct stat st;
    int r;

    if (!spec_is_uuid(id))
        return -EINVAL;
    r = store_open(state_dir, &s);
    if (r < 0)
        return r == -EBUSY ? -EALREADY : r;
    if (store_get(s, id))
        return -EEXIST;
    r = store_set_aside(s, id, NULL, 0);
    if (r != 0)
        return r < 0 ? r : -EUCLEAN;
    _cleanup_free_ char *dir = xasprintf("%s/data/%s", state_dir, id);
    if (lstat(dir, &st) < 0 || !S_ISDIR(st.st_mode))
        return -ENOENT;
    *out = move_ptr(s);
    return 0;
}

int
leftovers_remove(const store_t *s, backend_t *b, const char *id)
{
    if (!spec_is_uuid(id))
        return -EINVAL;
    if (store_get(s, id) || store_set_aside(s, id, NULL, 0) != 0)
        return -EEXIST;
    _cleanup_free_ struct guest_spec *spec = xcalloc(1, sizeof(*spec));
    strscpy(spec->id, id, sizeof(spec->id));
    strscpy(spec->name, id, sizeof(spec->name));
    int r = b->ops->kill(b, spec, &(struct guest_runtime){0});
    if (r < 0 && r != -ENOENT)
        return r;
    return b->ops->destroy(b, spec);
}
