/* The in-memory log of the write-ahead log and the rules every record obeys, applied in the
 * same way when the writer publishes a synced batch and when recovery replays the segments.
 *
 * Invariants (recovery refuses a log that breaks one, as corruption):
 * 1. Indexes present form one range [first, last]; first - 1 is the last index dropped, and
 *    first never decreases except by a RESET to a later snapshot.
 * 2. An entry at index i with first <= i <= last + 1 overrides entries >= i (Raft §5.3's
 *    conflict resolution, by later records, as in etcd's WAL); it never reaches at or below the
 *    recorded snapshot (those entries are committed), and its term is not lower than the term
 *    of entry i - 1 where that is known.
 * 3. The snapshot never moves backwards, and its prefix drop comes in the same record, so no
 *    crash can separate them (issue 12: a log starting past its recorded snapshot).
 * 4. Term and epoch never decrease.
 * 5. Every segment starts with a HEAD record carrying the whole state, so compaction may delete
 *    old segments: the first remaining HEAD restores the state, and the entries it says exist
 *    in deleted segments (the hole) must be dropped by a later record before recovery ends.
 *    A later HEAD must agree with the state the records before it built.
 * 6. Batches are numbered consecutively across segments, so a lost batch in the middle of the
 *    log is seen. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/error.h"
#include "store/wal/internal.h"

/* No real log comes near this; it keeps index arithmetic of hostile input from overflowing. */
#define INDEX_LIMIT (1ull << 62)

bool wal__log_term(const struct wal__log *l, uint64_t index, uint64_t *term)
{
    if (index >= l->base && index - l->base < l->n) {
        *term = l->locs[index - l->base].term;
        return true;
    }
    if (index + 1 == l->base && index >= l->first && l->is_hole_term_known) {
        *term = l->hole_last_term;
        return true;
    }
    if (index == l->snap_index && index < l->first) {
        *term = l->snap_term;
        return true;
    }
    return false;
}

void wal__log_head(const struct wal__log *l, struct wal__rec *head)
{
    uint64_t last = wal__log_last(l), last_term = 0;
    wal__log_term(l, last, &last_term);
    *head = (struct wal__rec){.kind = WAL__HEAD,
                              .term = l->term,
                              .vote = l->vote,
                              .epoch = l->epoch,
                              .index = l->snap_index,
                              .snap_term = l->snap_term,
                              .through = l->first - 1,
                              .last = last,
                              .last_term = last_term};
}

/* Delete entries >= i (first <= i <= last + 1). */
static void cut(struct wal__log *l, uint64_t i)
{
    if (i < l->base) {
        l->base = i;
        l->n = 0;
        l->is_hole_term_known = false;
    } else {
        l->n = (size_t)(i - l->base);
    }
}

/* Delete entries <= t (t <= last). */
static void drop(struct wal__log *l, uint64_t t)
{
    if (t < l->first)
        return;
    if (t >= l->base) {
        size_t k = (size_t)(t + 1 - l->base);
        memmove(l->locs, l->locs + k, (l->n - k) * sizeof *l->locs);
        l->n -= k;
        l->base = t + 1;
    }
    l->first = t + 1;
}

int wal__log_reserve(struct wal__log *l, size_t more)
{
    if (l->n + more <= l->cap)
        return 0;
    size_t cap = l->cap ? l->cap : 1024;
    while (cap < l->n + more)
        cap *= 2;
    struct wal__loc *p = realloc(l->locs, cap * sizeof *p);
    if (p == NULL)
        return RFS_ENOMEM;
    l->locs = p;
    l->cap = cap;
    return 0;
}

static int push(struct wal__log *l, const struct wal__rec *r, struct wal__seg *seg)
{
    int rc = wal__log_reserve(l, 1);
    if (rc != 0)
        return rc;
    l->locs[l->n++] = (struct wal__loc){.seg = seg,
                                        .off = r->off,
                                        .term = r->term,
                                        .len = r->len,
                                        .size = r->size,
                                        .type = r->type};
    return 0;
}

static bool snapshot_goes_back(const struct wal__log *l, const struct wal__rec *r)
{
    return r->index < l->snap_index || (r->index == l->snap_index && r->term != l->snap_term);
}

static int check_head(const struct wal__log *l, const struct wal__rec *r, char *why, size_t whylen)
{
    if (!l->is_fresh) {
        struct wal__rec h;
        wal__log_head(l, &h);
        if (h.term != r->term || h.vote != r->vote || h.epoch != r->epoch || h.index != r->index ||
            h.snap_term != r->snap_term || h.through != r->through || h.last != r->last ||
            h.last_term != r->last_term) {
            snprintf(why, whylen,
                     "head record (log %llu..%llu, snapshot %llu, term %llu) disagrees with the "
                     "records before it (log %llu..%llu, snapshot %llu, term %llu)",
                     (unsigned long long)r->through + 1, (unsigned long long)r->last,
                     (unsigned long long)r->index, (unsigned long long)r->term,
                     (unsigned long long)h.through + 1, (unsigned long long)h.last,
                     (unsigned long long)h.index, (unsigned long long)h.term);
            return RFS_ECORRUPT;
        }
        return 0;
    }
    if (r->through > r->index || r->through > r->last || r->last >= INDEX_LIMIT) {
        snprintf(why, whylen, "head record with dropped index %llu, snapshot %llu, last %llu",
                 (unsigned long long)r->through, (unsigned long long)r->index,
                 (unsigned long long)r->last);
        return RFS_ECORRUPT;
    }
    return 0;
}

