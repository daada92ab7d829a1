/* Tests for proto/spec: validation of every field, capability names and the
 * default bounding set. */
#include <errno.h>
#include <linux/capability.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include "proto/spec.h"

static void
valid(struct guest_spec *s)
{
    memset(s, 0, sizeof(*s));
    strcpy(s->id, "0f8fad5b-d9cb-469f-a165-70867728950e");
    strcpy(s->name, "web1");
    s->generation = 1;
    strcpy(s->template_name, "busybox");
}

/* Validates s and expects it refused for field. */
static void
refused(const struct guest_spec *s, const char *field)
{
    const char *f = NULL;
    assert_int_equal(spec_validate(s, &f), -EINVAL);
    assert_non_null(f);
    assert_string_equal(f, field);
    assert_int_equal(spec_validate(s, NULL), -EINVAL);
}

static void
test_minimal_valid(void **state)
{
    struct guest_spec s;
    const char *f = "untouched";
    valid(&s);
    assert_int_equal(spec_validate(&s, &f), 0);
    assert_string_equal(f, "untouched");
}

static void
test_identity_fields(void **state)
{
    struct guest_spec s;

    valid(&s);
    s.id[0] = 'A'; /* upper case */
    refused(&s, "id");
    valid(&s);
    s.id[8] = 'a'; /* dash missing */
    refused(&s, "id");
    valid(&s);
    s.id[35] = '\0'; /* short */
    refused(&s, "id");

    valid(&s);
    strcpy(s.name, "Web1");
    refused(&s, "name");
    strcpy(s.name, "-web");
    refused(&s, "name");
    strcpy(s.name, "");
    refused(&s, "name");
    memset(s.name, 'a', NAME_MAX_LEN);
    s.name[NAME_MAX_LEN] = '\0';
    s.generation = 1;
    assert_int_equal(spec_validate(&s, NULL), 0);

    valid(&s);
    s.generation = 0;
    refused(&s, "generation");
    valid(&s);
    strcpy(s.template_name, "a/b");
    refused(&s, "template");
}

static void
test_paths_and_process(void **state)
{
    struct guest_spec s;

    valid(&s);
    strcpy(s.init, "sbin/init");
    refused(&s, "init");
    strcpy(s.init, "/sbin/init\n");
    refused(&s, "init");
    strcpy(s.init, "/sbin/init");
    assert_int_equal(spec_validate(&s, NULL), 0);

    valid(&s);
    strcpy(s.domainname, "bad\x01");
    refused(&s, "domainname");

    valid(&s);
    s.halt_signal = 200;
    refused(&s, "halt_signal");
    valid(&s);
    s.stop_timeout = 3601;
    refused(&s, "stop_timeout");
    s.stop_timeout = 3600;
    assert_int_equal(spec_validate(&s, NULL), 0);
    valid(&s);
    s.flags = 1u << 5;
    refused(&s, "flags");
    s.flags = SPEC_FLAGS_ALL;
    assert_int_equal(spec_validate(&s, NULL), 0);
}

static void
test_limits(void **state)
{
    struct guest_spec s;

    valid(&s);
    s.limits.cpu_weight = 10000;
    s.limits.io_weight = 10000;
    assert_int_equal(spec_validate(&s, NULL), 0);
    s.limits.cpu_weight = 20000;
    refused(&s, "limits.cpu_weight");
    valid(&s);
    s.limits.io_weight = 10001;
    refused(&s, "limits.io_weight");
    valid(&s);
    s.limits.cpu_max = 1024 * 1000 + 1;
    refused(&s, "limits.cpu_max");
    valid(&s);
    s.limits.n_io_devs = SPEC_MAX_IO_DEVS + 1;
    refused(&s, "limits.io");
    valid(&s);
    s.limits.memory = 100;
    s.limits.rss = 200;
    refused(&s, "limits.rss");
    s.limits.memory = 0; /* rss alone is fine */
    assert_int_equal(spec_validate(&s, NULL), 0);
    /* Each limit is named for itself: a burst out of range is not "cpu_max". */
    valid(&s);
    s.limits.cpu_burst = 1024 * 1000 + 1;
    refused(&s, "limits.cpu_burst");
}

