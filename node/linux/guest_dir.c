/* A guest's directory on its node; see guest_dir.h. */
#include "node/linux/guest_dir.h"

#include <errno.h>
#include <stdio.h>
#include <unistd.h>

#include "common/mem.h"

int
guest_dir_remove(const char *path)
{
    /* Only the few files the backend itself makes live here. */
    static const char *const files[] = {"console.log",   "console.ring",     "disk.img",
                                        "frozen.move",   "provision.stamp",  "provision.stamp.new",
                                        "rebuild.stamp", "rebuild.stamp.new"};
    static const char *const dirs[] = {"root", "lower", "disk", "stage/root", "stage"};
    char buf[700];

    for (size_t i = 0; i < ARRAY_SIZE(files); i++) {
        snprintf(buf, sizeof(buf), "%s/%s", path, files[i]);
        if (unlink(buf) < 0 && errno != ENOENT)
            return -errno;
    }
    for (size_t i = 0; i < ARRAY_SIZE(dirs); i++) {
        snprintf(buf, sizeof(buf), "%s/%s", path, dirs[i]);
        if (rmdir(buf) < 0 && errno != ENOENT)
            return -errno;
    }
    if (rmdir(path) < 0 && errno != ENOENT)
        return -errno;
    return 0;
}
