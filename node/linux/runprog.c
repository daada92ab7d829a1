#include "node/linux/runprog.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/mem.h"

static char *const clean_env[] = {"PATH=/usr/sbin:/usr/bin:/sbin:/bin", "LC_ALL=C", NULL};

static int
which(const char *name, char *out, size_t n)
{
    static const char *const dirs[] = {"/usr/sbin", "/usr/bin", "/sbin", "/bin"};

    if (strchr(name, '/'))
        return strscpy(out, name, n) < 0 ? -ENAMETOOLONG : 0;
    for (size_t i = 0; i < ARRAY_SIZE(dirs); i++) {
        snprintf(out, n, "%s/%s", dirs[i], name);
        if (access(out, X_OK) == 0)
            return 0;
    }
    return -ENOENT;
}

/* text without its trailing newlines and spaces. */
static void
trimmed(char *text, char *err, size_t errlen)
{
    size_t n = strlen(text);

    while (n && (text[n - 1] == '\n' || text[n - 1] == ' '))
        text[--n] = '\0';
    snprintf(err, errlen, "%s", text);
}

static int
spawn(const char *path, const char *const argv[], const struct runprog_io *io, int errfd,
      pid_t *pid)
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
    if (io && io->in >= 0)
        r = posix_spawn_file_actions_adddup2(&fa, io->in, 0);
    else
        r = posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
    if (r == 0 && io && io->out >= 0)
        r = posix_spawn_file_actions_adddup2(&fa, io->out, 1);
    else if (r == 0)
        r = posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
    if (r == 0)
        r = posix_spawn_file_actions_adddup2(&fa, errfd, 2);
    if (r == 0)
        r = posix_spawnattr_setsigmask(&attr, &none);
    if (r == 0)
        r = posix_spawnattr_setsigdefault(&attr, &all);
    if (r == 0)
        r = posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
    if (r == 0)
        r = posix_spawn(pid, path, &fa, &attr, (char *const *)argv, clean_env);
    posix_spawn_file_actions_destroy(&fa);
    posix_spawnattr_destroy(&attr);
    return -r;
}

int
runprog(const char *const argv[], const struct runprog_io *io, char *err, size_t errlen)
{
    char path[PATH_MAX], text[4096];
    size_t kept = 0;
    int p[2], status = 0;
    pid_t pid;

    int r = which(argv[0], path, sizeof(path));
    if (r < 0) {
        if (err)
            snprintf(err, errlen, "%s is not installed", argv[0]);
        return r;
    }
    if (pipe2(p, O_CLOEXEC) < 0)
        return -errno;
    r = spawn(path, argv, io, p[1], &pid);
    close(p[1]);
    if (r < 0) {
        close(p[0]);
        return r;
    }
    /* Read to EOF so the child never blocks on a full pipe; keep the tail. */
    for (;;) {
        ssize_t k = read(p[0], text + kept, sizeof(text) - 1 - kept);
        if (k < 0 && errno == EINTR)
            continue;
        if (k <= 0)
            break;
        kept += (size_t)k;
        if (kept == sizeof(text) - 1) {
            memmove(text, text + kept / 2, kept - kept / 2);
            kept -= kept / 2;
        }
    }
    close(p[0]);
    text[kept] = '\0';
    while (waitpid(pid, &status, 0) < 0)
        if (errno != EINTR)
            return -errno;
    if (err)
        trimmed(text, err, errlen);
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}
