/* Records and segment headers of the write-ahead log: encoding, decoding, and the scan of one
 * segment into batches with the classification of what follows the last good batch.
 *
 * Design note: torn tail or damage. A batch is one pwritev followed by one fdatasync, into a
 * segment that was zero-filled when it was prepared, so bytes never written read as zeros.
 * A crash during the write (or before its sync) can leave any subset of the batch's pages
 * written; a SIGKILL leaves a prefix of them. Only that last batch may be discarded, and only
 * because its sync never returned, so nothing in it was acknowledged. Let P be the end of the
 * last batch whose commit record checks out and E the end of the non-zero bytes.
 *  1. E <= P: the tail is clean.
 *  2. The records after P check out and are followed by zeros only (the commit record or later
 *     records were never written): torn.
 *  3. A commit record that checks out lies after the first bad record and covers a batch that
 *     starts after P: a complete, synced batch follows the damage, so the damage is in
 *     acknowledged data: damaged.
 *  4. The first bad record reaches E (the write stopped inside it), or a 512-byte sector in
 *     [P, E) is all zeros (a sector of the batch was never written): torn.
 *  5. Anything else (for example one flipped bit in a record followed by intact records) is not
 *     what a torn write looks like: damaged.
 * Rules 3-5 are a heuristic in the manner of etcd's WAL: a flipped bit in the very last batch can
 * look torn (rule 4) and is then discarded as if it had never been written; a damaged record
 * followed by a later complete batch is always reported. Recovery (recover.c) accepts a torn
 * tail only in the last segment that holds data. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/crc32c.h"
#include "lib/error.h"
#include "lib/le.h"
#include "store/wal/internal.h"

/* Fixed body size by kind; ENTRY's payload follows its 16 bytes. */
static const uint32_t fixed_body[WAL__KIND_MAX + 1] = {
    [WAL__ENTRY] = 16,
    [WAL__STATE] = 24,
    [WAL__SNAPSHOT] = 24,
    [WAL__RESET] = 16,
    [WAL__TRUNCATE] = 8,
    [WAL__HEAD] = WAL__HEAD_BODY,
    [WAL__COMMIT] = WAL__COMMIT_BODY,
};

static uint64_t align8(uint64_t n)
{
    return (n + WAL__ALIGN - 1) & ~(uint64_t)(WAL__ALIGN - 1);
}

uint32_t wal__rec_size(uint8_t kind, uint32_t len)
{
    return (uint32_t)align8(WAL__REC_HEADER + fixed_body[kind] + (uint64_t)len);
}

size_t wal__rec_encode(uint8_t *buf, struct wal__rec *r)
{
    uint32_t fixed = fixed_body[r->kind];
    uint32_t len = r->kind == WAL__ENTRY ? r->len : 0;
    uint8_t *b = buf + WAL__REC_HEADER;
    memset(buf, 0, WAL__REC_HEADER + fixed);
    buf[4] = r->kind;
    buf[5] = r->kind == WAL__ENTRY ? r->type : 0;
    rfs_put_le32(buf + 8, fixed + len);
    switch (r->kind) {
    case WAL__ENTRY:
    case WAL__RESET:
    case WAL__SNAPSHOT:
        rfs_put_le64(b, r->index);
        rfs_put_le64(b + 8, r->term);
        if (r->kind == WAL__SNAPSHOT)
            rfs_put_le64(b + 16, r->through);
        break;
    case WAL__STATE:
        rfs_put_le64(b, r->term);
        rfs_put_le64(b + 8, r->vote);
        rfs_put_le64(b + 16, r->epoch);
        break;
    case WAL__TRUNCATE: rfs_put_le64(b, r->index); break;
    case WAL__HEAD:
        rfs_put_le64(b, r->term);
        rfs_put_le64(b + 8, r->vote);
        rfs_put_le64(b + 16, r->epoch);
        rfs_put_le64(b + 24, r->index);
        rfs_put_le64(b + 32, r->snap_term);
        rfs_put_le64(b + 40, r->through);
        rfs_put_le64(b + 48, r->last);
        rfs_put_le64(b + 56, r->last_term);
        break;
    case WAL__COMMIT:
        rfs_put_le64(b, r->batch);
        rfs_put_le32(b + 8, r->count);
        rfs_put_le32(b + 12, r->length);
        rfs_put_le32(b + 16, r->batch_crc);
        break;
    }
    uint32_t crc = rfs_crc32c(0, buf + 4, WAL__REC_HEADER - 4 + fixed);
    if (len > 0)
        crc = rfs_crc32c(crc, r->payload, len);
    rfs_put_le32(buf, crc);
    r->crc = crc;
    r->size = wal__rec_size(r->kind, len);
    return WAL__REC_HEADER + fixed;
}

