/* The web UI's files that httpd serves (httpd_set_static): pure helpers,
 * used by libmicrohttpd's threads. */
#pragma once

#include <stdbool.h>

/* The Content-Type of a file by its name's ending, application/octet-stream
 * for any other. */
const char *httpd_content_type(const char *path);
/* A URL path is served only when every segment is a plain file name: it
 * starts with "/", has at most 1,024 bytes, no empty segment, no segment
 * that starts with ".", no backslash or control byte. */
bool httpd_static_path_ok(const char *url);
