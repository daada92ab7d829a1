#include "proto/spec.h"

#include <errno.h>
#include <linux/capability.h>
#include <signal.h>
#include <string.h>

#include "common/mem.h"

/* Names as the kernel's <linux/capability.h> numbers them, without "cap_". */
static const char *const cap_names[] = {
    [CAP_CHOWN] = "chown",
    [CAP_DAC_OVERRIDE] = "dac_override",
    [CAP_DAC_READ_SEARCH] = "dac_read_search",
    [CAP_FOWNER] = "fowner",
    [CAP_FSETID] = "fsetid",
    [CAP_KILL] = "kill",
    [CAP_SETGID] = "setgid",
    [CAP_SETUID] = "setuid",
    [CAP_SETPCAP] = "setpcap",
    [CAP_LINUX_IMMUTABLE] = "linux_immutable",
    [CAP_NET_BIND_SERVICE] = "net_bind_service",
    [CAP_NET_BROADCAST] = "net_broadcast",
    [CAP_NET_ADMIN] = "net_admin",
    [CAP_NET_RAW] = "net_raw",
    [CAP_IPC_LOCK] = "ipc_lock",
    [CAP_IPC_OWNER] = "ipc_owner",
    [CAP_SYS_MODULE] = "sys_module",
    [CAP_SYS_RAWIO] = "sys_rawio",
    [CAP_SYS_CHROOT] = "sys_chroot",
    [CAP_SYS_PTRACE] = "sys_ptrace",
    [CAP_SYS_PACCT] = "sys_pacct",
    [CAP_SYS_ADMIN] = "sys_admin",
    [CAP_SYS_BOOT] = "sys_boot",
    [CAP_SYS_NICE] = "sys_nice",
    [CAP_SYS_RESOURCE] = "sys_resource",
    [CAP_SYS_TIME] = "sys_time",
    [CAP_SYS_TTY_CONFIG] = "sys_tty_config",
    [CAP_MKNOD] = "mknod",
    [CAP_LEASE] = "lease",
    [CAP_AUDIT_WRITE] = "audit_write",
    [CAP_AUDIT_CONTROL] = "audit_control",
    [CAP_SETFCAP] = "setfcap",
    [CAP_MAC_OVERRIDE] = "mac_override",
    [CAP_MAC_ADMIN] = "mac_admin",
    [CAP_SYSLOG] = "syslog",
    [CAP_WAKE_ALARM] = "wake_alarm",
    [CAP_BLOCK_SUSPEND] = "block_suspend",
    [CAP_AUDIT_READ] = "audit_read",
    [38] = "perfmon",
    [39] = "bpf",
    [40] = "checkpoint_restore",
};

#define BIT(c) (1ULL << (c))

const char *const spec_restart_names[SPEC_N_RESTART] = {
    [SPEC_RESTART_NEVER] = "never",
    [SPEC_RESTART_ON_FAILURE] = "on-failure",
    [SPEC_RESTART_ALWAYS] = "always",
};

int
spec_restart_from_name(const char *name)
{
    for (size_t i = 0; name && i < ARRAY_SIZE(spec_restart_names); i++)
        if (strcmp(spec_restart_names[i], name) == 0)
            return (int)i;
    return -EINVAL;
}

const char *
spec_restart_name(uint32_t policy)
{
    return policy < ARRAY_SIZE(spec_restart_names) ? spec_restart_names[policy] : NULL;
}

const struct spec_limit_desc spec_limit_descs[SPEC_N_LIMITS] = {
    SPEC_LIMIT_FIELDS(SPEC_LIMIT_DESC_INIT_)};

/* Every row's type is one the codec and spec_limit_get know, and its max fits
 * it, so a value in range always fits the member. */
