#!/usr/bin/env bats
# raftfsd's configuration file (raftfs.conf(5)): a node configured by the file alone, the command
# line overriding it, and every bad value, unknown key and missing file refused with status 2 and
# a message that names the file, the line and the key.

load helpers
bats_require_minimum_version 1.5.0

setup() {
    cluster_init 1
    mkdir -p "$(mnt 1)"
    CONF=$D/n1.conf
}

teardown() {
    teardown_fs
}

# write_conf [EXTRA LINE]...: a complete configuration of node 1, then the extra lines.
write_conf() {
    {
        echo "# node 1 of a one-node cluster"
        echo "id = 1"
        echo "data-dir = $D/n1"
        echo "listen = $(addr 1)"
        echo "peer = 1=$(addr 1)"
        echo "bootstrap = yes"
        echo "cluster-id = raftfs-test"
        echo "   tls-ca   =  $D/tls/ca.crt  "
        echo "tls-cert = $D/tls/1.crt"
        echo "tls-key = $D/tls/1.key"
        echo "ctl-socket = $D/n1.ctl"
        echo "op-timeout = $OP_TIMEOUT"
        echo "consistency = open"
        echo "max-file-size = 1048576"
        echo ""
        echo "mountpoint = $(mnt 1)"
        printf '%s\n' "$@"
    } >"$CONF"
}

# start_conf [ARGS...]: raftfsd -c $CONF ARGS in the background, as fsd_start does.
start_conf() {
    "$RAFTFSD" -c "$CONF" "$@" >>"$D/n1.log" 2>&1 &
    echo $! >"$D/n1.pid"
}

@test "a node configured by the file alone mounts and takes writes" {
    write_conf
    start_conf
    wait_for 10 is_mounted 1
    wait_for 15 fs_writable 1
    echo "from the config" >"$(mnt 1)/f"
    run cat "$(mnt 1)/f"
    assert_output "from the config"
    # max-file-size from the file is the limit (EFBIG past it).
    run dd if=/dev/zero of="$(mnt 1)/big" bs=1M count=2 status=none
    assert_failure
    assert_output --partial "File too large"
    fsd_stop 1
}

@test "the command line overrides the file" {
    write_conf "fuse-options = ro"
    mkdir -p "$D/other"
    # The data directory, the mount point and the FUSE options of the file are all replaced.
    start_conf --data-dir "$D/n1-cli" -o rw --op-timeout 1 "$(mnt 1)"
    wait_for 10 is_mounted 1
    wait_for 15 fs_writable 1
    [ -d "$D/n1-cli/fsm" ]
    [ ! -e "$D/n1" ]
    fsd_stop 1
    # The peers of the command line replace the file's: this node's entry in the file would
    # clash with --listen otherwise.
    write_conf "peer = 2=127.0.0.1:1"
    run -2 "$RAFTFSD" -c "$CONF" --listen "$(addr 2)"
    assert_output --partial "peer 1=$(addr 1): this node's own entry differs from listen"
    run -2 "$RAFTFSD" -c "$CONF" --listen "$(addr 2)" --peer "3=$(addr 3)" --op-timeout 0
    assert_output "raftfsd: --op-timeout 0: out of range (1 to 3600)"
    run is_mounted 1
    assert_failure
}

