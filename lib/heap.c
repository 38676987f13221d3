/* The intrusive binary min-heap of lib/heap.h. */
#include <stdlib.h>

#include "lib/error.h"
#include "lib/heap.h"

void rfs_heap_init(struct rfs_heap *h, rfs_heap_before_fn before)
{
    *h = (struct rfs_heap){.before = before};
}

void rfs_heap_free(struct rfs_heap *h)
{
    free(h->slots);
    h->slots = NULL;
    h->n = h->cap = 0;
}

int rfs_heap_reserve(struct rfs_heap *h, size_t n)
{
    if (n <= h->cap)
        return 0;
    size_t cap = h->cap ? h->cap : 16;
    while (cap < n)
        cap *= 2;
    struct rfs_heap_node **s = realloc(h->slots, cap * sizeof *s);
    if (s == NULL)
        return RFS_ENOMEM;
    h->slots = s;
    h->cap = cap;
    return 0;
}

static void place(struct rfs_heap *h, size_t i, struct rfs_heap_node *x)
{
    h->slots[i] = x;
    x->pos = i;
}

static void sift_up(struct rfs_heap *h, size_t i)
{
    struct rfs_heap_node *x = h->slots[i];
    while (i > 0) {
        size_t parent = (i - 1) / 2;
        if (!h->before(x, h->slots[parent]))
            break;
        place(h, i, h->slots[parent]);
        i = parent;
    }
    place(h, i, x);
}

static void sift_down(struct rfs_heap *h, size_t i)
{
    struct rfs_heap_node *x = h->slots[i];
    for (;;) {
        size_t child = 2 * i + 1;
        if (child >= h->n)
            break;
        if (child + 1 < h->n && h->before(h->slots[child + 1], h->slots[child]))
            child++;
        if (!h->before(h->slots[child], x))
            break;
        place(h, i, h->slots[child]);
        i = child;
    }
    place(h, i, x);
}

void rfs_heap_push(struct rfs_heap *h, struct rfs_heap_node *x)
{
    place(h, h->n++, x);
    sift_up(h, x->pos);
}

void rfs_heap_remove(struct rfs_heap *h, struct rfs_heap_node *x)
{
    size_t i = x->pos;
    struct rfs_heap_node *last = h->slots[--h->n];
    x->pos = SIZE_MAX;
    if (last == x)
        return;
    place(h, i, last);
    sift_up(h, i);
    sift_down(h, last->pos);
}
