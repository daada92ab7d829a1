/* vfleet-master: the cluster's master. Reads /etc/vfleet/master.conf
 * ([master] section) and flags (which win), then runs the actor
 * (master/master.h) until SIGTERM or SIGINT. */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <uv.h>

#include "common/config.h"
#include "common/fsutil.h"
#include "common/log.h"
#include "common/mem.h"
#include "master/master.h"

#define DEFAULT_CONFIG "/etc/vfleet/master.conf"
#define EXIT_USAGE     2

static void
usage(FILE *f)
{
    fputs(
        "usage: vfleet-master [OPTIONS]\n"
        "  -c, --config FILE        INI file (default " DEFAULT_CONFIG ", [master] section)\n"
        "      --db PATH            state database (default /var/lib/vfleet/master.db)\n"
        "      --listen ADDR:PORT   REST API (default 127.0.0.1:7400)\n"
        "      --bind ENDPOINT      node endpoint, repeatable (default tcp://127.0.0.1:7401);\n"
        "                           tcp:// ones use CurveZMQ, ipc:// ones are plaintext\n"
        "      --key-file PATH      the master's CurveZMQ key pair (default master.key by the db)\n"
        "      --insecure           tcp:// node endpoints in PLAINTEXT (trusted networks only)\n"
        "      --web DIR            serve the web UI from DIR\n"
        "      --socket PATH        API for root on this host (default "
        "/run/vfleet-master/api.sock; \"\" = none)\n"
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
        "      --max-ips N          addresses per guest (default 16)\n"
        "      --log-level L        debug, info, notice, warning, err (default info)\n"
        "  -h, --help\n",
        f);
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

static int
parse_ratio(const char *s, double *out)
{
    char *end;

    errno = 0;
    double v = strtod(s, &end);
    if (errno || *end || v < 1 || v > 1000)
        return -EINVAL;
    *out = v;
    return 0;
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

int
main(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"config", required_argument, NULL, 'c'},
        {"db", required_argument, NULL, 'd'},
        {"listen", required_argument, NULL, 'L'},
        {"bind", required_argument, NULL, 'b'},
        {"web", required_argument, NULL, 'w'},
        {"heartbeat-ms", required_argument, NULL, 'H'},
        {"suspect-after", required_argument, NULL, 'S'},
        {"down-after", required_argument, NULL, 'D'},
        {"algorithm", required_argument, NULL, 'a'},
        {"overcommit-cpu", required_argument, NULL, 1},
        {"overcommit-memory", required_argument, NULL, 2},
        {"overcommit-disk", required_argument, NULL, 3},
        {"max-ips", required_argument, NULL, 'i'},
        {"log-level", required_argument, NULL, 'l'},
        {"socket", required_argument, NULL, 4},
        {"tls-cert", required_argument, NULL, 5},
        {"tls-key", required_argument, NULL, 6},
        {"tls", required_argument, NULL, 7},
        {"api-names", required_argument, NULL, 8},
        {"http-max-connections", required_argument, NULL, 9},
        {"http-max-per-address", required_argument, NULL, 10},
        {"http-idle-timeout", required_argument, NULL, 11},
        {"key-file", required_argument, NULL, 'K'},
        {"insecure", no_argument, NULL, 'I'},
        {"help", no_argument, NULL, 'h'},
        {0},
    };
    static const struct {
        int opt;         /* getopt value */
        const char *key; /* [master] key it sets */
    } keymap[] = {
        {'d', "db"},
        {'L', "listen"},
        {'w', "web"},
        {'H', "heartbeat_ms"},
        {'S', "suspect_after"},
        {'D', "down_after"},
        {'a', "algorithm"},
        {1, "overcommit_cpu"},
        {2, "overcommit_memory"},
        {3, "overcommit_disk"},
        {'i', "max_ips"},
        {'l', "log_level"},
        {4, "socket"},
        {5, "tls_cert"},
        {6, "tls_key"},
        {7, "tls"},
        {8, "api_names"},
        {9, "http_max_connections"},
        {10, "http_max_per_address"},
        {11, "http_idle_timeout"},
        {'K', "key_file"},
    };
    _cleanup_free_ char *binds_flag = NULL;
    const char *config_path = NULL;
    config_t *flags = config_new(), *cfg = NULL;
    int c, r, line = 0;

    while ((c = getopt_long(argc, argv, "c:h", longopts, NULL)) != -1) {
        if (c == 'c') {
            config_path = optarg;
        } else if (c == 'b') {
            char *n = binds_flag ? xasprintf("%s,%s", binds_flag, optarg) : xstrdup(optarg);
            free(binds_flag);
            binds_flag = n;
        } else if (c == 'I') {
            config_set(flags, "master", "insecure", "true");
        } else if (c == 'h') {
            usage(stdout);
            config_destroy(&flags);
            return 0;
        } else {
            const char *key = NULL;
            for (size_t i = 0; i < ARRAY_SIZE(keymap); i++)
                if (keymap[i].opt == c)
                    key = keymap[i].key;
            if (!key) {
                usage(stderr);
                config_destroy(&flags);
                return EXIT_USAGE;
            }
            config_set(flags, "master", key, optarg);
        }
    }
    if (optind < argc) {
        fprintf(stderr, "vfleet-master: unexpected argument \"%s\"\n", argv[optind]);
        config_destroy(&flags);
        return EXIT_USAGE;
    }
    r = config_load(config_path ? config_path : DEFAULT_CONFIG, &cfg, &line);
    if (r == -ENOENT && !config_path) {
        cfg = config_new();
    } else if (r < 0) {
        if (r == -EBADMSG)
            fprintf(stderr, "vfleet-master: %s:%d: cannot parse this line\n",
                    config_path ? config_path : DEFAULT_CONFIG, line);
        else
            fprintf(stderr, "vfleet-master: cannot read \"%s\": %s\n",
                    config_path ? config_path : DEFAULT_CONFIG, strerror(-r));
        config_destroy(&flags);
        return EXIT_USAGE;
    }
    for (size_t i = 0; i < ARRAY_SIZE(keymap); i++) {
        const char *v = config_get(flags, "master", keymap[i].key);
        if (v)
            config_set(cfg, "master", keymap[i].key, v);
    }
    if (binds_flag)
        config_set(cfg, "master", "bind", binds_flag);
    if (config_get(flags, "master", "insecure"))
        config_set(cfg, "master", "insecure", "true");
    config_destroy(&flags);

    const char *lv = config_get(cfg, "master", "log_level");
    int level = log_level_from_string(lv ? lv : "info");
    log_setup("vfleet-master", LOG_SINK_STDERR, level < 0 ? LOG_INFO : level);

    struct master_config mc;
    char addr[64];
    uint64_t u;
    const char *s;
    master_config_default(&mc);
    int bad = 0;
#define BAD(what)                                                                                  \
    do {                                                                                           \
        fprintf(stderr, "vfleet-master: invalid %s\n", what);                                      \
        bad = 1;                                                                                   \
    } while (0)
    if ((s = config_get(cfg, "master", "db")))
        mc.db_path = s;
    if ((s = config_get(cfg, "master", "web")))
        mc.web_dir = s;
    if ((s = config_get(cfg, "master", "key_file")))
        mc.key_file = s;
    r = config_get_bool(cfg, "master", "insecure", &mc.insecure);
    if (r < 0 && r != -ENOENT)
        BAD("insecure (true or false)");
    if ((s = config_get(cfg, "master", "listen"))) {
        if (parse_listen(s, addr, sizeof(addr), &mc.http_port) < 0)
            BAD("listen (ADDR:PORT)");
        else
            mc.http_addr = addr;
    }
    _cleanup_free_ char *binds = NULL;
    if ((s = config_get(cfg, "master", "bind"))) {
        binds = xstrdup(s);
        char *save = NULL;
        for (char *t = strtok_r(binds, ", ", &save); t; t = strtok_r(NULL, ", ", &save)) {
            if (mc.n_binds >= MASTER_MAX_BINDS) {
                BAD("bind (at most 8 endpoints)");
                break;
            }
            mc.binds[mc.n_binds++] = t;
        }
    }
    r = config_get_u64(cfg, "master", "heartbeat_ms", &u);
    if (r == 0 && (u < 100 || u > 600000))
        r = -ERANGE;
    if (r == 0)
        mc.heartbeat_ms = (uint32_t)u;
    else if (r != -ENOENT)
        BAD("heartbeat_ms (100-600000)");
    r = config_get_u64(cfg, "master", "suspect_after", &u);
    if (r == 0 && (u < 1 || u > 86400))
        r = -ERANGE;
    if (r == 0)
        mc.suspect_after_ms = (uint32_t)u * 1000;
    else if (r != -ENOENT)
        BAD("suspect_after (seconds)");
    r = config_get_u64(cfg, "master", "down_after", &u);
    if (r == 0 && (u < 1 || u > 86400))
        r = -ERANGE;
    if (r == 0)
        mc.down_after_ms = (uint32_t)u * 1000;
    else if (r != -ENOENT)
        BAD("down_after (seconds)");
    if (mc.down_after_ms <= mc.suspect_after_ms)
        BAD("down_after: must be longer than suspect_after");
    if ((s = config_get(cfg, "master", "algorithm"))) {
        int a = sched_algo_from_string(s);
        if (a < 0)
            BAD("algorithm (spread or binpack)");
        else
            mc.sched.algo = (enum sched_algo)a;
    }
    if ((s = config_get(cfg, "master", "overcommit_cpu")) &&
        parse_ratio(s, &mc.sched.overcommit_cpu) < 0)
        BAD("overcommit_cpu (1-1000)");
    if ((s = config_get(cfg, "master", "overcommit_memory")) &&
        parse_ratio(s, &mc.sched.overcommit_memory) < 0)
        BAD("overcommit_memory (1-1000)");
    if ((s = config_get(cfg, "master", "overcommit_disk")) &&
        parse_ratio(s, &mc.sched.overcommit_disk) < 0)
        BAD("overcommit_disk (1-1000)");
    r = config_get_u64(cfg, "master", "max_ips", &u);
    if (r == 0 && (u < 1 || u > 64))
        r = -ERANGE;
    if (r == 0)
        mc.max_ips = (uint32_t)u;
    else if (r != -ENOENT)
        BAD("max_ips (1-64)");
    /* The API's listeners and TLS (docs/config.md). */
    s = config_get(cfg, "master", "socket");
    mc.api_socket = !s ? "/run/vfleet-master/api.sock" : *s ? s : NULL;
    mc.tls_cert = config_get(cfg, "master", "tls_cert");
    mc.tls_key = config_get(cfg, "master", "tls_key");
    mc.api_names = config_get(cfg, "master", "api_names");
    if ((s = config_get(cfg, "master", "tls"))) {
        if (!strcmp(s, "no") || !strcmp(s, "false") || !strcmp(s, "off"))
            mc.tls_off = true;
        else if (strcmp(s, "yes") && strcmp(s, "true") && strcmp(s, "on"))
            BAD("tls (yes or no)");
    }
    const struct {
        const char *key;  /* [master] key */
        uint64_t min;     /* its range */
        uint64_t max;     /* ... */
        uint32_t *target; /* where it goes */
    } http_keys[] = {
        {"http_max_connections", 16, 100000, &mc.http_max_conns},
        {"http_max_per_address", 1, 100000, &mc.http_max_per_addr},
        {"http_idle_timeout", 1, 3600, &mc.http_idle_s},
    };
    for (size_t i = 0; i < ARRAY_SIZE(http_keys); i++) {
        r = config_get_u64(cfg, "master", http_keys[i].key, &u);
        if (r == 0 && (u < http_keys[i].min || u > http_keys[i].max))
            r = -ERANGE;
        if (r == 0)
            *http_keys[i].target = (uint32_t)u;
        else if (r != -ENOENT)
            BAD(http_keys[i].key);
    }
#undef BAD
    if (bad) {
        config_destroy(&cfg);
        return EXIT_USAGE;
    }

    /* /var/lib/vfleet may not exist on a fresh host. */
    if (strcmp(mc.db_path, ":memory:") != 0) {
        _cleanup_free_ char *dir = xstrdup(mc.db_path);
        char *slash = strrchr(dir, '/');
        if (slash && slash != dir) {
            *slash = '\0';
            int mr = fs_mkdir_p(dir, 0700);
            if (mr < 0)
                log_debug("cannot create \"%s\": %s", dir, strerror(-mr));
        }
    }

    /* Each API and node connection (and each stranger's, until it is
     * refused) is a file descriptor: allow them all. */
    struct rlimit nofile;
    if (getrlimit(RLIMIT_NOFILE, &nofile) == 0 && nofile.rlim_cur < nofile.rlim_max) {
        nofile.rlim_cur = nofile.rlim_max > 65536 ? 65536 : nofile.rlim_max;
        (void)setrlimit(RLIMIT_NOFILE, &nofile);
    }
    /* The Unix socket's directory (/run/vfleet-master under systemd). */
    if (mc.api_socket) {
        _cleanup_free_ char *sdir = xstrdup(mc.api_socket);
        char *slash = strrchr(sdir, '/');
        if (slash && slash != sdir) {
            *slash = '\0';
            (void)fs_mkdir_p(sdir, 0700);
        }
    }

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
    return 0;
}
