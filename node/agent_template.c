/* Templates from the master's library, the node's half (docs/protocol.md,
 * "Fetching a template"): guest.migrate.prepare / commit / abort with a
 * "template" name, whose "guest" is the operation's id. The master sends the
 * packed template (archive/archive.h) over the data channel like an import;
 * the node checks its digest, unpacks it into a hidden directory beside the
 * templates, checks what came out and renames it into place, so a template
 * directory is either whole or absent. A template already here is kept: a
 * prepare answers "done" and nothing is sent. Loop thread, but the unpack
 * job's run. */
#include "node/agent_migrate.h"

#define _XOPEN_SOURCE_EXTENDED 1
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "archive/archive.h"
#include "common/fsutil.h"
#include "common/log.h"
#include "common/mem.h"
#include "node/agent_template.h"
#include "node/linux/template_sum.h"

/* Where fetched templates go: the node's templates directory. */
static void
templates_dir(agent_t *a, char *out, size_t n)
{
    if (a->cfg.templates[0])
        snprintf(out, n, "%s", a->cfg.templates);
    else
        snprintf(out, n, "%s/templates", a->cfg.state_dir[0] ? a->cfg.state_dir : "/tmp");
}

/* The hidden paths of one fetch: the archive as it arrives and the tree
 * being unpacked. Names starting with a dot are never taken for templates. */
static void
fetch_paths(agent_t *a, const char *name, const char *op, char *archive, char *tmp, size_t n)
{
    char dir[300];

    templates_dir(a, dir, sizeof(dir));
    snprintf(archive, n, "%s/.fetch-%s-%.8s.vfx", dir, name, op);
    snprintf(tmp, n, "%s/.unpack-%s-%.8s", dir, name, op);
}

static int
rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)ftw;
    return (flag == FTW_DP ? rmdir(path) : unlink(path)) < 0 ? -errno : 0;
}

int
agent_template_rm_tree(const char *path)
{
    int r = nftw(path, rm_entry, 16, FTW_DEPTH | FTW_PHYS);

    return r < 0 && errno == ENOENT ? 0 : r < 0 ? -errno : r;
}

/* Device nodes a root filesystem may carry: the harmless character devices
 * of /dev (null, zero, full, random, urandom, tty, console, ptmx). */
static bool
device_allowed(const struct stat *st)
{
    static const unsigned ok[][2] = {{1, 3}, {1, 5}, {1, 7}, {1, 8},
                                     {1, 9}, {5, 0}, {5, 1}, {5, 2}};

    if (!S_ISCHR(st->st_mode))
        return false;
    for (size_t i = 0; i < ARRAY_SIZE(ok); i++)
        if (major(st->st_rdev) == ok[i][0] && minor(st->st_rdev) == ok[i][1])
            return true;
    return false;
}

/* The entry check_entry refused: nftw passes no context, and several
 * agents in one process (sim nodes) unpack on pool threads at once. */
static _Thread_local char bad_entry[512];

static int
check_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)flag;
    (void)ftw;
    if ((S_ISBLK(st->st_mode) || S_ISCHR(st->st_mode)) && !device_allowed(st)) {
        snprintf(bad_entry, sizeof(bad_entry), "%s", path);
        return 1;
    }
    return 0;
}

uint64_t
agent_template_room(const char *dir)
{
    struct statvfs sv;

    if (statvfs(dir, &sv) < 0)
        return 0;
    uint64_t avail = (uint64_t)sv.f_bavail * sv.f_frsize;
    return avail > AGENT_TEMPLATE_RESERVE ? avail - AGENT_TEMPLATE_RESERVE : 0;
}

int
agent_template_unpack(int fd, const char *tmp, const char *final, uint64_t max_bytes,
                      char sum[TEMPLATE_SUM_LEN + 1], uint64_t *size, char *err, size_t n)
{
    int r = agent_template_rm_tree(tmp);

    if (r >= 0)
        r = archive_unpack_max(fd, tmp, max_bytes, err, n);
    else
        snprintf(err, n, "cannot clear \"%s\": %s", tmp, strerror(-r));
    /* tar refuses members that climb out (".."), strips leading "/" and
     * makes links that point out placeholders; device nodes it makes as
     * asked, so the tree is checked before it becomes a template. */
    if (r >= 0 && (r = nftw(tmp, check_entry, 16, FTW_PHYS)) != 0) {
        snprintf(err, n, "the template holds a device node it may not: \"%s\"",
                 bad_entry + strlen(tmp));
        r = -EPERM;
    }
    if (r >= 0 && (r = template_sum(tmp, sum, size)) < 0)
        snprintf(err, n, "cannot read the unpacked template: %s", strerror(-r));
    if (r >= 0 && rename(tmp, final) < 0) {
        r = -errno;
        if (r == -EEXIST || r == -ENOTEMPTY)
            r = 1; /* another fetch (or the operator) put one there first: it stays */
        else
            snprintf(err, n, "cannot move the template in place: %s", strerror(-r));
    }
    if (r != 0)
        (void)agent_template_rm_tree(tmp);
    return r;
}

