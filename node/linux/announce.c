#include "node/linux/announce.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdbool.h>
#include <linux/if_packet.h>
#include <net/ethernet.h>
#include <net/if.h>
#include <net/if_arp.h>
#include <netinet/icmp6.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include "common/mem.h"

/* The ARP packet after the header: Ethernet and IPv4 only. */
struct garp {
    struct arphdr h;       /* hardware Ethernet, protocol IPv4, request */
    uint8_t sha[ETH_ALEN]; /* the uplink's address */
    uint8_t sip[4];        /* the guest's address */
    uint8_t tha[ETH_ALEN]; /* zeros */
    uint8_t tip[4];        /* the guest's address again: gratuitous */
} __attribute__((packed));

static int
uplink_mac(const char *uplink, uint8_t mac[ETH_ALEN])
{
    struct ifreq ifr = {0};
    _cleanup_close_ int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);

    if (fd < 0)
        return -errno;
    if (strscpy(ifr.ifr_name, uplink, sizeof(ifr.ifr_name)) < 0)
        return -ENAMETOOLONG;
    if (ioctl(fd, SIOCGIFHWADDR, &ifr) < 0)
        return -errno;
    memcpy(mac, ifr.ifr_hwaddr.sa_data, ETH_ALEN);
    return 0;
}

static int
garp(int fd, int ifindex, const uint8_t mac[ETH_ALEN], const uint8_t addr[4])
{
    struct garp p = {.h = {.ar_hrd = htons(ARPHRD_ETHER),
                           .ar_pro = htons(ETH_P_IP),
                           .ar_hln = ETH_ALEN,
                           .ar_pln = 4,
                           .ar_op = htons(ARPOP_REQUEST)}};
    struct sockaddr_ll to = {.sll_family = AF_PACKET,
                             .sll_protocol = htons(ETH_P_ARP),
                             .sll_ifindex = ifindex,
                             .sll_halen = ETH_ALEN,
                             .sll_addr = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff}};

    memcpy(p.sha, mac, ETH_ALEN);
    memcpy(p.sip, addr, 4);
    memcpy(p.tip, addr, 4);
    if (sendto(fd, &p, sizeof(p), 0, (struct sockaddr *)&to, sizeof(to)) < 0)
        return -errno;
    return 0;
}

/* An unsolicited neighbour advertisement to all nodes, override set. */
static int
unsolicited_na(int fd, const uint8_t mac[ETH_ALEN], const uint8_t addr[16])
{
    struct {
        struct nd_neighbor_advert na;
        struct nd_opt_hdr opt;
        uint8_t mac[ETH_ALEN];
    } __attribute__((packed)) p = {0};
    struct sockaddr_in6 to = {.sin6_family = AF_INET6};

    p.na.nd_na_type = ND_NEIGHBOR_ADVERT;
    p.na.nd_na_flags_reserved = ND_NA_FLAG_OVERRIDE;
    memcpy(&p.na.nd_na_target, addr, 16);
    p.opt.nd_opt_type = ND_OPT_TARGET_LINKADDR;
    p.opt.nd_opt_len = 1; /* in units of 8 bytes: type, length and the address */
    memcpy(p.mac, mac, ETH_ALEN);
    inet_pton(AF_INET6, "ff02::1", &to.sin6_addr);
    if (sendto(fd, &p, sizeof(p), 0, (struct sockaddr *)&to, sizeof(to)) < 0)
        return -errno;
    return 0;
}

static int
icmp6_socket(const char *uplink, int ifindex)
{
    int hops = 255, fd = socket(AF_INET6, SOCK_RAW | SOCK_CLOEXEC, IPPROTO_ICMPV6);

    if (fd < 0)
        return -errno;
    /* NDP is only believed with a hop limit of 255 (RFC 4861). */
    if (setsockopt(fd, IPPROTO_IPV6, IPV6_MULTICAST_HOPS, &hops, sizeof(hops)) < 0 ||
        setsockopt(fd, IPPROTO_IPV6, IPV6_MULTICAST_IF, &ifindex, sizeof(ifindex)) < 0 ||
        setsockopt(fd, SOL_SOCKET, SO_BINDTODEVICE, uplink, (socklen_t)strlen(uplink) + 1) < 0) {
        int r = -errno;
        close(fd);
        return r;
    }
    return fd;
}

int
announce_addrs(const char *uplink, const struct guest_spec *spec, int *arp_fd)
{
    uint8_t mac[ETH_ALEN];
    bool v4 = false, v6 = false;

    for (uint32_t i = 0; i < spec->n_addrs; i++)
        *(spec->addrs[i].family == AF_INET ? &v4 : &v6) = true;
    if (!v4 && !v6)
        return 0;
    int ifindex = (int)if_nametoindex(uplink), first = 0;
    if (!ifindex)
        return -errno;
    int r = uplink_mac(uplink, mac);
    if (r < 0)
        return r;
    /* Protocol 0: a socket that only sends (each sendto names ARP), so the
     * one kept open queues none of the host's ARP traffic. */
    if (v4 && *arp_fd < 0)
        *arp_fd = socket(AF_PACKET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    int fd4 = *arp_fd;
    _cleanup_close_ int fd6 = v6 ? icmp6_socket(uplink, ifindex) : -1;
    for (uint32_t i = 0; i < spec->n_addrs; i++) {
        const struct netaddr *a = &spec->addrs[i];
        if (a->family == AF_INET)
            r = fd4 < 0 ? -errno : garp(fd4, ifindex, mac, a->bytes);
        else
            r = fd6 < 0 ? fd6 : unsolicited_na(fd6, mac, a->bytes);
        if (r < 0 && !first)
            first = r;
    }
    return first;
}
