#include "cli/import_map.h"

#define _XOPEN_SOURCE_EXTENDED 1
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <ftw.h>
#include <libgen.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "common/mem.h"
#include "common/name.h"

#define PAGE         4096ULL /* the page of the old kernels' limits (x86) */
#define UNLIMITED    ((uint64_t)-1)
#define LONG_MAX_STR "9223372036854775807"

void
import_plan_init(struct import_plan *p, const char *template_name)
{
    memset(p, 0, sizeof(*p));
    p->spec = json_pack("{s:s, s:o, s:o}", "template", template_name, "limits", json_object(),
                        "ips", json_array());
    p->unmapped = json_array();
    p->notes = json_array();
    p->excludes = json_array();
}

void
import_plan_clear(struct import_plan *p)
{
    json_decref(p->spec);
    json_decref(p->unmapped);
    json_decref(p->notes);
    json_decref(p->excludes);
    memset(p, 0, sizeof(*p));
}

static int plan_fail(struct import_plan *p, int r, const char *fmt, ...) _printf_(3, 4);

static int
plan_fail(struct import_plan *p, int r, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(p->error, sizeof(p->error), fmt, ap);
    va_end(ap);
    return r;
}

static void
unmapped(struct import_plan *p, const char *setting, const char *value, const char *why)
{
    json_array_append_new(
        p->unmapped, json_pack("{s:s, s:s, s:s}", "setting", setting, "value", value, "why", why));
}

static void note(struct import_plan *p, const char *fmt, ...) _printf_(2, 3);

static void
note(struct import_plan *p, const char *fmt, ...)
{
    char buf[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof(buf), fmt, ap);
    va_end(ap);
    json_array_append_new(p->notes, json_string(buf));
}

static void
limit(struct import_plan *p, const char *key, uint64_t v)
{
    if (v != UNLIMITED && v > 0)
        json_object_set_new(json_object_get(p->spec, "limits"), key, json_integer((json_int_t)v));
}

/* A number, "inf"/"unlimited"/LONG_MAX as UNLIMITED. 0 or -EINVAL. */
static int
number(const char *s, uint64_t *out)
{
    char *end;

    while (isspace((unsigned char)*s))
        s++;
    if (!strncmp(s, "inf", 3) || !strncmp(s, "unlimited", 9) || !strncmp(s, LONG_MAX_STR, 19)) {
        *out = UNLIMITED;
        return 0;
    }
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    while (isspace((unsigned char)*end))
        end++;
    if (errno || end == s || *end)
        return -EINVAL;
    *out = v;
    return 0;
}

/* The first line of a file, trimmed; NULL when it cannot be read. */
static char *
read_line(const char *dir, const char *file)
{
    _cleanup_free_ char *path = xasprintf("%s/%s", dir, file);
    _cleanup_fclose_ FILE *f = fopen(path, "re");
    char buf[4096];

    if (!f || !fgets(buf, sizeof(buf), f))
        return NULL;
    buf[strcspn(buf, "\r\n")] = '\0';
    return xstrdup(buf);
}

/* A capability's name without CAP_, lower case; "" when it is not one. */
static void
cap_name(const char *in, char *out, size_t n)
{
    const char *s = strncasecmp(in, "CAP_", 4) == 0 ? in + 4 : in;
    size_t i = 0;

    for (; s[i] && i + 1 < n; i++)
        out[i] = (char)tolower((unsigned char)s[i]);
    out[i] = '\0';
}

/* Adds a capability to caps_add (or caps_drop when drop), unless unknown. */
static void
capability(struct import_plan *p, const char *setting, const char *name, bool drop)
{
    /* Linux's capability names, 0..40, without CAP_. */
    static const char *const known[] = {"chown",
                                        "dac_override",
                                        "dac_read_search",
                                        "fowner",
                                        "fsetid",
                                        "kill",
                                        "setgid",
                                        "setuid",
                                        "setpcap",
                                        "linux_immutable",
                                        "net_bind_service",
                                        "net_broadcast",
                                        "net_admin",
                                        "net_raw",
                                        "ipc_lock",
                                        "ipc_owner",
                                        "sys_module",
                                        "sys_rawio",
                                        "sys_chroot",
                                        "sys_ptrace",
                                        "sys_pacct",
                                        "sys_admin",
                                        "sys_boot",
                                        "sys_nice",
                                        "sys_resource",
                                        "sys_time",
                                        "sys_tty_config",
                                        "mknod",
                                        "lease",
                                        "audit_write",
                                        "audit_control",
                                        "setfcap",
                                        "mac_override",
                                        "mac_admin",
                                        "syslog",
                                        "wake_alarm",
                                        "block_suspend",
                                        "audit_read",
                                        "perfmon",
                                        "bpf",
                                        "checkpoint_restore"};
    char c[64];

    cap_name(name, c, sizeof(c));
    for (size_t i = 0; i < ARRAY_SIZE(known); i++)
        if (!strcmp(known[i], c)) {
            const char *key = drop ? "caps_drop" : "caps_add";
            if (!json_object_get(p->spec, key))
                json_object_set_new(p->spec, key, json_array());
            json_array_append_new(json_object_get(p->spec, key), json_string(c));
            return;
        }
    unmapped(p, setting, name, "not a Linux capability vfleet knows");
}