static bool is_zero(const uint8_t *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (p[i] != 0)
            return false;
    return true;
}

int wal__rec_decode(const uint8_t *buf, size_t avail, struct wal__rec *r, uint64_t *claimed,
                    char *why, size_t whylen)
{
    *claimed = WAL__REC_HEADER;
    if (avail < WAL__REC_HEADER) {
        if (is_zero(buf, avail))
            return WAL__REC_END;
        snprintf(why, whylen, "a record header runs past the end of the file");
        return WAL__REC_BAD;
    }
    if (is_zero(buf, WAL__REC_HEADER))
        return WAL__REC_END;
    uint8_t kind = buf[4];
    uint32_t body = rfs_get_le32(buf + 8);
    if (kind == 0 || kind > WAL__KIND_MAX) {
        snprintf(why, whylen, "unknown record kind %u", kind);
        return WAL__REC_BAD;
    }
    uint32_t fixed = fixed_body[kind];
    if (kind == WAL__ENTRY ? body < fixed || body - fixed > WAL_PAYLOAD_MAX : body != fixed) {
        snprintf(why, whylen, "record of kind %u with a body of %u bytes", kind, body);
        return WAL__REC_BAD;
    }
    *claimed = align8(WAL__REC_HEADER + (uint64_t)body);
    if (*claimed > avail) {
        snprintf(why, whylen, "a record of %llu bytes runs past the end of the file",
                 (unsigned long long)*claimed);
        return WAL__REC_BAD;
    }
    uint32_t stored = rfs_get_le32(buf), crc = rfs_crc32c(0, buf + 4, WAL__REC_HEADER - 4 + body);
    if (stored != crc) {
        snprintf(why, whylen, "record checksum mismatch (stored %08x, computed %08x)", stored, crc);
        return WAL__REC_BAD;
    }
    const uint8_t *b = buf + WAL__REC_HEADER;
    if ((kind != WAL__ENTRY && buf[5] != 0) || buf[6] != 0 || buf[7] != 0 ||
        rfs_get_le32(buf + 12) != 0 || (kind == WAL__COMMIT && rfs_get_le32(b + 20) != 0) ||
        !is_zero(b + body, (size_t)(*claimed - WAL__REC_HEADER - body))) {
        snprintf(why, whylen, "reserved bytes of a record are not zero (a newer format?)");
        return WAL__REC_BAD;
    }
    memset(r, 0, sizeof *r);
    r->kind = kind;
    r->type = buf[5];
    r->crc = crc;
    r->size = (uint32_t)*claimed;
    switch (kind) {
    case WAL__ENTRY:
    case WAL__RESET:
    case WAL__SNAPSHOT:
        r->index = rfs_get_le64(b);
        r->term = rfs_get_le64(b + 8);
        if (kind == WAL__SNAPSHOT)
            r->through = rfs_get_le64(b + 16);
        if (kind == WAL__ENTRY) {
            r->payload = b + fixed;
            r->len = body - fixed;
        }
        break;
    case WAL__STATE:
        r->term = rfs_get_le64(b);
        r->vote = rfs_get_le64(b + 8);
        r->epoch = rfs_get_le64(b + 16);
        break;
    case WAL__TRUNCATE: r->index = rfs_get_le64(b); break;
    case WAL__HEAD:
        r->term = rfs_get_le64(b);
        r->vote = rfs_get_le64(b + 8);
        r->epoch = rfs_get_le64(b + 16);
        r->index = rfs_get_le64(b + 24);
        r->snap_term = rfs_get_le64(b + 32);
        r->through = rfs_get_le64(b + 40);
        r->last = rfs_get_le64(b + 48);
        r->last_term = rfs_get_le64(b + 56);
        break;
    case WAL__COMMIT:
        r->batch = rfs_get_le64(b);
        r->count = rfs_get_le32(b + 8);
        r->length = rfs_get_le32(b + 12);
        r->batch_crc = rfs_get_le32(b + 16);
        break;
    }
    return WAL__REC_OK;
}