/* The first HEAD of a recovery: the whole state; the entries it counts are the hole. */
static void set_head(struct wal__log *l, const struct wal__rec *r)
{
    l->term = r->term;
    l->vote = r->vote;
    l->epoch = r->epoch;
    l->snap_index = r->index;
    l->snap_term = r->snap_term;
    l->first = r->through + 1;
    l->base = r->last + 1;
    l->n = 0;
    l->hole_last_term = r->last_term;
    l->is_hole_term_known = r->last > r->through;
    l->is_fresh = false;
}

int wal__log_check(const struct wal__log *l, const struct wal__rec *r, char *why, size_t whylen)
{
    uint64_t last = wal__log_last(l), t;
    if (l->is_fresh && r->kind != WAL__HEAD) {
        snprintf(why, whylen, "record of kind %u before the first head record", r->kind);
        return RFS_ECORRUPT;
    }
    if (r->index >= INDEX_LIMIT || r->through >= INDEX_LIMIT) {
        snprintf(why, whylen, "index %llu out of any range", (unsigned long long)r->index);
        return RFS_ECORRUPT;
    }
    switch (r->kind) {
    case WAL__HEAD: return check_head(l, r, why, whylen);
    case WAL__ENTRY:
        if (r->index < l->first || r->index <= l->snap_index || r->index > last + 1) {
            snprintf(why, whylen, "entry %llu outside the log %llu..%llu (snapshot %llu)",
                     (unsigned long long)r->index, (unsigned long long)l->first,
                     (unsigned long long)last, (unsigned long long)l->snap_index);
            return RFS_ECORRUPT;
        }
        if (wal__log_term(l, r->index - 1, &t) && r->term < t) {
            snprintf(why, whylen, "entry %llu has term %llu, below the term %llu before it",
                     (unsigned long long)r->index, (unsigned long long)r->term,
                     (unsigned long long)t);
            return RFS_ECORRUPT;
        }
        return 0;
    case WAL__TRUNCATE:
        if (r->index < l->first || r->index <= l->snap_index || r->index > last) {
            snprintf(why, whylen, "truncation from %llu outside the log %llu..%llu (snapshot %llu)",
                     (unsigned long long)r->index, (unsigned long long)l->first,
                     (unsigned long long)last, (unsigned long long)l->snap_index);
            return RFS_ECORRUPT;
        }
        return 0;
    case WAL__STATE:
        if (r->term < l->term || r->epoch < l->epoch) {
            snprintf(why, whylen, "term or epoch goes back (%llu/%llu after %llu/%llu)",
                     (unsigned long long)r->term, (unsigned long long)r->epoch,
                     (unsigned long long)l->term, (unsigned long long)l->epoch);
            return RFS_ECORRUPT;
        }
        return 0;
    case WAL__SNAPSHOT:
    case WAL__RESET:
        if (snapshot_goes_back(l, r) ||
            (r->kind == WAL__SNAPSHOT && (r->through > r->index || r->index > last ||
                                          (wal__log_term(l, r->index, &t) && t != r->term)))) {
            snprintf(why, whylen,
                     "snapshot %llu/%llu (dropping through %llu) does not fit the log %llu..%llu "
                     "with snapshot %llu/%llu",
                     (unsigned long long)r->index, (unsigned long long)r->term,
                     (unsigned long long)r->through, (unsigned long long)l->first,
                     (unsigned long long)last, (unsigned long long)l->snap_index,
                     (unsigned long long)l->snap_term);
            return RFS_ECORRUPT;
        }
        return 0;
    case WAL__COMMIT:
        if (l->has_batch && r->batch != l->batch + 1) {
            snprintf(why, whylen, "batch %llu follows batch %llu", (unsigned long long)r->batch,
                     (unsigned long long)l->batch);
            return RFS_ECORRUPT;
        }
        return 0;
    }
    snprintf(why, whylen, "record of unknown kind %u", r->kind);
    return RFS_ECORRUPT;
}

int wal__log_apply(struct wal__log *l, const struct wal__rec *r, struct wal__seg *seg, char *why,
                   size_t whylen)
{
    int rc = wal__log_check(l, r, why, whylen);
    if (rc != 0)
        return rc;
    switch (r->kind) {
    case WAL__HEAD:
        if (l->is_fresh)
            set_head(l, r);
        break;
    case WAL__ENTRY: cut(l, r->index); return push(l, r, seg);
    case WAL__TRUNCATE: cut(l, r->index); break;
    case WAL__STATE:
        l->term = r->term;
        l->vote = r->vote;
        l->epoch = r->epoch;
        break;
    case WAL__SNAPSHOT:
    case WAL__RESET:
        if (r->kind == WAL__SNAPSHOT) {
            drop(l, r->through);
        } else {
            l->first = l->base = r->index + 1;
            l->n = 0;
        }
        l->snap_index = r->index;
        l->snap_term = r->term;
        break;
    case WAL__COMMIT:
        l->batch = r->batch;
        l->has_batch = true;
        break;
    }
    return 0;
}

void wal__log_free(struct wal__log *l)
{
    free(l->locs);
    memset(l, 0, sizeof *l);
}
