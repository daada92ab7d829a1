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

#include "common/sanitizer.h"
#include "node/linux/spawn.h"

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

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_spawner_own_program),
        cmocka_unit_test(test_spawner_binds_now),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
