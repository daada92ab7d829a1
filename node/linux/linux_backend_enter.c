/* What vfleet-node does on a guest without asking the agent: enter it (a
 * command in its namespaces, cgroups and filter) and read its console ring. */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/mem.h"
#include "node/linux/console.h"
#include "node/linux/linux_backend_int.h"
#include "node/linux/nsexec.h"
#include "node/linux/proc.h"
#include "node/linux/sysfilter.h"

int
linux_console_read(const char *state_dir, const struct guest_spec *spec, size_t max,
                   struct console_log *out)
{
    struct linux_backend l = {0};
    struct guest_paths p;

    strscpy(l.cfg.state_dir, state_dir, sizeof(l.cfg.state_dir));
    paths_of(&l, spec, &p);
    return console_ring_read(p.console, max, out);
}

int
linux_enter(const char *state_dir, const char *cgroup_prefix, const struct guest_spec *spec,
            const struct guest_runtime *rt, char **argv)
{
    struct linux_backend l = {0};
    struct guest_paths p;
    struct spawn_config c;
    struct nsexec_params np = {0};
    struct nsexec_status st = {0};
    int pipefd[2], r;

    if (!rt->pid || proc_is_same(rt->pid, rt->start_time) <= 0)
        return -ESRCH;
    strscpy(l.cfg.state_dir, state_dir, sizeof(l.cfg.state_dir));
    strscpy(l.cfg.cgroup_prefix, cgroup_prefix && *cgroup_prefix ? cgroup_prefix : "vfleet",
            sizeof(l.cfg.cgroup_prefix));
    r = cgroup_mgr_new("/sys/fs/cgroup", l.cfg.cgroup_prefix, &l.cgroups);
    if (r < 0)
        return r;
    paths_of(&l, spec, &p);
    /* A guest a move or an export froze: the child would freeze as it
     * joined its cgroups, and the session with it until the thaw. */
    r = lx_migrate_frozen(&l.base, spec) == 1 ? -EBUSY : 0;
    if (r >= 0)
        r = lx_spawn_config_of(&l, spec, NULL, &p, &c);
    cgroup_mgr_destroy(&l.cgroups);
    if (r < 0)
        return r;
    /* Compiled here, before the fork, like the spawner does. */
    if (!sysfilter_get(c.filter))
        return -errno;
    for (int i = 0; i < NSEXEC_NS_COUNT; i++) {
        char path[64];
        snprintf(path, sizeof(path), "/proc/%d/ns/%s", (int)rt->pid, nsexec_ns_names[i]);
        np.ns[i] = open(path, O_RDONLY | O_CLOEXEC);
        if (np.ns[i] < 0) {
            r = -errno;
            while (i-- > 0)
                close(np.ns[i]);
            return r;
        }
    }
    if (pipe2(pipefd, O_CLOEXEC) < 0)
        return -errno;
    np.cfg = &c;
    np.argv = argv;
    np.timeout_ms = UINT32_MAX; /* an interactive session ends when its user says so */
    np.null = fcntl(0, F_DUPFD_CLOEXEC, 3);
    np.out = fcntl(1, F_DUPFD_CLOEXEC, 3);
    np.err = fcntl(2, F_DUPFD_CLOEXEC, 3);
    np.status = pipefd[1];
    pid_t child = fork();
    if (child < 0) {
        r = -errno;
        close(pipefd[0]);
        close(pipefd[1]);
        return r;
    }
    if (child == 0)
        nsexec_run(&np);
    close(pipefd[1]);
    close(np.null);
    close(np.out);
    close(np.err);
    for (int i = 0; i < NSEXEC_NS_COUNT; i++)
        close(np.ns[i]);
    ssize_t n = read(pipefd[0], &st, sizeof(st));
    close(pipefd[0]);
    while (waitpid(child, NULL, 0) < 0 && errno == EINTR)
        ;
    if (n != (ssize_t)sizeof(st))
        return -EIO;
    if (st.err)
        return -st.err;
    if (WIFEXITED(st.wstatus))
        return WEXITSTATUS(st.wstatus);
    return 128 + WTERMSIG(st.wstatus);
}
