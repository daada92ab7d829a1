/* The FreeVPS views as files (node/vservers.h has the text): a FUSE
 * filesystem (libfuse3's low-level API) that the agent serves from its own
 * loop, mounted at cfg.vservers (default STATE_DIR/vservers).
 *
 * What a caller sees depends on who it is, read from its cgroup as LXCFS
 * does: a process of a guest (a guest id in /proc/PID/cgroup) sees only
 * `self`, its own view; anyone else sees the node's `setup`, `trafstat` and
 * `routes_ipv4`. So the same mount, bound into every guest, shows each
 * guest itself and nothing of its neighbours.
 *
 * A file's text is made when it is opened (its size is 0, as in /proc; it
 * is read with direct I/O): setup and routes_ipv4 from the guest table,
 * self from a usage sample taken for it on the lifecycle lane, trafstat
 * from the master (traffic.get with reset: reading trafstat resets it, and
 * the master's marks are the same as the API's), so opening trafstat waits
 * for the master, and fails with EIO when it does not answer in
 * VS_MASTER_WAIT_MS. Loop thread only. */
#define FUSE_USE_VERSION 35
#include <errno.h>
#include <fcntl.h>
#include <fuse_lowlevel.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/log.h"
#include "common/mem.h"
#include "common/mtime.h"
#include "node/agent_internal.h"
#include "node/vservers.h"
#include "node/vservers_fs.h"

#define VS_MASTER_WAIT_MS 5000
#define VS_FILE_SIZE      (1 << 20) /* the size stat shows: above any view's text */

enum vs_ino {
    INO_ROOT = FUSE_ROOT_ID,
    INO_SETUP,
    INO_TRAFSTAT,
    INO_ROUTES,
    INO_SELF,
    INO__MAX,
};

static const char *const ino_names[INO__MAX] = {[INO_SETUP] = "setup",
                                                [INO_TRAFSTAT] = "trafstat",
                                                [INO_ROUTES] = "routes_ipv4",
                                                [INO_SELF] = "self"};

/* An open file: its text. */
struct vs_open {
    char *text; /* the view, malloc'd */
    size_t len; /* its bytes */
};

/* A trafstat open waiting for the master. */
struct vs_wait {
    fuse_req_t req;           /* the open to answer */
    struct fuse_file_info fi; /* its file info */
    uint64_t ref;             /* our traffic.get's request id */
    uint64_t deadline;        /* monotonic ms: EIO after */
    struct vs_wait *next;     /* in the list */
};

struct vservers_fs {
    agent_t *agent;          /* the agent */
    struct fuse_session *se; /* libfuse's session */
    struct fuse_buf buf;     /* the request buffer, reused */
    uv_poll_t poll;          /* the session's fd */
    uv_timer_t timer;        /* trafstat timeouts */
    int open_handles;        /* poll and timer not closed yet */
    char mount[256];         /* where it is mounted */
    struct vs_wait *waits;   /* trafstat opens waiting for the master */
    struct vs_peak *peaks;   /* the highest RSS each guest's self view saw */
    size_t n_peaks;          /* entries in peaks */
    unsigned jobs;           /* self samples on the lane: they hold the memory */
    bool stopped;            /* the session is gone: no reply to anything */
};

/* A guest's highest sampled RSS (self's "Max RSS memory"). */
struct vs_peak {
    char id[SPEC_ID_LEN + 1]; /* the guest */
    uint64_t rss;             /* the highest RSS its views sampled */
};

/* ---- who is asking ---- */

/* The guest whose cgroup holds pid: the last path component of any line of
 * /proc/PID/cgroup that is the id of a guest in the table. NULL: the host. */
