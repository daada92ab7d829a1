/* Tests for proto/codec: every message type survives a round trip, the
 * limits table travels whole, and errors have their names (malformed input:
 * codec_reject_test.c). */
#include "proto/codec_fixture.h"

/* ------------------------------------------------------------ round trip */

static void
test_roundtrip_every_type(void **state)
{
    for (int t = MSG_INVALID + 1; t < MSG_TYPE_COUNT; t++) {
        struct msg in, out;
        _cleanup_free_ char *buf = NULL;
        size_t len = 0;
        char err[256];

        fill(&in, (enum msg_type)t);
        assert_int_equal(msg_encode(&in, &buf, &len), 0);
        assert_true(len > 0 && len <= PROTO_MAX_FRAME);
        int r = msg_decode(buf, len, &out, err, sizeof(err));
        if (r != 0)
            print_error("type %s: %s\n", msg_type_name((enum msg_type)t), err);
        assert_int_equal(r, 0);
        cmp_msg(&in, &out);
        msg_clear(&in);
        msg_clear(&out);
        assert_int_equal(out.type, MSG_INVALID);
    }
}

/* Decoding writes the header and the member the type uses, nothing past it
 * (the union is as large as a hello; an ack is 64 bytes of it), and every
 * type's member is zeroed first: a message decoded over one of another type
 * reads the same as into a zeroed struct. msg_clear leaves {.type = 0}
 * wherever the type's member reaches; a frame refused before its type is
 * known leaves the whole union zeroed. */
static void
test_decode_writes_its_member_only(void **state)
{
    struct msg *m = xmalloc(sizeof(*m));
    const unsigned char *u = (const unsigned char *)&m->u;

    for (int t = MSG_INVALID + 1; t < MSG_TYPE_COUNT; t++) {
        struct msg in;
        _cleanup_free_ char *buf = NULL;
        size_t len = 0, n = msg_member_size((enum msg_type)t);

        fill(&in, (enum msg_type)t);
        assert_int_equal(msg_encode(&in, &buf, &len), 0);
        assert_true(n > 0 && n <= sizeof(m->u));
        if (t != MSG_HELLO) /* the largest member: its row is the union's size */
            assert_true(n < sizeof(m->u));
        memset(m, 0xa5, sizeof(*m));
        assert_int_equal(msg_decode(buf, len, m, NULL, 0), 0);
        cmp_msg(&in, m);
        for (size_t i = n; i < sizeof(m->u); i++)
            assert_int_equal(u[i], 0xa5);
        msg_clear(m);
        assert_int_equal(m->type, MSG_INVALID);
        assert_true(m->id == 0);
        for (size_t i = 0; i < n; i++)
            assert_int_equal(u[i], 0);
        msg_clear(&in);
    }
    /* An ack's member is far smaller than the union. */
    assert_true(msg_member_size(MSG_ACK) < sizeof(m->u) / 100);
    assert_int_equal(msg_member_size(MSG_INVALID), sizeof(m->u));
    assert_int_equal(msg_member_size(MSG_TYPE_COUNT), sizeof(m->u));

    /* Refused before the type is known: the whole union is zero. */
    memset(m, 0xa5, sizeof(*m));
    assert_int_equal(msg_decode("\x81\xa1x\x01", 4, m, NULL, 0), -EBADMSG);
    assert_int_equal(m->type, MSG_INVALID);
    for (size_t i = 0; i < sizeof(m->u); i++)
        assert_int_equal(u[i], 0);
    msg_clear(m);
    free(m);
}

/* msg_init gives what {.type = t} gives wherever encoding and msg_clear
 * look: the same bytes on the wire, with the rest of the union untouched. */
static void
test_init_is_a_zeroed_message(void **state)
{
    struct msg *m = xmalloc(sizeof(*m)), *z = xmalloc(sizeof(*z));
    const unsigned char *u = (const unsigned char *)&m->u;

    for (int t = MSG_INVALID + 1; t < MSG_TYPE_COUNT; t++) {
        size_t n = msg_member_size((enum msg_type)t);
        memset(m, 0xa5, sizeof(*m));
        msg_init(m, (enum msg_type)t);
        assert_int_equal(m->type, t);
        assert_true(m->id == 0);
        for (size_t i = 0; i < n; i++)
            assert_int_equal(u[i], 0);
        for (size_t i = n; i < sizeof(m->u); i++)
            assert_int_equal(u[i], 0xa5);
        memset(z, 0, sizeof(*z));
        z->type = (enum msg_type)t;
        char *a = NULL, *b = NULL;
        size_t la = 0, lb = 0;
        int ra = msg_encode(m, &a, &la), rb = msg_encode(z, &b, &lb);
        assert_int_equal(ra, rb);
        assert_true(la == lb && (la == 0 || memcmp(a, b, la) == 0));
        free(a);
        free(b);
        msg_clear(m);
    }
    free(m);
    free(z);
}

