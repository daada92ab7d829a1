/* The spawn_config the backend builds for a guest's cgroups
 * (lx_spawn_config_of): on a pure v2 host init is cloned into its cgroup
 * (spawn_config.cgroup2, CLONE_INTO_CGROUP) and joins nothing by
 * cgroup.procs, whose write takes the global cgroup_threadgroup_rwsem and
 * waits out an RCU grace period (proc.h); elsewhere it joins its v1 cgroups
 * through their tasks files as before. The VM test host runs it for real
 * (deploy/vm/scenarios/vm_limits.sh checks init's cgroup). */
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
#include "node/linux/linux_backend_int.h"

static void
spec_of(struct guest_spec *s)
{
    memset(s, 0, sizeof(*s));
    strcpy(s->id, "5f0c2a1e-0000-4000-8000-000000000001");
    strcpy(s->name, "web1");
}

static void
test_v2_clones_into_cgroup(void **state)
{
    (void)state;
    char root[] = "/tmp/vf-spawncfg-XXXXXX";
    assert_non_null(mkdtemp(root));
    struct linux_backend l = {0};
    assert_int_equal(cgroup_mgr_new_v2(root, "vfleet", &l.cgroups), 0);
    struct guest_spec s;
    spec_of(&s);
    struct guest_paths p = {0};
    struct spawn_config c;

    assert_int_equal(lx_spawn_config_of(&l, &s, NULL, &p, &c), 0);
    _cleanup_free_ char *want = xasprintf("%s/vfleet/%s", root, s.id);
    assert_string_equal(c.cgroup2, want);
    /* No cgroup.procs for init to write "0" into. */
    assert_int_equal(c.n_cgroup_procs, 0);
    cgroup_mgr_destroy(&l.cgroups);
    assert_int_equal(rmdir(root), 0);
}

static void
test_v1_joins_tasks(void **state)
{
    (void)state;
    struct linux_backend l = {0};
    int r = cgroup_mgr_new("/sys/fs/cgroup", "vfleet", &l.cgroups);
    if (r < 0 || cgroup_mgr_mode(l.cgroups) == CGROUP_V2) {
        cgroup_mgr_destroy(&l.cgroups);
        skip(); /* no v1 hierarchies here (the VM host is pure v2) */
    }
    struct guest_spec s;
    spec_of(&s);
    struct guest_paths p = {0};
    struct spawn_config c;

    assert_int_equal(lx_spawn_config_of(&l, &s, NULL, &p, &c), 0);
    /* v1 and hybrid hosts: exactly as before, no clone into a cgroup. */
    assert_string_equal(c.cgroup2, "");
    assert_true(c.n_cgroup_procs > 0);
    for (uint32_t i = 0; i < c.n_cgroup_procs; i++)
        assert_non_null(strstr(c.cgroup_procs[i], s.id));
    cgroup_mgr_destroy(&l.cgroups);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_v2_clones_into_cgroup),
        cmocka_unit_test(test_v1_joins_tasks),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
