/* `vfleet guest export NAME -o FILE` and `vfleet guest import FILE`: a guest
 * as one file (archive/archive.h), which travels between the CLI and the
 * master in base64 chunks of 1 MiB (GET/POST /v1/archives/{id}), checked
 * against its SHA-256 at both ends. */
#include "cli/cmd_archive.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <gnutls/crypto.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli/args.h"
#include "cli/cmd.h"
#include "cli/cmd_op.h"
#include "common/base64.h"

#define CHUNK (1u << 20) /* bytes per request, the master's limit */

static void
json_decref_p(json_t **p)
{
    json_decref(*p);
}

static int
sha256_fd(int fd, char hex[65])
{
    gnutls_hash_hd_t h;
    uint8_t buf[1 << 16], out[32];
    ssize_t k;

    if (gnutls_hash_init(&h, GNUTLS_DIG_SHA256) < 0)
        return -ENOMEM;
    if (lseek(fd, 0, SEEK_SET) < 0)
        return -errno;
    while ((k = read(fd, buf, sizeof(buf))) > 0)
        (void)gnutls_hash(h, buf, (size_t)k);
    gnutls_hash_deinit(h, out);
    if (k < 0)
        return -errno;
    for (int i = 0; i < 32; i++)
        snprintf(hex + 2 * i, 3, "%02x", out[i]);
    return 0;
}

/* GETs archive id chunk by chunk into fd. */
static int
download(struct cli_ctx *ctx, const char *id, int fd)
{
    uint64_t off = 0;
    _cleanup_free_ uint8_t *buf = xmalloc(CHUNK + 3);
    _cleanup_free_ char *what = xasprintf("archive %s", id);

    for (;;) {
        _cleanup_(http_result_clear) struct http_result res = {0};
        _cleanup_free_ char *path =
            xasprintf("/v1/archives/%s?offset=%llu", id, (unsigned long long)off);
        struct http_request req = {.method = "GET", .path = path};
        int code = cli_call(ctx, &req, what, &res);
        if (code != CLI_EXIT_OK)
            return code;
        const char *data = cli_str(res.body, "data");
        long n = base64_decode(data, strlen(data), buf);
        if (n < 0 || (n > 0 && pwrite(fd, buf, (size_t)n, (off_t)off) != n)) {
            fprintf(ctx->err, "vfleet: cannot write the archive: %s\n",
                    n < 0 ? "bad base64 from the master" : strerror(errno));
            return CLI_EXIT_FAILURE;
        }
        off += (uint64_t)n;
        if (json_is_true(json_object_get(res.body, "eof")) || n == 0)
            return CLI_EXIT_OK;
    }
}

static int
export_fetch(struct cli_ctx *ctx, const char *op, const char *file, bool keep)
{
    _cleanup_(http_result_clear) struct http_result res = {0};
    _cleanup_free_ char *path = xasprintf("/v1/operations/%s", op);
    struct http_request req = {.method = "GET", .path = path};
    char got[65];
    int code = cli_call(ctx, &req, "operation", &res);

    if (code != CLI_EXIT_OK)
        return code;
    const json_t *r = json_object_get(res.body, "result");
    const char *id = cli_str(r, "archive"), *want = cli_str(r, "sha256");
    _cleanup_close_ int fd = open(file, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0) {
        fprintf(ctx->err, "vfleet: cannot write \"%s\": %s\n", file, strerror(errno));
        return CLI_EXIT_FAILURE;
    }
    code = download(ctx, id, fd);
    if (code != CLI_EXIT_OK)
        return code;
    if (sha256_fd(fd, got) < 0 || strcmp(got, want) != 0) {
        fprintf(ctx->err, "vfleet: \"%s\" does not have the archive's checksum %s\n", file, want);
        return CLI_EXIT_FAILURE;
    }
    if (!keep) {
        _cleanup_(http_result_clear) struct http_result del = {0};
        _cleanup_free_ char *dpath = xasprintf("/v1/archives/%s", id);
        struct http_request dreq = {.method = "DELETE", .path = dpath};
        (void)cli_call(ctx, &dreq, "archive", &del);
    }
    if (!ctx->json)
        fprintf(ctx->out, "%s: %lld bytes, sha256 %s\n", file, cli_int(r, "size"), want);
    return CLI_EXIT_OK;
}

