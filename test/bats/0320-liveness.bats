#!/usr/bin/env bats
# Lock session liveness end to end (docs/fs.md, "Session liveness"): the leader ends the session
# of a node it has not heard from for the session timeout and hands its locks on after the
# lock-delay, never before; a node cut off from the quorum gives its locks up itself, before
# the others can take them, and opens a new session once it is back.

load helpers
bats_require_minimum_version 1.5.0

LOCKTOOL="$BATS_TEST_DIRNAME/locktool.py"
TIMEOUT_MS=2000 # --session-timeout 2
DELAY_MS=1000   # --lock-delay 1

setup() {
    cluster_init 3
}

teardown() {
    for i in 1 2 3; do
        rctl "$i" faults >/dev/null 2>&1 || true
    done
    # A holder left by a failed test lets go, so that a dead mount can be unmounted.
    [ -z "${HOLD[1]:-}" ] || release_f 2>/dev/null
    [ ! -p "$D/release-g" ] || timeout 5 sh -c 'echo >"$1"' sh "$D/release-g" || true
    teardown_fs
}

now_ms() { echo $(($(date +%s%N) / 1000000)); }

# A node of 1..3 other than the ones given.
other_than() {
    for i in 1 2 3; do
        case " $* " in *" $i "*) ;; *) echo "$i" && return 0 ;; esac
    done
    return 1
}

# Node $1's state machine lists a waiting lock.
# hold_f I: a process on node I takes flock -x on f and holds it (coprocess HOLD) until release_f.
hold_f() {
    local line
    coproc HOLD { flock -x "$(mnt "$1")/f" sh -c 'echo held; cat >/dev/null'; }
    read -r line <&"${HOLD[0]}"
    [ "$line" = held ]
}

release_f() {
    exec {HOLD[1]}>&-
    wait "$HOLD_PID" || true
}

# wait_f I L: a process on node I asks for flock -x on f (its PID in WAITER) and writes the time
# it gets it to $D/granted; returns once node L lists it as waiting.
wait_f() {
    flock -x "$(mnt "$1")/f" sh -c 'date +%s%N >"$1"' sh "$D/granted" &
    WAITER=$!
    wait_for 10 has_waiter "$2"
}

has_waiter() { rctl "$1" locks | grep -q ' waiting$'; }

# The realtime (ms) of the first log line of node $1 matching $2 (raftfsd stamps its lines in
# ISO 8601, UTC, with milliseconds).
log_ms() {
    local t
    t=$(grep -m1 "$2" "$D/n$1.log" | cut -d' ' -f1) || return 1
    [ -n "$t" ] && date -d "$t" +%s%3N
}

sessions_opened() { grep -c "lock session [0-9]* opened" "$D/n$1.log"; }
# For wait_for (which runs its command again each time): node I has opened at least N sessions.
sessions_opened_at_least() { [ "$(sessions_opened "$1")" -ge "$2" ]; }

# Wait for node $1's dead mount to go (its daemon was killed).
clear_dead_mount() {
    wait_for 10 bash -c "! grep -q ' $(mnt "$1") ' /proc/mounts || fusermount3 -u '$(mnt "$1")'"
}

@test "kill -9 of the holder's raftfsd hands its lock on after session-timeout + lock-delay, not before" {
    locks_cluster_start --session-timeout 2 --lock-delay 1
    local l h w
    l=$(fsd_leader)
    h=$(other_than "$l")
    w=$(other_than "$l" "$h")
    touch "$(mnt "$h")/f"
    hold_f "$h"
    wait_f "$w" "$l"

    # The lower bound holds by construction: the change made through node h after t0 is
    # forwarded to the leader, so the leader hears h after t0, and it ends h's session no
    # sooner than session-timeout after the last frame it heard, then waits the lock-delay.
    local t0 tk
    t0=$(now_ms)
    touch "$(mnt "$h")/alive"
    kill -9 "$(node_pid "$h")"
    tk=$(now_ms)
    wait "$(node_pid "$h")" 2>/dev/null || true

    wait_for 20 test -s "$D/granted"
    wait "$WAITER"
    local granted=$(($(cat "$D/granted") / 1000000))
    echo "granted $((granted - tk)) ms after the kill" >&3
    [ $((granted - t0)) -ge $((TIMEOUT_MS + DELAY_MS)) ]
    # The upper bound is the same wait plus the leader's 100 ms passes and two commits; a loaded
    # machine gets 4 s for them.
    [ $((granted - tk)) -lt $((TIMEOUT_MS + DELAY_MS + 4000)) ]
    grep -q "of node $h: silent for the session timeout (2000 ms); ending it with a lock-delay of 1000 ms" \
        "$D/n$l.log"
    grep -q "of node $h: its lock-delay is over; releasing its locks" "$D/n$l.log"
    # The survivors kept their sessions.
    run -0 rctl "$l" sessions --json
    python3 -c '
import json, sys
d = json.loads(sys.argv[1])
assert sorted(e["node"] for e in d["sessions"]) == sorted(map(int, sys.argv[2:])), d
assert all(e["state"] == "live" for e in d["sessions"]), d
assert d["own"]["state"] == "open", d
' "$output" "$l" "$w"

    release_f
    clear_dead_mount "$h"
}

