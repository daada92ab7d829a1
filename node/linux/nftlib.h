/* libnftables, loaded while it is used. The agent runs nft scripts when a
 * guest's network is made or removed; loading the library (with libnftnl,
 * libxtables and libgmp) for the agent's whole life kept ~0.5 MiB of their
 * pages resident between those moments. It is dlopen'd at the first call
 * and closed by nftlib_unload_idle once no call has used it for a while.
 * Thread-safe. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The library's file name (its soname); a test may name another. */
#ifndef NFTLIB_SONAME
#define NFTLIB_SONAME "libnftables.so.1"
#endif

/* Runs cmd (a script or a listing) in a fresh libnftables context. Returns
 * 0 with *out set to its output (malloc'd; when out is not NULL), -EINVAL
 * with nft's message in err (when err is not NULL), or -ELIBACC when the
 * library cannot be loaded (with dlerror's reason in err). */
int nftlib_run(const char *cmd, char **out, char *err, size_t err_len);

/* Closes the library when no call is running and none started in the last
 * idle_ms milliseconds. */
void nftlib_unload_idle(uint64_t idle_ms);

/* Whether the library is loaded now. */
bool nftlib_loaded(void);
