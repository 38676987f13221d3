/* SHA-256 (FIPS 180-4), for the state digest. Written here because DESIGN.md keeps OpenSSL
 * out of store/ (only raft/ links against it). */
#ifndef RFS_SHA256_H
#define RFS_SHA256_H

#include <stddef.h>
#include <stdint.h>

struct rfs_sha256 {
    uint32_t h[8];
    uint64_t bytes;    /* message length so far */
    uint8_t block[64]; /* partial block */
    size_t used;       /* bytes in block */
};

void rfs_sha256_init(struct rfs_sha256 *s);
/* Add len bytes of data (borrowed for the call). */
void rfs_sha256_update(struct rfs_sha256 *s, const void *data, size_t len);
/* Finish and write the 32-byte digest to out; s must be initialised again before reuse. */
void rfs_sha256_final(struct rfs_sha256 *s, uint8_t out[32]);

#endif
