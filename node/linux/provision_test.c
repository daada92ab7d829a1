/* Tests for node/linux/provision: the files written into a guest's root, and
 * that symlinks the guest planted never lead the writes out of it. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cmocka.h>

#include "node/linux/provision.h"

#define HASH "$6$saltsalt$0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJ"
#define KEY  "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIB0nYc me@laptop"

struct fix {
    char top[PATH_MAX];     /* the test's directory */
    char root[PATH_MAX];    /* the guest's root inside it */
    char outside[PATH_MAX]; /* a host directory the guest must not reach */
};

static void
put(const char *dir, const char *rel, const char *text)
{
    char path[PATH_MAX * 2];
    snprintf(path, sizeof(path), "%s/%s", dir, rel);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

static char *
get(const char *dir, const char *rel)
{
    static char buf[8192];
    char path[PATH_MAX * 2];
    snprintf(path, sizeof(path), "%s/%s", dir, rel);
    FILE *f = fopen(path, "r");
    if (!f)
        return NULL;
    size_t n = fread(buf, 1, sizeof(buf) - 1, f);
    buf[n] = '\0';
    fclose(f);
    return buf;
}

static int
setup(void **state)
{
    struct fix *f = calloc(1, sizeof(*f));
    char tmpl[] = "/tmp/vfleet-provision-XXXXXX";
    assert_non_null(mkdtemp(tmpl));
    snprintf(f->top, sizeof(f->top), "%s", tmpl);
    snprintf(f->root, sizeof(f->root), "%s/root", tmpl);
    snprintf(f->outside, sizeof(f->outside), "%s/outside", tmpl);
    assert_int_equal(mkdir(f->root, 0755), 0);
    assert_int_equal(mkdir(f->outside, 0755), 0);
    char etc[PATH_MAX + 8];
    snprintf(etc, sizeof(etc), "%s/etc", f->root);
    assert_int_equal(mkdir(etc, 0755), 0);
    put(f->outside, "shadow", "root:HOST:1:0:99999:7:::\n");
    put(f->outside, "resolv.conf", "nameserver 127.0.0.53\n");
    *state = f;
    return 0;
}

static int
teardown(void **state)
{
    struct fix *f = *state;
    char cmd[PATH_MAX + 16];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", f->top);
    assert_int_equal(system(cmd), 0);
    free(f);
    return 0;
}

static void
test_writes_files(void **state)
{
    struct fix *f = *state;
    struct spec_provision p = {0};
    struct stat st;
    char path[PATH_MAX * 2];

    put(f->root, "etc/shadow", "root:*:19000:0:99999:7:::\ndaemon:*:19000:0:99999:7:::\n");
    strcpy(p.password_hash, HASH);
    strcpy(p.ssh_keys, KEY);
    assert_int_equal(netaddr_parse_host("192.0.2.53", &p.dns[0]), 0);
    p.n_dns = 1;
    strcpy(p.search, "example.org corp.example");
    assert_int_equal(provision_write(f->root, &p), 0);

    const char *shadow = get(f->root, "etc/shadow");
    assert_non_null(strstr(shadow, "root:" HASH ":"));
    assert_non_null(strstr(shadow, ":0:99999:7:::\ndaemon:*:19000:0:99999:7:::\n"));
    assert_string_equal(get(f->root, "root/.ssh/authorized_keys"), KEY "\n");
    snprintf(path, sizeof(path), "%s/root/.ssh", f->root);
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0700);
    const char *resolv = get(f->root, "etc/resolv.conf");
    assert_non_null(strstr(resolv, "nameserver 192.0.2.53\n"));
    assert_non_null(strstr(resolv, "search example.org corp.example\n"));
}

/* The guest planted absolute and relative symlinks to the host's files:
 * the writes stay in the guest's tree. */
static void
test_symlinks_stay_inside(void **state)
{
    struct fix *f = *state;
    struct spec_provision p = {0};
    char link[PATH_MAX * 2], target[PATH_MAX * 2];

    snprintf(link, sizeof(link), "%s/etc/shadow", f->root);
    snprintf(target, sizeof(target), "%s/shadow", f->outside);
    assert_int_equal(symlink(target, link), 0);
    snprintf(link, sizeof(link), "%s/etc/resolv.conf", f->root);
    assert_int_equal(symlink("../../outside/resolv.conf", link), 0);
    snprintf(link, sizeof(link), "%s/root", f->root);
    assert_int_equal(symlink(f->outside, link), 0);

    strcpy(p.password_hash, HASH);
    assert_int_equal(netaddr_parse_host("2001:db8::53", &p.dns[0]), 0);
    p.n_dns = 1;
    assert_int_equal(provision_write(f->root, &p), 0);
    /* /root leads nowhere inside the guest: the keys are refused. */
    memset(&p, 0, sizeof(p));
    strcpy(p.ssh_keys, KEY);
    assert_int_equal(provision_write(f->root, &p), -ENOENT);

    assert_string_equal(get(f->outside, "shadow"), "root:HOST:1:0:99999:7:::\n");
    assert_string_equal(get(f->outside, "resolv.conf"), "nameserver 127.0.0.53\n");
    assert_null(get(f->outside, ".ssh/authorized_keys"));
    /* The guest's own files were replaced (the symlinks with them). */
    assert_non_null(strstr(get(f->root, "etc/shadow"), "root:" HASH ":"));
    assert_non_null(strstr(get(f->root, "etc/resolv.conf"), "nameserver 2001:db8::53\n"));
}

static void
test_stamp(void **state)
{
    struct fix *f = *state;
    struct spec_provision p = {0};
    char stamp[PATH_MAX * 2];

    snprintf(stamp, sizeof(stamp), "%s/provision.stamp", f->top);
    strcpy(p.search, "example.org");
    assert_int_equal(provision_apply(f->root, stamp, &p), 0);
    assert_non_null(strstr(get(f->root, "etc/resolv.conf"), "search example.org"));
    /* The guest changes its file; the same group is not written again. */
    put(f->root, "etc/resolv.conf", "nameserver 10.9.9.9\n");
    assert_int_equal(provision_apply(f->root, stamp, &p), 0);
    assert_string_equal(get(f->root, "etc/resolv.conf"), "nameserver 10.9.9.9\n");
    /* A changed group is. */
    strcpy(p.search, "example.net");
    assert_int_equal(provision_apply(f->root, stamp, &p), 0);
    assert_non_null(strstr(get(f->root, "etc/resolv.conf"), "search example.net"));
    /* An empty group writes nothing. */
    memset(&p, 0, sizeof(p));
    put(f->root, "etc/resolv.conf", "mine\n");
    assert_int_equal(provision_apply(f->root, stamp, &p), 0);
    assert_string_equal(get(f->root, "etc/resolv.conf"), "mine\n");
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_writes_files, setup, teardown),
        cmocka_unit_test_setup_teardown(test_symlinks_stay_inside, setup, teardown),
        cmocka_unit_test_setup_teardown(test_stamp, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
