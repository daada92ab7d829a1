#include "node/leftovers_cli.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <unistd.h>

#include <jansson.h>

#include "common/errtext.h"
#include "common/fsutil.h"
#include "common/mem.h"
#include "node/leftovers.h"
#include "node/store.h"

enum { EXIT_FAIL = 1, EXIT_USAGE = 2, EXIT_NOT_FOUND = 3 }; /* as node/main.c */

/* What the store has of leftover l's record, as `leftovers` says it. */
static const char *
record_word(const struct leftover *l)
{
    return l->set_aside[0] ? "set aside" : l->unreadable ? "unreadable" : "none";
}

/* Prints the n leftovers v of state directory dir as one line of JSON: an
 * array of {id, record, dir}, and set_aside or file naming the record. */
static int
print_json(const char *dir, const struct leftover *v, size_t n)
{
    json_auto_t *a = json_array();

    for (size_t i = 0; i < n; i++) {
        const struct leftover *l = &v[i];
        json_t *e = json_pack("{s:s, s:s}", "id", l->id, "record", record_word(l));
        /* The paths are the operator's: json_sprintf gives NULL, and the
         * set -1, for one that is no UTF-8, which JSON cannot carry. */
        int r = json_array_append_new(a, e);
        if (r == 0)
            r = json_object_set_new(e, "dir", json_sprintf("%s/data/%s", dir, l->id));
        if (r == 0 && l->set_aside[0])
            r = json_object_set_new(e, "set_aside",
                                    json_sprintf("%s/guests/%s", dir, l->set_aside));
        else if (r == 0 && l->unreadable)
            r = json_object_set_new(e, "file", json_sprintf("%s/guests/%s.json", dir, l->id));
        if (r < 0) {
            fprintf(stderr, "vfleet-node: the paths in \"%s\" are no UTF-8: use the text output\n",
                    dir);
            return EXIT_FAIL;
        }
    }
    _cleanup_free_ char *text = json_dumps(a, JSON_COMPACT);
    if (!text) {
        fprintf(stderr, "vfleet-node: out of memory\n");
        return EXIT_FAIL;
    }
    puts(text);
    return 0;
}

int
leftovers_cli_ls(const char *dir, bool json)
{
    _cleanup_(store_close) store_t *s = NULL;
    _cleanup_free_ struct leftover *v = NULL;
    size_t n = 0;
    int r = store_open_readonly(dir, &s);

    /* No store yet (no agent ever ran here): nothing has a record. */
    if (r == -ENOENT)
        r = store_open_memory(&s);
    if (r < 0) {
        fprintf(stderr, "vfleet-node: cannot open the store in \"%s\": %s\n", dir, strerror(-r));
        return EXIT_FAIL;
    }
    r = leftovers_list(dir, s, &v, &n);
    if (r < 0) {
        fprintf(stderr, "vfleet-node: cannot list \"%s/data\": %s\n", dir, strerror(-r));
        return EXIT_FAIL;
    }
    if (json)
        return print_json(dir, v, n);
    printf("%-36s %s\n", "ID", "RECORD");
    for (size_t i = 0; i < n; i++) {
        const char *aside = v[i].set_aside;
        if (aside[0])
            printf("%-36s set aside as unreadable: %s/guests/%s\n", v[i].id, dir, aside);
        else if (v[i].unreadable)
            printf("%-36s unreadable: %s/guests/%s.json (the agent sets it aside at its start)\n",
                   v[i].id, dir, v[i].id);
        else
            printf("%-36s none written\n", v[i].id);
    }
    return 0;
}

/* The agent's lock, STATE_DIR/vfleet-node.pid (node/main.c take_pidfile),
 * held so that no agent starts while leftovers are removed, with this
 * process's pid in it as the agent writes its own: whoever finds it locked
 * (a second remove, an agent's start, `vfleet-node status`) is told who
 * holds it, not an agent that ran there once. Its fd, or -1 after saying
 * why (the agent or another remove runs, or the file cannot be used). */
