/* The cgroup v2 device program; see devices_bpf.h. */
#include "node/linux/devices_bpf.h"

#include <errno.h>
#include <linux/bpf.h>
#include <stdbool.h>
#include <stddef.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "common/mem.h"

#define ANY_MINOR UINT32_MAX /* a rule for every minor of a major */

/* The allowed character devices (rwm each); v1's devices.allow list. */
static const struct {
    uint32_t major; /* device major */
    uint32_t minor; /* device minor, ANY_MINOR = all */
} allowed[] = {
    {1, 3}, {1, 5}, {1, 7}, {1, 8}, {1, 9}, {5, 0}, {5, 1}, {5, 2}, {136, ANY_MINOR},
};

/* The five bpf(2) commands this file needs, made directly: libbpf wraps
 * each in the same one system call, and linking it (with libelf and zlib)
 * kept ~290 KiB of library pages resident in the agent for them. Each
 * returns what the system call does (-1 with errno set). */
static int
sys_bpf(enum bpf_cmd cmd, union bpf_attr *attr)
{
    return (int)syscall(SYS_bpf, cmd, attr, sizeof(*attr));
}

static int
prog_get_fd_by_id(uint32_t id)
{
    union bpf_attr a = {.prog_id = id};

    return sys_bpf(BPF_PROG_GET_FD_BY_ID, &a);
}

static int
prog_info(int fd, struct bpf_prog_info *info)
{
    union bpf_attr a = {.info = {.bpf_fd = (uint32_t)fd,
                                 .info_len = sizeof(*info),
                                 .info = (uint64_t)(uintptr_t)info}};

    return sys_bpf(BPF_OBJ_GET_INFO_BY_FD, &a);
}

static int
prog_query(int cgroup_fd, uint32_t *ids, uint32_t *cnt)
{
    union bpf_attr a = {.query = {.target_fd = (uint32_t)cgroup_fd,
                                  .attach_type = BPF_CGROUP_DEVICE,
                                  .prog_ids = (uint64_t)(uintptr_t)ids,
                                  .prog_cnt = *cnt}};
    int r = sys_bpf(BPF_PROG_QUERY, &a);

    if (r == 0)
        *cnt = a.query.prog_cnt;
    return r;
}

static int
prog_load(const struct bpf_insn *prog, size_t n)
{
    union bpf_attr a = {.prog_type = BPF_PROG_TYPE_CGROUP_DEVICE,
                        .insns = (uint64_t)(uintptr_t)prog,
                        .insn_cnt = (uint32_t)n,
                        .license = (uint64_t)(uintptr_t) "Dual MIT/GPL"};

    strscpy(a.prog_name, DEVICES_BPF_NAME, sizeof(a.prog_name));
    return sys_bpf(BPF_PROG_LOAD, &a);
}

static int
prog_attach(int prog_fd, int cgroup_fd)
{
    union bpf_attr a = {.target_fd = (uint32_t)cgroup_fd,
                        .attach_bpf_fd = (uint32_t)prog_fd,
                        .attach_type = BPF_CGROUP_DEVICE,
                        .attach_flags = BPF_F_ALLOW_MULTI};

    return sys_bpf(BPF_PROG_ATTACH, &a);
}

/* Registers the program uses (r1 holds the context on entry). */
enum { R0 = 0, R1 = 1, R2 = 2, R3 = 3, R4 = 4 };

static struct bpf_insn
insn(uint8_t code, uint8_t dst, uint8_t src, int16_t off, int32_t imm)
{
    return (struct bpf_insn){.code = code, .dst_reg = dst, .src_reg = src, .off = off, .imm = imm};
}

/* dst = *(u32 *)(src + off) */
static struct bpf_insn
load_u32(uint8_t dst, uint8_t src, int16_t off)
{
    return insn(BPF_LDX | BPF_MEM | BPF_W, dst, src, off, 0);
}

/* if (reg != imm) skip `off` instructions */
static struct bpf_insn
jump_ne(uint8_t reg, int32_t imm, int16_t off)
{
    return insn(BPF_JMP | BPF_JNE | BPF_K, reg, 0, off, imm);
}

static struct bpf_insn
mov_imm(uint8_t dst, int32_t imm)
{
    return insn(BPF_ALU64 | BPF_MOV | BPF_K, dst, 0, 0, imm);
}

/* Writes the program into prog (room for ARRAY_SIZE(allowed) * 5 + 6
 * instructions); returns its length.
 *
 *   r2 = ctx->access_type & 0xffff   (the device type)
 *   r3 = ctx->major; r4 = ctx->minor
 *   for each rule: if (r2 == CHAR && r3 == major [&& r4 == minor]) return 1
 *   return 0 */
static size_t
build(struct bpf_insn *prog)
{
    size_t n = 0;
    prog[n++] = load_u32(R2, R1, offsetof(struct bpf_cgroup_dev_ctx, access_type));
    prog[n++] = insn(BPF_ALU64 | BPF_AND | BPF_K, R2, 0, 0, 0xffff);
    prog[n++] = load_u32(R3, R1, offsetof(struct bpf_cgroup_dev_ctx, major));
    prog[n++] = load_u32(R4, R1, offsetof(struct bpf_cgroup_dev_ctx, minor));
    for (size_t i = 0; i < ARRAY_SIZE(allowed); i++) {
        bool any = allowed[i].minor == ANY_MINOR;
        /* Each test skips the rest of its rule: the tests after it and the
         * two-instruction "return 1". */
        int16_t rest = any ? 3 : 4;
        prog[n++] = jump_ne(R2, BPF_DEVCG_DEV_CHAR, rest--);
        prog[n++] = jump_ne(R3, (int32_t)allowed[i].major, rest--);
        if (!any)
            prog[n++] = jump_ne(R4, (int32_t)allowed[i].minor, rest--);
        prog[n++] = mov_imm(R0, 1);
        prog[n++] = insn(BPF_JMP | BPF_EXIT, 0, 0, 0, 0);
    }
    prog[n++] = mov_imm(R0, 0);
    prog[n++] = insn(BPF_JMP | BPF_EXIT, 0, 0, 0, 0);
    return n;
}

/* Whether the program with this id is ours (by name). */
static bool
is_ours(uint32_t id)
{
    int fd = prog_get_fd_by_id(id);
    if (fd < 0)
        return false;
    struct bpf_prog_info info = {0};
    bool ours = prog_info(fd, &info) == 0 &&
                strncmp(info.name, DEVICES_BPF_NAME, sizeof(info.name) - 1) == 0;
    close(fd);
    return ours;
}

int
devices_bpf_count(int cgroup_fd, uint32_t *all, uint32_t *ours)
{
    uint32_t ids[64], cnt = ARRAY_SIZE(ids);

    if (prog_query(cgroup_fd, ids, &cnt) < 0)
        return -errno;
    *all = cnt;
    *ours = 0;
    for (uint32_t i = 0; i < cnt && i < ARRAY_SIZE(ids); i++)
        *ours += is_ours(ids[i]);
    return 0;
}

int
devices_bpf_attach(int cgroup_fd)
{
    struct bpf_insn prog[ARRAY_SIZE(allowed) * 5 + 6];
    uint32_t all, ours;

    int r = devices_bpf_count(cgroup_fd, &all, &ours);
    if (r < 0)
        return r;
    if (ours)
        return 0;
    size_t n = build(prog);
    _cleanup_close_ int fd = prog_load(prog, n);
    if (fd < 0)
        return -errno;
    /* The attachment holds the program; our fd may close. */
    if (prog_attach(fd, cgroup_fd) < 0)
        return -errno;
    return 0;
}
