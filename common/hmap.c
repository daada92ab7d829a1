#include "common/hmap.h"

#include <string.h>

#include "common/mem.h"

uint64_t
hmap_hash_u64(uint64_t x)
{
    /* splitmix64's finaliser: cheap and spreads sequential keys (IP offsets, slots). */
    x ^= x >> 30;
    x *= 0xbf58476d1ce4e5b9ULL;
    x ^= x >> 27;
    x *= 0x94d049bb133111ebULL;
    x ^= x >> 31;
    return x;
}

uint64_t
hmap_hash_str(const char *s)
{
    uint64_t h = 0xcbf29ce484222325ULL;

    for (; *s; s++) {
        h ^= (unsigned char)*s;
        h *= 0x100000001b3ULL;
    }
    return hmap_hash_u64(h);
}

static void
u64_grow(struct hmap_u64 *m)
{
    struct hmap_u64_slot *old = m->slots;
    size_t oldcap = m->cap;

    m->cap = oldcap ? oldcap * 2 : 8;
    m->slots = xcalloc(m->cap, sizeof(*m->slots));
    m->len = 0;
    for (size_t i = 0; i < oldcap; i++)
        if (old[i].used)
            hmap_u64_put(m, old[i].key, old[i].val);
    free(old);
}

uint32_t *
hmap_u64_get(const struct hmap_u64 *m, uint64_t key)
{
    if (!m->cap)
        return NULL;
    for (size_t i = hmap_hash_u64(key) & (m->cap - 1);; i = (i + 1) & (m->cap - 1)) {
        if (!m->slots[i].used)
            return NULL;
        if (m->slots[i].key == key)
            return &m->slots[i].val;
    }
}

void
hmap_u64_put(struct hmap_u64 *m, uint64_t key, uint32_t val)
{
    if ((m->len + 1) * 10 > m->cap * 7)
        u64_grow(m);
    for (size_t i = hmap_hash_u64(key) & (m->cap - 1);; i = (i + 1) & (m->cap - 1)) {
        if (!m->slots[i].used) {
            m->slots[i] = (struct hmap_u64_slot){.key = key, .val = val, .used = true};
            m->len++;
            return;
        }
        if (m->slots[i].key == key) {
            m->slots[i].val = val;
            return;
        }
    }
}

bool
hmap_u64_del(struct hmap_u64 *m, uint64_t key)
{
    size_t mask = m->cap - 1, i, j;

    if (!m->cap)
        return false;
    for (i = hmap_hash_u64(key) & mask;; i = (i + 1) & mask) {
        if (!m->slots[i].used)
            return false;
        if (m->slots[i].key == key)
            break;
    }
    /* Backward-shift: pull later entries of the probe run into the hole when
     * their home slot does not lie cyclically between the hole and them. */
    for (j = (i + 1) & mask; m->slots[j].used; j = (j + 1) & mask) {
        size_t home = hmap_hash_u64(m->slots[j].key) & mask;
        if (((j - home) & mask) >= ((j - i) & mask)) {
            m->slots[i] = m->slots[j];
            i = j;
        }
    }
    m->slots[i].used = false;
    m->len--;
    return true;
}

void
hmap_u64_free(struct hmap_u64 *m)
{
    free(m->slots);
    *m = (struct hmap_u64){0};
}

static void
str_grow(struct hmap_str *m)
{
    struct hmap_str_slot *old = m->slots;
    size_t oldcap = m->cap;

    m->cap = oldcap ? oldcap * 2 : 8;
    m->slots = xcalloc(m->cap, sizeof(*m->slots));
    m->len = 0;
    for (size_t i = 0; i < oldcap; i++)
        if (old[i].key)
            hmap_str_put(m, old[i].key, old[i].val);
    free(old);
}

static struct hmap_str_slot *
str_find(const struct hmap_str *m, const char *key, uint64_t h, size_t *idx)
{
    size_t mask = m->cap - 1;

    for (size_t i = h & mask;; i = (i + 1) & mask) {
        if (!m->slots[i].key) {
            *idx = i;
            return NULL;
        }
        if (m->slots[i].hash == h && strcmp(m->slots[i].key, key) == 0) {
            *idx = i;
            return &m->slots[i];
        }
    }
}

void *
hmap_str_get(const struct hmap_str *m, const char *key)
{
    struct hmap_str_slot *s;
    size_t i;

    if (!m->cap)
        return NULL;
    s = str_find(m, key, hmap_hash_str(key), &i);
    return s ? s->val : NULL;
}

void
hmap_str_put(struct hmap_str *m, const char *key, void *val)
{
    uint64_t h = hmap_hash_str(key);
    struct hmap_str_slot *s;
    size_t i;

    if ((m->len + 1) * 10 > m->cap * 7)
        str_grow(m);
    s = str_find(m, key, h, &i);
    if (!s)
        m->len++;
    m->slots[i] = (struct hmap_str_slot){.key = key, .hash = h, .val = val};
}

bool
hmap_str_del(struct hmap_str *m, const char *key)
{
    size_t mask = m->cap - 1, i, j;

    if (!m->cap || !str_find(m, key, hmap_hash_str(key), &i))
        return false;
    for (j = (i + 1) & mask; m->slots[j].key; j = (j + 1) & mask) {
        size_t home = m->slots[j].hash & mask;
        if (((j - home) & mask) >= ((j - i) & mask)) {
            m->slots[i] = m->slots[j];
            i = j;
        }
    }
    m->slots[i] = (struct hmap_str_slot){0};
    m->len--;
    return true;
}

void
hmap_str_free(struct hmap_str *m)
{
    free(m->slots);
    *m = (struct hmap_str){0};
}
