#!/usr/bin/env bats
# Network partitions made with the transport's fault hooks (`raftnode ctl SOCK faults ...`, that
# is raft_runtime_set_faults): an isolated leader steps down by check-quorum, the majority elects
# another and goes on, the isolated node refuses proposals in bounded time, and after healing
# everything converges.
#
# No one-sided variant (the leader's frames reach the others, theirs never reach it): a `drop`
# fault cuts both directions of a link, on whichever node sets it (drop:ID discards frames to ID
# when sent and from ID when received), so one-way loss cannot be expressed yet; see "Fault
# hooks" in docs/transport.md.

load helpers

bats_require_minimum_version 1.5.0

setup() {
    cluster_init 3
}

teardown() {
    teardown_cluster
}

now_ms() { echo $(($(date +%s%N) / 1000000)); }

# Conditions for wait_for.
# self_leader I...: the first of nodes I... that says it is the leader.
self_leader() {
    for i in "$@"; do
        [ "$(field "$i" role)" = leader ] && echo "$i" && return 0
    done
    return 1
}

not_leader() {
    local r
    r=$(field "$1" role) && [ -n "$r" ] && [ "$r" != leader ]
}
follows() { field_is "$1" role follower && field_is "$1" leader "$2"; }

@test "an isolated leader steps down; the majority goes on; all converge after healing" {
    cluster_start
    l=$(leader)
    a=$(seq 1 3 | grep -vx "$l" | head -n 1)
    b=$(seq 1 3 | grep -vx "$l" | tail -n 1)
    propose_many "$l" before 3
    [ "$(wc -l <"$D/acked")" -eq 3 ]

    # A malformed spec is refused whole, with the item at fault.
    run -1 ctl "$l" faults "drop:$a" drop:x
    assert_output "error bad fault item 'drop:x' (expected drop:ID or delay:ID:MS)"

    # Cut the leader off: it drops both others, and they drop it.
    run ctl "$l" faults "drop:$a" "drop:$b"
    assert_success
    assert_output "ok faults=drop:$a drop:$b"
    start=$(now_ms)
    run ctl "$a" faults "drop:$l"
    assert_success
    run ctl "$b" faults "drop:$l"
    assert_success
    # A read on a follower, forwarded to the cut-off leader before the others notice: the
    # election that follows is not a failure, so the read is sent again to the new leader and
    # succeeds within its deadline.
    (
        st=0
        ctl "$a" read >"$D/read.out" 2>&1 || st=$?
        echo "$st" >"$D/read.rc"
    ) &
    reader=$!

    # Check-quorum: no contact with a quorum for an election timeout, so it steps down. The
    # check runs once per election timeout, so two of them at most; the bound allows three of the
    # longest (twice ELECTION_TICKS at 10 ms a tick).
    wait_for 10 not_leader "$l"
    elapsed_ms=$(($(now_ms) - start))
    bound_ms=$((3 * 2 * ELECTION_TICKS * 10))
    echo "the isolated leader stepped down after ${elapsed_ms} ms (bound ${bound_ms} ms)"
    [ "$elapsed_ms" -le "$bound_ms" ]
    grep -q "transport faults now: drop:$a drop:$b" "$D/n$l.log"

    # A proposal on the isolated node: no leader is known there, so it must fail with "not the
    # leader" (definitely not done) when its 5 s deadline passes, not hang. It runs meanwhile.
    (
        s=$(now_ms) st=0
        ctl "$l" propose isolated >"$D/isolated.out" 2>&1 || st=$?
        echo "$st $(($(now_ms) - s))" >"$D/isolated.rc"
    ) &
    isolated=$!

    # The majority elects a new leader and commits, through it and through the other node.
    l2=$(leader "$a" "$b")
    [ -n "$l2" ]
    [ "$l2" != "$l" ]
    term2=$(field "$l2" term)
    other=$(echo "$a $b" | tr ' ' '\n' | grep -vx "$l2")
    propose_many "$l2" majority 3
    propose_many "$other" forwarded 3
    [ "$(wc -l <"$D/acked")" -eq 9 ]
    [ "$(field "$l" role)" != leader ]

    wait "$reader"
    echo "read on node $a across the election (leader now $l2): $(cat "$D/read.out")"
    [ "$(cat "$D/read.rc")" -eq 0 ]

    wait "$isolated"
    read -r rc ms <"$D/isolated.rc"
    echo "isolated proposal: status $rc after ${ms} ms: $(cat "$D/isolated.out")"
    [ "$rc" -eq 1 ]
    [ "$ms" -le 7000 ] # op timeout 5 s, plus a tick and the client's start
    grep -q "not the leader" "$D/isolated.out"

    # Heal. The old leader rejoins as a follower of the new one, without disrupting it: pre-vote
    # and the leader-stickiness guard keep the term where it is.
    for i in 1 2 3; do
        run ctl "$i" faults
        assert_output "ok faults=none"
    done
    wait_for 10 follows "$l" "$l2"
    run ctl "$l" propose after-heal
    assert_success
    echo after-heal >>"$D/acked"
    wait_for 20 same_digest 1 2 3
    acked_everywhere 1 2 3
    for i in 1 2 3; do
        run -1 ctl "$i" lookup isolated
        assert_output --partial "No such file"
    done
    [ "$(field "$l2" role)" = leader ]
    [ "$(field "$l2" term)" = "$term2" ]
    run ctl 1 count
    assert_output "ok count=12" # the 10 names, "." and ".."
}