/* The limits table: one row per member of struct spec_limits before the I/O
 * list, in member order, with distinct keys and flags, and spec_validate
 * enforcing every row's max by the row's name. */
static void
test_limit_table(void **state)
{
    struct guest_spec s;
    size_t covered = 0;

    assert_int_equal(SPEC_N_LIMITS, 14);
    for (size_t i = 0; i < SPEC_N_LIMITS; i++) {
        const struct spec_limit_desc *d = &spec_limit_descs[i];
        char path[64];

        assert_int_equal(d->offset, covered);
        assert_true(d->size == 4 || d->size == 8);
        covered = d->offset + d->size;
        snprintf(path, sizeof(path), "limits.%s", d->key);
        assert_string_equal(d->path, path);
        assert_true(d->help[0] && d->flag[0] && d->max > 0);
        for (size_t j = 0; j < i; j++) {
            assert_string_not_equal(d->key, spec_limit_descs[j].key);
            assert_string_not_equal(d->flag, spec_limit_descs[j].flag);
        }
        /* The largest valid value is accepted and read back whole. */
        valid(&s);
        spec_limit_set(&s.limits, d, d->max);
        assert_true(spec_limit_get(&s.limits, d) == d->max);
        if (!strcmp(d->key, "rss"))
            s.limits.memory = 0; /* rss is also bounded by memory */
        assert_int_equal(spec_validate(&s, NULL), 0);
        /* One more is refused, naming the limit, when the type can hold it. */
        if (d->max < (d->size == 4 ? UINT32_MAX : UINT64_MAX)) {
            spec_limit_set(&s.limits, d, d->max + 1);
            refused(&s, d->path);
        }
    }
    assert_int_equal(covered, offsetof(struct spec_limits, n_io_devs));
    assert_int_equal(spec_limit_descs[SPEC_LIMIT_cpu_max].unit, SPEC_UNIT_MCORES);
    assert_int_equal(spec_limit_descs[SPEC_LIMIT_memory].unit, SPEC_UNIT_BYTES);
    assert_ptr_equal((char *)&s.limits + spec_limit_descs[SPEC_LIMIT_net_out].offset,
                     (char *)&s.limits.net_out);
}

/* The veth name the node creates and the master reports. */
static void
test_ifname(void **state)
{
    char n[SPEC_IFNAME_SIZE];

    spec_ifname("0E09ECC8-1e2f-4a5b-8c9d-0123456789ab", n);
    assert_string_equal(n, "vf0e09ecc81e");
    spec_ifname("0e09ecc8-1e00-0000-0000-000000000000", n);
    assert_string_equal(n, "vf0e09ecc81e");
    spec_ifname("ab", n);
    assert_string_equal(n, "vfab");
    spec_ifname("", n);
    assert_string_equal(n, "vf");
}

static void
test_addresses(void **state)
{
    struct guest_spec s;

    valid(&s);
    s.n_addrs = 2;
    assert_int_equal(netaddr_parse("10.0.0.5/32", &s.addrs[0]), 0);
    assert_int_equal(netaddr_parse("2001:db8::5", &s.addrs[1]), 0);
    assert_int_equal(spec_validate(&s, NULL), 0);
    assert_int_equal(netaddr_parse("10.0.0.5/24", &s.addrs[1]), 0); /* same address */
    refused(&s, "ips");
    valid(&s);
    s.n_addrs = 1;
    s.addrs[0].family = 99;
    refused(&s, "ips");
    valid(&s);
    s.n_addrs = 1;
    assert_int_equal(netaddr_parse("10.0.0.5", &s.addrs[0]), 0);
    s.addrs[0].prefix = 33;
    refused(&s, "ips");
    valid(&s);
    s.n_addrs = SPEC_MAX_ADDRS + 1;
    refused(&s, "ips");
}

