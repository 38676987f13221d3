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
    uint64_t ret;   /* time of the response (>= call), or LIN_NEVER: a write that may or may not
                       have taken effect at any time after call. Reads without a response and
                       operations known to have failed are left out by the caller (a read with
                       ret == LIN_NEVER is accepted and ignored: it constrains nothing). */
};
/* Real-time order: a precedes b iff a.ret < b.call. Operations with a.ret == b.call count as
 * concurrent, the permissive choice when the clock has a finite resolution. */

enum lin_result {
    LIN_OK = 0,          /* linearizable */
    LIN_VIOLATION = 1,   /* no linearization exists */
    LIN_GAVE_UP = 2,     /* the search exceeded its step budget (or ran out of memory) */
    LIN_BAD_HISTORY = 3, /* an operation with an unknown kind or ret < call; nothing checked */
};

struct lin_report {
    uint32_t key;      /* LIN_VIOLATION: the key whose history has no linearization;
                          LIN_GAVE_UP: the key being checked when the budget ran out;
                          LIN_BAD_HISTORY: the key of the malformed operation */
    size_t n_ops;      /* operations on that key (LIN_VIOLATION, LIN_GAVE_UP) */
    uint64_t steps;    /* search steps used in total */
    size_t bad_op;     /* LIN_VIOLATION: index in ops[] of the operation whose response came
                          while it could not be linearized, at the deepest point the search
                          reached. A hint where to look, not proof of blame: another order
                          may fail elsewhere. LIN_BAD_HISTORY: the malformed one; else
                          SIZE_MAX */
    size_t prefix_len; /* LIN_VIOLATION: operations linearized at that deepest point */
    char detail[256];  /* human-readable summary of the above, NUL-terminated */
};

/* Check ops[0..n) (any order; borrowed for the call, not modified). Keys are checked one at a
 * time in increasing order; the first key that fails decides the result. budget bounds the
 * total search steps over all keys (0: no bound); a step is one look at one call or return
 * event. Returns enum lin_result; fills *report if not NULL (report->detail is always set on a
 * result other than LIN_OK). Allocates internally with malloc and frees everything before
 * returning; returns LIN_GAVE_UP if memory runs out. No global state: safe to call from
 * several threads on different histories. */
int lin_check(const struct lin_op *ops, size_t n, uint64_t budget, struct lin_report *report);

#endif
