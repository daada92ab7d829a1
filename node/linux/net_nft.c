#include "node/linux/net_nft.h"

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "common/mem.h"
#include "node/linux/nftlib.h"

/* A script builder on open_memstream: abort on OOM like the x-allocators. */
struct script {
    FILE *f;    /* the stream */
    char *buf;  /* its buffer, valid after fclose */
    size_t len; /* its length */
};

static void
script_open(struct script *s)
{
    s->buf = NULL;
    s->len = 0;
    s->f = open_memstream(&s->buf, &s->len);
    if (!s->f)
        abort();
}

static char *
script_close(struct script *s)
{
    if (fclose(s->f) != 0)
        abort();
    return s->buf;
}

/* Writes "a, b, c" for the addresses of one family; returns how many. */
static size_t
put_addrs(FILE *f, const struct netaddr *addrs, size_t n, int family, const char *first)
{
    char buf[NETADDR_STRLEN];
    size_t k = 0;

    if (first) {
        fputs(first, f);
        k++;
    }
    for (size_t i = 0; i < n; i++) {
        if (addrs[i].family != family)
            continue;
        fprintf(f, "%s%s", k ? ", " : "", netaddr_format(&addrs[i], false, buf, sizeof(buf)));
        k++;
    }
    return k;
}

static size_t
count_family(const struct netaddr *addrs, size_t n, int family)
{
    size_t k = 0;

    for (size_t i = 0; i < n; i++)
        k += addrs[i].family == family;
    return k;
}

/* Runs a listing command and returns its output (malloc'd) or NULL. */
static char *
nft_list(const char *cmd)
{
    char *out = NULL;

    return nftlib_run(cmd, &out, NULL, 0) == 0 ? out : NULL;
}

char *
net_nft_host_script(const char *uplink, const struct netaddr *nat, size_t n_nat)
{
    struct script s;
    char buf[NETADDR_STRLEN];

    script_open(&s);
    fputs("add table inet vfleet\n"
          "add map inet vfleet from_guest { type ifname : verdict; }\n"
          "add map inet vfleet to_guest { type ifname : verdict; }\n"
          "add chain inet vfleet forward { type filter hook forward priority filter - 10; "
          "policy accept; }\n"
          "add chain inet vfleet input { type filter hook input priority filter - 10; "
          "policy accept; }\n"
          "add chain inet vfleet output { type filter hook output priority filter - 10; "
          "policy accept; }\n"
          "add chain inet vfleet postrouting { type nat hook postrouting priority srcnat; "
          "policy accept; }\n"
          "flush chain inet vfleet forward\n"
          "flush chain inet vfleet input\n"
          "flush chain inet vfleet output\n"
          "flush chain inet vfleet postrouting\n"
          "add rule inet vfleet forward iifname vmap @from_guest\n"
          "add rule inet vfleet forward oifname vmap @to_guest\n"
          "add rule inet vfleet input iifname vmap @from_guest\n"
          "add rule inet vfleet output oifname vmap @to_guest\n"
          "add table netdev vfleet\n",
          s.f);
    for (int fam = 0; uplink && *uplink && fam < 2; fam++) {
        int af = fam == 0 ? AF_INET : AF_INET6;
        size_t k = 0;
        for (size_t i = 0; i < n_nat; i++) {
            if (nat[i].family != af)
                continue;
            if (k++ == 0)
                fprintf(s.f, "add rule inet vfleet postrouting oifname \"%s\" %s saddr { ", uplink,
                        af == AF_INET ? "ip" : "ip6");
            else
                fputs(", ", s.f);
            fputs(netaddr_format(&nat[i], true, buf, sizeof(buf)), s.f);
        }
        if (k)
            fputs(" } masquerade\n", s.f);
    }
    return script_close(&s);
}

