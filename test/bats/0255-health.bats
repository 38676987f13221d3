#!/usr/bin/env bats
# raftfs-ctl health, and the exit statuses of status and verify: against real daemons (a stopped
# peer, a lost quorum) and against a stand-in daemon that answers what a test needs (a storage
# error, a node outside the configuration, an apply that is stuck, digests that differ), which a
# real cluster cannot be made to show on demand.

load helpers
bats_require_minimum_version 1.5.0

setup() {
    cluster_init 3
}

teardown() {
    [ -n "${FAKE:-}" ] && kill "$FAKE" 2>/dev/null
    teardown_fs
}

# The stand-in daemon: answers STATUS, OWN_SESSION, READ_BARRIER and VERIFY on $D/fake.sock as
# MODE says (docs/ctl-protocol.md gives the layouts). Node 1 of members 1, 2, 3.
fake_start() {
    rm -f "$D/fake.sock"
    python3 - "$D/fake.sock" "$1" <<'PY' &
import socket, struct, sys
path, mode = sys.argv[1], sys.argv[2]
ETIMEDOUT, ESTORAGE = 2009, 2023  # RAFT_ETIMEDOUT, RAFT_ESTORAGE (raft/raft.h)

def frame(t, p):
    return struct.pack('<IBBHI', 0x4c544352, 1, t, 0, len(p)) + p

def text(b):
    return bytes([len(b)]) + b

def status():
    leader = 0 if mode == 'leaderless' else 2
    commit, applied = (20, 10) if mode == 'stuck' else (10, 10)
    p = struct.pack('<QBQQ', 1, 1, 3, leader) + text(b'127.0.0.1:7002' if leader else b'')
    p += struct.pack('<QQQQQQQI', commit, applied, commit, 0, 0, 1, 0,
                     ESTORAGE if mode == 'storage' else 0)
    peers = [2, 3] if mode == 'outsider' else [1, 2, 3]
    p += bytes([len(peers)])
    for i in peers:
        p += struct.pack('<QBBQQ', i, 1, 1, 0, 0) + text(b'127.0.0.1:700%d' % i)
    return frame(66, p)

def verify():
    nodes = [(1, 0, b'\xaa'), (2, 0, b'\xaa'), (3, 0, b'\xbb' if mode == 'differ' else b'\xaa')]
    if mode == 'silent':
        nodes[2] = (3, ETIMEDOUT, b'\0')
    p = struct.pack('<QB', 42, len(nodes))
    for i, st, d in nodes:
        p += struct.pack('<QI', i, st) + d * 32
    return frame(68, p)

def answer(t):
    if t == 1:
        return status()
    if t == 10:
        return frame(71, struct.pack('<BQQ', 2, 5, 0) + text(b''))
    if t == 6:
        return verify()
    if t == 11 and mode in ('noquorum', 'stuck'):
        return frame(64, struct.pack('<I', ETIMEDOUT) + text(b'the operation did not complete in time'))
    if t == 11:
        return frame(65, b'')
    return frame(64, struct.pack('<I', 0) + text(b'not in this stand-in'))

srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
srv.bind(path)
srv.listen(4)
while True:
    c, _ = srv.accept()
    h = c.recv(12, socket.MSG_WAITALL)
    if len(h) == 12:
        n = struct.unpack('<I', h[8:12])[0]
        if n:
            c.recv(n, socket.MSG_WAITALL)
        c.sendall(answer(h[5]))
    c.close()
PY
    FAKE=$!
    wait_for 10 test -S "$D/fake.sock"
}

fake_stop() {
    kill "$FAKE"
    wait "$FAKE" 2>/dev/null || true
    FAKE=
}

# health_field I FILTER: a field of node I's health --json, whatever the exit status.
health_field() { rctl "$1" health --json | jq -r "$2"; }
health_is() { [ "$(health_field "$1" "$2")" = "$3" ]; }