@test "lease reads: a leader paused past its lease does not answer a read from it on resuming" {
    # The tick timer fires once for a stall of any length; a leader counting only its timer's
    # ticks would still trust its lease when it resumes (docs/runtime.md, "Ticks and the
    # lease"). Here the paused leader is also cut off, so every read it answers is stale.
    cluster_start --lease-reads
    l=$(leader)
    a=$(seq 1 3 | grep -vx "$l" | head -n 1)
    b=$(seq 1 3 | grep -vx "$l" | tail -n 1)
    propose_many "$l" before 3
    run ctl "$l" read
    assert_output ok # answered from the lease, or by a round: the leader is in contact
    kill -STOP "$(node_pid "$l")"
    ctl "$a" faults "drop:$l"
    ctl "$b" faults "drop:$l"
    # (not leader(): it would ask the paused node for its status)
    wait_for 10 self_leader "$a" "$b"
    n=$(self_leader "$a" "$b")
    propose_many "$n" after 3
    grep -qx after-3 "$D/acked"
    # A read waiting on the paused leader's control socket when it resumes (the client is
    # blocked reading the answer: read or recvfrom).
    "$RAFTNODE" ctl "$D/n$l.sock" read >"$D/read.out" 2>&1 &
    reader=$!
    wait_for 10 blocked_in "$reader" 0 45
    kill -CONT "$(node_pid "$l")"
    st=0
    wait "$reader" || st=$?
    echo "the resumed leader answered: $(cat "$D/read.out") (status $st)"
    [ "$st" != 0 ]
    run ctl "$l" lookup after-1
    refute_output --partial "ok"
}

@test "verify waits for a cut-off member to apply the checkpoint, then compares its digest" {
    cluster_start
    l=$(leader)
    f=$(seq 1 3 | grep -vx "$l" | head -n 1)
    o=$(seq 1 3 | grep -vx "$l" | tail -n 1)
    propose_many "$l" before 3
    # Cut f off; the other two still commit, so the checkpoint commits without f.
    ctl "$l" faults "drop:$f" >/dev/null
    ctl "$o" faults "drop:$f" >/dev/null
    ctl "$f" faults "drop:$l" "drop:$o" >/dev/null
    before=$(field "$l" applied)
    ctl "$l" verify >"$D/verify" 3>&- &
    verifier=$!
    # The checkpoint is applied on the leader while f cannot have it: f is asked, and asked
    # again, until it answers with its digest at that index.
    wait_for 10 field_gt "$l" applied "$before"
    [ "$(field "$f" applied)" -le "$before" ]
    for i in 1 2 3; do ctl "$i" faults >/dev/null; done
    wait "$verifier"
    run cat "$D/verify"
    assert_output --regexp "^ok index=[0-9]+ equal=yes nodes=[0-9]:ok,[0-9]:ok,[0-9]:ok$"
    index=$(sed 's/.*index=\([0-9]*\).*/\1/' "$D/verify")
    [ "$index" -gt "$before" ]
}
