#include "node/store.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/fsutil.h"
#include "common/log.h"
#include "common/mem.h"
#include "common/mtime.h"
#include "common/sorted.h"
#include "proto/spec_json.h"
#include "proto/spec_pack.h"

#define RECORD_VERSION 1
#define GUESTS_DIR     "guests"
#define TMP_SUFFIX     ".tmp"
#define JSON_SUFFIX    ".json"
/* Spare files: ".spare-<k>.json.tmp", k < STORE_SPARES. The ".json.tmp"
 * suffix and the leading dot are what an older agent removes on open. */
#define SPARE_PREFIX ".spare-"
#define SPARE_NAME   "%s" SPARE_PREFIX "%u" JSON_SUFFIX TMP_SUFFIX

/* One record as the store keeps it in memory: the spec packed (spec_pack,
 * a few hundred bytes where struct guest_spec is 17 KB of fixed arrays),
 * the rest of struct store_record as it is. */
struct store_entry {
    char id[SPEC_ID_LEN + 1];    /* spec.id, the order entries are kept in */
    char *spec;                  /* the spec packed (owned) */
    size_t spec_len;             /* its bytes */
    uint64_t applied_generation; /* as in struct store_record, as are the fields below */
    enum store_desired desired;  /* run state the master asked for */
    struct guest_runtime rt;     /* init pid + start time when running */
    struct guest_usage baseline; /* counter baselines */
    char boot_id[40];            /* the boot id init was started in */
    struct guest_ids ids;        /* the uid block */
    bool legacy_ids;             /* read from a record older than uid blocks */
};

struct store {
    int lock_fd;                   /* <dir>/lock, flock'd LOCK_EX for the store's life */
    bool readonly;                 /* opened by store_open_readonly: no writes, no lock */
    bool memory;                   /* opened by store_open_memory: nothing on disk */
    int guests_fd;                 /* <dir>/guests, O_DIRECTORY */
    struct store_entry **recs;     /* records, each malloc'd, sorted by id */
    size_t n;                      /* records used */
    size_t cap;                    /* records allocated */
    struct store_record *cur;      /* the record store_get and store_at unpacked last */
    struct store_problem *problem; /* what store_open set aside */
    size_t n_problem;              /* entries in problem */
    uint64_t spare_ok;             /* spare files (bit k: .spare-<k>.json.tmp) that exist and
                                      that no record name refers to on disk, durably */
};

/* jansson's own cleanup helper (json_auto_t is the same thing). */
#define _cleanup_json_ _cleanup_(json_decrefp)

static void
closedirp(DIR **d)
{
    if (*d)
        closedir(*d);
}

/* A stream of the guests directory's entries, its own descriptor (the
 * store keeps guests_fd); 0, or -errno. */
