# Helpers for the end-to-end tests: clusters of raftnode processes on 127.0.0.1 with real TLS,
# each in the test's own temporary directory, always stopped in teardown.

load /usr/lib/bats/bats-support/load
load /usr/lib/bats/bats-assert/load

BUILD=${BUILD:-build}
RAFTNODE=$BATS_TEST_DIRNAME/../../$BUILD/test/raftnode
RAFTFS_CTL=$BATS_TEST_DIRNAME/../../$BUILD/raftfs-ctl
ELECTION_TICKS=${ELECTION_TICKS:-30} # 300 ms at 10 ms a tick

# A port range of our own for this test: 10 ports per node.
# Below Linux's ephemeral range (32768 and up): a listen port there can already be the local
# port of another node's outbound connection, and the node then fails to bind.
pick_ports() {
    PORT_BASE=$((20000 + (RANDOM % 1200) * 10))
}

# cluster_init N: certificates for nodes 1..N+2 (spares for joins), peer list of the first N.
cluster_init() {
    local n=$1
    D=$BATS_TEST_TMPDIR
    pick_ports
    "$RAFTFS_CTL" tls init "$D/tls" --force >/dev/null
    for i in $(seq 1 $((n + 2))); do
        "$RAFTFS_CTL" tls issue "$D/tls" "$i" --ip 127.0.0.1 --force >/dev/null
    done
    PEERS=""
    for i in $(seq 1 "$n"); do
        PEERS="$PEERS --peer $i=$(addr "$i")"
    done
    NODES=$n
}

addr() { echo "127.0.0.1:$((PORT_BASE + $1))"; }

# node_start I [ARGS...]: start node I in the background (its log in $D/nI.log).
node_start() {
    local i=$1
    shift
    "$RAFTNODE" --id "$i" --data "$D/n$i" --listen "$(addr "$i")" --tls-dir "$D/tls" \
        --socket "$D/n$i.sock" --election-ticks "$ELECTION_TICKS" "$@" \
        >>"$D/n$i.log" 2>&1 &
    echo $! >"$D/n$i.pid"
    wait_for 10 test -S "$D/n$i.sock"
}

# cluster_start [ARGS...]: start nodes 1..NODES, bootstrapped together.
cluster_start() {
    for i in $(seq 1 "$NODES"); do
        node_start "$i" $PEERS --bootstrap "$@"
    done
}

node_pid() { cat "$D/n$1.pid"; }

node_kill() {
    kill -9 "$(node_pid "$1")" 2>/dev/null || true
    wait "$(node_pid "$1")" 2>/dev/null || true
    rm -f "$D/n$1.sock"
}

# node_stop I: SIGTERM, and the node must be gone within 10 s.
node_stop() {
    local pid
    pid=$(node_pid "$1")
    kill "$pid" 2>/dev/null || return 0
    for _ in $(seq 1 100); do
        kill -0 "$pid" 2>/dev/null || return 0
        sleep 0.1
    done
    echo "node $1 did not stop within 10 s" >&2
    return 1
}

ctl() {
    local i=$1
    shift
    "$RAFTNODE" ctl "$D/n$i.sock" "$@"
}

# field I NAME: a field of node I's status.
field() { ctl "$1" status | tr ' ' '\n' | sed -n "s/^$2=//p"; }

# wait_for SECONDS COMMAND...: poll until COMMAND succeeds; fail after SECONDS.
wait_for() {
    local limit=$1
    shift
    local end=$((SECONDS + limit))
    while ! "$@" >/dev/null 2>&1; do
        if [ "$SECONDS" -ge "$end" ]; then
            echo "timed out after ${limit}s waiting for: $*" >&2
            return 1
        fi
        sleep 0.05
    done
}

# The leader as seen by a majority of the live nodes given, or nothing.
has_leader() {
    local l
    for i in "$@"; do
        l=$(field "$i" leader)
        [ -n "$l" ] && [ "$l" != 0 ] && [ "$(field "$l" role 2>/dev/null)" = leader ] &&
            echo "$l" && return 0
    done
    return 1
}

