/* vfleet-probe: the isolation battery's eyes inside a guest. A small static
 * program (no library of the guest is trusted or needed) that tries what a
 * guest's root or user must not be able to do, and what it must, and prints
 * one "key value" line per attempt: the errno name, a count, a number. The
 * scenario (tests/integration/node_isolation.sh) holds the criteria; the probe
 * judges nothing.
 *
 *   vfleet-probe status              capability sets, NoNewPrivs, seccomp, ids, maps
 *   vfleet-probe syscalls            the filtered syscalls, an unknown number
 *   vfleet-probe keyring KEY_ID      read a host key by id; /proc/keys
 *   vfleet-probe masked              masked /proc files, /proc/sys and sysrq writes, /sys remount
 *   vfleet-probe devices MAJ MIN     mknod+open of a host block device; the allowed nodes
 *   vfleet-probe as UID CMD...       runs another probe command as UID (setgroups, setgid, setuid)
 *   vfleet-probe fds                 this process's fds and init's
 *   vfleet-probe escape NAME         looks for /NAME (a host marker) from every angle
 *   vfleet-probe cgroup              release_agent, cgroup mounts
 *   vfleet-probe exe-attack STOPFILE tries to open every process's exe for writing until STOPFILE
 * exists vfleet-probe spoof SRC DST       sends one UDP datagram with source SRC (raw socket)
 *   vfleet-probe proc                what LXCFS shows: MemTotal, cpus, uptime
 *
 * Exit status 0 unless the probe itself could not run. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <linux/sched.h>
#include <netinet/in.h>
#include <netinet/ip.h>
#include <netinet/udp.h>
#include <arpa/inet.h>
#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* The errno's symbolic name (the criteria name errnos, not numbers). */
static const char *
ename(int e)
{
    static const struct {
        int e;
        const char *n;
    } t[] = {
        {0, "OK"},          {EPERM, "EPERM"},           {ENOENT, "ENOENT"}, {EACCES, "EACCES"},
        {EROFS, "EROFS"},   {ENOSYS, "ENOSYS"},         {EINVAL, "EINVAL"}, {EBADF, "EBADF"},
        {EFAULT, "EFAULT"}, {ENXIO, "ENXIO"},           {ENOSPC, "ENOSPC"}, {EEXIST, "EEXIST"},
        {ENODEV, "ENODEV"}, {ENOTDIR, "ENOTDIR"},       {EBUSY, "EBUSY"},   {ETXTBSY, "ETXTBSY"},
        {ENOKEY, "ENOKEY"}, {EOPNOTSUPP, "EOPNOTSUPP"}, {ESRCH, "ESRCH"},   {EISDIR, "EISDIR"},
    };
    static char buf[16];
    for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++)
        if (t[i].e == e)
            return t[i].n;
    snprintf(buf, sizeof(buf), "E%d", e);
    return buf;
}

/* The errno of a syscall-style result (< 0 failed), "OK" otherwise. */
static const char *
res(long r)
{
    return ename(r < 0 ? errno : 0);
}

static void
status_field(const char *file, const char *key)
{
    char line[256];
    FILE *f = fopen(file, "re");
    if (!f)
        return;
    size_t n = strlen(key);
    while (fgets(line, sizeof(line), f))
        if (strncmp(line, key, n) == 0 && line[n] == ':') {
            char *v = line + n + 1;
            v += strspn(v, " \t");
            v[strcspn(v, "\n")] = '\0';
            printf("%s %s\n", key, v);
        }
    fclose(f);
}

static void
first_line(const char *key, const char *file)
{
    char line[256] = "";
    FILE *f = fopen(file, "re");
    if (f) {
        if (!fgets(line, sizeof(line), f))
            line[0] = '\0';
        fclose(f);
    }
    line[strcspn(line, "\n")] = '\0';
    /* uid_map columns are padded: squeeze the spaces. */
    char out[256];
    size_t k = 0;
    for (size_t i = 0; line[i] && k < sizeof(out) - 1; i++)
        if (line[i] != ' ' || (k && out[k - 1] != ' '))
            out[k++] = line[i];
    out[k] = '\0';
    printf("%s %s\n", key, k ? out : "-");
}

