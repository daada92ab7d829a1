/* The provision group at the API's edge of the guest domain: a password
 * arrives in clear (TLS) and is hashed here with crypt(3) (yescrypt, the
 * salt from libcrypt's own random source), so neither the store, the node
 * nor any answer ever holds it; what the API shows of it is whether one is
 * set. */
#include <crypt.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "common/mem.h"
#include "master/guests.h"

#define PASSWORD_MAX 512 /* bytes of a password in clear */

int
guest_provision_input(json_t *spec, struct guest_err *e)
{
    json_t *prov = json_object_get(spec, "provision");
    json_t *pw;

    if (!prov)
        return 0;
    if (!json_is_object(prov))
        return guest_fail(e, -EINVAL, "provision", "provision must be an object");
    pw = json_object_get(prov, "password");
    if (!pw)
        return 0;
    if (json_object_get(prov, "password_hash"))
        return guest_fail(e, -EINVAL, "provision.password",
                          "give password or password_hash, not both");
    if (json_is_null(pw)) {
        /* No password login for root any more. */
        json_object_set_new(prov, "password_hash", json_string("!"));
        json_object_del(prov, "password");
        return 0;
    }
    const char *clear = json_string_value(pw);
    size_t len = clear ? json_string_length(pw) : 0;
    if (!clear || len == 0 || len > PASSWORD_MAX || strlen(clear) != len)
        return guest_fail(e, -EINVAL, "provision.password",
                          "password must be a string of 1 to %d bytes without NUL", PASSWORD_MAX);
    char salt[CRYPT_GENSALT_OUTPUT_SIZE];
    struct crypt_data *cd = xcalloc(1, sizeof(*cd));
    const char *hash = NULL;
    if (crypt_gensalt_rn("$y$", 0, NULL, 0, salt, sizeof(salt)))
        hash = crypt_r(clear, salt, cd);
    if (!hash || hash[0] == '*') {
        explicit_bzero(cd, sizeof(*cd));
        free(cd);
        return guest_fail(e, -EIO, "provision.password", "cannot hash the password");
    }
    json_object_set_new(prov, "password_hash", json_string(hash));
    explicit_bzero(cd, sizeof(*cd));
    free(cd);
    json_object_del(prov, "password");
    return 0;
}

void
guest_provision_view(json_t *guest)
{
    json_t *prov = json_object_get(guest, "provision");
    const char *hash = json_string_value(json_object_get(prov, "password_hash"));

    if (!prov)
        return;
    json_object_set_new(prov, "password",
                        json_boolean(hash && hash[0] && strcmp(hash, "!") && strcmp(hash, "*")));
    json_object_del(prov, "password_hash");
}