@test "health: every node of a cluster is healthy, and stays so with a stopped peer" {
    fsd_cluster_start
    for i in 1 2 3; do
        wait_for 15 rctl "$i" health
        run rctl "$i" health
        assert_success
        assert_line "quorum:        yes"
        assert_line "healthy"
        run rctl "$i" health --json
        assert_success
        [ "$(jq -c '[.healthy, .member, .quorum, .applying, .exit_status]' <<<"$output")" = \
            "[true,true,true,true,0]" ]
        [ "$(jq -r .suffrage <<<"$output")" = voter ]
    done
    l=$(rctl 1 status --json | jq .leader)
    f=$((l % 3 + 1))
    s=$((f % 3 + 1))
    fsd_stop "$f"
    # The two that remain are a quorum: healthy, and they show the member they lost.
    for i in "$l" "$s"; do
        run rctl "$i" health
        assert_success
        wait_for 15 health_is "$i" ".disconnected | map(tostring) | join(\",\")" "$f"
        run rctl "$i" health
        assert_line "disconnected:  $f"
    done
    run -3 rctl "$f" health
}

@test "health without a quorum: two of three stopped" {
    fsd_cluster_start
    wait_for 15 rctl 1 health
    l=$(rctl 1 status --json | jq .leader)
    s=$((l % 3 + 1))
    for i in 1 2 3; do
        [ "$i" = "$s" ] || fsd_stop "$i"
    done
    # At once the survivor may still name the old leader (no quorum confirmed: 9) or already
    # know none (8); never healthy.
    run rctl "$s" health
    [ "$status" = 8 ] || [ "$status" = 9 ]
    assert_output --partial "UNHEALTHY: "
    wait_for 15 jq_is_leader_none "$s"
    run -8 rctl "$s" health
    assert_line "leader:        none known"
    assert_line "UNHEALTHY: no leader is known"
    run -8 rctl "$s" health --json
    [ "$(jq -c '[.healthy, .exit_status, .reason, .quorum]' <<<"$output")" = \
        '[false,8,"no leader is known",null]' ]
    # A quorum again: healthy again.
    fsd_start "$l" $PEERS
    wait_for 20 rctl "$s" health
}

jq_is_leader_none() { [ "$(rctl "$1" status --json | jq .leader)" = 0 ]; }

@test "health, status and verify: each failure has its exit status" {
    fake_start healthy
    s=(--socket "$D/fake.sock")
    run "$RAFTFS_CTL" "${s[@]}" health
    assert_success
    fake_stop
    fake_start storage
    run -5 "$RAFTFS_CTL" "${s[@]}" health
    assert_line "storage:       the log store failed; the node stopped taking part until it is restarted"
    run -5 "$RAFTFS_CTL" "${s[@]}" status
    assert_line --partial "error:          the log store failed"
    run -5 "$RAFTFS_CTL" "${s[@]}" status --json
    [ "$(jq -r .error <<<"$output")" != null ]
    fake_stop
    fake_start outsider
    run -7 "$RAFTFS_CTL" "${s[@]}" health
    assert_line "member:        no"
    fake_stop
    fake_start leaderless
    run -8 "$RAFTFS_CTL" "${s[@]}" health
    fake_stop
    fake_start noquorum
    run -9 "$RAFTFS_CTL" "${s[@]}" health --json
    [ "$(jq -c '[.quorum, .applying, .reason]' <<<"$output")" = \
        '[false,true,"the leader did not confirm a quorum in time"]' ]
    fake_stop
    fake_start stuck
    run -10 "$RAFTFS_CTL" "${s[@]}" health
    assert_line "applying:      no (applied 10 of 20 committed)"
    fake_stop
    # verify: digests that differ (1) are not a member that did not answer (6).
    fake_start differ
    run -1 "$RAFTFS_CTL" "${s[@]}" verify
    assert_output --partial "MISMATCH: the digests differ (3 of 3 nodes answered)"
    run -1 "$RAFTFS_CTL" "${s[@]}" verify --json
    [ "$(jq -c '[.equal, .differ, .answered]' <<<"$output")" = '[false,true,3]' ]
    fake_stop
    fake_start silent
    run -6 "$RAFTFS_CTL" "${s[@]}" verify --json
    [ "$(jq -c '[.equal, .differ, .answered]' <<<"$output")" = '[false,false,2]' ]
    fake_stop
    fake_start healthy
    run "$RAFTFS_CTL" "${s[@]}" verify
    assert_success
    assert_output --partial "all 3 digests are equal"
}
