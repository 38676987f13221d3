#!/usr/bin/env bats
# Peers the transport must refuse, against a running two-node cluster: a certificate that names
# another node than the one claimed, another cluster ID, a plaintext client, and malformed
# frames after a valid TLS handshake (test/node/rawpeer). Each is refused with a log line on the
# node that received it, and the cluster keeps committing. (A certificate from another CA is in
# 0100-runtime.bats.)

load helpers

bats_require_minimum_version 1.5.0

RAWPEER=$BATS_TEST_DIRNAME/../../$BUILD/test/rawpeer

setup() {
    cluster_init 2 # certificates for nodes 1 to 4; nodes 1 and 2 form the cluster
    cluster_start
    L=$(leader 1 2)
}

teardown() {
    teardown_cluster
}

# still_serving NAME: both nodes are alive and a proposal through each commits everywhere.
still_serving() {
    for i in 1 2; do
        kill -0 "$(node_pid "$i")"
        run ctl "$i" propose "$1-via-$i"
        assert_success
    done
    wait_for 10 same_digest 1 2
    run ctl 1 count
    assert_output "ok count=4" # the two names, "." and ".."
}

@test "a node whose certificate names another node is refused both ways" {
    "$RAFTFS_CTL" tls issue "$D/tls" 7 --ip 127.0.0.1 >/dev/null
    cp "$D/tls/7.crt" "$D/tls/3.crt" # node 3 presents node 7's certificate
    cp "$D/tls/7.key" "$D/tls/3.key"
    # Node 3 dials nodes 1 and 2 (its --peer list) and claims to be node 3 in its HELLO.
    node_start 3 $PEERS
    for i in 1 2; do
        wait_for 10 grep -q "the peer claims to be node 3 but its certificate names node 7" \
            "$D/n$i.log"
    done
    # The leader dials node 3 once it is a learner, and checks the certificate it finds there.
    run ctl "$L" add-learner 3 "$(addr 3)"
    assert_success
    wait_for 10 grep -q "the certificate names node 7, but we dialled node 3" "$D/n$L.log"
    still_serving after-impostor
    [ "$(field 3 applied)" = 0 ]
}

@test "a node of another cluster is refused" {
    node_start 3 $PEERS --cluster-id other
    for i in 1 2; do
        wait_for 10 grep -q \
            "cluster ID mismatch: the peer is in cluster 'other/0', we are in 'raftfs-test/0'" \
            "$D/n$i.log"
    done
    still_serving after-stranger
    [ "$(field 3 applied)" = 0 ]
    [ "$(field 3 leader)" = 0 ]
}

@test "a plaintext client is refused and disconnected" {
    port=$((PORT_BASE + L))
    exec 5<>"/dev/tcp/127.0.0.1/$port"
    # The node may reset the connection while we are still writing (it gives up as soon as the
    # first bytes are no TLS record), so the write may fail; what follows checks the outcome.
    printf 'GET / HTTP/1.0\r\n\r\n' >&5 2>/dev/null || echo "the write ended with a reset"
    # The node fails the TLS handshake and closes: reading ends (EOF, or a reset because it
    # closed with our bytes unread) well before the timeout (status 124).
    run timeout 10 cat <&5
    exec 5<&-
    echo "cat: status $status"
    [ "$status" -eq 0 ] || [ "$status" -eq 1 ]
    wait_for 10 grep -Eq \
        "inbound connection from 127.0.0.1:[0-9]+: connection set-up failed: TLS handshake failed" \
        "$D/n$L.log"
    still_serving after-plaintext
}

@test "malformed frames after a valid TLS handshake close the connection; the node goes on" {
    # rawpeer connects to the leader with node 4's valid certificate (4 is no member: the
    # leader takes it for a receive-only peer). Each kind of garbage, and the reason the leader
    # must give for closing.
    while read -r kind reason; do
        run "$RAWPEER" --tls-dir "$D/tls" --id 4 --connect "$(addr "$L")" --send "$kind"
        echo "$kind: $output"
        assert_success
        assert_output --partial "closed by the node"
        wait_for 10 grep -q "$reason" "$D/n$L.log"
    done <<'EOF'
bad-magic bad frame magic 0x58585858 (expected 0x53544652)
bad-version unsupported frame version 9
bad-type unknown frame type 200
bad-crc bad frame CRC32C
oversize frame of 4294967295 bytes exceeds the maximum of 67108864
no-hello expected a HELLO, got a frame of type 2 and 32 bytes
EOF
    # A well-formed frame with a payload that is no Raft message is the runtime's business: it
    # drops the message and the connection stays up.
    run "$RAWPEER" --tls-dir "$D/tls" --id 4 --connect "$(addr "$L")" --send bad-payload \
        --timeout-ms 1000
    assert_success
    assert_output --partial "still open"
    wait_for 10 grep -q "malformed raft message from node 4 dropped" "$D/n$L.log"
    still_serving after-garbage
}

@test "a removed node's forwarded proposals are refused and logged; the tree does not change" {
    # Node 3 joins, learns the leader, and is removed; with a long election timeout it keeps
    # taking the old leader for its leader, and forwards to it.
    node_start 3 $PEERS --election-ticks 3000
    run ctl "$L" add-voter 3 "$(addr 3)"
    assert_success
    wait_for 10 field_is 3 leader "$L"
    run ctl "$L" remove 3
    assert_success
    wait_for 10 sh -c "! $RAFTNODE ctl $D/n1.sock status | grep -q 'voters=.*3'"
    [ "$(field 3 leader)" = "$L" ]
    run ctl 3 propose from-a-removed-node
    assert_failure # refused, or committed where node 3 never applies it: the tree tells
    for i in 1 2; do
        run ctl "$i" lookup from-a-removed-node
        assert_failure
    done
    grep -q "refused a forwarded proposal from node 3 (the node its certificate names): not a server of the configuration" "$D/n$L.log"
    still_serving after-refusal
}
