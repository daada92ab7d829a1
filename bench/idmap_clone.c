/* The CPU time of one guest's idmapped lower layer (idmap.h) with K mounts
 * attached to the mount the template is on, as on a node where every guest's
 * disk, lower layer and overlay hang from the templates' mount: cloned from
 * the template's path (idmap_mount, what a create did before) and from a held
 * detached clone of it (idmap_mount_tree with idmap_tree, what it does now).
 * Runs in a mount namespace of its own (nothing it mounts is seen outside or
 * outlives it): a tmpfs as the templates' mount, three small tmpfs mounts per
 * guest at data/<i>/{disk,lower,root} on it, then N mounts and unmounts of a
 * lower layer each way, alternately. Needs root.
 * Not a test: it prints figures (docs/performance.md).
 *
 * Usage: bench_idmap_clone [-g GUESTS] [-n CLONES] */
#include <errno.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "node/linux/idmap.h"

static double
cpu_us(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec * 1e6 + (double)ts.tv_nsec / 1e3;
}

static int
fail(const char *what, int r)
{
    fprintf(stderr, "bench_idmap_clone: %s: %s\n", what, strerror(r < 0 ? -r : errno));
    return 1;
}

int
main(int argc, char **argv)
{
    unsigned g = 1000, n = 200;
    int opt;
    while ((opt = getopt(argc, argv, "g:n:")) != -1) {
        if (opt == 'g')
            g = (unsigned)strtoul(optarg, NULL, 10);
        else if (opt == 'n')
            n = (unsigned)strtoul(optarg, NULL, 10);
        else
            return 2;
    }
    if (geteuid() != 0)
        return fprintf(stderr, "bench_idmap_clone: needs root\n"), 2;
    if (!n || g > 30000)
        return 2;
    char dir[] = "/tmp/vfleet-idmap-clone.XXXXXX", path[160], lower[128], tpl[128];
    if (!mkdtemp(dir))
        return fail("mkdtemp", 0);
    if (unshare(CLONE_NEWNS) < 0 || mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0)
        return fail("private mount namespace", 0);
    if (mount("tmpfs", dir, "tmpfs", 0, "size=16m,nr_inodes=200000") < 0)
        return fail("tmpfs", 0);
    snprintf(tpl, sizeof(tpl), "%s/tpl", dir);
    snprintf(lower, sizeof(lower), "%s/lower", dir);
    if (mkdir(tpl, 0755) < 0 || mkdir(lower, 0700) < 0)
        return fail("mkdir", 0);
    static const char *const leaf[] = {"disk", "lower", "root"};
    snprintf(path, sizeof(path), "%s/data", dir);
    if (g && mkdir(path, 0700) < 0)
        return fail("mkdir", 0);
    for (unsigned i = 0; i < g; i++) {
        snprintf(path, sizeof(path), "%s/data/%08x-0000-4000-8000-%012x", dir, i, i);
        if (mkdir(path, 0700) < 0)
            return fail("mkdir", 0);
        for (int j = 0; j < 3; j++) {
            snprintf(path, sizeof(path), "%s/data/%08x-0000-4000-8000-%012x/%s", dir, i, i,
                     leaf[j]);
            if (mkdir(path, 0700) < 0 || mount("tmpfs", path, "tmpfs", 0, "size=4k") < 0)
                return fail("a guest's mount", 0);
        }
    }
    int userns = idmap_userns_fd(0xF2000000u, IDMAP_BLOCK);
    if (userns < 0)
        return fail("user namespace", userns);
    int tree = idmap_tree(tpl);
    if (tree < 0)
        return fail("idmap_tree", tree);
    double by_path = 0, by_tree = 0;
    for (unsigned i = 0; i < n; i++) {
        double t0 = cpu_us();
        int r = idmap_mount(tpl, userns, lower);
        double t1 = cpu_us();
        if (r < 0 || (r = idmap_umount(lower)) < 0)
            return fail("idmap_mount", r);
        double t2 = cpu_us();
        r = idmap_mount_tree(tree, tpl, userns, lower);
        double t3 = cpu_us();
        if (r < 0 || (r = idmap_umount(lower)) < 0)
            return fail("idmap_mount_tree", r);
        by_path += t1 - t0, by_tree += t3 - t2;
    }
    printf("idmapped lower layer with %u guests' mounts (%u) on the template's mount, mean of "
           "%u: from the path %.1f us CPU, from a held tree %.1f us CPU (%.2fx)\n",
           g, 3 * g, n, by_path / n, by_tree / n, by_tree / by_path);
    /* The namespace's mounts go with it; the directory is ours to remove. */
    umount2(dir, MNT_DETACH);
    rmdir(dir);
    return 0;
}
