/* The guest spec: the full desired state of one guest, as the master sends it
 * in guest.apply and the node stores it. A plain value (fixed-size arrays, no
 * pointers), so it can be copied, compared and written to disk as it is.
 *
 * Limits: 0 means "not set" (unlimited, or the kernel's default), as
 * "unlimited" did in OpenVZ configs. Sizes are bytes, rates bits per second. */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include "common/name.h"
#include "common/netaddr.h"

#define SPEC_ID_LEN        36  /* a UUID in text form, without the NUL */
#define SPEC_MAX_ADDRS     64  /* wire cap; the cluster default is 16 (configurable) */
#define SPEC_MAX_LABELS    32  /* labels per guest */
#define SPEC_LABEL_KEY_MAX 63  /* label key length, a name */
#define SPEC_LABEL_VAL_MAX 255 /* label value length */
#define SPEC_PATH_MAX      255 /* init path, template name and similar */
#define SPEC_MAX_IO_DEVS   8   /* per-device I/O caps */
#define SPEC_CAP_MAX       63  /* capabilities are numbered 0..63 in the masks */

/* Guest flags (VServer's context flags, the ones that still mean something). */
enum spec_flag {
    SPEC_FLAG_PRIVATE = 1u << 0, /* no exec/enter into the guest from the host */
    SPEC_FLAG_LOCK = 1u << 1,    /* no new start or exec while set */
    /* No user namespace: guest root is host root, bounded by capabilities
     * only (VServer-style guests that need it). Fixed at creation. */
    SPEC_FLAG_PRIVILEGED = 1u << 2,
    SPEC_FLAG_NESTING = 1u << 3, /* the syscall filter lets the guest make namespaces */
};
#define SPEC_FLAGS_ALL                                                                             \
    (SPEC_FLAG_PRIVATE | SPEC_FLAG_LOCK | SPEC_FLAG_PRIVILEGED | SPEC_FLAG_NESTING)

/* An I/O cap on one block device, by its major:minor on the host. */
struct spec_io_dev {
    uint32_t major;      /* block device major number */
    uint32_t minor;      /* block device minor number */
    uint64_t read_bps;   /* read bytes per second, 0 = no cap */
    uint64_t write_bps;  /* write bytes per second, 0 = no cap */
    uint64_t read_iops;  /* read operations per second, 0 = no cap */
    uint64_t write_iops; /* write operations per second, 0 = no cap */
};

struct spec_limits {
    uint64_t procs;       /* processes and threads (pids controller) */
    uint64_t memory;      /* memory hard limit, bytes */
    uint64_t rss;         /* resident soft limit: reclaim past it (FreeVPS "Context RSS") */
    uint64_t swap;        /* swap allowed beyond memory, bytes */
    uint32_t cpu_weight;  /* relative CPU share 1..10000 (cgroup v2 scale), 0 = default 100 */
    uint32_t cpu_max;     /* CPU ceiling in millicores (1000 = one core), 0 = none */
    uint32_t cpu_burst;   /* burst allowance above the ceiling, in millicores, 0 = none */
    uint32_t io_weight;   /* relative I/O share 1..10000, 0 = default 100 */
    uint64_t disk;        /* disk space, bytes: the size of the guest's ext4 image */
    uint64_t inodes;      /* inode count of the guest's filesystem */
    uint64_t nofile;      /* open files per process (RLIMIT_NOFILE) */
    uint64_t tcp_sockets; /* established TCP connections */
    uint64_t net_in;      /* inbound rate, bits per second */
    uint64_t net_out;     /* outbound rate, bits per second */
    uint32_t n_io_devs;   /* entries used in io_devs */
    struct spec_io_dev io_devs[SPEC_MAX_IO_DEVS]; /* per-device bandwidth and iops caps */
};

struct spec_label {
    char key[SPEC_LABEL_KEY_MAX + 1];   /* a name (name_is_valid) */
    char value[SPEC_LABEL_VAL_MAX + 1]; /* any printable text */
};

struct guest_spec {
    char id[SPEC_ID_LEN + 1];             /* stable identity, a UUID chosen by the master */
    char name[NAME_MAX_LEN + 1];          /* the guest's name, a DNS label; also its hostname */
    uint64_t generation;                  /* bumped by the master on every change, >= 1 */
    char template_name[NAME_MAX_LEN + 1]; /* root filesystem template, a name */
    char init[SPEC_PATH_MAX + 1];         /* absolute path of the guest's init ("" = /sbin/init) */
    char domainname[SPEC_PATH_MAX + 1];   /* NIS domain name, "" = none */
    uint32_t halt_signal;                 /* signal that asks init to halt, 0 = SIGTERM */
    uint32_t stop_timeout;                /* seconds before SIGKILL on stop, 0 = 30 */
    uint32_t flags;                       /* enum spec_flag bits */
    bool autostart;                       /* start when the node boots or re-adopts */
    struct spec_limits limits;            /* resource limits */
    uint64_t caps_add;                    /* capabilities added to the default set (bit = CAP_*) */
    uint64_t caps_drop;                   /* capabilities dropped from the default set */
    uint32_t n_addrs;                     /* entries used in addrs */
    struct netaddr addrs[SPEC_MAX_ADDRS]; /* IPv4/IPv6 addresses, host prefix */
    uint32_t n_labels;                    /* entries used in labels */
    struct spec_label labels[SPEC_MAX_LABELS]; /* operator labels */
};

/* The default bounding set: Docker's 14 capabilities. */
uint64_t spec_default_caps(void);
/* The bounding set a guest gets: (default | add) & ~drop. */
uint64_t spec_effective_caps(const struct guest_spec *s);

/* Checks every field's range and form (names, id, absolute init path, label
 * keys, flags, cpu and io weights, address families and prefixes, no duplicate
 * addresses). Returns 0 or -EINVAL, and on error points *field at the name of
 * the first bad field (a static string) when field is not NULL. */
int spec_validate(const struct guest_spec *s, const char **field);

/* Capability names without the "cap_" prefix, lower case ("net_admin"):
 * returns the number or -EINVAL; and back (NULL for an unknown number). */
int spec_cap_from_name(const char *name);
const char *spec_cap_name(unsigned cap);