char *
net_nft_guest_script(const char *ifname, const struct netaddr *addrs, size_t n_addrs,
                     uint64_t tcp_limit)
{
    struct script s;

    script_open(&s);
    /* The TCP limit: one connlimit instance per guest, reached from both
     * directions through the maps, counts new connections to and from it. */
    fprintf(s.f,
            "add counter inet vfleet tcp_%1$s\n"
            "add chain inet vfleet g_%1$s\n"
            "flush chain inet vfleet g_%1$s\n",
            ifname);
    if (tcp_limit)
        fprintf(s.f,
                "add rule inet vfleet g_%1$s ct state new meta l4proto tcp ct count over "
                "%2$" PRIu64 " counter name \"tcp_%1$s\" reject with tcp reset\n",
                ifname, tcp_limit);
    fprintf(s.f,
            "add element inet vfleet from_guest { \"%1$s\" : jump g_%1$s }\n"
            "add element inet vfleet to_guest { \"%1$s\" : jump g_%1$s }\n",
            ifname);

    /* Anti-spoofing on the veth's ingress, before routing: the netdev hook
     * sees ARP as well as IP, and nothing the guest does reaches it. */
    fprintf(s.f,
            "add counter netdev vfleet spoof_%1$s\n"
            "add chain netdev vfleet g_%1$s { type filter hook ingress device \"%1$s\" "
            "priority filter; policy accept; }\n"
            "flush chain netdev vfleet g_%1$s\n",
            ifname);
    if (count_family(addrs, n_addrs, AF_INET)) {
        fprintf(s.f, "add rule netdev vfleet g_%s ether type arp arp saddr ip != { ", ifname);
        put_addrs(s.f, addrs, n_addrs, AF_INET, NULL);
        fprintf(s.f, " } counter name \"spoof_%1$s\" drop\n", ifname);
        fprintf(s.f, "add rule netdev vfleet g_%s ether type ip ip saddr != { ", ifname);
        put_addrs(s.f, addrs, n_addrs, AF_INET, NULL);
        fprintf(s.f, " } counter name \"spoof_%1$s\" drop\n", ifname);
    } else {
        fprintf(s.f,
                "add rule netdev vfleet g_%1$s ether type arp counter name \"spoof_%1$s\" drop\n"
                "add rule netdev vfleet g_%1$s ether type ip counter name \"spoof_%1$s\" drop\n",
                ifname);
    }
    /* IPv6: its own addresses and link-local ones (NDP and router traffic on
     * this point-to-point link); the unspecified address only for the
     * neighbor solicitations of duplicate address detection. */
    fprintf(s.f, "add rule netdev vfleet g_%s ether type ip6 ip6 saddr != { ", ifname);
    put_addrs(s.f, addrs, n_addrs, AF_INET6, "fe80::/10");
    fprintf(s.f,
            " } ip6 saddr != :: counter name \"spoof_%1$s\" drop\n"
            "add rule netdev vfleet g_%1$s ether type ip6 ip6 saddr :: icmpv6 type != "
            "nd-neighbor-solicit counter name \"spoof_%1$s\" drop\n",
            ifname);
    return script_close(&s);
}

char *
net_nft_guest_delete(const char *ifname)
{
    struct script s;

    script_open(&s);
    /* The map elements go first: a chain that a verdict still jumps to
     * cannot be deleted. Each "add" makes the "delete" after it valid. */
    fprintf(s.f,
            "add table inet vfleet\n"
            "add map inet vfleet from_guest { type ifname : verdict; }\n"
            "add map inet vfleet to_guest { type ifname : verdict; }\n"
            "add chain inet vfleet g_%1$s\n"
            "add element inet vfleet from_guest { \"%1$s\" : jump g_%1$s }\n"
            "add element inet vfleet to_guest { \"%1$s\" : jump g_%1$s }\n"
            "delete element inet vfleet from_guest { \"%1$s\" }\n"
            "delete element inet vfleet to_guest { \"%1$s\" }\n"
            "flush chain inet vfleet g_%1$s\n"
            "delete chain inet vfleet g_%1$s\n"
            "add counter inet vfleet tcp_%1$s\n"
            "delete counter inet vfleet tcp_%1$s\n",
            ifname);
    return script_close(&s);
}

char *
net_nft_guest_hook_delete(const char *ifname, bool chain_exists)
{
    struct script s;

    script_open(&s);
    if (chain_exists)
        fprintf(s.f,
                "flush chain netdev vfleet g_%1$s\n"
                "delete chain netdev vfleet g_%1$s\n",
                ifname);
    fprintf(s.f,
            "add table netdev vfleet\n"
            "add counter netdev vfleet spoof_%1$s\n"
            "delete counter netdev vfleet spoof_%1$s\n",
            ifname);
    return script_close(&s);
}

int
net_nft_hook_exists(const char *ifname)
{
    char cmd[96];

    snprintf(cmd, sizeof(cmd), "list chain netdev vfleet g_%s", ifname);
    _cleanup_free_ char *out = nft_list(cmd);
    return out != NULL;
}

int
net_nft_run(const char *script, char *err, size_t err_len)
{
    return nftlib_run(script, NULL, err, err_len);
}

int
net_nft_counter(const char *family, const char *name, uint64_t *packets, uint64_t *bytes)
{
    char cmd[128];

    snprintf(cmd, sizeof(cmd), "list counter %s vfleet %s", family, name);
    _cleanup_free_ char *out = nft_list(cmd);
    if (!out)
        return -ENOENT;
    const char *p = strstr(out, "packets ");
    if (!p || sscanf(p, "packets %" SCNu64 " bytes %" SCNu64, packets, bytes) != 2)
        return -EBADMSG;
    return 0;
}

