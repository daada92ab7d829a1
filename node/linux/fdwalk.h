/* A depth-first walk of a directory tree by descriptor: each entry is
 * handed over as its directory's descriptor and its name, never as a
 * path. A guest makes its files' tree as deep as it likes (mkdir in a
 * loop), deeper than PATH_MAX: nftw hands its callback the whole path,
 * which chown, unlink and the xattr calls then refuse with ENAMETOOLONG,
 * and a walk over a guest's files (idshift.c, rebuild.c) stopped half-way.
 *
 * Threads: no state outside the call; any thread. */
#pragma once

#include <sys/stat.h>

/* Called for entry name of the directory open at dirfd, st its lstat: a
 * directory after its own entries, and with its stream closed (it may be
 * removed). 0 goes on, anything else stops the walk and is returned. */
typedef int (*fdwalk_fn)(int dirfd, const char *name, const struct stat *st, void *userdata);

/* Walks every entry under the directory open at root (taken, closed
 * before returning; root itself is not handed to fn). Symlinks are never
 * followed, nothing on another filesystem than root's is handed over or
 * entered (as nftw's FTW_PHYS and FTW_MOUNT), an entry that went or
 * changed between its readdir and its stat or open is not handed over;
 * any other failure to stat an entry or open a directory (EMFILE, ENOMEM,
 * EACCES) ends the walk with its error, rather than leave out part of the
 * tree unsaid. At most FDWALK_OPEN directory streams are open: a deeper
 * ancestor's is closed and opened again through "..". Returns 0, what fn
 * returned, or -errno. */
int fdwalk(int root, fdwalk_fn fn, void *userdata);

/* fdwalk handing over directories only: an entry whose readdir type says
 * it is no directory is skipped without a stat (a cgroup directory holds
 * tens of control files, and a walk of the cgroups below a guest's,
 * cgroup.c, stat'ed each of them). */
int fdwalk_dirs(int root, fdwalk_fn fn, void *userdata);

#define FDWALK_OPEN 32
