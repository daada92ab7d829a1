/* Tests for node/linux/idshift: a tree owned by one block of host ids (as a
 * guest's upper directory arrives from another node) shifted into another
 * block: owners, groups, set-id bits, file capabilities (version 3 root id),
 * ACL ids, symlinks not followed, ids outside the block left, a second run a
 * no-op, and a privileged tree (ids 0..) given a block. Needs root (chown);
 * skipped (77) otherwise. */
#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/capability.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>
#include <cmocka.h>

#include "node/linux/idshift.h"

#define BLOCK 65536u
#define OLD   (0x10000000u + 3 * BLOCK)
#define NEW   (0x10000000u + 7 * BLOCK)

static char dir[128];

static void
p(char *out, size_t n, const char *name)
{
    snprintf(out, n, "%s/%s", dir, name);
}

static void
make(const char *name, mode_t mode, uid_t uid, gid_t gid)
{
    char f[256];
    p(f, sizeof(f), name);
    int fd = open(f, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
    assert_true(fd >= 0);
    close(fd);
    assert_int_equal(chown(f, uid, gid), 0);
    assert_int_equal(chmod(f, mode), 0);
}

static void
owner_is(const char *name, uid_t uid, gid_t gid)
{
    char f[256];
    struct stat st;
    p(f, sizeof(f), name);
    assert_int_equal(lstat(f, &st), 0);
    assert_int_equal(st.st_uid, uid);
    assert_int_equal(st.st_gid, gid);
}

static int
setup(void **state)
{
    (void)state;
    if (geteuid() != 0) {
        fprintf(stderr, "idshift_test: needs root, skipping\n");
        exit(77);
    }
    snprintf(dir, sizeof(dir), "/tmp/idshift-test-XXXXXX");
    assert_non_null(mkdtemp(dir));
    return 0;
}

static int
teardown(void **state)
{
    (void)state;
    char cmd[256];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    return system(cmd) == 0 ? 0 : -1;
}

static void
test_shift(void **state)
{
    (void)state;
    char f[256], g[256];

    assert_int_equal(chown(dir, OLD, OLD), 0);
    p(f, sizeof(f), "etc");
    assert_int_equal(mkdir(f, 0755), 0);
    assert_int_equal(chown(f, OLD, OLD), 0);
    make("etc/shadow", 0640, OLD, OLD + 42);
    make("suid", 04755, OLD, OLD);
    make("user", 0644, OLD + 1000, OLD + 1000);
    make("foreign", 0644, 12345, 12345); /* outside the block: left */
    p(f, sizeof(f), "link");
    assert_int_equal(symlink("/etc/passwd", f), 0);
    assert_int_equal(lchown(f, OLD + 5, OLD + 5), 0);

    /* A version 3 file capability whose root id is the old block's root. */
    struct vfs_ns_cap_data cap = {0};
    cap.magic_etc = htole32(VFS_CAP_REVISION_3 | VFS_CAP_FLAGS_EFFECTIVE);
    cap.data[0].permitted = htole32(1u << CAP_NET_BIND_SERVICE);
    cap.rootid = htole32(OLD);
    make("capped", 0755, OLD, OLD);
    p(f, sizeof(f), "capped");
    assert_int_equal(setxattr(f, "security.capability", &cap, sizeof(cap), 0), 0);

    /* An ACL naming user OLD+1000 and group OLD+7. */
    uint8_t acl[4 + 6 * 8] = {0};
    uint32_t v = htole32(2);
    memcpy(acl, &v, 4);
    struct {
        uint16_t tag, perm;
        uint32_t id;
    } ent[6] = {{0x01, 6, 0},       {0x02, 4, OLD + 1000}, {0x04, 4, 0},
                {0x08, 4, OLD + 7}, {0x10, 6, 0},          {0x20, 4, 0}};
    for (int i = 0; i < 6; i++) {
        ent[i].tag = htole16(ent[i].tag);
        ent[i].perm = htole16(ent[i].perm);
        ent[i].id = htole32(ent[i].id);
    }
    memcpy(acl + 4, ent, sizeof(ent));
    p(g, sizeof(g), "etc/shadow");
    int acl_ok = setxattr(g, "system.posix_acl_access", acl, sizeof(acl), 0) == 0;

    assert_int_equal(idshift_tree(dir, NEW, BLOCK), 1);
    owner_is(".", NEW, NEW);
    owner_is("etc", NEW, NEW);
    owner_is("etc/shadow", NEW, NEW + 42);
    owner_is("user", NEW + 1000, NEW + 1000);
    owner_is("foreign", 12345, 12345);
    owner_is("link", NEW + 5, NEW + 5);
    /* The link's target was not touched (it is the host's /etc/passwd). */
    struct stat st;
    assert_int_equal(stat("/etc/passwd", &st), 0);
    assert_int_equal(st.st_uid, 0);
    p(f, sizeof(f), "suid");
    assert_int_equal(stat(f, &st), 0);
    assert_int_equal(st.st_mode & 07777, 04755);

    struct vfs_ns_cap_data back = {0};
    p(f, sizeof(f), "capped");
    assert_int_equal(getxattr(f, "security.capability", &back, sizeof(back)), sizeof(back));
    assert_int_equal(le32toh(back.rootid), NEW);
    assert_int_equal(le32toh(back.data[0].permitted), 1u << CAP_NET_BIND_SERVICE);

    if (acl_ok) {
        uint8_t got[sizeof(acl)];
        assert_int_equal(getxattr(g, "system.posix_acl_access", got, sizeof(got)), sizeof(got));
        int seen = 0;
        for (size_t off = 4; off < sizeof(got); off += 8) {
            uint16_t tag;
            uint32_t id;
            memcpy(&tag, got + off, 2);
            memcpy(&id, got + off + 4, 4);
            if (le16toh(tag) == 0x02)
                seen += le32toh(id) == NEW + 1000;
            if (le16toh(tag) == 0x08)
                seen += le32toh(id) == NEW + 7;
        }
        assert_int_equal(seen, 2);
    }

    /* Again: nothing to do. */
    assert_int_equal(idshift_tree(dir, NEW, BLOCK), 0);
    /* Back to the host's own ids (a privileged guest's), and a block again. */
    assert_int_equal(idshift_tree(dir, 0, BLOCK), 1);
    owner_is("etc/shadow", 0, 42);
    owner_is("foreign", 12345, 12345);
    assert_int_equal(idshift_tree(dir, OLD, BLOCK), 1);
    owner_is("user", OLD + 1000, OLD + 1000);
    /* foreign (12345) was in block 0 this time: it moves with it. */
    owner_is("foreign", OLD + 12345, OLD + 12345);
}

static void
test_base_of(void **state)
{
    (void)state;
    uint32_t base = 1;

    /* After test_shift: every entry is in OLD's block but "foreign". */
    assert_int_equal(idshift_base_of(dir, BLOCK, &base), 0);
    assert_int_equal(base, OLD);
    assert_int_equal(chown(dir, 0, 0), 0); /* the root itself does not count */
    assert_int_equal(idshift_base_of(dir, BLOCK, &base), 0);
    assert_int_equal(base, OLD);
    /* A whiteout (0/0 character device, host root's) does not count. */
    char w[256];
    p(w, sizeof(w), "gone");
    assert_int_equal(mknod(w, S_IFCHR | 0000, 0), 0);
    assert_int_equal(idshift_base_of(dir, BLOCK, &base), 0);
    assert_int_equal(base, OLD);
    make("low", 0644, 33, 33);
    assert_int_equal(idshift_base_of(dir, BLOCK, &base), 0);
    assert_int_equal(base, 0);
}

/* A tree deeper than PATH_MAX and than the walk's open streams: 40
 * directories of 200-byte names (8 KB of path), each with files beside
 * its child (some read after it, in the directory's hash order). nftw
 * handed chown the whole path: ENAMETOOLONG, the shift stopped half-way
 * and a create sent again failed (then destroyed the guest's disk). */
static void
test_deep(void **state)
{
    (void)state;
    char sub[sizeof(dir) + 8], name[201], f[16];
    int fd;

    snprintf(sub, sizeof(sub), "%s/deep", dir);
    assert_int_equal(mkdir(sub, 0755), 0);
    assert_int_equal(chown(sub, OLD, OLD), 0);
    memset(name, 'd', 200);
    name[200] = '\0';
    fd = open(sub, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    assert_true(fd >= 0);
    for (int i = 0; i < 40; i++) {
        for (int k = 0; k < 8; k++) {
            snprintf(f, sizeof(f), "f%d", k);
            int g = openat(fd, f, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
            assert_true(g >= 0);
            assert_int_equal(fchown(g, OLD + 1 + (uid_t)i, OLD + 2), 0);
            close(g);
        }
        assert_int_equal(mkdirat(fd, name, 0755), 0);
        assert_int_equal(fchownat(fd, name, OLD + 3, OLD + 3, AT_SYMLINK_NOFOLLOW), 0);
        int next = openat(fd, name, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        assert_true(next >= 0);
        close(fd);
        fd = next;
    }
    assert_int_equal(symlinkat("/etc/passwd", fd, "last"), 0);
    assert_int_equal(fchownat(fd, "last", OLD + 4, OLD + 4, AT_SYMLINK_NOFOLLOW), 0);
    close(fd);

    assert_int_equal(idshift_tree(sub, NEW, BLOCK), 1);
    owner_is("deep", NEW, NEW);
    fd = open(sub, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    assert_true(fd >= 0);
    for (int i = 0; i < 40; i++) {
        struct stat st;
        for (int k = 0; k < 8; k++) {
            snprintf(f, sizeof(f), "f%d", k);
            assert_int_equal(fstatat(fd, f, &st, AT_SYMLINK_NOFOLLOW), 0);
            assert_int_equal(st.st_uid, NEW + 1 + (uid_t)i);
            assert_int_equal(st.st_gid, NEW + 2);
        }
        assert_int_equal(fstatat(fd, name, &st, AT_SYMLINK_NOFOLLOW), 0);
        assert_int_equal(st.st_uid, NEW + 3);
        int next = openat(fd, name, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        assert_true(next >= 0);
        close(fd);
        fd = next;
    }
    struct stat st;
    assert_int_equal(fstatat(fd, "last", &st, AT_SYMLINK_NOFOLLOW), 0);
    assert_int_equal(st.st_uid, NEW + 4);
    close(fd);
    assert_int_equal(stat("/etc/passwd", &st), 0);
    assert_int_equal(st.st_uid, 0);
}

/* Out of descriptors half-way (EMFILE: the agent at its RLIMIT_NOFILE):
 * the shift fails, it does not skip the directories it cannot open and
 * say the tree was shifted (the guest's files below them stayed in the
 * old block; the create went on with them). */
static void
test_no_fds(void **state)
{
    (void)state;
    char sub[sizeof(dir) + 8], path[sizeof(sub) + 64];
    struct rlimit old, low;

    snprintf(sub, sizeof(sub), "%s/nofd", dir);
    snprintf(path, sizeof(path), "%s/a/b/c/d/e/f", sub);
    for (char *s = path + strlen(sub); s; s = strchr(s + 1, '/')) {
        *s = '\0';
        assert_int_equal(mkdir(path, 0755), 0);
        assert_int_equal(chown(path, OLD, OLD), 0);
        *s = '/';
    }
    assert_int_equal(mkdir(path, 0755), 0);
    assert_int_equal(chown(path, OLD + 5, OLD + 5), 0);
    /* Room for the root and two levels below it, no more. */
    int probe = open("/", O_RDONLY | O_CLOEXEC);
    assert_true(probe >= 0);
    close(probe);
    assert_int_equal(getrlimit(RLIMIT_NOFILE, &old), 0);
    low = old;
    low.rlim_cur = (rlim_t)probe + 3;
    assert_int_equal(setrlimit(RLIMIT_NOFILE, &low), 0);
    int r = idshift_tree(sub, NEW, BLOCK);
    assert_int_equal(setrlimit(RLIMIT_NOFILE, &old), 0);
    assert_int_equal(r, -EMFILE);
    /* Run again with descriptors to spare, it finishes. */
    assert_int_equal(idshift_tree(sub, NEW, BLOCK), 1);
    owner_is("nofd/a/b/c/d/e/f", NEW + 5, NEW + 5);
    owner_is("nofd", NEW, NEW);
}

static void
test_bad(void **state)
{
    (void)state;
    assert_int_equal(idshift_tree(dir, NEW + 1, BLOCK), -EINVAL);
    assert_int_equal(idshift_tree(dir, NEW, 0), -EINVAL);
    assert_int_equal(idshift_tree("/nonexistent-idshift", NEW, BLOCK), -ENOENT);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_shift),  cmocka_unit_test(test_base_of), cmocka_unit_test(test_deep),
        cmocka_unit_test(test_no_fds), cmocka_unit_test(test_bad),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