static struct agent_guest *
caller_guest(agent_t *a, pid_t pid)
{
    char path[64], line[512];
    snprintf(path, sizeof(path), "/proc/%d/cgroup", (int)pid);
    FILE *f = fopen(path, "re");
    struct agent_guest *g = NULL;

    if (!f)
        return NULL;
    while (!g && fgets(line, sizeof(line), f)) {
        line[strcspn(line, "\n")] = '\0';
        for (char *p = strchr(line, '/'); p && !g; p = strchr(p + 1, '/')) {
            char id[SPEC_ID_LEN + 1];
            size_t len = strcspn(p + 1, "/");
            if (len != SPEC_ID_LEN)
                continue;
            memcpy(id, p + 1, len);
            id[len] = '\0';
            g = agent_guest_find(a, id);
        }
    }
    fclose(f);
    return g;
}

static bool
visible(struct agent_guest *g, enum vs_ino ino)
{
    return ino == INO_ROOT || (g ? ino == INO_SELF : ino != INO_SELF);
}

/* ---- attributes and the directory ---- */

static void
fill_attr(enum vs_ino ino, struct stat *st)
{
    memset(st, 0, sizeof(*st));
    st->st_ino = ino;
    st->st_mode = ino == INO_ROOT ? S_IFDIR | 0555 : S_IFREG | 0444;
    st->st_nlink = ino == INO_ROOT ? 2 : 1;
    /* Not 0 as in /proc: readers that splice (busybox cat's sendfile) stop
     * at the size; the server's short read ends every reader at the text's
     * real end (direct I/O), so the size only has to be large enough. */
    st->st_size = ino == INO_ROOT ? 0 : VS_FILE_SIZE;
    st->st_mtime = st->st_atime = st->st_ctime = (time_t)(time_real_ms() / 1000);
}

static void
vs_lookup(fuse_req_t req, fuse_ino_t parent, const char *name)
{
    vservers_fs_t *fs = fuse_req_userdata(req);
    struct agent_guest *g = caller_guest(fs->agent, fuse_req_ctx(req)->pid);
    struct fuse_entry_param e = {0};

    for (int i = INO_SETUP; parent == INO_ROOT && i < INO__MAX; i++) {
        if (strcmp(name, ino_names[i]) != 0 || !visible(g, i))
            continue;
        e.ino = (fuse_ino_t)i;
        fill_attr(i, &e.attr);
        /* No caching: a guest and the host see different entries. */
        fuse_reply_entry(req, &e);
        return;
    }
    fuse_reply_err(req, ENOENT);
}

static void
vs_getattr(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
    struct stat st;

    (void)fi;
    if (ino < INO_ROOT || ino >= INO__MAX) {
        fuse_reply_err(req, ENOENT);
        return;
    }
    fill_attr((enum vs_ino)ino, &st);
    fuse_reply_attr(req, &st, 0);
}

static void
vs_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, struct fuse_file_info *fi)
{
    vservers_fs_t *fs = fuse_req_userdata(req);
    struct agent_guest *g = caller_guest(fs->agent, fuse_req_ctx(req)->pid);
    char buf[1024];
    size_t used = 0;
    struct stat st;

    (void)fi;
    if (ino != INO_ROOT) {
        fuse_reply_err(req, ENOTDIR);
        return;
    }
    /* Entries: "." and ".." (offsets 1, 2), then the visible files. */
    const char *names[INO__MAX + 2];
    enum vs_ino inos[INO__MAX + 2];
    int n = 0;
    names[n] = ".", inos[n++] = INO_ROOT;
    names[n] = "..", inos[n++] = INO_ROOT;
    for (int i = INO_SETUP; i < INO__MAX; i++)
        if (visible(g, i))
            names[n] = ino_names[i], inos[n++] = (enum vs_ino)i;
    for (int i = (int)off; i < n; i++) {
        fill_attr(inos[i], &st);
        size_t need = fuse_add_direntry(req, buf + used, sizeof(buf) - used, names[i], &st, i + 1);
        if (need > sizeof(buf) - used || used + need > size)
            break;
        used += need;
    }
    fuse_reply_buf(req, buf, used);
}

