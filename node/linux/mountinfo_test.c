/* Tests for node/linux/mountinfo: what mountinfo_find answers (from
 * statmount(2) on a kernel that has it) is what /proc/self/mountinfo says
 * about the same mount, for every mount point of this process that the test
 * can reach; a path that is not a mount point is -ENOENT. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "common/mem.h"
#include "node/linux/mountinfo.h"

/* Undoes the octal escapes of a mountinfo field (\040), in place. */
static void
unescape(char *s)
{
    char *w = s;
    for (char *p = s; *p; p++) {
        if (p[0] == '\\' && p[1] && p[2] && p[3]) {
            *w++ = (char)(((p[1] - '0') << 6) | ((p[2] - '0') << 3) | (p[3] - '0'));
            p += 3;
        } else {
            *w++ = *p;
        }
    }
    *w = '\0';
}

static void
test_same_as_the_table(void **state)
{
    (void)state;
    FILE *f = fopen("/proc/self/mountinfo", "re");
    char *line = NULL;
    size_t cap = 0;
    unsigned checked = 0;

    assert_non_null(f);
    while (getline(&line, &cap, f) > 0) {
        int id;
        unsigned maj, min;
        char mp[4096], type[256], src[4096], opts[8192];
        char *dash = strstr(line, " - ");
        assert_non_null(dash);
        assert_int_equal(sscanf(line, "%d %*d %u:%u %*s %4095s", &id, &maj, &min, mp), 4);
        assert_int_equal(sscanf(dash, " - %255s %4095s %8191s", type, src, opts), 3);
        unescape(mp), unescape(src), unescape(opts);
        struct mountinfo_entry e = {0};
        /* Overmounted or out of reach (another root): not this test's business. */
        if (mountinfo_find(mp, &e) < 0 || e.mnt_id != id) {
            mountinfo_entry_clear(&e);
            continue;
        }
        assert_int_equal(e.major, maj);
        assert_int_equal(e.minor, min);
        assert_string_equal(e.mountpoint, mp);
        assert_string_equal(e.fstype, type);
        assert_string_equal(e.source, src);
        assert_string_equal(e.super_opts, opts);
        mountinfo_entry_clear(&e);
        checked++;
    }
    free(line);
    fclose(f);
    assert_true(checked >= 2); /* at least / and /proc */
}

static void
test_not_a_mount_point(void **state)
{
    (void)state;
    struct mountinfo_entry e = {0};

    assert_int_equal(mountinfo_find("/proc/self", &e), -ENOENT);
    assert_int_equal(mountinfo_find("/nonexistent-vfleet-test", &e), -ENOENT);
    assert_null(e.fstype);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_same_as_the_table),
        cmocka_unit_test(test_not_a_mount_point),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
