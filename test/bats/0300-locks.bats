#!/usr/bin/env bats
# Cluster-wide locks end to end: flock(2) and fcntl(2) locks taken through the mounts of three
# raftfsd daemons exclude each other across nodes (DESIGN.md section 5, "Locks").

load helpers
bats_require_minimum_version 1.5.0

LOCKTOOL="$BATS_TEST_DIRNAME/locktool.py"

setup() {
    cluster_init 3
}

teardown() {
    teardown_fs
}

output_is() {
    local want=$1
    shift
    [ "$("$@" 2>&1)" = "$want" ]
}

@test "flock -x on three nodes: a counter updated under the lock loses no increment" {
    locks_cluster_start
    echo 0 >"$(mnt 1)/counter"
    touch "$(mnt 1)/lock"
    local pids=()
    for i in 1 2 3; do
        (
            for _ in $(seq 1 15); do
                flock -x "$(mnt "$i")/lock" \
                    sh -c 'v=$(cat "$1"); echo $((v + 1)) >"$1"' sh "$(mnt "$i")/counter"
            done
        ) &
        pids+=($!)
    done
    for p in "${pids[@]}"; do
        wait "$p"
    done
    for i in 1 2 3; do
        wait_for 10 output_is 45 cat "$(mnt "$i")/counter"
    done
}

@test "flock -n fails while another node holds the lock; a shared lock admits shared ones" {
    locks_cluster_start
    touch "$(mnt 1)/f"
    coproc HOLD { flock -x "$(mnt 1)/f" sh -c 'echo held; cat >/dev/null'; }
    read -r line <&"${HOLD[0]}"
    [ "$line" = held ]
    run -1 flock -n -x "$(mnt 2)/f" true
    run -1 flock -n -s "$(mnt 3)/f" true
    exec {HOLD[1]}>&-
    wait "$HOLD_PID"
    run -0 flock -n -x "$(mnt 2)/f" true

    coproc SHARED { flock -s "$(mnt 1)/f" sh -c 'echo held; cat >/dev/null'; }
    read -r line <&"${SHARED[0]}"
    run -0 flock -n -s "$(mnt 2)/f" true
    run -1 flock -n -x "$(mnt 3)/f" true
    exec {SHARED[1]}>&-
    wait "$SHARED_PID"
}

@test "a waiter on node 2 is granted when the holder on node 1 closes" {
    locks_cluster_start
    touch "$(mnt 1)/f"
    coproc HOLD { flock -x "$(mnt 1)/f" sh -c 'echo held; cat >/dev/null; echo closing >>"$1"' \
        sh "$D/order"; }
    read -r line <&"${HOLD[0]}"
    flock -x "$(mnt 2)/f" sh -c 'echo granted >>"$1"' sh "$D/order" &
    local waiter=$!
    run -1 flock -n -x "$(mnt 3)/f" true
    kill -0 "$waiter"
    exec {HOLD[1]}>&-
    wait "$HOLD_PID"
    wait "$waiter"
    run cat "$D/order"
    assert_output "$(printf 'closing\ngranted')"
}

@test "an interrupted waiter gives up with EINTR and leaves the queue" {
    locks_cluster_start
    touch "$(mnt 1)/f"
    coproc HOLD { flock -x "$(mnt 1)/f" sh -c 'echo held; cat >/dev/null'; }
    read -r line <&"${HOLD[0]}"
    # flock -w interrupts its own wait with SIGALRM and reports the timeout (status 1).
    run -1 flock -x -w 1 "$(mnt 2)/f" true
    assert_output ""
    exec {HOLD[1]}>&-
    wait "$HOLD_PID"
    # The cancelled waiter is gone: a non-blocking request is not queued behind it.
    wait_for 10 flock -n -x "$(mnt 3)/f" true
    run -0 flock -n -x "$(mnt 2)/f" true
}

@test "kill -9 of the holder process releases its flock and its fcntl lock" {
    locks_cluster_start
    touch "$(mnt 1)/f"
    coproc HOLDF { python3 "$LOCKTOOL" flock "$(mnt 1)/f"; }
    read -r line <&"${HOLDF[0]}"
    [ "$line" = held ]
    run -1 flock -n -x "$(mnt 2)/f" true
    kill -9 "$HOLDF_PID"
    wait "$HOLDF_PID" || true
    wait_for 10 flock -n -x "$(mnt 2)/f" true

    coproc HOLD { python3 "$LOCKTOOL" hold "$(mnt 1)/f" w 0 100; }
    read -r line <&"${HOLD[0]}"
    [ "$line" = held ]
    run -0 python3 "$LOCKTOOL" getlk "$(mnt 2)/f" w 50 10
    assert_output "w 0 100 0"
    kill -9 "$HOLD_PID"
    wait "$HOLD_PID" || true
    wait_for 10 output_is "u 0 0 0" python3 "$LOCKTOOL" getlk "$(mnt 2)/f" w 0 0
}

@test "fcntl byte-range locks: F_GETLK across nodes, disjoint and overlapping counters" {
    locks_cluster_start
    head -c 64 /dev/zero >"$(mnt 1)/c"
    coproc HOLD { python3 "$LOCKTOOL" hold "$(mnt 1)/c" r 10 10; }
    read -r line <&"${HOLD[0]}"
    # A write lock over [15, 35) conflicts with the read lock on [10, 20); a read lock does
    # not, nor does a write lock on [20, 30).
    run -0 python3 "$LOCKTOOL" getlk "$(mnt 2)/c" w 15 20
    assert_output "r 10 10 0"
    # Nothing in the way: F_UNLCK, the rest of the request unchanged.
    run -0 python3 "$LOCKTOOL" getlk "$(mnt 2)/c" r 15 20
    assert_output "u 15 20 0"
    run -0 python3 "$LOCKTOOL" getlk "$(mnt 3)/c" w 20 10
    assert_output "u 20 10 0"
    exec {HOLD[1]}>&-
    wait "$HOLD_PID"

    # Disjoint: node I locks and counts in its own 16-byte slot. Overlapping: every node
    # counts in slot 3 under a range that overlaps the others' ([40, 56) for node 1, ...).
    local pids=()
    for i in 1 2 3; do
        python3 "$LOCKTOOL" count "$(mnt "$i")/c" $((i - 1)) $(((i - 1) * 16)) 16 10 &
        pids+=($!)
        python3 "$LOCKTOOL" count "$(mnt "$i")/c" 3 $((36 + 4 * i)) 16 10 &
        pids+=($!)
    done
    for p in "${pids[@]}"; do
        wait "$p"
    done
    for slot in 0 1 2 3; do
        local want=10
        [ "$slot" = 3 ] && want=30
        run -0 python3 -c 'import sys; f = open(sys.argv[1], "rb"); f.seek(int(sys.argv[2]) * 16); print(int(f.read(16)))' "$(mnt 2)/c" "$slot"
        assert_output "$want"
    done
}

@test "fencing tokens strictly increase across grants on different nodes" {
    locks_cluster_start
    touch "$(mnt 1)/f"
    run -1 python3 "$LOCKTOOL" token "$(mnt 1)/f"
    assert_output --partial "No data available"
    local last=0
    for round in 1 2 3; do
        for i in 1 2 3; do
            local t
            t=$(flock -x "$(mnt "$i")/f" python3 "$LOCKTOOL" token "$(mnt "$i")/f")
            [ "$t" -gt "$last" ]
            last=$t
        done
    done
}