/* Segment header: magic(8) version(4) header length(4) seq(8) cluster length(1) cluster(96)
 * reserved zero(3) crc(4) = 128 bytes. */
void wal__seg_header_encode(uint8_t buf[WAL__SEG_HEADER], uint64_t seq, const char *cluster)
{
    size_t n = strlen(cluster);
    memset(buf, 0, WAL__SEG_HEADER);
    memcpy(buf, WAL__MAGIC, 8);
    rfs_put_le32(buf + 8, WAL_FORMAT_VERSION);
    rfs_put_le32(buf + 12, WAL__SEG_HEADER);
    rfs_put_le64(buf + 16, seq);
    buf[24] = (uint8_t)n;
    memcpy(buf + 25, cluster, n);
    rfs_put_le32(buf + WAL__SEG_HEADER - 4, rfs_crc32c(0, buf, WAL__SEG_HEADER - 4));
}

int wal__seg_header_decode(const uint8_t *buf, size_t len, uint64_t *seq,
                           char cluster[WAL_CLUSTER_ID_MAX + 1], char *why, size_t whylen)
{
    if (len < WAL__SEG_HEADER || memcmp(buf, WAL__MAGIC, 8) != 0) {
        snprintf(why, whylen, "not a raftfs log segment (no magic)");
        return RFS_EFORMAT;
    }
    uint32_t version = rfs_get_le32(buf + 8);
    if (version != WAL_FORMAT_VERSION) {
        snprintf(why, whylen, "segment format version %u, this build knows version %u", version,
                 WAL_FORMAT_VERSION);
        return RFS_EFORMAT;
    }
    uint32_t stored = rfs_get_le32(buf + WAL__SEG_HEADER - 4);
    uint32_t crc = rfs_crc32c(0, buf, WAL__SEG_HEADER - 4);
    if (stored != crc) {
        snprintf(why, whylen, "segment header checksum mismatch (stored %08x, computed %08x)",
                 stored, crc);
        return RFS_ECORRUPT;
    }
    uint8_t n = buf[24];
    if (rfs_get_le32(buf + 12) != WAL__SEG_HEADER || n == 0 || n > WAL_CLUSTER_ID_MAX ||
        memchr(buf + 25, 0, n) != NULL || !is_zero(buf + 25 + n, WAL__SEG_HEADER - 4 - 25 - n)) {
        snprintf(why, whylen, "segment header has invalid fields");
        return RFS_ECORRUPT;
    }
    *seq = rfs_get_le64(buf + 16);
    memcpy(cluster, buf + 25, n);
    cluster[n] = '\0';
    return 0;
}

/* Rule 3 of the design note: a commit record that checks out after off, whose batch starts
 * after p. */
static bool complete_batch_after(const uint8_t *buf, size_t len, uint64_t off, uint64_t p,
                                 uint64_t e)
{
    char why[8];
    for (uint64_t o = align8(off + 1); o + WAL__REC_HEADER <= e; o += WAL__ALIGN) {
        struct wal__rec r;
        uint64_t claimed;
        if (buf[o + 4] != WAL__COMMIT)
            continue;
        if (wal__rec_decode(buf + o, len - o, &r, &claimed, why, sizeof why) == WAL__REC_OK &&
            r.length <= o && o - r.length > p)
            return true;
    }
    return false;
}