/* ---- util-vserver ---- */

/* rlimits/<name> or rlimits/<name>.hard. */
static int
vs_rlimit(struct import_plan *p, const char *dir, const char *name, uint64_t *v)
{
    _cleanup_free_ char *d = xasprintf("%s/rlimits", dir);
    _cleanup_free_ char *hard = xasprintf("%s.hard", name);
    _cleanup_free_ char *s = read_line(d, name);

    if (!s)
        s = read_line(d, hard);
    if (!s)
        return 0;
    if (number(s, v) < 0)
        return plan_fail(p, -EINVAL, "rlimits/%s: \"%s\" is not a number", name, s);
    return 1;
}

static int
vs_rlimits(struct import_plan *p, const char *dir)
{
    static const char *const other[] = {"as",     "memlock",  "locks", "anon",  "shmem", "nsock",
                                        "openfd", "msgqueue", "data",  "stack", "core",  "cpu"};
    uint64_t v;
    int r;

    if ((r = vs_rlimit(p, dir, "nproc", &v)) > 0)
        limit(p, "procs", v);
    if (r >= 0 && (r = vs_rlimit(p, dir, "nofile", &v)) > 0)
        limit(p, "nofile", v);
    if (r >= 0 && (r = vs_rlimit(p, dir, "rss", &v)) > 0 && v != UNLIMITED) {
        limit(p, "memory", v * PAGE);
        note(p, "rlimits/rss %llu pages: the memory limit, %llu bytes", (unsigned long long)v,
             (unsigned long long)(v * PAGE));
    }
    for (size_t i = 0; r >= 0 && i < ARRAY_SIZE(other); i++)
        if ((r = vs_rlimit(p, dir, other[i], &v)) > 0) {
            char s[32];
            snprintf(s, sizeof(s), "%llu", (unsigned long long)v);
            _cleanup_free_ char *k = xasprintf("rlimits/%s", other[i]);
            unmapped(p, k, v == UNLIMITED ? "inf" : s,
                     "no per-guest equivalent (cgroups cap memory, processes and files)");
        }
    return r < 0 ? r : 0;
}

/* cgroup/<file>: the cgroup settings util-vserver writes for the guest. */
static int
vs_cgroups(struct import_plan *p, const char *dir)
{
    _cleanup_free_ char *d = xasprintf("%s/cgroup", dir);
    DIR *dh = opendir(d);
    struct dirent *e;
    uint64_t mem = 0, memsw = 0, quota = 0, period = 100000, v;

    if (!dh)
        return 0;
    while ((e = readdir(dh))) {
        if (e->d_name[0] == '.')
            continue;
        _cleanup_free_ char *s = read_line(d, e->d_name);
        _cleanup_free_ char *k = xasprintf("cgroup/%s", e->d_name);
        if (!strncmp(e->d_name, "cpuset.", 7)) {
            unmapped(p, k, s ? s : "", "vfleet does not pin guests to CPUs or memory nodes");
            continue;
        }
        if (!s || number(s, &v) < 0) {
            unmapped(p, k, s ? s : "", "not a number vfleet maps");
            continue;
        }
        if (!strcmp(e->d_name, "cpu.shares"))
            limit(p, "cpu_weight", v * 100 / 1024 ? v * 100 / 1024 : 1);
        else if (!strcmp(e->d_name, "memory.limit_in_bytes"))
            mem = v;
        else if (!strcmp(e->d_name, "memory.memsw.limit_in_bytes"))
            memsw = v;
        else if (!strcmp(e->d_name, "blkio.weight"))
            limit(p, "io_weight", v / 5 ? v / 5 : 1);
        else if (!strcmp(e->d_name, "cpu.cfs_quota_us"))
            quota = v;
        else if (!strcmp(e->d_name, "cpu.cfs_period_us"))
            period = v ? v : period;
        else
            unmapped(p, k, s, "vfleet sets no such cgroup value (it does not pin CPUs or nodes)");
    }
    closedir(dh);
    if (mem && mem != UNLIMITED && mem < (1ULL << 62))
        limit(p, "memory", mem);
    if (memsw > mem && memsw < (1ULL << 62) && mem)
        limit(p, "swap", memsw - mem);
    if (quota && quota != UNLIMITED && quota < (1ULL << 40))
        json_object_set_new(json_object_get(p->spec, "limits"), "cpu_max",
                            json_real((double)quota / (double)period));
    return 0;
}