static int
cmd_status(void)
{
    static const char *const keys[] = {"CapInh",     "CapPrm",  "CapEff", "CapBnd", "CapAmb",
                                       "NoNewPrivs", "Seccomp", "Uid",    "Gid"};
    for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++)
        status_field("/proc/self/status", keys[i]);
    first_line("uid_map", "/proc/self/uid_map");
    first_line("gid_map", "/proc/self/gid_map");
    printf("init_uid_map_same %d\n", system("cmp -s /proc/1/uid_map /proc/self/uid_map") == 0);
    return 0;
}

static int
cmd_syscalls(void)
{
    printf("keyctl %s\n", res(syscall(SYS_keyctl, 0 /* GET_KEYRING_ID */, -4 /* @u */, 0)));
    printf("add_key %s\n", res(syscall(SYS_add_key, "user", "vfprobe", "x", 1, -4)));
    printf("request_key %s\n", res(syscall(SYS_request_key, "user", "vfprobe", NULL, 0)));
    printf("bpf %s\n", res(syscall(SYS_bpf, 0, NULL, 0)));
    printf("perf_event_open %s\n", res(syscall(SYS_perf_event_open, NULL, 0, -1, -1, 0)));
    printf("kexec_load %s\n", res(syscall(SYS_kexec_load, 0, 0, NULL, 0)));
    printf("kexec_file_load %s\n", res(syscall(SYS_kexec_file_load, -1, -1, 0, "", 0)));
    printf("init_module %s\n", res(syscall(SYS_init_module, NULL, 0, "")));
    printf("finit_module %s\n", res(syscall(SYS_finit_module, -1, "", 0)));
    printf("delete_module %s\n", res(syscall(SYS_delete_module, "vfprobe", 0)));
    printf("open_by_handle_at %s\n", res(syscall(SYS_open_by_handle_at, -1, NULL, 0)));
    printf("userfaultfd %s\n", res(syscall(SYS_userfaultfd, 0)));
    printf("io_uring_setup %s\n", res(syscall(SYS_io_uring_setup, 1, NULL)));
    printf("io_uring_enter %s\n", res(syscall(SYS_io_uring_enter, -1, 0, 0, 0, NULL, 0)));
    printf("io_uring_register %s\n", res(syscall(SYS_io_uring_register, -1, 0, NULL, 0)));
    printf("unshare_user %s\n", res(syscall(SYS_unshare, CLONE_NEWUSER)));
    printf("unshare_net %s\n", res(syscall(SYS_unshare, CLONE_NEWNET)));
    printf("setns %s\n", res(syscall(SYS_setns, -1, 0)));
    long c = syscall(SYS_clone, CLONE_NEWUSER | SIGCHLD, NULL, NULL, NULL, 0);
    if (c == 0)
        _exit(0);
    printf("clone_newuser %s\n", res(c));
    if (c > 0)
        waitpid((pid_t)c, NULL, 0);
    struct clone_args ca = {.exit_signal = SIGCHLD};
    c = syscall(SYS_clone3, &ca, sizeof(ca));
    if (c == 0)
        _exit(0);
    printf("clone3 %s\n", res(c));
    if (c > 0)
        waitpid((pid_t)c, NULL, 0);
    printf("unknown_999 %s\n", res(syscall(999)));
    printf("getpid %s\n", res(syscall(SYS_getpid)));
    return 0;
}