/* ---- the views ---- */

static void
reply_text(fuse_req_t req, struct fuse_file_info *fi, char *text, size_t len)
{
    struct vs_open *o = xcalloc(1, sizeof(*o));

    o->text = text;
    o->len = len;
    fi->fh = (uint64_t)(uintptr_t)o;
    fi->direct_io = 1; /* size 0 in stat, like /proc: read until EOF */
    fi->keep_cache = 0;
    if (fuse_reply_open(req, fi) != 0) {
        free(o->text);
        free(o);
    }
}

static char *
setup_text(agent_t *a, size_t *len)
{
    struct vs_setup s = {.contexts = (uint32_t)a->n_guests,
                         .active = (uint32_t)agent_guest_running(a)};

    strscpy(s.version, VS_VERSION, sizeof(s.version));
    snprintf(s.build, sizeof(s.build), "vfleet %s %s %s", VFLEET_VERSION, a->facts.backend,
             a->facts.kernel);
    return vs_render_setup(&s, len);
}

static char *
routes_text(agent_t *a, size_t *len)
{
    struct vs_route *rows = NULL;
    size_t n = 0, cap = 0;

    for (size_t i = 0; i < a->n_guests; i++) {
        const struct agent_spec_head *sp = &a->guests[i]->rec.spec;
        for (uint32_t k = 0; k < sp->n_addrs; k++) {
            if (sp->addrs[k].family != AF_INET)
                continue;
            if (n == cap) {
                cap = cap ? cap * 2 : 16;
                rows = xreallocarray(rows, cap, sizeof(*rows));
            }
            memset(&rows[n], 0, sizeof(rows[n]));
            netaddr_format(&sp->addrs[k], false, rows[n].address, sizeof(rows[n].address));
            spec_ifname(sp->id, rows[n].name);
            rows[n++].context = sp->context;
        }
    }
    char *text = vs_render_routes(rows, n, len);
    free(rows);
    return text;
}

/* ---- trafstat: the master's counters ---- */

static void
wait_answer(vservers_fs_t *fs, struct vs_wait *w, const struct msg_traffic *t)
{
    struct vs_traffic *rows = xcalloc(t ? t->n_items + 1 : 1, sizeof(*rows));
    size_t n = 0, len;

    for (uint32_t i = 0; t && i < t->n_items; i++) {
        struct agent_guest *g = agent_guest_find(fs->agent, t->items[i].id);
        if (!g)
            continue; /* a guest that left this node since */
        rows[n++] =
            (struct vs_traffic){g->rec.spec.context, t->items[i].rx_bytes, t->items[i].tx_bytes};
    }
    char *text = vs_render_trafstat(rows, n, &len);
    reply_text(w->req, &w->fi, text, len);
    free(rows);
}

static struct vs_wait *
wait_take(vservers_fs_t *fs, uint64_t ref)
{
    for (struct vs_wait **p = &fs->waits; *p; p = &(*p)->next)
        if ((*p)->ref == ref) {
            struct vs_wait *w = *p;
            *p = w->next;
            return w;
        }
    return NULL;
}

bool
vservers_fs_on_message(vservers_fs_t *fs, const struct msg *m)
{
    struct vs_wait *w;

    if (!fs)
        return false;
    if (m->type == MSG_TRAFFIC && (w = wait_take(fs, m->u.traffic.ref))) {
        wait_answer(fs, w, &m->u.traffic);
        free(w);
        return true;
    }
    if (m->type == MSG_NACK && (w = wait_take(fs, m->u.nack.ref))) {
        log_warning("node=%s trafstat refused by the master: %s", fs->agent->cfg.name,
                    m->u.nack.message);
        fuse_reply_err(w->req, EIO);
        free(w);
        return true;
    }
    return false;
}

