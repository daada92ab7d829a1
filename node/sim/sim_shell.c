/* The sim backend's guest.shell: a guest that does not exist has no shell
 * to run, so a thread plays a tiny one on the ends the agent gets — a
 * socket pair instead of a terminal — enough to drive the stream end to end
 * in tests: it echoes what is typed when on a terminal, answers `hostname`
 * with the guest's name, `echo WORDS`, `cat` (copies input until a line
 * holding only "."), `exit [N]`, and "sh: CMD: not found" (127 on its own)
 * for the rest. A command given as argv runs once, then the shell exits
 * with its status. */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/mem.h"
#include "node/sim/sim.h"

/* One session's thread state. */
struct sim_shell {
    int io;                      /* the thread's end of the data pair */
    int ctl;                     /* the thread's end of the control pair */
    bool tty;                    /* echo input, CR LF line ends */
    char name[NAME_MAX_LEN + 1]; /* the guest's name, for hostname */
    char *cmd;                   /* a command line given as argv, or NULL */
};

static void
put(struct sim_shell *sh, const char *s)
{
    size_t n = strlen(s);
    for (size_t i = 0; i < n; i++) {
        if (sh->tty && s[i] == '\n')
            (void)send(sh->io, "\r", 1, MSG_NOSIGNAL);
        (void)send(sh->io, s + i, 1, MSG_NOSIGNAL);
    }
}

/* Runs one line; returns -1 to go on, else the shell's exit status. */
static int
run_line(struct sim_shell *sh, char *line, bool *in_cat)
{
    char out[600];

    if (*in_cat) {
        if (strcmp(line, ".") == 0)
            *in_cat = false;
        else {
            snprintf(out, sizeof(out), "%s\n", line);
            put(sh, out);
        }
        return -1;
    }
    while (*line == ' ')
        line++;
    if (!*line)
        return -1;
    if (strcmp(line, "hostname") == 0) {
        snprintf(out, sizeof(out), "%s\n", sh->name);
        put(sh, out);
    } else if (strncmp(line, "echo", 4) == 0 && (line[4] == ' ' || !line[4])) {
        snprintf(out, sizeof(out), "%s\n", line[4] ? line + 5 : "");
        put(sh, out);
    } else if (strcmp(line, "cat") == 0) {
        *in_cat = true;
    } else if (strncmp(line, "exit", 4) == 0 && (line[4] == ' ' || !line[4])) {
        return line[4] ? atoi(line + 5) & 255 : 0;
    } else {
        snprintf(out, sizeof(out), "sh: %s: not found\n", line);
        put(sh, out);
        return sh->cmd ? 127 : -1;
    }
    return sh->cmd ? 0 : -1;
}

static void *
shell_main(void *arg)
{
    struct sim_shell *sh = arg;
    struct shell_status st = {0};
    char line[512];
    size_t len = 0;
    bool in_cat = false;
    int code = -1;

    if (sh->cmd) {
        code = run_line(sh, sh->cmd, &in_cat);
        if (code < 0)
            code = 0;
    } else if (sh->tty) {
        put(sh, "# ");
    }
    while (code < 0) {
        char c;
        ssize_t n = recv(sh->io, &c, 1, 0);
        if (n <= 0) {
            code = 0; /* end of input: the shell ends as sh does */
            break;
        }
        if (sh->tty && c == 0x03) { /* ^C: a new prompt */
            put(sh, "^C\n# ");
            len = 0;
            continue;
        }
        if (sh->tty && c == 0x04 && len == 0) /* ^D on an empty line */
            break;
        if (sh->tty)
            (void)send(sh->io, &c, 1, MSG_NOSIGNAL);
        if (c == '\r' || c == '\n') {
            if (sh->tty && c == '\r')
                (void)send(sh->io, "\n", 1, MSG_NOSIGNAL);
            line[len] = '\0';
            len = 0;
            code = run_line(sh, line, &in_cat);
            if (code < 0 && sh->tty && !in_cat)
                put(sh, "# ");
        } else if (len + 1 < sizeof(line)) {
            line[len++] = c;
        }
    }
    st.wstatus = W_EXITCODE(code < 0 ? 0 : code, 0);
    (void)send(sh->ctl, &st, sizeof(st), MSG_NOSIGNAL);
    close(sh->io);
    close(sh->ctl);
    free(sh->cmd);
    free(sh);
    return NULL;
}

int
sim_shell_start(const struct guest_spec *spec, const struct shell_request *req,
                struct shell_proc *out)
{
    int io[2], ctl[2];
    pthread_t t;
    pthread_attr_t attr;
    struct sim_shell *sh;

    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, io) < 0)
        return -errno;
    if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, ctl) < 0) {
        int r = -errno;
        close(io[0]);
        close(io[1]);
        return r;
    }
    sh = xcalloc(1, sizeof(*sh));
    sh->io = io[1];
    sh->ctl = ctl[1];
    sh->tty = req->tty;
    strscpy(sh->name, spec->name, sizeof(sh->name));
    if (req->argv && req->argv[0]) {
        /* "sh -c LINE" runs LINE; anything else runs its words as a line. */
        size_t n = 0;
        char buf[512] = "";
        for (size_t i = 0; req->argv[i]; i++) {
            if (i == 1 && strcmp(req->argv[1], "-c") == 0 && req->argv[2]) {
                snprintf(buf, sizeof(buf), "%s", req->argv[2]);
                break;
            }
            n += (size_t)snprintf(buf + n, sizeof(buf) > n ? sizeof(buf) - n : 0, "%s%s",
                                  i ? " " : "", req->argv[i]);
            if (n >= sizeof(buf))
                break;
        }
        const char *base = strrchr(req->argv[0], '/');
        sh->cmd =
            xstrdup(strcmp(base ? base + 1 : req->argv[0], "sh") == 0 && !req->argv[1] ? "" : buf);
        if (!sh->cmd[0]) {
            free(sh->cmd);
            sh->cmd = NULL;
        }
    }
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    int r = pthread_create(&t, &attr, shell_main, sh);
    pthread_attr_destroy(&attr);
    if (r != 0) {
        close(io[0]);
        close(io[1]);
        close(ctl[0]);
        close(ctl[1]);
        free(sh->cmd);
        free(sh);
        return -r;
    }
    *out = (struct shell_proc){.pid = 0, .in = io[0], .out = dup(io[0]), .err = -1, .ctl = ctl[0]};
    return out->out < 0 ? -errno : 0;
}
