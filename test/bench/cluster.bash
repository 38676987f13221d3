# Sourced by the FUSE benchmarks (run-smallfile, run-locks): a local 3-node raftfsd cluster
# (mutual TLS, durable commits), libfuse's passthrough_ll example and a local directory to compare
# with, the leader found with raftfs-ctl status, and the clean-up that stops and unmounts all of
# it at exit, also after a failure or Ctrl-C. Sourcing defines functions and settings only;
# bench_setup starts nothing but the clean-up trap.
#
# Environment (read when sourced):
#   BENCH_SECONDS=3        length of each timed phase
#   BENCH_DIR=/var/tmp     where the data lives (a real disk: /tmp may be tmpfs, which never syncs)
#   BENCH_RAFTFSD_ARGS=""  more raftfsd options for every node, e.g. "--consistency local" or
#                          "--lease-reads" (the tables then measure that configuration)

SECONDS_PER_PHASE=${BENCH_SECONDS:-3}
DATA_PARENT=${BENCH_DIR:-/var/tmp}
NODES=3
WAIT=20 # seconds any start-up or shutdown step may take
BENCH_NAME=${0##*/}

FSD_PIDS=()
PT_PID=
HELPER_PIDS=() # anything else the script starts (perf): stopped first at exit

die() {
    echo "$BENCH_NAME: $*" >&2
    local f
    for f in "${D:-/nonexistent}"/*.log; do
        [ -s "$f" ] || continue
        echo "--- $f (last 10 lines)" >&2
        tail -n 10 "$f" >&2
    done
    exit 1
}

is_mounted() { grep -q " $1 fuse" /proc/mounts; }

# stop PID: SIGTERM, wait up to WAIT seconds for the process to exit, then SIGKILL.
stop() {
    local pid=$1 i
    kill "$pid" 2>/dev/null || return 0
    for ((i = 0; i < WAIT * 10; i++)); do
        kill -0 "$pid" 2>/dev/null || { wait "$pid" 2>/dev/null; return 0; }
        sleep 0.1
    done
    echo "$BENCH_NAME: process $pid did not stop within ${WAIT}s; killing it" >&2
    kill -9 "$pid" 2>/dev/null
    wait "$pid" 2>/dev/null
}

cleanup() {
    trap '' INT TERM
    local pid m
    for pid in "${HELPER_PIDS[@]}"; do stop "$pid"; done
    for pid in $PT_PID "${FSD_PIDS[@]}"; do stop "$pid"; done
    [ -n "${D:-}" ] || return 0
    # A daemon that died leaves its mount behind.
    for m in "$D"/m* "$D/pt-mnt"; do
        if [ ! -d "$m" ] || ! is_mounted "$m"; then continue; fi
        fusermount3 -u "$m" 2>/dev/null || umount -l "$m" 2>/dev/null ||
            echo "$BENCH_NAME: cannot unmount $m" >&2
    done
    rm -rf --one-file-system "$D"
}

# bench_setup BUILD TARGET: check the programs (that make TARGET builds), root and
# BENCH_SECONDS; create the data directory D under BENCH_DIR and arm the clean-up.
bench_setup() {
    B=$(cd "$1" 2>/dev/null && pwd) || die "build folder $1 not found (run make first)"
    RAFTFSD=$B/raftfsd
    CTL=$B/raftfs-ctl
    FSLOAD=$B/test/bench/fsload
    PASSTHROUGH=$B/test/bench/passthrough_ll
    local p
    for p in "$RAFTFSD" "$CTL" "$FSLOAD" "$PASSTHROUGH"; do
        [ -x "$p" ] || die "$p is missing (make $2 builds it)"
    done
    [ "$(id -u)" -eq 0 ] || die "must run as root (FUSE mounts with allow_other)"
    case $SECONDS_PER_PHASE in
    '' | *[!0-9.]* | *.*.*) die "BENCH_SECONDS=$SECONDS_PER_PHASE: not a number" ;;
    esac
    D=$(mktemp -d "$DATA_PARENT/raftfs-bench-XXXXXX") ||
        die "cannot create a directory in BENCH_DIR=$DATA_PARENT"
    trap cleanup EXIT
    trap 'echo "$BENCH_NAME: interrupted" >&2; exit 130' INT
    trap 'exit 143' TERM
}

# wait_for SECONDS WHAT COMMAND...: poll COMMAND until it succeeds; fail naming WHAT.
wait_for() {
    local limit=$1 what=$2
    local end=$((SECONDS + limit))
    shift 2
    until "$@" >/dev/null 2>&1; do
        [ "$SECONDS" -lt "$end" ] || die "timed out after $limit s waiting for $what"
        sleep 0.05
    done
}

# --- the cluster ------------------------------------------------------------------------------

# Ports like the end-to-end tests' (below the ephemeral range), checked to be free.
pick_ports() {
    local i busy
    for _ in 1 2 3 4 5 6 7 8 9 10; do
        PORT_BASE=$((20000 + (RANDOM % 1200) * 10))
        busy=0
        for i in $(seq 1 $NODES); do
            [ -n "$(ss -Htan "sport = :$((PORT_BASE + i))")" ] && busy=1
        done
        [ $busy -eq 0 ] && return 0
    done
    die "no free ports found"
}

fs_writable() { touch "$D/m1/.probe" && rm "$D/m1/.probe"; }

# "TERM ROLE ID" of every node that answers raftfs-ctl status.
node_terms() {
    local i
    for i in $(seq 1 $NODES); do
        "$CTL" --socket "$D/n$i.ctl" status --json 2>/dev/null | jq -r '"\(.term) \(.role) \(.id)"'
    done
}

# The highest term any node is in.
max_term() { node_terms | sort -n | tail -n 1 | awk '{print $1}'; }

# The node that leads now: of the nodes that say they lead, the one of highest term.
leader_now() { node_terms | awk '$2 == "leader"' | sort -n | tail -n 1 | awk '{print $3}'; }

# cluster_start: raftfsd 1..NODES mounted on D/m1..., bootstrapped together, taking changes.
# Sets LEADER, FOLLOWER (the next node after it), FOLLOWER2 (the other one) and TERM_AT_START.
cluster_start() {
    "$CTL" tls init "$D/tls" >/dev/null || die "raftfs-ctl tls init failed"
    for i in $(seq 1 $NODES); do
        "$CTL" tls issue "$D/tls" "$i" --ip 127.0.0.1 >/dev/null || die "raftfs-ctl tls issue $i failed"
    done
    pick_ports
    local peers=() i
    for i in $(seq 1 $NODES); do peers+=(--peer "$i=127.0.0.1:$((PORT_BASE + i))"); done
    for i in $(seq 1 $NODES); do
        mkdir -p "$D/m$i"
        "$RAFTFSD" --id "$i" --data-dir "$D/n$i" --listen "127.0.0.1:$((PORT_BASE + i))" \
            "${peers[@]}" --bootstrap --cluster-id raftfs-bench --tls-ca "$D/tls/ca.crt" \
            --tls-cert "$D/tls/$i.crt" --tls-key "$D/tls/$i.key" --ctl-socket "$D/n$i.ctl" \
            ${BENCH_RAFTFSD_ARGS:-} "$D/m$i" >"$D/n$i.log" 2>&1 &
        FSD_PIDS+=($!)
    done
    for i in $(seq 1 $NODES); do
        wait_for $WAIT "the mount of raftfsd $i" is_mounted "$D/m$i"
    done
    wait_for $WAIT "a leader (node 1 could not create a file)" fs_writable
    LEADER=$(leader_now)
    [ -n "$LEADER" ] || die "no node says it is the leader (raftfs-ctl status)"
    FOLLOWER=$((LEADER % NODES + 1))
    FOLLOWER2=$((FOLLOWER % NODES + 1))
    TERM_AT_START=$(max_term)
}

# The warning to print at the end of a run whose leader changed.
election_warning() {
    if [ "$(max_term)" != "$TERM_AT_START" ] || [ "$(leader_now)" != "$LEADER" ]; then
        echo "$BENCH_NAME: WARNING: a new term began during the run (an election):" \
            "its figures include the outage" >&2
    fi
}

passthrough_start() {
    mkdir -p "$D/pt-src" "$D/pt-mnt"
    # libfuse's example as shipped: its default options (multi-threaded, cache=auto: 1 s entry
    # and attribute timeouts, page cache kept while a file is unchanged).
    "$PASSTHROUGH" -f -o source="$D/pt-src" "$D/pt-mnt" >"$D/pt.log" 2>&1 &
    PT_PID=$!
    wait_for $WAIT "the passthrough_ll mount" is_mounted "$D/pt-mnt"
}

# target_dir TARGET: where a target's files live (raftfs: the leader's mount).
target_dir() {
    case $1 in
    raftfs) echo "$D/m$LEADER" ;;
    follower) echo "$D/m$FOLLOWER" ;;
    follower2) echo "$D/m$FOLLOWER2" ;;
    passthrough) echo "$D/pt-mnt" ;;
    local) echo "$D/local" ;;
    *) die "target_dir: unknown target '$1'" ;;
    esac
}

machine() {
    echo "machine: $(nproc) CPUs ($(sed -n 's/^model name\s*: //p' /proc/cpuinfo | head -n 1)), $(awk '/MemTotal/ {printf "%.0f GiB", $2 / 1048576}' /proc/meminfo), kernel $(uname -r)"
    echo "disk: $(df -hT "$D" | awk 'NR == 2 {print $1, $2}') under $DATA_PARENT"
    echo "load: $(uptime)"
}

# For the tables' awk programs: field(LINE, NAME), the value of NAME=VALUE in one of fsload's
# lines; ratio(A, B), A/B to two places, or two significant digits below 0.1 (a column of 0.00
# says nothing), "-" when B is 0.
# shellcheck disable=SC2034 # used by the scripts that source this file
AWK_FUNCTIONS='
function field(s, name,    a, n, i) {
    n = split(s, a, " ")
    for (i = 1; i <= n; i++)
        if (index(a[i], name "=") == 1)
            return substr(a[i], length(name) + 2)
    return ""
}
function ratio(a, b) {
    if (b <= 0)
        return "-"
    return a / b >= 0.1 ? sprintf("%.2f", a / b) : sprintf("%.2g", a / b)
}
'
