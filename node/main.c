/* vfleet-node: the node agent, and its local admin commands.
 *
 *   vfleet-node [run]        the daemon: connects to the master, drives guests
 *   vfleet-node ls           guests in the local store, with their state
 *   vfleet-node status       the agent and a summary of its guests
 *   vfleet-node enter NAME   a shell inside a running guest
 *   vfleet-node join         join a master with a token (node/join.h)
 *   vfleet-node console NAME --log   the tail of a guest's console
 *
 * The local commands read the store directly, so they work while the master
 * (or the agent) is down. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <malloc.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <net/if.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>
#include <uv.h>

#include "common/config.h"
#include "common/fsutil.h"
#include "common/log.h"
#include "common/mem.h"
#include "common/units.h"
#include "common/version.h"
#include "node/agent.h"
#include "node/join.h"
#include "node/leftovers_cli.h"
#include "node/memtidy.h"
#include "node/node_config.h"
#include "node/linux/console.h"
#include "node/linux/linux_backend.h"
#include "node/linux/net.h"
#include "node/linux/proc.h"
#include "node/sim/sim.h"
#include "node/store.h"
#include "node/vservers_cli.h"
#include "proto/link.h"

#define DEFAULT_CONFIG    "/etc/vfleet/node.conf"
#define DEFAULT_STATE_DIR "/var/lib/vfleet/node"
#define DEFAULT_MASTER    "tcp://127.0.0.1:7401"

/* Exit codes shared with the vfleet CLI: usage errors, not found, failures. */
enum { EXIT_FAIL = 1, EXIT_USAGE = 2, EXIT_NOT_FOUND = 3 };

static void
usage(FILE *f)
{
    fprintf(f, "usage: vfleet-node [run] [options]\n"
               "       vfleet-node ls [--json] [--state-dir DIR]\n"
               "       vfleet-node status [--state-dir DIR]\n"
               "       vfleet-node routes [--json] [--state-dir DIR]\n"
               "       vfleet-node enter NAME [--state-dir DIR] [-- COMMAND...]\n"
               "       vfleet-node vservers setup|trafstat|routes_ipv4 [--state-dir DIR]\n"
               "       vfleet-node join --master tcp://HOST:PORT --token TOKEN [--name NAME]\n"
               "                        [--state-dir DIR]\n"
               "       vfleet-node console NAME --log [--state-dir DIR]\n"
               "       vfleet-node leftovers [--json] [--state-dir DIR]\n"
               "       vfleet-node leftovers remove ID --yes [--state-dir DIR]\n"
               "\n"
               "options:\n"
               "  -c, --config FILE      configuration file (default " DEFAULT_CONFIG ")\n"
               "  -n, --name NAME        node name (default: the host name)\n"
               "  -m, --master ENDPOINT  master endpoint (default " DEFAULT_MASTER ", or the one\n"
               "                         joined); tcp:// needs a join, ipc:// is plaintext\n"
               "      --token TOKEN      join: the join token (vfleet node token create)\n"
               "      --insecure         a tcp:// master in PLAINTEXT, without a join\n"
               "  -s, --state-dir DIR    local store (default " DEFAULT_STATE_DIR ")\n"
               "  -b, --backend NAME     linux (default) or sim\n"
               "  -t, --templates DIR    template directory (default STATE_DIR/templates)\n"
               "      --heartbeat MS     heartbeat interval in milliseconds (default 5000)\n"
               "      --usage-interval S usage sampling interval in seconds (default 10)\n"
               "  -L, --label KEY=VALUE  a node label (repeatable; adds to [labels] of the file)\n"
               "      --max-guests N     guests this node accepts (linux; default 1000)\n"
               "      --vservers DIR     mount the FreeVPS views there (FUSE; default\n"
               "                         STATE_DIR/vservers with the linux backend; none = off)\n"
               "\n"
               "simulated nodes (--backend sim):\n"
               "      --sim-nodes N      run N simulated nodes in this process, named\n"
               "                         NAME-0001 .. NAME-N (NAME defaults to \"sim\"), guests\n"
               "                         in memory only; without it, one node named NAME\n"
               "      --sim-cpus MC      millicores each offers (default 16000)\n"
               "      --sim-memory SIZE  memory each offers (default 64G)\n"
               "      --sim-disk SIZE    disk each offers (default 1T)\n"
               "      --sim-max-guests N guests each accepts (default 1000)\n"
               "      --sim-seed N       seed of the synthetic usage (default 1; node i uses N+i)\n"
               "  -l, --log-level LEVEL  err, warning, notice, info (default), debug\n"
               "      --log-format F     text (default) or json\n"
               "      --json             machine-readable output (ls)\n"
               "      --help-config      every configuration key, its type and range\n"
               "      --check-config     read and check the configuration, then exit\n"
               "      --log              console: print what the guest's console holds\n"
               "      --yes              leftovers remove: yes, delete that guest's disk\n"
               "      --version          print the version and exit\n"
               "  -h, --help             this text\n");
}

