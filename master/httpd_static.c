/* The web UI's files: which URL paths are served, and their types
 * (httpd_static.h). */
#include "master/httpd_static.h"

#include <string.h>

const char *
httpd_content_type(const char *path)
{
    static const struct {
        const char *ext;  /* file name ending */
        const char *type; /* its Content-Type */
    } types[] = {
        {".html", "text/html; charset=utf-8"},
        {".js", "text/javascript; charset=utf-8"},
        {".css", "text/css; charset=utf-8"},
        {".json", "application/json"},
        {".svg", "image/svg+xml"},
        {".png", "image/png"},
        {".ico", "image/x-icon"},
        {".txt", "text/plain; charset=utf-8"},
    };
    size_t n = strlen(path);

    for (size_t i = 0; i < sizeof(types) / sizeof(types[0]); i++) {
        size_t e = strlen(types[i].ext);
        if (n >= e && strcmp(path + n - e, types[i].ext) == 0)
            return types[i].type;
    }
    return "application/octet-stream";
}

bool
httpd_static_path_ok(const char *url)
{
    const char *p = url;

    if (*p != '/' || strlen(url) > 1024)
        return false;
    while (*p == '/') {
        const char *seg = p + 1, *end = strchr(seg, '/');
        size_t len = end ? (size_t)(end - seg) : strlen(seg);
        if (len == 0 || seg[0] == '.')
            return false;
        for (size_t i = 0; i < len; i++)
            if (seg[i] == '\\' || (unsigned char)seg[i] < 0x20)
                return false;
        p = seg + len;
    }
    return *p == '\0';
}
