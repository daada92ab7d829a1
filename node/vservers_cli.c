/* `vfleet-node vservers FILE`: one FreeVPS view on this node's terminal.
 * With the agent serving its mount, the file is read from there (the same
 * bytes a FreeVPS script reads; trafstat is reset by the read, as the
 * master keeps it). Without it, setup and routes_ipv4 are made from the
 * store (read-only, like `vfleet-node ls`); trafstat needs the agent and
 * its master, and self exists only inside a guest. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/statfs.h>
#include <unistd.h>

#include "common/mem.h"
#include "common/version.h"
#include "node/store.h"
#include "node/vservers.h"
#include "node/vservers_cli.h"

#define FUSE_SUPER_MAGIC 0x65735546

/* Copies mount/file to stdout; -ENOENT when the mount is not served. */
static int
from_mount(const char *mount, const char *file)
{
    struct statfs sf;

    if (statfs(mount, &sf) < 0 || sf.f_type != FUSE_SUPER_MAGIC)
        return -ENOENT;
    _cleanup_free_ char *path = xasprintf("%s/%s", mount, file);
    _cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    char buf[65536];
    ssize_t n;
    while ((n = read(fd, buf, sizeof(buf))) > 0)
        fwrite(buf, 1, (size_t)n, stdout);
    return n < 0 ? -errno : 0;
}

static int
from_store(const char *state_dir, const char *file)
{
    _cleanup_(store_close) store_t *s = NULL;
    size_t len = 0;
    int r = store_open_readonly(state_dir, &s);

    if (r < 0)
        return r;
    if (!strcmp(file, "setup")) {
        struct vs_setup st = {.contexts = (uint32_t)store_count(s)};
        strscpy(st.version, VS_VERSION, sizeof(st.version));
        snprintf(st.build, sizeof(st.build), "vfleet %s (agent not running)", VFLEET_VERSION);
        for (size_t i = 0; i < store_count(s); i++)
            st.active += store_at(s, i)->rt.pid != 0;
        _cleanup_free_ char *t = vs_render_setup(&st, &len);
        fwrite(t, 1, len, stdout);
        return 0;
    }
    struct vs_route *rows = NULL;
    size_t n = 0;
    for (size_t i = 0; i < store_count(s); i++) {
        const struct guest_spec *sp = &store_at(s, i)->spec;
        for (uint32_t k = 0; k < sp->n_addrs; k++) {
            if (sp->addrs[k].family != AF_INET)
                continue;
            rows = xreallocarray(rows, n + 1, sizeof(*rows));
            memset(&rows[n], 0, sizeof(rows[n]));
            netaddr_format(&sp->addrs[k], false, rows[n].address, sizeof(rows[n].address));
            spec_ifname(sp->id, rows[n].name);
            rows[n++].context = sp->context;
        }
    }
    _cleanup_free_ char *t = vs_render_routes(rows, n, &len);
    free(rows);
    fwrite(t, 1, len, stdout);
    return 0;
}

int
vservers_cli(const char *state_dir, const char *mount, const char *file)
{
    if (strcmp(file, "setup") && strcmp(file, "trafstat") && strcmp(file, "routes_ipv4") &&
        strcmp(file, "self")) {
        fprintf(stderr, "vfleet-node: no view \"%s\" (setup, trafstat, routes_ipv4, self)\n", file);
        return -EINVAL;
    }
    int r = mount[0] ? from_mount(mount, file) : -ENOENT;
    if (r != -ENOENT || !strcmp(file, "self") || !strcmp(file, "trafstat")) {
        if (r == -ENOENT)
            fprintf(stderr, "vfleet-node: %s needs the running agent's views at \"%s\"%s\n", file,
                    mount, !strcmp(file, "self") ? " (and exists inside a guest only)" : "");
        else if (r < 0)
            fprintf(stderr, "vfleet-node: cannot read %s: %s\n", file, strerror(-r));
        return r;
    }
    r = from_store(state_dir, file);
    if (r < 0)
        fprintf(stderr, "vfleet-node: cannot read the store in \"%s\": %s\n", state_dir,
                strerror(-r));
    return r;
}

void
vservers_mount_path(const char *value, const char *state_dir, bool by_default, char *out, size_t n)
{
    _cleanup_free_ char *def = xasprintf("%s/vservers", state_dir);
    const char *v = value ? value : by_default ? def : "";

    if (!strcmp(v, "none") || strscpy(out, v, n) < 0)
        out[0] = '\0';
}
