/* The FreeVPS views against their golden files (tests/golden/vservers/,
 * the examples of docs/freevps-views.md): each view rendered from known
 * values is byte for byte the golden file, and the parser written from the
 * documented format reads the golden file back into the same values.
 * VFLEET_UPDATE_GOLDEN=1 rewrites the files (then review the diff). */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "common/mem.h"
#include "node/vservers.h"

static char *
golden_path(const char *name)
{
    const char *src = getenv("VFLEET_SOURCE_DIR");
    return xasprintf("%s/tests/golden/vservers/%s", src ? src : ".", name);
}

/* Compares text with the golden file (or writes it when updating). */
static char *
golden(const char *name, const char *text)
{
    _cleanup_free_ char *path = golden_path(name);
    if (getenv("VFLEET_UPDATE_GOLDEN")) {
        FILE *f = fopen(path, "we");
        assert_non_null(f);
        fputs(text, f);
        fclose(f);
    }
    FILE *f = fopen(path, "re");
    if (!f)
        fail_msg("no golden file %s", path);
    char *buf = xcalloc(1, 65536);
    size_t n = fread(buf, 1, 65535, f);
    fclose(f);
    buf[n] = '\0';
    if (strcmp(buf, text) != 0)
        fail_msg("%s differs from the rendered view:\n--- golden\n%s--- rendered\n%s", path, buf,
                 text);
    return buf;
}

static void
test_setup(void **state)
{
    struct vs_setup s = {.version = VS_VERSION,
                         .build = "vfleet 0.1.0 linux 6.1.0-18-amd64",
                         .contexts = 3,
                         .active = 2},
                    back;
    size_t len;
    _cleanup_free_ char *text = vs_render_setup(&s, &len);
    _cleanup_free_ char *g = golden("setup", text);

    (void)state;
    assert_int_equal(vs_parse_setup(g, &back), 0);
    assert_string_equal(back.version, s.version);
    assert_string_equal(back.build, s.build);
    assert_int_equal(back.contexts, 3);
    assert_int_equal(back.active, 2);
    assert_int_equal(vs_parse_setup("freevps patch version 1.30-0\nbogus 1\n", &back), -EBADMSG);
}

static void
test_trafstat(void **state)
{
    const struct vs_traffic rows[] = {{3, 1048576, 52428}, {4, 0, 0}, {7, 123456789012, 42}};
    struct vs_traffic *back = NULL;
    size_t len, n = 0;
    _cleanup_free_ char *text = vs_render_trafstat(rows, 3, &len);
    _cleanup_free_ char *g = golden("trafstat", text);

    (void)state;
    assert_int_equal(vs_parse_trafstat(g, &back, &n), 0);
    assert_int_equal(n, 3);
    for (size_t i = 0; i < n; i++) {
        assert_int_equal(back[i].context, rows[i].context);
        assert_int_equal(back[i].incoming, rows[i].incoming);
        assert_int_equal(back[i].outgoing, rows[i].outgoing);
    }
    free(back);
    assert_int_equal(vs_parse_trafstat("3 1 2\n", &back, &n), -EBADMSG); /* no header */
    assert_int_equal(vs_parse_trafstat("CONTXT_NUMBER INCOMING OUTGOING\n3 x 2\n", &back, &n),
                     -EBADMSG);
}

static void
test_routes(void **state)
{
    const struct vs_route rows[] = {
        {"10.88.1.2", "vf0e09ecc81e", 3},
        {"10.88.1.3", "vf0e09ecc81e", 3},
        {"10.88.1.9", "vf5b4c1d2e3f", 4},
    };
    struct vs_route *back = NULL;
    size_t len, n = 0;
    _cleanup_free_ char *text = vs_render_routes(rows, 3, &len);
    _cleanup_free_ char *g = golden("routes_ipv4", text);

    (void)state;
    assert_int_equal(vs_parse_routes(g, &back, &n), 0);
    assert_int_equal(n, 3);
    for (size_t i = 0; i < n; i++) {
        assert_string_equal(back[i].address, rows[i].address);
        assert_string_equal(back[i].name, rows[i].name);
        assert_int_equal(back[i].context, rows[i].context);
    }
    free(back);
    assert_int_equal(vs_parse_routes("10.0.0.300 vf1 3\n", &back, &n), -EBADMSG);
}

static void
test_self(void **state)
{
    struct vs_self s = {
        .context = 3,
        .nodename = "web1",
        .domainname = "",
        .flags = SPEC_FLAG_PRIVATE,
        .init_pid = 48213,
        .capbset = 0xa80425fbULL,
        .procs_limit = 128,
        .procs = 7,
        .tasks = 9,
        .memory_limit = 256ULL << 20,
        .memory = 18ULL << 20,
        .memory_peak = 40ULL << 20,
        .rss_limit = 0,
        .rss = 9ULL << 20,
        .rss_peak = 12ULL << 20,
        .disk_limit = 1ULL << 30,
        .disk = 21ULL << 20,
        .files_limit = 65536,
        .files = 1204,
        .tcp_limit = 0,
        .tcp = 2,
        .vdev = "eth0",
        .hdev = "vf0e09ecc81e",
        .speed_kbit = 100000,
        .addrs = "10.88.1.2/32;10.88.1.3/32;fd00::2/128;",
        .incoming = 1048576,
        .outgoing = 52428,
    };
    struct vs_self back;
    size_t len;
    _cleanup_free_ char *text = vs_render_self(&s, &len);
    _cleanup_free_ char *g = golden("self", text);

    (void)state;
    assert_int_equal(vs_parse_self(g, &back), 0);
    /* Every field came back: rendered again, it is the golden file. */
    _cleanup_free_ char *again = vs_render_self(&back, &len);
    assert_string_equal(again, g);
    assert_int_equal(back.context, 3);
    assert_string_equal(back.nodename, "web1");
    assert_int_equal(back.memory_limit, 256ULL << 20);
    assert_string_equal(back.hdev, "vf0e09ecc81e");
    assert_int_equal(back.incoming, 1048576);
    assert_int_equal(vs_parse_self("vserver id: 3\nMemory Limit: 12 MB\n", &back), -EBADMSG);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_setup),
        cmocka_unit_test(test_trafstat),
        cmocka_unit_test(test_routes),
        cmocka_unit_test(test_self),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
