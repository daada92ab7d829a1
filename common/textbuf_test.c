/* Tests for common/textbuf: pieces of every size across the growth of the
 * buffer give the same text as one snprintf of the whole. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "common/textbuf.h"

/* A buffer left at {0} grows from 1 KiB by doubling; puts, characters and
 * printf's text (a piece larger than what is left, and one larger than the
 * whole buffer) come out in order, NUL-terminated. */
static void
test_pieces(void **state)
{
    struct textbuf b = {0};
    char want[8192], big[3000];
    size_t n = 0;

    (void)state;
    memset(big, 'x', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    for (int i = 0; i < 40; i++) {
        textbuf_puts(&b, "line ");
        textbuf_putc(&b, (char)('a' + i % 26));
        textbuf_printf(&b, " %d %s\n", i * 1000, i == 30 ? big : "-");
        n += (size_t)snprintf(want + n, sizeof(want) - n, "line %c %d %s\n", 'a' + i % 26, i * 1000,
                              i == 30 ? big : "-");
        assert_true(b.len <= b.cap);
    }
    textbuf_put(&b, "end", 3);
    n += (size_t)snprintf(want + n, sizeof(want) - n, "end");
    assert_int_equal(b.len, n);
    assert_int_equal(b.cap, 4096); /* 1 KiB doubled until the text (~3,600 bytes) fit */
    assert_string_equal(textbuf_str(&b), want);
    free(b.p);
}

/* textbuf_init allocates what it is told and grows from there; an empty
 * text is "" (allocated), not NULL. */
static void
test_init(void **state)
{
    struct textbuf b;

    (void)state;
    textbuf_init(&b, 16);
    assert_int_equal(b.cap, 16);
    assert_string_equal(textbuf_str(&b), "");
    textbuf_puts(&b, "0123456789abcdef");
    assert_int_equal(b.cap, 32);
    textbuf_printf(&b, "%s", "");
    assert_string_equal(textbuf_str(&b), "0123456789abcdef");
    free(b.p);

    b = (struct textbuf){0};
    assert_string_equal(textbuf_str(&b), "");
    assert_int_equal(b.cap, 1024);
    free(b.p);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_pieces), cmocka_unit_test(test_init)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
