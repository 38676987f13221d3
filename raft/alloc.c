/* Memory of the core: every allocation goes through the instance's allocator. This is the only
 * core file allowed to call malloc and free (make lint checks it). */
#include <stdlib.h>

#include "raft/internal.h"

static void *libc_alloc(void *ctx, size_t size)
{
    (void)ctx;
    return malloc(size);
}

static void *libc_realloc(void *ctx, void *ptr, size_t size)
{
    (void)ctx;
    return realloc(ptr, size);
}

static void libc_free(void *ctx, void *ptr)
{
    (void)ctx;
    free(ptr);
}

const struct raft_allocator raft_libc_allocator = {
    .alloc = libc_alloc,
    .realloc = libc_realloc,
    .free = libc_free,
    .ctx = NULL,
};

void *raft__alloc(struct raft *r, size_t size)
{
    return r->alloc.alloc(r->alloc.ctx, size);
}

void *raft__realloc(struct raft *r, void *p, size_t size)
{
    return r->alloc.realloc(r->alloc.ctx, p, size);
}

void raft__free(struct raft *r, void *p)
{
    if (p != NULL)
        r->alloc.free(r->alloc.ctx, p);
}

int raft__grow(struct raft *r, void **arr, size_t *cap, size_t need, size_t elem)
{
    if (need <= *cap)
        return 0;
    size_t n = *cap ? *cap : 8;
    while (n < need)
        n *= 2;
    void *p = raft__realloc(r, *arr, n * elem);
    if (p == NULL)
        return RAFT_ENOMEM;
    *arr = p;
    *cap = n;
    return 0;
}