/* interfaces/<n>/ip: the guest's addresses (vfleet gives each a host route). */
static void
vs_interfaces(struct import_plan *p, const char *dir)
{
    _cleanup_free_ char *d = xasprintf("%s/interfaces", dir);
    DIR *dh = opendir(d);
    struct dirent *e;

    if (!dh)
        return;
    while ((e = readdir(dh))) {
        if (e->d_name[0] == '.')
            continue;
        _cleanup_free_ char *sub = xasprintf("%s/%s", d, e->d_name);
        _cleanup_free_ char *ip = read_line(sub, "ip");
        _cleanup_free_ char *prefix = read_line(sub, "prefix");
        _cleanup_free_ char *dev = read_line(sub, "dev");
        if (ip)
            json_array_append_new(json_object_get(p->spec, "ips"), json_string(ip));
        _cleanup_free_ char *k = xasprintf("interfaces/%s/prefix", e->d_name);
        if (prefix)
            unmapped(p, k, prefix, "a guest address is a host route (/32, /128) in vfleet");
        free(k);
        k = xasprintf("interfaces/%s/dev", e->d_name);
        if (dev)
            unmapped(p, k, dev, "the guest's interface is its own veth in vfleet");
    }
    closedir(dh);
}

static void
vs_lines(struct import_plan *p, const char *dir, const char *file,
         void (*fn)(struct import_plan *p, const char *file, const char *line))
{
    _cleanup_free_ char *path = xasprintf("%s/%s", dir, file);
    _cleanup_fclose_ FILE *f = fopen(path, "re");
    char buf[512];

    while (f && fgets(buf, sizeof(buf), f)) {
        buf[strcspn(buf, "\r\n#")] = '\0';
        char *s = buf;
        while (isspace((unsigned char)*s))
            s++;
        if (*s)
            fn(p, file, s);
    }
}

static void
vs_flag(struct import_plan *p, const char *file, const char *line)
{
    /* VServer's lock stops a guest from making new contexts; a vfleet guest
     * cannot make namespaces of its own without added capabilities anyway,
     * and vfleet's lock flag (no start, no exec) means something else. */
    unmapped(p, file, line,
             !strcasecmp(line, "lock")
                 ? "no new contexts: a vfleet guest has no capability to make them"
                 : "a VServer context flag without a vfleet equivalent");
}

static void
vs_bcap(struct import_plan *p, const char *file, const char *line)
{
    bool drop = line[0] == '!' || line[0] == '~';
    capability(p, file, drop ? line + 1 : line, drop);
}

static void
vs_ccap(struct import_plan *p, const char *file, const char *line)
{
    unmapped(p, file, line, "a VServer context capability; vfleet guests have none");
}

static void
vs_init(struct import_plan *p, const char *dir)
{
    _cleanup_free_ char *d = xasprintf("%s/apps/init", dir);
    _cleanup_free_ char *mark = read_line(d, "mark");
    _cleanup_free_ char *style = read_line(d, "style");
    _cleanup_free_ char *cmd = read_line(d, "cmd.start");

    if (mark && !strcmp(mark, "default")) {
        json_object_set_new(p->spec, "autostart", json_true());
        note(p, "apps/init/mark default: the guest starts with its node");
    } else if (mark) {
        unmapped(p, "apps/init/mark", mark, "vfleet has one start group: autostart or not");
    }
    if (style && strcmp(style, "sysv") && strcmp(style, "plain"))
        unmapped(p, "apps/init/style", style, "the guest runs its own /sbin/init");
    if (cmd)
        unmapped(p, "apps/init/cmd.start", cmd, "the guest runs its own /sbin/init");
}