struct options {
    config_t *cfg;     /* file values overridden by flags */
    const char *verb;  /* run, ls, status, enter, join, console */
    char **rest;       /* arguments after the verb */
    int n_rest;        /* entries in rest */
    bool json;         /* --json */
    bool check_only;   /* --check-config: read and check, then exit */
    bool log;          /* --log */
    const char *token; /* join: --token */
    bool yes;          /* --yes: leftovers remove may delete */
};

static int
copy_label(const char *key, const char *value, void *userdata)
{
    config_set(userdata, "labels", key, value);
    return 0;
}

static int
parse_options(int argc, char **argv, struct options *o)
{
    static const struct option longopts[] = {
        {"config", required_argument, NULL, 'c'},
        {"name", required_argument, NULL, 'n'},
        {"master", required_argument, NULL, 'm'},
        {"state-dir", required_argument, NULL, 's'},
        {"backend", required_argument, NULL, 'b'},
        {"templates", required_argument, NULL, 't'},
        {"heartbeat", required_argument, NULL, 'H'},
        {"usage-interval", required_argument, NULL, 'U'},
        {"log-level", required_argument, NULL, 'l'},
        {"label", required_argument, NULL, 'L'},
        {"max-guests", required_argument, NULL, 'X'},
        {"vservers", required_argument, NULL, 'V'},
        {"sim-nodes", required_argument, NULL, 'N'},
        {"sim-cpus", required_argument, NULL, 'C'},
        {"sim-memory", required_argument, NULL, 'M'},
        {"sim-disk", required_argument, NULL, 'D'},
        {"sim-max-guests", required_argument, NULL, 'G'},
        {"sim-seed", required_argument, NULL, 'S'},
        {"log-format", required_argument, NULL, 'F'},
        {"json", no_argument, NULL, 'j'},
        {"token", required_argument, NULL, 'T'},
        {"insecure", no_argument, NULL, 'I'},
        {"log", no_argument, NULL, 'g'},
        {"yes", no_argument, NULL, 'Y'},
        {"help", no_argument, NULL, 'h'},
        {"help-config", no_argument, NULL, 'K'},
        {"check-config", no_argument, NULL, 'Q'},
        {"version", no_argument, NULL, 'R'},
        {0},
    };
    const char *config_path = NULL;
    config_t *flags = config_new();
    int c, r;

    /* Options may come before the verb and after it, mixed with its arguments
     * ("enter NAME --state-dir D -- CMD"): the first pass stops at the verb,
     * the second parses the rest as its own argument vector, permuting. */
    char **av = argv;
    int ac = argc;
    for (int pass = 0; pass < 2; pass++) {
        const char *opts = pass == 0 ? "+c:n:m:s:b:t:l:L:h" : "c:n:m:s:b:t:l:L:h";
        while ((c = getopt_long(ac, av, opts, longopts, NULL)) != -1) {
            const char *key = NULL;
            switch (c) {
            case 'c':
                config_path = optarg;
                break;
            case 'n':
                key = "name";
                break;
            case 'm':
                key = "master";
                break;
            case 's':
                key = "state_dir";
                break;
            case 'b':
                key = "backend";
                break;
            case 't':
                key = "templates";
                break;
            case 'H':
                key = "heartbeat_ms";
                break;
            case 'U':
                key = "usage_interval";
                break;
            case 'l':
                key = "log_level";
                break;
            case 'F':
                key = "log_format";
                break;
            case 'L': {
                char *eq = strchr(optarg, '=');
                if (!eq || eq == optarg) {
                    fprintf(stderr, "vfleet-node: --label wants KEY=VALUE, not \"%s\"\n", optarg);
                    config_destroy(&flags);
                    return -EINVAL;
                }
                _cleanup_free_ char *k = xstrndup(optarg, (size_t)(eq - optarg));
                config_set(flags, "labels", k, eq + 1);
                break;
            }
            case 'X':
                key = "max_guests";
                break;
            case 'V':
                key = "vservers";
                break;
            case 'N':
                key = "sim_nodes";
                break;
            case 'C':
                key = "sim_cpus";
                break;
            case 'M':
                key = "sim_memory";
                break;
            case 'D':
                key = "sim_disk";
                break;
            case 'G':
                key = "sim_max_guests";
                break;
            case 'S':
                key = "sim_seed";
                break;
            case 'j':
                o->json = true;
                break;
            case 'T':
                o->token = optarg;
                break;
            case 'I':
                config_set(flags, "node", "insecure", "true");
                break;
            case 'g':
                o->log = true;
                break;
            case 'Y':
                o->yes = true;
                break;
            case 'h':
                usage(stdout);
                config_destroy(&flags);
                exit(0);
            case 'K':
                config_print_schema(stdout, node_config_keys, node_config_n_keys);
                config_destroy(&flags);
                exit(0);
            case 'Q':
                o->check_only = true;
                break;
            case 'R':
                puts("vfleet-node " VFLEET_VERSION);
                config_destroy(&flags);
                exit(0);
            default:
                usage(stderr);
                config_destroy(&flags);
                return -EINVAL;
            }
            if (key)
                config_set(flags, "node", key, optarg);
        }
        if (pass == 0) {
            o->verb = optind < argc ? argv[optind] : "run";
            /* The verb stands where a program name would: getopt skips it. */
            av = argv + (optind < argc ? optind : argc - 1);
            ac = argc - (int)(av - argv);
            optind = 0;
        }
    }
    o->rest = av + optind;
    o->n_rest = ac - optind;

    int line = 0;
    r = config_load(config_path ? config_path : DEFAULT_CONFIG, &o->cfg, &line);
    if (r == -ENOENT && !config_path) {
        o->cfg = config_new();
    } else if (r == -EBADMSG) {
        fprintf(stderr,
                "vfleet-node: %s:%d: not \"key = value\", \"[section]\" or a comment, or longer "
                "than %d characters\n",
                config_path ? config_path : DEFAULT_CONFIG, line, CONFIG_MAX_LINE);
        config_destroy(&flags);
        return r;
    } else if (r < 0) {
        fprintf(stderr, "vfleet-node: cannot read \"%s\": %s\n",
                config_path ? config_path : DEFAULT_CONFIG, strerror(-r));
        config_destroy(&flags);
        return r;
    }
    /* Flags win over the file. */
    static const char *const keys[] = {
        "name",           "master",    "state_dir",  "backend",    "templates",  "heartbeat_ms",
        "usage_interval", "log_level", "sim_nodes",  "sim_cpus",   "sim_memory", "sim_disk",
        "sim_max_guests", "sim_seed",  "max_guests", "log_format", "vservers",   "insecure"};
    for (size_t i = 0; i < ARRAY_SIZE(keys); i++) {
        const char *v = config_get(flags, "node", keys[i]);
        if (v)
            config_set(o->cfg, "node", keys[i], v);
    }
    config_foreach(flags, "labels", copy_label, o->cfg);
    config_destroy(&flags);
    /* An unknown key or a bad value stops here, with its file and line. */
    char err[1024];
    if (config_check(o->cfg, node_config_keys, node_config_n_keys, err, sizeof(err)) < 0) {
        fprintf(stderr, "vfleet-node: %s\n", err);
        config_destroy(&o->cfg);
        return -EINVAL;
    }
    return 0;
}

