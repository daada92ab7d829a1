/* Tests for node/linux/spawnd: the spawner is a program of its own. Needs no
 * root (without it the spawner makes no seed namespace and goes on). */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <unistd.h>
#include <cmocka.h>
#include <elf.h>
#include <string.h>

#include <dirent.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/wait.h>

#include "common/sanitizer.h"
#include "node/linux/spawn.h"
#include "node/linux/spawnd.h"

/* libc, libcap, libseccomp and the program: about 35 (a fork of vfleet-node
 * has 217); AddressSanitizer's run time adds about 45 of its own. */
#ifdef VF_ASAN
#define MAX_MAPPINGS 128
#else
#define MAX_MAPPINGS 64
#endif

/* Lines in a file, or -errno. */
static int
count_lines(const char *path)
{
    FILE *f = fopen(path, "re");
    if (!f)
        return -errno;
    int n = 0, c;
    while ((c = getc(f)) != EOF)
        n += c == '\n';
    fclose(f);
    return n;
}

/* The spawner runs its own small program from a sealed memfd, not a copy of
 * its caller: each clone and fork it makes copies a few mappings, not every
 * library of the agent's, and nothing can change the program its later
 * children run. */
static void
test_spawner_own_program(void **state)
{
    int err;
    spawner_t *sp = spawner_new(&err);
    assert_non_null(sp);
    /* One answer, so the fork has run the program by now: a request about
     * a process that is no guest's init (its start time is wrong). */
    struct spawn_config cfg = {0};
    char *argv[] = {"true", NULL};
    struct exec_request req = {.argv = argv};
    struct exec_result res;
    assert_int_equal(spawner_exec(sp, &cfg, getpid(), 1, &req, &res), -ESRCH);

    char path[64], exe[256];
    snprintf(path, sizeof(path), "/proc/%d/exe", (int)spawner_pid(sp));
    ssize_t n = readlink(path, exe, sizeof(exe) - 1);
    assert_true(n > 0);
    exe[n] = '\0';
    assert_non_null(strstr(exe, "memfd:vfleet-spawner"));
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    assert_true(fd >= 0);
    int seals = fcntl(fd, F_GET_SEALS);
    close(fd);
    assert_true(seals >= 0);
    assert_int_equal(seals & (F_SEAL_SEAL | F_SEAL_WRITE | F_SEAL_GROW | F_SEAL_SHRINK),
                     F_SEAL_SEAL | F_SEAL_WRITE | F_SEAL_GROW | F_SEAL_SHRINK);

    snprintf(path, sizeof(path), "/proc/%d/maps", (int)spawner_pid(sp));
    int theirs = count_lines(path), ours = count_lines("/proc/self/maps");
    fprintf(stderr, "spawnd_test: the spawner has %d mappings, this test %d\n", theirs, ours);
    assert_true(theirs > 0 && ours > 0);
    assert_true(theirs <= MAX_MAPPINGS);
    spawner_destroy(&sp);
}

/* 1 when the ELF program open at fd asks the loader to bind every symbol
 * at start (DF_BIND_NOW or DF_1_NOW), 0 when it binds lazily, -errno. */
static int
binds_now(int fd)
{
    Elf64_Ehdr eh;
    if (pread(fd, &eh, sizeof(eh), 0) != (ssize_t)sizeof(eh))
        return -EIO;
    if (memcmp(eh.e_ident, ELFMAG, SELFMAG) != 0 || eh.e_ident[EI_CLASS] != ELFCLASS64 ||
        eh.e_phentsize != sizeof(Elf64_Phdr))
        return -ENOEXEC;
    for (unsigned i = 0; i < eh.e_phnum; i++) {
        Elf64_Phdr ph;
        off_t at = (off_t)(eh.e_phoff + i * sizeof(ph));
        if (pread(fd, &ph, sizeof(ph), at) != (ssize_t)sizeof(ph))
            return -EIO;
        if (ph.p_type != PT_DYNAMIC)
            continue;
        for (uint64_t off = 0; off + sizeof(Elf64_Dyn) <= ph.p_filesz; off += sizeof(Elf64_Dyn)) {
            Elf64_Dyn d;
            if (pread(fd, &d, sizeof(d), (off_t)(ph.p_offset + off)) != (ssize_t)sizeof(d))
                return -EIO;
            if (d.d_tag == DT_NULL)
                break;
            if ((d.d_tag == DT_FLAGS && (d.d_un.d_val & DF_BIND_NOW)) ||
                (d.d_tag == DT_FLAGS_1 && (d.d_un.d_val & DF_1_NOW)))
                return 1;
        }
        return 0;
    }
    return 0; /* static: nothing to bind */
}

