#!/usr/bin/env bash
# The node/linux unit tests that drive the kernel's cgroups for real, run on
# Debian 12's own kernel with pure cgroup v2 (deploy/vm-test vm_units): on
# the hybrid host of `ctest -L unit` they take their v1 branches, or its
# controller-less cgroup2 mount (/sys/fs/cgroup/unified).
#
#   spawn_cgroup_test   every test: clones into a v2 cgroup with and without
#                       a user namespace, into one once killed with
#                       cgroup.kill (which 6.1.0-50 kills at birth), into
#                       one a kill cut short left frozen, and an exec into
#                       a guest frozen on purpose (test_cgroups, v1 and v2
#                       at once, skips: there is no v1 here)
#   linux_backend_test  test_thaw_stray (the restarted agent's thaw of a
#                       guest a kill cut short left frozen, a move's freeze
#                       kept) and test_list (the cgroups the start-up's kill
#                       of unrecorded guests reads); the whole program takes
#                       about four minutes under emulation
#   linux_backend_stop_test  a guest whose init moved into a cgroup below
#                       the guest's (init.scope) is killed, stopped, and its
#                       destroy leaves no cgroup directory; also with that
#                       cgroup frozen by itself (cgroup.freeze 1), at a
#                       stop's kill and at a destroy (cgroup.kill): a fatal
#                       signal ends a frozen process on v2
#
# A test program that skips itself (77) fails here, where each has what it
# needs; cmocka's own report lists a skipped test.
. "$VFLEET_SOURCE_DIR/tests/integration/lib.sh"

if [ "${VFLEET_VM:-0}" != 1 ] || [ "$(cg_mode)" != v2 ]; then
    echo "SKIP: runs in the VM test host (deploy/vm-test vm_units): pure cgroup v2 on Debian's kernel"
    exit 77
fi

# unit PROGRAM [FILTER]: runs one test program (only the tests FILTER
# names: linux_backend_test's VFLEET_TEST_ONLY) and fails on its failure;
# its output is left in $out.
unit() {
    local t=$1 only=${2:-} start=$SECONDS rc=0
    [ -x "$VFLEET_TESTBIN/$t" ] || fail "no $VFLEET_TESTBIN/$t: build it (cmake --build build)"
    out=$(cd /tmp && VFLEET_TEST_ONLY=$only "$VFLEET_TESTBIN/$t" 2>&1) || rc=$?
    echo "$out" | grep -E '^\[ *(RUN|OK|SKIPPED|FAILED|PASSED|ERROR) *\]|^\[=+\]'
    [ $rc = 77 ] && fail "$t skipped itself on the v2 host"
    [ $rc = 0 ] || {
        echo "$out" | tail -40
        fail "$t${only:+ ($only)} failed (exit $rc)"
    }
    ok "$t${only:+ ($only)} on pure cgroup v2 in $((SECONDS - start)) s"
}

unit spawn_cgroup_test
# Every cgroup2 test ran: only test_cgroups, which needs v1, may skip.
n=$(echo "$out" | grep -c '^\[  SKIPPED \] test_cgroup2') || true
[ "$n" = 0 ] || fail "spawn_cgroup_test skipped $n of its cgroup2 tests on the v2 host"
unit linux_backend_test test_thaw_stray
unit linux_backend_test test_list
unit linux_backend_stop_test
