/* An intrusive binary min-heap: the items embed a struct rfs_heap_node, which records where the
 * item sits so it can be removed from the middle. Room is reserved apart from pushing, so a
 * caller can make sure in advance that a push will not need memory. No locking inside.
 * Users: the runtime's timers (ordered by deadline) and its requests that wait for the applied
 * index. */
#ifndef RFS_HEAP_H
#define RFS_HEAP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct rfs_heap_node {
    size_t pos; /* index in the heap's array; SIZE_MAX: in no heap */
};

/* Whether a comes out before b. Must be a strict weak order that does not change while both
 * are in the heap (to change a key: remove, change, push). */
typedef bool (*rfs_heap_before_fn)(const struct rfs_heap_node *a, const struct rfs_heap_node *b);

struct rfs_heap {
    struct rfs_heap_node **slots;
    size_t n, cap;
    rfs_heap_before_fn before;
};

/* The item of type `type` whose member `member` is the node x. */
#define RFS_HEAP_ITEM(x, type, member) ((type *)(void *)((char *)(x)-offsetof(type, member)))

/* An empty heap ordered by before; it owns no memory until rfs_heap_reserve. */
void rfs_heap_init(struct rfs_heap *h, rfs_heap_before_fn before);

/* Free the array (the items are the caller's; their nodes are left as they are). */
void rfs_heap_free(struct rfs_heap *h);

/* Make room for n items in all. Returns 0, or RFS_ENOMEM with the heap unchanged. */
int rfs_heap_reserve(struct rfs_heap *h, size_t n);

/* Add x, which must be in no heap; room for it must have been reserved. */
void rfs_heap_push(struct rfs_heap *h, struct rfs_heap_node *x);

/* Take out x, which must be in h; x->pos becomes SIZE_MAX. */
void rfs_heap_remove(struct rfs_heap *h, struct rfs_heap_node *x);

/* The first item, or NULL when h is empty. */
static inline struct rfs_heap_node *rfs_heap_top(const struct rfs_heap *h)
{
    return h->n > 0 ? h->slots[0] : NULL;
}

static inline bool rfs_heap_contains(const struct rfs_heap_node *x)
{
    return x->pos != SIZE_MAX;
}

#endif
