/* Deliberate safety bugs for `make check-mutants`. Each is compiled in only when the core is
 * built with -DRAFT_MUTANT=N; the simulation must catch every one of them, which shows that its
 * checks can fail. Never define RAFT_MUTANT in a real build. */
#ifndef RAFT_MUTANTS_H
#define RAFT_MUTANTS_H

/* grant a second vote in the same term */
#define RAFT_MUTANT_DOUBLE_VOTE 1
/* vote without comparing logs (§5.4.1) */
#define RAFT_MUTANT_NO_UP_TO_DATE_CHECK 2
/* commit a previous-term entry by counting replicas (§5.4.2) */
#define RAFT_MUTANT_COMMIT_OLD_TERM 3
/* keep a conflicting suffix on append (§5.3) */
#define RAFT_MUTANT_NO_TRUNCATE 4
/* count the leader's unpersisted entries (thesis §10.2.1) */
#define RAFT_MUTANT_UNDURABLE_SELF_VOTE 5
/* quorum computed as n/2 instead of n/2+1 */
#define RAFT_MUTANT_HALF_MAJORITY 6
/* hand entries to the state machine before commit */
#define RAFT_MUTANT_APPLY_UNCOMMITTED 7
/* answer ReadIndex without a heartbeat round (thesis §6.4) */
#define RAFT_MUTANT_UNCONFIRMED_READ 8
/* allow a second configuration change in flight (thesis §4.1) */
#define RAFT_MUTANT_CONCURRENT_CHANGES 9
/* install a snapshot but keep the conflicting log (§7) */
#define RAFT_MUTANT_SNAPSHOT_KEEP_LOG 10
/* follower acknowledges entries before they are durable */
#define RAFT_MUTANT_ACK_UNDURABLE 11
/* do not persist the vote before answering */
#define RAFT_MUTANT_FORGET_VOTE 12

#ifdef RAFT_MUTANT
#define MUTANT(name) (RAFT_MUTANT == RAFT_MUTANT_##name)
#else
#define MUTANT(name) 0
#endif

#endif