int
import_vserver(const char *dir, const char *root, struct import_plan *p)
{
    _cleanup_free_ char *copy = xstrdup(dir);
    _cleanup_free_ char *name = read_line(dir, "name");
    _cleanup_free_ char *nodename = read_line(dir, "uts/nodename");
    _cleanup_free_ char *domain = read_line(dir, "uts/domainname");
    _cleanup_free_ char *context = read_line(dir, "context");
    struct stat st;

    if (stat(dir, &st) < 0 || !S_ISDIR(st.st_mode))
        return plan_fail(p, -ENOENT, "%s is not a util-vserver configuration directory", dir);
    json_object_set_new(p->spec, "name", json_string(name ? name : basename(copy)));
    if (nodename)
        note(p, "uts/nodename %s: a vfleet guest's hostname is its name", nodename);
    if (domain)
        json_object_set_new(p->spec, "domainname", json_string(domain));
    if (context)
        unmapped(p, "context", context, "vfleet guests are namespaces, not numbered contexts");
    int r = vs_rlimits(p, dir);
    if (r >= 0)
        r = vs_cgroups(p, dir);
    if (r < 0)
        return r;
    vs_interfaces(p, dir);
    vs_lines(p, dir, "flags", vs_flag);
    vs_lines(p, dir, "cflags", vs_flag);
    vs_lines(p, dir, "bcapabilities", vs_bcap);
    vs_lines(p, dir, "ccapabilities", vs_ccap);
    vs_init(p, dir);
    _cleanup_free_ char *vdir = xasprintf("%s/vdir", dir);
    char target[1024];
    ssize_t n = root ? -1 : readlink(vdir, target, sizeof(target) - 1);
    if (root)
        snprintf(p->root, sizeof(p->root), "%s", root);
    else if (n > 0)
        snprintf(p->root, sizeof(p->root), "%.*s", (int)n, target);
    else
        return plan_fail(p, -ENOENT, "%s has no vdir link (give the root with --root)", dir);
    return 0;
}

/* ---- OpenVZ ---- */

/* KEY="value" lines into an object. */
static json_t *
shell_vars(FILE *f)
{
    json_t *o = json_object();
    char buf[4096];

    while (fgets(buf, sizeof(buf), f)) {
        char *s = buf, *eq;
        while (isspace((unsigned char)*s))
            s++;
        if (*s == '#' || !(eq = strchr(s, '=')))
            continue;
        *eq = '\0';
        char *v = eq + 1;
        v[strcspn(v, "\r\n")] = '\0';
        size_t n = strlen(v);
        if (n >= 2 && (v[0] == '"' || v[0] == '\'') && v[n - 1] == v[0]) {
            v[n - 1] = '\0';
            v++;
        }
        json_object_set_new(o, s, json_string(v));
    }
    return o;
}

/* barrier:limit (or one value) -> the limit. 0 or -EINVAL. */
static int
bl(const char *v, uint64_t *out)
{
    const char *colon = strchr(v, ':');
    return number(colon ? colon + 1 : v, out);
}

struct ovz_limit {
    const char *key;   /* the OpenVZ parameter */
    const char *limit; /* the vfleet limit */
    uint64_t unit;     /* bytes per unit */
};

static const struct ovz_limit ovz_limits[] = {
    {"DISKSPACE", "disk", 1024},   {"DISKINODES", "inodes", 1}, {"NUMPROC", "procs", 1},
    {"PHYSPAGES", "memory", PAGE}, {"SWAPPAGES", "swap", PAGE}, {"NUMTCPSOCK", "tcp_sockets", 1},
    {"NUMFILE", "nofile", 1},
};

static int
ovz_value(struct import_plan *p, const char *k, const char *v)
{
    uint64_t n;

    for (size_t i = 0; i < ARRAY_SIZE(ovz_limits); i++) {
        if (strcmp(k, ovz_limits[i].key) != 0)
            continue;
        if (bl(v, &n) < 0)
            return plan_fail(p, -EINVAL, "%s=\"%s\" is not barrier:limit", k, v);
        limit(p, ovz_limits[i].limit, n == UNLIMITED ? n : n * ovz_limits[i].unit);
        if (!strcmp(k, "NUMFILE"))
            note(p, "NUMFILE %s: vfleet's nofile limits each process, not the whole guest", v);
        return 1;
    }
    if (!strcmp(k, "CPUUNITS")) {
        if (number(v, &n) < 0)
            return plan_fail(p, -EINVAL, "CPUUNITS=\"%s\" is not a number", v);
        limit(p, "cpu_weight", n / 10 ? (n / 10 > 10000 ? 10000 : n / 10) : 1);
        return 1;
    }
    if (!strcmp(k, "CPULIMIT")) {
        if (number(v, &n) < 0)
            return plan_fail(p, -EINVAL, "CPULIMIT=\"%s\" is not a number", v);
        if (n && n != UNLIMITED)
            json_object_set_new(json_object_get(p->spec, "limits"), "cpu_max",
                                json_real((double)n / 100.0));
        return 1;
    }
    return 0;
}