@test "every bad value in the file is refused with its file, line, key and reason" {
    local bad=(
        "id = 0|id = 0: out of range"
        "listen = localhost|listen = localhost: want HOST:PORT"
        "peer = 2=nowhere|peer = 2=nowhere: want HOST:PORT"
        "peer = two=127.0.0.1:7|peer = two=127.0.0.1:7: the ID must be a number"
        "bootstrap = perhaps|bootstrap = perhaps: want yes or no"
        "cluster-id = a/b|cluster-id = a/b: want 1 to 43 bytes"
        "cluster-id = $(printf 'c%.0s' $(seq 1 44))|: want 1 to 43 bytes"
        "ctl-socket = /$(printf 'x%.0s' $(seq 1 120))|longer than a socket path may be"
        "op-timeout = 0|op-timeout = 0: out of range (1 to 3600)"
        "op-timeout = 5s|op-timeout = 5s: not a decimal number"
        "consistency = sometimes|consistency = sometimes: want open, strict or local"
        "max-file-size = 1G|max-file-size = 1G: not a decimal number"
        "max-file-size = 999999999|max-file-size = 999999999: out of range (1 to 67108864)"
        "data-dir =|data-dir = : an empty value"
        "no equals sign|want KEY = VALUE"
    )
    for case in "${bad[@]}"; do
        local line=${case%%|*} want=${case#*|}
        # The bad line replaces the file's own setting of the key.
        write_conf
        grep -v "^${line%% *} =" "$CONF" >"$CONF.new" || true
        echo "$line" >>"$CONF.new"
        mv "$CONF.new" "$CONF"
        local n
        n=$(grep -c '' "$CONF")
        run -2 "$RAFTFSD" -c "$CONF"
        assert_output --partial "$CONF:$n: "
        assert_output --partial "$want"
    done
    # Values checked once everything is read also name the line: a TLS file that is missing,
    # a mount point that is not a directory.
    write_conf "tls-key = $D/tls/none.key"
    sed -i '/^tls-key = .*1.key$/d' "$CONF"
    run -2 "$RAFTFSD" -c "$CONF"
    assert_output --regexp "$CONF:[0-9]+: tls-key = $D/tls/none.key: No such file or directory"
    write_conf "mountpoint = $CONF"
    sed -i "\|^mountpoint = $(mnt 1)\$|d" "$CONF"
    run -2 "$RAFTFSD" -c "$CONF"
    assert_output --regexp "$CONF:[0-9]+: mountpoint = $CONF: not a directory"
    run is_mounted 1
    assert_failure
}

@test "unknown keys, repeated keys, a missing file and a directory are refused" {
    write_conf "colour = blue"
    run -2 "$RAFTFSD" -c "$CONF"
    assert_output "raftfsd: $CONF:17: unknown key \"colour\" (see raftfs.conf(5))"
    write_conf "id = 2"
    run -2 "$RAFTFSD" --config "$CONF"
    assert_output "raftfsd: $CONF:17: id: already set on line 2"
    run -2 "$RAFTFSD" -c "$D/missing.conf" "$(mnt 1)"
    assert_output "raftfsd: $D/missing.conf: No such file or directory"
    run -2 "$RAFTFSD" -c "$D" "$(mnt 1)"
    assert_output "raftfsd: $D: Is a directory"
    # Without a file, the settings it would have given are required on the command line.
    run -2 "$RAFTFSD" "$(mnt 1)"
    assert_output "raftfsd: --id is required (or id in /etc/raftfs/raftfs.conf)"
    run is_mounted 1
    assert_failure
}

# log_has PATTERN: a line of node 1's log matches the extended regular expression.
log_has() { grep -Eq "$1" "$D/n1.log"; }

@test "log lines: ISO 8601 times with milliseconds, info by default, journal priorities" {
    write_conf
    start_conf
    wait_for 10 is_mounted 1
    wait_for 15 fs_writable 1
    rctl 1 status >/dev/null
    # Every line is stamped; debug lines (one per control request, among others) are not
    # written at the default level.
    run grep -cvE '^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\.[0-9]{3}Z raftfsd 1 (error|warn|info): ' \
        "$D/n1.log"
    assert_output 0
    log_has ' info: mounted; serving'
    run -1 grep -q ' debug: ' "$D/n1.log"
    fsd_stop 1
    # When stderr is the journal (JOURNAL_STREAM names its device and inode), each line starts
    # with its priority instead of a time: the journal stamps lines itself.
    : >"$D/n1.log"
    JOURNAL_STREAM=$(stat -c %d:%i "$D/n1.log") start_conf --log-level debug
    wait_for 10 is_mounted 1
    rctl 1 status >/dev/null
    wait_for 10 log_has '^<7>node 1: control request: status$'
    log_has '^<6>node 1: mounted; serving'
    run grep -cvE '^<[3467]>node 1: ' "$D/n1.log"
    assert_output 0
    fsd_stop 1
    # Another file on stderr is not the journal.
    : >"$D/n1.log"
    JOURNAL_STREAM=$(stat -c %d:%i "$CONF") start_conf
    wait_for 10 is_mounted 1
    log_has '^[0-9-]{10}T[0-9:]{8}\.[0-9]{3}Z raftfsd 1 info: mounted; serving'
}

@test "SIGHUP keeps the daemon and applies the file's new log level" {
    write_conf "log-level = info"
    start_conf
    wait_for 10 is_mounted 1
    wait_for 15 fs_writable 1
    pid=$(node_pid 1)
    rctl 1 status >/dev/null
    run -1 grep -q 'debug: control request' "$D/n1.log"
    sed -i 's/^log-level = info$/log-level = debug/' "$CONF"
    kill -HUP "$pid"
    wait_for 10 log_has "info: SIGHUP: reread $CONF: log level debug; other settings take effect"
    rctl 1 status >/dev/null
    wait_for 10 log_has 'debug: control request: status$'
    kill -0 "$pid"
    is_mounted 1
    echo after >"$(mnt 1)/after-hup"
    # A file that no longer parses changes nothing, and the daemon goes on.
    sed -i 's/^log-level = debug$/log-level = loud/' "$CONF"
    kill -HUP "$pid"
    wait_for 10 log_has "warn: SIGHUP: $CONF:[0-9]+: log-level = loud: want error, warn, info or debug; the log level stays debug"
    # Back to warn: the change is logged (at the old level), then info lines stop.
    sed -i 's/^log-level = loud$/log-level = warn/' "$CONF"
    kill -HUP "$pid"
    wait_for 10 log_has "SIGHUP: reread $CONF: log level warn"
    n=$(grep -c '' "$D/n1.log")
    rctl 1 status >/dev/null
    kill -HUP "$pid"
    # A warning marks the end: SIGHUPs are taken in order by one thread, so once it is written
    # everything before it is, and warnings (of this SIGHUP, or of the one before if it read
    # the file after this edit) must be the only lines since.
    sed -i 's/^log-level = warn$/log-level = loud/' "$CONF"
    kill -HUP "$pid"
    wait_for 10 log_has "warn: SIGHUP: .*the log level stays warn"
    tail -n +$((n + 1)) "$D/n1.log" >"$D/since"
    run grep -cv ' raftfsd 1 warn: SIGHUP: .*: log-level = loud: ' "$D/since"
    assert_output 0
    kill -0 "$pid"
    run cat "$(mnt 1)/after-hup"
    assert_output after
    fsd_stop 1
    # --log-level on the command line wins over the file, at start and on SIGHUP.
    sed -i 's/^log-level = loud$/log-level = info/' "$CONF"
    start_conf --log-level debug
    wait_for 10 is_mounted 1
    kill -HUP "$(node_pid 1)"
    wait_for 10 log_has "SIGHUP: reread $CONF: log level debug \(--log-level was given, and wins over the file\)"
}
