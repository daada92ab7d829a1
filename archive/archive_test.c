/* Tests for the vfleet archive with real files, GNU tar and libzstd: what a
 * guest's disk holds comes back the same (owners, modes, times, xattrs in
 * every namespace, hard links, symlinks, device nodes and overlayfs
 * whiteouts, sparse files), the manifest is read back from the start of the
 * file, excludes are left out, and a damaged archive is refused. Root only
 * (owners, device nodes, trusted.* attributes): skipped otherwise. */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <unistd.h>
#include <cmocka.h>

#include "archive/archive.h"
#include "common/mem.h"

static char dir[64];

static void
path(char *buf, size_t n, const char *rel)
{
    snprintf(buf, n, "%s/%s", dir, rel);
}

static void
put(const char *rel, const char *text, mode_t mode, uid_t uid, gid_t gid)
{
    char p[256];
    path(p, sizeof(p), rel);
    int fd = open(p, O_WRONLY | O_CREAT | O_TRUNC, mode);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    assert_int_equal(fchown(fd, uid, gid), 0);
    assert_int_equal(fchmod(fd, mode), 0);
    close(fd);
}

/* The tree a guest's upper directory might hold. */
static void
make_tree(void)
{
    char p[256], q[256];

    path(p, sizeof(p), "in");
    assert_int_equal(mkdir(p, 0755), 0);
    path(p, sizeof(p), "in/etc");
    assert_int_equal(mkdir(p, 0750), 0);
    put("in/etc/shadow", "root:*:1:0:99999:7:::\n", 0640, 0, 42);
    put("in/etc/setuid", "#!/bin/sh\n", 04755, 1000, 1000);
    path(p, sizeof(p), "in/etc/shadow");
    assert_int_equal(setxattr(p, "user.note", "kept", 4, 0), 0);
    assert_int_equal(setxattr(p, "trusted.overlay.opaque", "y", 1, 0), 0);
    path(p, sizeof(p), "in/etc/setuid");
    path(q, sizeof(q), "in/etc/hardlink");
    assert_int_equal(link(p, q), 0);
    path(p, sizeof(p), "in/etc/symlink");
    assert_int_equal(symlink("./shadow", p), 0);
    path(p, sizeof(p), "in/null");
    assert_int_equal(mknod(p, S_IFCHR | 0666, makedev(1, 3)), 0);
    path(p, sizeof(p), "in/whiteout"); /* overlayfs: a deleted template file */
    assert_int_equal(mknod(p, S_IFCHR | 0000, makedev(0, 0)), 0);
    path(p, sizeof(p), "in/sparse");
    int fd = open(p, O_WRONLY | O_CREAT, 0600);
    assert_int_equal(ftruncate(fd, 64 << 20), 0);
    assert_int_equal(pwrite(fd, "end", 3, (64 << 20) - 3), 3);
    close(fd);
    put("in/skip-me", "secret\n", 0600, 0, 0);
    struct timespec ts[2] = {{1000000000, 0}, {1234567890, 0}};
    path(p, sizeof(p), "in/etc/shadow");
    assert_int_equal(utimensat(AT_FDCWD, p, ts, AT_SYMLINK_NOFOLLOW), 0);
}

static void
same_stat(const char *rel, struct stat *out)
{
    char a[256], b[256];
    struct stat sa, sb;

    snprintf(a, sizeof(a), "%s/in/%s", dir, rel);
    snprintf(b, sizeof(b), "%s/out/%s", dir, rel);
    assert_int_equal(lstat(a, &sa), 0);
    if (lstat(b, &sb) < 0)
        fail_msg("%s missing after unpack", rel);
    assert_int_equal(sa.st_mode, sb.st_mode);
    assert_int_equal(sa.st_uid, sb.st_uid);
    assert_int_equal(sa.st_gid, sb.st_gid);
    assert_int_equal(sa.st_rdev, sb.st_rdev);
    if (!S_ISLNK(sa.st_mode) && !S_ISDIR(sa.st_mode))
        assert_int_equal(sa.st_mtim.tv_sec, sb.st_mtim.tv_sec);
    if (out)
        *out = sb;
}

static void
test_round_trip(void **state)
{
    char archive[256], out[256], buf[256];
    const char *manifest = "{\"format\":1,\"spec\":{\"name\":\"g\"}}";
    const char *const excludes[] = {"skip-me", NULL};
    struct archive_stats st;
    char err[256] = "";

    make_tree();
    path(archive, sizeof(archive), "g.vfx");
    int fd = open(archive, O_RDWR | O_CREAT | O_TRUNC, 0600);
    path(buf, sizeof(buf), "in");
    int r = archive_pack(manifest, buf, excludes, fd, &st, err, sizeof(err));
    if (r < 0)
        fail_msg("pack: %s", err);
    assert_true(st.file_bytes < 1 << 20); /* the 64 MiB sparse file costs nothing */
    char *m = NULL;
    assert_int_equal(lseek(fd, 0, SEEK_SET), 0);
    assert_int_equal(archive_manifest(fd, &m, err, sizeof(err)), 0);
    assert_string_equal(m, manifest);
    free(m);
    assert_int_equal(lseek(fd, 0, SEEK_SET), 0);
    path(out, sizeof(out), "out");
    r = archive_unpack(fd, out, err, sizeof(err));
    if (r < 0)
        fail_msg("unpack: %s", err);
    close(fd);
    struct stat s1, s2;
    same_stat("etc", NULL);
    same_stat("etc/shadow", NULL);
    same_stat("etc/setuid", &s1);
    same_stat("etc/hardlink", &s2);
    assert_int_equal(s1.st_ino, s2.st_ino); /* still one file */
    same_stat("etc/symlink", NULL);
    same_stat("null", NULL);
    same_stat("whiteout", NULL);
    same_stat("sparse", &s1);
    assert_int_equal(s1.st_size, 64 << 20);
    assert_true(s1.st_blocks * 512 < (1 << 20));
    path(buf, sizeof(buf), "out/etc/shadow");
    assert_int_equal(getxattr(buf, "user.note", err, sizeof(err)), 4);
    assert_int_equal(getxattr(buf, "trusted.overlay.opaque", err, sizeof(err)), 1);
    path(buf, sizeof(buf), "out/skip-me");
    assert_int_equal(access(buf, F_OK), -1);
    path(buf, sizeof(buf), "out/" ARCHIVE_MANIFEST);
    assert_int_equal(access(buf, F_OK), -1);
}