int
cmd_archive_export(struct cli_ctx *ctx, int argc, char **argv)
{
    static const struct option opts[] = {
        {"output", required_argument, NULL, 'o'},
        {"keep", no_argument, NULL, 'k'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *file = NULL;
    bool keep = false;
    int c;

    optind = 0;
    opterr = 0;
    while ((c = getopt_long(argc, argv, ":ho:", opts, NULL)) != -1) {
        if (c == 'h') {
            cmd_guest_help(ctx->out);
            return CLI_EXIT_OK;
        } else if (c == 'o') {
            file = optarg;
        } else if (c == 'k') {
            keep = true;
        } else {
            return cli_usage_error(ctx, "export: bad option \"%s\"", argv[optind - 1]);
        }
    }
    if (optind + 1 != argc || !name_is_valid(argv[optind]) || !file)
        return cli_usage_error(ctx, "export: expected NAME -o FILE");
    _cleanup_(http_result_clear) struct http_result res = {0};
    _cleanup_free_ char *path = xasprintf("/v1/guests/%s/export", argv[optind]);
    _cleanup_free_ char *what = xasprintf("guest \"%s\"", argv[optind]);
    struct http_request req = {.method = "POST", .path = path};
    int code = cli_call(ctx, &req, what, &res);
    if (code != CLI_EXIT_OK)
        return code;
    _cleanup_free_ char *op = xstrdup(cli_str(res.body, "id"));
    code = cmd_op_follow(ctx, op);
    return code != CLI_EXIT_OK ? code : export_fetch(ctx, op, file, keep);
}

/* POSTs the file to a new archive; id gets its id. */
static int
upload(struct cli_ctx *ctx, int fd, uint64_t size, const char *sha, char id[64])
{
    _cleanup_(http_result_clear) struct http_result res = {0};
    json_t *body = json_pack("{s:I, s:s}", "size", (json_int_t)size, "sha256", sha);
    struct http_request req = {.method = "POST", .path = "/v1/archives", .body = body};
    int code = cli_call(ctx, &req, "archive", &res);

    json_decref(body);
    if (code != CLI_EXIT_OK)
        return code;
    snprintf(id, 64, "%s", cli_str(res.body, "id"));
    _cleanup_free_ uint8_t *buf = xmalloc(CHUNK);
    _cleanup_free_ char *text = xmalloc(base64_len(CHUNK) + 1);
    _cleanup_free_ char *path = xasprintf("/v1/archives/%s", id);
    for (uint64_t off = 0; off < size;) {
        _cleanup_(http_result_clear) struct http_result put = {0};
        ssize_t n = pread(fd, buf, CHUNK, (off_t)off);
        if (n <= 0) {
            fprintf(ctx->err, "vfleet: cannot read the archive: %s\n", strerror(errno));
            return CLI_EXIT_FAILURE;
        }
        base64_encode(buf, (size_t)n, text);
        json_t *chunk = json_pack("{s:I, s:s}", "offset", (json_int_t)off, "data", text);
        struct http_request preq = {.method = "POST", .path = path, .body = chunk};
        code = cli_call(ctx, &preq, "archive", &put);
        json_decref(chunk);
        if (code != CLI_EXIT_OK)
            return code;
        off = (uint64_t)cli_int(put.body, "received");
    }
    return CLI_EXIT_OK;
}

int
cmd_archive_import(struct cli_ctx *ctx, int argc, char **argv)
{
    static const struct option opts[] = {
        {"name", required_argument, NULL, 'n'},
        {"to", required_argument, NULL, 't'},
        {"constraint", required_argument, NULL, 'c'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    _cleanup_(json_decref_p) json_t *body = json_object();
    json_t *cons = json_object();
    char err[256];
    int c;

    json_object_set_new(body, "constraints", cons);
    optind = 0;
    opterr = 0;
    while ((c = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
        if (c == 'h') {
            cmd_guest_help(ctx->out);
            return CLI_EXIT_OK;
        } else if (c == 'n' && name_is_valid(optarg)) {
            json_object_set_new(body, "name", json_string(optarg));
        } else if (c == 't' && name_is_valid(optarg)) {
            json_object_set_new(body, "to", json_string(optarg));
        } else if (c == 'c' && args_kv_put(cons, optarg, "--constraint", err, sizeof(err)) < 0) {
            return cli_usage_error(ctx, "import: %s", err);
        } else if (c != 'c') {
            return cli_usage_error(ctx, "import: bad option or name \"%s\"", argv[optind - 1]);
        }
    }
    if (optind + 1 != argc)
        return cli_usage_error(ctx, "import: expected one FILE");
    return cmd_archive_import_file(ctx, argv[optind], body);
}

int
cmd_archive_upload(struct cli_ctx *ctx, const char *file, char id[64])
{
    struct stat st;
    char sha[65];
    _cleanup_close_ int fd = open(file, O_RDONLY | O_CLOEXEC);

    if (fd < 0 || fstat(fd, &st) < 0 || sha256_fd(fd, sha) < 0) {
        fprintf(ctx->err, "vfleet: cannot read \"%s\": %s\n", file, strerror(errno));
        return CLI_EXIT_FAILURE;
    }
    return upload(ctx, fd, (uint64_t)st.st_size, sha, id);
}

int
cmd_archive_import_file(struct cli_ctx *ctx, const char *file, json_t *body)
{
    struct stat st;
    char sha[65], id[64];
    _cleanup_close_ int fd = open(file, O_RDONLY | O_CLOEXEC);

    if (fd < 0 || fstat(fd, &st) < 0 || sha256_fd(fd, sha) < 0) {
        fprintf(ctx->err, "vfleet: cannot read \"%s\": %s\n", file, strerror(errno));
        return CLI_EXIT_FAILURE;
    }
    if (json_object_size(json_object_get(body, "constraints")) == 0)
        json_object_del(body, "constraints");
    int code = upload(ctx, fd, (uint64_t)st.st_size, sha, id);
    if (code != CLI_EXIT_OK)
        return code;
    json_object_set_new(body, "archive", json_string(id));
    _cleanup_(http_result_clear) struct http_result res = {0};
    struct http_request req = {.method = "POST", .path = "/v1/guests:import", .body = body};
    code = cli_call(ctx, &req, "import", &res);
    if (code != CLI_EXIT_OK)
        return code;
    _cleanup_free_ char *op = xstrdup(cli_str(res.body, "id"));
    code = cmd_op_follow(ctx, op);
    _cleanup_(http_result_clear) struct http_result del = {0};
    _cleanup_free_ char *dpath = xasprintf("/v1/archives/%s", id);
    struct http_request dreq = {.method = "DELETE", .path = dpath};
    (void)cli_call(ctx, &dreq, "archive", &del);
    return code;
}
