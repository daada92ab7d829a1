/* The spec fields beyond limits on the command line (args_spec.h). */
#include "cli/args_spec.h"

#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "common/mem.h"
#include "common/netaddr.h"
#include "common/units.h"

static _printf_(3, 4) int fail(char *err, size_t errlen, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
    return -EINVAL;
}

static json_t *
child(json_t *parent, const char *key, json_t *(*make)(void))
{
    json_t *c = json_object_get(parent, key);
    if (!c) {
        c = make();
        json_object_set_new(parent, key, c);
    }
    return c;
}

static json_t *
prov(json_t *body)
{
    return child(body, "provision", json_object);
}

/* "8:0:read_bps=10M,write_iops=500" into a limits.io entry. */
static int
io_put(json_t *body, const char *arg, char *err, size_t errlen)
{
    _cleanup_free_ char *copy = xstrdup(arg);
    char *rest = NULL, *save = NULL;
    unsigned maj, min;
    int used = 0;

    if (sscanf(copy, "%u:%u%n", &maj, &min, &used) != 2 || (copy[used] && copy[used] != ','))
        return fail(err, errlen,
                    "--io \"%s\": MAJOR:MINOR[,read_bps=SIZE][,write_bps=SIZE]"
                    "[,read_iops=N][,write_iops=N]",
                    arg);
    json_t *e = json_pack("{s:s#}", "device", copy, used);
    rest = copy[used] ? copy + used + 1 : NULL;
    for (char *kv = rest ? strtok_r(rest, ",", &save) : NULL; kv; kv = strtok_r(NULL, ",", &save)) {
        char *eq = strchr(kv, '=');
        uint64_t v;
        if (!eq)
            return json_decref(e), fail(err, errlen, "--io: \"%s\" is not KEY=VALUE", kv);
        *eq = '\0';
        bool bps = !strcmp(kv, "read_bps") || !strcmp(kv, "write_bps");
        bool iops = !strcmp(kv, "read_iops") || !strcmp(kv, "write_iops");
        if ((!bps && !iops) ||
            (bps ? units_parse_size(eq + 1, &v) : units_parse_u64(eq + 1, &v)) < 0 || v > INT64_MAX)
            return json_decref(e), fail(err, errlen,
                                        "--io: \"%s=%s\": read_bps/write_bps take "
                                        "a size, read_iops/write_iops a count",
                                        kv, eq + 1);
        json_object_set_new(e, kv, json_integer((json_int_t)v));
    }
    json_t *io = child(child(body, "limits", json_object), "io", json_array);
    if (json_array_size(io) >= 8)
        return json_decref(e), fail(err, errlen, "--io: at most 8 devices");
    json_array_append_new(io, e);
    return 0;
}

