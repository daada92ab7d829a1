/* Helper programs as children (subproc.h). */
#include "common/subproc.h"

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>

/* Nothing of the caller's environment leaks in (MKE2FS_CONFIG, E2FSPROGS_*,
 * TAR_OPTIONS and the locale would change what the programs do). */
static char *const clean_env[] = {"PATH=/usr/sbin:/usr/bin:/sbin:/bin", "LC_ALL=C", NULL};

int
subproc_start(const char *path, const char *const argv[], int in, int out, int err, pid_t *pid)
{
    posix_spawn_file_actions_t fa;
    posix_spawnattr_t attr;
    sigset_t none, all;
    int r;

    sigemptyset(&none);
    sigfillset(&all);
    if ((r = posix_spawn_file_actions_init(&fa)) != 0)
        return -r;
    if ((r = posix_spawnattr_init(&attr)) != 0) {
        posix_spawn_file_actions_destroy(&fa);
        return -r;
    }
    r = in >= 0 ? posix_spawn_file_actions_adddup2(&fa, in, 0)
                : posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
    if (r == 0)
        r = out >= 0 ? posix_spawn_file_actions_adddup2(&fa, out, 1)
                     : posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
    if (r == 0)
        r = posix_spawn_file_actions_adddup2(&fa, err, 2);
    if (r == 0)
        r = posix_spawnattr_setsigmask(&attr, &none);
    if (r == 0)
        r = posix_spawnattr_setsigdefault(&attr, &all);
    if (r == 0)
        r = posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
    if (r == 0)
        r = posix_spawnp(pid, path, &fa, &attr, (char *const *)argv, clean_env);
    posix_spawn_file_actions_destroy(&fa);
    posix_spawnattr_destroy(&attr);
    return -r;
}
