/* The table of pending requests (struct rt_table), under rt->lock; nothing here takes it.
 *
 * - A chained hash by request id: the apply thread finds the proposer of each applied entry,
 *   and the loop the request a peer's answer names, in constant time. Ids are consecutive, so
 *   the low bits are a good hash. The buckets double when the table holds as many requests as
 *   there are buckets; if that allocation fails, chains only get longer.
 * - The order the requests were made in, for the scans that visit them all (deadlines,
 *   resubmission, loss of leadership, shutdown), which run every few ticks, not per entry.
 * - A min-heap of the requests that the applied index completes (watched requests): a read
 *   waiting for its read index, and an entry request that knows the index it was given and
 *   fails once another entry is applied there. Its array has room for every request in the
 *   table (reserved at insert), so that watching never allocates. */
#include <stdint.h>
#include <stdlib.h>

#include "raft/runtime/internal.h"

#define MIN_BUCKETS 64

/* --- the watched requests ------------------------------------------------------------------ */

static bool watched_before(const struct rfs_heap_node *x, const struct rfs_heap_node *y)
{
    return RFS_HEAP_ITEM(x, struct rt_req, watch)->watch_index <
           RFS_HEAP_ITEM(y, struct rt_req, watch)->watch_index;
}

/* Whether advancing the applied index can complete r, and at which index. */
static bool watch_index(const struct rt_req *r, uint64_t *index)
{
    if (r->kind == RT_READ && r->is_read_waiting) {
        *index = r->read_index;
        return true;
    }
    if (rt__is_entry_req(r->kind) && !r->is_verifying && r->index != 0) {
        *index = r->index;
        return true;
    }
    return false;
}

void rt__table_update(struct rt_table *t, struct rt_req *r)
{
    if (!r->is_in_table)
        return;
    if (rfs_heap_contains(&r->watch))
        rfs_heap_remove(&t->watched, &r->watch);
    if (watch_index(r, &r->watch_index))
        rfs_heap_push(&t->watched, &r->watch); /* room was made at insert */
}

struct rt_req *rt__table_applied(const struct rt_table *t, uint64_t applied)
{
    struct rfs_heap_node *top = rfs_heap_top(&t->watched);
    if (top == NULL)
        return NULL;
    struct rt_req *r = RFS_HEAP_ITEM(top, struct rt_req, watch);
    return r->watch_index <= applied ? r : NULL;
}

/* --- the hash and the order ----------------------------------------------------------------- */

static size_t bucket(const struct rt_table *t, uint64_t id)
{
    return (size_t)(id & (t->n_buckets - 1));
}

static int grow_buckets(struct rt_table *t)
{
    size_t n = t->n_buckets ? t->n_buckets * 2 : MIN_BUCKETS;
    struct rt_req **b = calloc(n, sizeof *b);
    if (b == NULL)
        return RAFT_ENOMEM;
    free(t->buckets);
    t->buckets = b;
    t->n_buckets = n;
    for (struct rt_req *r = t->first; r != NULL; r = r->next) {
        size_t i = bucket(t, r->id);
        r->hash_next = b[i];
        b[i] = r;
    }
    return 0;
}

int rt__table_insert(struct rt_table *t, struct rt_req *r)
{
    if (t->n_buckets == 0) {
        rfs_heap_init(&t->watched, watched_before);
        if (grow_buckets(t) != 0)
            return RAFT_ENOMEM;
    }
    if (rfs_heap_reserve(&t->watched, t->n + 1) != 0)
        return RAFT_ENOMEM;
    if (t->n >= t->n_buckets)
        grow_buckets(t); /* best effort: on failure chains grow longer */
    size_t i = bucket(t, r->id);
    r->hash_next = t->buckets[i];
    t->buckets[i] = r;
    r->prev = t->last;
    r->next = NULL;
    if (t->last != NULL)
        t->last->next = r;
    else
        t->first = r;
    t->last = r;
    r->watch.pos = SIZE_MAX;
    r->is_in_table = true;
    t->n++;
    rt__table_update(t, r);
    return 0;
}

struct rt_req *rt__table_find(const struct rt_table *t, uint64_t id)
{
    if (t->n_buckets == 0)
        return NULL;
    struct rt_req *r = t->buckets[bucket(t, id)];
    while (r != NULL && r->id != id)
        r = r->hash_next;
    return r;
}

void rt__table_remove(struct rt_table *t, struct rt_req *r)
{
    struct rt_req **p = &t->buckets[bucket(t, r->id)];
    while (*p != r)
        p = &(*p)->hash_next;
    *p = r->hash_next;
    if (r->prev != NULL)
        r->prev->next = r->next;
    else
        t->first = r->next;
    if (r->next != NULL)
        r->next->prev = r->prev;
    else
        t->last = r->prev;
    if (rfs_heap_contains(&r->watch))
        rfs_heap_remove(&t->watched, &r->watch);
    r->is_in_table = false;
    r->prev = r->next = r->hash_next = NULL;
    t->n--;
}

void rt__table_free(struct rt_table *t)
{
    free(t->buckets);
    rfs_heap_free(&t->watched);
    *t = (struct rt_table){0};
}