static void
test_labels(void **state)
{
    struct guest_spec s;

    valid(&s);
    s.n_labels = 2;
    strcpy(s.labels[0].key, "tier");
    strcpy(s.labels[0].value, "front end");
    strcpy(s.labels[1].key, "owner");
    strcpy(s.labels[1].value, "");
    assert_int_equal(spec_validate(&s, NULL), 0);
    strcpy(s.labels[1].key, "tier");
    refused(&s, "labels");
    strcpy(s.labels[1].key, "Owner");
    refused(&s, "labels");
    strcpy(s.labels[1].key, "owner");
    strcpy(s.labels[1].value, "tab\there");
    refused(&s, "labels");
    valid(&s);
    s.n_labels = SPEC_MAX_LABELS + 1;
    refused(&s, "labels");
}

static void
test_caps(void **state)
{
    struct guest_spec s;
    uint64_t def = spec_default_caps();

    /* Docker's default set: exactly these 14. */
    assert_int_equal(__builtin_popcountll(def), 14);
    static const char *const docker[] = {
        "chown",   "dac_override", "fsetid",           "fowner",
        "mknod",   "net_raw",      "setgid",           "setuid",
        "setfcap", "setpcap",      "net_bind_service", "sys_chroot",
        "kill",    "audit_write",
    };
    uint64_t want = 0;
    for (size_t i = 0; i < sizeof(docker) / sizeof(docker[0]); i++) {
        int c = spec_cap_from_name(docker[i]);
        assert_true(c >= 0);
        want |= 1ULL << c;
    }
    assert_true(def == want);
    assert_false(def & (1ULL << CAP_SYS_ADMIN));
    assert_false(def & (1ULL << CAP_NET_ADMIN));

    valid(&s);
    assert_true(spec_effective_caps(&s) == def);
    s.caps_add = 1ULL << CAP_NET_ADMIN;
    s.caps_drop = 1ULL << CAP_MKNOD;
    assert_true(spec_effective_caps(&s) ==
                ((def | (1ULL << CAP_NET_ADMIN)) & ~(1ULL << CAP_MKNOD)));
    /* Drop wins over add. */
    s.caps_add = s.caps_drop = 1ULL << CAP_SYS_TIME;
    assert_false(spec_effective_caps(&s) & (1ULL << CAP_SYS_TIME));
    assert_int_equal(spec_validate(&s, NULL), 0);
    /* Bits without a name are refused. */
    s.caps_add = 1ULL << 50;
    refused(&s, "capabilities");

    /* Names both ways, with and without the prefix. */
    assert_int_equal(spec_cap_from_name("net_admin"), CAP_NET_ADMIN);
    assert_int_equal(spec_cap_from_name("cap_sys_admin"), CAP_SYS_ADMIN);
    assert_int_equal(spec_cap_from_name("checkpoint_restore"), 40);
    assert_int_equal(spec_cap_from_name("NET_ADMIN"), -EINVAL);
    assert_int_equal(spec_cap_from_name("nope"), -EINVAL);
    assert_int_equal(spec_cap_from_name(NULL), -EINVAL);
    assert_string_equal(spec_cap_name(CAP_CHOWN), "chown");
    assert_string_equal(spec_cap_name(39), "bpf");
    assert_null(spec_cap_name(41));
    assert_null(spec_cap_name(1000));
    for (unsigned c = 0; c <= 40; c++)
        assert_int_equal(spec_cap_from_name(spec_cap_name(c)), (int)c);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_minimal_valid),
        cmocka_unit_test(test_identity_fields),
        cmocka_unit_test(test_paths_and_process),
        cmocka_unit_test(test_limits),
        cmocka_unit_test(test_limit_table),
        cmocka_unit_test(test_ifname),
        cmocka_unit_test(test_addresses),
        cmocka_unit_test(test_labels),
        cmocka_unit_test(test_caps),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