/* ---- leftovers ---- */

int
agent_template_sweep_dir(const char *dir, time_t now)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    struct stat st;
    int n = 0;

    while (d && (e = readdir(d))) {
        bool unpack = strncmp(e->d_name, ".unpack-", 8) == 0;
        bool fetch = strncmp(e->d_name, ".fetch-", 7) == 0;
        if ((!unpack && !fetch) || fstatat(dirfd(d), e->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0)
            continue;
        if (fetch && (!S_ISREG(st.st_mode) || now - st.st_mtime < AGENT_TEMPLATE_STALE_S))
            continue;
        _cleanup_free_ char *path = xasprintf("%s/%s", dir, e->d_name);
        if ((unpack ? agent_template_rm_tree(path) : unlink(path)) == 0)
            n++;
    }
    if (d)
        closedir(d);
    return n;
}

void
agent_template_sweep(agent_t *a)
{
    char dir[300];

    templates_dir(a, dir, sizeof(dir));
    int n = agent_template_sweep_dir(dir, time(NULL));
    if (n > 0)
        log_info("node=%s removed %d leftovers of template fetches from %s", a->cfg.name, n, dir);
    struct stat st;
    if (stat(dir, &st) == 0 && (st.st_mode & 0077))
        log_warning("node=%s templates directory %s is mode %04o: local users reach the setuid "
                    "programs of its templates; chmod 0700 it",
                    a->cfg.name, dir, (unsigned)(st.st_mode & 07777));
}

/* ---- the facts ---- */

/* The template is here now: the next hello says so. */
static void
facts_add(agent_t *a, const char *name, const char *sum, uint64_t size)
{
    struct node_facts *f = &a->facts;
    uint32_t i = 0;

    while (i < f->n_templates && strcmp(f->templates[i], name) != 0)
        i++;
    if (i == f->n_templates) {
        if (f->n_templates >= PROTO_MAX_TEMPLATES)
            return;
        f->n_templates++;
        strscpy(f->templates[i], name, sizeof(f->templates[i]));
    }
    if (sum[0])
        strscpy(f->template_sum[i], sum, sizeof(f->template_sum[i]));
    f->template_size[i] = size;
}

static bool
facts_have(agent_t *a, const char *name, char *dir, size_t n)
{
    struct stat st;

    templates_dir(a, dir, n);
    size_t len = strlen(dir);
    snprintf(dir + len, n - len, "/%s", name);
    if (stat(dir, &st) == 0 && S_ISDIR(st.st_mode))
        return true;
    for (uint32_t i = 0; i < a->facts.n_templates; i++)
        if (strcmp(a->facts.templates[i], name) == 0)
            return true; /* a sim node's own templates have no directory */
    return false;
}

/* A status about a template fetch; commit done carries the tree's sum and size. */
static void
status(agent_t *a, uint64_t ref, const char *op, const char *phase, const char *state, int err,
       const char *text, const struct migration *m, const char *sum, uint64_t size)
{
    struct msg s = {.type = MSG_MIGRATE_STATUS};
    struct msg_migrate_status *st = &s.u.migrate_status;

    st->ref = ref;
    strscpy(st->op, op, sizeof(st->op));
    strscpy(st->id, op, sizeof(st->id));
    strscpy(st->phase, phase, sizeof(st->phase));
    strscpy(st->state, err < 0 ? "failed" : state, sizeof(st->state));
    if (err < 0)
        strscpy(st->code, msg_error_name(msg_error_from_errno(err)), sizeof(st->code));
    snprintf(st->message, sizeof(st->message), "%s", text ? text : "");
    if (m)
        strscpy(st->endpoint, m->endpoint, sizeof(st->endpoint));
    if (m && m->curve)
        strscpy(st->key, a->cfg.public_key, sizeof(st->key)); /* what the master pins */
    if (sum && !strncmp(sum, "sha256:", 7) && strlen(sum) == 7 + MIGRATE_DIGEST_LEN)
        strscpy(st->digest, sum + 7, sizeof(st->digest));
    st->bytes_done = st->bytes_total = size;
    agent_send(a, &s);
}

