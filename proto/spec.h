/* The guest spec: the full desired state of one guest, as the master sends it
 * in guest.apply and the node stores it. A plain value (fixed-size arrays, no
 * pointers), so it can be copied, compared and written to disk as it is.
 *
 * Limits: 0 means "not set" (unlimited, or the kernel's default), as
 * "unlimited" did in OpenVZ configs. Sizes are bytes, rates bits per second. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/name.h"
#include "common/netaddr.h"
#include "proto/spec_fields.h"

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

/* What the node does when a guest's init exits by itself (not on a stop the
 * master asked for). The guest's own will is the default: a guest that halts
 * stays halted, as a VPS does on Proxmox, Incus or OpenVZ. The policy is the
 * only thing that starts a guest again; a reboot asked from inside the guest
 * (init killed with SIGHUP by reboot(2)) always starts it again. */
enum spec_restart {
    SPEC_RESTART_NEVER = 0,  /* "never": an exit leaves it stopped (the default) */
    SPEC_RESTART_ON_FAILURE, /* "on-failure": start again after a non-zero status or a signal */
    SPEC_RESTART_ALWAYS,     /* "always": start again after any exit but a poweroff */
    SPEC_N_RESTART,
};
#define SPEC_RESTART_MAX_TRIES 1000 /* restart_max's range */
#define SPEC_RESTART_MAX_DELAY 3600 /* restart_backoff's range, seconds */

/* An I/O cap on one block device, by its major:minor on the host. */
struct spec_io_dev {
    uint32_t major;      /* block device major number */
    uint32_t minor;      /* block device minor number */
    uint64_t read_bps;   /* read bytes per second, 0 = no cap */
    uint64_t write_bps;  /* write bytes per second, 0 = no cap */
    uint64_t read_iops;  /* read operations per second, 0 = no cap */
    uint64_t write_iops; /* write operations per second, 0 = no cap */
};

/* One member per row of SPEC_LIMIT_FIELDS (spec_fields.h), in its order:
 * uint64_t procs, memory, rss, swap; uint32_t cpu_weight, cpu_max, cpu_burst,
 * io_weight; uint64_t disk, inodes, nofile, tcp_sockets, net_in, net_out. */
#define SPEC_LIMIT_MEMBER_(name, type, ...) type name;

struct spec_limits {
    SPEC_LIMIT_FIELDS(SPEC_LIMIT_MEMBER_) /* the scalar limits, described in spec_fields.h */
    uint32_t n_io_devs;                   /* entries used in io_devs */
    struct spec_io_dev io_devs[SPEC_MAX_IO_DEVS]; /* per-device bandwidth and iops caps */
};

/* The table as data (spec.c), indexed by enum spec_limit_id. */
extern const struct spec_limit_desc spec_limit_descs[SPEC_N_LIMITS];

/* Builds a struct spec_limit_desc from a row of SPEC_LIMIT_FIELDS, for code
 * that keeps its own copy of the table (the CLI does not link proto). */
#define SPEC_LIMIT_DESC_INIT_(name, type, unit_, flag_, max_, help_)                               \
    {                                                                                              \
        .key = #name,                                                                              \
        .path = "limits." #name,                                                                   \
        .offset = (unsigned)offsetof(struct spec_limits, name),                                    \
        .size = (unsigned)sizeof(((struct spec_limits *)0)->name),                                 \
        .unit = SPEC_UNIT_##unit_,                                                                 \
        .flag = flag_,                                                                             \
        .max = max_,                                                                               \
        .help = help_,                                                                             \
    },

/* The value of the limit d describes, widened to 64 bits. */
static inline uint64_t
spec_limit_get(const struct spec_limits *l, const struct spec_limit_desc *d)
{
    const char *p = (const char *)l + d->offset;
    return d->size == sizeof(uint32_t) ? *(const uint32_t *)p : *(const uint64_t *)p;
}

/* Stores v into the limit d describes; v must fit the member (d->size). */
static inline void
spec_limit_set(struct spec_limits *l, const struct spec_limit_desc *d, uint64_t v)
{
    char *p = (char *)l + d->offset;
    if (d->size == sizeof(uint32_t))
        *(uint32_t *)p = (uint32_t)v;
    else
        *(uint64_t *)p = v;
}

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
    uint32_t restart;                     /* enum spec_restart */
    uint32_t restart_max;                 /* restarts in a row before giving up, 0 = no limit */
    uint32_t restart_backoff;             /* seconds before the first restart (doubling), 0 = 5 */
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

/* A guest id: a UUID in lower-case text form (36 characters). */
bool spec_is_uuid(const char *s);

/* The host-side name of a guest's veth, shared by the node that creates it
 * and the master that reports routes through it: "vf" and the first 10 hex
 * digits of the id without dashes, lower case ("vf0e09ecc81e" for
 * "0E09ECC8-1e2f-..."). out has IFNAMSIZ (16) bytes; a shorter id gives a
 * shorter name. */
#define SPEC_IFNAME_SIZE 16
void spec_ifname(const char *id, char out[SPEC_IFNAME_SIZE]);

/* Restart policy names ("never", "on-failure", "always"): the policy or
 * -EINVAL; and back (NULL for an unknown value). */
int spec_restart_from_name(const char *name);
extern const char *const spec_restart_names[SPEC_N_RESTART];
const char *spec_restart_name(uint32_t policy);

/* Capability names without the "cap_" prefix, lower case ("net_admin"):
 * returns the number or -EINVAL; and back (NULL for an unknown number). */
int spec_cap_from_name(const char *name);
const char *spec_cap_name(unsigned cap);
