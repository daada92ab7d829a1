/* The usage batch's network counters, read with one raw netlink dump each
 * instead of a request per guest: the link statistics of every interface
 * of the caller's network namespace (RTM_GETSTATS, 64-bit link counters
 * only, none of RTM_GETLINK's attributes) and the named counters of one
 * nftables table (NFT_MSG_GETOBJ of counter objects only, where a listing
 * through libnftables first dumps the whole ruleset into its cache).
 *
 * A handle holds its two sockets and one receive buffer, opened on first
 * use; it is not thread-safe (one usage batch at a time). */
#pragma once

#include <stddef.h>
#include <stdint.h>

#include "node/linux/net_nft.h"

typedef struct nlstat nlstat_t;

/* nftables families (the kernel's NFPROTO_*, whose header clashes with
 * <netinet/in.h>). */
enum nlstat_family {
    NLSTAT_INET = 1,   /* NFPROTO_INET */
    NLSTAT_NETDEV = 5, /* NFPROTO_NETDEV */
};

/* One interface's counters, as the kernel's struct rtnl_link_stats64 has them. */
struct nlstat_link {
    int ifindex;         /* the interface */
    uint64_t rx_bytes;   /* received */
    uint64_t rx_packets; /* received */
    uint64_t tx_bytes;   /* sent */
    uint64_t tx_packets; /* sent */
};

nlstat_t *nlstat_new(void);
/* Closes the sockets and frees it; NULL-safe, clears *s. */
void nlstat_free(nlstat_t **s);

/* Every interface of the namespace, sorted by ifindex into *out (malloc'd,
 * replaced), *n entries. 0 or -errno. */
int nlstat_links(nlstat_t *s, struct nlstat_link **out, size_t *n);
/* One interface's counters: 0, -ENODEV when it does not exist, or -errno. */
int nlstat_link(nlstat_t *s, int ifindex, struct nlstat_link *out);
/* An entry of nlstat_links' array, or NULL. */
const struct nlstat_link *nlstat_link_find(const struct nlstat_link *l, size_t n, int ifindex);

/* The named counters of table in family,
 * sorted by name into *out (malloc'd, replaced; net_nft_counter_find looks
 * them up), *n entries. 0 (none when the table does not exist) or -errno. */
int nlstat_nft_counters(nlstat_t *s, enum nlstat_family family, const char *table,
                        struct nft_counter **out, size_t *n);