static void
ovz_caps(struct import_plan *p, const char *v)
{
    _cleanup_free_ char *copy = xstrdup(v);
    char *save = NULL;

    for (char *t = strtok_r(copy, " \t", &save); t; t = strtok_r(NULL, " \t", &save)) {
        char *colon = strchr(t, ':');
        if (!colon) {
            unmapped(p, "CAPABILITY", t, "not NAME:on or NAME:off");
            continue;
        }
        *colon = '\0';
        capability(p, "CAPABILITY", t, strcmp(colon + 1, "on") != 0);
    }
}

static void
ovz_host(struct import_plan *p, const char *v)
{
    _cleanup_free_ char *copy = xstrdup(v);
    char *dot = strchr(copy, '.');

    if (dot) {
        *dot = '\0';
        json_object_set_new(p->spec, "domainname", json_string(dot + 1));
    }
    json_object_set_new(p->spec, "name", json_string(copy));
}

static int
ovz_map(struct import_plan *p, json_t *vars, const char *veid)
{
    const char *k;
    json_t *jv;

    json_object_foreach(vars, k, jv)
    {
        const char *v = json_string_value(jv);
        int r = ovz_value(p, k, v);
        if (r < 0)
            return r;
        if (r > 0)
            continue;
        if (!strcmp(k, "HOSTNAME")) {
            ovz_host(p, v);
        } else if (!strcmp(k, "IP_ADDRESS")) {
            _cleanup_free_ char *copy = xstrdup(v);
            char *save = NULL;
            for (char *t = strtok_r(copy, " ", &save); t; t = strtok_r(NULL, " ", &save))
                json_array_append_new(json_object_get(p->spec, "ips"), json_string(t));
        } else if (!strcmp(k, "CAPABILITY")) {
            ovz_caps(p, v);
        } else if (!strcmp(k, "ONBOOT")) {
            json_object_set_new(p->spec, "autostart", json_boolean(!strcmp(v, "yes")));
        } else if (!strcmp(k, "VE_PRIVATE") && !p->root[0]) {
            /* $VEID and ${VEID} stand for the container's number. */
            const char *s = strstr(v, "$VEID") ? strstr(v, "$VEID") : strstr(v, "${VEID}");
            if (s)
                snprintf(p->root, sizeof(p->root), "%.*s%s%s", (int)(s - v), v, veid,
                         s + (s[1] == '{' ? 7 : 5));
            else
                snprintf(p->root, sizeof(p->root), "%s", v);
        } else if (!strcmp(k, "NAMESERVER")) {
            unmapped(p, k, v, "the guest's /etc/resolv.conf comes with its files");
        } else if (!strcmp(k, "VE_PRIVATE")) {
            note(p, "VE_PRIVATE %s: the root given with --root instead", v);
        } else {
            unmapped(p, k, v, "no vfleet equivalent");
        }
    }
    return 0;
}

int
import_openvz(const char *conf, const char *root, struct import_plan *p)
{
    _cleanup_fclose_ FILE *f = fopen(conf, "re");
    _cleanup_free_ char *copy = xstrdup(conf);

    if (!f)
        return plan_fail(p, -errno, "cannot read %s: %s", conf, strerror(errno));
    char *veid = basename(copy);
    veid[strcspn(veid, ".")] = '\0';
    if (root)
        snprintf(p->root, sizeof(p->root), "%s", root);
    json_object_set_new(p->spec, "name", json_string(veid));
    json_t *vars = shell_vars(f);
    int r = ovz_map(p, vars, veid);
    json_decref(vars);
    if (r >= 0 && !p->root[0])
        r = plan_fail(p, -ENOENT, "%s has no VE_PRIVATE (give the root with --root)", conf);
    return r;
}

/* ---- FreeVPS ---- */

struct fv_key {
    const char *const names[4]; /* the spellings accepted */
    const char *limit;          /* the vfleet limit, NULL = handled apart */
    uint64_t unit;              /* bytes per unit */
};