/* The spawner's program binds its symbols once, when it starts: its guests'
 * children, readers and exec helpers find them bound, instead of each
 * looking up again (and faulting in ld.so for) every function the spawner
 * itself never called. */
static void
test_spawner_binds_now(void **state)
{
    int err;
    spawner_t *sp = spawner_new(&err);
    assert_non_null(sp);
    struct spawn_config cfg = {0};
    char *argv[] = {"true", NULL};
    struct exec_request req = {.argv = argv};
    struct exec_result res;
    assert_int_equal(spawner_exec(sp, &cfg, getpid(), 1, &req, &res), -ESRCH);

    char path[64];
    snprintf(path, sizeof(path), "/proc/%d/exe", (int)spawner_pid(sp));
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    assert_true(fd >= 0);
    assert_int_equal(binds_now(fd), 1);
    close(fd);
    spawner_destroy(&sp);
}

/* ---- a long command's arguments on the wire (spawnd.h) ---- */

/* Entries in a directory but . and .., or -errno. */
static int
count_entries(const char *path)
{
    DIR *d = opendir(path);
    if (!d)
        return -errno;
    int n = 0;
    for (struct dirent *e; (e = readdir(d));)
        n += e->d_name[0] != '.';
    closedir(d);
    return n;
}

/* A memfd holding len bytes of buf, sealed against writes and size changes
 * when seal. */
static int
args_memfd(const char *buf, size_t len, bool seal)
{
    int fd = memfd_create("test-args", MFD_CLOEXEC | MFD_ALLOW_SEALING);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, buf, len), (ssize_t)len);
    if (seal)
        assert_int_equal(
            fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE | F_SEAL_SEAL), 0);
    return fd;
}

/* Sends req with fds attached to the spawner at sock and returns its
 * answer's result, with the error text in why. */
static int
ask_raw(int sock, const struct spawn_request *req, const int *fds, size_t n_fds, char *why,
        size_t why_size)
{
    struct spawn_response resp;
    int got[SPAWN_MAX_FDS];
    size_t n_got = 0;
    assert_int_equal(spawnd_send(sock, req, sizeof(*req), fds, n_fds), 0);
    assert_int_equal(spawnd_recv(sock, &resp, sizeof(resp), got, SPAWN_MAX_FDS, &n_got), 0);
    spawnd_close_all(got, n_got);
    resp.error[sizeof(resp.error) - 1] = '\0';
    snprintf(why, why_size, "%s", resp.error);
    return resp.result;
}

/* The spawner (it runs as root on the host) copies a long command's
 * arguments out of the memfd that comes with the request and checks them
 * before any use: a request that lies about their size, their count or
 * their NULs, an argument over the protocol's 4096 bytes, a descriptor that
 * is not a sealed memfd, or a descriptor with a request that takes none, is
 * refused with an error, and the spawner goes on serving. A well-formed one
 * gets past the arguments (to the guest check: getpid() is no guest). */
