/* Tests for the linux backend's start after a host reboot (the cold path): the guest's disk,
 * idmapped template and overlay are not mounted, and start makes them again, while the child is
 * cloned (start_cold). Needs root, loop devices, /bin/busybox and the source tree
 * (VFLEET_SOURCE_DIR, set by ctest); skipped (77) otherwise. The teardown destroys the guest and
 * removes its files even when an assertion fails. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdbool.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <unistd.h>
#include <cmocka.h>

#include "common/errtext.h"
#include "common/fsutil.h"
#include "common/mem.h"
#include "node/backend.h"
#include "node/linux/disk.h"
#include "node/linux/idmap.h"
#include "node/linux/linux_backend.h"
#include "node/linux/linux_backend_int.h"
#include "node/linux/mountinfo.h"
#include "node/linux/rootfs.h"

#define MiB (1ULL << 20)

struct fx {
    char dir[128];           /* the test's temporary directory */
    backend_t *b;            /* the backend under test */
    struct guest_spec spec;  /* its one guest */
    struct guest_ids ids;    /* the guest's uid block */
    struct guest_runtime rt; /* the guest while it runs */
    char disk[PATH_MAX];     /* state/data/<id>/disk */
    char lower[PATH_MAX];    /* state/data/<id>/lower */
    char root[PATH_MAX];     /* state/data/<id>/root */
    char image[PATH_MAX];    /* state/data/<id>/disk.img */
    char stage[PATH_MAX];    /* state/data/<id>/stage: a cold start's conduit */
    struct fx *peer;         /* a second guest of the same backend, or NULL */
};

static int
setup(void **state)
{
    struct fx *fx = xcalloc(1, sizeof(*fx));
    snprintf(fx->dir, sizeof(fx->dir), "/tmp/vf-lxstart-test-%d-XXXXXX", (int)getpid());
    if (!mkdtemp(fx->dir))
        return -1;
    char cmd[2 * PATH_MAX];
    snprintf(cmd, sizeof(cmd), "'%s/deploy/templates/busybox' '%s/templates/busybox' >/dev/null",
             getenv("VFLEET_SOURCE_DIR"), fx->dir);
    if (system(cmd) != 0)
        return -1;

    struct linux_config cfg = {0};
    snprintf(cfg.state_dir, sizeof(cfg.state_dir), "%s/state", fx->dir);
    snprintf(cfg.templates, sizeof(cfg.templates), "%s/templates", fx->dir);
    snprintf(cfg.cgroup_prefix, sizeof(cfg.cgroup_prefix), "vftest-lx%d", (int)getpid());
    int err = 0;
    fx->b = linux_backend_new(&cfg, &err);
    if (!fx->b)
        return -1;

    struct guest_spec *s = &fx->spec;
    snprintf(s->id, sizeof(s->id), "00000000-0000-4000-8000-1%011x", (unsigned)getpid());
    snprintf(s->name, sizeof(s->name), "lxstart-%u", (unsigned)getpid());
    strscpy(s->template_name, "busybox", sizeof(s->template_name));
    s->generation = 1;
    s->limits.disk = 64 * MiB;
    s->limits.procs = 64;
    s->limits.memory = 64 * MiB;
    /* A block far from any a node on this host hands out, and from bench_start's. */
    fx->ids = (struct guest_ids){0xE0000000u, BACKEND_UID_BLOCK};
    snprintf(fx->disk, sizeof(fx->disk), "%s/data/%s/disk", cfg.state_dir, s->id);
    snprintf(fx->lower, sizeof(fx->lower), "%s/data/%s/lower", cfg.state_dir, s->id);
    snprintf(fx->root, sizeof(fx->root), "%s/data/%s/root", cfg.state_dir, s->id);
    snprintf(fx->image, sizeof(fx->image), "%s/data/%s/disk.img", cfg.state_dir, s->id);
    snprintf(fx->stage, sizeof(fx->stage), "%s/data/%s/stage", cfg.state_dir, s->id);
    *state = fx;
    return 0;
}

/* Stops the guest when it runs and reaps its init (the spawner clones it as
 * our child). */
static void
guest_down(struct fx *fx)
{
    if (!fx->rt.pid)
        return;
    fx->b->ops->kill(fx->b, &fx->spec, &fx->rt);
    while (waitpid(fx->rt.pid, NULL, 0) < 0 && errno == EINTR)
        ;
    fx->rt = (struct guest_runtime){0};
}

static int
teardown(void **state)
{
    struct fx *fx = *state;
    if (fx->peer) {
        guest_down(fx->peer);
        if (fx->b && fx->b->ops->destroy(fx->b, &fx->peer->spec) < 0)
            fprintf(stderr, "teardown: the second guest's destroy failed\n");
        free(fx->peer);
    }
    if (fx->b) {
        guest_down(fx);
        if (fx->b->ops->destroy(fx->b, &fx->spec) < 0)
            fprintf(stderr, "teardown: destroy failed, %s/state left\n", fx->dir);
        fx->b->ops->free(fx->b);
    }
    char cmd[PATH_MAX + 16];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", fx->dir);
    if (system(cmd) != 0)
        fprintf(stderr, "teardown: could not remove %s\n", fx->dir);
    /* destroy removes the guest's cgroup, not the node's directory above it:
     * this test's own prefix, in every hierarchy (v1 and v2 alike). */
    snprintf(cmd, sizeof(cmd),
             "rmdir /sys/fs/cgroup/*/vftest-lx%d /sys/fs/cgroup/vftest-lx%d 2>/dev/null",
             (int)getpid(), (int)getpid());
    (void)system(cmd);
    free(fx);
    return 0;
}