static int
counter_cmp(const void *a, const void *b)
{
    return strcmp(((const struct nft_counter *)a)->name, ((const struct nft_counter *)b)->name);
}

int
net_nft_counters_parse(const char *text, struct nft_counter **out, size_t *n)
{
    struct nft_counter *c = NULL;
    size_t len = 0, cap = 0;
    bool open = false;

    /* "\tcounter NAME {" then "\t\tpackets P bytes B" (nft's listing). */
    for (const char *line = text; line && *line;) {
        char name[64];
        uint64_t packets;
        line += strspn(line, " \t");
        if (sscanf(line, "counter %63s {", name) == 1 && strlen(name) < sizeof(c->name)) {
            if (len == cap)
                c = xreallocarray(c, cap = cap ? 2 * cap : 64, sizeof(*c));
            strscpy(c[len].name, name, sizeof(c[len].name));
            c[len++].packets = 0;
            open = true;
        } else if (open && sscanf(line, "packets %" SCNu64, &packets) == 1) {
            c[len - 1].packets = packets;
            open = false;
        }
        line = strchr(line, '\n');
        if (line)
            line++;
    }
    if (len)
        qsort(c, len, sizeof(*c), counter_cmp);
    *out = c;
    *n = len;
    return 0;
}

int
net_nft_counters(const char *family, struct nft_counter **out, size_t *n)
{
    char cmd[64];

    *out = NULL;
    *n = 0;
    snprintf(cmd, sizeof(cmd), "list counters table %s vfleet", family);
    _cleanup_free_ char *text = nft_list(cmd);
    if (!text)
        return -ENOENT;
    return net_nft_counters_parse(text, out, n);
}

const struct nft_counter *
net_nft_counter_find(const struct nft_counter *c, size_t n, const char *name)
{
    struct nft_counter key;

    if (!c || strscpy(key.name, name, sizeof(key.name)) < 0)
        return NULL;
    return bsearch(&key, c, n, sizeof(*c), counter_cmp);
}

static int
ifname_cmp(const void *a, const void *b)
{
    return strcmp(a, b);
}

size_t
net_nft_ifnames_parse(const char *text, char (**out)[SPEC_IFNAME_SIZE])
{
    char(*names)[SPEC_IFNAME_SIZE] = NULL;
    size_t n = 0, cap = 0;

    for (const char *p = text; p && (p = strstr(p, "_vf")); p += 3) {
        size_t k = 0;
        while (k < 10 && isxdigit((unsigned char)p[3 + k]) && !isupper((unsigned char)p[3 + k]))
            k++;
        if (k != 10 || isalnum((unsigned char)p[13]))
            continue;
        if (n == cap) {
            cap = cap ? cap * 2 : 16;
            names = xreallocarray(names, cap, sizeof(*names));
        }
        memcpy(names[n], p + 1, 12);
        names[n++][12] = '\0';
    }
    if (n)
        qsort(names, n, sizeof(*names), ifname_cmp);
    size_t u = 0;
    for (size_t i = 0; i < n; i++)
        if (u == 0 || strcmp(names[u - 1], names[i]) != 0)
            memmove(names[u++], names[i], sizeof(*names));
    *out = names;
    return u;
}

int
net_nft_guest_ifnames(char (**out)[SPEC_IFNAME_SIZE], size_t *n)
{
    _cleanup_free_ char *inet = NULL, *netdev = NULL;
    /* -EINVAL: nft refused the listing, the table is not there. */
    int r = nftlib_run("list table inet vfleet", &inet, NULL, 0);
    if (r < 0 && r != -EINVAL)
        return r;
    r = nftlib_run("list table netdev vfleet", &netdev, NULL, 0);
    if (r < 0 && r != -EINVAL)
        return r;
    _cleanup_free_ char *both = xasprintf("%s\n%s", inet ? inet : "", netdev ? netdev : "");
    *n = net_nft_ifnames_parse(both, out);
    return 0;
}

int
net_nft_guest_present(const char *ifname)
{
    static const char *const tables[] = {"list table inet vfleet", "list table netdev vfleet"};
    char needle[32];

    snprintf(needle, sizeof(needle), "_%s", ifname);
    for (size_t i = 0; i < ARRAY_SIZE(tables); i++) {
        _cleanup_free_ char *out = nft_list(tables[i]);
        if (out && strstr(out, needle))
            return 1;
    }
    return 0;
}
