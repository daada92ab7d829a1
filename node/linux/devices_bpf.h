/* The guest device policy on cgroup v2: a BPF_PROG_TYPE_CGROUP_DEVICE
 * program (libbpf) attached to the guest's cgroup2 directory. cgroup v2 has
 * no devices controller; the kernel asks this program on every mknod, open
 * and access of a device node by a process in the cgroup (and below).
 *
 * The program allows exactly what the v1 driver's devices.allow list allows
 * (cgroup.h, cgroup_create): read, write and mknod of the character devices
 * 1:3 null, 1:5 zero, 1:7 full, 1:8 random, 1:9 urandom, 5:0 tty, 5:1 console,
 * 5:2 ptmx and 136:* pts; everything else, every block device included, is
 * refused (EPERM). It is built from a table with a handful of instructions,
 * no compiler, so the node needs no clang and no BPF object file.
 *
 * Works on any cgroup2 directory, also one without controllers (the
 * /sys/fs/cgroup/unified of a hybrid host, where the tests prove it). Needs
 * CAP_SYS_ADMIN (and CAP_BPF/CAP_PERFMON on kernels that split them off).
 *
 * Returns are >= 0 or -errno. Threads: no shared state. */
#pragma once

#include <stdint.h>

#define DEVICES_BPF_NAME "vfleet_devices" /* the program's name, as bpftool shows it */

/* Attaches the policy to the cgroup2 directory open as cgroup_fd, unless a
 * program of ours (by name) is attached there already: idempotent. Other
 * programs attached by someone else stay (BPF_F_ALLOW_MULTI: every program
 * must allow an access). */
int devices_bpf_attach(int cgroup_fd);

/* How many device programs are attached to cgroup_fd, and how many of them
 * are ours. */
int devices_bpf_count(int cgroup_fd, uint32_t *all, uint32_t *ours);
