/* Tests for proto/keys (key pairs, key files, fingerprints) and
 * proto/jointoken (the text of a join token). */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cmocka.h>

#include "proto/jointoken.h"
#include "proto/keys.h"

struct fixture {
    char dir[64];   /* private temporary directory */
    char path[128]; /* a key file in it */
};

static int
setup(void **state)
{
    struct fixture *f = calloc(1, sizeof(*f));

    assert_non_null(f);
    snprintf(f->dir, sizeof(f->dir), "/tmp/vf-keys-%d-XXXXXX", (int)getpid());
    assert_non_null(mkdtemp(f->dir));
    snprintf(f->path, sizeof(f->path), "%s/node.key", f->dir);
    *state = f;
    return 0;
}

static int
teardown(void **state)
{
    struct fixture *f = *state;

    unlink(f->path);
    rmdir(f->dir);
    free(f);
    return 0;
}

static void
write_file(const char *path, const char *text, mode_t mode)
{
    FILE *fp = fopen(path, "w");

    assert_non_null(fp);
    fputs(text, fp);
    fclose(fp);
    assert_int_equal(chmod(path, mode), 0);
}

/* A pair, a name, a pinned key and an endpoint go to a 0600 file and come
 * back as they were. */
static void
test_round_trip(void **state)
{
    struct fixture *f = *state;
    struct keys_file k = {0}, m = {0}, back;
    struct stat st;

    assert_int_equal(keys_generate(&k), 0);
    assert_int_equal(keys_generate(&m), 0);
    assert_true(keys_valid(k.public_key) && keys_valid(k.secret_key));
    strcpy(k.node, "h1");
    strcpy(k.master_key, m.public_key);
    strcpy(k.endpoint, "tcp://10.0.0.1:7401");
    assert_int_equal(keys_file_save(f->path, &k), 0);
    assert_int_equal(stat(f->path, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);
    assert_int_equal(keys_file_load(f->path, &back), 0);
    assert_memory_equal(&back, &k, sizeof(k));

    /* A public-only file (no secret) may be read by others. */
    struct keys_file pub = {0};
    strcpy(pub.public_key, m.public_key);
    assert_int_equal(keys_file_save(f->path, &pub), 0);
    assert_int_equal(chmod(f->path, 0644), 0);
    assert_int_equal(keys_file_load(f->path, &back), 0);
    assert_string_equal(back.public_key, m.public_key);
    assert_string_equal(back.secret_key, "");
}

/* A secret others can read is refused, as is anything but a key file. */
static void
test_refused(void **state)
{
    struct fixture *f = *state;
    struct keys_file k = {0}, other = {0}, back;
    char text[512];

    assert_int_equal(keys_generate(&k), 0);
    assert_int_equal(keys_generate(&other), 0);
    assert_int_equal(keys_file_save(f->path, &k), 0);
    assert_int_equal(chmod(f->path, 0640), 0);
    assert_int_equal(keys_file_load(f->path, &back), -EPERM);
    assert_string_equal(back.secret_key, "");

    /* A secret that is not the public key's. */
    snprintf(text, sizeof(text), "public = %s\nsecret = %s\n", k.public_key, other.secret_key);
    write_file(f->path, text, 0600);
    assert_int_equal(keys_file_load(f->path, &back), -EBADMSG);
    write_file(f->path, "public = short\n", 0600);
    assert_int_equal(keys_file_load(f->path, &back), -EBADMSG);
    write_file(f->path, "colour = blue\n", 0600);
    assert_int_equal(keys_file_load(f->path, &back), -EBADMSG);
    write_file(f->path, "no equals sign\n", 0600);
    assert_int_equal(keys_file_load(f->path, &back), -EBADMSG);
    /* Comments, blank lines and spaces are fine. */
    snprintf(text, sizeof(text), "# a node key\n\n  public =   %s  \nsecret=%s\n", k.public_key,
             k.secret_key);
    write_file(f->path, text, 0600);
    assert_int_equal(keys_file_load(f->path, &back), 0);
    assert_string_equal(back.secret_key, k.secret_key);
    unlink(f->path);
    assert_int_equal(keys_file_load(f->path, &back), -ENOENT);

    /* A value with a line break is not written. */
    strcpy(k.endpoint, "tcp://x\nsecret = y");
    assert_int_equal(keys_file_save(f->path, &k), -EINVAL);
}

static void
test_fingerprint(void **state)
{
    struct keys_file k = {0};
    char fpr[KEYS_FPR_SIZE], pub[KEYS_Z85_SIZE];

    (void)state;
    assert_int_equal(keys_generate(&k), 0);
    keys_fingerprint(k.public_key, fpr);
    assert_int_equal(strlen(fpr), KEYS_FPR_SIZE - 1);
    assert_memory_equal(fpr, "SHA256:", 7);
    assert_string_equal(keys_fingerprint("not a key", fpr), "");
    assert_int_equal(keys_public_of(k.secret_key, pub), 0);
    assert_string_equal(pub, k.public_key);
    assert_int_equal(keys_public_of("bad", pub), -EINVAL);
}

/* A token's text carries its secret and the master's key, and nothing
 * else passes for one. */
static void
test_jointoken(void **state)
{
    struct keys_file t = {0}, m = {0};
    struct jointoken in = {0}, out;
    char text[JOINTOKEN_SIZE], padded[JOINTOKEN_SIZE + 8], bad[JOINTOKEN_SIZE];

    (void)state;
    assert_int_equal(keys_generate(&t), 0);
    assert_int_equal(keys_generate(&m), 0);
    strcpy(in.secret_key, t.secret_key);
    strcpy(in.master_key, m.public_key);
    assert_int_equal(jointoken_format(&in, text), 0);
    assert_int_equal(strlen(text), JOINTOKEN_LEN);
    assert_memory_equal(text, "vfj1-", 5);
    assert_int_equal(jointoken_parse(text, &out), 0);
    assert_string_equal(out.secret_key, t.secret_key);
    assert_string_equal(out.public_key, t.public_key);
    assert_string_equal(out.master_key, m.public_key);
    snprintf(padded, sizeof(padded), "  %s\n", text);
    assert_int_equal(jointoken_parse(padded, &out), 0);

    assert_int_equal(jointoken_parse(NULL, &out), -EINVAL);
    assert_int_equal(jointoken_parse("", &out), -EINVAL);
    assert_int_equal(jointoken_parse("vfj1-nonsense", &out), -EINVAL);
    strcpy(bad, text);
    bad[3] = '2';
    assert_int_equal(jointoken_parse(bad, &out), -EINVAL);
    strcpy(bad, text);
    bad[10] = 'g';
    assert_int_equal(jointoken_parse(bad, &out), -EINVAL);
    strcpy(bad, text);
    bad[5 + 64] = '.';
    assert_int_equal(jointoken_parse(bad, &out), -EINVAL);
    strcpy(bad, text);
    bad[JOINTOKEN_LEN - 1] = '\0';
    assert_int_equal(jointoken_parse(bad, &out), -EINVAL);
    snprintf(padded, sizeof(padded), "%s x", text);
    assert_int_equal(jointoken_parse(padded, &out), -EINVAL);
    strcpy(in.master_key, "short");
    assert_int_equal(jointoken_format(&in, text), -EINVAL);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_round_trip, setup, teardown),
        cmocka_unit_test_setup_teardown(test_refused, setup, teardown),
        cmocka_unit_test(test_fingerprint),
        cmocka_unit_test(test_jointoken),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
