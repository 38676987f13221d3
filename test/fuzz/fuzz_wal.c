/* libFuzzer: the write-ahead log's segment and record decoder (store/wal/record.c) and the replay
 * rules (store/wal/log.c) on hostile bytes. The input's first byte picks the mode: even, the
 * input after it follows a valid segment header (so the records are reached); odd, the input is
 * the whole segment file. Checked:
 *  1. the header decoder refuses with a reason or returns a cluster ID of 1..96 bytes;
 *  2. the scan ends with a tail classification and offsets inside the segment, and a refusal
 *     always comes with a reason;
 *  3. every record of a batch handed out re-encodes to exactly the bytes it was decoded from;
 *  4. replaying the batches keeps the in-memory log's invariants (first <= base, entries in
 *     the index have consecutive indexes and do not reach the dropped prefix). */
#include <assert.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "store/wal/internal.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

struct ctx {
    const uint8_t *seg;
    struct wal__log log;
    struct wal__seg s;
};

static int on_batch(void *arg, const struct wal__rec *recs, size_t n)
{
    struct ctx *c = arg;
    uint8_t buf[WAL__REC_HEADER + WAL__HEAD_BODY];
    for (size_t i = 0; i < n; i++) {
        struct wal__rec r = recs[i];
        size_t h = wal__rec_encode(buf, &r);
        assert(r.size == recs[i].size && r.crc == recs[i].crc);
        assert(memcmp(buf, c->seg + recs[i].off, h) == 0);
        char why[160] = "";
        int rc = wal__log_apply(&c->log, &recs[i], &c->s, why, sizeof why);
        if (rc != 0) {
            assert(why[0] != '\0');
            return rc;
        }
        assert(c->log.first <= c->log.base || c->log.n == 0);
        assert(c->log.n == 0 || c->log.base + c->log.n - 1 >= c->log.first);
    }
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    size_t len = data[0] % 2 == 0 ? WAL__SEG_HEADER + size - 1 : size - 1;
    uint8_t *seg = malloc(len ? len : 1);
    assert(seg != NULL);
    if (data[0] % 2 == 0) {
        wal__seg_header_encode(seg, 1, "fuzz");
        memcpy(seg + WAL__SEG_HEADER, data + 1, size - 1);
    } else {
        memcpy(seg, data + 1, size - 1);
    }
    uint64_t seq;
    char cluster[WAL_CLUSTER_ID_MAX + 1], why[160] = "";
    if (wal__seg_header_decode(seg, len, &seq, cluster, why, sizeof why) != 0) {
        assert(why[0] != '\0');
        free(seg);
        return 0;
    }
    assert(strlen(cluster) >= 1 && strlen(cluster) <= WAL_CLUSTER_ID_MAX);
    struct ctx c = {.seg = seg, .log = {.first = 1, .base = 1, .is_fresh = true}};
    struct wal__scan s = {.batch = on_batch, .ctx = &c};
    int rc = wal__scan(seg, len, &s);
    if (rc == 0) {
        assert(s.end >= WAL__SEG_HEADER && s.end <= len && s.data_end <= len);
        assert(s.tail == WAL__TAIL_CLEAN || s.why[0] != '\0');
    }
    for (size_t i = 0; i < c.log.n; i++)
        assert(c.log.locs[i].off >= WAL__SEG_HEADER && c.log.locs[i].off < len);
    wal__log_free(&c.log);
    free(seg);
    return 0;
}
