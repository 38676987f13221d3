/* libFuzzer: any bytes given to the Raft message decoder either decode into a message that
 * re-encodes to exactly the same bytes, or are refused. */
#include <assert.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "raft/raft.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct raft_msg m;
    if (raft_msg_decode(data, size, &m, NULL) != 0)
        return 0;
    size_t n = raft_msg_encoded_size(&m);
    assert(n == size);
    uint8_t *buf = malloc(n);
    raft_msg_encode(&m, buf);
    assert(memcmp(buf, data, n) == 0);
    free(buf);
    raft_msg_release(&m, NULL);
    return 0;
}