/* Optional fields may be left out, and zero-valued ones survive as zero. */
static void
test_roundtrip_minimal(void **state)
{
    struct msg in = {.type = MSG_ACK, .id = 1}, out;
    _cleanup_free_ char *buf = NULL;
    size_t len;

    in.u.ack.ref = 0;
    assert_int_equal(msg_encode(&in, &buf, &len), 0);
    assert_int_equal(msg_decode(buf, len, &out, NULL, 0), 0);
    cmp_msg(&in, &out);
    msg_clear(&out);
}

/* A hello of the required fields, with leftovers: n when n >= 0. */
static void
hello_frame(struct frame *f, int64_t leftovers)
{
    frame_init(f);
    p_envelope(f, 10 + (leftovers >= 0), 1, "hello", 5);
    p_str(f, "node");
    p_str(f, "h1");
    p_str(f, "agent_version");
    p_str(f, "0.1.0");
    p_str(f, "kernel");
    p_str(f, "6.1.0");
    p_str(f, "cgroup");
    p_str(f, "v2");
    p_str(f, "backend");
    p_str(f, "linux");
    const char *caps[] = {"cpus", "memory", "disk", "max_guests"};
    for (size_t i = 0; i < ARRAY_SIZE(caps); i++) {
        p_str(f, caps[i]);
        msgpack_pack_uint64(&f->pk, 1000);
    }
    p_str(f, "inventory");
    msgpack_pack_array(&f->pk, 0);
    if (leftovers >= 0) {
        p_str(f, "leftovers");
        msgpack_pack_uint64(&f->pk, (uint64_t)leftovers);
    }
}

/* A hello's leftovers: an older node sends none, which reads as not known
 * (has_leftovers false), not as none; 0 sent is known to be none. */
static void
test_hello_leftovers(void **state)
{
    const int64_t cases[] = {-1, 0, 7};

    for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
        struct frame f;
        struct msg m;
        char err[256] = "";
        hello_frame(&f, cases[i]);
        memset(&m, 0xa5, sizeof(m));
        int r = decode_frame(&f, &m, err, sizeof(err));
        if (r != 0)
            print_error("%s\n", err);
        assert_int_equal(r, 0);
        assert_int_equal(m.u.hello.has_leftovers, cases[i] >= 0);
        assert_int_equal(m.u.hello.leftovers, cases[i] >= 0 ? cases[i] : 0);
        msg_clear(&m);
        frame_done(&f);
    }
    /* A sender that does not know them does not send them (not 0). */
    struct msg in, out;
    _cleanup_free_ char *buf = NULL;
    size_t len = 0;
    fill(&in, MSG_HELLO);
    in.u.hello.leftovers = 5;
    in.u.hello.has_leftovers = false;
    assert_int_equal(msg_encode(&in, &buf, &len), 0);
    assert_null(memmem(buf, len, "leftovers", 9));
    assert_int_equal(msg_decode(buf, len, &out, NULL, 0), 0);
    assert_false(out.u.hello.has_leftovers);
    assert_int_equal(out.u.hello.leftovers, 0);
    msg_clear(&in);
    msg_clear(&out);
}

/* The largest inventory and usage batch the caps allow still fit one frame
 * and the object bound, so the caps do not contradict each other. */
