/* The FreeVPS /proc/vservers views, in the text formats of the FreeVPS
 * kernel documentation (docs/freevps-views.md has them, with a golden
 * example each): on each node `setup`, `trafstat` and `routes_ipv4`, inside
 * each guest `self`. This module only renders and parses the text; the
 * FUSE filesystem (vservers_fs.c) and `vfleet-node vservers` fill the
 * values.
 *
 * Renderers return a malloc'd text and its length (never NULL: allocation
 * failure aborts). Parsers read what the renderers write, following the
 * documented format, and return 0 or -EBADMSG with the first bad line.
 * No state; any thread. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "proto/spec.h"

#define VS_VERSION  "1.30-0" /* "freevps patch version": the format level we follow */
#define VS_MAX_ROWS 65536    /* rows a parser accepts */
#define VS_IFNAMSIZ 16       /* an interface name with its NUL (IFNAMSIZ) */

/* setup: what the node runs. */
struct vs_setup {
    char version[32];  /* "1.30-0" */
    char build[96];    /* "vfleet 0.1.0 linux 6.18.0" */
    uint32_t contexts; /* guests on the node */
    uint32_t active;   /* of which running */
};
char *vs_render_setup(const struct vs_setup *s, size_t *len);
int vs_parse_setup(const char *text, struct vs_setup *out);

/* One trafstat row: a guest's traffic since the last read. */
struct vs_traffic {
    uint32_t context;  /* CONTXT_NUMBER */
    uint64_t incoming; /* INCOMING, bytes into the guest */
    uint64_t outgoing; /* OUTGOING, bytes out of the guest */
};
char *vs_render_trafstat(const struct vs_traffic *rows, size_t n, size_t *len);
/* *rows is malloc'd (the caller frees). */
int vs_parse_trafstat(const char *text, struct vs_traffic **rows, size_t *n);

/* One routes_ipv4 row. */
struct vs_route {
    char address[16];       /* dotted quad */
    char name[VS_IFNAMSIZ]; /* the host interface the route goes through */
    uint32_t context;       /* the guest's context */
};
char *vs_render_routes(const struct vs_route *rows, size_t n, size_t *len);
int vs_parse_routes(const char *text, struct vs_route **rows, size_t *n);

/* self: one guest's own view. Sizes in bytes here, kB in the text; a limit
 * of 0 is "unlimited". */
struct vs_self {
    uint32_t context;                   /* vserver id */
    char nodename[NAME_MAX_LEN + 1];    /* the guest's host name */
    char domainname[SPEC_PATH_MAX + 1]; /* "" = (none) */
    uint32_t flags;                     /* enum spec_flag */
    int64_t init_pid;                   /* init's pid on the host */
    uint64_t capbset;                   /* the bounding set */
    uint64_t procs_limit;               /* Process Limit */
    uint64_t procs;                     /* Process Count */
    uint64_t tasks;                     /* tasks (processes and threads) */
    uint64_t memory_limit;              /* Memory Limit */
    uint64_t memory;                    /* Used memory */
    uint64_t memory_peak;               /* Max total memory */
    uint64_t rss_limit;                 /* Context RSS limit */
    uint64_t rss;                       /* Context RSS */
    uint64_t rss_peak;                  /* Max RSS memory */
    uint64_t disk_limit;                /* Disk Limit */
    uint64_t disk;                      /* Used disk memory */
    uint64_t files_limit;               /* Files limit (inodes) */
    uint64_t files;                     /* Used files */
    uint64_t tcp_limit;                 /* TCP sockets limit */
    uint64_t tcp;                       /* Established sockets */
    char vdev[VS_IFNAMSIZ];             /* the guest's interface, "" = none */
    char hdev[VS_IFNAMSIZ];             /* its host side */
    uint64_t speed_kbit;                /* its speed cap, 0 = unlimited */
    char addrs[512];                    /* "10.0.0.5/32;fd00::5/128;" */
    uint64_t incoming;                  /* Incoming traffic, bytes */
    uint64_t outgoing;                  /* Outgoing traffic, bytes */
};
char *vs_render_self(const struct vs_self *s, size_t *len);
int vs_parse_self(const char *text, struct vs_self *out);
