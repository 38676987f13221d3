/* The transport's frames and HELLO as pure functions (docs/wire-format.md, "Frames" and
 * "HELLO"): sealing and checking a frame header, encoding and checking a HELLO. No I/O, no state:
 * raft/net/transport.c calls them on every frame, test/fuzz/fuzz_frame.c on hostile bytes. */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "lib/crc32c.h"
#include "lib/le.h"
#include "raft/net/transport.h"

void raft__frame_seal(uint8_t *h, uint8_t type, uint32_t len)
{
    rfs_put_le32(h, RAFT__FRAME_MAGIC);
    h[4] = RAFT__FRAME_VERSION;
    h[5] = type;
    h[6] = h[7] = 0;
    rfs_put_le32(h + 8, len);
    uint32_t crc = rfs_crc32c(0, h, 12);
    rfs_put_le32(h + 12, rfs_crc32c(crc, h + RAFT__FRAME_HEADER, len));
}

int raft__frame_header_check(const uint8_t *h, uint32_t max_frame, uint8_t *type, uint32_t *len,
                             char *err, size_t errlen)
{
    uint32_t magic = rfs_get_le32(h), n = rfs_get_le32(h + 8);
    if (magic != RAFT__FRAME_MAGIC) {
        snprintf(err, errlen, "bad frame magic 0x%08" PRIx32 " (expected 0x%08" PRIx32 ")", magic,
                 (uint32_t)RAFT__FRAME_MAGIC);
        return RAFT_EPROTO;
    }
    if (h[4] != RAFT__FRAME_VERSION) {
        snprintf(err, errlen, "unsupported frame version %u", h[4]);
        return RAFT_EPROTO;
    }
    if (h[6] != 0 || h[7] != 0) {
        snprintf(err, errlen, "unknown frame flags 0x%02x%02x", h[7], h[6]);
        return RAFT_EPROTO;
    }
    if (h[5] < RAFT__FRAME_HELLO || h[5] > RAFT__FRAME_TYPE_MAX) {
        snprintf(err, errlen, "unknown frame type %u", h[5]);
        return RAFT_EPROTO;
    }
    if (n > max_frame) {
        snprintf(err, errlen, "frame of %" PRIu32 " bytes exceeds the maximum of %" PRIu32, n,
                 max_frame);
        return RAFT_EPROTO;
    }
    *type = h[5];
    *len = n;
    return 0;
}

int raft__frame_crc_check(const uint8_t *h, const uint8_t *payload, uint32_t len, char *err,
                          size_t errlen)
{
    uint32_t want = rfs_get_le32(h + 12);
    uint32_t got = rfs_crc32c(rfs_crc32c(0, h, 12), payload, len);
    if (want != got) {
        snprintf(err, errlen, "bad frame CRC32C 0x%08" PRIx32 " (computed 0x%08" PRIx32 ")", want,
                 got);
        return RAFT_EPROTO;
    }
    return 0;
}

size_t raft__hello_encode(uint8_t *frame, enum raft__channel ch, uint64_t id, const char *cluster,
                          size_t cluster_len)
{
    uint8_t *p = frame + RAFT__FRAME_HEADER;
    p[0] = RAFT__HELLO_VERSION;
    p[1] = (uint8_t)ch;
    p[2] = p[3] = 0;
    rfs_put_le64(p + 4, id);
    p[12] = (uint8_t)cluster_len;
    memcpy(p + 13, cluster, cluster_len);
    uint32_t len = (uint32_t)(13 + cluster_len);
    raft__frame_seal(frame, RAFT__FRAME_HELLO, len);
    return RAFT__FRAME_HEADER + len;
}

int raft__hello_check(const uint8_t *p, uint32_t len, const char *cluster, size_t cluster_len,
                      uint64_t *id, unsigned *channel, char *err, size_t errlen)
{
    if (len < 13 || len != 13u + p[12] || p[12] == 0 || p[12] > RAFT__CLUSTER_ID_MAX) {
        snprintf(err, errlen, "malformed HELLO (%" PRIu32 " bytes)", len);
        return RAFT_EPROTO;
    }
    if (p[0] != RAFT__HELLO_VERSION) {
        snprintf(err, errlen, "HELLO with unsupported protocol version %u (we speak %u)", p[0],
                 RAFT__HELLO_VERSION);
        return RAFT_EPROTO;
    }
    if (p[1] >= RAFT__N_CHANNELS || p[2] != 0 || p[3] != 0) {
        snprintf(err, errlen, "HELLO with unknown channel %u or flags 0x%02x%02x", p[1], p[3],
                 p[2]);
        return RAFT_EPROTO;
    }
    size_t n = p[12];
    if (n != cluster_len || memcmp(p + 13, cluster, n) != 0) {
        char theirs[RAFT__CLUSTER_ID_MAX + 1];
        for (size_t i = 0; i < n; i++)
            theirs[i] = (p[13 + i] >= 0x20 && p[13 + i] < 0x7f) ? (char)p[13 + i] : '?';
        theirs[n] = '\0';
        snprintf(err, errlen, "cluster ID mismatch: the peer is in cluster '%s', we are in '%.*s'",
                 theirs, (int)cluster_len, cluster);
        return RAFT_EPROTO;
    }
    *id = rfs_get_le64(p + 4);
    *channel = p[1];
    return 0;
}