static int
cmd_keyring(const char *id)
{
    char buf[256];
    long key = strtol(id, NULL, 10);
    printf("keyctl_read %s\n",
           res(syscall(SYS_keyctl, 11 /* KEYCTL_READ */, key, buf, sizeof(buf))));
    printf("keyctl_describe %s\n",
           res(syscall(SYS_keyctl, 6 /* KEYCTL_DESCRIBE */, key, buf, sizeof(buf))));
    int fd = open("/proc/keys", O_RDONLY | O_CLOEXEC);
    ssize_t n = fd < 0 ? -1 : read(fd, buf, sizeof(buf));
    printf("proc_keys_bytes %zd\n", n < 0 ? 0 : n);
    if (fd >= 0)
        close(fd);
    return 0;
}

/* Bytes a file yields (up to 64 KiB), -1 when it cannot be opened. */
static long
file_bytes(const char *path)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
    if (fd < 0)
        return errno == ENOENT ? -2 : -1;
    char buf[4096];
    long total = 0;
    ssize_t n;
    while ((n = read(fd, buf, sizeof(buf))) > 0 && total < 65536)
        total += n;
    close(fd);
    return total;
}

static const char *
write_result(const char *path, const char *text)
{
    int fd = open(path, O_WRONLY | O_CLOEXEC);
    if (fd < 0)
        return ename(errno);
    ssize_t n = write(fd, text, strlen(text));
    int e = n < 0 ? errno : 0;
    close(fd);
    return ename(e);
}

static int
cmd_masked(void)
{
    static const char *const masked[] = {"/proc/kcore",         "/proc/keys",
                                         "/proc/timer_list",    "/proc/sched_debug",
                                         "/proc/latency_stats", "/proc/timer_stats"};
    long worst = 0;
    for (size_t i = 0; i < sizeof(masked) / sizeof(masked[0]); i++) {
        long n = file_bytes(masked[i]);
        printf("masked %s %ld\n", masked[i], n);
        if (n > worst)
            worst = n;
    }
    printf("masked_max_bytes %ld\n", worst);
    /* Directories hidden under an empty tmpfs: entries besides . and .. */
    static const char *const dirs[] = {"/proc/acpi", "/proc/scsi", "/sys/firmware"};
    for (size_t i = 0; i < sizeof(dirs) / sizeof(dirs[0]); i++) {
        DIR *d = opendir(dirs[i]);
        int n = 0;
        if (d) {
            struct dirent *e;
            while ((e = readdir(d)))
                n += e->d_name[0] != '.';
            closedir(d);
        }
        printf("masked_dir %s %d\n", dirs[i], d ? n : -1);
    }
    printf("write_proc_sys %s\n", write_result("/proc/sys/kernel/core_pattern", "|/tmp/x"));
    printf("write_proc_sys_net %s\n", write_result("/proc/sys/net/ipv4/ip_forward", "1"));
    printf("write_proc_sys_vm %s\n", write_result("/proc/sys/vm/drop_caches", "3"));
    printf("write_sysrq_trigger %s\n", write_result("/proc/sysrq-trigger", "h"));
    printf("write_sys %s\n", write_result("/sys/kernel/uevent_helper", "/x"));
    printf("remount_sys %s\n", res(mount(NULL, "/sys", NULL, MS_REMOUNT | MS_BIND, NULL)));
    printf("remount_sys_rw %s\n", res(mount(NULL, "/sys", NULL, MS_REMOUNT, NULL)));
    printf("mount_sysfs %s\n", res(mount("sysfs", "/mnt", "sysfs", 0, NULL)));
    printf("mount_proc %s\n", res(mount("proc", "/mnt", "proc", 0, NULL)));
    return 0;
}

/* Opens path for reading and writing, tries one byte each way. */
static const char *
use_device(const char *path)
{
    int fd = open(path, O_RDWR | O_CLOEXEC | O_NOCTTY);
    if (fd < 0)
        return ename(errno);
    char c = 0;
    int e = 0;
    if (strcmp(path, "/dev/full") != 0 && write(fd, "x", 1) != 1)
        e = errno;
    if (!e && strcmp(path, "/dev/null") != 0 && read(fd, &c, 1) != 1)
        e = errno;
    close(fd);
    return ename(e);
}