static void
test_roundtrip_at_caps(void **state)
{
    struct msg in, out;
    char *buf = NULL;
    size_t len = 0;

    fill(&in, MSG_HELLO);
    free(in.u.hello.inventory);
    in.u.hello.n_inventory = PROTO_MAX_INVENTORY;
    in.u.hello.inventory = xcalloc(PROTO_MAX_INVENTORY, sizeof(*in.u.hello.inventory));
    for (uint32_t i = 0; i < PROTO_MAX_INVENTORY; i++) {
        struct msg_inventory_item *it = &in.u.hello.inventory[i];
        snprintf(it->id, sizeof(it->id), "00000000-0000-4000-8000-%012x", i);
        snprintf(it->name, sizeof(it->name), "guest-%u", i);
        it->generation = UINT64_MAX - i;
        it->running = i % 2;
    }
    assert_int_equal(msg_encode(&in, &buf, &len), 0);
    assert_int_equal(msg_decode(buf, len, &out, NULL, 0), 0);
    cmp_msg(&in, &out);
    msg_clear(&in);
    msg_clear(&out);
    free(buf);

    fill(&in, MSG_USAGE);
    in.u.usage.samples =
        xreallocarray(in.u.usage.samples, PROTO_MAX_SAMPLES, sizeof(struct guest_usage));
    for (uint32_t i = 2; i < PROTO_MAX_SAMPLES; i++)
        in.u.usage.samples[i] = in.u.usage.samples[i % 2];
    in.u.usage.n_samples = PROTO_MAX_SAMPLES;
    assert_int_equal(msg_encode(&in, &buf, &len), 0);
    assert_int_equal(msg_decode(buf, len, &out, NULL, 0), 0);
    cmp_msg(&in, &out);
    msg_clear(&in);
    msg_clear(&out);
    free(buf);

    /* One over either cap is refused by the encoder. */
    fill(&in, MSG_USAGE);
    in.u.usage.n_samples = PROTO_MAX_SAMPLES + 1;
    assert_int_equal(msg_encode(&in, &buf, &len), -EINVAL);
    in.u.usage.n_samples = 2;
    msg_clear(&in);
}

static void
test_limit_table_on_the_wire(void **state)
{
    struct msg in, out;
    _cleanup_free_ char *buf = NULL;
    size_t len = 0;
    char err[256];
    msgpack_unpacked up;
    size_t off = 0;

    fill(&in, MSG_GUEST_APPLY);
    for (size_t i = 0; i < SPEC_N_LIMITS; i++)
        spec_limit_set(&in.u.apply.limits, &spec_limit_descs[i], spec_limit_descs[i].max);
    assert_int_equal(msg_encode(&in, &buf, &len), 0);
    assert_int_equal(msg_decode(buf, len, &out, err, sizeof(err)), 0);
    for (size_t i = 0; i < SPEC_N_LIMITS; i++)
        assert_true(spec_limit_get(&out.u.apply.limits, &spec_limit_descs[i]) ==
                    spec_limit_descs[i].max);
    cmp_msg(&in, &out);

    /* The map's size comes from the table: every row and "io", nothing else. */
    msgpack_unpacked_init(&up);
    assert_int_equal(msgpack_unpack_next(&up, buf, len, &off), MSGPACK_UNPACK_SUCCESS);
    const msgpack_object *spec = NULL, *limits = NULL;
    for (uint32_t i = 0; i < up.data.via.map.size; i++)
        if (up.data.via.map.ptr[i].key.via.str.size == 4 &&
            !memcmp(up.data.via.map.ptr[i].key.via.str.ptr, "spec", 4))
            spec = &up.data.via.map.ptr[i].val;
    assert_non_null(spec);
    for (uint32_t i = 0; i < spec->via.map.size; i++)
        if (spec->via.map.ptr[i].key.via.str.size == 6 &&
            !memcmp(spec->via.map.ptr[i].key.via.str.ptr, "limits", 6))
            limits = &spec->via.map.ptr[i].val;
    assert_non_null(limits);
    assert_int_equal(limits->type, MSGPACK_OBJECT_MAP);
    assert_int_equal(limits->via.map.size, SPEC_N_LIMITS + 1);
    msgpack_unpacked_destroy(&up);
    msg_clear(&out);

    for (size_t i = 0; i < SPEC_N_LIMITS; i++) {
        const struct spec_limit_desc *d = &spec_limit_descs[i];
        uint64_t type_max = d->size == 4 ? UINT32_MAX : UINT64_MAX;
        char what[64];
        struct frame f;

        snprintf(what, sizeof(what), "spec.%s", d->path);
        /* Wider than the member: refused by the decoder's type check. */
        if (type_max < UINT64_MAX) {
            apply_frame(&f, 40 + i, 1, UUID1, "web1");
            p_str(&f, "limits");
            msgpack_pack_map(&f.pk, 1);
            p_str(&f, d->key);
            msgpack_pack_uint64(&f.pk, type_max + 1);
            expect(&f, -EINVAL, 40 + i, what);
            frame_done(&f);
        }
        if (d->max == type_max)
            continue;
        /* Above the row's max: refused by spec_validate, by its name. */
        apply_frame(&f, 60 + i, 1, UUID1, "web1");
        p_str(&f, "limits");
        msgpack_pack_map(&f.pk, 1);
        p_str(&f, d->key);
        msgpack_pack_uint64(&f.pk, d->max + 1);
        expect(&f, -EINVAL, 60 + i, what);
        frame_done(&f);
        /* And the encoder refuses to send it. */
        fill(&in, MSG_GUEST_APPLY);
        spec_limit_set(&in.u.apply.limits, d, d->max + 1);
        free(buf);
        buf = NULL;
        assert_int_equal(msg_encode(&in, &buf, &len), -EINVAL);
        assert_null(buf);
    }
}

