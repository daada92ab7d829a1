/* Tests for fdwalk_dirs (fdwalk.h) on a temporary tree: directories only,
 * each after the ones below it, no symlink followed or handed over; fdwalk
 * itself hands over the files too. */
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
#include <unistd.h>
#include <cmocka.h>

#include "common/mem.h"
#include "node/linux/fdwalk.h"

/* The names handed over, in order, each followed by a space. */
struct seen {
    char names[512]; /* "b a ..." */
};

static int
record(int dirfd, const char *name, const struct stat *st, void *userdata)
{
    struct seen *s = userdata;
    size_t len = strlen(s->names);
    (void)dirfd;
    snprintf(s->names + len, sizeof(s->names) - len, "%s%s ", name,
             S_ISDIR(st->st_mode) ? "/" : "");
    return 0;
}

static void
test_dirs_only(void **state)
{
    char root[64];
    (void)state;
    snprintf(root, sizeof(root), "/tmp/vfleet-fdwalk-%d-XXXXXX", (int)getpid());
    assert_non_null(mkdtemp(root));
    _cleanup_free_ char *a = xasprintf("%s/a", root);
    _cleanup_free_ char *b = xasprintf("%s/a/b", root);
    _cleanup_free_ char *f = xasprintf("%s/a/b/procs", root);
    _cleanup_free_ char *g = xasprintf("%s/a/procs", root);
    _cleanup_free_ char *l = xasprintf("%s/link", root);
    assert_int_equal(mkdir(a, 0755), 0);
    assert_int_equal(mkdir(b, 0755), 0);
    close(open(f, O_WRONLY | O_CREAT | O_CLOEXEC, 0644));
    close(open(g, O_WRONLY | O_CREAT | O_CLOEXEC, 0644));
    assert_int_equal(symlink(a, l), 0);

    struct seen s = {{0}};
    assert_int_equal(fdwalk_dirs(open(root, O_RDONLY | O_DIRECTORY | O_CLOEXEC), record, &s), 0);
    assert_string_equal(s.names, "b/ a/ ");

    /* fdwalk hands the files and the symlink over too (not followed). */
    s.names[0] = '\0';
    assert_int_equal(fdwalk(open(root, O_RDONLY | O_DIRECTORY | O_CLOEXEC), record, &s), 0);
    assert_non_null(strstr(s.names, "procs "));
    assert_non_null(strstr(s.names, "link "));
    assert_null(strstr(s.names, "link/"));

    _cleanup_free_ char *cmd = xasprintf("rm -rf '%s'", root);
    assert_int_equal(system(cmd), 0);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_dirs_only),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
