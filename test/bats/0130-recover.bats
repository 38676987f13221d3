#!/usr/bin/env bats
# Forced recovery after the permanent loss of a quorum: the survivor becomes a cluster of one
# under a new epoch, keeps what it had, accepts writes, refuses the old peers, and grows again.

load helpers

setup() {
    cluster_init 3
}

teardown() {
    teardown_cluster
}

@test "a survivor of a lost quorum is recovered alone, and stale peers are refused" {
    cluster_start
    l=$(leader)
    for k in 1 2 3; do
        run ctl "$l" propose "before-$k"
        assert_success
    done
    wait_for 10 same_digest 1 2 3
    # Nodes 2 and 3 are gone for good; node 1 is stopped for the operator's recovery.
    node_kill 2
    node_kill 3
    node_stop 1
    run "$RAFTNODE" recover --data "$D/n1" --peer "1=$(addr 1)"
    assert_success
    assert_output --partial "epoch 1"
    node_start 1 --peer "1=$(addr 1)"
    wait_for 10 field_is 1 role leader
    run ctl 1 propose after-recovery
    assert_success
    for k in 1 2 3; do
        run ctl 1 lookup "before-$k"
        assert_success
    done
    run ctl 1 status
    assert_output --partial "voters=1 "

    # A peer of the old epoch comes back: refused at connection, it changes nothing.
    node_start 2 $PEERS
    wait_for 10 grep -q "cluster ID mismatch: the peer is in cluster 'raftfs-test/0'" "$D/n1.log"
    run ctl 1 propose with-stale-peer-around
    assert_success
    [ "$(field 1 role)" = leader ]
    [ "$(field 1 voters)" = 1 ]

    # A new node started with the new epoch joins normally.
    node_start 4 --peer "1=$(addr 1)" --epoch 1
    run ctl 1 add-voter 4 "$(addr 4)"
    assert_success
    wait_for 10 same_digest 1 4
}