static void
on_timer(uv_timer_t *t)
{
    vservers_fs_t *fs = t->data;
    uint64_t now = time_mono_ms();

    for (struct vs_wait **p = &fs->waits; *p;) {
        struct vs_wait *w = *p;
        if (w->deadline > now) {
            p = &w->next;
            continue;
        }
        *p = w->next;
        fuse_reply_err(w->req, EIO); /* the master did not answer */
        free(w);
    }
}

static void
open_trafstat(vservers_fs_t *fs, fuse_req_t req, struct fuse_file_info *fi)
{
    agent_t *a = fs->agent;
    struct msg m = {.type = MSG_TRAFFIC_GET};

    if (!a->welcomed) {
        fuse_reply_err(req, EIO); /* the master keeps the counters */
        return;
    }
    m.u.traffic_get.reset = true;
    m.id = ++a->next_id;
    struct vs_wait *w = xcalloc(1, sizeof(*w));
    w->req = req;
    w->fi = *fi;
    w->ref = m.id;
    w->deadline = time_mono_ms() + VS_MASTER_WAIT_MS;
    w->next = fs->waits;
    fs->waits = w;
    agent_send(a, &m);
}

static void fs_maybe_free(vservers_fs_t *fs);

/* ---- self: a usage sample of the caller's guest ---- */

/* The sample taken on the lifecycle lane (like every backend operation). */
struct self_job {
    vservers_fs_t *fs;        /* the filesystem */
    fuse_req_t req;           /* the open to answer */
    struct fuse_file_info fi; /* its file info */
    struct guest_spec spec;   /* the guest */
    struct guest_runtime rt;  /* its run */
    struct guest_usage u;     /* the sample */
    int result;               /* the backend's */
};

static void
self_run(void *arg)
{
    struct self_job *j = arg;
    backend_t *b = j->fs->agent->backend;

    j->result = b->ops->usage(b, &j->spec, &j->rt, &j->u);
}

static uint64_t
rss_peak(vservers_fs_t *fs, const char *id, uint64_t rss)
{
    for (size_t i = 0; i < fs->n_peaks; i++)
        if (!strcmp(fs->peaks[i].id, id)) {
            if (rss > fs->peaks[i].rss)
                fs->peaks[i].rss = rss;
            return fs->peaks[i].rss;
        }
    fs->peaks = xreallocarray(fs->peaks, fs->n_peaks + 1, sizeof(*fs->peaks));
    strscpy(fs->peaks[fs->n_peaks].id, id, sizeof(fs->peaks[0].id));
    fs->peaks[fs->n_peaks++].rss = rss;
    return rss;
}

static void
self_fill(vservers_fs_t *fs, const struct agent_guest *g, const struct guest_usage *u,
          struct vs_self *s)
{
    _cleanup_free_ struct guest_spec *sp = xmalloc(sizeof(*sp)); /* g's, unpacked */
    agent_guest_spec(g, sp);
    const struct spec_limits *l = &sp->limits;
    uint64_t in = sp->limits.net_in, out = sp->limits.net_out;

    *s = (struct vs_self){.context = sp->context,
                          .flags = sp->flags,
                          .init_pid = g->rec.rt.pid,
                          .capbset = spec_effective_caps(sp),
                          .procs_limit = l->procs,
                          .procs = u->procs,
                          .tasks = u->procs,
                          .memory_limit = l->memory,
                          .memory = u->memory,
                          .memory_peak = u->memory_peak,
                          .rss_limit = l->rss,
                          .rss = u->rss,
                          .rss_peak = rss_peak(fs, sp->id, u->rss),
                          .disk_limit = l->disk,
                          .disk = u->disk_bytes,
                          .files_limit = l->inodes,
                          .files = u->disk_inodes,
                          .tcp_limit = l->tcp_sockets,
                          .tcp = u->tcp_sockets,
                          .speed_kbit = (in && out ? (in < out ? in : out)
                                         : in      ? in
                                                   : out) /
                                        1000,
                          .incoming = u->net_rx_bytes,
                          .outgoing = u->net_tx_bytes};
    strscpy(s->nodename, sp->name, sizeof(s->nodename));
    strscpy(s->domainname, sp->domainname, sizeof(s->domainname));
    if (sp->n_addrs) {
        strscpy(s->vdev, "eth0", sizeof(s->vdev));
        spec_ifname(sp->id, s->hdev);
    }
    for (uint32_t k = 0; k < sp->n_addrs; k++) {
        char a[NETADDR_STRLEN + 8];
        netaddr_format(&sp->addrs[k], true, a, sizeof(a));
        size_t at = strlen(s->addrs);
        snprintf(s->addrs + at, sizeof(s->addrs) - at, "%s;", a);
    }
}