static const struct fv_key fv_keys[] = {
    {{"disk", "disk_quota", "disk_space", NULL}, "disk", 1024},
    {{"inodes", "disk_inodes", "files_quota", NULL}, "inodes", 1},
    {{"nproc", "processes", "max_processes", NULL}, "procs", 1},
    {{"memory", "mem", "mem_limit", NULL}, "memory", 1024},
    {{"swap", "swap_limit", NULL}, "swap", 1024},
    {{"tcp_sockets", "numtcpsock", NULL}, "tcp_sockets", 1},
    {{"nofile", "open_files", NULL}, "nofile", 1},
    {{"cpu_shares", "cpu_weight", NULL}, "cpu_weight", 1},
    {{"net_in", "bandwidth_in", NULL}, "net_in", 1000},
    {{"net_out", "bandwidth_out", NULL}, "net_out", 1000},
};

/* The guest's flags, "private", "lock", both (comma or space between) or
 * "none": private (no exec or enter from the host) is the tenant's and goes
 * with the guest; lock (no start, no exec) was the old host's hold on it,
 * which an import that is to run the guest does not carry. */
static int
fv_flags(struct import_plan *p, const char *k, char *v)
{
    char *save = NULL;

    for (char *t = strtok_r(v, " ,", &save); t; t = strtok_r(NULL, " ,", &save)) {
        if (!strcasecmp(t, "private"))
            json_object_set_new(p->spec, "flags", json_pack("[s]", "private"));
        else if (!strcasecmp(t, "lock"))
            unmapped(p, k, t,
                     "the old host's lock is not carried: set it after the import (vfleet "
                     "guest set NAME --flags lock) if the guest is to stay stopped");
        else if (strcasecmp(t, "none") != 0)
            return plan_fail(p, -EINVAL, "%s \"%s\" is not private, lock or none", k, t);
    }
    return 0;
}

static int
fv_line(struct import_plan *p, char *k, char *v)
{
    uint64_t n;

    for (char *c = k; *c; c++)
        *c = (char)tolower((unsigned char)*c);
    for (size_t i = 0; i < ARRAY_SIZE(fv_keys); i++)
        for (size_t j = 0; fv_keys[i].names[j]; j++) {
            if (strcmp(k, fv_keys[i].names[j]) != 0)
                continue;
            if (number(v, &n) < 0)
                return plan_fail(p, -EINVAL, "%s \"%s\" is not a number", k, v);
            limit(p, fv_keys[i].limit, n == UNLIMITED ? n : n * fv_keys[i].unit);
            return 0;
        }
    if (!strcmp(k, "hostname") || !strcmp(k, "name")) {
        ovz_host(p, v);
    } else if (!strcmp(k, "flags")) {
        return fv_flags(p, k, v);
    } else if (!strcmp(k, "ip") || !strcmp(k, "ips") || !strcmp(k, "ip_addresses")) {
        char *save = NULL;
        for (char *t = strtok_r(v, " ,", &save); t; t = strtok_r(NULL, " ,", &save))
            json_array_append_new(json_object_get(p->spec, "ips"), json_string(t));
    } else if (!strcmp(k, "cpu_limit")) {
        if (number(v, &n) < 0)
            return plan_fail(p, -EINVAL, "cpu_limit \"%s\" is not a number", v);
        if (n && n != UNLIMITED)
            json_object_set_new(json_object_get(p->spec, "limits"), "cpu_max",
                                json_real((double)n / 100.0));
    } else {
        unmapped(p, k, v, "no vfleet equivalent (counters are measured anew)");
    }
    return 0;
}

/* The labels of `self` as a FreeVPS view prints it (docs/freevps-views.md):
 * "Label: value", labels of several words, sizes in "N kB". A label with no
 * limit is a counter or a fact of the old host, listed as unmapped. */
static const struct fv_label {
    const char *label; /* lower case */
    const char *limit; /* the vfleet limit, NULL = unmapped */
    uint64_t unit;     /* bytes per unit ("N kB": 1024) */
} fv_labels[] = {
    {"process limit", "procs", 1},
    {"memory limit", "memory", 1024},
    {"context rss limit", "rss", 1024},
    {"disk limit", "disk", 1024},
    {"files limit", "inodes", 1},
    {"tcp sockets limit", "tcp_sockets", 1},
    {"vserver id", NULL, 0},
    {"init pid", NULL, 0},
    {"capbset", NULL, 0},
    {"process count", NULL, 0},
    {"tasks", NULL, 0},
    {"used memory", NULL, 0},
    {"max total memory", NULL, 0},
    {"context rss", NULL, 0},
    {"max rss memory", NULL, 0},
    {"used disk memory", NULL, 0},
    {"used files", NULL, 0},
    {"established sockets", NULL, 0},
    {"incoming traffic", NULL, 0},
    {"outgoing traffic", NULL, 0},
};

