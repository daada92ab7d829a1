#include "common/fsutil.h"

#include <errno.h>
#include <sys/stat.h>

#include "common/mem.h"

int
fs_mkdir_p(const char *path, mode_t mode)
{
    _cleanup_free_ char *p = xstrdup(path);

    for (char *c = p + 1;; c++) {
        if (*c != '/' && *c != '\0')
            continue;
        char saved = *c;
        *c = '\0';
        if (mkdir(p, mode) < 0 && errno != EEXIST)
            return -errno;
        *c = saved;
        if (saved == '\0')
            break;
    }
    return 0;
}
