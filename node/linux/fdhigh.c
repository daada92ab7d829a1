/* Long-lived descriptors above FD_SETSIZE (fdhigh.h). */
#include "node/linux/fdhigh.h"

#include <fcntl.h>
#include <sys/select.h>
#include <unistd.h>

int
fdhigh_move(int fd)
{
    if (fd < 0 || fd >= FD_SETSIZE)
        return fd;
    int high = fcntl(fd, F_DUPFD_CLOEXEC, FD_SETSIZE);
    if (high < 0)
        return fd; /* no room up there (EINVAL, EMFILE): where it was, as before */
    close(fd);
    return high;
}
