/* An intrusive FIFO: the items embed a struct rfs_qlink, so pushing never allocates and never
 * fails. No locking inside: a queue shared by threads is protected by its owner's mutex (the
 * runtime's writer, apply and event queues, the FUSE layer's notify queue).
 *
 * A zeroed struct rfs_queue is an empty queue. Readers may walk the items from q->head along
 * link->next (NULL after the last); RFS_QUEUE_ITEM turns a link back into its item. */
#ifndef RFS_QUEUE_H
#define RFS_QUEUE_H

#include <stdbool.h>
#include <stddef.h>

struct rfs_qlink {
    struct rfs_qlink *next; /* owned by the queue the item is in */
};

struct rfs_queue {
    struct rfs_qlink *head; /* first out; NULL when empty */
    struct rfs_qlink *tail; /* last in; NULL when empty */
};

/* The item of type `type` whose member `member` is the link l. */
#define RFS_QUEUE_ITEM(l, type, member) ((type *)(void *)((char *)(l)-offsetof(type, member)))

static inline bool rfs_queue_is_empty(const struct rfs_queue *q)
{
    return q->head == NULL;
}

/* Append l, which must be in no queue. */
static inline void rfs_queue_push(struct rfs_queue *q, struct rfs_qlink *l)
{
    l->next = NULL;
    if (q->tail != NULL)
        q->tail->next = l;
    else
        q->head = l;
    q->tail = l;
}

/* Remove and return the first link; NULL when q is empty. */
static inline struct rfs_qlink *rfs_queue_pop(struct rfs_queue *q)
{
    struct rfs_qlink *l = q->head;
    if (l != NULL) {
        q->head = l->next;
        if (q->head == NULL)
            q->tail = NULL;
        l->next = NULL;
    }
    return l;
}

/* Append every link of from, in order, to q; from becomes empty. */
static inline void rfs_queue_splice(struct rfs_queue *q, struct rfs_queue *from)
{
    if (from->head == NULL)
        return;
    if (q->tail != NULL)
        q->tail->next = from->head;
    else
        q->head = from->head;
    q->tail = from->tail;
    from->head = from->tail = NULL;
}

#endif
