/* The template library (template_lib.h). */
#include "master/template_lib.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "archive/archive.h"
#include "common/fsutil.h"
#include "common/log.h"
#include "common/mem.h"
#include "master/archives.h"
#include "proto/xfer.h"

#define MANIFEST_KIND "template" /* the manifest's "kind" of a template archive */

/* The directory's path, without making it. */
static void
dir_path(master_t *m, char *out, size_t n)
{
    if (m->cfg.templates && m->cfg.templates[0]) {
        snprintf(out, n, "%s", m->cfg.templates);
    } else if (strcmp(m->cfg.db_path, ":memory:") == 0) {
        snprintf(out, n, "/tmp/vfleet-master-%d-templates", (int)getpid());
    } else {
        _cleanup_free_ char *copy = xstrdup(m->cfg.db_path);
        snprintf(out, n, "%s/templates", dirname(copy));
    }
}

int
template_lib_dir(master_t *m, char *out, size_t n)
{
    dir_path(m, out, n);
    return fs_mkdir_p(out, 0700);
}

static int
file_of(master_t *m, const char *name, const char *ext, char *out, size_t n)
{
    char dir[PATH_MAX_ARCHIVE];

    if (!name_is_valid(name))
        return -ENOENT;
    dir_path(m, dir, sizeof(dir));
    if (snprintf(out, n, "%s/%s.%s", dir, name, ext) >= (int)n)
        return -ENAMETOOLONG;
    return 0;
}

int
template_lib_path(master_t *m, const char *name, char *out, size_t n)
{
    return file_of(m, name, "vfx", out, n);
}

json_t *
template_lib_entry_json(const struct template_lib_entry *e)
{
    return json_pack("{s:s, s:s, s:s, s:I, s:I}", "name", e->name, "sha256", e->sha256, "digest",
                     e->digest, "size", (json_int_t)e->size, "added_ms", (json_int_t)e->added_ms);
}

int
template_lib_get(master_t *m, const char *name, struct template_lib_entry *out)
{
    char path[PATH_MAX_ARCHIVE];
    int r = file_of(m, name, "json", path, sizeof(path));

    memset(out, 0, sizeof(*out));
    if (r < 0)
        return r;
    json_t *j = json_load_file(path, 0, NULL);
    const char *sha = json_string_value(json_object_get(j, "sha256"));
    const char *dig = json_string_value(json_object_get(j, "digest"));
    if (!j || !sha || strlen(sha) != 64 || !dig || strlen(dig) != 64) {
        json_decref(j);
        return -ENOENT;
    }
    strscpy(out->name, name, sizeof(out->name));
    strscpy(out->sha256, sha, sizeof(out->sha256));
    strscpy(out->digest, dig, sizeof(out->digest));
    out->size = (uint64_t)json_integer_value(json_object_get(j, "size"));
    out->added_ms = (uint64_t)json_integer_value(json_object_get(j, "added_ms"));
    json_decref(j);
    return 0;
}

/* The upload is a template archive of name: its manifest says so. */
static int
check_manifest(const char *path, const char *name, char *why, size_t n)
{
    _cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC);
    _cleanup_free_ char *text = NULL;
    char err[256] = "";

    if (fd < 0)
        return snprintf(why, n, "the upload cannot be read: %s", strerror(errno)), -ENOENT;
    if (archive_manifest(fd, &text, err, sizeof(err)) < 0)
        return snprintf(why, n, "the archive cannot be read: %s", err), -EINVAL;
    json_t *man = json_loads(text, 0, NULL);
    const char *kind = json_string_value(json_object_get(man, "kind"));
    const char *tname = json_string_value(json_object_get(man, "template"));
    int r = -EINVAL;
    if (json_integer_value(json_object_get(man, "format")) != ARCHIVE_FORMAT)
        snprintf(why, n, "the archive's manifest is not format %d", ARCHIVE_FORMAT);
    else if (!kind || strcmp(kind, MANIFEST_KIND) != 0)
        snprintf(why, n,
                 "the archive is not a template (its manifest's \"kind\" is not "
                 "\"template\")");
    else if (!tname || strcmp(tname, name) != 0)
        snprintf(why, n, "the archive is template \"%s\", not \"%s\"", tname ? tname : "", name);
    else
        r = 0;
    json_decref(man);
    return r;
}

static int
write_entry(const char *path, const struct template_lib_entry *e)
{
    _cleanup_free_ char *tmp = xasprintf("%s.tmp", path);
    json_t *j = template_lib_entry_json(e);
    _cleanup_free_ char *text = json_dumps(j, JSON_COMPACT);
    json_decref(j);
    _cleanup_close_ int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);

    if (fd < 0 || dprintf(fd, "%s\n", text) < 0 || fsync(fd) < 0 || rename(tmp, path) < 0) {
        int r = -errno;
        if (fd >= 0)
            (void)unlink(tmp);
        return r;
    }
    return 0;
}

/* Renames from to to, or copies it when the library is on another
 * filesystem than the uploads ([master] templates). */
