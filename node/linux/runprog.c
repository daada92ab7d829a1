#include "node/linux/runprog.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/mem.h"
#include "common/subproc.h"

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
    r = subproc_start(path, argv, io ? io->in : -1, io ? io->out : -1, p[1], &pid);
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