#define SPEC_LIMIT_CHECK_(name, type, unit, flag, max, help)                                       \
    _Static_assert(sizeof(type) == sizeof(uint32_t) || sizeof(type) == sizeof(uint64_t),           \
                   #name ": a limit is uint32_t or uint64_t");                                     \
    _Static_assert((uint64_t)(type)(max) == (uint64_t)(max), #name ": max does not fit its type");
SPEC_LIMIT_FIELDS(SPEC_LIMIT_CHECK_)
#undef SPEC_LIMIT_CHECK_

void
spec_ifname(const char *id, char out[SPEC_IFNAME_SIZE])
{
    size_t k = 2;

    out[0] = 'v';
    out[1] = 'f';
    for (const char *c = id; *c && k < 12; c++) {
        if (*c == '-')
            continue;
        out[k++] = (char)(*c >= 'A' && *c <= 'F' ? *c - 'A' + 'a' : *c);
    }
    out[k] = '\0';
}

uint64_t
spec_default_caps(void)
{
    return BIT(CAP_CHOWN) | BIT(CAP_DAC_OVERRIDE) | BIT(CAP_FSETID) | BIT(CAP_FOWNER) |
           BIT(CAP_MKNOD) | BIT(CAP_NET_RAW) | BIT(CAP_SETGID) | BIT(CAP_SETUID) |
           BIT(CAP_SETFCAP) | BIT(CAP_SETPCAP) | BIT(CAP_NET_BIND_SERVICE) | BIT(CAP_SYS_CHROOT) |
           BIT(CAP_KILL) | BIT(CAP_AUDIT_WRITE);
}

uint64_t
spec_effective_caps(const struct guest_spec *s)
{
    return (spec_default_caps() | s->caps_add) & ~s->caps_drop;
}

int
spec_cap_from_name(const char *name)
{
    if (!name)
        return -EINVAL;
    if (strncmp(name, "cap_", 4) == 0)
        name += 4;
    for (size_t i = 0; i < ARRAY_SIZE(cap_names); i++)
        if (cap_names[i] && strcmp(cap_names[i], name) == 0)
            return (int)i;
    return -EINVAL;
}

const char *
spec_cap_name(unsigned cap)
{
    return cap < ARRAY_SIZE(cap_names) ? cap_names[cap] : NULL;
}

bool
spec_is_uuid(const char *s)
{
    if (strnlen(s, SPEC_ID_LEN + 1) != SPEC_ID_LEN)
        return false;
    for (int i = 0; i < SPEC_ID_LEN; i++) {
        char c = s[i];
        if (i == 8 || i == 13 || i == 18 || i == 23) {
            if (c != '-')
                return false;
        } else if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) {
            return false;
        }
    }
    return true;
}

static bool
is_printable(const char *s, size_t max)
{
    size_t n = strnlen(s, max + 1);
    if (n > max)
        return false;
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f)
            return false;
    return true;
}

#define FAIL(name)                                                                                 \
    do {                                                                                           \
        if (field)                                                                                 \
            *field = (name);                                                                       \
        return -EINVAL;                                                                            \
    } while (0)

int
spec_validate(const struct guest_spec *s, const char **field)
{
    const struct spec_limits *l = &s->limits;
    uint64_t known_caps = 0;

    if (!spec_is_uuid(s->id))
        FAIL("id");
    if (!name_is_valid(s->name))
        FAIL("name");
    if (s->generation == 0)
        FAIL("generation");
    if (!name_is_valid(s->template_name))
        FAIL("template");
    if (s->init[0] && (s->init[0] != '/' || !is_printable(s->init, SPEC_PATH_MAX)))
        FAIL("init");
    if (!is_printable(s->domainname, SPEC_PATH_MAX))
        FAIL("domainname");
    if (s->halt_signal >= (uint32_t)SIGRTMAX)
        FAIL("halt_signal");
    if (s->stop_timeout > 3600)
        FAIL("stop_timeout");
    if (s->flags & ~(uint32_t)SPEC_FLAGS_ALL)
        FAIL("flags");
    if (s->restart >= SPEC_N_RESTART)
        FAIL("restart");
    if (s->restart_max > SPEC_RESTART_MAX_TRIES)
        FAIL("restart_max");
    if (s->restart_backoff > SPEC_RESTART_MAX_DELAY)
        FAIL("restart_backoff");
    for (size_t i = 0; i < SPEC_N_LIMITS; i++)
        if (spec_limit_get(l, &spec_limit_descs[i]) > spec_limit_descs[i].max)
            FAIL(spec_limit_descs[i].path);
    if (l->n_io_devs > SPEC_MAX_IO_DEVS)
        FAIL("limits.io");
    if (l->rss && l->memory && l->rss > l->memory)
        FAIL("limits.rss");
    for (size_t i = 0; i < ARRAY_SIZE(cap_names); i++)
        if (cap_names[i])
            known_caps |= BIT(i);
    if ((s->caps_add | s->caps_drop) & ~known_caps)
        FAIL("capabilities");
    if (s->n_addrs > SPEC_MAX_ADDRS)
        FAIL("ips");
    for (uint32_t i = 0; i < s->n_addrs; i++) {
        const struct netaddr *a = &s->addrs[i];
        if (a->family != 2 /* AF_INET */ && a->family != 10 /* AF_INET6 */)
            FAIL("ips");
        if (a->prefix > netaddr_bits(a))
            FAIL("ips");
        for (uint32_t j = 0; j < i; j++)
            if (netaddr_equal(a, &s->addrs[j]))
                FAIL("ips");
    }
    if (s->n_labels > SPEC_MAX_LABELS)
        FAIL("labels");
    for (uint32_t i = 0; i < s->n_labels; i++) {
        if (!name_is_valid(s->labels[i].key))
            FAIL("labels");
        if (!is_printable(s->labels[i].value, SPEC_LABEL_VAL_MAX))
            FAIL("labels");
        for (uint32_t j = 0; j < i; j++)
            if (strcmp(s->labels[i].key, s->labels[j].key) == 0)
                FAIL("labels");
    }
    return 0;
}
