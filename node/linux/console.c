/* A guest's console ring; see console.h. */
#include "node/linux/console.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stddef.h>
#include <string.h>
#include <sys/file.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "node/linux/guest_init.h"

#define CONSOLE_MAGIC "VFCONS01"
#define READ_CHUNK    65536 /* bytes the reader moves per read */

struct ring_header {
    char magic[8];     /* CONSOLE_MAGIC, no NUL */
    uint64_t capacity; /* bytes of data after the header */
    uint64_t written;  /* bytes ever appended */
    char reserved[40]; /* zero; pads the header to CONSOLE_HEADER */
};
_Static_assert(sizeof(struct ring_header) == CONSOLE_HEADER, "console header size");

static int
read_header(int fd, struct ring_header *h)
{
    ssize_t n = pread(fd, h, sizeof(*h), 0);
    if (n < 0)
        return -errno;
    if (n != (ssize_t)sizeof(*h) || memcmp(h->magic, CONSOLE_MAGIC, sizeof(h->magic)) != 0 ||
        h->capacity < CONSOLE_RING_MIN || h->capacity > CONSOLE_RING_MAX)
        return -EBADMSG;
    return 0;
}

static int
pwrite_all(int fd, const void *buf, size_t len, off_t off)
{
    const char *p = buf;
    while (len > 0) {
        ssize_t n = pwrite(fd, p, len, off);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return -errno;
        p += n;
        len -= (size_t)n;
        off += n;
    }
    return 0;
}

static void
unlockp(int *fd)
{
    if (*fd >= 0)
        (void)flock(*fd, LOCK_UN);
}

int
console_ring_open(const char *path, uint64_t capacity)
{
    struct ring_header h;

    if (capacity < CONSOLE_RING_MIN || capacity > CONSOLE_RING_MAX)
        return -EINVAL;
    _cleanup_close_ int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY, 0600);
    if (fd < 0)
        return -errno;
    if (flock(fd, LOCK_EX) < 0)
        return -errno;
    _cleanup_(unlockp) _unused_ int locked = fd;
    int r = read_header(fd, &h);
    if (r == 0 && h.capacity == capacity)
        return move_fd(fd);
    if (r < 0 && r != -EBADMSG)
        return r;
    /* New, not a ring, or another size: start it anew. */
    h = (struct ring_header){.capacity = capacity};
    memcpy(h.magic, CONSOLE_MAGIC, sizeof(h.magic));
    if (ftruncate(fd, 0) < 0 || ftruncate(fd, (off_t)(CONSOLE_HEADER + capacity)) < 0)
        return -errno;
    r = pwrite_all(fd, &h, sizeof(h), 0);
    return r < 0 ? r : move_fd(fd);
}

int
console_ring_append(int fd, const void *buf, size_t len)
{
    struct ring_header h;

    if (flock(fd, LOCK_EX) < 0)
        return -errno;
    _cleanup_(unlockp) _unused_ int locked = fd;
    int r = read_header(fd, &h);
    if (r < 0)
        return r;
    const char *p = buf;
    uint64_t start = h.written;
    if (len > h.capacity) {
        /* Only the tail fits; the rest still counts as written. */
        p += len - h.capacity;
        start += len - h.capacity;
        len = (size_t)h.capacity;
    }
    uint64_t at = start % h.capacity;
    size_t first = len < h.capacity - at ? len : (size_t)(h.capacity - at);
    r = pwrite_all(fd, p, first, (off_t)(CONSOLE_HEADER + at));
    if (r == 0 && first < len)
        r = pwrite_all(fd, p + first, len - first, CONSOLE_HEADER);
    if (r < 0)
        return r;
    h.written = start + len;
    return pwrite_all(fd, &h.written, sizeof(h.written), offsetof(struct ring_header, written));
}

static int
pread_all(int fd, void *buf, size_t len, off_t off)
{
    char *p = buf;
    while (len > 0) {
        ssize_t n = pread(fd, p, len, off);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return -errno;
        if (n == 0)
            return -EBADMSG; /* shorter than its header says */
        p += n;
        len -= (size_t)n;
        off += n;
    }
    return 0;
}

int
console_ring_read(const char *path, size_t max, struct console_log *out)
{
    struct ring_header h;

    *out = (struct console_log){0};
    _cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY);
    if (fd < 0)
        return -errno;
    if (flock(fd, LOCK_SH) < 0)
        return -errno;
    _cleanup_(unlockp) _unused_ int locked = fd;
    int r = read_header(fd, &h);
    if (r < 0)
        return r;
    uint64_t held = h.written < h.capacity ? h.written : h.capacity;
    size_t len = max && max < held ? max : (size_t)held;
    uint64_t from = h.written - len;
    _cleanup_free_ char *data = xmalloc(len + 1);
    uint64_t at = from % h.capacity;
    size_t first = len < h.capacity - at ? len : (size_t)(h.capacity - at);
    r = pread_all(fd, data, first, (off_t)(CONSOLE_HEADER + at));
    if (r == 0 && first < len)
        r = pread_all(fd, data + first, len - first, CONSOLE_HEADER);
    if (r < 0)
        return r;
    data[len] = '\0';
    out->data = move_ptr(data);
    out->len = len;
    out->total = h.written;
    return 0;
}

void
console_reader_run(int pipe_fd, int ring_fd)
{
    guest_init_reset_signals();
    /* Nothing a terminal or the agent's process group gets may reach it. */
    (void)setsid();
    (void)prctl(PR_SET_NAME, "vfleet-console", 0, 0, 0);
    for (int fd = 0; fd < 3; fd++)
        if (fd != pipe_fd && fd != ring_fd)
            close(fd);
    int lo = pipe_fd < ring_fd ? pipe_fd : ring_fd, hi = pipe_fd < ring_fd ? ring_fd : pipe_fd;
    if (lo > 3)
        (void)close_range(3, (unsigned)lo - 1, 0);
    if (hi > lo + 1)
        (void)close_range((unsigned)lo + 1, (unsigned)hi - 1, 0);
    (void)close_range((unsigned)hi + 1, ~0U, 0);

    static char buf[READ_CHUNK];
    for (;;) {
        ssize_t n = read(pipe_fd, buf, sizeof(buf));
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            _exit(n == 0 ? 0 : 1);
        /* A write that fails (host disk full) loses this chunk, not the guest. */
        (void)console_ring_append(ring_fd, buf, (size_t)n);
    }
}