static int
cmd_devices(const char *maj, const char *min)
{
    dev_t dev = makedev((unsigned)strtoul(maj, NULL, 10), (unsigned)strtoul(min, NULL, 10));
    const char *node = "/tmp/vfprobe-blk";
    unlink(node);
    long r = mknod(node, S_IFBLK | 0600, dev);
    printf("mknod_block %s\n", res(r));
    if (r == 0) {
        int fd = open(node, O_RDONLY | O_CLOEXEC);
        printf("open_block %s\n", res(fd));
        if (fd >= 0)
            close(fd);
        unlink(node);
    } else {
        printf("open_block %s\n", "NOTMADE");
    }
    static const char *const allowed[] = {"/dev/null", "/dev/zero", "/dev/full", "/dev/random",
                                          "/dev/urandom"};
    for (size_t i = 0; i < sizeof(allowed) / sizeof(allowed[0]); i++) {
        struct stat st;
        int m = stat(allowed[i], &st) == 0 ? (int)(st.st_mode & 07777) : -1;
        printf("dev %s %s mode %04o\n", allowed[i], use_device(allowed[i]), m < 0 ? 0 : m);
    }
    struct stat st;
    printf("dev /dev/tty mode %04o\n", stat("/dev/tty", &st) == 0 ? st.st_mode & 07777 : 0);
    return 0;
}

static int
cmd_fds(void)
{
    static const char *const dirs[] = {"/proc/self/fd", "/proc/1/fd"};
    for (size_t i = 0; i < 2; i++) {
        DIR *d = opendir(dirs[i]);
        if (!d) {
            printf("fds %s %s\n", dirs[i], ename(errno));
            continue;
        }
        int self = dirfd(d);
        char list[512] = "";
        int n = 0;
        struct dirent *e;
        while ((e = readdir(d))) {
            if (e->d_name[0] == '.' || (i == 0 && atoi(e->d_name) == self))
                continue;
            n++;
            if (strlen(list) + strlen(e->d_name) + 2 < sizeof(list)) {
                strcat(list, list[0] ? "," : "");
                strcat(list, e->d_name);
            }
        }
        closedir(d);
        printf("fds %s %d %s\n", dirs[i], n, list);
    }
    return 0;
}

static int
cmd_escape(const char *name)
{
    /* Every spelling of the host's root a guest might try. */
    static const char *const roots[] = {"/",
                                        "/..",
                                        "/../..",
                                        "/proc/1/root",
                                        "/proc/self/root/..",
                                        "/proc/1/cwd/..",
                                        "/proc/self/cwd/../..",
                                        "/dev/..",
                                        "/proc/1/root/proc/1/root"};
    int found = 0;
    for (size_t i = 0; i < sizeof(roots) / sizeof(roots[0]); i++) {
        char path[512];
        snprintf(path, sizeof(path), "%s/%s", roots[i], name);
        if (access(path, F_OK) == 0) {
            printf("escape_found %s\n", path);
            found++;
        }
    }
    struct stat a, b;
    printf("root_is_init_root %d\n", stat("/", &a) == 0 && stat("/proc/1/root", &b) == 0 &&
                                         a.st_ino == b.st_ino && a.st_dev == b.st_dev);
    printf("escape_count %d\n", found);
    return 0;
}