static const char *
opt_str(const struct options *o, const char *key, const char *def)
{
    const char *v = config_get(o->cfg, "node", key);
    return v && *v ? v : def;
}

static int
add_label(const char *key, const char *value, void *userdata)
{
    struct agent_config *ac = userdata;

    if (ac->n_labels >= PROTO_MAX_LABELS || !name_is_valid(key) ||
        strlen(value) > SPEC_LABEL_VAL_MAX) {
        fprintf(stderr, "vfleet-node: label \"%s\" is invalid or one too many\n", key);
        return -EINVAL;
    }
    strscpy(ac->labels[ac->n_labels].key, key, sizeof(ac->labels[0].key));
    strscpy(ac->labels[ac->n_labels].value, value, sizeof(ac->labels[0].value));
    ac->n_labels++;
    return 0;
}

/* The linux backend's settings: [node] max_guests, console_ring,
 * disk_reserve, lxcfs, cgroup_prefix, templates and the [network] section. */
static int
linux_config_read(const struct options *o, const char *state_dir, struct linux_config *lc)
{
    _cleanup_free_ char *tdir = xasprintf("%s/templates", state_dir);
    uint64_t v;
    int r;

    strscpy(lc->state_dir, state_dir, sizeof(lc->state_dir));
    strscpy(lc->templates, opt_str(o, "templates", tdir), sizeof(lc->templates));
    if (node_config_net(o->cfg, &lc->net) < 0 || node_config_cgroup_prefix(o->cfg, lc) < 0)
        return -EINVAL;
    r = config_get_u64(o->cfg, "node", "max_guests", &v);
    if (r == 0 && v >= 1 && v <= STORE_MAX_GUESTS)
        lc->max_guests = (uint32_t)v;
    else if (r != -ENOENT)
        return fprintf(stderr, "vfleet-node: max_guests must be 1..%d\n", STORE_MAX_GUESTS),
               -EINVAL;
    r = config_get_size(o->cfg, "node", "console_ring", &v);
    if (r == 0 && v >= CONSOLE_RING_MIN && v <= CONSOLE_RING_MAX)
        lc->console_ring = v;
    else if (r != -ENOENT)
        return fprintf(stderr, "vfleet-node: console_ring must be a size from 4K to 64M\n"),
               -EINVAL;
    lc->disk_reserve = LINUX_DEFAULT_RESERVE;
    r = config_get_size(o->cfg, "node", "disk_reserve", &v);
    if (r == 0)
        lc->disk_reserve = v;
    else if (r != -ENOENT)
        return fprintf(stderr, "vfleet-node: disk_reserve must be a size such as 2G (0 = none)\n"),
               -EINVAL;
    const char *lxcfs = config_get(o->cfg, "node", "lxcfs");
    if (lxcfs && (lxcfs[0] != '/' || strscpy(lc->lxcfs, lxcfs, sizeof(lc->lxcfs)) < 0))
        return fprintf(stderr, "vfleet-node: lxcfs must be an absolute path\n"), -EINVAL;
    return 0;
}

