/* Tests for proto/spec_pack: a spec survives packing whole (every field,
 * at the caps too), a small spec packs small, and what is not a whole packed
 * spec is refused. */
#include "proto/codec_fixture.h"
#include "proto/spec_pack.h"

/* pack, unpack, and the result equals the input byte for byte (both were
 * zeroed before filling, so unused array tails and padding agree). */
static void
roundtrip(const struct guest_spec *in)
{
    _cleanup_free_ struct guest_spec *out = xmalloc(sizeof(*out));
    _cleanup_free_ char *buf = NULL;
    size_t len = 0;

    assert_int_equal(spec_pack(in, &buf, &len), 0);
    assert_non_null(buf);
    assert_int_equal(spec_unpack(buf, len, out), 0);
    cmp_spec(in, out);
    assert_memory_equal(in, out, sizeof(*in));
}

static void
test_roundtrip_full(void **state)
{
    _cleanup_free_ struct guest_spec *s = xmalloc(sizeof(*s));

    fill_spec(s);
    roundtrip(s);
}

static void
test_roundtrip_at_caps(void **state)
{
    _cleanup_free_ struct guest_spec *s = xmalloc(sizeof(*s));

    fill_spec(s);
    s->n_labels = SPEC_MAX_LABELS;
    for (uint32_t i = 0; i < SPEC_MAX_LABELS; i++) {
        /* "k00aaa...a": unique, and as long as a key may be. */
        memset(s->labels[i].key, 'a', SPEC_LABEL_KEY_MAX);
        s->labels[i].key[0] = 'k';
        s->labels[i].key[1] = (char)('0' + i / 10);
        s->labels[i].key[2] = (char)('0' + i % 10);
        s->labels[i].key[SPEC_LABEL_KEY_MAX] = '\0';
        memset(s->labels[i].value, 'v', SPEC_LABEL_VAL_MAX);
        s->labels[i].value[SPEC_LABEL_VAL_MAX] = '\0';
    }
    s->n_addrs = SPEC_MAX_ADDRS;
    for (uint32_t i = 0; i < SPEC_MAX_ADDRS; i++) {
        char a[32];
        snprintf(a, sizeof(a), "10.1.%u.%u/32", i / 200, i % 200 + 1);
        assert_int_equal(netaddr_parse(a, &s->addrs[i]), 0);
    }
    roundtrip(s);
}

/* A spec with little in it packs small: sized by content, not by the caps. */
static void
test_small_spec_packs_small(void **state)
{
    _cleanup_free_ struct guest_spec *s = xcalloc(1, sizeof(*s));
    _cleanup_free_ char *buf = NULL;
    size_t len = 0;

    strcpy(s->id, UUID1);
    strcpy(s->name, "g0000001");
    s->generation = 1;
    strcpy(s->template_name, "busybox");
    s->limits.memory = 64ULL << 20;
    s->limits.disk = 1ULL << 30;
    s->limits.cpu_max = 500;
    s->n_addrs = 1;
    assert_int_equal(netaddr_parse("10.64.0.5/32", &s->addrs[0]), 0);
    assert_int_equal(spec_pack(s, &buf, &len), 0);
    print_message("sizeof(struct guest_spec) %zu, this spec packed %zu bytes\n", sizeof(*s), len);
    assert_true(len < 300);
    roundtrip(s);
}

static void
test_refused(void **state)
{
    _cleanup_free_ struct guest_spec *s = xmalloc(sizeof(*s));
    _cleanup_free_ char *buf = NULL;
    char *none = (char *)1;
    size_t len = 7;

    /* An invalid spec is not packed: nothing allocated. */
    fill_spec(s);
    s->restart = SPEC_N_RESTART;
    assert_int_equal(spec_pack(s, &none, &len), -EINVAL);
    assert_null(none);
    assert_int_equal(len, 0);

    fill_spec(s);
    assert_int_equal(spec_pack(s, &buf, &len), 0);
    /* Every cut short, trailing bytes, nothing at all: refused, *s zeroed. */
    for (size_t cut = 0; cut < len; cut++)
        assert_int_equal(spec_unpack(buf, cut, s), -EBADMSG);
    assert_true(s->id[0] == '\0' && s->n_labels == 0);
    buf = xrealloc(buf, len + 1);
    buf[len] = '\0';
    assert_int_equal(spec_unpack(buf, len + 1, s), -EBADMSG);
    assert_int_equal(spec_unpack(NULL, 0, s), -EBADMSG);
    /* A string longer than its member: the id's NUL moved past 36 bytes. */
    memset(buf, 'a', 40);
    assert_int_equal(spec_unpack(buf, len, s), -EBADMSG);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_roundtrip_full),
        cmocka_unit_test(test_roundtrip_at_caps),
        cmocka_unit_test(test_small_spec_packs_small),
        cmocka_unit_test(test_refused),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