@test "a new leader gives every node a full session timeout from its election" {
    # Long enough for the followers to keep their sessions through the election (up to 2 s
    # before they even notice the leader is gone).
    locks_cluster_start --session-timeout 5 --lock-delay 1
    local l a b
    l=$(fsd_leader)
    a=$(other_than "$l")
    b=$(other_than "$l" "$a")
    touch "$(mnt "$a")/f"
    # The leader holds the lock: killing it also ends its leadership.
    hold_f "$l"
    wait_f "$a" "$a"

    local tk
    tk=$(now_ms)
    kill -9 "$(node_pid "$l")"
    wait "$(node_pid "$l")" 2>/dev/null || true
    wait_for 20 test -s "$D/granted"
    wait "$WAITER"
    local granted=$(($(cat "$D/granted") / 1000000))
    echo "granted $((granted - tk)) ms after the leader's kill" >&3
    # The new leader was elected after the kill: its grace period alone keeps the lock for
    # session-timeout + lock-delay from the kill.
    [ $((granted - tk)) -ge $((5000 + DELAY_MS)) ]
    # ... and it did not end the session of the follower it had not heard from before.
    local n
    for n in "$a" "$b"; do # not i: bats' run uses it
        run -1 grep -q "lock session [0-9]* lost" "$D/n$n.log"
        run -0 rctl "$n" sessions --json
        python3 -c '
import json, sys
d = json.loads(sys.argv[1])
assert sorted(e["node"] for e in d["sessions"]) == sorted(map(int, sys.argv[2:])), d
assert all(e["state"] == "live" for e in d["sessions"]), d
' "$output" "$a" "$b"
    done
    [ "$(sessions_opened "$a")" = 1 ] && [ "$(sessions_opened "$b")" = 1 ]

    release_f
    clear_dead_mount "$l"
}