/* A comma list of capability names appended to body[key]. */
static int
caps_put(json_t *body, const char *key, const char *arg, char *err, size_t errlen)
{
    _cleanup_free_ char *copy = xstrdup(arg);
    char *save = NULL;
    json_t *a = child(body, key, json_array);

    for (char *t = strtok_r(copy, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
        if (strlen(t) > 31)
            return fail(err, errlen, "--%s: \"%s\" is not a capability", key, t);
        for (char *p = t; *p; p++)
            *p = (char)(*p >= 'A' && *p <= 'Z' ? *p - 'A' + 'a' : *p);
        json_array_append_new(a, json_string(strncmp(t, "cap_", 4) == 0 ? t + 4 : t));
    }
    return 0;
}

int
args_spec_put(json_t *body, int c, const char *arg, struct args_spec_files *files, char *err,
              size_t errlen)
{
    struct netaddr a;
    uint64_t v;

    switch (c) {
    case ARGS_SPEC_PASSWORD_STDIN:
    case ARGS_SPEC_PASSWORD_FILE:
        if (files->password || json_object_get(prov(body), "password"))
            return fail(err, errlen,
                        "give one of --password-stdin, --password-file, --no-password");
        files->password = c == ARGS_SPEC_PASSWORD_STDIN ? "-" : arg;
        return 0;
    case ARGS_SPEC_NO_PASSWORD:
        if (files->password || json_object_get(prov(body), "password"))
            return fail(err, errlen,
                        "give one of --password-stdin, --password-file, --no-password");
        json_object_set_new(prov(body), "password", json_null());
        return 0;
    case ARGS_SPEC_SSH_KEY:
        json_array_append_new(child(prov(body), "ssh_keys", json_array), json_string(arg));
        return 0;
    case ARGS_SPEC_SSH_KEY_FILE:
        if (files->n_keys >= ARGS_SPEC_MAX_FILES)
            return fail(err, errlen, "--ssh-key-file: at most %d files", ARGS_SPEC_MAX_FILES);
        files->keys[files->n_keys++] = arg;
        return 0;
    case ARGS_SPEC_DNS:
        if (netaddr_parse_host(arg, &a) < 0)
            return fail(err, errlen, "--dns \"%s\": not an IP address", arg);
        json_array_append_new(child(prov(body), "dns", json_array), json_string(arg));
        return 0;
    case ARGS_SPEC_SEARCH:
        json_array_append_new(child(prov(body), "search", json_array), json_string(arg));
        return 0;
    case ARGS_SPEC_DOMAINNAME:
    case ARGS_SPEC_INIT:
    case ARGS_SPEC_HALT_SIGNAL:
        if (c == ARGS_SPEC_INIT && arg[0] && arg[0] != '/')
            return fail(err, errlen, "--init \"%s\": an absolute path in the guest", arg);
        json_object_set_new(body,
                            c == ARGS_SPEC_DOMAINNAME ? "domainname"
                            : c == ARGS_SPEC_INIT     ? "init"
                                                      : "halt_signal",
                            json_string(arg));
        return 0;
    case ARGS_SPEC_STOP_TIMEOUT:
        if (units_parse_u64(arg, &v) < 0 || v > 3600)
            return fail(err, errlen, "--stop-timeout \"%s\": seconds, 0 to 3600", arg);
        json_object_set_new(body, "stop_timeout", json_integer((json_int_t)v));
        return 0;
    case ARGS_SPEC_AUTOSTART:
        if (strcmp(arg, "yes") && strcmp(arg, "no") && strcmp(arg, "true") && strcmp(arg, "false"))
            return fail(err, errlen, "--autostart \"%s\": yes or no", arg);
        json_object_set_new(body, "autostart",
                            json_boolean(!strcmp(arg, "yes") || !strcmp(arg, "true")));
        return 0;
    case ARGS_SPEC_CAP_ADD:
    case ARGS_SPEC_CAP_DROP:
        return caps_put(body, c == ARGS_SPEC_CAP_ADD ? "caps_add" : "caps_drop", arg, err, errlen);
    case ARGS_SPEC_IO:
        return io_put(body, arg, err, errlen);
    default:
        return fail(err, errlen, "unknown option");
    }
}

/* Every line of f; trailing newlines cut. */
static int
read_lines(const char *path, json_t *into, bool first_only, char *err, size_t errlen)
{
    FILE *f = strcmp(path, "-") == 0 ? stdin : fopen(path, "re");
    char *line = NULL;
    size_t cap = 0;
    ssize_t n;

    if (!f)
        return fail(err, errlen, "%s: %s", path, strerror(errno)), -errno;
    while ((n = getline(&line, &cap, f)) >= 0) {
        while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r'))
            line[--n] = '\0';
        if (first_only) {
            json_array_append_new(into, json_string(line));
            break;
        }
        if (n > 0 && line[0] != '#')
            json_array_append_new(into, json_string(line));
    }
    if (line)
        explicit_bzero(line, cap);
    free(line);
    if (f != stdin)
        fclose(f);
    return 0;
}

int
args_spec_read_files(json_t *body, const struct args_spec_files *files, char *err, size_t errlen)
{
    int r;

    if (files->password) {
        json_t *one = json_array();
        r = read_lines(files->password, one, true, err, errlen);
        if (r < 0 || json_array_size(one) != 1 || !json_string_length(json_array_get(one, 0))) {
            json_decref(one);
            return r < 0 ? r : fail(err, errlen, "the password is empty");
        }
        json_object_set(prov(body), "password", json_array_get(one, 0));
        json_decref(one);
    }
    for (size_t i = 0; i < files->n_keys; i++) {
        r = read_lines(files->keys[i], child(prov(body), "ssh_keys", json_array), false, err,
                       errlen);
        if (r < 0)
            return r;
    }
    return 0;
}

void
args_spec_help(FILE *f)
{
    fputs("Provisioning (create and set; written into the guest's files):\n"
          "  --password-stdin      root's password from the first line of stdin\n"
          "  --password-file F     root's password from the first line of F\n"
          "  --no-password         no password login for root\n"
          "  --ssh-key KEY         an authorized_keys line for root, repeatable\n"
          "  --ssh-key-file F      every key line of F, repeatable\n"
          "  --dns ADDR            a name server for /etc/resolv.conf, repeatable (3)\n"
          "  --search DOMAIN       a search domain for /etc/resolv.conf, repeatable (6)\n"
          "Other spec fields (create and set):\n"
          "  --domainname D        NIS domain name\n"
          "  --init PATH           the guest's init (default /sbin/init)\n"
          "  --halt-signal SIG     the signal that asks init to halt (default SIGTERM)\n"
          "  --stop-timeout S      seconds from the halt signal to SIGKILL (default 30)\n"
          "  --autostart yes|no    start with the node\n"
          "  --cap-add C[,C]       capabilities added to the default set (admins, operators)\n"
          "  --cap-drop C[,C]      capabilities dropped from it\n"
          "  --io MAJ:MIN[,read_bps=SIZE][,write_bps=SIZE][,read_iops=N][,write_iops=N]\n"
          "                        a per-device I/O cap, repeatable (8); set replaces the list\n",
          f);
}