static int
cmd_cgroup(void)
{
    mkdir("/tmp/vfprobe-cg", 0700);
    printf("mount_cgroup1 %s\n", res(mount("cgroup", "/tmp/vfprobe-cg", "cgroup", 0, "memory")));
    printf("mount_cgroup2 %s\n", res(mount("cgroup2", "/tmp/vfprobe-cg", "cgroup2", 0, NULL)));
    int found = 0;
    static const char *const paths[] = {
        "/sys/fs/cgroup/release_agent", "/sys/fs/cgroup/memory/release_agent",
        "/sys/fs/cgroup/systemd/release_agent", "/tmp/vfprobe-cg/release_agent"};
    for (size_t i = 0; i < sizeof(paths) / sizeof(paths[0]); i++) {
        const char *r = write_result(paths[i], "/tmp/x");
        printf("release_agent %s %s\n", paths[i], r);
        found += strcmp(r, "OK") == 0;
    }
    printf("unshare_cgroup_userns %s\n",
           res(syscall(SYS_unshare, CLONE_NEWUSER | CLONE_NEWNS | CLONE_NEWCGROUP)));
    printf("release_agent_written %d\n", found);
    rmdir("/tmp/vfprobe-cg");
    return 0;
}

/* Runs until stopfile exists (an hour at most): every process's exe is opened for writing,
 * directly and through an O_PATH fd reopened via /proc/self/fd (the runc
 * CVE-2019-5736 trick). Nothing is written: an open that works is counted. */
static int
cmd_exe_attack(const char *stopfile)
{
    time_t end = time(NULL) + 3600;
    long tries = 0, opened = 0, seen = 0, hidden = 0, held = 0;
    pid_t self = getpid();
    while (time(NULL) < end && access(stopfile, F_OK) != 0) {
        DIR *d = opendir("/proc");
        struct dirent *e;
        while (d && (e = readdir(d))) {
            pid_t pid = atoi(e->d_name);
            if (pid <= 1 || pid == self)
                continue;
            char path[64], fdpath[64], target[512];
            snprintf(path, sizeof(path), "/proc/%d/exe", pid);
            ssize_t tl = readlink(path, target, sizeof(target) - 1);
            if (tl < 0 && errno == EACCES)
                hidden++;
            if (tl > 0) {
                target[tl] = '\0';
                seen += strstr(target, "vfleet-node") != NULL;
            }
            int fd = open(path, O_WRONLY | O_CLOEXEC);
            tries++;
            if (fd >= 0) {
                opened++;
                close(fd);
            }
            int p = open(path, O_PATH | O_CLOEXEC);
            if (p >= 0) {
                held++;
                snprintf(fdpath, sizeof(fdpath), "/proc/self/fd/%d", p);
                /* Reopen a little later, when the process may be gone. */
                usleep(200);
                fd = open(fdpath, O_WRONLY | O_CLOEXEC);
                tries++;
                if (fd >= 0) {
                    opened++;
                    close(fd);
                }
                close(p);
            }
        }
        if (d)
            closedir(d);
        /* A breath per scan, so the guest's CPU quota (shared with the
         * commands being exec'd) is not all ours. */
        usleep(1000);
    }
    printf("exe_tries %ld\nexe_opened_for_write %ld\n", tries, opened);
    /* How often the window was there: a process running the host's binary
     * (seen), one whose exe was refused (hidden: not dumpable), one whose
     * exe we held an O_PATH fd on. */
    printf("exe_vfleet_seen %ld\nexe_hidden %ld\nexe_held %ld\n", seen, hidden, held);
    return 0;
}

static uint16_t
csum(const void *data, size_t len)
{
    const uint16_t *p = data;
    uint32_t sum = 0;
    for (; len > 1; len -= 2)
        sum += *p++;
    if (len)
        sum += *(const uint8_t *)p;
    while (sum >> 16)
        sum = (sum & 0xffff) + (sum >> 16);
    return (uint16_t)~sum;
}