static int
agent_lock(const char *dir)
{
    _cleanup_free_ char *path = xasprintf("%s/vfleet-node.pid", dir);
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0644);
    char buf[32] = "";

    if (fd < 0) {
        fprintf(stderr, "vfleet-node: cannot open \"%s\": %s\n", path, strerror(errno));
        return -1;
    }
    if (flock(fd, LOCK_EX | LOCK_NB) == 0) {
        int n = snprintf(buf, sizeof(buf), "%d\n", (int)getpid());
        if (ftruncate(fd, 0) == 0 && pwrite(fd, buf, (size_t)n, 0) == n)
            return fd;
        fprintf(stderr, "vfleet-node: cannot write \"%s\": %s\n", path, strerror(errno));
    } else if (errno != EWOULDBLOCK) {
        fprintf(stderr, "vfleet-node: cannot lock \"%s\": %s\n", path, strerror(errno));
    } else if (pread(fd, buf, sizeof(buf) - 1, 0) >= 0) {
        fprintf(stderr,
                "vfleet-node: \"%s\" is in use by pid %d (the agent, or another leftovers "
                "remove): stop the agent first\n",
                dir, atoi(buf));
    }
    close(fd);
    return -1;
}

/* What a refusal or failure of leftovers_claim / leftovers_remove means. */
static int
remove_failed(const char *dir, const char *id, int r)
{
    switch (r) {
    case -EINVAL:
        fprintf(stderr, "vfleet-node: \"%s\" is not a guest id\n", id);
        return EXIT_USAGE;
    case -EALREADY:
        fprintf(stderr, "vfleet-node: the store in \"%s\" is in use: stop the agent first\n", dir);
        return EXIT_FAIL;
    case -EEXIST:
        fprintf(stderr,
                "vfleet-node: the store has a record of guest %s: it is no leftover (destroy it "
                "through the master)\n",
                id);
        return EXIT_FAIL;
    case -EUCLEAN:
        fprintf(stderr,
                "vfleet-node: the record of guest %s was set aside as unreadable "
                "(%s/guests/%s.json.corrupt-*): repair it, or move it out of %s/guests, before "
                "removing the guest\n",
                id, dir, id, dir);
        return EXIT_FAIL;
    case -ENOENT:
        fprintf(stderr, "vfleet-node: no leftovers of guest %s in \"%s\"\n", id, dir);
        return EXIT_NOT_FOUND;
    default:
        fprintf(stderr, "vfleet-node: cannot remove the leftovers of guest %s: %s\n", id,
                errtext_get()[0] ? errtext_get() : strerror(-r));
        return EXIT_FAIL;
    }
}

int
leftovers_cli_remove(const char *dir, char **args, int n, bool yes, const struct linux_config *lc)
{
    _cleanup_(store_close) store_t *s = NULL;
    int err = 0;

    if (n != 2 || strcmp(args[0], "remove") != 0) {
        fprintf(stderr, "vfleet-node: leftovers [--json], or leftovers remove ID --yes\n");
        return EXIT_USAGE;
    }
    const char *id = args[1];
    if (!yes) {
        fprintf(stderr,
                "vfleet-node: \"leftovers remove %s\" deletes that guest's disk image and all "
                "else of it on this node; add --yes to do so\n",
                id);
        return EXIT_USAGE;
    }
    _cleanup_close_ int lock = agent_lock(dir);
    if (lock < 0)
        return EXIT_FAIL;
    /* The checks before the backend starts: a refusal touches nothing. */
    int r = leftovers_claim(dir, id, &s);
    if (r < 0)
        return remove_failed(dir, id, r);
    backend_t *b = linux_backend_new(lc, &err);
    if (!b) {
        fprintf(stderr, "vfleet-node: the linux backend failed to start: %s\n", strerror(-err));
        return EXIT_FAIL;
    }
    r = leftovers_remove(s, b, id);
    b->ops->free(b);
    if (r < 0)
        return remove_failed(dir, id, r);
    printf("removed the leftovers of guest %s\n", id);
    return 0;
}
