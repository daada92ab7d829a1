/* The API under parallel clients: C clients (threads), each with its own
 * connection to the master's Unix socket, each creating K guests one after
 * the other with POST /v1/guests?wait=running (the reply comes when the
 * node reports the guest running: create -> running), then deleting them
 * (DELETE waits for the node's destroy). Prints creates/s over the whole
 * create phase and the p50/p90/p99/max of a create, and the same for the
 * deletes. Every create must answer 201 with the guest running; anything
 * else is counted and printed, and makes the exit status 1. With -u, the
 * CPU time the named cgroup v1 cpuacct.usage files (summed) grew by in each
 * phase, per guest: the cluster's cost of a create, which two busy cores
 * share with whatever else runs.
 * Not a test; bench/api.sh runs it next to a peer and an older build.
 *
 * Usage: bench_api_client -s SOCKET -c CLIENTS -k PER_CLIENT [-p NAME_PREFIX]
 *                         [-m MEMORY] [-d DISK] [-a spread|binpack]
 *                         [-u CPUACCT_USAGE_FILE]... [-H HOOK]
 * With -H, HOOK is run through the shell as `HOOK before` just before the
 * create phase and `HOOK after` just after it, outside its clock and its
 * CPU reading: a snapshot of the host's threads (a profiler's start and
 * stop) around the creates alone, without the deletes. */
#include <curl/curl.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define CLIENTS_MAX 64
#define USAGE_MAX   8 /* -u files */

/* One client's thread: its requests and their times. */
struct client {
    pthread_t thread;      /* the thread */
    unsigned no;           /* its number, in the guests' names */
    unsigned k;            /* creates it makes */
    double *create_ms;     /* each create's time (k) */
    double *delete_ms;     /* each delete's time (k) */
    unsigned failed;       /* requests not answered as asked */
    pthread_barrier_t *go; /* all clients start each phase together */
};

static const char *sock_path;
static const char *prefix = "ba";
static const char *memory = "64M";
static const char *disk = "64M";
static const char *algorithm; /* -a: "spread" or "binpack", NULL = the master's default */
static const char *usage_files[USAGE_MAX];
static unsigned n_usage;
static const char *hook; /* -H: run with "before" and "after" around the create phase */

/* Runs the -H hook with WHEN, if there is one; its failure is reported, not fatal. */
static void
run_hook(const char *when)
{
    char cmd[1024];

    if (!hook)
        return;
    snprintf(cmd, sizeof(cmd), "%s %s", hook, when);
    if (system(cmd) != 0)
        fprintf(stderr, "hook \"%s\" failed\n", cmd);
}

/* CPU ns the -u files count (cpuacct.usage), summed; 0 without them. */
static double
cpu_ns(void)
{
    double sum = 0;

    for (unsigned i = 0; i < n_usage; i++) {
        FILE *f = fopen(usage_files[i], "re");
        unsigned long long v = 0;
        if (f && fscanf(f, "%llu", &v) == 1)
            sum += (double)v;
        if (f)
            fclose(f);
    }
    return sum;
}

static double
now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

/* The reply body, kept up to a size to check the state in it. */
struct body {
    char buf[8192]; /* the first bytes */
    size_t len;     /* how many */
};

static size_t
body_write(char *p, size_t size, size_t n, void *userdata)
{
    struct body *b = userdata;
    size_t len = size * n, room = sizeof(b->buf) - 1 - b->len;

    if (len < room)
        room = len;
    memcpy(b->buf + b->len, p, room);
    b->len += room;
    b->buf[b->len] = '\0';
    return size * n;
}

/* One request; returns the HTTP status (0 on a transport error) and its
 * time in *ms. */
static long
request(CURL *h, const char *method, const char *url, const char *json, struct body *b, double *ms)
{
    struct curl_slist *hdr = NULL;
    long status = 0;
    double t0 = now_ms();

    b->len = 0;
    b->buf[0] = '\0';
    curl_easy_setopt(h, CURLOPT_URL, url);
    if (json)
        curl_easy_setopt(h, CURLOPT_POSTFIELDS, json);
    else
        curl_easy_setopt(h, CURLOPT_HTTPGET, 1L); /* no body: leaves POST mode */
    curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, method);
    hdr = curl_slist_append(hdr, "Content-Type: application/json");
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdr);
    if (curl_easy_perform(h) == CURLE_OK)
        curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
    *ms = now_ms() - t0;
    curl_slist_free_all(hdr);
    return status;
}

static void *
client_run(void *arg)
{
    struct client *c = arg;
    CURL *h = curl_easy_init();
    struct body *b = calloc(1, sizeof(*b));
    char url[256], json[512];

    if (!h || !b)
        abort();
    curl_easy_setopt(h, CURLOPT_UNIX_SOCKET_PATH, sock_path);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, body_write);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, b);
    curl_easy_setopt(h, CURLOPT_TIMEOUT, 120L);
    pthread_barrier_wait(c->go);
    for (unsigned i = 0; i < c->k; i++) {
        snprintf(json, sizeof(json),
                 "{\"name\":\"%s%u-%u\",\"template\":\"busybox\",\"limits\":{\"cpu_max\":0.01,"
                 "\"memory\":\"%s\",\"disk\":\"%s\"}%s%s%s}",
                 prefix, c->no, i, memory, disk, algorithm ? ",\"algorithm\":\"" : "",
                 algorithm ? algorithm : "", algorithm ? "\"" : "");
        long st = request(h, "POST", "http://localhost/v1/guests?wait=running&timeout=60", json, b,
                          &c->create_ms[i]);
        if (st != 201 || !strstr(b->buf, "\"state\":\"running\"")) {
            c->failed++;
            fprintf(stderr, "create %s%u-%u: %ld %.300s\n", prefix, c->no, i, st, b->buf);
        }
    }
    pthread_barrier_wait(c->go);
    pthread_barrier_wait(c->go);
    for (unsigned i = 0; i < c->k; i++) {
        snprintf(url, sizeof(url), "http://localhost/v1/guests/%s%u-%u", prefix, c->no, i);
        long st = request(h, "DELETE", url, NULL, b, &c->delete_ms[i]);
        if (st != 204) {
            c->failed++;
            fprintf(stderr, "delete %s%u-%u: %ld %.300s\n", prefix, c->no, i, st, b->buf);
        }
    }
    pthread_barrier_wait(c->go);
    curl_easy_cleanup(h);
    free(b);
    return NULL;
}