static uv_signal_t sigterm, sigint;

/* The agents this process runs: one, or --sim-nodes of them on one loop. */
struct agents {
    agent_t **a; /* owned */
    size_t n;    /* entries in a */
};

static void
on_signal(uv_signal_t *s, int signum)
{
    struct agents *all = s->data;

    log_notice("signal %d received, stopping %zu agent(s) (guests keep running)", signum, all->n);
    uv_close((uv_handle_t *)&sigterm, NULL);
    uv_close((uv_handle_t *)&sigint, NULL);
    for (size_t i = 0; i < all->n; i++)
        agent_shutdown(all->a[i]);
}

/* Runs the loop with every agent of all until a signal stops them, then frees them. */
static int
run_agents(uv_loop_t *loop, struct agents *all)
{
    uv_signal_init(loop, &sigterm);
    uv_signal_init(loop, &sigint);
    sigterm.data = sigint.data = all;
    uv_signal_start(&sigterm, on_signal, SIGTERM);
    uv_signal_start(&sigint, on_signal, SIGINT);
    uv_run(loop, UV_RUN_DEFAULT);
    for (size_t i = 0; i < all->n; i++)
        agent_destroy(&all->a[i]);
    uv_loop_close(loop);
    return 0;
}

/* The simulated node's capacity and seed from the --sim-* flags or the file
 * (a bad one printed). */
static int
sim_config_of(const struct options *o, struct sim_config *sc)
{
    char why[128];
    int r = sim_config_read(o->cfg, sc, why, sizeof(why));

    if (r < 0)
        fprintf(stderr, "vfleet-node: %s\n", why);
    return r;
}

/* vfleet-node run --backend sim --sim-nodes N: N agents on one loop, each its
 * own DEALER identity, sim backend (seed + i) and memory store, so thousands
 * of nodes cost a few file descriptors each and nothing on disk. */
static int
run_sim_nodes(const struct options *o, const struct agent_config *base, uint64_t n)
{
    struct sim_config sc;
    struct rlimit rl;
    uv_loop_t loop;
    int err = 0;

    if (sim_config_of(o, &sc) < 0)
        return EXIT_USAGE;
    /* Each node holds a ZeroMQ socket (its mailbox fd) and a connection to the
     * master: raise the soft descriptor limit as far as the hard one allows. */
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        (void)setrlimit(RLIMIT_NOFILE, &rl);
    }
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < 3 * n + 64) {
        fprintf(stderr,
                "vfleet-node: %" PRIu64 " simulated nodes need about %" PRIu64
                " file descriptors, the limit is %llu (raise it with ulimit -n)\n",
                n, 3 * n + 64, (unsigned long long)rl.rlim_cur);
        return EXIT_FAIL;
    }
    /* libzmq allows 1024 sockets per context unless told otherwise, before the first one. */
    link_set_max_sockets((int)n + 64);
    /* No ZMTP heartbeat timers per simulated node (link_set_zmtp_heartbeats):
     * thousands of them cost this process more than its nodes' work. */
    link_set_zmtp_heartbeats(false);

    struct agents all = {.a = xcalloc(n, sizeof(agent_t *)), .n = 0};
    uv_loop_init(&loop);
    for (uint64_t i = 0; i < n; i++) {
        struct agent_config ac = *base;
        struct sim_config nc = sc;

        if (snprintf(ac.name, sizeof(ac.name), "%s-%04" PRIu64, base->name, i + 1) >=
                (int)sizeof(ac.name) ||
            !name_is_valid(ac.name)) {
            fprintf(stderr, "vfleet-node: \"%s-%04" PRIu64 "\" is not a valid node name\n",
                    base->name, i + 1);
            err = -EINVAL;
            break;
        }
        ac.memory_store = true;
        ac.fake_pids = true;
        nc.seed = sc.seed + i;
        all.a[i] = agent_new(&loop, &ac, sim_backend_new(&nc), &err);
        if (!all.a[i]) {
            log_error("node=%s cannot start: %s", ac.name, strerror(-err));
            break;
        }
        all.n++;
    }
    if (all.n < n) {
        for (size_t i = 0; i < all.n; i++)
            agent_shutdown(all.a[i]);
        uv_run(&loop, UV_RUN_DEFAULT);
        for (size_t i = 0; i < all.n; i++)
            agent_destroy(&all.a[i]);
        uv_loop_close(&loop);
        free(all.a);
        return err == -EINVAL ? EXIT_USAGE : EXIT_FAIL;
    }
    log_notice("%" PRIu64 " simulated nodes %s-0001..%s-%04" PRIu64
               " running, master \"%s\", %u millicores, %" PRIu64 " MiB memory, %" PRIu64
               " GiB disk, %u guests each",
               n, base->name, base->name, n, base->master, sc.cpus, sc.memory >> 20, sc.disk >> 30,
               sc.max_guests);
    run_agents(&loop, &all);
    free(all.a);
    return 0;
}

