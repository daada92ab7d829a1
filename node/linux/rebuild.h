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

/* Rebuilds when want differs from the stamp (absent = 0). Returns 0 (also
 * when nothing was to be done), -EBUSY when the guest runs, -errno with
 * errtext set otherwise. */
int rebuild_apply(const struct rebuild_paths *p, uint32_t want, bool running);
