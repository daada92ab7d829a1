/* Small open-addressing hash maps for in-memory indexes (the master's, a
 * router link's peers, the ZAP handler's keys).
 *
 * Two shapes: hmap_u64 maps a 64-bit key to a 32-bit value (node slots in an
 * anti-affinity group, allocated offsets in an IP pool), hmap_str maps a
 * NUL-terminated string the caller keeps alive to a pointer (nodes and groups
 * by name). Linear probing with backward-shift deletion, so there are no
 * tombstones and a map that shrinks never slows down. Both grow at 70% load.
 *
 * Values, not classes: embed them, zero-initialise them (`= {0}` is an empty
 * map) and call *_free when done. Not thread-safe: each user keeps its maps
 * to one thread or under its own lock. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct hmap_u64_slot {
    uint64_t key; /* the key; meaningful only when used is set */
    uint32_t val; /* the value stored for key */
    bool used;    /* the slot holds an entry */
};

struct hmap_u64 {
    struct hmap_u64_slot *slots; /* cap slots, NULL while empty */
    size_t cap;                  /* a power of two, or 0 */
    size_t len;                  /* entries stored */
};

/* Returns a pointer to key's value, or NULL. Valid until the next insert or delete. */
uint32_t *hmap_u64_get(const struct hmap_u64 *m, uint64_t key);
/* Sets key to val, inserting it when absent. */
void hmap_u64_put(struct hmap_u64 *m, uint64_t key, uint32_t val);
/* Removes key; returns true when it was there. */
bool hmap_u64_del(struct hmap_u64 *m, uint64_t key);
void hmap_u64_free(struct hmap_u64 *m);

struct hmap_str_slot {
    const char *key; /* borrowed from the value's owner; NULL = empty slot */
    uint64_t hash;   /* the key's hash, kept to skip most string compares */
    void *val;       /* the value stored for key */
};

struct hmap_str {
    struct hmap_str_slot *slots; /* cap slots, NULL while empty */
    size_t cap;                  /* a power of two, or 0 */
    size_t len;                  /* entries stored */
};

void *hmap_str_get(const struct hmap_str *m, const char *key);
/* Sets key to val. key must stay valid while it is in the map (usually it
 * points into val). Replaces the value, and the key pointer, of an equal key. */
void hmap_str_put(struct hmap_str *m, const char *key, void *val);
bool hmap_str_del(struct hmap_str *m, const char *key);
void hmap_str_free(struct hmap_str *m);

/* FNV-1a mixed with a finaliser; exposed for tests and for callers that shard. */
uint64_t hmap_hash_str(const char *s);
uint64_t hmap_hash_u64(uint64_t x);