/* Holds an exclusive lock on STATE_DIR/vfleet-node.pid for the agent's life,
 * so a second agent on the same store refuses to start. */
static int
take_pidfile(const char *state_dir)
{
    _cleanup_free_ char *path = xasprintf("%s/vfleet-node.pid", state_dir);
    char buf[32];
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);

    if (fd < 0)
        return -errno;
    if (flock(fd, LOCK_EX | LOCK_NB) < 0) {
        int r = -errno;
        close(fd);
        return r == -EWOULDBLOCK ? -EALREADY : r;
    }
    int n = snprintf(buf, sizeof(buf), "%d\n", (int)getpid());
    if (ftruncate(fd, 0) < 0 || pwrite(fd, buf, (size_t)n, 0) != n) {
        int r = -errno;
        close(fd);
        return r;
    }
    return fd;
}

/* Makes the state directory (owner-only: it holds every guest's spec and
 * the disks) and takes its lock. Returns the lock's fd, or -1 (printed). */
static int
open_state_dir(const char *state_dir)
{
    struct stat st;
    int r;

    if ((r = fs_mkdir_p(state_dir, 0700)) < 0 || stat(state_dir, &st) < 0) {
        fprintf(stderr, "vfleet-node: cannot create \"%s\": %s\n", state_dir,
                strerror(r < 0 ? -r : errno));
        return -1;
    }
    if ((st.st_mode & 0077) && chmod(state_dir, st.st_mode & 0700) == 0)
        log_notice("state directory \"%s\" made owner-only (0700)", state_dir);
    int fd = take_pidfile(state_dir);
    if (fd < 0) {
        fprintf(stderr, "vfleet-node: %s\n",
                fd == -EALREADY
                    ? "another agent (or vfleet-node leftovers remove) runs on this state directory"
                    : strerror(-fd));
        return -1;
    }
    return fd;
}

/* The agent lives as long as the host and beside every guest on it: what it
 * keeps resident, the host gives up. glibc's defaults suit programs that
 * allocate hard from many threads: an arena per thread (the libuv pool,
 * libzmq's I/O thread), and a mmap threshold that grows to 32 MiB once a
 * large block is freed, after which the usage batch's arrays (a copy of every
 * running guest's spec, each interval) are carved from the heap and its free
 * space stays resident between batches. One arena and a fixed threshold give
 * them back when they are freed. */
static void
agent_malloc_setup(void)
{
    (void)mallopt(M_ARENA_MAX, 1);
    (void)mallopt(M_MMAP_THRESHOLD, 128 * 1024);
    (void)mallopt(M_TRIM_THRESHOLD, 256 * 1024);
}

