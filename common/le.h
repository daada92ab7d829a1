/* Little-endian fields at a byte offset: the on-disk formats the node reads
 * (ext4's superblock and group descriptors, ACL and capability xattrs) and
 * the data channel's frame header. memcpy, so no offset need be aligned. */
#pragma once

#include <endian.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

static inline uint16_t
le16_at(const void *buf, size_t off)
{
    uint16_t v;
    memcpy(&v, (const uint8_t *)buf + off, sizeof(v));
    return le16toh(v);
}

static inline uint32_t
le32_at(const void *buf, size_t off)
{
    uint32_t v;
    memcpy(&v, (const uint8_t *)buf + off, sizeof(v));
    return le32toh(v);
}

static inline uint64_t
le64_at(const void *buf, size_t off)
{
    uint64_t v;
    memcpy(&v, (const uint8_t *)buf + off, sizeof(v));
    return le64toh(v);
}

static inline void
le32_put(void *buf, size_t off, uint32_t v)
{
    v = htole32(v);
    memcpy((uint8_t *)buf + off, &v, sizeof(v));
}

static inline void
le64_put(void *buf, size_t off, uint64_t v)
{
    v = htole64(v);
    memcpy((uint8_t *)buf + off, &v, sizeof(v));
}