/* What a host reboot leaves of a created guest: its files, no mount. */
static void
reboot_mounts(struct fx *fx)
{
    assert_int_equal(rootfs_umount(fx->root), 0);
    assert_int_equal(idmap_umount(fx->lower), 0);
    assert_int_equal(disk_umount(fx->disk), 0);
    assert_int_equal(mountinfo_is_mountpoint(fx->disk), 0);
    assert_int_equal(mountinfo_is_mountpoint(fx->lower), 0);
    assert_int_equal(mountinfo_is_mountpoint(fx->root), 0);
}

/* A start after a reboot mounts the disk, the idmapped template and the
 * overlay again and runs the guest, twice in a row; a start with the mounts
 * there (warm) still works after it. */
static void
test_cold_start(void **state)
{
    struct fx *fx = *state;
    backend_t *b = fx->b;
    assert_int_equal(b->ops->create(b, &fx->spec, &fx->ids), 0);
    for (int i = 0; i < 2; i++) {
        reboot_mounts(fx);
        assert_int_equal(b->ops->start(b, &fx->spec, &fx->ids, &fx->rt), 0);
        assert_true(fx->rt.pid > 0);
        assert_int_equal(linux_backend_remade(b), i + 1);
        assert_int_equal(mountinfo_is_mountpoint(fx->disk), 1);
        assert_int_equal(mountinfo_is_mountpoint(fx->lower), 1);
        assert_int_equal(mountinfo_is_mountpoint(fx->root), 1);
        /* The guest's root is the overlay on the disk: its upper dir is there. */
        char upper[PATH_MAX + 8];
        snprintf(upper, sizeof(upper), "%s/upper", fx->disk);
        struct stat st;
        assert_int_equal(stat(upper, &st), 0);
        /* The conduit the root reached the child through is gone. */
        assert_int_equal(mountinfo_is_mountpoint(fx->stage), 0);
        guest_down(fx);
    }
    assert_int_equal(b->ops->start(b, &fx->spec, &fx->ids, &fx->rt), 0);
    assert_true(fx->rt.pid > 0);
    assert_int_equal(linux_backend_remade(b), 2);
}

/* A start right after the create (the mounts and the cgroup there) does not
 * make them again; one whose overlay alone went, or whose cgroup alone
 * went, does, and the guest runs on its disk each time. */
