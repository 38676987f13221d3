/* libFuzzer: the transport's frame layer on hostile bytes (raft/net/frame.c, as
 * raft/net/transport.c uses it). The input is one connection's byte stream, preceded by one byte
 * that picks the maximum frame size (high bit set: the 64 MiB default; otherwise 8 times its value,
 * so the length bound is reached). Frames are taken one after the other until one is refused or the
 * stream ends. Checked:
 *  1. the header check accepts exactly the headers the spec allows (an independent check here),
 *     and every refusal comes with a reason;
 *  2. a header and payload that pass both checks are canonical: sealing the payload again gives
 *     the same header bytes;
 *  3. a HELLO is checked against a fixed cluster and against the cluster it names itself; one
 *     that passes re-encodes to exactly the frame received. */
#include <assert.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "raft/net/transport.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static uint32_t le32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

/* docs/wire-format.md, "Frames", read independently of raft/net/frame.c. */
static bool header_is_valid(const uint8_t *h, uint32_t max_frame)
{
    return le32(h) == RAFT__FRAME_MAGIC && h[4] == RAFT__FRAME_VERSION && h[5] >= 1 &&
           h[5] <= RAFT__FRAME_TYPE_MAX && h[6] == 0 && h[7] == 0 && le32(h + 8) <= max_frame;
}

static void check_hello(const uint8_t *frame, const uint8_t *p, uint32_t len, const char *cluster,
                        size_t cluster_len)
{
    uint64_t id = 0;
    unsigned channel = 0;
    char err[256] = "";
    if (raft__hello_check(p, len, cluster, cluster_len, &id, &channel, err, sizeof err) != 0) {
        assert(err[0] != '\0' && strlen(err) < sizeof err);
        return;
    }
    assert(len == 13 + cluster_len && channel < RAFT__N_CHANNELS);
    uint8_t again[RAFT__FRAME_HEADER + 13 + RAFT__CLUSTER_ID_MAX];
    size_t n = raft__hello_encode(again, (enum raft__channel)channel, id, cluster, cluster_len);
    assert(n == RAFT__FRAME_HEADER + len);
    assert(memcmp(again, frame, n) == 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    uint32_t max_frame = data[0] & 0x80 ? RAFT__FRAME_MAX_DEFAULT : (uint32_t)data[0] * 8;
    const uint8_t *p = data + 1;
    size_t rest = size - 1;
    while (rest >= RAFT__FRAME_HEADER) {
        uint8_t type = 0;
        uint32_t len = 0;
        char err[128] = "";
        int rc = raft__frame_header_check(p, max_frame, &type, &len, err, sizeof err);
        assert((rc == 0) == header_is_valid(p, max_frame));
        if (rc != 0) {
            assert(rc == RAFT_EPROTO && err[0] != '\0');
            return 0;
        }
        assert(type == p[5] && len == le32(p + 8));
        if (len > rest - RAFT__FRAME_HEADER)
            return 0; /* the stream ends inside the frame */
        const uint8_t *payload = p + RAFT__FRAME_HEADER;
        if (raft__frame_crc_check(p, payload, len, err, sizeof err) != 0) {
            assert(err[0] != '\0');
            return 0;
        }
        uint8_t *copy = malloc(RAFT__FRAME_HEADER + (size_t)len);
        assert(copy != NULL);
        memcpy(copy + RAFT__FRAME_HEADER, payload, len);
        raft__frame_seal(copy, type, len);
        assert(memcmp(copy, p, RAFT__FRAME_HEADER) == 0);
        free(copy);
        if (type == RAFT__FRAME_HELLO) {
            check_hello(p, payload, len, "raftfs-test", strlen("raftfs-test"));
            if (len >= 13 && payload[12] <= RAFT__CLUSTER_ID_MAX && 13u + payload[12] <= len)
                check_hello(p, payload, len, (const char *)payload + 13, payload[12]);
        }
        p += RAFT__FRAME_HEADER + len;
        rest -= RAFT__FRAME_HEADER + len;
    }
    return 0;
}