static int
guests_dir_open(const store_t *s, DIR **out)
{
    int fd = openat(s->guests_fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    *out = fdopendir(fd);
    if (!*out) {
        int r = -errno;
        close(fd);
        return r;
    }
    return 0;
}

const char *
store_desired_name(enum store_desired d)
{
    return d == STORE_DESIRED_RUNNING ? "running" : "stopped";
}

int
store_desired_from_name(const char *name)
{
    if (strcmp(name, "running") == 0)
        return STORE_DESIRED_RUNNING;
    if (strcmp(name, "stopped") == 0)
        return STORE_DESIRED_STOPPED;
    return -EINVAL;
}

static bool
has_suffix(const char *s, const char *suffix)
{
    size_t a = strlen(s), b = strlen(suffix);
    return a >= b && strcmp(s + a - b, suffix) == 0;
}

static const char *
entry_key(const void *elem)
{
    return (*(struct store_entry *const *)elem)->id;
}

/* Binary search by id: the index of the record, or where it would go (*found false). */
static size_t
find(const store_t *s, const char *id, bool *found)
{
    return sorted_find(s->recs, s->n, sizeof(*s->recs), entry_key, id, found);
}

static void
entry_free(struct store_entry *e)
{
    if (e)
        free(e->spec);
    free(e);
}

/* The record packed for keeping; NULL when its spec is invalid. */
static struct store_entry *
entry_pack(const struct store_record *rec)
{
    struct store_entry *e = xcalloc(1, sizeof(*e));

    if (spec_pack(&rec->spec, &e->spec, &e->spec_len) < 0) {
        free(e);
        return NULL;
    }
    memcpy(e->id, rec->spec.id, sizeof(e->id));
    e->applied_generation = rec->applied_generation;
    e->desired = rec->desired;
    e->rt = rec->rt;
    e->baseline = rec->baseline;
    memcpy(e->boot_id, rec->boot_id, sizeof(e->boot_id));
    e->ids = rec->ids;
    e->legacy_ids = rec->legacy_ids;
    return e;
}

/* The whole record of e, in the store's one unpacked slot. */
static const struct store_record *
entry_unpack(const store_t *cs, const struct store_entry *e)
{
    store_t *s = (store_t *)cs; /* the slot is a cache: lookups stay const to callers */
    struct store_record *r;

    if (!s->cur)
        s->cur = xmalloc(sizeof(*s->cur));
    r = s->cur;
    memset(r, 0, sizeof(*r));
    /* Only spec_pack's output is ever kept: failing to read it back is a bug. */
    if (spec_unpack(e->spec, e->spec_len, &r->spec) < 0)
        abort();
    r->applied_generation = e->applied_generation;
    r->desired = e->desired;
    r->rt = e->rt;
    r->baseline = e->baseline;
    memcpy(r->boot_id, e->boot_id, sizeof(r->boot_id));
    r->ids = e->ids;
    r->legacy_ids = e->legacy_ids;
    return r;
}

/* Puts e (owned by the store from now on) in memory, replacing a record with the same id. */
static void
insert(store_t *s, struct store_entry *e)
{
    bool found;
    size_t i = find(s, e->id, &found);

    if (found) {
        entry_free(s->recs[i]);
        s->recs[i] = e;
        return;
    }
    if (s->n == s->cap) {
        s->cap = s->cap ? s->cap * 2 : 64;
        s->recs = xreallocarray(s->recs, s->cap, sizeof(*s->recs));
    }
    memmove(&s->recs[i + 1], &s->recs[i], (s->n - i) * sizeof(*s->recs));
    s->recs[i] = e;
    s->n++;
}

static json_t *
record_to_json(const struct store_record *r)
{
    json_t *j = json_object();

    json_object_set_new(j, "version", json_integer(RECORD_VERSION));
    json_object_set_new(j, "spec", spec_to_json(&r->spec));
    json_object_set_new(j, "applied_generation", json_integer((json_int_t)r->applied_generation));
    json_object_set_new(j, "desired", json_string(store_desired_name(r->desired)));
    json_object_set_new(
        j, "runtime",
        json_pack("{s:i,s:I}", "pid", (int)r->rt.pid, "start_time", (json_int_t)r->rt.start_time));
    json_object_set_new(j, "baseline", usage_to_json(&r->baseline));
    json_object_set_new(j, "boot_id", json_string(r->boot_id));
    /* A legacy record stays legacy: writing "ids" would make it look as if
     * the guest had been created privileged on purpose. */
    if (!r->legacy_ids)
        json_object_set_new(j, "ids",
                            json_pack("{s:I,s:I}", "uid_base", (json_int_t)r->ids.uid_base,
                                      "uid_count", (json_int_t)r->ids.uid_count));
    return j;
}

/* A block is whole and in range: none, or BACKEND_UID_BLOCK ids from a base
 * above the host's first 65536 ids, ending below uid -1. */
static bool
ids_valid(const struct guest_ids *ids)
{
    if (ids->uid_base == 0)
        return ids->uid_count == 0;
    return ids->uid_count == BACKEND_UID_BLOCK && ids->uid_base >= BACKEND_UID_BLOCK &&
           (uint64_t)ids->uid_base + ids->uid_count <= UINT32_MAX;
}

/* A non-negative JSON integer, or -EINVAL. */
static int
get_u64(const json_t *v, uint64_t max, uint64_t *out)
{
    if (!json_is_integer(v) || json_integer_value(v) < 0 || (uint64_t)json_integer_value(v) > max)
        return -EINVAL;
    *out = (uint64_t)json_integer_value(v);
    return 0;
}

#define BAD(what)                                                                                  \
    do {                                                                                           \
        snprintf(detail, n, "%s", (what));                                                         \
        return -EINVAL;                                                                            \
    } while (0)

static int
record_from_json(const json_t *j, struct store_record *r, char *detail, size_t n)
{
    const json_t *v, *rt;
    uint64_t x;
    char field[64];
    int d;

    memset(r, 0, sizeof(*r));
    if (!json_is_object(j))
        BAD("not an object");
    if (get_u64(json_object_get(j, "version"), INT_MAX, &x) < 0 || x != RECORD_VERSION)
        BAD("version");
    if (!(v = json_object_get(j, "spec")))
        BAD("spec");
    if (spec_from_json(v, &r->spec, field, sizeof(field)) < 0) {
        snprintf(detail, n, "spec.%s", field);
        return -EINVAL;
    }
    if (get_u64(json_object_get(j, "applied_generation"), INT64_MAX, &r->applied_generation) < 0)
        BAD("applied_generation");
    v = json_object_get(j, "desired");
    if (!json_is_string(v) || (d = store_desired_from_name(json_string_value(v))) < 0)
        BAD("desired");
    r->desired = (enum store_desired)d;
    rt = json_object_get(j, "runtime");
    if (!json_is_object(rt) || get_u64(json_object_get(rt, "pid"), INT_MAX, &x) < 0)
        BAD("runtime.pid");
    r->rt.pid = (pid_t)x;
    if (get_u64(json_object_get(rt, "start_time"), INT64_MAX, &r->rt.start_time) < 0)
        BAD("runtime.start_time");
    /* Older records may have no baseline: all-zero counters are the right start. */
    v = json_object_get(j, "baseline");
    if (v && usage_from_json(v, &r->baseline, field, sizeof(field)) < 0) {
        snprintf(detail, n, "baseline.%s", field);
        return -EINVAL;
    }
    /* Older records have none: "unknown", as a reboot would be. */
    v = json_object_get(j, "boot_id");
    if (v &&
        (!json_is_string(v) || strscpy(r->boot_id, json_string_value(v), sizeof(r->boot_id)) < 0))
        BAD("boot_id");
    v = json_object_get(j, "ids");
    if (!v) {
        r->legacy_ids = true;
        return 0;
    }
    if (!json_is_object(v) || get_u64(json_object_get(v, "uid_base"), UINT32_MAX, &x) < 0)
        BAD("ids.uid_base");
    r->ids.uid_base = (uint32_t)x;
    if (get_u64(json_object_get(v, "uid_count"), UINT32_MAX, &x) < 0)
        BAD("ids.uid_count");
    r->ids.uid_count = (uint32_t)x;
    if (!ids_valid(&r->ids))
        BAD("ids");
    return 0;
}

/* Opens a record file for reading. A reader beside the agent (shared) takes
 * a shared flock on the file and makes sure the name still refers to it: the
 * agent rewrites a file only while it is a spare, under an exclusive lock it
 * does not wait for (store_put), so a file that is the record while the
 * reader holds the lock stays whole until the reader closes it. */
static int
open_record(int dirfd, const char *name, bool shared, struct stat *st)
{
    for (int tries = 0; tries < 100; tries++) {
        _cleanup_close_ int fd =
            openat(dirfd, name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
        struct stat now;

        if (fd < 0)
            return -errno;
        if (fstat(fd, st) < 0)
            return -errno;
        if (!shared || !S_ISREG(st->st_mode))
            return move_fd(fd);
        if (flock(fd, LOCK_SH) < 0)
            return -errno;
        if (fstatat(dirfd, name, &now, AT_SYMLINK_NOFOLLOW) < 0)
            return -errno;
        if (now.st_ino == st->st_ino && now.st_dev == st->st_dev)
            return fstat(fd, st) < 0 ? -errno : move_fd(fd);
    }
    return -EAGAIN;
}

/* Reads one record file (shared: as a reader beside the agent, open_record).
 * Returns 0 or -errno, with detail saying what was wrong. */
static int
load_file(int dirfd, const char *name, bool shared, struct store_record *r, char *detail, size_t n)
{
    _cleanup_close_ int fd = -EBADF;
    _cleanup_free_ char *buf = NULL;
    _cleanup_json_ json_t *j = NULL;
    json_error_t jerr;
    struct stat st;
    size_t len = 0;
    int k;

    fd = open_record(dirfd, name, shared, &st);
    if (fd < 0) {
        errno = -fd;
        snprintf(detail, n, "open: %m");
        return fd;
    }
    if (!S_ISREG(st.st_mode)) {
        snprintf(detail, n, "not a regular file");
        return -EINVAL;
    }
    if (st.st_size > STORE_MAX_RECORD) {
        snprintf(detail, n, "larger than %u bytes", STORE_MAX_RECORD);
        return -EFBIG;
    }
    buf = xmalloc((size_t)st.st_size + 1);
    while (len < (size_t)st.st_size) {
        ssize_t got = read(fd, buf + len, (size_t)st.st_size - len);
        if (got < 0 && errno == EINTR)
            continue;
        if (got < 0) {
            snprintf(detail, n, "read: %m");
            return -errno;
        }
        if (got == 0)
            break;
        len += (size_t)got;
    }
    j = json_loadb(buf, len, JSON_REJECT_DUPLICATES, &jerr);
    if (!j) {
        snprintf(detail, n, "line %d: %.72s", jerr.line, jerr.text);
        return -EBADMSG;
    }
    k = record_from_json(j, r, detail, n);
    if (k < 0)
        return k;
    /* The file name is the identity the store looks records up by. */
    if (strlen(name) != SPEC_ID_LEN + strlen(JSON_SUFFIX) ||
        strncmp(name, r->spec.id, SPEC_ID_LEN) != 0) {
        snprintf(detail, n, "spec.id does not match the file name");
        return -EINVAL;
    }
    return 0;
}

/* Renames a record that could not be read out of the way, never deleting it:
 * it may be the only copy of a guest's spec and an operator can repair it. */
static void
quarantine(store_t *s, const char *name, int error, const char *detail)
{
    struct store_problem *p;

    s->problem = xreallocarray(s->problem, s->n_problem + 1, sizeof(*s->problem));
    p = &s->problem[s->n_problem++];
    memset(p, 0, sizeof(*p));
    snprintf(p->file, sizeof(p->file), "%s", name);
    snprintf(p->detail, sizeof(p->detail), "%s", detail);
    p->error = error;
    /* A reader leaves the file where it is: only the agent owns the store. */
    for (uint64_t ms = time_real_ms(), tries = s->readonly ? 100 : 0; tries < 100; ms++, tries++) {
        char to[sizeof(p->quarantined)];
        if (snprintf(to, sizeof(to), "%s.corrupt-%" PRIu64, name, ms) >= (int)sizeof(to))
            break;
        if (renameat2(s->guests_fd, name, s->guests_fd, to, RENAME_NOREPLACE) == 0) {
            memcpy(p->quarantined, to, sizeof(to));
            (void)fsync(s->guests_fd);
            break;
        }
        if (errno != EEXIST)
            break;
    }
    log_debug("store: record \"%s\" unreadable (%s), moved to \"%s\"", name, detail,
              p->quarantined);
}

/* The slot of a spare file's name, or -1 when name is not one. */
static int
spare_slot(const char *name)
{
    char want[48];
    unsigned k = 0;
    const char *p = name + strlen(SPARE_PREFIX);

    if (strncmp(name, SPARE_PREFIX, strlen(SPARE_PREFIX)) != 0 || *p < '0' || *p > '9')
        return -1;
    while (*p >= '0' && *p <= '9' && k < STORE_SPARES)
        k = k * 10 + (unsigned)(*p++ - '0');
    if (k >= STORE_SPARES)
        return -1;
    snprintf(want, sizeof(want), SPARE_NAME, "", k);
    return strcmp(name, want) == 0 ? (int)k : -1;
}

/* Loads every record; the spare files found go to *spares (bit k for slot k). */
static int
load_all(store_t *s, uint64_t *spares)
{
    _cleanup_(closedirp) DIR *d = NULL;
    struct dirent *de;
    int r = guests_dir_open(s, &d);

    if (r < 0)
        return r;
    _cleanup_free_ struct store_record *rec = xmalloc(sizeof(*rec)); /* one file's, unpacked */

    while ((errno = 0, de = readdir(d))) {
        const char *name = de->d_name;
        struct store_entry *e = NULL;
        char detail[96] = "";

        if (name[0] == '.') {
            int k = spare_slot(name);
            if (s->readonly)
                continue;
            if (k >= 0) {
                *spares |= UINT64_C(1) << k;
                continue;
            }
            /* A write that a crash interrupted: the record it was replacing is intact. */
            if (has_suffix(name, JSON_SUFFIX TMP_SUFFIX) && unlinkat(s->guests_fd, name, 0) < 0 &&
                errno != ENOENT)
                return -errno;
            continue;
        }
        if (!has_suffix(name, JSON_SUFFIX))
            continue;
        if (s->n >= STORE_MAX_GUESTS)
            return -ENOSPC;
        r = load_file(s->guests_fd, name, s->readonly, rec, detail, sizeof(detail));
        if (r >= 0 && !(e = entry_pack(rec))) {
            snprintf(detail, sizeof(detail), "spec");
            r = -EINVAL;
        }
        if (r < 0) {
            quarantine(s, name, r, detail);
            continue;
        }
        insert(s, e);
    }
    return errno ? -errno : 0;
}

int
store_open_readonly(const char *dir, store_t **out)
{
    _cleanup_(store_close) store_t *s = xcalloc(1, sizeof(*s));
    char path[4096];
    int r;

    s->readonly = true;
    s->lock_fd = -EBADF;
    if (snprintf(path, sizeof(path), "%s/" GUESTS_DIR, dir) >= (int)sizeof(path))
        return -ENAMETOOLONG;
    s->guests_fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (s->guests_fd < 0)
        return -errno;
    uint64_t spares = 0;
    r = load_all(s, &spares);
    if (r < 0)
        return r;
    r = (int)s->n_problem;
    *out = move_ptr(s);
    return r;
}

int
store_open(const char *dir, store_t **out)
{
    _cleanup_(store_close) store_t *s = NULL;
    _cleanup_close_ int dfd = -EBADF;
    int r;

    r = fs_mkdir_p(dir, 0700);
    if (r < 0)
        return r;
    dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd < 0)
        return -errno;
    if (mkdirat(dfd, GUESTS_DIR, 0700) == 0) {
        /* The first record's durability rests on the directory entry existing too. */
        if (fsync(dfd) < 0)
            return -errno;
    } else if (errno != EEXIST) {
        return -errno;
    }

    s = xcalloc(1, sizeof(*s));
    s->guests_fd = -EBADF;
    s->lock_fd = openat(dfd, "lock", O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (s->lock_fd < 0)
        return -errno;
    /* flock locks belong to the open file description, so a second store_open of
     * the same dir fails even inside this process: two writers would race on temp files. */
    if (flock(s->lock_fd, LOCK_EX | LOCK_NB) < 0)
        return errno == EWOULDBLOCK ? -EBUSY : -errno;
    s->guests_fd = openat(dfd, GUESTS_DIR, O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
    if (s->guests_fd < 0)
        return -errno;
    uint64_t spares = 0;
    r = load_all(s, &spares);
    if (r < 0)
        return r;
    /* An agent that stopped between a put's exchange and its directory fsync
     * left the exchange in the page cache only: once the directory is synced
     * no spare is a record's durable copy, and the spares can be rewritten. */
    if (spares && fsync(s->guests_fd) == 0)
        s->spare_ok = spares;
    r = (int)s->n_problem;
    *out = move_ptr(s);
    return r;
}

int
store_open_memory(store_t **out)
{
    store_t *s = xcalloc(1, sizeof(*s));

    s->memory = true;
    s->lock_fd = -EBADF;
    s->guests_fd = -EBADF;
    *out = s;
    return 0;
}

void
store_close(store_t **sp)
{
    store_t *s = *sp;

    if (!s)
        return;
    for (size_t i = 0; i < s->n; i++)
        entry_free(s->recs[i]);
    free(s->recs);
    free(s->cur);
    free(s->problem);
    closep(&s->guests_fd);
    closep(&s->lock_fd);
    free(s);
    *sp = NULL;
}

size_t
store_problem_count(const store_t *s)
{
    return s->n_problem;
}

const struct store_problem *
store_problem_at(const store_t *s, size_t i)
{
    return i < s->n_problem ? &s->problem[i] : NULL;
}

const struct store_record *
store_get(const store_t *s, const char *id)
{
    bool found;
    size_t i = find(s, id, &found);
    return found ? entry_unpack(s, s->recs[i]) : NULL;
}

const struct store_record *
store_find_by_name(const store_t *s, const char *name)
{
    for (size_t i = 0; i < s->n; i++) {
        const struct store_record *r = entry_unpack(s, s->recs[i]);
        if (strcmp(r->spec.name, name) == 0)
            return r;
    }
    return NULL;
}

int
store_set_aside(const store_t *s, const char *id, char *name, size_t n)
{
    _cleanup_(closedirp) DIR *d = NULL;
    char prefix[SPEC_ID_LEN + sizeof(JSON_SUFFIX ".corrupt-")];
    struct dirent *de;
    int r, found = 0;

    if (s->guests_fd < 0)
        return 0;
    if (snprintf(prefix, sizeof(prefix), "%s" JSON_SUFFIX ".corrupt-", id) >= (int)sizeof(prefix))
        return 0;
    if ((r = guests_dir_open(s, &d)) < 0)
        return r;
    while ((de = readdir(d))) {
        /* The newest, when there are several: the names end in unix ms. */
        if (strncmp(de->d_name, prefix, strlen(prefix)) != 0 ||
            (found && n && strcmp(de->d_name, name) <= 0))
            continue;
        if (n)
            snprintf(name, n, "%s", de->d_name);
        found = 1;
    }
    return found;
}

size_t
store_count(const store_t *s)
{
    return s->n;
}

const struct store_record *
store_at(const store_t *s, size_t i)
{
    return i < s->n ? entry_unpack(s, s->recs[i]) : NULL;
}

static int
pwrite_all(int fd, const char *buf, size_t len)
{
    off_t off = 0;

    while (len > 0) {
        ssize_t w = pwrite(fd, buf, len, off);
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0)
            return -errno;
        buf += w;
        off += w;
        len -= (size_t)w;
    }
    return 0;
}

static void
spare_name(char *out, size_t n, unsigned k)
{
    snprintf(out, n, SPARE_NAME, "", k);
}

/* A spare file to write a record into, open for writing and locked
 * exclusively (a reader holding a shared lock on it, from when it was a
 * record, keeps it: it is dropped and another taken). An ok spare first
 * (no new inode), else a new file in a free slot. Returns the fd with *slot
 * set, or -errno. The slot is not ok while the caller uses it. */
static int
spare_take(store_t *s, unsigned *slot)
{
    char name[48];

    while (s->spare_ok) {
        unsigned k = (unsigned)__builtin_ctzll(s->spare_ok);
        s->spare_ok &= ~(UINT64_C(1) << k);
        spare_name(name, sizeof(name), k);
        _cleanup_close_ int fd = openat(s->guests_fd, name, O_WRONLY | O_CLOEXEC | O_NOFOLLOW);
        if (fd >= 0 && flock(fd, LOCK_EX | LOCK_NB) == 0) {
            *slot = k;
            return move_fd(fd);
        }
        (void)unlinkat(s->guests_fd, name, 0);
    }
    for (unsigned k = 0; k < STORE_SPARES; k++) {
        spare_name(name, sizeof(name), k);
        /* Not ok: absent, or left by a put that failed; we hold the store's lock. */
        (void)unlinkat(s->guests_fd, name, 0);
        int fd =
            openat(s->guests_fd, name, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
        if (fd >= 0) {
            *slot = k;
            return fd; /* a new inode no reader has seen: no lock needed */
        }
        if (errno != EEXIST)
            return -errno;
    }
    return -EEXIST;
}

/* Makes text the content of name, atomically and durably: the text goes
 * into a spare file (rewritten in place: pwrite, ftruncate, fdatasync), the
 * spare is exchanged with the record (renameat2 RENAME_EXCHANGE; renamed
 * onto it when there is no record yet), and the directory is fsync'd. The
 * old record's file is the spare now, for the next put: a put makes no inode
 * and frees none (one for a new record, which takes its spare's). After a
 * crash at any point name holds the old text or the new, whole; a spare
 * holds anything and is rewritten before use. *renamed tells the caller
 * whether name now holds text, which is true even when only the final
 * directory fsync failed. */
static int
write_atomic(store_t *s, const char *name, bool exists, const char *text, bool *renamed)
{
    size_t len = strlen(text);
    char spare[48];
    unsigned k = 0;
    int r, fd;

    fd = spare_take(s, &k);
    if (fd < 0)
        return fd;
    spare_name(spare, sizeof(spare), k);
    r = pwrite_all(fd, text, len);
    if (r >= 0 && ftruncate(fd, (off_t)len) < 0)
        r = -errno;
    if (r >= 0 && fdatasync(fd) < 0)
        r = -errno;
    bool exchanged = false;
    if (r >= 0 && exists) {
        exchanged = renameat2(s->guests_fd, spare, s->guests_fd, name, RENAME_EXCHANGE) == 0;
        /* No record file after all, or a file system without exchange: rename. */
        if (!exchanged && errno != ENOENT && errno != EINVAL)
            r = -errno;
    }
    if (r >= 0 && !exchanged && renameat(s->guests_fd, spare, s->guests_fd, name) < 0)
        r = -errno;
    /* The lock lasts until the exchange: a reader that took the file under
     * its record name before then waits, and finds the name moved on. */
    close(fd);
    if (r < 0) {
        (void)unlinkat(s->guests_fd, spare, 0);
        return r;
    }
    *renamed = true;
    /* The exchange is durable only once the directory entry is; until then
     * the spare may still be the record on disk, so it is not ok. */
    if (fsync(s->guests_fd) < 0)
        return -errno;
    if (exchanged)
        s->spare_ok |= UINT64_C(1) << k;
    return 0;
}

/* Whether another record's block overlaps rec's. */
static bool
ids_taken(const store_t *s, const struct store_record *rec)
{
    uint64_t lo = rec->ids.uid_base, hi = lo + rec->ids.uid_count;

    if (!lo)
        return false;
    for (size_t i = 0; i < s->n; i++) {
        const struct guest_ids *o = &s->recs[i]->ids;
        if (o->uid_base && strcmp(s->recs[i]->id, rec->spec.id) != 0 && o->uid_base < hi &&
            lo < (uint64_t)o->uid_base + o->uid_count)
            return true;
    }
    return false;
}

static int
cmp_u32(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return x < y ? -1 : x > y;
}

int
store_uid_block_pick(const uint32_t *used, size_t n, struct guest_ids *out)
{
    _cleanup_free_ uint32_t *idx = xcalloc(2 * n + 1, sizeof(*idx));
    size_t m = 0;

    /* The block numbers in use, sorted: the first gap is the answer. A base
     * that is not on a block boundary (set by hand) blocks both it touches. */
    for (size_t i = 0; i < n; i++) {
        if (used[i] < STORE_UID_FIRST)
            continue;
        uint32_t k = (used[i] - STORE_UID_FIRST) / BACKEND_UID_BLOCK;
        idx[m++] = k;
        if ((used[i] - STORE_UID_FIRST) % BACKEND_UID_BLOCK)
            idx[m++] = k + 1;
    }
    qsort(idx, m, sizeof(*idx), cmp_u32);
    uint32_t want = 0;
    for (size_t i = 0; i < m && idx[i] <= want; i++)
        if (idx[i] == want)
            want++;
    if (want >= STORE_UID_BLOCKS)
        return -ENOSPC;
    out->uid_base = STORE_UID_FIRST + want * BACKEND_UID_BLOCK;
    out->uid_count = BACKEND_UID_BLOCK;
    return 0;
}

bool
store_ids_match(const struct guest_ids *ids, bool legacy_ids, const struct guest_spec *spec)
{
    if (legacy_ids)
        return true;
    return !(spec->flags & SPEC_FLAG_PRIVILEGED) == (ids->uid_base != 0);
}

int
store_put(store_t *s, const struct store_record *rec)
{
    _cleanup_json_ json_t *j = NULL;
    _cleanup_free_ char *text = NULL;
    char name[SPEC_ID_LEN + 16];
    struct store_entry *e;
    bool found, renamed = false;
    int r;

    if (s->readonly)
        return -EROFS;

    if (spec_validate(&rec->spec, NULL) < 0)
        return -EINVAL;
    if (rec->desired != STORE_DESIRED_STOPPED && rec->desired != STORE_DESIRED_RUNNING)
        return -EINVAL;
    if (rec->applied_generation > INT64_MAX || rec->rt.pid < 0 || rec->rt.start_time > INT64_MAX)
        return -EINVAL;
    if (!ids_valid(&rec->ids) || (rec->legacy_ids && rec->ids.uid_base))
        return -EINVAL;
    if (ids_taken(s, rec))
        return -EEXIST;
    (void)find(s, rec->spec.id, &found);
    if (!found && s->n >= STORE_MAX_GUESTS)
        return -ENOSPC;

    if (s->memory) {
        insert(s, entry_pack(rec));
        return 0;
    }
    j = record_to_json(rec);
    text = json_dumps(j, JSON_INDENT(2));
    if (!text)
        return -ENOMEM;
    if (strlen(text) > STORE_MAX_RECORD)
        return -EFBIG;
    /* spec_validate guarantees the id is a UUID: safe as a file name. */
    snprintf(name, sizeof(name), "%s" JSON_SUFFIX, rec->spec.id);
    r = write_atomic(s, name, found, text, &renamed);
    /* Memory follows what the file now says, so a later put or reload agrees with it. */
    if (renamed && (e = entry_pack(rec)))
        insert(s, e);
    return r < 0 ? r : 0;
}

int
store_delete(store_t *s, const char *id)
{
    char name[SPEC_ID_LEN + 16];
    bool found;
    size_t i = find(s, id, &found);

    if (s->readonly)
        return -EROFS;
    if (!found)
        return -ENOENT;
    int k = -1;
    if (!s->memory) {
        snprintf(name, sizeof(name), "%s" JSON_SUFFIX, s->recs[i]->id);
        /* The record's file becomes a spare for a later put (a create then
         * takes it: no inode freed here, none made there), unless every
         * slot holds one already. */
        if (~s->spare_ok) {
            char spare[48];
            k = __builtin_ctzll(~s->spare_ok);
            spare_name(spare, sizeof(spare), (unsigned)k);
            if (renameat(s->guests_fd, name, s->guests_fd, spare) < 0)
                k = -1;
        }
        if (k < 0 && unlinkat(s->guests_fd, name, 0) < 0 && errno != ENOENT)
            return -errno;
    }
    /* The file is gone: memory follows even if making that durable fails below. */
    entry_free(s->recs[i]);
    memmove(&s->recs[i], &s->recs[i + 1], (s->n - i - 1) * sizeof(*s->recs));
    s->n--;
    if (!s->memory && fsync(s->guests_fd) < 0)
        return -errno;
    if (k >= 0)
        s->spare_ok |= UINT64_C(1) << k;
    return 0;
}