leader() {
    local ids=${*:-$(seq 1 "$NODES")}
    # shellcheck disable=SC2086
    wait_for 10 has_leader $ids
    # shellcheck disable=SC2086
    has_leader $ids
}

# same_digest I J...: every node given reports the same applied index and digest.
same_digest() {
    local first="" d
    for i in "$@"; do
        d=$(ctl "$i" digest) || return 1
        [ -z "$first" ] && first=$d
        [ "$d" = "$first" ] || return 1
    done
}

# propose_many NODE PREFIX COUNT: propose PREFIX-1..COUNT on NODE, for 20 s at most; the names
# acknowledged go to $D/acked (one per line). Failures are allowed (the cluster may be in an
# election or a leadership transfer).
propose_many() {
    local end=$((SECONDS + 20))
    for k in $(seq 1 "$3"); do
        [ "$SECONDS" -lt "$end" ] || break
        if ctl "$1" propose "$2-$k" >/dev/null 2>&1; then
            echo "$2-$k" >>"$D/acked"
        fi
    done
}

# output_is WANT COMMAND...: the command prints WANT (its stdout and stderr), for wait_for: a
# node's view of a change made on another may lag by the replication delay.
output_is() {
    local want=$1
    shift
    [ "$("$@" 2>&1)" = "$want" ]
}

# blocked_in PID SYSCALL...: PID is asleep inside one of the system calls (numbers, x86-64).
blocked_in() {
    local s
    s=$(cut -d' ' -f1 "/proc/$1/syscall" 2>/dev/null) || return 1
    shift
    for n in "$@"; do
        [ "$s" = "$n" ] && return 0
    done
    return 1
}

# Every acknowledged name is on every node given.
acked_everywhere() {
    [ -s "$D/acked" ] || return 1
    while read -r name; do
        for i in "$@"; do
            ctl "$i" lookup "$name" >/dev/null || {
                echo "acknowledged $name missing on node $i" >&2
                return 1
            }
        done
    done <"$D/acked"
}

teardown_cluster() {
    for f in "$D"/n*.pid; do
        [ -e "$f" ] || continue
        kill -9 "$(cat "$f")" 2>/dev/null || true
    done
    # A sanitizer report in any node's log fails the test, even when the node kept going.
    if grep -l "ERROR: AddressSanitizer\|ERROR: LeakSanitizer\|runtime error:\|WARNING: ThreadSanitizer" \
        "$D"/n*.log >/dev/null 2>&1; then
        grep -h -A20 "ERROR: AddressSanitizer\|ERROR: LeakSanitizer\|runtime error:\|WARNING: ThreadSanitizer" \
            "$D"/n*.log | head -n 60 >&3
        return 1
    fi
    if [ "$BATS_TEST_COMPLETED" != 1 ]; then
        for f in "$D"/n*.log; do
            [ -e "$f" ] || continue
            echo "--- $f (last 30 lines)" >&3
            tail -n 30 "$f" >&3
        done
    fi
}

# Conditions for wait_for (evaluated at every poll).
field_is() { [ "$(field "$1" "$2")" = "$3" ]; }
field_gt() { [ "$(field "$1" "$2")" -gt "$3" ]; }

# --- raftfsd: FUSE daemons with a mount point each ($D/mI) ---------------------------------------

RAFTFSD=$BATS_TEST_DIRNAME/../../$BUILD/raftfsd
OP_TIMEOUT=${OP_TIMEOUT:-2}

mnt() { echo "$D/m$1"; }
ctl_sock() { echo "$D/n$1.ctl"; }

# rctl I ARGS...: raftfs-ctl against raftfsd I.
rctl() {
    local i=$1
    shift
    "$RAFTFS_CTL" --socket "$(ctl_sock "$i")" "$@"
}

is_mounted() { grep -q " $(mnt "$1") fuse.raftfs " /proc/mounts; }

