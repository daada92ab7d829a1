/* Tests for the importers' mapping (import_map.h) on sample sources the test
 * builds: a util-vserver guest directory, an OpenVZ CTID.conf with
 * barrier:limit values in pages and blocks, and a FreeVPS self text; each
 * maps its limits, addresses and names, lists what it cannot map, and finds
 * the device nodes a guest may not have. */
#include <errno.h>
#include <setjmp.h>
#include <stdbool.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>
#include <cmocka.h>

#include "cli/import_map.h"
#include "common/mem.h"

static char dir[64];

static void
put(const char *rel, const char *text)
{
    char p[512], cmd[600];
    snprintf(p, sizeof(p), "%s/%s", dir, rel);
    snprintf(cmd, sizeof(cmd), "mkdir -p \"$(dirname '%s')\"", p);
    assert_int_equal(system(cmd), 0);
    FILE *f = fopen(p, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

static json_int_t
lim(const struct import_plan *p, const char *k)
{
    return json_integer_value(json_object_get(json_object_get(p->spec, "limits"), k));
}

static bool
has_unmapped(const struct import_plan *p, const char *setting)
{
    size_t i;
    json_t *v;
    json_array_foreach(
        p->unmapped, i,
        v) if (!strcmp(json_string_value(json_object_get(v, "setting")), setting)) return true;
    return false;
}

static void
test_vserver(void **state)
{
    struct import_plan p;
    char conf[256], root[256];

    put("vs/etc/vservers/web1/context", "42\n");
    put("vs/etc/vservers/web1/uts/domainname", "example.org\n");
    put("vs/etc/vservers/web1/rlimits/nproc", "256\n");
    put("vs/etc/vservers/web1/rlimits/rss.hard", "65536\n");
    put("vs/etc/vservers/web1/rlimits/as", "inf\n");
    put("vs/etc/vservers/web1/interfaces/0/ip", "10.87.0.61\n");
    put("vs/etc/vservers/web1/interfaces/0/prefix", "24\n");
    put("vs/etc/vservers/web1/interfaces/1/ip", "fd00:87::61\n");
    put("vs/etc/vservers/web1/cgroup/cpu.shares", "2048\n");
    put("vs/etc/vservers/web1/cgroup/memory.limit_in_bytes", "134217728\n");
    put("vs/etc/vservers/web1/cgroup/memory.memsw.limit_in_bytes", "201326592\n");
    put("vs/etc/vservers/web1/bcapabilities", "CAP_NET_RAW\nCAP_NOPE\n");
    put("vs/etc/vservers/web1/ccapabilities", "set_utsname\n");
    put("vs/etc/vservers/web1/apps/init/mark", "default\n");
    put("vs/root/web1/etc/motd", "hi\n");
    snprintf(conf, sizeof(conf), "%s/vs/etc/vservers/web1", dir);
    snprintf(root, sizeof(root), "%s/vs/root/web1", dir);
    import_plan_init(&p, "busybox");
    assert_int_equal(import_vserver(conf, root, &p), 0);
    assert_int_equal(import_finish(&p, NULL), 0);
    assert_string_equal(json_string_value(json_object_get(p.spec, "name")), "web1");
    assert_string_equal(json_string_value(json_object_get(p.spec, "domainname")), "example.org");
    assert_int_equal(lim(&p, "procs"), 256);
    /* cgroup's memory wins over rlimits/rss (read later), swap = memsw - memory. */
    assert_int_equal(lim(&p, "memory"), 134217728);
    assert_int_equal(lim(&p, "swap"), 67108864);
    assert_int_equal(lim(&p, "cpu_weight"), 200);
    assert_true(lim(&p, "disk") >= 256 << 20);
    assert_int_equal(json_array_size(json_object_get(p.spec, "ips")), 2);
    assert_true(json_is_true(json_object_get(p.spec, "autostart")));
    assert_int_equal(json_array_size(json_object_get(p.spec, "caps_add")), 1);
    assert_true(has_unmapped(&p, "context"));
    assert_true(has_unmapped(&p, "rlimits/as"));
    assert_true(has_unmapped(&p, "bcapabilities")); /* CAP_NOPE */
    assert_true(has_unmapped(&p, "ccapabilities"));
    assert_true(has_unmapped(&p, "interfaces/0/prefix"));
    import_plan_clear(&p);
}

static void
test_openvz(void **state)
{
    struct import_plan p;
    char conf[256], root[256];

    put("vz/101.conf", "# a container\n"
                       "HOSTNAME=\"Mail.Example.com\"\n"
                       "IP_ADDRESS=\"10.87.0.62 fd00:87::62\"\n"
                       "DISKSPACE=\"1048576:1153434\"\n"
                       "DISKINODES=\"200000:220000\"\n"
                       "NUMPROC=\"240:240\"\n"
                       "PHYSPAGES=\"0:65536\"\n"
                       "SWAPPAGES=\"0:9223372036854775807\"\n"
                       "NUMTCPSOCK=\"360:360\"\n"
                       "NUMFILE=\"9312:9312\"\n"
                       "CPUUNITS=\"1000\"\n"
                       "CPULIMIT=\"50\"\n"
                       "CAPABILITY=\"NET_ADMIN:on MKNOD:off\"\n"
                       "NAMESERVER=\"192.0.2.53\"\n"
                       "KMEMSIZE=\"14372700:14790164\"\n"
                       "ONBOOT=\"yes\"\n"
                       "VE_PRIVATE=\"");
    snprintf(root, sizeof(root), "%s/vz/private/$VEID\"\n", dir);
    char path[512];
    snprintf(path, sizeof(path), "%s/vz/101.conf", dir);
    FILE *f = fopen(path, "a");
    fputs(root, f);
    fclose(f);
    put("vz/private/101/etc/hostname", "mail\n");
    snprintf(conf, sizeof(conf), "%s/vz/101.conf", dir);
    import_plan_init(&p, "busybox");
    assert_int_equal(import_openvz(conf, NULL, &p), 0);
    assert_int_equal(import_finish(&p, NULL), 0);
    assert_string_equal(json_string_value(json_object_get(p.spec, "name")), "mail");
    assert_string_equal(json_string_value(json_object_get(p.spec, "domainname")), "Example.com");
    assert_int_equal(lim(&p, "disk"), 1153434LL * 1024);
    assert_int_equal(lim(&p, "inodes"), 220000);
    assert_int_equal(lim(&p, "procs"), 240);
    assert_int_equal(lim(&p, "memory"), 65536LL * 4096);
    assert_int_equal(lim(&p, "swap"), 0); /* unlimited */
    assert_int_equal(lim(&p, "tcp_sockets"), 360);
    assert_int_equal(lim(&p, "nofile"), 9312);
    assert_int_equal(lim(&p, "cpu_weight"), 100);
    assert_true(json_real_value(json_object_get(json_object_get(p.spec, "limits"), "cpu_max")) ==
                0.5);
    assert_int_equal(json_array_size(json_object_get(p.spec, "caps_add")), 1);
    assert_int_equal(json_array_size(json_object_get(p.spec, "caps_drop")), 1);
    assert_true(has_unmapped(&p, "NAMESERVER"));
    assert_true(has_unmapped(&p, "KMEMSIZE"));
    assert_non_null(strstr(p.root, "/vz/private/101"));
    import_plan_clear(&p);

    put("vz/bad.conf", "NUMPROC=\"lots\"\nVE_PRIVATE=/x\n");
    snprintf(conf, sizeof(conf), "%s/vz/bad.conf", dir);
    import_plan_init(&p, "busybox");
    assert_int_equal(import_openvz(conf, NULL, &p), -EINVAL);
    assert_non_null(strstr(p.error, "NUMPROC"));
    import_plan_clear(&p);
}

static void
test_freevps(void **state)
{
    struct import_plan p;
    char self[256], root[256];

    put("fv/self", "hostname: shop\n"
                   "ip: 10.87.0.63, fd00:87::63\n"
                   "disk_quota: 524288\n"
                   "nproc = 128\n"
                   "memory 131072\n"
                   "cpu_limit: 25\n"
                   "traffic_in: 123456\n");
    put("fv/root/etc/motd", "hi\n");
    snprintf(self, sizeof(self), "%s/fv/self", dir);
    snprintf(root, sizeof(root), "%s/fv/root", dir);
    import_plan_init(&p, "busybox");
    assert_int_equal(import_freevps(self, root, &p), 0);
    assert_int_equal(import_finish(&p, "other"), 0);
    assert_string_equal(json_string_value(json_object_get(p.spec, "name")), "other");
    assert_int_equal(json_array_size(json_object_get(p.spec, "ips")), 2);
    assert_int_equal(lim(&p, "disk"), 524288LL * 1024);
    assert_int_equal(lim(&p, "procs"), 128);
    assert_int_equal(lim(&p, "memory"), 131072LL * 1024);
    assert_true(has_unmapped(&p, "traffic_in"));
    import_plan_clear(&p);
}

/* The `self` text as a FreeVPS view prints it (docs/freevps-views.md, the
 * example there): "Label: value" lines with labels of several words, sizes
 * in "N kB", "unlimited", and the device line with the rate and addresses.
 * The importer read "Memory Limit: 262144 kB" as the key "memory" with the
 * value "Limit: 262144 kB" and refused the whole file. */
static void
test_freevps_view(void **state)
{
    struct import_plan p;
    char self[256], root[256];

    put("fw/self", "vserver id: 3\n"
                   "nodename: web1\n"
                   "domainname: (none)\n"
                   "flags: private\n"
                   "init pid: 48213\n"
                   "CapBset: 00000000a80425fb\n"
                   "Process Limit: 128\n"
                   "Process Count: 7\n"
                   "tasks: 9\n"
                   "Memory Limit: 262144 kB\n"
                   "Used memory: 18432 kB\n"
                   "Max total memory: 40960 kB\n"
                   "Context RSS limit: unlimited\n"
                   "Context RSS: 9216 kB\n"
                   "Max RSS memory: 12288 kB\n"
                   "Disk Limit: 1048576 kB\n"
                   "Used disk memory: 21504 kB\n"
                   "Files limit: 65536\n"
                   "Used files: 1204\n"
                   "TCP sockets limit: 50\n"
                   "Established sockets: 2\n"
                   "eth0(vf0e09ecc81e): 100000 kbit/s: 10.88.1.2/32;10.88.1.3/32;fd00::2/128;\n"
                   "Incoming traffic: 1048576\n"
                   "Outgoing traffic: 52428\n");
    put("fw/root/etc/motd", "hi\n");
    snprintf(self, sizeof(self), "%s/fw/self", dir);
    snprintf(root, sizeof(root), "%s/fw/root", dir);
    import_plan_init(&p, "busybox");
    assert_int_equal(import_freevps(self, root, &p), 0);
    assert_int_equal(import_finish(&p, NULL), 0);
    assert_string_equal(json_string_value(json_object_get(p.spec, "name")), "web1");
    assert_null(json_object_get(p.spec, "domainname"));
    json_t *ips = json_object_get(p.spec, "ips");
    assert_int_equal(json_array_size(ips), 3);
    assert_string_equal(json_string_value(json_array_get(ips, 0)), "10.88.1.2");
    assert_string_equal(json_string_value(json_array_get(ips, 2)), "fd00::2");
    assert_int_equal(lim(&p, "procs"), 128);
    assert_int_equal(lim(&p, "memory"), 262144LL * 1024);
    assert_int_equal(lim(&p, "rss"), 0); /* unlimited: not set */
    assert_int_equal(lim(&p, "disk"), 1048576LL * 1024);
    assert_int_equal(lim(&p, "inodes"), 65536);
    assert_int_equal(lim(&p, "tcp_sockets"), 50);
    assert_int_equal(lim(&p, "net_in"), 100000LL * 1000);
    assert_int_equal(lim(&p, "net_out"), 100000LL * 1000);
    assert_true(has_unmapped(&p, "vserver id"));
    assert_true(has_unmapped(&p, "Used memory"));
    assert_true(has_unmapped(&p, "Incoming traffic"));
    assert_true(has_unmapped(&p, "CapBset"));
    json_t *flags = json_object_get(p.spec, "flags"); /* private goes with the guest */
    assert_int_equal(json_array_size(flags), 1);
    assert_string_equal(json_string_value(json_array_get(flags, 0)), "private");
    import_plan_clear(&p);

    /* lock was the old host's: unmapped; none sets nothing; a word that is
     * no flag fails the import. */
    const char *lines[] = {"flags: private,lock\n", "flags: none\n", "flags: lock\n",
                           "Flags: secret\n", "flags = private lock\n"};
    const int ok[] = {0, 0, 0, -EINVAL, 0};
    const size_t privates[] = {1, 0, 0, 0, 1};
    const bool locks[] = {true, false, true, false, true};
    for (size_t i = 0; i < ARRAY_SIZE(lines); i++) {
        char text[128];
        snprintf(text, sizeof(text), "nodename: web1\n%s", lines[i]);
        put("fw/self", text);
        import_plan_init(&p, "busybox");
        assert_int_equal(import_freevps(self, root, &p), ok[i]);
        if (ok[i] == 0) {
            assert_int_equal(json_array_size(json_object_get(p.spec, "flags")), privates[i]);
            assert_int_equal(has_unmapped(&p, "flags") || has_unmapped(&p, "Flags"), locks[i]);
        }
        import_plan_clear(&p);
    }
}

static void
test_device_nodes(void **state)
{
    struct import_plan p;
    char path[512];

    if (geteuid() != 0)
        skip();
    put("dv/self", "hostname: dev\n");
    put("dv/root/dev/.keep", "");
    snprintf(path, sizeof(path), "%s/dv/root/dev", dir);
    assert_int_equal(system("true"), 0);
    mkdir(path, 0755);
    snprintf(path, sizeof(path), "%s/dv/root/dev/null", dir);
    assert_int_equal(mknod(path, S_IFCHR | 0666, makedev(1, 3)), 0);
    snprintf(path, sizeof(path), "%s/dv/root/dev/sda", dir);
    assert_int_equal(mknod(path, S_IFBLK | 0660, makedev(8, 0)), 0);
    snprintf(path, sizeof(path), "%s/dv/self", dir);
    char root[256];
    snprintf(root, sizeof(root), "%s/dv/root", dir);
    import_plan_init(&p, "busybox");
    assert_int_equal(import_freevps(path, root, &p), 0);
    assert_int_equal(import_finish(&p, NULL), 0);
    assert_int_equal(json_array_size(p.excludes), 1);
    assert_string_equal(json_string_value(json_array_get(p.excludes, 0)), "dev/sda");
    import_plan_clear(&p);
}

static int
setup(void **state)
{
    snprintf(dir, sizeof(dir), "/tmp/import-test-%d-XXXXXX", (int)getpid());
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
        cmocka_unit_test(test_vserver),      cmocka_unit_test(test_openvz),
        cmocka_unit_test(test_freevps),      cmocka_unit_test(test_freevps_view),
        cmocka_unit_test(test_device_nodes),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