static int
cmd_run(struct options *o)
{
    struct agent_config ac = {0};
    const char *state_dir = opt_str(o, "state_dir", DEFAULT_STATE_DIR);
    const char *backend_name = opt_str(o, "backend", "linux");
    uint64_t v, sim_nodes;
    char host[NAME_MAX_LEN + 1] = "";
    int r, err = 0;

    agent_malloc_setup();
    /* One libzmq I/O thread: a node has one link, to its master. */
    link_set_io_threads(1);
    gethostname(host, sizeof(host) - 1);
    r = config_get_u64(o->cfg, "node", "sim_nodes", &sim_nodes);
    if (r == -ENOENT)
        sim_nodes = 0;
    else if (r < 0 || sim_nodes < 1 || sim_nodes > 100000 || strcmp(backend_name, "sim") != 0) {
        fprintf(stderr, "vfleet-node: --sim-nodes wants 1..100000 and --backend sim\n");
        return EXIT_USAGE;
    }
    if (sim_nodes && !config_get(o->cfg, "node", "name"))
        strscpy(host, "sim", sizeof(host));
    if (strscpy(ac.name, opt_str(o, "name", host), sizeof(ac.name)) < 0 ||
        !name_is_valid(ac.name)) {
        fprintf(stderr, "vfleet-node: node name \"%s\" is not a valid name (a DNS label)\n",
                opt_str(o, "name", host));
        return EXIT_USAGE;
    }
    if (strscpy(ac.master, opt_str(o, "master", DEFAULT_MASTER), sizeof(ac.master)) < 0 ||
        strscpy(ac.state_dir, state_dir, sizeof(ac.state_dir)) < 0) {
        fprintf(stderr, "vfleet-node: master endpoint or state directory too long\n");
        return EXIT_USAGE;
    }
    r = config_get_u64(o->cfg, "node", "heartbeat_ms", &v);
    if (r == 0 && v >= 100 && v <= 600000)
        ac.heartbeat_ms = (uint32_t)v;
    else if (r != -ENOENT) {
        fprintf(stderr, "vfleet-node: heartbeat_ms must be 100..600000\n");
        return EXIT_USAGE;
    }
    r = config_get_u64(o->cfg, "node", "usage_interval", &v);
    if (r == 0 && v >= 1 && v <= 3600)
        ac.usage_ms = (uint32_t)v * 1000;
    else if (r != -ENOENT) {
        fprintf(stderr, "vfleet-node: usage_interval must be 1..3600 seconds\n");
        return EXIT_USAGE;
    }
    if (config_foreach(o->cfg, "labels", add_label, &ac) < 0 ||
        node_config_migrate(o->cfg, &ac) < 0 ||
        join_agent_keys(o->cfg, state_dir, sim_nodes > 0, &ac) < 0)
        return EXIT_USAGE;
    _cleanup_close_ int pidfd = open_state_dir(state_dir);
    if (pidfd < 0)
        return EXIT_FAIL;
    if (sim_nodes)
        return run_sim_nodes(o, &ac, sim_nodes);

    /* The backend comes first: the linux backend forks its single-threaded
     * spawner here, before libzmq starts its I/O threads. */
    backend_t *b;
    if (strcmp(backend_name, "linux") == 0) {
        struct linux_config lc = {0};
        if (linux_config_read(o, state_dir, &lc) < 0)
            return EXIT_USAGE;
        vservers_mount_path(opt_str(o, "vservers", NULL), state_dir, true, ac.vservers,
                            sizeof(ac.vservers));
        strscpy(lc.vservers, ac.vservers, sizeof(lc.vservers));
        strscpy(ac.templates, lc.templates, sizeof(ac.templates));
        b = linux_backend_new(&lc, &err);
    } else if (strcmp(backend_name, "sim") == 0) {
        struct sim_config sc;
        if (sim_config_of(o, &sc) < 0)
            return EXIT_USAGE;
        ac.fake_pids = true;
        vservers_mount_path(opt_str(o, "vservers", NULL), state_dir, false, ac.vservers,
                            sizeof(ac.vservers));
        b = sim_backend_new(&sc);
    } else {
        fprintf(stderr, "vfleet-node: unknown backend \"%s\" (linux or sim)\n", backend_name);
        return EXIT_USAGE;
    }
    if (!b) {
        log_error("node=%s backend \"%s\" failed to start: %s", ac.name, backend_name,
                  strerror(-err));
        return EXIT_FAIL;
    }

    uv_loop_t loop;
    uv_loop_init(&loop);
    agent_t *a = agent_new(&loop, &ac, b, &err);
    if (!a) {
        log_error("node=%s cannot start: %s", ac.name, strerror(-err));
        uv_loop_close(&loop);
        return EXIT_FAIL;
    }
    struct agents all = {.a = &a, .n = 1};
    log_notice("node=%s agent running, master \"%s\", state \"%s\", backend %s", ac.name, ac.master,
               state_dir, backend_name);
    return run_agents(&loop, &all);
}

static const char *
record_state(const struct store_record *rec)
{
    if (rec->rt.pid && proc_is_same(rec->rt.pid, rec->rt.start_time))
        return "running";
    return "stopped";
}

static int
open_store(const struct options *o, store_t **s)
{
    const char *dir = opt_str(o, "state_dir", DEFAULT_STATE_DIR);
    int r = store_open_readonly(dir, s);

    if (r < 0)
        fprintf(stderr, "vfleet-node: cannot open the store in \"%s\": %s\n", dir, strerror(-r));
    return r;
}

static int
cmd_ls(struct options *o)
{
    _cleanup_(store_close) store_t *s = NULL;

    if (open_store(o, &s) < 0)
        return EXIT_FAIL;
    if (!o->json)
        printf("%-24s %-36s %5s %-8s %8s %s\n", "NAME", "ID", "GEN", "STATE", "PID", "FLAGS");
    else
        printf("[");
    for (size_t i = 0; i < store_count(s); i++) {
        const struct store_record *rec = store_at(s, i);
        const char *st = record_state(rec);
        bool priv = rec->spec.flags & SPEC_FLAG_PRIVATE, lock = rec->spec.flags & SPEC_FLAG_LOCK;
        const char *flags = priv && lock ? "private,lock" : priv ? "private" : lock ? "lock" : "-";
        int pid = strcmp(st, "running") == 0 ? (int)rec->rt.pid : 0;
        if (o->json)
            printf("%s{\"name\":\"%s\",\"id\":\"%s\",\"generation\":%" PRIu64
                   ",\"state\":\"%s\",\"pid\":%d,\"flags\":[%s%s%s]}",
                   i ? "," : "", rec->spec.name, rec->spec.id, rec->applied_generation, st, pid,
                   priv ? "\"private\"" : "", priv && lock ? "," : "", lock ? "\"lock\"" : "");
        else
            printf("%-24s %-36s %5" PRIu64 " %-8s %8d %s\n", rec->spec.name, rec->spec.id,
                   rec->applied_generation, st, pid, flags);
    }
    if (o->json)
        printf("]\n");
    return 0;
}

