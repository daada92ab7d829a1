/* Tests for the provision group of the guest spec: what it accepts, its JSON
 * form (lists joined and split back) and its wire form. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "proto/msg.h"
#include "proto/spec_json.h"

#define ID   "0f8e4a52-3c1d-4b7a-9e21-5d6c7b8a9f01"
#define HASH "$y$j9T$abcdefghijklmnopqrstuv$ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789abcdefg"
#define KEY1 "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIB0nYc me@laptop"
#define KEY2 "from=\"10.0.0.0/8\" ecdsa-sha2-nistp256 AAAAE2VjZHNh ops"

static void
base_spec(struct guest_spec *s)
{
    memset(s, 0, sizeof(*s));
    strcpy(s->id, ID);
    strcpy(s->name, "web1");
    s->generation = 1;
    strcpy(s->template_name, "busybox");
}

static int
read_spec(const char *text, struct guest_spec *s, char *field, size_t n)
{
    json_error_t e;
    json_t *j = json_loads(text, 0, &e);
    assert_non_null(j);
    int r = spec_from_json(j, s, field, n);
    json_decref(j);
    return r;
}

static void
test_json_round_trip(void **state)
{
    struct guest_spec *s = calloc(1, sizeof(*s)), *back = calloc(1, sizeof(*back));
    char field[64];
    (void)state;

    base_spec(s);
    assert_int_equal(read_spec("{\"provision\":{\"password_hash\":\"" HASH "\","
                               "\"ssh_keys\":[\"" KEY1 "\",\"from=\\\"10.0.0.0/8\\\" "
                               "ecdsa-sha2-nistp256 AAAAE2VjZHNh ops\"],"
                               "\"dns\":[\"192.0.2.53\",\"2001:db8::53\"],"
                               "\"search\":[\"example.org\",\"corp.example\"]}}",
                               s, field, sizeof(field)),
                     0);
    assert_string_equal(s->provision.password_hash, HASH);
    assert_string_equal(s->provision.ssh_keys, KEY1 "\n" KEY2);
    assert_int_equal(s->provision.n_dns, 2);
    assert_string_equal(s->provision.search, "example.org corp.example");

    json_t *j = spec_to_json(s);
    json_t *keys = json_object_get(json_object_get(j, "provision"), "ssh_keys");
    assert_int_equal(json_array_size(keys), 2);
    assert_string_equal(json_string_value(json_array_get(keys, 1)), KEY2);
    assert_int_equal(spec_from_json(j, back, NULL, 0), 0);
    assert_memory_equal(&back->provision, &s->provision, sizeof(s->provision));
    json_decref(j);

    /* A patch keeps what it does not name; an empty list clears. */
    assert_int_equal(read_spec("{\"provision\":{\"ssh_keys\":[]}}", s, field, sizeof(field)), 0);
    assert_string_equal(s->provision.ssh_keys, "");
    assert_string_equal(s->provision.password_hash, HASH);
    free(s);
    free(back);
}

static void
test_refused(void **state)
{
    static const struct {
        const char *json;  /* the provision object */
        const char *field; /* the field named */
    } cases[] = {
        {"{\"password_hash\":\"plain-text-password-here\"}", "provision.password_hash"},
        {"{\"password_hash\":\"$6$salt$has:colon:in:it:xxxxxxxxxxxx\"}", "provision.password_hash"},
        {"{\"ssh_keys\":[\"not a key\"]}", "provision.ssh_keys"},
        {"{\"ssh_keys\":[\"ssh-ed25519 AAAA\\u0007bell\"]}", "provision.ssh_keys"},
        {"{\"ssh_keys\":[\"ssh-ed25519 AAAA\\nssh-rsa BBBB\"]}", "provision.ssh_keys[0]"},
        {"{\"ssh_keys\":[\"\"]}", "provision.ssh_keys[0]"},
        {"{\"dns\":[\"10.0.0.0/8\"]}", "provision.dns[0]"},
        {"{\"dns\":[\"1.1.1.1\",\"1.0.0.1\",\"8.8.8.8\",\"9.9.9.9\"]}", "provision.dns"},
        {"{\"search\":[\"bad domain\"]}", "provision.search[0]"},
        {"{\"search\":[\"-bad.example\"]}", "provision.search"},
        {"{\"search\":[\"a\",\"b\",\"c\",\"d\",\"e\",\"f\",\"g\"]}", "provision.search"},
        {"{\"password\":\"x\"}", "provision.password"},
    };
    (void)state;

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct guest_spec *s = calloc(1, sizeof(*s));
        char text[512], field[64];
        base_spec(s);
        snprintf(text, sizeof(text), "{\"provision\":%s}", cases[i].json);
        assert_int_equal(read_spec(text, s, field, sizeof(field)), -EINVAL);
        assert_string_equal(field, cases[i].field);
        assert_true(spec_provision_empty(&s->provision));
        free(s);
    }
}

static void
test_wire_round_trip(void **state)
{
    struct msg m = {.type = MSG_GUEST_APPLY, .id = 7}, back = {0};
    char *buf = NULL;
    size_t len = 0;
    (void)state;

    base_spec(&m.u.apply);
    strcpy(m.u.apply.provision.password_hash, HASH);
    strcpy(m.u.apply.provision.ssh_keys, KEY1 "\n" KEY2);
    strcpy(m.u.apply.provision.search, "example.org");
    assert_int_equal(netaddr_parse("192.0.2.53", &m.u.apply.provision.dns[0]), 0);
    m.u.apply.provision.n_dns = 1;
    assert_int_equal(msg_encode(&m, &buf, &len), 0);
    assert_int_equal(msg_decode(buf, len, &back, NULL, 0), 0);
    assert_memory_equal(&back.u.apply.provision, &m.u.apply.provision, sizeof(m.u.apply.provision));
    free(buf);
    msg_clear(&back);

    /* The encoder refuses what the decoder would. */
    strcpy(m.u.apply.provision.password_hash, "root:x");
    assert_int_equal(msg_encode(&m, &buf, &len), -EINVAL);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_json_round_trip),
        cmocka_unit_test(test_refused),
        cmocka_unit_test(test_wire_round_trip),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