/* ---- prepare ---- */

static int
recv_start(agent_t *a, struct migration *m)
{
    bool ipc = !a->cfg.data_address[0] || !strncmp(a->cfg.master, "ipc://", 6);
    _cleanup_free_ char *bind =
        !ipc ? xasprintf("tcp://%s:*", a->cfg.data_address)
             : xasprintf("ipc://%s/template-%.8s.sock",
                         a->cfg.state_dir[0] ? a->cfg.state_dir : "/tmp", m->op);
    _cleanup_free_ char *state = xasprintf("%s.state", m->incoming);
    struct xfer_recv_config c = {
        .bind = bind, .secret = m->secret, .path = m->incoming, .state = state, .fresh = true};

    return xfer_recv_new(&c, NULL, NULL, &m->recv, m->endpoint);
}

static void
cmd_prepare(agent_t *a, const struct msg *msg)
{
    const struct msg_migrate *mg = &msg->u.migrate;
    struct migration *m = mig_find(a, mg->op);
    char dir[512], tmp[512], why[300];

    if (m && m->recv) {
        status(a, msg->id, mg->op, "prepare", "ready", 0, NULL, m, NULL, 0);
        return;
    }
    if (facts_have(a, mg->template_name, dir, sizeof(dir))) {
        status(a, msg->id, mg->op, "prepare", "done", 0, "the template is here already; kept", NULL,
               NULL, 0);
        return;
    }
    if (!m)
        m = mig_new(a, mg->op, mg->id, false);
    strscpy(m->secret, mg->secret, sizeof(m->secret));
    strscpy(m->peer_key, mg->peer_key, sizeof(m->peer_key)); /* the master's, "" = plaintext */
    fetch_paths(a, mg->template_name, mg->op, m->incoming, tmp, sizeof(m->incoming));
    templates_dir(a, dir, sizeof(dir));
    /* 0700: a template holds setuid programs and file capabilities, which a
     * local user must not reach through it on the host. */
    int r = fs_mkdir_p(dir, 0700);
    if (r >= 0)
        r = recv_start(a, m);
    if (r < 0) {
        snprintf(why, sizeof(why), "cannot receive template \"%s\": %s", mg->template_name,
                 strerror(-r));
        status(a, msg->id, mg->op, "prepare", "failed", r, why, NULL, NULL, 0);
        mig_free(m);
        return;
    }
    log_info("node=%s op=%s receiving template \"%s\" at %s (%s)", a->cfg.name, mg->op,
             mg->template_name, m->endpoint,
             m->curve ? "CurveZMQ, only the master's key" : "plaintext, secret only");
    status(a, msg->id, mg->op, "prepare", "ready", 0, NULL, m, NULL, 0);
}

/* ---- commit: the unpack job ---- */

struct tjob {
    agent_t *agent;                 /* back pointer */
    uint64_t ref;                   /* the commit answered */
    char op[SPEC_ID_LEN + 1];       /* the operation */
    char name[NAME_MAX_LEN + 1];    /* the template */
    char archive[512];              /* the archive received */
    char tmp[512];                  /* where it is unpacked first */
    char final[512];                /* <templates>/<name> */
    int result;                     /* < 0 failed, 0 unpacked, 1 one was there first */
    char err[300];                  /* why it failed */
    char sum[TEMPLATE_SUM_LEN + 1]; /* the unpacked tree's sum */
    uint64_t size;                  /* its bytes */
};

static void
tjob_run(void *arg)
{
    struct tjob *j = arg;

    if (j->result == 1) {
        if (template_sum(j->final, j->sum, &j->size) < 0)
            j->sum[0] = '\0';
        return;
    }
    _cleanup_close_ int fd = open(j->archive, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        j->result = -errno;
        snprintf(j->err, sizeof(j->err), "cannot open the template's archive: %s", strerror(errno));
        return;
    }
    _cleanup_free_ char *dir = xstrdup(j->final);
    char *slash = strrchr(dir, '/');
    if (slash)
        *slash = '\0';
    /* The archive received stays until the tree is whole: it takes room too. */
    j->result = agent_template_unpack(fd, j->tmp, j->final, agent_template_room(dir), j->sum,
                                      &j->size, j->err, sizeof(j->err));
    if (j->result == 1 && template_sum(j->final, j->sum, &j->size) < 0)
        j->sum[0] = '\0';
}