/* The routes view (FreeVPS routes_ipv4): every address of every guest in the
 * store, the host veth it is routed to, the guest, and whether the host
 * route is in the kernel of this network namespace now. */
static int
cmd_routes(struct options *o)
{
    _cleanup_(store_close) store_t *s = NULL;
    char addr[NETADDR_STRLEN], ifname[IFNAMSIZ];

    if (open_store(o, &s) < 0)
        return EXIT_FAIL;
    if (!o->json)
        printf("%-40s %-15s %-24s %s\n", "ADDRESS", "INTERFACE", "GUEST", "ROUTE");
    else
        printf("[");
    bool first = true;
    for (size_t i = 0; i < store_count(s); i++) {
        const struct store_record *rec = store_at(s, i);
        net_ifname(rec->spec.id, ifname);
        for (uint32_t k = 0; k < rec->spec.n_addrs; k++) {
            const struct netaddr *a = &rec->spec.addrs[k];
            netaddr_format(a, false, addr, sizeof(addr));
            const char *st = net_route_present(&rec->spec, a) > 0 ? "up" : "down";
            if (o->json)
                printf("%s{\"address\":\"%s\",\"interface\":\"%s\",\"guest\":\"%s\","
                       "\"id\":\"%s\",\"route\":\"%s\"}",
                       first ? "" : ",", addr, ifname, rec->spec.name, rec->spec.id, st);
            else
                printf("%-40s %-15s %-24s %s\n", addr, ifname, rec->spec.name, st);
            first = false;
        }
    }
    if (o->json)
        printf("]\n");
    return 0;
}

static int
cmd_join(struct options *o)
{
    char host[NAME_MAX_LEN + 1] = "";

    gethostname(host, sizeof(host) - 1);
    if (!config_get(o->cfg, "node", "master") || !o->token) {
        fprintf(stderr, "vfleet-node: join needs --master tcp://HOST:PORT and --token TOKEN\n");
        return EXIT_USAGE;
    }
    return join_run(opt_str(o, "master", DEFAULT_MASTER), opt_str(o, "name", host),
                    opt_str(o, "state_dir", DEFAULT_STATE_DIR), o->token, JOIN_TIMEOUT_S);
}

static int
cmd_status(struct options *o)
{
    const char *dir = opt_str(o, "state_dir", DEFAULT_STATE_DIR);
    _cleanup_(store_close) store_t *s = NULL;
    _cleanup_free_ char *path = xasprintf("%s/vfleet-node.pid", dir);
    size_t running = 0;
    int agent_pid = 0;

    if (open_store(o, &s) < 0)
        return EXIT_FAIL;
    _cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd >= 0 && flock(fd, LOCK_SH | LOCK_NB) < 0 && errno == EWOULDBLOCK) {
        char buf[32] = "";
        if (pread(fd, buf, sizeof(buf) - 1, 0) > 0)
            agent_pid = atoi(buf);
    }
    for (size_t i = 0; i < store_count(s); i++)
        running += strcmp(record_state(store_at(s, i)), "running") == 0;
    if (agent_pid)
        printf("agent:   running (pid %d)\n", agent_pid);
    else
        printf("agent:   not running\n");
    printf("store:   %s\n", dir);
    printf("guests:  %zu (%zu running)\n", store_count(s), running);
    return 0;
}

/* The record of the guest named by the first argument, from the store read
 * without the lock: 0 with *rec set, or the exit code after saying why. */
static int
local_guest(const struct options *o, store_t **s, const struct store_record **rec)
{
    if (open_store(o, s) < 0)
        return EXIT_FAIL;
    *rec = store_find_by_name(*s, o->rest[0]);
    if (!*rec) {
        fprintf(stderr, "vfleet-node: no guest \"%s\" on this node\n", o->rest[0]);
        return EXIT_NOT_FOUND;
    }
    return 0;
}

static int
cmd_enter(struct options *o)
{
    _cleanup_(store_close) store_t *s = NULL;

    if (o->n_rest < 1) {
        usage(stderr);
        return EXIT_USAGE;
    }
    const struct store_record *rec;
    int rc = local_guest(o, &s, &rec);
    if (rc)
        return rc;
    if (strcmp(record_state(rec), "running") != 0) {
        fprintf(stderr, "vfleet-node: guest \"%s\" is not running\n", rec->spec.name);
        return EXIT_FAIL;
    }
    if (rec->spec.flags & SPEC_FLAG_PRIVATE) {
        fprintf(stderr, "vfleet-node: guest \"%s\" is private: no enter\n", rec->spec.name);
        return EXIT_FAIL;
    }
    char *shell[] = {"/bin/sh", "-l", NULL};
    char **argv = o->rest + 1;
    if (o->n_rest > 1 && strcmp(argv[0], "--") == 0)
        argv++;
    if (!*argv)
        argv = shell;
    int r = linux_enter(opt_str(o, "state_dir", DEFAULT_STATE_DIR),
                        config_get(o->cfg, "node", "cgroup_prefix"), &rec->spec, &rec->rt, argv);
    if (r == -EBUSY) {
        fprintf(stderr,
                "vfleet-node: cannot enter \"%s\": it is frozen for a move or an export: enter "
                "it once that has ended (a moved guest then runs on its target)\n",
                rec->spec.name);
        return EXIT_FAIL;
    }
    if (r < 0) {
        fprintf(stderr, "vfleet-node: cannot enter \"%s\": %s\n", rec->spec.name, strerror(-r));
        return EXIT_FAIL;
    }
    return r; /* the command's exit status */
}

