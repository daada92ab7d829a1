/* vfleet-master: the cluster's master. Reads /etc/vfleet/master.conf
 * ([master] section) and flags (which win), then runs the actor
 * (master/master.h) until SIGTERM or SIGINT. */
#include <errno.h>
#include <getopt.h>
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <arpa/inet.h>
#include <sqlite3.h>
#include <uv.h>

#include "common/config.h"
#include "common/fsutil.h"
#include "common/log.h"
#include "common/mem.h"
#include "common/netaddr.h"
#include "common/version.h"
#include "master/jalloc.h"
#include "master/master.h"
#include "master/tls.h"

#define DEFAULT_CONFIG "/etc/vfleet/master.conf"
#define DEFAULT_DB     "/var/lib/vfleet/master/master.db"
#define DEFAULT_SOCKET "/run/vfleet-master/api.sock"
#define EXIT_USAGE     2

static void
usage(FILE *f)
{
    fputs(
        "usage: vfleet-master [OPTIONS]\n"
        "  -c, --config FILE        INI file (default " DEFAULT_CONFIG ", [master] section)\n"
        "      --db PATH            state database (default " DEFAULT_DB ")\n"
        "      --listen ADDR:PORT   REST API (default 127.0.0.1:7400)\n"
        "      --bind ENDPOINT      node endpoint, repeatable (default tcp://127.0.0.1:7401);\n"
        "                           tcp:// ones use CurveZMQ, ipc:// ones are plaintext\n"
        "      --data-address ADDR  where exports from nodes are received (default: beside\n"
        "                           the first ipc:// bind, else 127.0.0.1)\n"
        "      --key-file PATH      the master's CurveZMQ key pair (default master.key by the db)\n"
        "      --insecure yes|no    tcp:// node endpoints in PLAINTEXT (default no)\n"
        "      --web DIR            serve the web UI from DIR\n"
        "      --socket PATH        API for root on this host (default " DEFAULT_SOCKET
        "; \"\" = none)\n"
        "      --tls-cert FILE, --tls-key FILE   the API's certificate and key (PEM)\n"
        "                           (default: self-signed, made at first start)\n"
        "      --tls yes|no         TLS on the TCP listener (default yes)\n"
        "      --api-names NAMES    more names of the API (certificate, Host check)\n"
        "      --http-max-connections N, --http-max-per-address N, --http-idle-timeout S\n"
        "      --heartbeat-ms N     heartbeat interval asked of nodes (default 5000)\n"
        "      --suspect-after S    seconds of silence before suspect (default 15)\n"
        "      --down-after S       seconds of silence before down (default 30)\n"
        "      --algorithm A        spread or binpack (default binpack)\n"
        "      --overcommit-cpu R   CPU overcommit ratio (default 4)\n"
        "      --overcommit-memory R, --overcommit-disk R   (default 1)\n"
        "      --default-cpu CORES  charged to a guest without cpu_max (default 0.1)\n"
        "      --max-ips N          addresses per guest (default 16)\n"
        "      --events-max-age-days D, --events-max-count N   event retention\n"
        "                           (default 30 days, 100000 events)\n"
        "      --metrics-guests-max N  a /metrics scrape of more guests leaves out the\n"
        "                           per-guest series (default 10000)\n"
        "      --log-level L        debug, info, notice, warning, err (default info)\n"
        "      --log-format F       text or json (default text)\n"
        "      --access-log yes|no  one log line per HTTP request (default yes)\n"
        "      --help-config        every configuration key, its type and range\n"
        "      --check-config       read and check the configuration, then exit\n"
        "      --version            print the version and exit\n"
        "  -h, --help\n",
        f);
}

static int
parse_listen(const char *s, char *addr, size_t n, uint16_t *port)
{
    const char *colon = strrchr(s, ':');
    char *end;

    if (!colon || (size_t)(colon - s) >= n)
        return -EINVAL;
    memcpy(addr, s, (size_t)(colon - s));
    addr[colon - s] = '\0';
    errno = 0;
    unsigned long p = strtoul(colon + 1, &end, 10);
    if (errno || *end || p == 0 || p > 65535)
        return -EINVAL;
    *port = (uint16_t)p;
    return 0;
}

