#!/usr/bin/env bats
# raftfs-ctl locks and sessions: the lock records and node sessions of a node's state machine,
# read over its control socket, as tables and as JSON (docs/ctl-protocol.md).

load helpers
bats_require_minimum_version 1.5.0

setup() {
    cluster_init 3
}

teardown() {
    teardown_fs
}

# The JSON of `raftfs-ctl locks --json` on node 2 (stdin) has exactly one lock, on inode $1:
# held by node 1, an exclusive flock with a fencing token.
one_flock_of_node1() {
    rctl 2 locks --json | python3 -c '
import json, sys
d = json.load(sys.stdin)
assert d["truncated"] is False, d
locks = d["locks"]
assert len(locks) == 1, locks
l = locks[0]
assert l["ino"] == int(sys.argv[1]), l
assert (l["node"], l["kind"], l["type"], l["state"]) == (1, "flock", "write", "held"), l
assert l["token"] > 0 and l["start"] == 0 and l["len"] == 0 and l["age_ms"] >= 0, l
' "$1"
}

no_locks() {
    rctl 2 locks --json | python3 -c '
import json, sys
d = json.load(sys.stdin)
assert d == {"truncated": False, "locks": []}, d
'
}

@test "locks and sessions on node 2 show a flock held on node 1, and nothing once it is gone" {
    locks_cluster_start
    touch "$(mnt 1)/f"
    local ino
    ino=$(stat -c %i "$(mnt 1)/f")
    run -0 no_locks

    coproc HOLD { flock -x "$(mnt 1)/f" sh -c 'echo held; cat >/dev/null'; }
    read -r line <&"${HOLD[0]}"
    [ "$line" = held ]
    # Node 2 shows the grant once it has applied it.
    wait_for 10 one_flock_of_node1 "$ino"
    run -0 rctl 2 locks
    [ "${#lines[@]}" -eq 2 ]
    [[ "${lines[0]}" == INODE*NODE*SESSION*PID*KIND*TYPE*START*LEN*TOKEN*AGE*STATE ]]
    read -r -a f <<<"${lines[1]}"
    [ "${f[0]}" = "$ino" ] && [ "${f[1]}" = 1 ] && [ "${f[4]}" = flock ]
    [ "${f[5]}" = write ] && [ "${f[6]}" = 0 ] && [ "${f[7]}" = eof ] && [ "${f[-1]}" = held ]

    run -0 rctl 2 sessions --json
    python3 -c '
import json, sys
d = json.loads(sys.argv[1])
s = d["sessions"]
assert d["truncated"] is False and len(s) == 3, d
assert sorted(e["node"] for e in s) == [1, 2, 3], s
assert all(e["state"] == "live" and e["ended"] is None and e["opened"].endswith("Z") for e in s), s
assert len({e["id"] for e in s}) == 3, s
' "$output"
    run -0 rctl 2 sessions
    [ "${#lines[@]}" -eq 5 ]
    [[ "${lines[1]}" == *" live "* ]]
    [[ "${lines[4]}" == "this node's lock session: "[0-9]*", open (confirmed contact began "* ]]

    exec {HOLD[1]}>&-
    wait "$HOLD_PID"
    wait_for 10 no_locks
    run -0 rctl 2 locks
    [ "${#lines[@]}" -eq 1 ]
}

@test "locks and sessions: usage errors and an absent daemon give the documented statuses" {
    run -2 "$RAFTFS_CTL" --socket "$D/none.ctl" locks --bogus
    [[ "$output" == *"unknown option --bogus"* ]]
    run -2 "$RAFTFS_CTL" --socket "$D/none.ctl" sessions extra
    [[ "$output" == *"too many arguments"* ]]
    run -3 "$RAFTFS_CTL" --socket "$D/none.ctl" locks --json
    run -3 "$RAFTFS_CTL" --socket "$D/none.ctl" sessions
}
