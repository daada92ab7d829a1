/* A template from the master's library on the node (agent_template.h):
 * a good archive becomes <templates>/NAME whole, with its sum; hostile
 * archives — a member climbing out with "..", a symlink pointing out and a
 * member written through it, an absolute name, a block device — write
 * nothing outside the template's directory, and the ones refused leave
 * neither the template nor its temporary tree; a template already there
 * is kept. The archives are written here byte by byte (ustar headers,
 * zstd), as a hostile client could. Device nodes and owners need root:
 * skipped (77) otherwise. */
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
#include <time.h>
#include <unistd.h>
#include <zstd.h>
#include <cmocka.h>

#include "node/agent_template.h"

static char base[96];                   /* the test's directory */
static uint64_t max_bytes = UINT64_MAX; /* the tar stream unpack() allows */

/* ---- a tar writer that lets anything through ---- */

struct tarbuf {
    uint8_t data[1 << 16]; /* the tar stream */
    size_t len;            /* bytes in data */
};

static void
member(struct tarbuf *t, const char *name, char type, const char *link, const char *body,
       unsigned major, unsigned minor)
{
    uint8_t *h = t->data + t->len;
    size_t size = body ? strlen(body) : 0;
    unsigned sum = 0;

    memset(h, 0, 512);
    snprintf((char *)h, 100, "%s", name);
    snprintf((char *)h + 100, 8, "%07o", type == '5' ? 0755 : 0644);
    snprintf((char *)h + 108, 8, "%07o", 0);
    snprintf((char *)h + 116, 8, "%07o", 0);
    snprintf((char *)h + 124, 12, "%011o", (unsigned)size);
    snprintf((char *)h + 136, 12, "%011o", 0);
    h[156] = (uint8_t)type;
    if (link)
        snprintf((char *)h + 157, 100, "%s", link);
    memcpy(h + 257, "ustar", 6);
    memcpy(h + 263, "00", 2);
    snprintf((char *)h + 329, 8, "%07o", major);
    snprintf((char *)h + 337, 8, "%07o", minor);
    memset(h + 148, ' ', 8);
    for (int i = 0; i < 512; i++)
        sum += h[i];
    snprintf((char *)h + 148, 8, "%06o", sum);
    t->len += 512;
    if (size) {
        memcpy(t->data + t->len, body, size);
        t->len += (size + 511) / 512 * 512;
    }
}

/* The stream, zstd-compressed, in a file; returns it open for reading. */
static int
archive_of(struct tarbuf *t)
{
    char path[160];
    size_t cap = ZSTD_compressBound(t->len + 1024);
    void *out = malloc(cap);

    memset(t->data + t->len, 0, 1024); /* the end: two zero blocks */
    t->len += 1024;
    size_t n = ZSTD_compress(out, cap, t->data, t->len, 3);
    assert_false(ZSTD_isError(n));
    snprintf(path, sizeof(path), "%s/a.vfx", base);
    int fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, out, n), (ssize_t)n);
    lseek(fd, 0, SEEK_SET);
    unlink(path);
    free(out);
    return fd;
}

