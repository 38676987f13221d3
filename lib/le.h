/* Little-endian integers in byte buffers, for every on-disk and on-wire format of store/ and of
 * the Raft runtime (header-only). The consensus core keeps its own two helpers in
 * raft/configuration.c: it depends on nothing outside raft/. */
#ifndef RFS_LE_H
#define RFS_LE_H

#include <stdint.h>

static inline void rfs_put_le32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static inline void rfs_put_le64(uint8_t *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static inline uint32_t rfs_get_le32(const uint8_t *p)
{
    uint32_t v = 0;
    for (int i = 3; i >= 0; i--)
        v = (v << 8) | p[i];
    return v;
}

static inline uint64_t rfs_get_le64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--)
        v = (v << 8) | p[i];
    return v;
}

#endif
