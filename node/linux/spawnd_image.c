/* The vfleet-spawner program carried inside the agent and run from a sealed
 * memfd (spawnd.h).
 *
 * Why: the spawner clones every guest's init and forks an id-mapping helper
 * and a console reader per start. A fork of the agent maps the agent's thirty
 * libraries (216 mappings), and every one of those clones copied them all
 * (dup_mmap) and the guest's exec tore them down again: about a fifth of the
 * CPU a create cost on a two-node cluster (docs/performance.md). The program
 * is built from the spawner's own sources and maps libc, libcap and
 * libseccomp only.
 *
 * Why a memfd and not a file beside vfleet-node: nothing to install or find
 * (tests, the build tree and the packages run the same bytes), the bytes
 * match the agent's structs by construction, and the seals keep anyone who
 * gets hold of the memfd (as /proc/PID/exe of the spawner or a child of it)
 * from changing what later children run. */
#include "node/linux/spawnd.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <sys/mman.h>
#include <unistd.h>

#include "common/log.h"

#ifndef MFD_EXEC
#define MFD_EXEC 0x0010U /* Linux 6.3: executable even under vm.memfd_noexec=1 */
#endif

#ifdef VFLEET_SPAWNER_IMAGE
/* The program's bytes, put into .rodata by the assembler at build time. */
__asm__(".pushsection .rodata\n"
        ".balign 64\n"
        "vfleet_spawner_image:\n"
        ".incbin \"" VFLEET_SPAWNER_IMAGE "\"\n"
        "vfleet_spawner_image_end:\n"
        ".popsection\n");
extern const char vfleet_spawner_image[] __asm__("vfleet_spawner_image");
extern const char vfleet_spawner_image_end[] __asm__("vfleet_spawner_image_end");

/* A memfd holding the program, sealed against any change. */
static int
image_fd(void)
{
    const unsigned flags = MFD_CLOEXEC | MFD_ALLOW_SEALING;
    /* MFD_EXEC is unknown before 6.3 (EINVAL): plain memfds are executable there. */
    int fd = memfd_create("vfleet-spawner", flags | MFD_EXEC);
    if (fd < 0 && errno == EINVAL)
        fd = memfd_create("vfleet-spawner", flags);
    if (fd < 0)
        return -errno;
    const char *p = vfleet_spawner_image;
    size_t left = (size_t)(vfleet_spawner_image_end - vfleet_spawner_image);
    while (left > 0) {
        ssize_t n = write(fd, p, left);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            int r = n < 0 ? -errno : -EIO;
            close(fd);
            return r;
        }
        p += n;
        left -= (size_t)n;
    }
    if (fcntl(fd, F_ADD_SEALS, F_SEAL_SEAL | F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE) < 0) {
        int r = -errno;
        close(fd);
        return r;
    }
    return fd;
}

int
spawnd_exec_image(int sock)
{
    int fd = image_fd();
    if (fd < 0)
        return fd;
    char sock_arg[16], level_arg[16];
    snprintf(sock_arg, sizeof(sock_arg), "%d", sock);
    snprintf(level_arg, sizeof(level_arg), "%d", log_max_level);
    char *argv[] = {"vfleet-spawner", sock_arg, level_arg, NULL};
    int flags = fcntl(sock, F_GETFD);
    if (flags < 0 || fcntl(sock, F_SETFD, flags & ~FD_CLOEXEC) < 0) {
        int r = -errno;
        close(fd);
        return r;
    }
    extern char **environ;
    fexecve(fd, argv, environ);
    int r = -errno;
    (void)fcntl(sock, F_SETFD, flags);
    close(fd);
    return r;
}
#else
int
spawnd_exec_image(int sock)
{
    (void)sock;
    return -ENOENT;
}
#endif