static void
test_spawner_long_args_checked(void **state)
{
    int sv[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        close(sv[0]);
        spawnd_main(sv[1]);
    }
    close(sv[1]);
    int sock = sv[0];

    /* Three arguments: "sh", "-c", and a 4096-byte script. */
    size_t len = 3 + 3 + SPAWN_EXEC_ARG_MAX + 1;
    char *buf = calloc(1, SPAWN_EXEC_ARGS_SIZE + 2);
    assert_non_null(buf);
    memcpy(buf, "sh\0-c\0", 6);
    memset(buf + 6, 'e', SPAWN_EXEC_ARG_MAX);
    struct spawn_request *req = calloc(1, sizeof(*req));
    assert_non_null(req);
    req->op = SPAWN_OP_EXEC;
    req->pid = getpid();
    req->start_time = 1;
    req->timeout_ms = 1000;
    req->argc = 3;
    req->args_size = (uint32_t)len;
    char why[SPAWN_ERROR_MAX];
    int fd;

    /* Well-formed: past the arguments, to the guest's check. */
    fd = args_memfd(buf, len, true);
    assert_int_equal(ask_raw(sock, req, &fd, 1, why, sizeof(why)), -ESRCH);
    close(fd);
    char fd_dir[64];
    snprintf(fd_dir, sizeof(fd_dir), "/proc/%d/fd", (int)pid);
    int fds_before = count_entries(fd_dir);
    assert_true(fds_before > 0);

    /* No memfd, though args_size says there is one. */
    assert_int_equal(ask_raw(sock, req, NULL, 0, why, sizeof(why)), -EINVAL);
    assert_non_null(strstr(why, "bad command"));

    /* Not sealed: its size or bytes could change under the spawner. */
    fd = args_memfd(buf, len, false);
    assert_int_equal(ask_raw(sock, req, &fd, 1, why, sizeof(why)), -EINVAL);
    close(fd);

    /* Not a memfd at all. */
    int p[2];
    assert_int_equal(pipe2(p, O_CLOEXEC), 0);
    assert_int_equal(write(p[1], buf, 64), 64);
    assert_int_equal(ask_raw(sock, req, &p[0], 1, why, sizeof(why)), -EINVAL);
    spawnd_close_all(p, 2);

    /* Its size is not args_size, either way. */
    fd = args_memfd(buf, len - 1, true);
    assert_int_equal(ask_raw(sock, req, &fd, 1, why, sizeof(why)), -EINVAL);
    close(fd);
    fd = args_memfd(buf, len + 1, true);
    assert_int_equal(ask_raw(sock, req, &fd, 1, why, sizeof(why)), -EINVAL);
    close(fd);

    /* The last argument without its NUL (args_size says one byte less). */
    req->args_size = (uint32_t)len - 1;
    fd = args_memfd(buf, len - 1, true);
    assert_int_equal(ask_raw(sock, req, &fd, 1, why, sizeof(why)), -EINVAL);
    close(fd);
    req->args_size = (uint32_t)len;

    /* argc more, or fewer, than the strings in it. */
    fd = args_memfd(buf, len, true);
    req->argc = 4;
    assert_int_equal(ask_raw(sock, req, &fd, 1, why, sizeof(why)), -EINVAL);
    req->argc = 2;
    assert_int_equal(ask_raw(sock, req, &fd, 1, why, sizeof(why)), -EINVAL);
    req->argc = SPAWN_EXEC_MAX_ARGS + 1;
    assert_int_equal(ask_raw(sock, req, &fd, 1, why, sizeof(why)), -EINVAL);
    req->argc = 3;

    /* A descriptor with a request that takes none, or two with an exec. */
    req->op = SPAWN_OP_USERNS;
    assert_int_equal(ask_raw(sock, req, &fd, 1, why, sizeof(why)), -EPROTO);
    req->op = SPAWN_OP_EXEC;
    int two[2] = {fd, fd};
    assert_int_equal(ask_raw(sock, req, two, 2, why, sizeof(why)), -EPROTO);
    /* A descriptor with arguments said to be in the request. */
    req->args_size = 0;
    memcpy(req->args, "true", 5);
    req->argc = 1;
    assert_int_equal(ask_raw(sock, req, &fd, 1, why, sizeof(why)), -EINVAL);
    close(fd);

    /* An argument of 4097 bytes. */
    memset(buf + 6, 'e', SPAWN_EXEC_ARG_MAX + 1);
    req->argc = 3;
    req->args_size = (uint32_t)len + 1;
    fd = args_memfd(buf, len + 1, true);
    assert_int_equal(ask_raw(sock, req, &fd, 1, why, sizeof(why)), -EINVAL);
    close(fd);

    /* More bytes than the protocol's limit, all of them well-formed
     * 1-byte strings would need more than its arguments: say one. */
    memset(buf, 'a', SPAWN_EXEC_ARGS_SIZE + 1);
    buf[SPAWN_EXEC_ARGS_SIZE + 1] = '\0';
    req->argc = 1;
    req->args_size = SPAWN_EXEC_ARGS_SIZE + 2;
    fd = args_memfd(buf, SPAWN_EXEC_ARGS_SIZE + 2, true);
    assert_int_equal(ask_raw(sock, req, &fd, 1, why, sizeof(why)), -EINVAL);
    close(fd);

    /* In the request itself: an argument without its NUL, too many. */
    memset(req->args, 'a', sizeof(req->args));
    req->args_size = 0;
    req->argc = 1;
    assert_int_equal(ask_raw(sock, req, NULL, 0, why, sizeof(why)), -EINVAL);
    memset(req->args, 0, sizeof(req->args));
    memset(req->args, 'a', SPAWN_EXEC_MAX_ARGS + 1);
    for (int i = 1; i < SPAWN_EXEC_MAX_ARGS + 1; i += 2)
        req->args[i] = '\0';
    req->argc = SPAWN_EXEC_MAX_ARGS + 1;
    assert_int_equal(ask_raw(sock, req, NULL, 0, why, sizeof(why)), -EINVAL);

    /* Still serving: a short, well-formed command gets to the guest check. */
    memcpy(req->args, "true", 5);
    req->argc = 1;
    assert_int_equal(ask_raw(sock, req, NULL, 0, why, sizeof(why)), -ESRCH);
    /* And it has kept none of the descriptors that came with them. */
    assert_int_equal(count_entries(fd_dir), fds_before);

    free(req);
    free(buf);
    close(sock);
    int st;
    assert_int_equal(waitpid(pid, &st, 0), pid);
    assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_spawner_own_program),
        cmocka_unit_test(test_spawner_binds_now),
        cmocka_unit_test(test_spawner_long_args_checked),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