static int
cmd_vservers(struct options *o)
{
    const char *dir = opt_str(o, "state_dir", DEFAULT_STATE_DIR);
    char mount[256];

    if (o->n_rest != 1) {
        usage(stderr);
        return EXIT_USAGE;
    }
    vservers_mount_path(opt_str(o, "vservers", NULL), dir, true, mount, sizeof(mount));
    int r = vservers_cli(dir, mount, o->rest[0]);
    return r == -EINVAL ? EXIT_USAGE : r < 0 ? EXIT_FAIL : 0;
}

/* The tail of a guest's console, from its ring on this node. */
static int
cmd_console(struct options *o)
{
    _cleanup_(store_close) store_t *s = NULL;

    if (o->n_rest != 1 || !o->log) {
        fprintf(stderr, "vfleet-node: console NAME --log (the console is output only)\n");
        return EXIT_USAGE;
    }
    const struct store_record *rec;
    int rc = local_guest(o, &s, &rec);
    if (rc)
        return rc;
    struct console_log log;
    int r = linux_console_read(opt_str(o, "state_dir", DEFAULT_STATE_DIR), &rec->spec, 0, &log);
    if (r == -ENOENT) {
        fprintf(stderr,
                "vfleet-node: guest \"%s\" has no console yet (not started since it was "
                "created or since the node had console rings)\n",
                rec->spec.name);
        return EXIT_FAIL;
    }
    if (r < 0) {
        fprintf(stderr, "vfleet-node: cannot read the console of \"%s\": %s\n", rec->spec.name,
                strerror(-r));
        return EXIT_FAIL;
    }
    size_t done = 0;
    while (done < log.len) {
        ssize_t n = write(1, log.data + done, log.len - done);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        done += (size_t)n;
    }
    free(log.data);
    return done == log.len ? 0 : EXIT_FAIL;
}

/* leftovers [remove ID --yes] (node/leftovers_cli.c). */
static int
cmd_leftovers(struct options *o)
{
    const char *dir = opt_str(o, "state_dir", DEFAULT_STATE_DIR);
    struct linux_config lc = {0};

    if (o->n_rest == 0)
        return leftovers_cli_ls(dir, o->json);
    if (linux_config_read(o, dir, &lc) < 0)
        return EXIT_USAGE;
    return leftovers_cli_remove(dir, o->rest, o->n_rest, o->yes, &lc);
}

int
main(int argc, char **argv)
{
    struct options o = {0};
    int level, r;

    if (parse_options(argc, argv, &o) < 0)
        return EXIT_USAGE;
    if (o.check_only) {
        struct net_config nc;
        if (node_config_net(o.cfg, &nc) < 0) {
            config_destroy(&o.cfg);
            return EXIT_USAGE;
        }
        printf("vfleet-node: configuration is valid\n");
        config_destroy(&o.cfg);
        return 0;
    }
    level = log_level_from_string(opt_str(&o, "log_level", "info"));
    log_setup("vfleet-node", LOG_SINK_STDERR, level < 0 ? LOG_INFO : level);
    log_set_format((enum log_format)log_format_from_string(opt_str(&o, "log_format", "text")));

    /* The host's agent (not a process of simulated ones, whose allocations
     * the cache speeds): glibc's tcache off, the pool's stacks given back. */
    bool host_agent =
        strcmp(o.verb, "run") == 0 && strcmp(opt_str(&o, "backend", "linux"), "linux") == 0;
    if (host_agent)
        memtidy_tcache_off(argv);
    memtidy_set_host(host_agent);
    if (strcmp(o.verb, "run") == 0)
        r = cmd_run(&o);
    else if (strcmp(o.verb, "ls") == 0)
        r = cmd_ls(&o);
    else if (strcmp(o.verb, "routes") == 0)
        r = cmd_routes(&o);
    else if (strcmp(o.verb, "status") == 0)
        r = cmd_status(&o);
    else if (strcmp(o.verb, "enter") == 0)
        r = cmd_enter(&o);
    else if (strcmp(o.verb, "vservers") == 0)
        r = cmd_vservers(&o);
    else if (strcmp(o.verb, "join") == 0)
        r = cmd_join(&o);
    else if (strcmp(o.verb, "console") == 0)
        r = cmd_console(&o);
    else if (strcmp(o.verb, "leftovers") == 0)
        r = cmd_leftovers(&o);
    else {
        fprintf(stderr, "vfleet-node: unknown command \"%s\"\n", o.verb);
        usage(stderr);
        r = EXIT_USAGE;
    }
    config_destroy(&o.cfg);
    return r;
}