static int
check_listen(const char *key, const char *value, char *why, size_t n)
{
    char addr[64];
    uint16_t port;
    struct in_addr in;

    if (parse_listen(value, addr, sizeof(addr), &port) < 0 || inet_pton(AF_INET, addr, &in) != 1)
        return snprintf(why, n, "\"%s\" is not IPV4-ADDRESS:PORT", value), -EINVAL;
    return 0;
}

/* bind: up to MASTER_MAX_BINDS ZeroMQ endpoints, comma- or space-separated. */
static int
check_binds(const char *key, const char *value, char *why, size_t n)
{
    _cleanup_free_ char *copy = xstrdup(value);
    char *save = NULL;
    unsigned count = 0;

    for (char *t = strtok_r(copy, ", ", &save); t; t = strtok_r(NULL, ", ", &save)) {
        if (strncmp(t, "tcp://", 6) != 0 && strncmp(t, "ipc://", 6) != 0)
            return snprintf(why, n, "\"%s\" is not a tcp:// or ipc:// endpoint", t), -EINVAL;
        if (++count > MASTER_MAX_BINDS)
            return snprintf(why, n, "more than %d endpoints", MASTER_MAX_BINDS), -EINVAL;
    }
    if (!count)
        return snprintf(why, n, "no endpoint"), -EINVAL;
    return 0;
}

/* socket: "" (none) or an absolute path that fits a sockaddr_un. */
static int
check_socket(const char *key, const char *value, char *why, size_t n)
{
    struct sockaddr_un sun;

    if (!*value)
        return 0;
    if (value[0] != '/')
        return snprintf(why, n, "\"%s\" is not an absolute path", value), -EINVAL;
    if (strlen(value) >= sizeof(sun.sun_path))
        return snprintf(why, n, "longer than %zu characters", sizeof(sun.sun_path) - 1), -EINVAL;
    return 0;
}

