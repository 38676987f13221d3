/* libFuzzer: the control protocol's decoder (ctl/proto.c) on hostile bytes, as raftfsd's control
 * server and raftfs-ctl see them. The input is one frame: a header and whatever follows.
 * Checked:
 *  1. a refused header or payload always comes with a reason;
 *  2. a header that passes announces at most CTL_PAYLOAD_MAX bytes;
 *  3. a message that decodes is canonical: encoding it again gives exactly the frame received
 *     (so the decoder accepts nothing the encoder would not write). */
#include <assert.h>
#include <stdint.h>
#include <string.h>

#include "tools/ctl/proto.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < CTL_HEADER)
        return 0;
    enum ctl_type type;
    uint32_t len;
    char err[256] = "";
    if (ctl_header_check(data, &type, &len, err, sizeof err) != 0) {
        assert(err[0] != '\0');
        return 0;
    }
    assert(len <= CTL_PAYLOAD_MAX);
    if (size - CTL_HEADER < len)
        return 0; /* the stream would wait for the rest */
    struct ctl_msg m;
    if (ctl_decode(type, data + CTL_HEADER, len, &m, err, sizeof err) != 0) {
        assert(err[0] != '\0');
        return 0;
    }
    static uint8_t again[CTL_FRAME_MAX];
    size_t n = ctl_encode(&m, again, sizeof again);
    assert(n == CTL_HEADER + len);
    assert(memcmp(again, data, n) == 0);
    return 0;
}
