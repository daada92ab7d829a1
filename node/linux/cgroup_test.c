/* Tests for cgroup detection and the shared parsing helpers. Detection is
 * checked against /proc/self/mounts, an independent view of the same facts. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "common/mem.h"
#include "node/linux/cgroup.h"
#include "node/linux/cgroup_driver.h"

static void
test_detect_matches_mounts(void **state)
{
    FILE *f = fopen("/proc/self/mounts", "re");
    assert_non_null(f);
    bool v2_root = false, v2_unified = false, v1 = false;
    char dev[256], dir[512], type[64];
    while (fscanf(f, "%255s %511s %63s %*[^\n]", dev, dir, type) == 3) {
        if (strcmp(type, "cgroup2") == 0 && strcmp(dir, "/sys/fs/cgroup") == 0)
            v2_root = true;
        if (strcmp(type, "cgroup2") == 0 && strcmp(dir, "/sys/fs/cgroup/unified") == 0)
            v2_unified = true;
        if (strcmp(type, "cgroup") == 0 && strncmp(dir, "/sys/fs/cgroup/", 15) == 0)
            v1 = true;
    }
    fclose(f);
    if (!v2_root && !v1)
        skip();
    enum cgroup_mode want = v2_root ? CGROUP_V2 : v2_unified ? CGROUP_HYBRID : CGROUP_V1;
    enum cgroup_mode got;
    assert_int_equal(cgroup_detect("/sys/fs/cgroup", &got), 0);
    assert_int_equal(got, want);

    cgroup_mgr_t *m = NULL;
    assert_int_equal(cgroup_mgr_new("/sys/fs/cgroup", "vfleet", &m), 0);
    assert_int_equal(cgroup_mgr_mode(m), want);
    /* Limits come from v1 on v1 and hybrid hosts, with the device policy. */
    assert_int_equal(cgroup_has_device_policy(m), want != CGROUP_V2);
    cgroup_mgr_destroy(&m);
    assert_null(m);
}

static void
test_detect_errors(void **state)
{
    enum cgroup_mode got;
    char tmpl[] = "/tmp/vfleet-cgdetect-XXXXXX";
    assert_non_null(mkdtemp(tmpl));
    assert_int_equal(cgroup_detect(tmpl, &got), -ENOMEDIUM);
    cgroup_mgr_t *m = NULL;
    assert_int_equal(cgroup_mgr_new(tmpl, "vfleet", &m), -ENOMEDIUM);
    assert_int_equal(cgroup_mgr_new_v1(tmpl, "vfleet", &m), -ENOMEDIUM);
    assert_int_equal(cgroup_mgr_new_v2(tmpl, "a/b", &m), -EINVAL);
    assert_int_equal(cgroup_mgr_new_v2(tmpl, "", &m), -EINVAL);
    assert_null(m);
    rmdir(tmpl);
    assert_int_equal(cgroup_detect("/nonexistent-vfleet", &got), -ENOENT);
    assert_string_equal(cgroup_mode_to_string(CGROUP_HYBRID), "hybrid");
    assert_string_equal(cgroup_mode_to_string(CGROUP_V1), "v1");
    assert_string_equal(cgroup_mode_to_string(CGROUP_V2), "v2");
}

static void
test_parse_helpers(void **state)
{
    uint64_t v = 0;
    const char *text = "total_rss_huge 5\ntotal_rss 42\nmax max\nbad x1\n";
    assert_int_equal(cgroup_text_key(text, "total_rss", &v), 0);
    assert_true(v == 42);
    assert_int_equal(cgroup_text_key(text, "max", &v), 0);
    assert_true(v == UINT64_MAX);
    assert_int_equal(cgroup_text_key(text, "total", &v), -ENODATA);
    assert_int_equal(cgroup_text_key(text, "bad", &v), -EBADMSG);

    pid_t *pids = NULL;
    size_t n = 0;
    assert_int_equal(cgroup_parse_pids("12\n345\n", &pids, &n), 0);
    assert_int_equal(n, 2);
    assert_int_equal(pids[1], 345);
    assert_int_equal(cgroup_parse_pids("7x\n", &pids, &n), -EBADMSG);
    assert_int_equal(cgroup_parse_pids("-3\n", &pids, &n), -EBADMSG);
    assert_int_equal(cgroup_parse_pids("99999999999\n", &pids, &n), -EBADMSG);
    free(pids);
}

/* A ceiling below a core is lifted for the setup (burst with it), one of a
 * core or more stays, and no ceiling stays none; the rest is kept. */
static void
test_setup_limits(void **state)
{
    struct spec_limits out, l = {.cpu_max = 10, .cpu_burst = 5, .memory = 64 << 20, .procs = 9};
    assert_true(cgroup_setup_limits(&l, &out));
    assert_int_equal(out.cpu_max, 0);
    assert_int_equal(out.cpu_burst, 0);
    assert_int_equal(out.memory, 64 << 20);
    assert_int_equal(out.procs, 9);
    l.cpu_max = 999;
    assert_true(cgroup_setup_limits(&l, &out));
    l.cpu_max = 1000;
    assert_false(cgroup_setup_limits(&l, &out));
    assert_int_equal(out.cpu_max, 1000);
    assert_int_equal(out.cpu_burst, 5);
    l.cpu_max = 0;
    assert_false(cgroup_setup_limits(&l, &out));
    assert_int_equal(out.cpu_max, 0);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_detect_matches_mounts),
        cmocka_unit_test(test_detect_errors),
        cmocka_unit_test(test_parse_helpers),
        cmocka_unit_test(test_setup_limits),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