static void
test_damaged_archive(void **state)
{
    char p[256], err[256] = "", *m = NULL;

    path(p, sizeof(p), "junk.vfx");
    int fd = open(p, O_RDWR | O_CREAT | O_TRUNC, 0600);
    assert_int_equal(write(fd, "not zstd at all", 15), 15);
    assert_int_equal(lseek(fd, 0, SEEK_SET), 0);
    assert_int_equal(archive_manifest(fd, &m, err, sizeof(err)), -EBADMSG);
    assert_null(m);
    assert_int_equal(lseek(fd, 0, SEEK_SET), 0);
    path(p, sizeof(p), "junk-out");
    assert_true(archive_unpack(fd, p, err, sizeof(err)) < 0);
    close(fd);
}

/* A tree whose first file is a long run of zeros (written, not sparse):
 * its few compressed bytes stand for many megabytes, and the manifest is
 * still read back (it was "not a vfleet archive" when the first read of
 * the file inflated past the manifest's bound). */
static void
test_manifest_before_zeros(void **state)
{
    static char zeros[1 << 20];
    char p[256], err[256] = "", *m = NULL;

    (void)state;
    path(p, sizeof(p), "z");
    assert_int_equal(mkdir(p, 0755), 0);
    path(p, sizeof(p), "z/a-zeros");
    int fd = open(p, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    assert_true(fd >= 0);
    for (int i = 0; i < 64; i++)
        assert_int_equal(write(fd, zeros, sizeof(zeros)), (ssize_t)sizeof(zeros));
    close(fd);
    path(p, sizeof(p), "z.vfx");
    int out = open(p, O_RDWR | O_CREAT | O_TRUNC, 0600);
    path(p, sizeof(p), "z");
    assert_int_equal(archive_pack("{\"format\": 1}", p, NULL, out, NULL, err, sizeof(err)), 0);
    assert_int_equal(lseek(out, 0, SEEK_SET), 0);
    assert_int_equal(archive_manifest(out, &m, err, sizeof(err)), 0);
    assert_string_equal(m, "{\"format\": 1}");
    free(m);
    close(out);
}

/* tar's reason for refusing a member reaches the caller, not only its
 * closing "Exiting with failure status due to previous errors". */
static void
test_unpack_says_why(void **state)
{
    char p[256], err[512] = "";
    /* A pax tar of the manifest and "files/../escape", zstd-compressed. */
    char cmd[1024];

    (void)state;
    snprintf(
        cmd, sizeof(cmd),
        "cd '%s' && mkdir -p w/files && echo '{}' > w/vfleet-guest.json && echo x > w/escape && "
        "tar --format=pax -C w -cf - vfleet-guest.json "
        "--transform 's,^escape,files/../escape,' escape | zstd -q -c > dotdot.vfx",
        dir);
    assert_int_equal(system(cmd), 0);
    path(p, sizeof(p), "dotdot.vfx");
    int fd = open(p, O_RDONLY);
    assert_true(fd >= 0);
    path(p, sizeof(p), "dotdot-out");
    assert_true(archive_unpack(fd, p, err, sizeof(err)) < 0);
    close(fd);
    assert_non_null(strstr(err, ".."));
    assert_null(strstr(err, "Exiting with failure status"));
    path(p, sizeof(p), "escape"); /* where "files/../escape" would land */
    assert_int_equal(access(p, F_OK), -1);
}

static int
setup(void **state)
{
    if (geteuid() != 0)
        return -1;
    snprintf(dir, sizeof(dir), "/tmp/archive-test-%d-XXXXXX", (int)getpid());
    return mkdtemp(dir) ? 0 : -1;
}

static int
teardown(void **state)
{
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    return system(cmd) == 0 ? 0 : -1;
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trip),
        cmocka_unit_test(test_damaged_archive),
        cmocka_unit_test(test_manifest_before_zeros),
        cmocka_unit_test(test_unpack_says_why),
    };
    if (geteuid() != 0) {
        printf("SKIP: the archive test needs root (owners, device nodes, trusted.*)\n");
        return 77;
    }
    return cmocka_run_group_tests(tests, setup, teardown);
}