/* Rule 4's second half: a whole 512-byte sector of zeros in [p, e). */
static bool has_zero_sector(const uint8_t *buf, uint64_t p, uint64_t e)
{
    for (uint64_t s = (p + WAL__SECTOR - 1) / WAL__SECTOR * WAL__SECTOR; s + WAL__SECTOR <= e;
         s += WAL__SECTOR)
        if (is_zero(buf + s, WAL__SECTOR))
            return true;
    return false;
}

/* A commit record closes the records before it since the previous commit: their number, their
 * bytes, and the CRC32C of their own CRCs (so it covers every byte of the batch). */
static bool commit_matches(const struct wal__rec *recs, size_t n, uint64_t start, char *why,
                           size_t whylen)
{
    const struct wal__rec *c = &recs[n - 1];
    uint32_t crc = 0;
    for (size_t i = 0; i + 1 < n; i++) {
        uint8_t le[4];
        rfs_put_le32(le, recs[i].crc);
        crc = rfs_crc32c(crc, le, 4);
    }
    if (c->count != n - 1 || c->length != c->off - start || c->batch_crc != crc) {
        snprintf(why, whylen,
                 "commit record does not match its batch (%u records of %u bytes, crc %08x; "
                 "found %zu of %llu bytes, crc %08x)",
                 c->count, c->length, c->batch_crc, n - 1, (unsigned long long)(c->off - start),
                 crc);
        return false;
    }
    return true;
}

int wal__scan(const uint8_t *buf, size_t len, struct wal__scan *s)
{
    struct wal__rec *recs = NULL;
    size_t n = 0, cap = 0;
    uint64_t pos = WAL__SEG_HEADER, start = pos, claimed = 0;
    int rc = 0, got;
    s->end = pos;
    s->n_batches = 0;
    s->why[0] = '\0';
    for (;;) {
        if (n == cap) {
            size_t c = cap ? 2 * cap : 64;
            struct wal__rec *p = realloc(recs, c * sizeof *p);
            if (p == NULL) {
                rc = RFS_ENOMEM;
                s->bad_off = start;
                snprintf(s->why, sizeof s->why, "out of memory");
                goto out;
            }
            recs = p;
            cap = c;
        }
        claimed = WAL__REC_HEADER;
        got = pos >= len ? WAL__REC_END
                         : wal__rec_decode(buf + pos, (size_t)(len - pos), &recs[n], &claimed,
                                           s->why, sizeof s->why);
        if (got != WAL__REC_OK)
            break;
        recs[n].off = pos;
        pos += recs[n++].size;
        if (recs[n - 1].kind != WAL__COMMIT)
            continue;
        if (!commit_matches(recs, n, start, s->why, sizeof s->why)) {
            got = WAL__REC_BAD;
            pos = recs[n - 1].off;
            claimed = recs[n - 1].size;
            break;
        }
        if ((rc = s->batch(s->ctx, recs, n)) != 0) {
            s->bad_off = start;
            goto out;
        }
        s->n_batches++;
        s->end = start = pos;
        n = 0;
    }
    uint64_t e = len;
    while (e > s->end && buf[e - 1] == 0)
        e--;
    s->data_end = e;
    s->bad_off = pos;
    if (e <= s->end) {
        s->tail = WAL__TAIL_CLEAN;
    } else if (got == WAL__REC_END && pos >= e) {
        s->tail = WAL__TAIL_TORN;
        snprintf(s->why, sizeof s->why, "a batch without its commit record");
    } else if (complete_batch_after(buf, len, pos, s->end, e)) {
        s->tail = WAL__TAIL_DAMAGED;
        if (got == WAL__REC_END)
            snprintf(s->why, sizeof s->why, "zeros where a record should be");
    } else if (pos + claimed >= e || has_zero_sector(buf, s->end, e)) {
        s->tail = WAL__TAIL_TORN;
    } else {
        s->tail = WAL__TAIL_DAMAGED;
        if (got == WAL__REC_END)
            snprintf(s->why, sizeof s->why, "zeros where a record should be");
    }
out:
    free(recs);
    return rc;
}