@test "a partitioned holder gives its locks up before the others take them, and locks again once healed" {
    locks_cluster_start --session-timeout 2 --lock-delay 1
    local l h o
    l=$(fsd_leader)
    h=$(other_than "$l")
    o=$(other_than "$l" "$h")
    touch "$(mnt 1)/f" "$(mnt 1)/g"
    wait_for 10 test -e "$(mnt "$h")/g"
    # h holds f; o holds g and h waits for it.
    hold_f "$h"
    mkfifo "$D/release-g"
    flock -x "$(mnt "$o")/g" sh -c 'echo held >"$1"; read -r _ <"$2"' sh "$D/g-held" \
        "$D/release-g" &
    local holdg=$!
    wait_for 10 test -s "$D/g-held"
    flock -x "$(mnt "$h")/g" true 2>"$D/waiter.err" &
    local waiter=$!
    wait_for 10 has_waiter "$h"
    run -0 python3 "$LOCKTOOL" token "$(mnt "$h")/f"

    # Cut h off from both others, on every side.
    rctl "$h" faults "drop:$l" "drop:$o"
    rctl "$l" faults "drop:$h"
    rctl "$o" faults "drop:$h"

    # h's waiter fails, new requests fail, the fencing token is refused, and ctl says why.
    local st=0
    wait "$waiter" || st=$?
    echo "waiter: status $st, $(cat "$D/waiter.err")" >&3
    [ "$st" -ne 0 ] && [ "$st" -lt 128 ] # an error exit, not a signal
    grep -q "No locks available" "$D/waiter.err"
    grep -q "lock session [0-9]* lost: no confirmed contact with a leader" "$D/n$h.log"
    run flock -n -x "$(mnt "$h")/f" true
    [ "$status" -ne 0 ] && [ "$status" -lt 128 ]
    assert_output --partial "No locks available"
    run -1 python3 "$LOCKTOOL" token "$(mnt "$h")/f"
    assert_output --partial "No locks available"
    run -0 rctl "$h" sessions --json
    local sid
    sid=$(python3 -c '
import json, sys
own = json.loads(sys.argv[1])["own"]
assert own["state"] == "lost" and own["session"] > 0 and own["lost_ms"] >= 0, own
assert "no confirmed contact" in own["reason"], own
print(own["session"])
' "$output")
    run -0 rctl "$h" status
    assert_output --partial "LOST"
    run -0 rctl "$h" locks
    assert_output --partial "held, lost here"

    # The majority takes f once the leader has ended h's session: strictly after h gave it up.
    flock -x "$(mnt "$o")/f" sh -c 'date +%s%N >"$1"' sh "$D/granted"
    local granted lost
    granted=$(($(cat "$D/granted") / 1000000))
    lost=$(log_ms "$h" "lock session $sid lost")
    echo "node $h gave its session up $((granted - lost)) ms before node $o got the lock" >&3
    [ "$lost" -lt "$granted" ]
    grep -q "lock session $sid of node $h: its lock-delay is over" "$D/n$l.log"

    # Healed: h opens a new session and takes locks again.
    for i in 1 2 3; do
        rctl "$i" faults
    done
    wait_for 20 sessions_opened_at_least "$h" 2
    echo >"$D/release-g"
    wait "$holdg"
    wait_for 10 flock -n -x "$(mnt "$h")/g" true
    # The token is served again: nothing is held on g now.
    run -1 python3 "$LOCKTOOL" token "$(mnt "$h")/g"
    assert_output --partial "No data available"
    run -0 rctl "$h" sessions --json
    python3 -c '
import json, sys
own = json.loads(sys.argv[1])["own"]
assert own["state"] == "open" and own["reason"] is None, own
' "$output"

    release_f
}

@test "session-timeout and lock-delay: bad values are refused with the option's name" {
    run -2 "$RAFTFSD" --session-timeout 0 --id 1 /nonexistent
    assert_output --partial "--session-timeout 0: out of range (1 to 3600)"
    run -2 "$RAFTFSD" --lock-delay 1.5 --id 1 /nonexistent
    assert_output --partial "--lock-delay 1.5: not a decimal number"
    run -2 "$RAFTFS_CTL" --socket "$D/none.ctl" faults --bogus
    assert_output --partial "unknown option --bogus"
    run -3 "$RAFTFS_CTL" --socket "$D/none.ctl" faults drop:2
}

@test "a holder cut off and healed before the leader ends its session: its lock goes on only after the lock-delay, and its writes fail" {
    locks_cluster_start --session-timeout 4 --lock-delay 3
    local l h o
    l=$(fsd_leader)
    h=$(other_than "$l")
    o=$(other_than "$l" "$h")
    echo 0 >"$(mnt 1)/f"
    wait_for 10 test -e "$(mnt "$h")/f"
    mkfifo "$D/go"
    # The holder on h: flock, a write that commits, then (once told) a write that must not.
    coproc HOLDER {
        python3 - "$(mnt "$h")/f" "$D/go" <<'PY'
import errno, fcntl, os, sys
fd = os.open(sys.argv[1], os.O_RDWR)
fcntl.flock(fd, fcntl.LOCK_EX)
os.pwrite(fd, b"1\n", 0)
os.fsync(fd)
print("held", flush=True)
open(sys.argv[2]).read()
try:
    os.pwrite(fd, b"2\n", 0)
    os.fsync(fd)
    print("write after the loss: ok", flush=True)
except OSError as e:
    print("write after the loss:", errno.errorcode[e.errno], flush=True)
PY
    }
    local line
    read -r line <&"${HOLDER[0]}"
    [ "$line" = held ]
    wait_f "$o" "$o"
    # Cut h off until it gives its session up (3/4 of the timeout), then heal before the
    # leader ends the session (the full timeout).
    rctl "$h" faults "drop:$l" "drop:$o"
    rctl "$l" faults "drop:$h"
    rctl "$o" faults "drop:$h"
    wait_for 10 grep -q "lock session [0-9]* lost" "$D/n$h.log"
    for i in 1 2 3; do rctl "$i" faults; done
    wait_for 20 sessions_opened_at_least "$h" 2
    wait "$WAITER"
    local granted renewed
    granted=$(($(cat "$D/granted") / 1000000))
    renewed=$(grep "lock session [0-9]* opened" "$D/n$h.log" | sed -n 2p | cut -d' ' -f1)
    renewed=$(date -d "$renewed" +%s%3N)
    echo "node $o got the lock $((granted - renewed)) ms after node $h renewed its session" >&3
    [ $((granted - renewed)) -ge 2500 ] # the 3 s lock-delay, less the clocks' slack
    echo >"$D/go"
    read -r line <&"${HOLDER[0]}"
    assert_equal "$line" "write after the loss: EIO"
    # What the next holder reads is what the old holder committed while it held the lock.
    run cat "$(mnt "$o")/f"
    assert_output 1
}