/* ------------------------------------------------------------ names */

static void
test_error_names_and_errno(void **state)
{
    for (int e = MSG_ERR_NONE + 1; e < MSG_ERR_COUNT; e++)
        assert_int_equal(msg_error_from_name(msg_error_name((enum msg_error)e)), e);
    assert_string_equal(msg_error_name(MSG_ERR_NO_SPACE), "no_space");
    assert_int_equal(msg_error_from_name("nope"), MSG_ERR_NONE);
    assert_null(msg_error_name(MSG_ERR_COUNT));

    assert_int_equal(msg_error_from_errno(0), MSG_ERR_NONE);
    assert_int_equal(msg_error_from_errno(-EINVAL), MSG_ERR_BAD_REQUEST);
    assert_int_equal(msg_error_from_errno(-ENOENT), MSG_ERR_NOT_FOUND);
    assert_int_equal(msg_error_from_errno(-EEXIST), MSG_ERR_CONFLICT);
    assert_int_equal(msg_error_from_errno(-EALREADY), MSG_ERR_CONFLICT);
    assert_int_equal(msg_error_from_errno(-ESTALE), MSG_ERR_STALE);
    assert_int_equal(msg_error_from_errno(-ENOLCK), MSG_ERR_LOCKED);
    assert_int_equal(msg_error_from_errno(-EACCES), MSG_ERR_PRIVATE);
    assert_int_equal(msg_error_from_errno(-ENOSPC), MSG_ERR_NO_SPACE);
    assert_int_equal(msg_error_from_errno(-EDQUOT), MSG_ERR_NO_SPACE);
    assert_int_equal(msg_error_from_errno(-EOPNOTSUPP), MSG_ERR_UNSUPPORTED);
    assert_int_equal(msg_error_from_errno(-ENOSYS), MSG_ERR_UNSUPPORTED);
    assert_int_equal(msg_error_from_errno(-EAGAIN), MSG_ERR_BUSY);
    assert_int_equal(msg_error_from_errno(-EBUSY), MSG_ERR_BUSY);
    assert_int_equal(msg_error_from_errno(-EIO), MSG_ERR_INTERNAL);
    assert_int_equal(msg_error_from_errno(-EPERM), MSG_ERR_INTERNAL);
}

/* With VFLEET_WRITE_SEEDS=dir, writes one valid frame of every type to dir
 * (the fuzzer's seed corpus, tests/fuzz/corpus/decode) before testing. */
static void
write_seeds(const char *dir)
{
    for (int t = MSG_INVALID + 1; t < MSG_TYPE_COUNT; t++) {
        struct msg m;
        char *buf = NULL, path[4096];
        size_t len = 0;

        fill(&m, (enum msg_type)t);
        if (msg_encode(&m, &buf, &len) < 0)
            abort();
        snprintf(path, sizeof(path), "%s/%s.msgpack", dir, msg_type_name((enum msg_type)t));
        FILE *fp = fopen(path, "we");
        if (!fp || fwrite(buf, 1, len, fp) != len || fclose(fp) != 0)
            abort();
        free(buf);
        msg_clear(&m);
    }
}

int
main(void)
{
    const char *seeds = getenv("VFLEET_WRITE_SEEDS");
    if (seeds)
        write_seeds(seeds);

    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_roundtrip_every_type),
        cmocka_unit_test(test_roundtrip_minimal),
        cmocka_unit_test(test_hello_leftovers),
        cmocka_unit_test(test_decode_writes_its_member_only),
        cmocka_unit_test(test_init_is_a_zeroed_message),
        cmocka_unit_test(test_roundtrip_at_caps),
        cmocka_unit_test(test_limit_table_on_the_wire),
        cmocka_unit_test(test_error_names_and_errno),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
