/* vfleet-spawner: the spawner process as a program of its own, carried in
 * vfleet-node and run by it from a memfd (node/linux/spawnd_image.c); not
 * installed, not meant to be run by hand.
 *
 *   vfleet-spawner SOCK_FD LOG_LEVEL */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>

#include "common/log.h"
#include "node/linux/spawnd.h"

static long
number(const char *s, long max)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    return errno || end == s || *end || v < 0 || v > max ? -1 : v;
}

int
main(int argc, char **argv)
{
    long sock = argc == 3 ? number(argv[1], INT_MAX) : -1;
    long level = argc == 3 ? number(argv[2], LOG_DEBUG) : -1;
    int type = 0;
    socklen_t len = sizeof(type);
    if (sock < 0 || level < 0 || getsockopt((int)sock, SOL_SOCKET, SO_TYPE, &type, &len) < 0 ||
        type != SOCK_SEQPACKET) {
        fprintf(stderr, "vfleet-spawner: run by vfleet-node only\n");
        return 2;
    }
    log_setup("vfleet-spawner", LOG_SINK_STDERR, (int)level);
    spawnd_main((int)sock);
}
