/* Small filesystem helpers shared by the programs. */
#pragma once

#include <sys/types.h>

/* mkdir -p: creates every missing component of path with mode; existing
 * directories are kept as they are. Returns 0 or -errno. */
int fs_mkdir_p(const char *path, mode_t mode);
