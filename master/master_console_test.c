/* The operator's console and the provisioning API, end to end in one
 * process (master_fixture.h): a guest created with a password, SSH keys and
 * name servers, what the API shows of them, and changes later. */
#include "master/master_fixture.h"

#define KEY "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIB0nYc me@laptop"

static void
test_provision(void **state)
{
    json_t *o = NULL, *p;
    char *text;

    assert_int_equal(http("POST", "/v1/guests",
                          "{\"name\":\"pv1\",\"template\":\"busybox\",\"provision\":{"
                          "\"password\":\"correct horse battery\",\"ssh_keys\":[\"" KEY "\"],"
                          "\"dns\":[\"192.0.2.53\"],\"search\":[\"example.org\"]}}",
                          NULL, &o),
                     201);
    p = json_object_get(o, "provision");
    assert_true(json_is_true(json_object_get(p, "password")));
    assert_null(json_object_get(p, "password_hash"));
    assert_string_equal(json_string_value(json_array_get(json_object_get(p, "ssh_keys"), 0)), KEY);
    assert_string_equal(json_string_value(json_array_get(json_object_get(p, "dns"), 0)),
                        "192.0.2.53");
    text = json_dumps(o, 0);
    assert_null(strstr(text, "horse"));
    assert_null(strstr(text, "$y$"));
    free(text);
    json_decref(o);

    /* The clear text reaches no answer; GET shows the same. */
    assert_int_equal(http("GET", "/v1/guests/pv1", NULL, NULL, &o), 200);
    text = json_dumps(o, 0);
    assert_null(strstr(text, "horse"));
    assert_null(strstr(text, "password_hash"));
    free(text);
    json_decref(o);

    /* Later: no password login, other name servers; the keys stay. */
    assert_int_equal(http("PATCH", "/v1/guests/pv1",
                          "{\"provision\":{\"password\":null,\"dns\":[\"2001:db8::53\"]}}", NULL,
                          &o),
                     200);
    p = json_object_get(o, "provision");
    assert_true(json_is_false(json_object_get(p, "password")));
    assert_string_equal(json_string_value(json_array_get(json_object_get(p, "dns"), 0)),
                        "2001:db8::53");
    assert_int_equal(json_array_size(json_object_get(p, "ssh_keys")), 1);
    json_decref(o);

    /* Refused, naming the field; nothing changes. */
    static const struct {
        const char *body;  /* a PATCH body */
        const char *field; /* the field the 400 names */
    } bad[] = {
        {"{\"provision\":{\"password\":\"\"}}", "provision.password"},
        {"{\"provision\":{\"password\":\"a\",\"password_hash\":\"!\"}}", "provision.password"},
        {"{\"provision\":{\"password_hash\":\"clear\"}}", "provision.password_hash"},
        {"{\"provision\":{\"ssh_keys\":[\"rm -rf /\"]}}", "provision.ssh_keys"},
        {"{\"provision\":{\"dns\":[\"nameserver\"]}}", "provision.dns[0]"},
        {"{\"provision\":7}", "provision"},
    };
    for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
        assert_int_equal(http("PATCH", "/v1/guests/pv1", bad[i].body, NULL, &o), 400);
        assert_string_equal(str(json_object_get(o, "error"), "field"), bad[i].field);
        json_decref(o);
    }
    delete_all_guests();
}

/* The spec fields beyond limits are reachable by PATCH. */
static void
test_patch_spec_fields(void **state)
{
    json_t *o = NULL;

    assert_int_equal(
        http("POST", "/v1/guests", "{\"name\":\"sf1\",\"template\":\"busybox\"}", NULL, &o), 201);
    json_decref(o);
    assert_int_equal(http("PATCH", "/v1/guests/sf1",
                          "{\"domainname\":\"example.org\",\"init\":\"/bin/init\","
                          "\"halt_signal\":\"SIGPWR\",\"stop_timeout\":12,\"autostart\":false,"
                          "\"caps_add\":[\"net_admin\"],\"caps_drop\":[\"mknod\"],"
                          "\"limits\":{\"io\":[{\"device\":\"8:0\",\"read_bps\":\"10M\"}]}}",
                          NULL, &o),
                     200);
    assert_string_equal(str(o, "domainname"), "example.org");
    assert_string_equal(str(o, "init"), "/bin/init");
    assert_string_equal(str(o, "halt_signal"), "SIGPWR");
    assert_int_equal(num(o, "stop_timeout"), 12);
    assert_true(json_is_false(json_object_get(o, "autostart")));
    assert_string_equal(json_string_value(json_array_get(json_object_get(o, "caps_add"), 0)),
                        "net_admin");
    json_decref(o);
    delete_all_guests();
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_provision),
        cmocka_unit_test(test_patch_spec_fields),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