/* api_names: DNS names or addresses, comma- or space-separated. */
static int
check_names(const char *key, const char *value, char *why, size_t n)
{
    _cleanup_free_ char *copy = xstrdup(value);
    char *save = NULL;

    for (char *t = strtok_r(copy, ", ", &save); t; t = strtok_r(NULL, ", ", &save)) {
        if (strlen(t) > 253)
            return snprintf(why, n, "\"%.40s...\" is longer than 253 characters", t), -EINVAL;
        if (t[strspn(t, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-_:")])
            return snprintf(why, n, "\"%s\" is not a DNS name or an address", t), -EINVAL;
    }
    return 0;
}

static int
check_data_address(const char *key, const char *value, char *why, size_t n)
{
    struct netaddr a;

    (void)key;
    if (netaddr_parse_host(value, &a) < 0)
        return snprintf(why, n, "\"%s\" is not an address", value), -EINVAL;
    return 0;
}

#define LEVELS "emerg|alert|crit|err|error|warning|warn|notice|info|debug"

/* Every key of master.conf (docs/config.md describes each; a test checks that
 * the page and /etc/vfleet/master.conf name them all). */
static const struct config_key master_keys[] = {
    {"master", "db", CONFIG_STRING, 0, 4000, NULL, "db", NULL, "SQLite database file"},
    {"master", "listen", CONFIG_STRING, 0, 0, NULL, "listen", check_listen,
     "REST API and web UI address, ADDR:PORT"},
    {"master", "bind", CONFIG_STRING, 0, 0, NULL, "bind", check_binds,
     "ZeroMQ endpoints the node agents connect to"},
    {"master", "data_address", CONFIG_STRING, 0, 63, NULL, "data-address", check_data_address,
     "where the data channel listens for exports from nodes"},
    {"master", "key_file", CONFIG_STRING, 0, 4000, NULL, "key-file", NULL,
     "the master's CurveZMQ key pair (0600, made at first start); none = master.key by the db"},
    {"master", "insecure", CONFIG_BOOL, 0, 0, NULL, "insecure", NULL,
     "tcp:// node endpoints in plaintext (logged loudly; trusted networks only)"},
    {"master", "web", CONFIG_STRING, 0, 4000, NULL, "web", NULL, "directory of the web UI files"},
    {"master", "templates", CONFIG_STRING, 1, 400, NULL, NULL, NULL,
     "the template library's directory (default: templates beside the store)"},
    {"master", "socket", CONFIG_STRING, 0, 0, NULL, "socket", check_socket,
     "the API's Unix socket (root there is admin), \"\" = none"},
    {"master", "tls", CONFIG_BOOL, 0, 0, NULL, "tls", NULL, "TLS on the TCP listener"},
    {"master", "tls_cert", CONFIG_STRING, 0, 4000, NULL, "tls-cert", NULL,
     "the API's PEM certificate (chain); none = self-signed"},
    {"master", "tls_key", CONFIG_STRING, 0, 4000, NULL, "tls-key", NULL,
     "the private key of tls_cert (PEM)"},
    {"master", "api_names", CONFIG_STRING, 0, 4000, NULL, "api-names", check_names,
     "more names of the API: certificate, Host check"},
    {"master", "http_max_connections", CONFIG_U64, 16, 100000, NULL, "http-max-connections", NULL,
     "API connections per listener"},
    {"master", "http_max_per_address", CONFIG_U64, 1, 100000, NULL, "http-max-per-address", NULL,
     "API connections from one client address"},
    {"master", "http_idle_timeout", CONFIG_U64, 1, 3600, NULL, "http-idle-timeout", NULL,
     "seconds before an idle API connection is closed"},
    {"master", "heartbeat_ms", CONFIG_U64, 100, 600000, NULL, "heartbeat-ms", NULL,
     "heartbeat interval asked of the nodes, ms"},
    {"master", "suspect_after", CONFIG_U64, 1, 86400, NULL, "suspect-after", NULL,
     "seconds of silence before a node is suspect"},
    {"master", "down_after", CONFIG_U64, 1, 86400, NULL, "down-after", NULL,
     "seconds of silence before a node is down"},
    {"master", "algorithm", CONFIG_CHOICE, 0, 0, "spread|binpack", "algorithm", NULL,
     "default placement algorithm"},
    {"master", "overcommit_cpu", CONFIG_RATIO, 1, 1000, NULL, "overcommit-cpu", NULL,
     "CPU overcommit ratio"},
    {"master", "overcommit_memory", CONFIG_RATIO, 1, 1000, NULL, "overcommit-memory", NULL,
     "memory overcommit ratio"},
    {"master", "overcommit_disk", CONFIG_RATIO, 1, 1000, NULL, "overcommit-disk", NULL,
     "disk overcommit ratio"},
    {"master", "default_cpu", CONFIG_RATIO, 0, 1024, NULL, "default-cpu", NULL,
     "cores charged to a guest without cpu_max"},
    {"master", "max_ips", CONFIG_U64, 1, 64, NULL, "max-ips", NULL, "addresses per guest"},
    {"master", "events_max_age_days", CONFIG_U64, 1, 3650, NULL, "events-max-age-days", NULL,
     "events older than this are dropped"},
    {"master", "events_max_count", CONFIG_U64, 1000, 100000000, NULL, "events-max-count", NULL,
     "at most this many events are kept"},
    {"master", "metrics_guests_max", CONFIG_U64, 1, 100000000, NULL, "metrics-guests-max", NULL,
     "a /metrics scrape of more guests omits the per-guest series"},
    {"master", "log_level", CONFIG_CHOICE, 0, 0, LEVELS, "log-level", NULL,
     "most verbose level logged"},
    {"master", "log_format", CONFIG_CHOICE, 0, 0, "text|json", "log-format", NULL,
     "log line format"},
    {"master", "access_log", CONFIG_BOOL, 0, 0, NULL, "access-log", NULL,
     "one log line per HTTP request"},
};

/* The schema entry a long option stands for, by its getopt value. */
#define OPT_KEY_BASE 1000

/* Reads argv into flags (section "master"); returns 0, 1 for a help text
 * printed, or -EINVAL for a usage error (printed). */
static int
parse_args(int argc, char **argv, config_t *flags, const char **config_path, bool *check_only)
{
    struct option longopts[ARRAY_SIZE(master_keys) + 6] = {
        {"config", required_argument, NULL, 'c'}, {"help", no_argument, NULL, 'h'},
        {"help-config", no_argument, NULL, 'K'},  {"check-config", no_argument, NULL, 'C'},
        {"version", no_argument, NULL, 'V'},
    };
    size_t n = 5;
    int c;

    for (size_t i = 0; i < ARRAY_SIZE(master_keys); i++)
        if (master_keys[i].flag)
            longopts[n++] = (struct option){master_keys[i].flag, required_argument, NULL,
                                            OPT_KEY_BASE + (int)i};
    longopts[n] = (struct option){0};
    while ((c = getopt_long(argc, argv, "c:h", longopts, NULL)) != -1) {
        if (c == 'c') {
            *config_path = optarg;
        } else if (c == 'h') {
            usage(stdout);
            return 1;
        } else if (c == 'C') {
            *check_only = true;
        } else if (c == 'V') {
            puts("vfleet-master " VFLEET_VERSION);
            return 1;
        } else if (c == 'K') {
            config_print_schema(stdout, master_keys, ARRAY_SIZE(master_keys));
            return 1;
        } else if (c >= OPT_KEY_BASE && c < OPT_KEY_BASE + (int)ARRAY_SIZE(master_keys)) {
            const struct config_key *k = &master_keys[c - OPT_KEY_BASE];
            const char *old = config_get(flags, k->section, k->key);
            /* --bind is repeatable: the endpoints add up. */
            if (old && strcmp(k->key, "bind") == 0) {
                _cleanup_free_ char *both = xasprintf("%s,%s", old, optarg);
                config_set(flags, k->section, k->key, both);
            } else {
                config_set(flags, k->section, k->key, optarg);
            }
        } else {
            usage(stderr);
            return -EINVAL;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "vfleet-master: unexpected argument \"%s\"\n", argv[optind]);
        return -EINVAL;
    }
    return 0;
}

static int
copy_flag(const char *key, const char *value, void *userdata)
{
    config_set(userdata, "master", key, value);
    return 0;
}

/* The file (an explicit one must exist; the default may be absent), then the
 * flags over it, then the schema check. Returns the config or NULL (printed). */
static config_t *
load_config(const char *path, config_t *flags)
{
    config_t *cfg = NULL;
    char err[1024];
    int line = 0;
    int r = config_load(path ? path : DEFAULT_CONFIG, &cfg, &line);

    if (r == -ENOENT && !path) {
        cfg = config_new();
    } else if (r == -EBADMSG) {
        fprintf(stderr,
                "vfleet-master: %s:%d: not \"key = value\", \"[section]\" or a comment, "
                "or longer than %d characters\n",
                path ? path : DEFAULT_CONFIG, line, CONFIG_MAX_LINE);
        return NULL;
    } else if (r < 0) {
        fprintf(stderr, "vfleet-master: cannot read \"%s\": %s\n", path ? path : DEFAULT_CONFIG,
                strerror(-r));
        return NULL;
    }
    config_foreach(flags, "master", copy_flag, cfg);
    if (config_check(cfg, master_keys, ARRAY_SIZE(master_keys), err, sizeof(err)) < 0) {
        fprintf(stderr, "vfleet-master: %s\n", err);
        config_destroy(&cfg);
    }
    return cfg;
}

static double
get_ratio(const config_t *cfg, const char *key, double def)
{
    const char *s = config_get(cfg, "master", key);
    return s ? strtod(s, NULL) : def; /* checked by config_check */
}

/* The API's listeners, TLS and connection bounds (docs/config.md). Returns
 * 0, or -EINVAL for tls_cert without tls_key or the other way (printed). */
static int
fill_api_config(const config_t *cfg, struct master_config *mc)
{
    const char *s = config_get(cfg, "master", "socket");
    char where[512];
    uint64_t u;
    bool b;

    mc->api_socket = !s ? DEFAULT_SOCKET : *s ? s : NULL;
    if (config_get_bool(cfg, "master", "tls", &b) == 0)
        mc->tls_off = !b;
    mc->tls_cert = config_get(cfg, "master", "tls_cert");
    mc->tls_key = config_get(cfg, "master", "tls_key");
    if ((s = config_get(cfg, "master", "data_address")) && *s)
        mc->data_address = s;
    if ((s = config_get(cfg, "master", "api_names")) && *s)
        mc->api_names = s;
    if (config_get_u64(cfg, "master", "http_max_connections", &u) == 0)
        mc->http_max_conns = (uint32_t)u;
    if (config_get_u64(cfg, "master", "http_max_per_address", &u) == 0)
        mc->http_max_per_addr = (uint32_t)u;
    if (config_get_u64(cfg, "master", "http_idle_timeout", &u) == 0)
        mc->http_idle_s = (uint32_t)u;
    if (!mc->tls_cert != !mc->tls_key) {
        const char *k = mc->tls_cert ? "tls_cert" : "tls_key";
        fprintf(stderr, "vfleet-master: %s: [master] %s: tls_cert and tls_key go together\n",
                config_origin(cfg, "master", k, NULL, where, sizeof(where)), k);
        return -EINVAL;
    }
    return 0;
}

/* --check-config: an operator's certificate and key are read and matched
 * now, not at the next start. Returns 0 or -errno (printed). */
static int
check_tls_files(const config_t *cfg, const struct master_config *mc)
{
    struct tls_creds creds = {0};
    char why[512], where[512];
    int r;

    if (mc->tls_off || !mc->tls_cert)
        return 0;
    r = tls_load(mc->tls_cert, mc->tls_key, &creds, why, sizeof(why));
    tls_creds_clear(&creds);
    if (r < 0)
        fprintf(stderr, "vfleet-master: %s: [master] tls_cert: %s\n",
                config_origin(cfg, "master", "tls_cert", NULL, where, sizeof(where)), why);
    return r;
}

/* Fills mc from a checked config; binds points into *binds (owned by the
 * caller). Returns 0, or -EINVAL for a rule across keys (printed). */
static int
fill_master_config(const config_t *cfg, struct master_config *mc, char *addr, size_t addrlen,
                   char **binds)
{
    uint64_t u;
    const char *s;
    char where[512];

    master_config_default(mc);
    mc->db_path = DEFAULT_DB;
    if ((s = config_get(cfg, "master", "db")))
        mc->db_path = s;
    if ((s = config_get(cfg, "master", "web")) && *s)
        mc->web_dir = s;
    if ((s = config_get(cfg, "master", "templates")) && *s)
        mc->templates = s;
    if ((s = config_get(cfg, "master", "key_file")) && *s)
        mc->key_file = s;
    (void)config_get_bool(cfg, "master", "insecure", &mc->insecure); /* checked */
    if ((s = config_get(cfg, "master", "listen")) &&
        parse_listen(s, addr, addrlen, &mc->http_port) == 0)
        mc->http_addr = addr;
    if ((s = config_get(cfg, "master", "bind"))) {
        char *save = NULL;
        *binds = xstrdup(s);
        for (char *t = strtok_r(*binds, ", ", &save); t && mc->n_binds < MASTER_MAX_BINDS;
             t = strtok_r(NULL, ", ", &save))
            mc->binds[mc->n_binds++] = t;
    }
    if (config_get_u64(cfg, "master", "heartbeat_ms", &u) == 0)
        mc->heartbeat_ms = (uint32_t)u;
    if (config_get_u64(cfg, "master", "suspect_after", &u) == 0)
        mc->suspect_after_ms = (uint32_t)u * 1000;
    if (config_get_u64(cfg, "master", "down_after", &u) == 0)
        mc->down_after_ms = (uint32_t)u * 1000;
    if (config_get_u64(cfg, "master", "max_ips", &u) == 0)
        mc->max_ips = (uint32_t)u;
    if (config_get_u64(cfg, "master", "events_max_age_days", &u) == 0)
        mc->events_max_age_s = (uint32_t)u * 86400;
    if (config_get_u64(cfg, "master", "events_max_count", &u) == 0)
        mc->events_max_count = (uint32_t)u;
    if (config_get_u64(cfg, "master", "metrics_guests_max", &u) == 0)
        mc->metrics_guests_max = (uint32_t)u;
    if ((s = config_get(cfg, "master", "algorithm")))
        mc->sched.algo = (enum sched_algo)sched_algo_from_string(s);
    mc->sched.overcommit_cpu = get_ratio(cfg, "overcommit_cpu", mc->sched.overcommit_cpu);
    mc->sched.overcommit_memory = get_ratio(cfg, "overcommit_memory", mc->sched.overcommit_memory);
    mc->sched.overcommit_disk = get_ratio(cfg, "overcommit_disk", mc->sched.overcommit_disk);
    mc->sched.default_cpu =
        (uint32_t)(get_ratio(cfg, "default_cpu", mc->sched.default_cpu / 1000.0) * 1000.0 + 0.5);
    if (mc->down_after_ms <= mc->suspect_after_ms) {
        const char *k = config_get(cfg, "master", "down_after") ? "down_after" : "suspect_after";
        fprintf(stderr,
                "vfleet-master: %s: [master] %s: down_after must be longer than "
                "suspect_after (%u s and %u s)\n",
                config_origin(cfg, "master", k, NULL, where, sizeof(where)), k,
                mc->down_after_ms / 1000, mc->suspect_after_ms / 1000);
        return -EINVAL;
    }
    return fill_api_config(cfg, mc);
}

/* The database holds exec output and every spec: owner-only, in an owner-only
 * directory. The umask covers the files SQLite makes (-wal, -shm, -journal);
 * a database made by an older master with 0644 is tightened. */
static void
protect_db(const char *db_path)
{
    umask(0077);
    if (strcmp(db_path, ":memory:") == 0)
        return;
    _cleanup_free_ char *dir = xstrdup(db_path);
    char *slash = strrchr(dir, '/');
    if (slash && slash != dir) {
        *slash = '\0';
        int r = fs_mkdir_p(dir, 0700);
        if (r < 0)
            log_debug("cannot create \"%s\": %s", dir, strerror(-r));
    }
    static const char *const suffixes[] = {"", "-wal", "-shm", "-journal"};
    for (size_t i = 0; i < ARRAY_SIZE(suffixes); i++) {
        _cleanup_free_ char *p = xasprintf("%s%s", db_path, suffixes[i]);
        struct stat st;
        if (stat(p, &st) == 0 && (st.st_mode & 0077) && chmod(p, st.st_mode & 0700) < 0)
            log_warning("cannot make \"%s\" owner-only: %m, ignoring", p);
    }
}

/* Each API and node connection (and each stranger's, until it is refused)
 * is a file descriptor: allow them all. */
static void
raise_nofile(void)
{
    struct rlimit nofile;

    if (getrlimit(RLIMIT_NOFILE, &nofile) == 0 && nofile.rlim_cur < nofile.rlim_max) {
        nofile.rlim_cur = nofile.rlim_max > 65536 ? 65536 : nofile.rlim_max;
        (void)setrlimit(RLIMIT_NOFILE, &nofile);
    }
}

/* The Unix socket's directory (/run/vfleet-master: systemd makes it for the
 * unit, RuntimeDirectory=; by hand, the master does). */
static void
make_socket_dir(const char *path)
{
    if (!path)
        return;
    _cleanup_free_ char *dir = xstrdup(path);
    char *slash = strrchr(dir, '/');
    if (slash && slash != dir) {
        *slash = '\0';
        int r = fs_mkdir_p(dir, 0700);
        if (r < 0)
            log_debug("cannot create \"%s\": %s", dir, strerror(-r));
    }
}

static uv_signal_t sig_term, sig_int;

static void
on_signal(uv_signal_t *s, int signum)
{
    master_t *m = s->data;

    log_notice("signal %d received, shutting down", signum);
    uv_close((uv_handle_t *)&sig_term, NULL);
    uv_close((uv_handle_t *)&sig_int, NULL);
    master_shutdown(m);
}

/* glibc's allocator, set for the master's pattern: millions of small
 * short-lived blocks (JSON trees, SQLite records) between a few large ones
 * (a 1,000-guest batch's reply, its idempotency record, a spec's row).
 * With fastbins, every request above 1 KiB first merges all free small
 * blocks (malloc_consolidate), which grew with the heap to ~20 ms per
 * 1,000-guest batch at 100,000 guests: a tenth of the master's CPU in
 * _int_malloc and malloc_consolidate (issue 16). Without fastbins small
 * blocks still go through the thread cache; blocks of 128 KiB and more are
 * mapped and unmapped whole instead of carved from the fragmented heap. */
static void
tune_malloc(void)
{
    (void)mallopt(M_MXFAST, 0);
    (void)mallopt(M_MMAP_THRESHOLD, 128 * 1024);
    /* SQLite's memory statistics take a global mutex and count at every
     * allocation (sqlite3Malloc, 6 % of the master at 100,000 guests); the
     * master never reads them. Before SQLite is initialized. */
    (void)sqlite3_config(SQLITE_CONFIG_MEMSTATUS, 0);
    /* jansson's small blocks on free lists of the loop's thread (this one):
     * master/jalloc.h. Before any JSON value exists. */
    jalloc_install();
    /* SQLite's small blocks on the same lists (no lookaside in this
     * build). Before SQLite is initialized. */
    (void)jalloc_sqlite_install();
}

int
main(int argc, char **argv)
{
    _cleanup_free_ char *binds = NULL;
    const char *config_path = NULL;
    config_t *flags = config_new(), *cfg = NULL;
    struct master_config mc;
    char addr[64];
    int r;

    tune_malloc();
    bool check_only = false;
    r = parse_args(argc, argv, flags, &config_path, &check_only);
    if (r == 0)
        cfg = load_config(config_path, flags);
    config_destroy(&flags);
    if (r != 0 || !cfg)
        return r > 0 ? 0 : EXIT_USAGE;

    log_setup("vfleet-master", LOG_SINK_STDERR,
              log_level_from_string(config_get(cfg, "master", "log_level") ?: "info"));
    log_set_format(
        (enum log_format)log_format_from_string(config_get(cfg, "master", "log_format") ?: "text"));
    bool access = true;
    (void)config_get_bool(cfg, "master", "access_log", &access);
    log_access_enabled = access;
    if (fill_master_config(cfg, &mc, addr, sizeof(addr), &binds) < 0) {
        config_destroy(&cfg);
        return EXIT_USAGE;
    }
    if (check_only) {
        if (check_tls_files(cfg, &mc) < 0) {
            config_destroy(&cfg);
            return EXIT_USAGE;
        }
        printf("vfleet-master: configuration \"%s\" is valid\n",
               config_path ? config_path : DEFAULT_CONFIG);
        config_destroy(&cfg);
        return 0;
    }
    protect_db(mc.db_path);
    raise_nofile();
    make_socket_dir(mc.api_socket);

    uv_loop_t loop;
    master_t *m = NULL;
    char err[512] = "";
    uv_loop_init(&loop);
    r = master_new(&loop, &mc, &m, err, sizeof(err));
    if (r < 0) {
        log_error("cannot start: %s", err[0] ? err : strerror(-r));
        uv_run(&loop, UV_RUN_NOWAIT);
        uv_loop_close(&loop);
        config_destroy(&cfg);
        return 1;
    }
    uv_signal_init(&loop, &sig_term);
    uv_signal_init(&loop, &sig_int);
    sig_term.data = sig_int.data = m;
    uv_signal_start(&sig_term, on_signal, SIGTERM);
    uv_signal_start(&sig_int, on_signal, SIGINT);
    log_notice("master running: api %s://%s:%u, db \"%s\", %u node endpoint(s), %s",
               mc.tls_off ? "http" : "https", mc.http_addr, (unsigned)mc.http_port, mc.db_path,
               mc.n_binds ? mc.n_binds : 1, sched_algo_name(mc.sched.algo));
    uv_run(&loop, UV_RUN_DEFAULT);
    master_destroy(&m);
    uv_run(&loop, UV_RUN_NOWAIT);
    uv_loop_close(&loop);
    config_destroy(&cfg);
    jalloc_release();
    return 0;
}
