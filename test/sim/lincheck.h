/* Linearizability checker for client histories of the simulator's key-value state machine.
 * Each key is an independent register (writes replace the value, reads return it), so a
 * history is linearizable exactly when the sub-history of every key is (locality, Herlihy and
 * Wing 1990); each key is checked with a Wing-Gong style search with memoization. */
#ifndef RAFTFS_LINCHECK_H
#define RAFTFS_LINCHECK_H

#include <stddef.h>
#include <stdint.h>

#define LIN_NEVER UINT64_MAX /* ret of an operation whose outcome is unknown */

enum lin_op_kind {
    LIN_WRITE = 1,
    LIN_READ,
};

struct lin_op {
    uint64_t client;
    enum lin_op_kind kind;
    uint32_t key;
    uint64_t value; /* write: the value written; read: the value returned (0: never written) */
    uint64_t call;  /* time of invocation */
    uint64_t ret;   /* time of the response (> call), or LIN_NEVER: a write that may or may not
                       have taken effect at any time after call. Reads without a response and
                       operations known to have failed are left out by the caller. */
};

enum lin_result {
    LIN_OK = 0,        /* linearizable */
    LIN_VIOLATION = 1, /* no linearization exists */
    LIN_GAVE_UP = 2,   /* the search exceeded its step budget */
};

struct lin_report {
    uint32_t key;     /* on LIN_VIOLATION: the key whose history has no linearization */
    size_t n_ops;     /* operations on that key */
    uint64_t steps;   /* search steps used in total */
    char detail[256]; /* human-readable: the longest linearizable prefix found, etc. */
};

/* Check ops[0..n) (any order; not modified). budget bounds the total search steps (0: no
 * bound). Returns enum lin_result; fills *report if not NULL. Allocates internally with
 * malloc and frees before returning; returns LIN_GAVE_UP if memory runs out. */
int lin_check(const struct lin_op *ops, size_t n, uint64_t budget, struct lin_report *report);

#endif