static void
test_warm_start(void **state)
{
    struct fx *fx = *state;
    backend_t *b = fx->b;
    char upper[PATH_MAX + 8], mark[PATH_MAX + 16];
    snprintf(upper, sizeof(upper), "%s/upper", fx->disk);
    snprintf(mark, sizeof(mark), "%s/mark", upper);

    assert_int_equal(b->ops->create(b, &fx->spec, &fx->ids), 0);
    assert_int_equal(b->ops->set_limits(b, &fx->spec, &fx->ids, &fx->rt), 0);
    assert_int_equal(b->ops->start(b, &fx->spec, &fx->ids, &fx->rt), 0);
    assert_true(fx->rt.pid > 0);
    assert_int_equal(linux_backend_remade(b), 0);
    guest_down(fx);

    /* The overlay alone: made again over the same disk. */
    int fd = open(mark, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
    assert_true(fd >= 0);
    close(fd);
    assert_int_equal(rootfs_umount(fx->root), 0);
    assert_int_equal(mountinfo_is_mountpoint(fx->root), 0);
    assert_int_equal(b->ops->start(b, &fx->spec, &fx->ids, &fx->rt), 0);
    assert_true(fx->rt.pid > 0);
    assert_int_equal(linux_backend_remade(b), 1);
    assert_int_equal(mountinfo_is_mountpoint(fx->root), 1);
    snprintf(mark, sizeof(mark), "%s/mark", fx->root);
    assert_int_equal(access(mark, F_OK), 0);
    guest_down(fx);

    /* The cgroup alone (destroy takes it with everything in it). */
    char cmd[2 * PATH_MAX];
    snprintf(cmd, sizeof(cmd),
             "for d in /sys/fs/cgroup/*/vftest-lx%d/%s /sys/fs/cgroup/vftest-lx%d/%s; do "
             "[ ! -d $d ] || rmdir $d || exit 1; done",
             (int)getpid(), fx->spec.id, (int)getpid(), fx->spec.id);
    assert_int_equal(system(cmd), 0);
    assert_int_equal(b->ops->start(b, &fx->spec, &fx->ids, &fx->rt), 0);
    assert_true(fx->rt.pid > 0);
    assert_int_equal(linux_backend_remade(b), 2);

    /* Running: a start is a no-op. */
    assert_int_equal(b->ops->start(b, &fx->spec, &fx->ids, &fx->rt), 0);
    assert_int_equal(linux_backend_remade(b), 2);
}

/* The processes in the guest's cgroups (every hierarchy), after up to 2 s
 * for them to go: a console reader ends with its pipe. */
static size_t
guest_procs(struct fx *fx)
{
    char cmd[512];
    snprintf(cmd, sizeof(cmd),
             "cat /sys/fs/cgroup/*/vftest-lx%d/%s/cgroup.procs "
             "/sys/fs/cgroup/vftest-lx%d/%s/cgroup.procs 2>/dev/null | wc -l",
             (int)getpid(), fx->spec.id, (int)getpid(), fx->spec.id);
    size_t n = 0;
    for (int i = 0; i < 200; i++) {
        FILE *p = popen(cmd, "r");
        assert_non_null(p);
        assert_int_equal(fscanf(p, "%zu", &n), 1);
        pclose(p);
        if (n == 0)
            break;
        usleep(10000);
    }
    return n;
}

/* A cold start whose disk cannot be attached (its claim is held: here by the
 * test, as by a loop device) fails with the disk's error; no loop device, no
 * overlay and no process of the guest stay (its init is cloned before the
 * mounts), and the next start, with the claim free, works. */
static void
test_cold_start_disk_busy(void **state)
{
    struct fx *fx = *state;
    backend_t *b = fx->b;
    assert_int_equal(b->ops->create(b, &fx->spec, &fx->ids), 0);
    reboot_mounts(fx);

    int fd = open(fx->image, O_RDWR | O_CLOEXEC);
    assert_true(fd >= 0);
    struct flock fl = {.l_type = F_WRLCK, .l_whence = SEEK_SET};
    assert_int_equal(fcntl(fd, F_OFD_SETLK, &fl), 0);
    assert_int_equal(b->ops->start(b, &fx->spec, &fx->ids, &fx->rt), -EBUSY);
    assert_int_equal(fx->rt.pid, 0);
    assert_int_equal(mountinfo_is_mountpoint(fx->disk), 0);
    assert_int_equal(mountinfo_is_mountpoint(fx->root), 0);
    assert_int_equal(disk_find_loop(fx->image, NULL, 0), -ENOENT);
    /* The idmapped template was mounted while the disk's attach still
     * waited for its claim: it does not wait for the disk (start_cold). The
     * next start uses it as it is. */
    assert_int_equal(mountinfo_is_mountpoint(fx->lower), 1);
    /* The child cloned before the mounts was killed and reaped, and the
     * conduit taken down. */
    assert_int_equal(guest_procs(fx), 0);
    assert_int_equal(mountinfo_is_mountpoint(fx->stage), 0);
    close(fd);

    assert_int_equal(b->ops->start(b, &fx->spec, &fx->ids, &fx->rt), 0);
    assert_true(fx->rt.pid > 0);
    assert_int_equal(mountinfo_is_mountpoint(fx->root), 1);
}

/* A cold start mounts the disk from its first step on, beside the
 * cgroup, the conduit and the spawner's clone: here the conduit cannot be
 * made (a file is in its place), so the start fails with that error before
 * any child is cloned, and the disk, mounted meanwhile, is left mounted (as
 * a create that fails after its mounts leaves them); the next start uses it. */
static void
test_cold_start_disk_first(void **state)
{
    struct fx *fx = *state;
    backend_t *b = fx->b;
    assert_int_equal(b->ops->create(b, &fx->spec, &fx->ids), 0);
    reboot_mounts(fx);

    assert_true(rmdir(fx->stage) == 0 || errno == ENOENT); /* a create makes none */
    int fd = open(fx->stage, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
    assert_true(fd >= 0);
    close(fd);
    assert_int_equal(b->ops->start(b, &fx->spec, &fx->ids, &fx->rt), -ENOTDIR);
    assert_int_equal(fx->rt.pid, 0);
    assert_int_equal(guest_procs(fx), 0);
    assert_int_equal(mountinfo_is_mountpoint(fx->disk), 1);
    assert_int_equal(mountinfo_is_mountpoint(fx->root), 0);

    assert_int_equal(unlink(fx->stage), 0);
    assert_int_equal(b->ops->start(b, &fx->spec, &fx->ids, &fx->rt), 0);
    assert_true(fx->rt.pid > 0);
    assert_int_equal(mountinfo_is_mountpoint(fx->root), 1);
    assert_int_equal(mountinfo_is_mountpoint(fx->stage), 0);
}

/* A cold start mounts the disk before it reads the image's superblock
 * (start_cold_disk): an image whose superblock is gone fails that mount and
 * is made again, as a create makes it, and the guest starts on the new disk. */
static void
test_cold_start_broken_image(void **state)
{
    struct fx *fx = *state;
    backend_t *b = fx->b;
    char mark[PATH_MAX + 16];
    assert_int_equal(b->ops->create(b, &fx->spec, &fx->ids), 0);
    snprintf(mark, sizeof(mark), "%s/upper/mark", fx->disk);
    int fd = open(mark, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
    assert_true(fd >= 0);
    close(fd);
    reboot_mounts(fx);

    static const char zero[1024];
    fd = open(fx->image, O_WRONLY | O_CLOEXEC);
    assert_true(fd >= 0);
    assert_int_equal(pwrite(fd, zero, sizeof(zero), 1024), (ssize_t)sizeof(zero));
    assert_int_equal(fsync(fd), 0);
    close(fd);
    assert_int_equal(b->ops->start(b, &fx->spec, &fx->ids, &fx->rt), 0);
    assert_true(fx->rt.pid > 0);
    assert_int_equal(mountinfo_is_mountpoint(fx->disk), 1);
    assert_int_equal(mountinfo_is_mountpoint(fx->root), 1);
    assert_int_equal(access(mark, F_OK), -1);
    struct disk_info di;
    assert_int_equal(disk_info(fx->image, &di), 0);
}

/* An image replaced by something that is not the guest's file (a host
 * operator's mistake, or a restore gone wrong): a symlink to another ext4
 * image, a FIFO, a character device. A cold start fails, saying so, mounts
 * nothing, leaves no process of the guest, and neither follows the symlink
 * nor writes what it points at or the device; the image back, it starts.
 * The FIFO hung the start: the superblock's read (disk_info) opened it for
 * reading and waited for a writer. */
static void
test_cold_start_image_replaced(void **state)
{
    struct fx *fx = *state;
    backend_t *b = fx->b;
    char saved[PATH_MAX + 8], other[PATH_MAX + 8];
    snprintf(saved, sizeof(saved), "%s.saved", fx->image);
    snprintf(other, sizeof(other), "%s/other.img", fx->dir);
    assert_int_equal(b->ops->create(b, &fx->spec, &fx->ids), 0);
    reboot_mounts(fx);
    assert_int_equal(rename(fx->image, saved), 0);
    char cmd[3 * PATH_MAX];
    snprintf(cmd, sizeof(cmd), "cp --sparse=always '%s' '%s'", saved, other);
    assert_int_equal(system(cmd), 0);
    struct stat before;
    assert_int_equal(stat(other, &before), 0);

    for (int kind = 0; kind < 3; kind++) {
        if (kind == 0)
            assert_int_equal(symlink(other, fx->image), 0);
        else if (kind == 1)
            assert_int_equal(mkfifo(fx->image, 0600), 0);
        else
            assert_int_equal(mknod(fx->image, S_IFCHR | 0600, makedev(1, 3)), 0); /* null */
        alarm(30); /* a FIFO opened for reading with no writer would block */
        int r = b->ops->start(b, &fx->spec, &fx->ids, &fx->rt);
        alarm(0);
        assert_int_equal(r, -EINVAL);
        assert_non_null(strstr(errtext_get(), "is not a regular file"));
        assert_int_equal(fx->rt.pid, 0);
        assert_int_equal(mountinfo_is_mountpoint(fx->disk), 0);
        assert_int_equal(mountinfo_is_mountpoint(fx->root), 0);
        assert_int_equal(mountinfo_is_mountpoint(fx->stage), 0);
        assert_int_equal(guest_procs(fx), 0);
        assert_int_equal(disk_find_loop(other, NULL, 0), -ENOENT);
        struct stat st;
        assert_int_equal(lstat(fx->image, &st), 0);
        assert_true(kind != 0 || S_ISLNK(st.st_mode));
        assert_true(kind != 1 || S_ISFIFO(st.st_mode));
        assert_true(kind != 2 || S_ISCHR(st.st_mode));
        assert_int_equal(unlink(fx->image), 0);
    }
    struct stat after;
    assert_int_equal(stat(other, &after), 0);
    assert_int_equal(after.st_mtim.tv_sec, before.st_mtim.tv_sec);
    assert_int_equal(after.st_mtim.tv_nsec, before.st_mtim.tv_nsec);
    assert_int_equal(rename(saved, fx->image), 0);
    assert_int_equal(b->ops->start(b, &fx->spec, &fx->ids, &fx->rt), 0);
    assert_true(fx->rt.pid > 0);
}

/* A second guest of fx's backend (fx->peer, which the teardown destroys):
 * its own id, name, uid block and paths. */
static struct fx *
peer_of(struct fx *fx)
{
    struct fx *p = xcalloc(1, sizeof(*p));
    *p = *fx;
    p->peer = NULL;
    p->rt = (struct guest_runtime){0};
    snprintf(p->spec.id, sizeof(p->spec.id), "00000000-0000-4000-8000-2%011x", (unsigned)getpid());
    snprintf(p->spec.name, sizeof(p->spec.name), "lxstart2-%u", (unsigned)getpid());
    p->ids.uid_base = fx->ids.uid_base + BACKEND_UID_BLOCK;
    const char *id = p->spec.id;
    snprintf(p->disk, sizeof(p->disk), "%s/state/data/%s/disk", fx->dir, id);
    snprintf(p->lower, sizeof(p->lower), "%s/state/data/%s/lower", fx->dir, id);
    snprintf(p->root, sizeof(p->root), "%s/state/data/%s/root", fx->dir, id);
    snprintf(p->image, sizeof(p->image), "%s/state/data/%s/disk.img", fx->dir, id);
    snprintf(p->stage, sizeof(p->stage), "%s/state/data/%s/stage", fx->dir, id);
    fx->peer = p;
    return p;
}

/* One of two cold starts let go at the same moment. */
struct cold_race {
    struct fx *fx;         /* its guest */
    pthread_barrier_t *go; /* both threads wait here */
    int result;            /* start's */
};

static void *
cold_race_run(void *arg)
{
    struct cold_race *c = arg;
    pthread_barrier_wait(c->go);
    c->result = c->fx->b->ops->start(c->fx->b, &c->fx->spec, &c->fx->ids, &c->fx->rt);
    return NULL;
}

/* The name the guest's root holds in /mark (its disk's upper/mark), read
 * through its init's root. */
static void
root_mark(const struct fx *fx, char *buf, size_t n)
{
    char path[64];
    snprintf(path, sizeof(path), "/proc/%d/root/mark", (int)fx->rt.pid);
    buf[0] = '\0';
    FILE *f = fopen(path, "re");
    if (!f)
        return;
    if (!fgets(buf, (int)n, f))
        buf[0] = '\0';
    fclose(f);
}

/* Two guests of one backend started cold at the same moment (after a
 * reboot the agent starts every autostart guest at once): each disk thread,
 * conduit and root_later child is its own; both start, each init runs on
 * its own disk, no conduit stays mounted, and again for several rounds; and
 * when one's disk cannot be attached, it fails alone. */
static void
test_cold_start_two_at_once(void **state)
{
    struct fx *fx = *state;
    backend_t *b = fx->b;
    struct fx *px = peer_of(fx);
    struct fx *g[2] = {fx, px};
    for (int i = 0; i < 2; i++) {
        assert_int_equal(b->ops->create(b, &g[i]->spec, &g[i]->ids), 0);
        char mark[PATH_MAX + 16];
        snprintf(mark, sizeof(mark), "%s/upper/mark", g[i]->disk);
        FILE *f = fopen(mark, "we");
        assert_non_null(f);
        fputs(g[i]->spec.name, f);
        fclose(f);
    }
    for (int round = 0; round < 4; round++) {
        for (int i = 0; i < 2; i++)
            reboot_mounts(g[i]);
        pthread_barrier_t go;
        pthread_barrier_init(&go, NULL, 2);
        struct cold_race c[2] = {{.fx = fx, .go = &go}, {.fx = px, .go = &go}};
        pthread_t t[2];
        for (int i = 0; i < 2; i++)
            assert_int_equal(pthread_create(&t[i], NULL, cold_race_run, &c[i]), 0);
        for (int i = 0; i < 2; i++)
            pthread_join(t[i], NULL);
        pthread_barrier_destroy(&go);
        for (int i = 0; i < 2; i++) {
            assert_int_equal(c[i].result, 0);
            assert_true(g[i]->rt.pid > 0);
            char got[128];
            root_mark(g[i], got, sizeof(got));
            assert_string_equal(got, g[i]->spec.name);
            assert_int_equal(mountinfo_is_mountpoint(g[i]->root), 1);
            assert_int_equal(mountinfo_is_mountpoint(g[i]->stage), 0);
        }
        assert_true(fx->rt.pid != px->rt.pid);
        for (int i = 0; i < 2; i++)
            guest_down(g[i]);
    }

    /* The second's disk cannot be attached (its claim held, as by a loop
     * device): it fails alone, its child killed, and the first runs on. */
    for (int i = 0; i < 2; i++)
        reboot_mounts(g[i]);
    int fd = open(px->image, O_RDWR | O_CLOEXEC);
    assert_true(fd >= 0);
    struct flock fl = {.l_type = F_WRLCK, .l_whence = SEEK_SET};
    assert_int_equal(fcntl(fd, F_OFD_SETLK, &fl), 0);
    pthread_barrier_t go;
    pthread_barrier_init(&go, NULL, 2);
    struct cold_race c[2] = {{.fx = fx, .go = &go}, {.fx = px, .go = &go}};
    pthread_t t[2];
    for (int i = 0; i < 2; i++)
        assert_int_equal(pthread_create(&t[i], NULL, cold_race_run, &c[i]), 0);
    for (int i = 0; i < 2; i++)
        pthread_join(t[i], NULL);
    pthread_barrier_destroy(&go);
    close(fd);
    assert_int_equal(c[0].result, 0);
    assert_int_equal(c[1].result, -EBUSY);
    assert_int_equal(px->rt.pid, 0);
    assert_int_equal(guest_procs(px), 0);
    assert_int_equal(mountinfo_is_mountpoint(px->stage), 0);
    char got[128];
    root_mark(fx, got, sizeof(got));
    assert_string_equal(got, fx->spec.name);
    assert_int_equal(kill(fx->rt.pid, 0), 0);
}

/* What an agent that died in a cold start (start_cold) between the root's
 * bind into the conduit and the conduit's take-down leaves: data/<id>/stage
 * mounted, shared, with the guest's overlay bound at stage/root. */
static void
stale_conduit(struct fx *fx)
{
    char at[PATH_MAX + 8];
    snprintf(at, sizeof(at), "%s/root", fx->stage);
    assert_int_equal(rootfs_conduit_open(fx->stage), 0);
    assert_int_equal(rootfs_conduit_fill(fx->stage, fx->root), 0);
    assert_int_equal(mountinfo_is_mountpoint(fx->stage), 1);
    assert_int_equal(mountinfo_is_mountpoint(at), 1);
}

/* A stopped guest whose agent died in a cold start: the conduit's bind of
 * the overlay held the disk's superblock and loop device, so the offline
 * resize's unmount of the disk waited 10 s for the loop device and failed
 * with EBUSY, and a rebuild or a move's id shift left the old overlay bound
 * in it. Each takes the conduit down first now, and leaves no mount under
 * data/<id>/stage. */
static void
test_stale_conduit(void **state)
{
    struct fx *fx = *state;
    backend_t *b = fx->b;
    char mark[PATH_MAX + 16];
    assert_int_equal(b->ops->create(b, &fx->spec, &fx->ids), 0);
    assert_int_equal(b->ops->set_limits(b, &fx->spec, &fx->ids, &fx->rt), 0);

    /* Resize (offline: the guest is stopped). */
    stale_conduit(fx);
    fx->spec.limits.disk = 96 * MiB;
    assert_int_equal(b->ops->set_limits(b, &fx->spec, &fx->ids, &fx->rt), 0);
    assert_int_equal(mountinfo_is_mountpoint(fx->stage), 0);
    struct disk_info di;
    assert_int_equal(disk_info(fx->image, &di), 0);
    assert_int_equal((uint64_t)di.blocks * di.block_size, 96 * MiB);
    assert_int_equal(mountinfo_is_mountpoint(fx->root), 1);

    /* Rebuild: the guest's files go, the old overlay with them. */
    snprintf(mark, sizeof(mark), "%s/mark", fx->root);
    int fd = open(mark, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
    assert_true(fd >= 0);
    close(fd);
    stale_conduit(fx);
    fx->spec.rebuild = 1;
    assert_int_equal(b->ops->set_limits(b, &fx->spec, &fx->ids, &fx->rt), 0);
    assert_int_equal(mountinfo_is_mountpoint(fx->stage), 0);
    assert_int_equal(access(mark, F_OK), -1);

    /* A move's id shift of the files (the root unmounted under it). */
    stale_conduit(fx);
    assert_int_equal(b->ops->migrate_ids(b, &fx->spec, &fx->ids), 0);
    assert_int_equal(mountinfo_is_mountpoint(fx->stage), 0);

    /* And the start after all of it, cold. */
    reboot_mounts(fx);
    assert_int_equal(b->ops->start(b, &fx->spec, &fx->ids, &fx->rt), 0);
    assert_true(fx->rt.pid > 0);
    assert_int_equal(mountinfo_is_mountpoint(fx->stage), 0);
}

/* The backend holds a detached clone of each template to make guests' lower
 * layers from (idmap_tree); a template replaced by a rename is the new
 * directory for the next guest's lower layer, not the old one the clone
 * showed. */
static void
test_template_replaced(void **state)
{
    struct fx *fx = *state;
    backend_t *b = fx->b;
    char tpl[PATH_MAX], old[PATH_MAX + 8], cmd[4 * PATH_MAX], mark[PATH_MAX + 16];
    snprintf(tpl, sizeof(tpl), "%s/templates/busybox", fx->dir);
    snprintf(old, sizeof(old), "%s/templates/busybox.old", fx->dir);
    assert_int_equal(b->ops->create(b, &fx->spec, &fx->ids), 0);
    snprintf(mark, sizeof(mark), "%s/new-template", fx->lower);
    assert_int_equal(access(mark, F_OK), -1);
    reboot_mounts(fx);

    snprintf(cmd, sizeof(cmd), "cp -a '%s' '%s.new' && touch '%s.new/new-template'", tpl, tpl, tpl);
    assert_int_equal(system(cmd), 0);
    assert_int_equal(rename(tpl, old), 0);
    snprintf(cmd, sizeof(cmd), "%s.new", tpl);
    assert_int_equal(rename(cmd, tpl), 0);
    assert_int_equal(b->ops->start(b, &fx->spec, &fx->ids, &fx->rt), 0);
    assert_int_equal(access(mark, F_OK), 0);
}

/* The loop device attached to image, as `losetup -j` lists it ("" when none),
 * after up to 2 s for an autoclear to detach it. */
static void
loop_of(const char *image, char *out, size_t n)
{
    char cmd[PATH_MAX + 32];
    snprintf(cmd, sizeof(cmd), "losetup -j '%s'", image);
    for (int i = 0; i < 200; i++) {
        FILE *p = popen(cmd, "r");
        assert_non_null(p);
        if (!fgets(out, (int)n, p))
            out[0] = '\0';
        pclose(p);
        if (!out[0])
            return;
        usleep(10000);
    }
}

/* The template on a file system of its own (a loop-mounted ext4, as an
 * operator's template volume): once its only guest is destroyed, the
 * backend holds nothing of it, so that unmounting it releases the file
 * system and its loop device (attached with autoclear) detaches. While a
 * guest used it, the clone the backend held kept both alive after the
 * unmount until the agent exited. */
static void
test_template_released(void **state)
{
    struct fx *fx = *state;
    backend_t *b = fx->b;
    char tpl[PATH_MAX], src[PATH_MAX + 8], img[PATH_MAX + 8], cmd[8 * PATH_MAX], loop[256];
    snprintf(tpl, sizeof(tpl), "%s/templates/busybox", fx->dir);
    snprintf(src, sizeof(src), "%s/busybox.src", fx->dir);
    snprintf(img, sizeof(img), "%s/template.img", fx->dir);
    assert_int_equal(rename(tpl, src), 0);
    assert_int_equal(mkdir(tpl, 0755), 0);
    snprintf(cmd, sizeof(cmd),
             "truncate -s 32M '%s' && mkfs.ext4 -q '%s' && mount -o loop '%s' '%s' && "
             "cp -a '%s/.' '%s/'",
             img, img, img, tpl, src, tpl);
    int made = system(cmd);
    loop_of(img, loop, sizeof(loop));
    if (made != 0)
        umount2(tpl, MNT_DETACH);
    assert_int_equal(made, 0);
    assert_true(loop[0] != '\0');

    int created = b->ops->create(b, &fx->spec, &fx->ids);
    int destroyed = b->ops->destroy(b, &fx->spec);
    int unmounted = umount2(tpl, 0) < 0 ? -errno : 0;
    if (unmounted < 0)
        umount2(tpl, MNT_DETACH);
    assert_int_equal(created, 0);
    assert_int_equal(destroyed, 0);
    assert_int_equal(unmounted, 0);
    loop_of(img, loop, sizeof(loop));
    /* Failing here, the loop device detaches with the backend (teardown). */
    assert_string_equal(loop, "");
}

/* Owner of path (lstat), or -1. */
static long
owner_of(const char *path)
{
    struct stat st;
    return lstat(path, &st) == 0 ? (long)st.st_uid : -1;
}

/* A create sent again after the agent died in the first (no record kept the
 * block it picked) may come with another block: the template is mounted
 * again for it, the overlay over it, and the files the first attempt's guest
 * made (owned by the old block) are shifted into the new one. After a host
 * reboot (rebooted) only the files are left to shift. The same block again
 * changes nothing. */
static void
create_again(struct fx *fx, bool rebooted)
{
    backend_t *b = fx->b;
    struct guest_ids old = fx->ids, new = {fx->ids.uid_base + BACKEND_UID_BLOCK, BACKEND_UID_BLOCK};
    char path[PATH_MAX + 32];

    assert_int_equal(b->ops->create(b, &fx->spec, &old), 0);
    assert_int_equal(b->ops->start(b, &fx->spec, &old, &fx->rt), 0);
    guest_down(fx);
    /* What its root made while it ran: a file, and a directory of a user. */
    snprintf(path, sizeof(path), "%s/root/mine", fx->root);
    int fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
    assert_true(fd >= 0);
    assert_int_equal(fchown(fd, old.uid_base, old.uid_base), 0);
    close(fd);
    snprintf(path, sizeof(path), "%s/home/user", fx->root);
    assert_int_equal(mkdir(path, 0700), 0);
    assert_int_equal(chown(path, old.uid_base + 1000, old.uid_base + 1000), 0);
    /* The same block again: nothing changes. */
    assert_int_equal(b->ops->create(b, &fx->spec, &old), 0);
    assert_int_equal(owner_of(fx->lower), old.uid_base);
    snprintf(path, sizeof(path), "%s/upper/root/mine", fx->disk);
    assert_int_equal(owner_of(path), old.uid_base);
    if (rebooted)
        reboot_mounts(fx);

    assert_int_equal(b->ops->create(b, &fx->spec, &new), 0);
    assert_int_equal(mountinfo_is_mountpoint(fx->lower), 1);
    assert_int_equal(mountinfo_is_mountpoint(fx->root), 1);
    assert_int_equal(owner_of(fx->lower), new.uid_base);
    snprintf(path, sizeof(path), "%s/bin/busybox", fx->root);
    assert_int_equal(owner_of(path), new.uid_base);
    snprintf(path, sizeof(path), "%s/upper", fx->disk);
    assert_int_equal(owner_of(path), new.uid_base);
    snprintf(path, sizeof(path), "%s/upper/root/mine", fx->disk);
    assert_int_equal(owner_of(path), new.uid_base);
    snprintf(path, sizeof(path), "%s/root/mine", fx->root);
    assert_int_equal(owner_of(path), new.uid_base);
    snprintf(path, sizeof(path), "%s/home/user", fx->root);
    assert_int_equal(owner_of(path), new.uid_base + 1000);
    /* The guest runs in the new block on them. */
    fx->ids = new;
    assert_int_equal(b->ops->start(b, &fx->spec, &fx->ids, &fx->rt), 0);
    assert_true(fx->rt.pid > 0);
    snprintf(path, sizeof(path), "/proc/%d/uid_map", (int)fx->rt.pid);
    FILE *f = fopen(path, "re");
    assert_non_null(f);
    unsigned inside, host, count;
    assert_int_equal(fscanf(f, "%u %u %u", &inside, &host, &count), 3);
    fclose(f);
    assert_int_equal(host, new.uid_base);
}

static void
test_create_again_other_block(void **state)
{
    create_again(*state, false);
}

static void
test_create_again_after_reboot(void **state)
{
    create_again(*state, true);
}

/* A cold start given another block than the one the guest's files are in
 * (the agent never does: it starts a guest with the block of the create
 * that made or shifted its files, and records a block only after that
 * create) gives them its block, as a create does, rather than running the
 * template in the new block and the guest's own files as "nobody": it
 * checked the idmapped template's owner and not the upper layer's. */
static void
test_cold_start_other_block(void **state)
{
    struct fx *fx = *state;
    backend_t *b = fx->b;
    struct guest_ids old = fx->ids, new = {fx->ids.uid_base + BACKEND_UID_BLOCK, BACKEND_UID_BLOCK};
    char path[PATH_MAX + 32];

    assert_int_equal(b->ops->create(b, &fx->spec, &old), 0);
    snprintf(path, sizeof(path), "%s/root/mine", fx->root);
    int fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
    assert_true(fd >= 0);
    assert_int_equal(fchown(fd, old.uid_base, old.uid_base), 0);
    close(fd);
    reboot_mounts(fx);
    fx->ids = new;
    assert_int_equal(b->ops->start(b, &fx->spec, &fx->ids, &fx->rt), 0);
    assert_true(fx->rt.pid > 0);
    assert_int_equal(owner_of(fx->lower), new.uid_base);
    snprintf(path, sizeof(path), "%s/upper", fx->disk);
    assert_int_equal(owner_of(path), new.uid_base);
    snprintf(path, sizeof(path), "%s/upper/root/mine", fx->disk);
    assert_int_equal(owner_of(path), new.uid_base);
}

/* An agent killed in a create between the image's making and its size (the
 * file made, empty) left an empty disk.img: the create sent again makes the
 * disk and the guest runs on it. It failed with "size must be 16M..256T"
 * (disk_create took the empty file for an image of another size). */
static void
test_create_again_empty_image(void **state)
{
    struct fx *fx = *state;
    backend_t *b = fx->b;
    char dir[PATH_MAX];

    snprintf(dir, sizeof(dir), "%s/state/data/%s", fx->dir, fx->spec.id);
    assert_int_equal(fs_mkdir_p(dir, 0700), 0);
    int fd = open(fx->image, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    assert_true(fd >= 0);
    close(fd);
    errtext_clear();
    int r = b->ops->create(b, &fx->spec, &fx->ids);
    if (r < 0)
        fail_msg("the create sent again: %s (%s)", strerror(-r), errtext_get());
    struct stat st;
    assert_int_equal(stat(fx->image, &st), 0);
    assert_int_equal(st.st_size, fx->spec.limits.disk);
    assert_int_equal(b->ops->start(b, &fx->spec, &fx->ids, &fx->rt), 0);
    assert_true(fx->rt.pid > 0);
}

/* The file of the guest's cgroup that freezes it (v1 freezer.state, v2
 * cgroup.freeze) into out, and the value that freezes it. */
static const char *
freeze_file(struct fx *fx, char *out, size_t n)
{
    bool v2 = cgroup_mgr_mode(lb(fx->b)->cgroups) == CGROUP_V2;
    snprintf(out, n, "/sys/fs/cgroup/%svftest-lx%d/%s/%s", v2 ? "" : "freezer/", (int)getpid(),
             fx->spec.id, v2 ? "cgroup.freeze" : "freezer.state");
    return v2 ? "1" : "FROZEN";
}

/* What an agent killed in a kill between its freeze and its thaw leaves:
 * the guest's cgroup frozen (written as the kill writes it). */
static void
freeze_as_kill(struct fx *fx)
{
    char path[PATH_MAX];
    const char *value = freeze_file(fx, path, sizeof(path));
    int fd = open(path, O_WRONLY | O_CLOEXEC);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, value, strlen(value)), (ssize_t)strlen(value));
    close(fd);
}

static char stalled_path[PATH_MAX]; /* the freezer file the alarm thaws */
static volatile sig_atomic_t stalled;

/* The start hung: the test thaws the guest itself, so that the start
 * returns and the test fails with the teardown run. */
static void
on_stall(int sig)
{
    (void)sig;
    stalled = 1;
    int fd = open(stalled_path, O_WRONLY | O_CLOEXEC);
    if (fd >= 0) {
        (void)!write(fd, "THAWED", 6);
        close(fd);
    }
}

/* A start into a v1 guest a kill cut short left frozen thaws its cgroup
 * first. Its init joins its cgroups itself, froze there, and the start
 * waited for it for good (here: until the test's alarm thawed it after 20
 * s). On v2 the spawner thaws it (spawn_cgroup_test test_cgroup2_frozen). */
static void
test_start_frozen(void **state)
{
    struct fx *fx = *state;
    backend_t *b = fx->b;

    if (cgroup_mgr_mode(lb(b)->cgroups) == CGROUP_V2)
        skip();
    assert_int_equal(b->ops->create(b, &fx->spec, &fx->ids), 0);
    freeze_as_kill(fx);
    (void)freeze_file(fx, stalled_path, sizeof(stalled_path));
    stalled = 0;
    struct sigaction sa = {.sa_handler = on_stall}, old;
    assert_int_equal(sigaction(SIGALRM, &sa, &old), 0);
    alarm(20);
    int r = b->ops->start(b, &fx->spec, &fx->ids, &fx->rt);
    alarm(0);
    sigaction(SIGALRM, &old, NULL);
    assert_false(stalled);
    assert_int_equal(r, 0);
    assert_true(fx->rt.pid > 0);
    assert_int_equal(lx_migrate_frozen(b, &fx->spec), 0);
}

/* What the restarted agent does with a frozen guest (thaw_stray): one a
 * kill cut short left frozen is thawed; one a move froze is kept frozen
 * (the move goes on from there) until the move's own thaw, which takes its
 * mark away; a mark left on a guest that is not frozen goes. */
static void
test_thaw_stray(void **state)
{
    struct fx *fx = *state;
    backend_t *b = fx->b;
    char mark[PATH_MAX + 16];

    snprintf(mark, sizeof(mark), "%s/state/data/%s/frozen.move", fx->dir, fx->spec.id);
    assert_int_equal(b->ops->create(b, &fx->spec, &fx->ids), 0);
    assert_int_equal(b->ops->start(b, &fx->spec, &fx->ids, &fx->rt), 0);
    assert_int_equal(b->ops->thaw_stray(b, &fx->spec), 0);

    freeze_as_kill(fx);
    for (int i = 0; i < 1000 && lx_migrate_frozen(b, &fx->spec) != 1; i++)
        usleep(2000);
    assert_int_equal(lx_migrate_frozen(b, &fx->spec), 1);
    assert_int_equal(b->ops->thaw_stray(b, &fx->spec), 1);
    assert_int_equal(lx_migrate_frozen(b, &fx->spec), 0);

    assert_int_equal(b->ops->migrate_freeze(b, &fx->spec, &fx->rt, true), 0);
    assert_int_equal(access(mark, F_OK), 0);
    assert_int_equal(b->ops->thaw_stray(b, &fx->spec), BACKEND_MOVE_FROZEN);
    assert_int_equal(lx_migrate_frozen(b, &fx->spec), 1);
    assert_int_equal(b->ops->migrate_freeze(b, &fx->spec, &fx->rt, false), 0);
    assert_int_equal(lx_migrate_frozen(b, &fx->spec), 0);
    assert_int_equal(access(mark, F_OK), -1);

    int fd = open(mark, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
    assert_true(fd >= 0);
    close(fd);
    assert_int_equal(b->ops->thaw_stray(b, &fx->spec), 0);
    assert_int_equal(access(mark, F_OK), -1);
}

static size_t
strv_len_free(char **v)
{
    size_t n = 0;
    while (v[n])
        free(v[n++]);
    free(v);
    return n;
}

/* The guests the backend has traces of (a cgroup), which the agent's
 * start-up kills what runs of when its store has no record: a created guest
 * is listed, by its id alone, and a destroyed one no more. */
static void
test_list(void **state)
{
    struct fx *fx = *state;
    backend_t *b = fx->b;
    char **ids = NULL;

    /* Another node's guest on this kernel, under a prefix it shares with
     * ours: a cgroup, and no directory in our state directory. An agent
     * that took it for its own unrecorded guest killed it at start. */
    char other[64];
    snprintf(other, sizeof(other), "00000000-0000-4000-8000-3%011x", (unsigned)getpid());
    assert_int_equal(cgroup_create(lb(b)->cgroups, other), 0);
    assert_int_equal(b->ops->list(b, &ids), 0);
    assert_int_equal(strv_len_free(ids), 0);
    assert_int_equal(b->ops->create(b, &fx->spec, &fx->ids), 0);
    assert_int_equal(b->ops->list(b, &ids), 0);
    assert_non_null(ids[0]);
    assert_string_equal(ids[0], fx->spec.id);
    assert_int_equal(strv_len_free(ids), 1);
    assert_int_equal(b->ops->destroy(b, &fx->spec), 0);
    assert_int_equal(b->ops->list(b, &ids), 0);
    assert_int_equal(strv_len_free(ids), 0);
    assert_int_equal(cgroup_destroy(lb(b)->cgroups, other), 0);
}

int
main(void)
{
    if (geteuid() != 0 || access("/bin/busybox", X_OK) != 0 || !getenv("VFLEET_SOURCE_DIR") ||
        access("/dev/loop-control", F_OK) != 0) {
        fprintf(stderr, "linux_backend_test: needs root, loop devices, /bin/busybox and "
                        "VFLEET_SOURCE_DIR, skipping\n");
        return 77;
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_cold_start, setup, teardown),
        cmocka_unit_test_setup_teardown(test_warm_start, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cold_start_disk_busy, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cold_start_disk_first, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cold_start_broken_image, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cold_start_two_at_once, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cold_start_image_replaced, setup, teardown),
        cmocka_unit_test_setup_teardown(test_template_replaced, setup, teardown),
        cmocka_unit_test_setup_teardown(test_template_released, setup, teardown),
        cmocka_unit_test_setup_teardown(test_stale_conduit, setup, teardown),
        cmocka_unit_test_setup_teardown(test_create_again_other_block, setup, teardown),
        cmocka_unit_test_setup_teardown(test_create_again_after_reboot, setup, teardown),
        cmocka_unit_test_setup_teardown(test_create_again_empty_image, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cold_start_other_block, setup, teardown),
        cmocka_unit_test_setup_teardown(test_list, setup, teardown),
        cmocka_unit_test_setup_teardown(test_start_frozen, setup, teardown),
        cmocka_unit_test_setup_teardown(test_thaw_stray, setup, teardown),
    };
    if (getenv("VFLEET_TEST_ONLY") && *getenv("VFLEET_TEST_ONLY")) /* vm_units.sh's few */
        cmocka_set_test_filter(getenv("VFLEET_TEST_ONLY"));
    return cmocka_run_group_tests(tests, NULL, NULL);
}
