/* Reinstalling a guest (guest rebuild): its files go back to its template's
 * — the overlay's upper layer on the guest's disk is emptied, and the
 * overlay mounted again over the (possibly new) template — while everything
 * else stays: the disk image and its size, cgroups, addresses, the guest's
 * id and its history on the master. Provisioning is written again after
 * (its stamp is removed). Only a stopped guest is rebuilt.
 *
 * The spec's rebuild counter says which rebuild the guest should have had;
 * a stamp file beside the guest's disk (outside the guest) says which one it
 * had, so a rebuild happens once per bump, whatever the re-sends. */
#pragma once

#include <stdbool.h>
#include <stdint.h>

/* The paths of one guest, as the backend keeps them. */
struct rebuild_paths {
    const char *dir;  /* data/<id>: the stamps */
    const char *disk; /* the disk's mount: upper/ and work/ */
    const char *root; /* the overlay's mount point */
    const char *tmpl; /* the template directory the spec names */
};

/* Whether the guest should be rebuilt: want differs from its stamp
 * (absent = 0). */
bool rebuild_needed(const struct rebuild_paths *p, uint32_t want);
/* The first half: refuses a running guest (-EBUSY), checks the template,
 * unmounts the overlay and empties the upper and work dirs. The caller
 * mounts the root again (over the template, idmapped or not), then calls
 * rebuild_done. -errno with errtext set. */
int rebuild_wipe(const struct rebuild_paths *p, bool running);
/* The second half: provisioning is to be written again, the stamp says want. */
int rebuild_done(const struct rebuild_paths *p, uint32_t want);
