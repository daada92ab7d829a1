/* CurveZMQ key pairs, key files and fingerprints (keys.h). */
#include "proto/keys.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <zmq.h>

#include "common/mem.h"

bool
keys_valid(const char *s)
{
    uint8_t bin[KEYS_BIN_LEN];

    return s && strlen(s) == KEYS_Z85_LEN && zmq_z85_decode(bin, s) != NULL;
}

int
keys_to_bin(const char *z85, uint8_t bin[KEYS_BIN_LEN])
{
    if (!keys_valid(z85))
        return -EINVAL;
    zmq_z85_decode(bin, z85);
    return 0;
}

void
keys_to_z85(const uint8_t bin[KEYS_BIN_LEN], char z85[KEYS_Z85_SIZE])
{
    zmq_z85_encode(z85, bin, KEYS_BIN_LEN);
}

int
keys_generate(struct keys_file *k)
{
    if (zmq_curve_keypair(k->public_key, k->secret_key) < 0)
        return -zmq_errno();
    return 0;
}

int
keys_public_of(const char *secret_key, char public_key[KEYS_Z85_SIZE])
{
    if (!keys_valid(secret_key) || zmq_curve_public(public_key, secret_key) < 0)
        return -EINVAL;
    return 0;
}

const char *
keys_fingerprint(const char *public_key, char out[KEYS_FPR_SIZE])
{
    uint8_t bin[KEYS_BIN_LEN], digest[crypto_hash_sha256_BYTES];

    out[0] = '\0';
    if (keys_to_bin(public_key, bin) < 0)
        return out;
    crypto_hash_sha256(digest, bin, sizeof(bin));
    memcpy(out, "SHA256:", 7);
    sodium_bin2hex(out + 7, KEYS_FPR_SIZE - 7, digest, sizeof(digest));
    return out;
}

/* ---- files ------------------------------------------------------------ */

/* The lines of a key file, in the order they are written. */
static const struct {
    const char *name; /* the name before "=" */
    size_t off;       /* the field in struct keys_file */
    size_t size;      /* its buffer */
    bool key;         /* the value is a Z85 key */
} fields[] = {
    {"public", offsetof(struct keys_file, public_key), KEYS_Z85_SIZE, true},
    {"secret", offsetof(struct keys_file, secret_key), KEYS_Z85_SIZE, true},
    {"node", offsetof(struct keys_file, node), KEYS_NAME_SIZE, false},
    {"master", offsetof(struct keys_file, master_key), KEYS_Z85_SIZE, true},
    {"endpoint", offsetof(struct keys_file, endpoint), KEYS_EP_SIZE, false},
};

static int
write_all(int fd, const char *buf, size_t len)
{
    while (len > 0) {
        ssize_t n = write(fd, buf, len);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return -errno;
        }
        buf += n;
        len -= (size_t)n;
    }
    return 0;
}

static int
fsync_dir_of(const char *path)
{
    _cleanup_free_ char *dir = xstrdup(path);
    char *slash = strrchr(dir, '/');

    if (!slash)
        strcpy(dir, ".");
    else if (slash == dir)
        slash[1] = '\0';
    else
        *slash = '\0';
    _cleanup_close_ int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0 || fsync(fd) < 0)
        return -errno;
    return 0;
}

int
keys_file_save(const char *path, const struct keys_file *k)
{
    _cleanup_free_ char *tmp = xasprintf("%s.tmp-%d", path, (int)getpid());
    char buf[KEYS_FILE_MAX];
    size_t len = 0;
    int r;

    for (size_t i = 0; i < ARRAY_SIZE(fields); i++) {
        const char *v = (const char *)k + fields[i].off;
        if (!v[0])
            continue;
        if (fields[i].key ? !keys_valid(v) : strpbrk(v, "\n\r") != NULL)
            return -EINVAL;
        int n = snprintf(buf + len, sizeof(buf) - len, "%s = %s\n", fields[i].name, v);
        if (n < 0 || (size_t)n >= sizeof(buf) - len)
            return -E2BIG;
        len += (size_t)n;
    }
    /* O_EXCL: a stale temp file of a crashed writer with our pid is removed
     * first, never written through (it could be a link planted by someone). */
    (void)unlink(tmp);
    _cleanup_close_ int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd < 0)
        return -errno;
    r = write_all(fd, buf, len);
    if (r == 0 && fchmod(fd, 0600) < 0)
        r = -errno;
    if (r == 0 && fsync(fd) < 0)
        r = -errno;
    sodium_memzero(buf, sizeof(buf));
    if (r == 0 && rename(tmp, path) < 0)
        r = -errno;
    if (r < 0) {
        (void)unlink(tmp);
        return r;
    }
    return fsync_dir_of(path);
}

/* One "name = value" line into k. */
static int
parse_line(char *line, struct keys_file *k)
{
    char *eq = strchr(line, '=');

    if (!eq)
        return -EBADMSG;
    char *name = line + strspn(line, " \t"), *value = eq + 1, *end = eq;
    while (end > name && (end[-1] == ' ' || end[-1] == '\t'))
        end--;
    *end = '\0';
    value += strspn(value, " \t");
    end = value + strlen(value);
    while (end > value && (end[-1] == ' ' || end[-1] == '\t' || end[-1] == '\r'))
        end--;
    *end = '\0';
    for (size_t i = 0; i < ARRAY_SIZE(fields); i++) {
        if (strcmp(name, fields[i].name) != 0)
            continue;
        if (fields[i].key && !keys_valid(value))
            return -EBADMSG;
        if (strscpy((char *)k + fields[i].off, value, fields[i].size) < 0)
            return -EBADMSG;
        return 0;
    }
    return -EBADMSG;
}

static int
parse_file(char *text, struct keys_file *k)
{
    char *save = NULL;

    for (char *line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        if (line[strspn(line, " \t\r")] == '\0' || line[strspn(line, " \t")] == '#')
            continue;
        if (parse_line(line, k) < 0)
            return -EBADMSG;
    }
    if (k->secret_key[0]) {
        char pub[KEYS_Z85_SIZE];
        if (keys_public_of(k->secret_key, pub) < 0 || strcmp(pub, k->public_key) != 0)
            return -EBADMSG;
    }
    return 0;
}

int
keys_file_load(const char *path, struct keys_file *k)
{
    char buf[KEYS_FILE_MAX + 1];
    struct stat st;
    ssize_t n;
    int r;

    memset(k, 0, sizeof(*k));
    _cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0)
        return -errno;
    if (fstat(fd, &st) < 0)
        return -errno;
    if (!S_ISREG(st.st_mode))
        return -EBADMSG;
    do
        n = read(fd, buf, sizeof(buf));
    while (n < 0 && errno == EINTR);
    if (n < 0)
        return -errno;
    if ((size_t)n > KEYS_FILE_MAX)
        return -EBADMSG;
    buf[n] = '\0';
    r = parse_file(buf, k);
    sodium_memzero(buf, sizeof(buf));
    if (r < 0) {
        sodium_memzero(k, sizeof(*k));
        return r;
    }
    /* A secret others can read is no longer a secret: refuse it, as ssh does. */
    if (k->secret_key[0] && ((st.st_mode & 077) || st.st_uid != geteuid())) {
        sodium_memzero(k, sizeof(*k));
        return -EPERM;
    }
    return 0;
}