static void
self_done(void *arg)
{
    struct self_job *j = arg;
    vservers_fs_t *fs = j->fs;
    struct agent_guest *g = fs->stopped ? NULL : agent_guest_find(fs->agent, j->spec.id);
    struct vs_self s;
    size_t len;

    fs->jobs--;
    if (fs->stopped) {
        /* The session and its requests went with the mount. */
        free(j);
        fs_maybe_free(fs);
        return;
    }
    if (!g || j->result < 0) {
        fuse_reply_err(j->req, g ? EIO : ENOENT);
        free(j);
        return;
    }
    /* Counters since creation: earlier runs' totals plus this run's. */
    if (fs->agent->backend->ops->net_per_run) {
        j->u.net_rx_bytes += g->rec.baseline.net_rx_bytes;
        j->u.net_tx_bytes += g->rec.baseline.net_tx_bytes;
    }
    self_fill(fs, g, &j->u, &s);
    char *text = vs_render_self(&s, &len);
    reply_text(j->req, &j->fi, text, len);
    free(j);
}

static const struct lane_fns self_fns = {NULL, self_run, self_done};

/* ---- open, read, release ---- */

static void
vs_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
    vservers_fs_t *fs = fuse_req_userdata(req);
    agent_t *a = fs->agent;
    struct agent_guest *g = caller_guest(a, fuse_req_ctx(req)->pid);
    size_t len = 0;
    char *text;

    if (ino <= INO_ROOT || ino >= INO__MAX || !visible(g, (enum vs_ino)ino)) {
        fuse_reply_err(req, ino == INO_ROOT ? EISDIR : ENOENT);
        return;
    }
    if ((fi->flags & O_ACCMODE) != O_RDONLY) {
        fuse_reply_err(req, EACCES);
        return;
    }
    switch (ino) {
    case INO_SETUP:
        text = setup_text(a, &len);
        reply_text(req, fi, text, len);
        return;
    case INO_ROUTES:
        text = routes_text(a, &len);
        reply_text(req, fi, text, len);
        return;
    case INO_TRAFSTAT:
        open_trafstat(fs, req, fi);
        return;
    default:
        break;
    }
    struct self_job *j = xcalloc(1, sizeof(*j));
    j->fs = fs;
    j->req = req;
    j->fi = *fi;
    agent_guest_spec(g, &j->spec);
    j->rt = g->rec.rt;
    fs->jobs++;
    lane_push(a->ops, &self_fns, j);
}

static void
vs_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, struct fuse_file_info *fi)
{
    struct vs_open *o = (struct vs_open *)(uintptr_t)fi->fh;

    (void)ino;
    if (!o || off < 0 || (size_t)off >= o->len) {
        fuse_reply_buf(req, NULL, 0);
        return;
    }
    size_t n = o->len - (size_t)off < size ? o->len - (size_t)off : size;
    fuse_reply_buf(req, o->text + off, n);
}

static void
vs_release(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
    struct vs_open *o = (struct vs_open *)(uintptr_t)fi->fh;

    (void)ino;
    if (o) {
        free(o->text);
        free(o);
    }
    fuse_reply_err(req, 0);
}

