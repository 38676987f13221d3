#!/usr/bin/env bats
# The quick start (tools/quickstart): three raftfsd on 127.0.0.1 with their state and mount
# points in the test's directory, started, used, stopped; nothing is left behind. The package
# step is skipped (RAFTFS_QS_SKIP_DEPS) and the programs of this build are used.

load helpers
bats_require_minimum_version 1.5.0

QUICKSTART=$BATS_TEST_DIRNAME/../../tools/quickstart

setup() {
    D=$BATS_TEST_TMPDIR
    pick_ports
    export RAFTFS_QS_STATE=$D/state RAFTFS_QS_MOUNTS=$D/mnt RAFTFS_QS_PORT=$((PORT_BASE + 1))
    export RAFTFS_QS_SKIP_DEPS=1 RAFTFS_QS_BUILD=$BUILD
}

# The daemons of this test's quick start (an exited one, a zombie, has no command line).
running() { pgrep -f -- "-c $D/state/n[0-9].conf"; }

teardown() {
    "$QUICKSTART" stop >/dev/null 2>&3 || true
    # Whatever the stop missed fails the test and is cleaned up here.
    local left=0
    for pid in $(running); do
        echo "teardown: raftfsd $pid still running" >&3
        kill -9 "$pid"
        left=1
    done
    for m in "$D"/mnt/*; do
        if grep -q " $m " /proc/mounts; then
            echo "teardown: $m still mounted" >&3
            fusermount3 -u "$m" 2>/dev/null || umount -l "$m"
            left=1
        fi
    done
    if grep -h -A20 "ERROR: AddressSanitizer\|ERROR: LeakSanitizer\|runtime error:" \
        "$D"/state/n*.log >&3 2>/dev/null; then
        left=1
    fi
    [ "$left" -eq 0 ]
}

@test "quick start: three mounts, a file written on mount 1 is read on mount 3, stopped cleanly" {
    run "$QUICKSTART" start
    assert_success
    [ "$(running | wc -l)" -eq 3 ]
    assert_output --partial "a three-node raftfs cluster is running on 127.0.0.1:$RAFTFS_QS_PORT"
    assert_output --partial "mount points:  $D/mnt/1  $D/mnt/2  $D/mnt/3"
    assert_output --partial "stop:          RAFTFS_QS_STATE=$D/state RAFTFS_QS_MOUNTS=$D/mnt $QUICKSTART stop"
    for i in 1 2 3; do
        grep -q " $D/mnt/$i fuse.raftfs " /proc/mounts
    done
    # The nodes are configured by files.
    grep -q "^mountpoint = $D/mnt/2\$" "$D/state/n2.conf"

    echo "written on node 1" >"$D/mnt/1/hello"
    run cat "$D/mnt/3/hello"
    assert_success
    assert_output "written on node 1"

    # A second start refuses while the cluster runs.
    run -1 "$QUICKSTART" start
    assert_output --partial "node 1 is already running"

    run "$QUICKSTART" stop
    assert_success
    assert_output --partial "stopped 3 node(s)"
    run running
    assert_failure
    run grep " $D/mnt/" /proc/mounts
    assert_failure
    # Stopping again is harmless.
    run "$QUICKSTART" stop
    assert_success
    assert_output "quickstart: not running"

    # Started again, the cluster has kept its files.
    run "$QUICKSTART" start
    assert_success
    run cat "$D/mnt/2/hello"
    assert_output "written on node 1"
}

@test "quick start: a node that fails is named with its log, and nothing is left running" {
    run "$QUICKSTART" start
    assert_success
    run "$QUICKSTART" stop
    assert_success
    # Node 2's key is damaged: node 2 cannot start.
    echo "not a key" >"$D/state/tls/2.key"
    run -1 "$QUICKSTART" start
    assert_output --partial "node 2 did not mount $D/mnt/2"
    assert_output --partial "--- $D/state/n2.log (last 30 lines)"
    assert_output --partial "2.key"
    run running
    assert_failure
    run grep " $D/mnt/" /proc/mounts
    assert_failure
}
