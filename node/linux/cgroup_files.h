/* The cgroup files a usage sample reads, held open per guest.
 *
 * A sample of one guest reads about ten cgroup files each interval; opening
 * each by its path (a walk through the hierarchy's directories) and closing
 * it again cost more than reading it. Held open, a file is read again from
 * offset 0 (pread), which makes the kernel produce it afresh. A guest's
 * files are forgotten when its cgroup is destroyed, and on any failed read
 * (the cgroup was removed behind our back: the caller opens it again).
 *
 * The descriptors held stay under a quarter of RLIMIT_NOFILE's soft limit at
 * creation: past it, a file is read and closed as before. Thread-safe. */
#pragma once

#include <stddef.h>
#include <sys/types.h>

typedef struct cgroup_files cgroup_files_t;

/* A table for n_files files per guest (numbered 0..n_files-1 by the caller). */
cgroup_files_t *cgroup_files_new(unsigned n_files);
void cgroup_files_free(cgroup_files_t **f);

/* Reads file k of guest id into buf (NUL-terminated, at most size - 1 bytes)
 * from the descriptor held. Returns the length, -EBADF when none is held
 * (or the read failed, and it was dropped: open it again), -EFBIG when the
 * file does not fit in buf. */
ssize_t cgroup_files_pread(cgroup_files_t *f, const char *id, unsigned k, char *buf, size_t size);

/* Opens path, reads it as cgroup_files_pread does and holds it as file k of
 * guest id (or closes it when over the budget). Returns the length or -errno. */
ssize_t cgroup_files_open(cgroup_files_t *f, const char *id, unsigned k, const char *path,
                          char *buf, size_t size);

/* Closes and forgets every file held for guest id. */
void cgroup_files_forget(cgroup_files_t *f, const char *id);

/* Descriptors held now (for tests). */
size_t cgroup_files_count(cgroup_files_t *f);