static int
cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;

    return x < y ? -1 : x > y;
}

static double
pct(const double *v, size_t n, double p)
{
    size_t i = (size_t)(p * (double)(n - 1) + 0.5);

    return v[i < n ? i : n - 1];
}

static void
print_phase(const char *what, struct client *cl, unsigned clients, unsigned k, int deletes,
            double secs, double cpu)
{
    size_t n = (size_t)clients * k, j = 0;
    double *all = calloc(n, sizeof(*all));

    if (!all)
        abort();
    for (unsigned c = 0; c < clients; c++)
        for (unsigned i = 0; i < k; i++)
            all[j++] = deletes ? cl[c].delete_ms[i] : cl[c].create_ms[i];
    qsort(all, n, sizeof(*all), cmp_double);
    printf("%s clients=%u n=%zu %.1f/s p50=%.1fms p90=%.1fms p99=%.1fms max=%.1fms", what, clients,
           n, (double)n / secs, pct(all, n, .5), pct(all, n, .9), pct(all, n, .99), all[n - 1]);
    if (n_usage)
        printf(" cpu_ms_each=%.3f cores_busy=%.2f", cpu / 1e6 / (double)n, cpu / 1e9 / secs);
    printf("\n");
    free(all);
}

int
main(int argc, char **argv)
{
    unsigned clients = 1, k = 20, failed = 0;
    pthread_barrier_t go;
    struct client *cl;
    double t0, t1, t2, t3, c0, c1, c2, c3;
    int opt;

    while ((opt = getopt(argc, argv, "s:c:k:p:m:d:u:a:H:")) != -1) {
        switch (opt) {
        case 's':
            sock_path = optarg;
            break;
        case 'c':
            clients = (unsigned)strtoul(optarg, NULL, 10);
            break;
        case 'k':
            k = (unsigned)strtoul(optarg, NULL, 10);
            break;
        case 'p':
            prefix = optarg;
            break;
        case 'm':
            memory = optarg;
            break;
        case 'd':
            disk = optarg;
            break;
        case 'a':
            algorithm = optarg;
            break;
        case 'H':
            hook = optarg;
            break;
        case 'u':
            if (n_usage < USAGE_MAX)
                usage_files[n_usage++] = optarg;
            break;
        default:
            fprintf(stderr,
                    "usage: %s -s SOCKET -c CLIENTS -k PER_CLIENT [-p PREFIX] "
                    "[-m MEMORY] [-d DISK] [-a ALGORITHM] [-u CPUACCT_USAGE]... [-H HOOK]\n",
                    argv[0]);
            return 2;
        }
    }
    if (!sock_path || clients < 1 || clients > CLIENTS_MAX || k < 1) {
        fprintf(stderr, "%s: -s SOCKET, 1-%d clients and at least one create each\n", argv[0],
                CLIENTS_MAX);
        return 2;
    }
    curl_global_init(CURL_GLOBAL_DEFAULT);
    cl = calloc(clients, sizeof(*cl));
    if (!cl)
        abort();
    pthread_barrier_init(&go, NULL, clients + 1);
    for (unsigned c = 0; c < clients; c++) {
        cl[c] = (struct client){.no = c, .k = k, .go = &go};
        cl[c].create_ms = calloc(k, sizeof(double));
        cl[c].delete_ms = calloc(k, sizeof(double));
        if (!cl[c].create_ms || !cl[c].delete_ms ||
            pthread_create(&cl[c].thread, NULL, client_run, &cl[c]))
            abort();
    }
    run_hook("before");
    c0 = cpu_ns();
    pthread_barrier_wait(&go);
    t0 = now_ms();
    pthread_barrier_wait(&go);
    t1 = now_ms();
    c1 = cpu_ns();
    run_hook("after");
    c2 = cpu_ns();
    pthread_barrier_wait(&go);
    t2 = now_ms();
    pthread_barrier_wait(&go);
    t3 = now_ms();
    c3 = cpu_ns();
    for (unsigned c = 0; c < clients; c++) {
        pthread_join(cl[c].thread, NULL);
        failed += cl[c].failed;
    }
    print_phase("create", cl, clients, k, 0, (t1 - t0) / 1e3, c1 - c0);
    print_phase("delete", cl, clients, k, 1, (t3 - t2) / 1e3, c3 - c2);
    if (failed)
        printf("failed requests: %u\n", failed);
    for (unsigned c = 0; c < clients; c++)
        free(cl[c].create_ms), free(cl[c].delete_ms);
    free(cl);
    curl_global_cleanup();
    return failed ? 1 : 0;
}
