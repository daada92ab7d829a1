/* Long-lived descriptors above FD_SETSIZE.
 *
 * The agent holds descriptors per guest for as long as the guest lives (its
 * network namespace, its OOM eventfd, its usage files), thousands on a dense
 * host, while libnftables waits on its netlink socket with select(2), which
 * aborts the process (glibc's fortified FD_SET) for a descriptor past 1023.
 * Moving the long-lived ones to 1024 and up keeps the low numbers, which new
 * sockets take, free. */
#pragma once

/* Returns a duplicate of fd at FD_SETSIZE or above (close-on-exec) and closes
 * fd; or fd itself when it is already there, negative, or RLIMIT_NOFILE has
 * no room above FD_SETSIZE. */
int fdhigh_move(int fd);