static const struct fuse_lowlevel_ops vs_ops = {
    .lookup = vs_lookup,
    .getattr = vs_getattr,
    .readdir = vs_readdir,
    .open = vs_open,
    .read = vs_read,
    .release = vs_release,
};

/* ---- the session on the loop ---- */

static void
fs_maybe_free(vservers_fs_t *fs)
{
    if (fs->open_handles || fs->jobs)
        return;
    free(fs->buf.mem);
    free(fs->peaks);
    free(fs);
}

static void
on_closed(uv_handle_t *h)
{
    vservers_fs_t *fs = h->data;

    fs->open_handles--;
    fs_maybe_free(fs);
}

static void
on_fuse(uv_poll_t *p, int status, int events)
{
    vservers_fs_t *fs = p->data;

    (void)events;
    /* A few requests per wake-up: the loop stays fair to the node's link. */
    for (int i = 0; status >= 0 && i < 64 && !fs->stopped; i++) {
        int r = fuse_session_receive_buf(fs->se, &fs->buf);
        if (r == -EINTR)
            continue;
        if (r == -EAGAIN)
            return;
        if (r <= 0) {
            log_warning("node=%s the vservers mount \"%s\" went away: %s", fs->agent->cfg.name,
                        fs->mount, r ? strerror(-r) : "unmounted");
            uv_poll_stop(p);
            return;
        }
        fuse_session_process_buf(fs->se, &fs->buf);
    }
}

vservers_fs_t *
vservers_fs_start(agent_t *a, const char *mount, int *err)
{
    char *argv[] = {"vfleet-node", "-o",
                    "allow_other,default_permissions,ro,fsname=vservers,subtype=vfleet", NULL};
    struct fuse_args args = FUSE_ARGS_INIT(3, argv);
    vservers_fs_t *fs = xcalloc(1, sizeof(*fs));
    struct stat st;

    fs->agent = a;
    strscpy(fs->mount, mount, sizeof(fs->mount));
    /* A dead agent's mount answers ENOTCONN: detach it before mounting anew. */
    if (stat(mount, &st) < 0 && errno == ENOTCONN)
        (void)umount2(mount, MNT_DETACH);
    if (mkdir(mount, 0755) < 0 && errno != EEXIST) {
        *err = -errno;
        free(fs);
        return NULL;
    }
    fs->se = fuse_session_new(&args, &vs_ops, sizeof(vs_ops), fs);
    if (!fs->se || fuse_session_mount(fs->se, mount) != 0) {
        *err = fs->se ? -EPERM : -ENOMEM;
        if (fs->se)
            fuse_session_destroy(fs->se);
        free(fs);
        return NULL;
    }
    int fd = fuse_session_fd(fs->se);
    (void)fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
    uv_poll_init(a->loop, &fs->poll, fd);
    fs->poll.data = fs;
    uv_poll_start(&fs->poll, UV_READABLE, on_fuse);
    uv_timer_init(a->loop, &fs->timer);
    fs->timer.data = fs;
    uv_timer_start(&fs->timer, on_timer, 500, 500);
    fs->open_handles = 2;
    log_info("node=%s FreeVPS views at \"%s\"", a->cfg.name, mount);
    return fs;
}

void
vservers_fs_stop(vservers_fs_t **p)
{
    vservers_fs_t *fs = *p;

    if (!fs)
        return;
    *p = NULL;
    while (fs->waits) {
        struct vs_wait *w = fs->waits;
        fs->waits = w->next;
        fuse_reply_err(w->req, EIO);
        free(w);
    }
    fs->stopped = true;
    uv_close((uv_handle_t *)&fs->poll, on_closed);
    uv_close((uv_handle_t *)&fs->timer, on_closed);
    fuse_session_unmount(fs->se);
    fuse_session_destroy(fs->se);
    fs->se = NULL;
}