# fsd_start I [ARGS...]: start raftfsd I (log in $D/nI.log, pid in $D/nI.pid, control socket
# $D/nI.ctl) and wait for its mount.
fsd_start() {
    local i=$1
    shift
    # A dead mount of an earlier raftfsd I is no directory to mkdir (ENOTCONN): raftfsd clears it.
    [ -d "$(mnt "$i")" ] || grep -q " $(mnt "$i") " /proc/mounts || mkdir -p "$(mnt "$i")"
    "$RAFTFSD" --id "$i" --data-dir "$D/n$i" --listen "$(addr "$i")" --cluster-id raftfs-test \
        --tls-ca "$D/tls/ca.crt" --tls-cert "$D/tls/$i.crt" --tls-key "$D/tls/$i.key" \
        --op-timeout "$OP_TIMEOUT" --ctl-socket "$(ctl_sock "$i")" "$@" "$(mnt "$i")" \
        >>"$D/n$i.log" 2>&1 &
    echo $! >"$D/n$i.pid"
    wait_for 10 is_mounted "$i"
}

# fsd_cluster_start [ARGS...]: raftfsd 1..NODES, bootstrapped together, with a leader.
fsd_cluster_start() {
    for i in $(seq 1 "$NODES"); do
        # shellcheck disable=SC2086
        fsd_start "$i" $PEERS --bootstrap "$@"
    done
    wait_for 15 fs_writable 1
}

# The cluster takes a change through mount I.
fs_writable() { touch "$(mnt "$1")/.probe-$1"; }

# fsd_stop I: SIGTERM; the daemon must unmount and exit within 10 s.
fsd_stop() {
    local pid
    pid=$(node_pid "$1")
    kill "$pid" 2>/dev/null || return 0
    for _ in $(seq 1 100); do
        if ! kill -0 "$pid" 2>/dev/null; then
            is_mounted "$1" && { echo "node $1 exited but left its mount" >&2; return 1; }
            return 0
        fi
        sleep 0.1
    done
    echo "node $1 did not stop within 10 s" >&2
    return 1
}

# Stop every daemon of this test (SIGTERM: it unmounts), then unmount whatever is left (a
# crashed daemon's mount) before the daemons are killed and the directory removed.
teardown_fs() {
    for f in "$D"/n*.pid; do
        [ -e "$f" ] || continue
        local i=${f##*/n}
        fsd_stop "${i%.pid}" || true
    done
    for m in "$D"/m*; do
        # A dead daemon's mount is no directory to test with -d (ENOTCONN): ask /proc/mounts.
        if grep -q " $m " /proc/mounts; then
            echo "teardown: $m still mounted; unmounting" >&3
            fusermount3 -u "$m" 2>/dev/null || umount -l "$m" 2>/dev/null ||
                echo "teardown: cannot unmount $m" >&3
        fi
    done
    teardown_cluster
}

# fsd_leader_of I: the leader node I last logged ("... in term T, leader L"), or nothing.
fsd_leader_of() {
    grep -ho 'in term [0-9]*, leader [0-9]*' "$D/n$1.log" 2>/dev/null | tail -n 1 |
        sed -n 's/.*leader \([1-9][0-9]*\)$/\1/p'
}

# fsd_leader I...: the leader that nodes I... (default: all) agree on, waited for, read from the
# role changes in the nodes' logs (which also serves daemons started without a control socket).
fsd_has_leader() {
    local l="" x
    for i in "$@"; do
        x=$(fsd_leader_of "$i")
        [ -n "$x" ] || return 1
        [ -z "$l" ] || [ "$l" = "$x" ] || return 1
        l=$x
    done
    echo "$l"
}

# The answer is the reading that succeeded: a second reading could fail under load, with a slow
# node still campaigning.
fsd_leader() {
    local ids=${*:-$(seq 1 "$NODES")}
    # shellcheck disable=SC2086
    wait_for 20 leader_into "$D/leader" $ids
    cat "$D/leader"
}

# leader_into FILE I...: fsd_has_leader I..., its answer written to FILE (for wait_for).
leader_into() {
    local f=$1 l
    shift
    l=$(fsd_has_leader "$@") && echo "$l" >"$f"
}

# Node I's lock session is open (lock requests before it fail with ENOLCK).
has_session() { grep -q "lock session [0-9]* opened" "$D/n$1.log"; }

# fsd_cluster_start [ARGS...], then wait until every node holds its lock session.
locks_cluster_start() {
    fsd_cluster_start "$@"
    for i in 1 2 3; do
        wait_for 15 has_session "$i"
    done
}
