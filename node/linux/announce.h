/* Telling a segment where guest addresses are now: after a guest moved to
 * this host (or got an address), its addresses are announced on the uplink
 * on behalf of the guest, which sits behind the host's routes: a
 * gratuitous ARP per IPv4 address and an unsolicited neighbour
 * advertisement (override flag) per IPv6 address, each with the uplink's
 * hardware address. Hosts on the segment that still map an address to the
 * host the guest left update their neighbour entry at once instead of after
 * it goes stale; proxy ARP/NDP on the uplink (net.h, proxy_neigh) answers
 * the requests that follow.
 *
 * Threads: no shared state but *arp_fd. Returns 0 or -errno (best effort: an
 * address that cannot be announced is skipped, and the first error is
 * returned). *arp_fd is the caller's ARP packet socket (-1 before the first
 * IPv4 address: opened then and kept; the caller closes it): closing a packet
 * socket waits for an RCU grace period (synchronize_net, 10-15 ms here), which
 * a socket per call paid at every start, under the backend's network lock. */
#pragma once

#include "proto/spec.h"

int announce_addrs(const char *uplink, const struct guest_spec *spec, int *arp_fd);