/* A number with an optional " kB" after it. */
static int
number_kb(char *v, uint64_t *out)
{
    size_t n = strlen(v);

    if (n > 2 && strcasecmp(v + n - 2, "kb") == 0)
        v[n - 2] = '\0';
    return number(v, out);
}

/* The view's device line, "vdev(hdev): speed: IP1/mask1;IP2/mask2;": the
 * rate (kbit/s, or "unlimited") caps both directions, the addresses are
 * the guest's. */
static int
fv_device(struct import_plan *p, char *v)
{
    char *addrs = strchr(v, ':');
    uint64_t n;

    if (!addrs)
        return plan_fail(p, -EINVAL, "device line \"%s\": no addresses after the rate", v);
    *addrs++ = '\0';
    char *unit = strstr(v, "kbit/s");
    if (unit)
        *unit = '\0';
    if (number(v, &n) < 0)
        return plan_fail(p, -EINVAL, "device line: rate \"%s\" is not a number", v);
    if (n != UNLIMITED) {
        limit(p, "net_in", n * 1000);
        limit(p, "net_out", n * 1000);
    }
    char *save = NULL;
    for (char *t = strtok_r(addrs, "; \t", &save); t; t = strtok_r(NULL, "; \t", &save)) {
        t[strcspn(t, "/")] = '\0';
        if (*t)
            json_array_append_new(json_object_get(p->spec, "ips"), json_string(t));
    }
    return 0;
}

/* A line of the view's form; returns 1 when it is not one (the caller reads
 * it as "key: value", "key = value" or "key value"), else 0 or -errno. */
static int
fv_view_line(struct import_plan *p, char *k, char *colon)
{
    char label[64], *v = colon + 1;
    size_t n = (size_t)(colon - k);
    uint64_t num;

    while (n && isspace((unsigned char)k[n - 1]))
        n--;
    if (!n || n >= sizeof(label))
        return 1;
    for (size_t i = 0; i < n; i++)
        label[i] = (char)tolower((unsigned char)k[i]);
    label[n] = '\0';
    v += strspn(v, " \t");
    for (size_t e = strlen(v); e && isspace((unsigned char)v[e - 1]); e--)
        v[e - 1] = '\0';
    if (!strcmp(label, "nodename")) {
        ovz_host(p, v);
        return 0;
    }
    if (!strcmp(label, "domainname")) {
        if (*v && strcmp(v, "(none)") != 0)
            json_object_set_new(p->spec, "domainname", json_string(v));
        return 0;
    }
    if (!strcmp(label, "flags")) {
        k[n] = '\0';
        return fv_flags(p, k, v);
    }
    const char *open = strchr(label, '(');
    if (open && open != label && label[n - 1] == ')' && !strpbrk(label, " \t"))
        return fv_device(p, v);
    for (size_t i = 0; i < ARRAY_SIZE(fv_labels); i++) {
        if (strcmp(label, fv_labels[i].label) != 0)
            continue;
        k[n] = '\0';
        if (!fv_labels[i].limit) {
            unmapped(p, k, v, "a counter or a fact of the old host, not a setting");
            return 0;
        }
        if (number_kb(v, &num) < 0)
            return plan_fail(p, -EINVAL, "%s \"%s\" is not a number", k, v);
        limit(p, fv_labels[i].limit, num == UNLIMITED ? num : num * fv_labels[i].unit);
        return 0;
    }
    return 1;
}

int
import_freevps(const char *self, const char *root, struct import_plan *p)
{
    _cleanup_fclose_ FILE *f = fopen(self, "re");
    char buf[4096];

    if (!f)
        return plan_fail(p, -errno, "cannot read %s: %s", self, strerror(errno));
    if (!root)
        return plan_fail(p, -EINVAL, "a FreeVPS guest's root is given with --root");
    snprintf(p->root, sizeof(p->root), "%s", root);
    while (fgets(buf, sizeof(buf), f)) {
        buf[strcspn(buf, "\r\n#")] = '\0';
        /* "key: value", "key = value" or "key value". */
        char *k = buf + strspn(buf, " \t");
        char *colon = strchr(k, ':');
        if (colon) {
            int r = fv_view_line(p, k, colon);
            if (r <= 0) {
                if (r < 0)
                    return r;
                continue;
            }
        }
        size_t kl = strcspn(k, ":= \t");
        if (!*k || !kl)
            continue;
        char *v = k + kl;
        *v++ = '\0';
        v += strspn(v, ":= \t");
        v[strcspn(v, "\0")] = '\0';
        for (size_t n = strlen(v); n && isspace((unsigned char)v[n - 1]); n--)
            v[n - 1] = '\0';
        int r = fv_line(p, k, v);
        if (r < 0)
            return r;
    }
    return 0;
}