static bool exists(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static bool
exists(const char *fmt, ...)
{
    char path[300];
    struct stat st;
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(path, sizeof(path), fmt, ap);
    va_end(ap);
    return lstat(path, &st) == 0;
}

/* Unpacks t as template name under base/templates. */
static int
unpack(struct tarbuf *t, const char *name, char sum[TEMPLATE_SUM_LEN + 1], char *err, size_t n)
{
    char tmp[200], final[200];
    uint64_t size = 0;
    int fd = archive_of(t);

    snprintf(tmp, sizeof(tmp), "%s/templates/.unpack-%s", base, name);
    snprintf(final, sizeof(final), "%s/templates/%s", base, name);
    int r = agent_template_unpack(fd, tmp, final, max_bytes, sum, &size, err, n);
    close(fd);
    assert_false(exists("%s", tmp)); /* never left behind */
    return r;
}

static void
test_good(void **state)
{
    struct tarbuf *t = calloc(1, sizeof(*t));
    char sum[TEMPLATE_SUM_LEN + 1] = "", err[256] = "";

    (void)state;
    member(t, "vfleet-guest.json", '0', NULL, "{\"format\":1,\"kind\":\"template\"}", 0, 0);
    member(t, "files/", '5', NULL, NULL, 0, 0);
    member(t, "files/etc/", '5', NULL, NULL, 0, 0);
    member(t, "files/etc/hostname", '0', NULL, "tmpl\n", 0, 0);
    member(t, "files/dev/", '5', NULL, NULL, 0, 0);
    member(t, "files/dev/null", '3', NULL, NULL, 1, 3);
    member(t, "files/bin/", '5', NULL, NULL, 0, 0);
    member(t, "files/bin/sh", '2', "busybox", NULL, 0, 0);
    assert_int_equal(unpack(t, "good", sum, err, sizeof(err)), 0);
    assert_true(exists("%s/templates/good/etc/hostname", base));
    assert_true(exists("%s/templates/good/dev/null", base));
    assert_false(exists("%s/templates/good/vfleet-guest.json", base));
    assert_int_equal(strncmp(sum, "sha256:", 7), 0);
    /* Again: one is there, it is kept. */
    assert_int_equal(unpack(t, "good", sum, err, sizeof(err)), 1);
    assert_true(exists("%s/templates/good/etc/hostname", base));
    free(t);
}

static void
test_dotdot(void **state)
{
    struct tarbuf *t = calloc(1, sizeof(*t));
    char sum[TEMPLATE_SUM_LEN + 1] = "", err[256] = "";

    (void)state;
    member(t, "files/ok", '0', NULL, "ok\n", 0, 0);
    member(t, "files/../../escape-dotdot", '0', NULL, "pwned\n", 0, 0);
    member(t, "files/a/../../../escape-dotdot2", '0', NULL, "pwned\n", 0, 0);
    int r = unpack(t, "dotdot", sum, err, sizeof(err));
    print_message("dotdot: %d %s\n", r, err);
    /* GNU tar skips such members and fails at the end: refused whole. */
    assert_true(r < 0);
    assert_false(exists("%s/escape-dotdot", base));
    assert_false(exists("%s/templates/escape-dotdot", base));
    assert_false(exists("%s/escape-dotdot2", base));
    assert_false(exists("%s/templates/dotdot", base));
    free(t);
}

static void
test_symlink_out(void **state)
{
    struct tarbuf *t = calloc(1, sizeof(*t));
    char sum[TEMPLATE_SUM_LEN + 1] = "", err[256] = "", out[160], rel[200];

    (void)state;
    snprintf(out, sizeof(out), "%s/outside", base);
    mkdir(out, 0755);
    snprintf(rel, sizeof(rel), "../../../outside");
    member(t, "files/abs", '2', NULL, NULL, 0, 0);
    memcpy(t->data + t->len - 512 + 157, out, strlen(out) + 1); /* the link's target */
    {
        /* the checksum again, with the target in */
        uint8_t *h = t->data + t->len - 512;
        unsigned s = 0;
        memset(h + 148, ' ', 8);
        for (int i = 0; i < 512; i++)
            s += h[i];
        snprintf((char *)h + 148, 8, "%06o", s);
    }
    member(t, "files/abs/pwned", '0', NULL, "pwned\n", 0, 0);
    member(t, "files/rel", '2', rel, NULL, 0, 0);
    member(t, "files/rel/pwned2", '0', NULL, "pwned\n", 0, 0);
    member(t, "/abs-name", '0', NULL, "pwned\n", 0, 0);
    int r = unpack(t, "links", sum, err, sizeof(err));
    print_message("hostile links: %d %s\n", r, err);
    assert_false(exists("%s/pwned", out));
    assert_false(exists("%s/pwned2", out));
    assert_false(exists("/abs-name"));
    free(t);
}

static void
test_device(void **state)
{
    struct tarbuf *t = calloc(1, sizeof(*t));
    char sum[TEMPLATE_SUM_LEN + 1] = "", err[256] = "";

    (void)state;
    member(t, "files/dev/", '5', NULL, NULL, 0, 0);
    member(t, "files/dev/sda", '4', NULL, NULL, 8, 0);
    member(t, "files/dev/mem", '3', NULL, NULL, 1, 1);
    assert_int_equal(unpack(t, "dev", sum, err, sizeof(err)), -EPERM);
    assert_non_null(strstr(err, "device node"));
    assert_false(exists("%s/templates/dev", base));
    free(t);
}

/* A template whose tar stream is more than there is room for (a zstd bomb
 * beyond the node's disk) is stopped while it unpacks: -ENOSPC, nothing
 * left, the reason said. */
static void
test_too_big(void **state)
{
    struct tarbuf *t = calloc(1, sizeof(*t));
    char sum[TEMPLATE_SUM_LEN + 1] = "", err[256] = "", *body = malloc(40000);

    (void)state;
    memset(body, 'z', 39999);
    body[39999] = '\0';
    member(t, "vfleet-guest.json", '0', NULL, "{\"format\":1,\"kind\":\"template\"}", 0, 0);
    member(t, "files/", '5', NULL, NULL, 0, 0);
    member(t, "files/bomb", '0', NULL, body, 0, 0);
    max_bytes = 16384;
    assert_int_equal(unpack(t, "bomb", sum, err, sizeof(err)), -ENOSPC);
    max_bytes = UINT64_MAX;
    assert_false(exists("%s/templates/bomb", base));
    assert_non_null(strstr(err, "room"));
    /* With room, the same archive is a template. */
    assert_int_equal(unpack(t, "bomb", sum, err, sizeof(err)), 0);
    assert_true(exists("%s/templates/bomb/bomb", base));
    /* What agent_template_room answers: free space less the reserve. */
    assert_true(agent_template_room("/nonexistent-dir-for-room") == 0);
    free(body);
    free(t);
}

/* What fetches left when the agent died: half-unpacked trees go, archives
 * go once they received nothing for an hour, templates and fresh archives
 * (a commit may still come) stay. */
static void
test_sweep(void **state)
{
    char dir[200], p[300];
    time_t now = time(NULL);

    (void)state;
    snprintf(dir, sizeof(dir), "%s/sweep", base);
    assert_int_equal(mkdir(dir, 0755), 0);
    snprintf(p, sizeof(p), "%s/.unpack-t-12345678", dir);
    assert_int_equal(mkdir(p, 0755), 0);
    snprintf(p, sizeof(p), "%s/.unpack-t-12345678/etc", dir);
    assert_int_equal(mkdir(p, 0755), 0);
    const char *files[] = {".fetch-old-12345678.vfx", ".fetch-old-12345678.vfx.state",
                           ".fetch-new-87654321.vfx", "keep/hello"};
    snprintf(p, sizeof(p), "%s/keep", dir);
    assert_int_equal(mkdir(p, 0755), 0);
    for (size_t i = 0; i < 4; i++) {
        snprintf(p, sizeof(p), "%s/%s", dir, files[i]);
        int fd = open(p, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
        assert_true(fd >= 0);
        if (i < 2) {
            struct timespec old[2] = {{.tv_sec = now - AGENT_TEMPLATE_STALE_S - 60},
                                      {.tv_sec = now - AGENT_TEMPLATE_STALE_S - 60}};
            assert_int_equal(futimens(fd, old), 0);
        }
        close(fd);
    }
    assert_int_equal(agent_template_sweep_dir(dir, now), 3);
    assert_false(exists("%s/.unpack-t-12345678", dir));
    assert_false(exists("%s/.fetch-old-12345678.vfx", dir));
    assert_false(exists("%s/.fetch-old-12345678.vfx.state", dir));
    assert_true(exists("%s/.fetch-new-87654321.vfx", dir));
    assert_true(exists("%s/keep/hello", dir));
    assert_int_equal(agent_template_sweep_dir("/nonexistent-sweep-dir", now), 0);
}

static int
setup(void **state)
{
    char path[160];

    (void)state;
    snprintf(base, sizeof(base), "/tmp/vfleet-tmpl-test-%d-XXXXXX", (int)getpid());
    if (!mkdtemp(base))
        return -1;
    snprintf(path, sizeof(path), "%s/templates", base);
    return mkdir(path, 0755);
}

static int
teardown(void **state)
{
    (void)state;
    return agent_template_rm_tree(base) < 0 ? -1 : 0;
}

int
main(void)
{
    if (geteuid() != 0) {
        printf("SKIP: the template unpack test needs root (device nodes, owners)\n");
        return 77;
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_good),        cmocka_unit_test(test_dotdot),
        cmocka_unit_test(test_symlink_out), cmocka_unit_test(test_device),
        cmocka_unit_test(test_too_big),     cmocka_unit_test(test_sweep),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