static void
remove_archive(const char *archive)
{
    _cleanup_free_ char *state = xasprintf("%s.state", archive);

    (void)unlink(archive);
    (void)unlink(state);
}

static void
tjob_done(void *arg)
{
    struct tjob *j = arg;
    agent_t *a = j->agent;
    struct migration *m = mig_find(a, j->op);

    if (m)
        mig_free(m);
    remove_archive(j->archive);
    if (j->result < 0) {
        log_warning("node=%s op=%s template \"%s\" not installed: %s", a->cfg.name, j->op, j->name,
                    j->err);
        status(a, j->ref, j->op, "commit", "failed", j->result, j->err, NULL, NULL, 0);
    } else {
        facts_add(a, j->name, j->sum, j->size);
        log_info("node=%s op=%s template \"%s\" %s (%s)", a->cfg.name, j->op, j->name,
                 j->result ? "was here already; kept" : "installed", j->sum);
        status(a, j->ref, j->op, "commit", "done", 0,
               j->result ? "a template of that name appeared meanwhile; kept" : "installed", NULL,
               j->sum, j->size);
    }
    free(j);
}

static const struct lane_fns tjob_fns = {NULL, tjob_run, tjob_done};

static void
cmd_commit(agent_t *a, const struct msg *msg)
{
    const struct msg_migrate *mg = &msg->u.migrate;
    struct migration *m = mig_find(a, mg->op);
    struct tjob *j = xcalloc(1, sizeof(*j));
    struct xfer_recv_status st = {0};
    uint8_t want[XFER_HASH_LEN];
    char dir[512];

    j->agent = a;
    j->ref = msg->id;
    strscpy(j->op, mg->op, sizeof(j->op));
    strscpy(j->name, mg->template_name, sizeof(j->name));
    fetch_paths(a, j->name, j->op, j->archive, j->tmp, sizeof(j->archive));
    if (m && m->step == MIG_FINAL) {
        free(j); /* a repeat while it unpacks: the job answers */
        return;
    }
    if (facts_have(a, j->name, dir, sizeof(dir)) && !m) {
        /* Committed before (an answer lost): answer with what is. */
        facts_have(a, j->name, j->final, sizeof(j->final));
        j->result = 1;
        lane_push(a->fetches, &tjob_fns, j);
        return;
    }
    _cleanup_free_ char *state = xasprintf("%s.state", j->archive);
    if (m && m->recv)
        xfer_recv_status(m->recv, &st);
    else
        (void)xfer_recv_load_state(state, &st);
    const char *why = NULL;
    if (!st.done)
        why = "the template's archive has not arrived whole";
    else if (xfer_hex_decode(mg->digest, want, sizeof(want)) < 0 ||
             memcmp(want, st.digest, sizeof(want)) != 0)
        why = "the template's archive here differs from the one sent (digest)";
    if (why) {
        status(a, msg->id, mg->op, "commit", "failed", st.done ? -EBADMSG : -EAGAIN, why, NULL,
               NULL, 0);
        free(j);
        return;
    }
    if (!m)
        m = mig_new(a, mg->op, mg->id, false);
    xfer_recv_destroy(&m->recv); /* the file stays */
    m->step = MIG_FINAL;         /* unpacking: a repeated commit waits for it */
    templates_dir(a, j->final, sizeof(j->final));
    size_t len = strlen(j->final);
    snprintf(j->final + len, sizeof(j->final) - len, "/%s", j->name);
    lane_push(a->fetches, &tjob_fns, j);
}

/* ---- abort ---- */

static void
cmd_abort(agent_t *a, const struct msg *msg)
{
    const struct msg_migrate *mg = &msg->u.migrate;
    struct migration *m = mig_find(a, mg->op);
    char archive[512], tmp[512];

    if (m)
        mig_free(m);
    fetch_paths(a, mg->template_name, mg->op, archive, tmp, sizeof(archive));
    remove_archive(archive);
    status(a, msg->id, mg->op, "abort", "done", 0, NULL, NULL, NULL, 0);
}

void
agent_template_cmd(agent_t *a, const struct msg *m)
{
    switch (m->type) {
    case MSG_MIGRATE_PREPARE:
        cmd_prepare(a, m);
        break;
    case MSG_MIGRATE_COMMIT:
        cmd_commit(a, m);
        break;
    case MSG_MIGRATE_ABORT:
        cmd_abort(a, m);
        break;
    default:
        status(a, m->id, m->u.migrate.op, "send", "failed", -EOPNOTSUPP,
               "a template fetch has no such step", NULL, NULL, 0);
        break;
    }
}