static int
move_file(const char *from, const char *to)
{
    if (rename(from, to) == 0)
        return 0;
    if (errno != EXDEV)
        return -errno;
    _cleanup_free_ char *tmp = xasprintf("%s.tmp", to);
    _cleanup_close_ int in = open(from, O_RDONLY | O_CLOEXEC);
    _cleanup_close_ int out = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    ssize_t k;

    if (in < 0 || out < 0)
        return -errno;
    while ((k = copy_file_range(in, NULL, out, NULL, 1 << 30, 0)) > 0)
        ;
    if (k < 0 || fsync(out) < 0 || rename(tmp, to) < 0) {
        int r = -errno;
        (void)unlink(tmp);
        return r;
    }
    return unlink(from) < 0 ? -errno : 0;
}

int
template_lib_add(master_t *m, const char *name, const char *upload, struct template_lib_entry *out,
                 char *why, size_t n)
{
    char up[PATH_MAX_ARCHIVE], vfx[PATH_MAX_ARCHIVE], desc[PATH_MAX_ARCHIVE];
    struct archives_info in;
    struct template_lib_entry old;

    if (!name_is_valid(name))
        return snprintf(why, n,
                        "\"%s\" is not a template name (a DNS label: a-z, 0-9, "
                        "'-', at most %d characters)",
                        name, NAME_MAX_LEN),
               -EINVAL;
    int r = archives_upload_verify(m, upload);
    if (r == -EAGAIN)
        return snprintf(why, n, "archive %s has not arrived whole", upload), r;
    if (r == -EBADMSG)
        return snprintf(why, n, "archive %s does not have the checksum announced", upload), r;
    if (r < 0 || archives_info(m, upload, &in) < 0 || strcmp(in.kind, "upload") != 0)
        return snprintf(why, n, "no uploaded archive %s", upload), -ENOENT;
    archives_path(m, upload, up, sizeof(up));
    r = check_manifest(up, name, why, n);
    if (r < 0)
        return r;
    if (template_lib_get(m, name, &old) == 0) {
        if (strcmp(old.sha256, in.sha256) != 0)
            return snprintf(why, n,
                            "template \"%s\" is in the library with another archive; "
                            "remove it first",
                            name),
                   -EEXIST;
        *out = old;
        (void)archives_delete(m, upload);
        return 0;
    }
    if ((r = template_lib_dir(m, vfx, sizeof(vfx))) < 0 ||
        (r = file_of(m, name, "vfx", vfx, sizeof(vfx))) < 0 ||
        (r = file_of(m, name, "json", desc, sizeof(desc))) < 0)
        return snprintf(why, n, "cannot make the library's paths: %s", strerror(-r)), r;
    *out = (struct template_lib_entry){.size = in.size, .added_ms = master_now_ms(m)};
    strscpy(out->name, name, sizeof(out->name));
    strscpy(out->sha256, in.sha256, sizeof(out->sha256));
    uint8_t dig[XFER_HASH_LEN];
    _cleanup_close_ int fd = open(up, O_RDONLY | O_CLOEXEC);
    if (fd < 0 || (r = xfer_file_digest(fd, dig)) < 0) {
        r = fd < 0 ? -errno : r;
        return snprintf(why, n, "cannot read the upload: %s", strerror(-r)), r;
    }
    xfer_hex_encode(dig, sizeof(dig), out->digest);
    /* The archive first, the description last: an entry shows once whole. */
    if ((r = move_file(up, vfx)) < 0 || (r = write_entry(desc, out)) < 0) {
        r = r < 0 ? r : -errno;
        return snprintf(why, n, "cannot store the template: %s", strerror(-r)), r;
    }
    (void)archives_delete(m, upload);
    log_info("template \"%s\" added to the library (sha256 %.12s, %llu bytes)", name, out->sha256,
             (unsigned long long)out->size);
    return 0;
}

int
template_lib_remove(master_t *m, const char *name)
{
    char vfx[PATH_MAX_ARCHIVE], desc[PATH_MAX_ARCHIVE];
    int r = file_of(m, name, "json", desc, sizeof(desc));

    if (r < 0 || (r = file_of(m, name, "vfx", vfx, sizeof(vfx))) < 0)
        return r;
    if (unlink(desc) < 0)
        return -errno;
    (void)unlink(vfx);
    log_info("template \"%s\" removed from the library", name);
    return 0;
}

json_t *
template_lib_json(master_t *m)
{
    char dir[PATH_MAX_ARCHIVE];
    json_t *all = json_object();

    dir_path(m, dir, sizeof(dir)); /* a list makes nothing: none yet is none */
    DIR *d = opendir(dir);
    struct dirent *e;
    while (d && (e = readdir(d))) {
        char name[NAME_MAX_LEN + 1];
        size_t len = strlen(e->d_name);
        struct template_lib_entry t;
        if (len < 6 || len - 5 > NAME_MAX_LEN || strcmp(e->d_name + len - 5, ".json") != 0)
            continue;
        memcpy(name, e->d_name, len - 5);
        name[len - 5] = '\0';
        if (template_lib_get(m, name, &t) == 0)
            json_object_set_new(all, name, template_lib_entry_json(&t));
    }
    if (d)
        closedir(d);
    return all;
}
