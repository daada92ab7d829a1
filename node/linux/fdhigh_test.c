/* fdhigh_move: up past FD_SETSIZE when the limit allows, else unchanged. */
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/resource.h>
#include <sys/select.h>
#include <unistd.h>

#include <cmocka.h>

#include "node/linux/fdhigh.h"

static void
test_move(void **state)
{
    struct rlimit rl;
    (void)state;

    assert_int_equal(fdhigh_move(-5), -5);
    assert_int_equal(getrlimit(RLIMIT_NOFILE, &rl), 0);
    int fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
    assert_true(fd >= 0 && fd < FD_SETSIZE);
    if (rl.rlim_cur <= FD_SETSIZE) {
        /* No room above: the descriptor stays, open. */
        assert_int_equal(fdhigh_move(fd), fd);
        assert_true(fcntl(fd, F_GETFD) >= 0);
        close(fd);
        return;
    }
    int high = fdhigh_move(fd);
    assert_true(high >= FD_SETSIZE);
    assert_true(fcntl(high, F_GETFD) & FD_CLOEXEC);
    assert_int_equal(fcntl(fd, F_GETFD), -1); /* the low one is closed */
    assert_int_equal(fdhigh_move(high), high);
    close(high);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_move)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