/* ---- the tree ---- */

static struct import_plan *walk_plan; /* nftw's callback has no userdata */
static size_t walk_root_len;

/* The device nodes a guest may have (its runtime makes them in its /dev anyway). */
static bool
allowed_device(const struct stat *st)
{
    static const unsigned devs[][2] = {{1, 3}, {1, 5}, {1, 7}, {1, 8}, {1, 9},
                                       {5, 0}, {5, 1}, {5, 2}, {0, 0}};

    if (!S_ISCHR(st->st_mode))
        return false;
    for (size_t i = 0; i < ARRAY_SIZE(devs); i++)
        if (major(st->st_rdev) == devs[i][0] && minor(st->st_rdev) == devs[i][1])
            return true;
    return false;
}

static int
walk_one(const char *path, const struct stat *st, int type, struct FTW *ftw)
{
    (void)ftw;
    if (type == FTW_F || type == FTW_SL)
        walk_plan->root_bytes += (uint64_t)st->st_blocks * 512;
    if ((S_ISCHR(st->st_mode) || S_ISBLK(st->st_mode)) && !allowed_device(st))
        json_array_append_new(walk_plan->excludes, json_string(path + walk_root_len + 1));
    return 0;
}

static void
sane_name(struct import_plan *p, const char *want)
{
    const char *src = want ? want : json_string_value(json_object_get(p->spec, "name"));
    char out[64];
    size_t o = 0;

    for (size_t i = 0; src && src[i] && o + 1 < sizeof(out); i++) {
        char c = (char)tolower((unsigned char)src[i]);
        out[o++] = (isalnum((unsigned char)c)) ? c : '-';
    }
    while (o && out[o - 1] == '-')
        o--;
    out[o] = '\0';
    const char *start = out + strspn(out, "-");
    if (!want && (!src || strcmp(start, src) != 0))
        note(p, "name \"%s\" becomes \"%s\" (a DNS label)", src ? src : "", start);
    json_object_set_new(p->spec, "name", json_string(start));
}

int
import_finish(struct import_plan *p, const char *name)
{
    struct stat st;

    sane_name(p, name);
    if (!name_is_valid(json_string_value(json_object_get(p->spec, "name"))))
        return plan_fail(p, -EINVAL, "no valid guest name: give one with --name");
    if (stat(p->root, &st) < 0 || !S_ISDIR(st.st_mode))
        return plan_fail(p, -ENOENT, "the root %s is not a directory", p->root);
    walk_plan = p;
    walk_root_len = strlen(p->root);
    if (nftw(p->root, walk_one, 64, FTW_PHYS | FTW_MOUNT) < 0)
        return plan_fail(p, -errno, "cannot walk %s: %s", p->root, strerror(errno));
    json_t *lim = json_object_get(p->spec, "limits");
    uint64_t disk = (uint64_t)json_integer_value(json_object_get(lim, "disk"));
    /* Room for the files, their metadata and growth when the source said nothing. */
    uint64_t want = p->root_bytes + p->root_bytes / 2 + (64ULL << 20);
    if (!disk) {
        limit(p, "disk", want < (256ULL << 20) ? (256ULL << 20) : want);
        note(p, "no disk size in the source: %llu MiB for %llu MiB of files",
             (unsigned long long)(json_integer_value(json_object_get(lim, "disk")) >> 20),
             (unsigned long long)(p->root_bytes >> 20));
    } else if (disk < p->root_bytes + (16ULL << 20)) {
        note(p, "the disk limit (%llu MiB) is smaller than the files (%llu MiB): the import fails",
             (unsigned long long)(disk >> 20), (unsigned long long)(p->root_bytes >> 20));
    }
    if (json_array_size(p->excludes))
        note(p, "%zu device node(s) a guest may not have are left out",
             json_array_size(p->excludes));
    return 0;
}