static int
cmd_spoof(const char *src, const char *dst)
{
    int s = socket(AF_INET, SOCK_RAW | SOCK_CLOEXEC, IPPROTO_RAW);
    if (s < 0) {
        printf("spoof_socket %s\n", ename(errno));
        return 0;
    }
    struct {
        struct iphdr ip;
        struct udphdr udp;
        char payload[8];
    } pkt = {0};
    pkt.ip.version = 4;
    pkt.ip.ihl = 5;
    pkt.ip.ttl = 64;
    pkt.ip.protocol = IPPROTO_UDP;
    pkt.ip.tot_len = htons(sizeof(pkt));
    inet_pton(AF_INET, src, &pkt.ip.saddr);
    inet_pton(AF_INET, dst, &pkt.ip.daddr);
    pkt.ip.check = csum(&pkt.ip, sizeof(pkt.ip));
    pkt.udp.source = htons(40000);
    pkt.udp.dest = htons(9);
    pkt.udp.len = htons(sizeof(pkt.udp) + sizeof(pkt.payload));
    memcpy(pkt.payload, "vfspoof", 8);
    struct sockaddr_in to = {.sin_family = AF_INET, .sin_addr.s_addr = pkt.ip.daddr};
    int sent = 0;
    for (int i = 0; i < 3; i++)
        sent += sendto(s, &pkt, sizeof(pkt), 0, (struct sockaddr *)&to, sizeof(to)) ==
                (ssize_t)sizeof(pkt);
    printf("spoof_sent %d\n", sent);
    close(s);
    return 0;
}

static int
cmd_proc(void)
{
    status_field("/proc/meminfo", "MemTotal");
    status_field("/proc/meminfo", "SwapTotal");
    FILE *f = fopen("/proc/cpuinfo", "re");
    int cpus = 0;
    char line[256];
    while (f && fgets(line, sizeof(line), f))
        cpus += strncmp(line, "processor", 9) == 0;
    if (f)
        fclose(f);
    printf("cpuinfo_processors %d\n", cpus);
    double up = -1;
    f = fopen("/proc/uptime", "re");
    if (f) {
        if (fscanf(f, "%lf", &up) != 1)
            up = -1;
        fclose(f);
    }
    printf("uptime_seconds %.0f\n", up);
    first_line("cpu_online", "/sys/devices/system/cpu/online");
    return 0;
}

static int dispatch(int argc, char **argv);

static int
cmd_as(int argc, char **argv)
{
    uid_t uid = (uid_t)strtoul(argv[0], NULL, 10);
    if (setgroups(0, NULL) < 0 || setresgid(uid, uid, uid) < 0 || setresuid(uid, uid, uid) < 0) {
        printf("as_user %s\n", ename(errno));
        return 1;
    }
    printf("as_user %u\n", (unsigned)getuid());
    return dispatch(argc - 1, argv + 1);
}

static int
dispatch(int argc, char **argv)
{
    if (argc < 1)
        return 2;
    const char *c = argv[0];
    if (strcmp(c, "status") == 0)
        return cmd_status();
    if (strcmp(c, "syscalls") == 0)
        return cmd_syscalls();
    if (strcmp(c, "keyring") == 0 && argc == 2)
        return cmd_keyring(argv[1]);
    if (strcmp(c, "masked") == 0)
        return cmd_masked();
    if (strcmp(c, "devices") == 0 && argc == 3)
        return cmd_devices(argv[1], argv[2]);
    if (strcmp(c, "as") == 0 && argc >= 3)
        return cmd_as(argc - 1, argv + 1);
    if (strcmp(c, "fds") == 0)
        return cmd_fds();
    if (strcmp(c, "escape") == 0 && argc == 2)
        return cmd_escape(argv[1]);
    if (strcmp(c, "cgroup") == 0)
        return cmd_cgroup();
    if (strcmp(c, "exe-attack") == 0 && argc == 2)
        return cmd_exe_attack(argv[1]);
    if (strcmp(c, "spoof") == 0 && argc == 3)
        return cmd_spoof(argv[1], argv[2]);
    if (strcmp(c, "proc") == 0)
        return cmd_proc();
    fprintf(stderr, "vfleet-probe: unknown command or arguments\n");
    return 2;
}

int
main(int argc, char **argv)
{
    setvbuf(stdout, NULL, _IOLBF, 0);
    return dispatch(argc - 1, argv + 1);
}
