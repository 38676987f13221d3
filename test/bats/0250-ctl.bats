#!/usr/bin/env bats
# raftfs-ctl against a cluster of raftfsd daemons with mounts: status and members, membership
# changes under a writer, leadership transfer, snapshot, verify, stats, recovery, and the
# refusals (usage, unreachable daemon, non-root user, malformed frames); the command line: --help,
# options in any position, addresses checked.

load helpers
bats_require_minimum_version 1.5.0

setup() {
    cluster_init 3
}

teardown() {
    [ -n "${WRITER:-}" ] && kill "$WRITER" 2>/dev/null
    teardown_fs
}

# jq_is I FILTER VALUE: `status --json` of node I gives VALUE for FILTER.
jq_is() { [ "$(rctl "$1" status --json | jq -r "$2")" = "$3" ]; }

# The node every live node given names as leader, once they agree.
agreed_leader() {
    local l="" x
    for i in "$@"; do
        x=$(rctl "$i" status --json | jq -r .leader) || return 1
        [ "$x" != 0 ] || return 1
        [ -z "$l" ] || [ "$x" = "$l" ] || return 1
        l=$x
    done
    jq_is "$l" .role leader && echo "$l"
}

@test "status and members on every node, in human form and as JSON" {
    fsd_cluster_start
    wait_for 10 agreed_leader 1 2 3
    l=$(agreed_leader 1 2 3)
    touch "$(mnt 2)/x"
    for i in 1 2 3; do
        run rctl "$i" status --json
        assert_success
        echo "$output" | jq -e . >/dev/null
        [ "$(echo "$output" | jq .id)" = "$i" ]
        [ "$(echo "$output" | jq .leader)" = "$l" ]
        [ "$(echo "$output" | jq .term)" -ge 1 ]
        [ "$(echo "$output" | jq .commit_index)" -ge 2 ]
        [ "$(echo "$output" | jq .applied_index)" -le "$(echo "$output" | jq .commit_index)" ]
        [ "$(echo "$output" | jq '.members | length')" = 3 ]
        [ "$(echo "$output" | jq -r '[.members[].suffrage] | unique | join(",")')" = voter ]
        if [ "$i" = "$l" ]; then
            [ "$(echo "$output" | jq -r .role)" = leader ]
        else
            [ "$(echo "$output" | jq -r .role)" = follower ]
        fi
        run rctl "$i" status
        assert_success
        assert_output --partial "id:             $i"
        assert_output --partial "leader:         $l ($(addr "$l"))"
        run rctl "$i" members
        assert_success
        for j in 1 2 3; do
            assert_line --regexp "^$j +voter +$(addr "$j") "
        done
        run rctl "$i" members --json
        assert_success
        [ "$(echo "$output" | jq -r 'map(.id) | sort | join(",")')" = "1,2,3" ]
    done
    # Only the leader knows its followers' match index and last contact.
    run rctl "$l" status --json
    [ "$(echo "$output" | jq "[.members[] | select(.match_index >= 2)] | length")" = 3 ]
}

@test "a fourth node added with add-voter under a writer mounts the whole tree; verify agrees" {
    fsd_cluster_start
    mkdir "$(mnt 1)/w"
    (
        for k in $(seq 1 400); do
            [ -e "$D/stop" ] && break
            echo "file $k" >"$(mnt 1)/w/f$k" && echo "f$k" >>"$D/written"
        done
    ) 3>&- &
    WRITER=$!
    # Node 4 starts without state: it waits to be added. The change goes through a follower.
    fsd_start 4 $PEERS --peer "4=$(addr 4)"
    f=1
    [ "$(rctl 1 status --json | jq -r .role)" = leader ] && f=2
    wait_for 10 test -s "$D/written"
    run rctl "$f" add-voter 4 "$(addr 4)"
    assert_success
    assert_output "node 4 added as a voter"
    touch "$D/stop"
    wait "$WRITER"
    WRITER=
    [ "$(wc -l <"$D/written")" -ge 2 ]
    run rctl 1 members --json
    [ "$(echo "$output" | jq -r '.[] | select(.id == 4) | .suffrage')" = voter ]
    # Everything written, before and during the change, is on the new node's mount.
    while read -r name; do
        run cat "$(mnt 4)/w/$name"
        assert_output "file ${name#f}"
    done <"$D/written"
    [ "$(ls "$(mnt 4)/w" | wc -l)" = "$(ls "$(mnt 1)/w" | wc -l)" ]
    # Every member holds the same state at one index.
    run rctl 4 verify
    assert_success
    assert_line --regexp "^checkpoint at log index [0-9]+$"
    assert_output --partial "all 4 digests are equal"
    run rctl 2 verify --json
    assert_success
    [ "$(echo "$output" | jq .equal)" = true ]
    [ "$(echo "$output" | jq '[.nodes[].digest] | unique | length')" = 1 ]
    [ "$(echo "$output" | jq '.nodes | length')" = 4 ]
}

@test "transfer-leader moves leadership; demote and remove change the members" {
    fsd_cluster_start
    wait_for 10 agreed_leader 1 2 3
    l=$(agreed_leader 1 2 3)
    t=$((l % 3 + 1))
    o=$((t % 3 + 1))
    [ "$o" != "$l" ] || o=$((o % 3 + 1))
    run rctl "$o" transfer-leader "$t"
    assert_success
    assert_output "leadership transferred to node $t"
    wait_for 10 jq_is "$t" .role leader
    wait_for 10 jq_is "$l" .leader "$t"
    wait_for 10 jq_is "$o" .leader "$t"
    # Asking for the leader there is already succeeds, from any node.
    for i in "$t" "$o"; do
        run rctl "$i" transfer-leader "$t"
        assert_success
        assert_output "node $t already leads"
    done

    # An expected configuration index that is not the current one changes nothing. Options go
    # anywhere, as --opt value or --opt=value.
    run -1 rctl "$l" demote "$o" --expect-index=1000
    assert_output --partial "the configuration changed since the expected index"
    conf=$(rctl "$t" status --json | jq .conf_index)
    run "$RAFTFS_CTL" --expect-index "$conf" demote "$o" --socket="$(ctl_sock "$l")"
    assert_success
    assert_output "node $o demoted to non-voter"
    wait_for 10 jq_is "$l" ".members[] | select(.id == $o) | .suffrage" nonvoter
    run rctl "$t" remove "$o"
    assert_success
    assert_output "node $o removed"
    wait_for 10 jq_is "$l" ".members | length" 2
    run rctl "$t" members
    refute_output --partial "$(addr "$o")"
    fsd_stop "$o"
    # The two that remain still commit changes.
    echo after >"$(mnt "$l")/after-remove"
    run cat "$(mnt "$t")/after-remove"
    assert_output after
    run -1 rctl "$t" remove 99
    assert_output --partial "no such server in the configuration"
}

@test "snapshot, stats, and verify with a member down" {
    fsd_cluster_start
    for k in 1 2 3; do echo "$k" >"$(mnt 1)/s$k"; done
    run rctl 2 snapshot
    assert_success
    assert_output "snapshot taken"
    [ "$(rctl 2 status --json | jq .snapshot_index)" -ge 4 ]
    run rctl 2 status
    assert_output --regexp "last snapshot:  index [1-9][0-9]*, term [1-9]"
    run rctl 1 stats --json
    assert_success
    [ "$(echo "$output" | jq .proposals)" -ge 3 ]
    [ "$(echo "$output" | jq .commit.count)" -ge 3 ]
    [ "$(echo "$output" | jq .commit.p99_us)" -ge "$(echo "$output" | jq .commit.p50_us)" ]
    [ "$(echo "$output" | jq .commit.p50_us)" -gt 0 ]
    run rctl 2 stats
    assert_success
    assert_line --regexp "^snapshots_taken +1$"
    assert_line --regexp "^fsync +[1-9][0-9]* +[0-9]+ +[0-9]+ +[0-9]+$"
    # A member that does not answer leaves verify incomplete (status 6, not 1: nothing differs),
    # and it says which.
    fsd_stop 3
    run -6 rctl 1 verify
    assert_line --regexp "^  node 3 +no digest: no answer in time \(down, cut off, or far behind\)$"
    assert_output --partial "INCOMPLETE: 2 of 3 nodes answered; their digests are equal"
    [ "$(echo "$output" | grep -c '^  node [12] \+[0-9a-f]\{64\}$')" = 2 ]
}

@test "refusals: usage, an unreachable daemon, a non-root user, malformed frames" {
    fsd_cluster_start
    run -2 rctl 1 status extra
    assert_output --partial "too many arguments"
    run -2 rctl 1 add-voter 0 127.0.0.1:1
    assert_output --partial "'0' is not a node ID"
    run -2 rctl 1 add-voter 5 nowhere
    assert_output --partial "is not HOST:PORT"
    # Addresses are checked as the transport reads them, before anything is asked of the cluster.
    run -2 rctl 1 add-voter 4 host:99999
    assert_output --partial "address 'host:99999': the port must be a number from 1 to 65535"
    run -2 rctl 1 add-nonvoter 4 127.0.0.1:0
    assert_output --partial "the port must be a number from 1 to 65535"
    run -2 rctl 1 add-voter 4 localhost:7000
    assert_output --partial "the host must be a numeric IPv4 address or an IPv6 address in brackets"
    run -2 rctl 1 add-voter 4 "127.0.0.1:$(printf '1%.0s' $(seq 1 70))"
    assert_output --partial "is longer than 63 bytes"
    run -2 rctl 1 recover --data-dir "$D/n1" --peer "1=[::1:7000"
    assert_output --partial "--peer '[::1:7000'"
    [ "$(rctl 1 members --json | jq length)" = 3 ]
    run -2 rctl 1 status --expect-index 3
    assert_output --partial "--expect-index does not apply to status"
    run -2 rctl 1 status --bogus
    assert_output --partial "raftfs-ctl: status: unknown option --bogus"
    run -2 rctl 1 remove --expect-index
    assert_output --partial "missing value for --expect-index"
    run -2 rctl 1 remove 2 --expect-index x
    run -2 rctl 1 frobnicate
    assert_output --partial "unknown command 'frobnicate'"
    run -2 "$RAFTFS_CTL" --socket
    run -3 "$RAFTFS_CTL" --socket "$D/nothing-here" status
    assert_output --partial "cannot reach raftfsd at $D/nothing-here"
    # The socket is root-only...
    [ "$(stat -c %a "$(ctl_sock 1)")" = 600 ]
    run -4 setpriv --reuid=65534 --regid=65534 --clear-groups "$RAFTFS_CTL" \
        --socket "$(ctl_sock 1)" status
    assert_output --partial "root-only"
    # ...and the daemon checks the caller too, should the mode be loosened.
    chmod 0666 "$(ctl_sock 1)"
    d=$D
    while [ "$d" != / ]; do
        chmod o+x "$d"
        d=$(dirname "$d")
    done
    run -4 setpriv --reuid=65534 --regid=65534 --clear-groups "$RAFTFS_CTL" \
        --socket "$(ctl_sock 1)" status
    assert_output --partial "permission denied: raftfs-ctl must run as root"
    # A malformed frame is answered with the reason and the connection closed; the daemon goes
    # on serving.
    run python3 -c '
import socket, struct, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.connect(sys.argv[1])
s.sendall(struct.pack("<IBBHI", 0x4c544352, 1, 1, 0, 1 << 20))
data = b""
while True:
    b = s.recv(4096)
    if not b:
        break
    data += b
print(data[12 + 5:].decode())
' "$(ctl_sock 1)"
    assert_success
    assert_output "bad control frame: payload of 1048576 bytes, at most 16384 allowed"
    run rctl 1 status --json
    assert_success
    # A stale socket is replaced when the daemon starts again; a live one is refused.
    fsd_stop 2
    [ ! -e "$(ctl_sock 2)" ]
    python3 -c 'import socket,sys; socket.socket(socket.AF_UNIX).bind(sys.argv[1])' "$(ctl_sock 2)"
    fsd_start 2 $PEERS
    run rctl 2 status
    assert_success
    mkdir -p "$D/m9"
    run -1 "$RAFTFSD" --id 9 --data-dir "$D/n9" --listen "$(addr 9)" --tls-ca "$D/tls/ca.crt" \
        --tls-cert "$D/tls/3.crt" --tls-key "$D/tls/3.key" --ctl-socket "$(ctl_sock 1)" "$D/m9"
    assert_output --partial "another daemon is serving it"
    ! grep -q " $D/m9 " /proc/mounts
    # A missing directory for the socket is made, root-only; the socket goes when the daemon does.
    fsd_stop 3
    fsd_start 3 $PEERS --ctl-socket "$D/run/ctl.sock"
    [ "$(stat -c %a "$D/run")" = 700 ]
    run "$RAFTFS_CTL" --socket "$D/run/ctl.sock" status --json
    assert_success
    [ "$(echo "$output" | jq .id)" = 3 ]
    fsd_stop 3
    [ ! -e "$D/run/ctl.sock" ]
}

@test "recover: the survivor of a cluster whose two peers are gone for good accepts writes" {
    fsd_cluster_start
    echo "before" >"$(mnt 1)/kept"
    wait_for 10 test -e "$(mnt 3)/kept"
    fsd_stop 2
    fsd_stop 3
    # Recovery is offline: refused while the daemon answers.
    run -1 rctl 1 recover --data-dir "$D/n1" --peer "1=$(addr 1)"
    assert_output --partial "stop it first"
    # Alone, node 1 has no leader (check-quorum makes a leader step down).
    wait_for 15 jq_is 1 .leader 0
    fsd_stop 1
    run -2 rctl 1 recover --data-dir "$D/n1"
    run rctl 1 recover --data-dir "$D/n1" --peer "1=$(addr 1)"
    assert_success
    assert_output --partial "recovered $D/n1 as a cluster of 1 voter; cluster epoch is now 1"
    fsd_start 1 --peer "1=$(addr 1)"
    wait_for 15 fs_writable 1
    echo "after" >"$(mnt 1)/new"
    run cat "$(mnt 1)/kept" "$(mnt 1)/new"
    assert_output "$(printf 'before\nafter')"
    run rctl 1 status --json
    [ "$(echo "$output" | jq -r .role)" = leader ]
    [ "$(echo "$output" | jq .epoch)" = 1 ]
    [ "$(echo "$output" | jq '.members | length')" = 1 ]
}

# synopsis: the manual's SYNOPSIS, one line per form.
synopsis() {
    mandoc -Tutf8 -O width=400 "$BATS_TEST_DIRNAME/../../man/raftfs-ctl.8" | col -b |
        sed -n '/^SYNOPSIS/,/^DESCRIPTION/p' | sed -n 's/^ *\(raftfs-ctl .*\)$/\1/p'
}

@test "--help on every command prints its usage, as in the manual, and does nothing else" {
    synopsis >"$D/synopsis"
    run "$RAFTFS_CTL" --help
    assert_success
    grep '^usage: ' <<<"$output" | sed 's/^usage: //' >"$D/usages"
    [ "$(wc -l <"$D/usages")" -ge 16 ]
    diff "$D/synopsis" "$D/usages"
    # No daemon answers on the socket: a command that ran would fail with status 3.
    awk -F '  +' '/^  [a-z]/ { print $2 }' <<<"$output" >"$D/names"
    [ "$(wc -l <"$D/names")" = "$(($(wc -l <"$D/usages") - 2))" ]
    while read -r name; do
        # shellcheck disable=SC2086
        for args in "--socket $D/none --help $name" "$name -h --socket=$D/none"; do
            run "$RAFTFS_CTL" $args
            assert_success
            [[ "${lines[0]}" == "usage: raftfs-ctl "*"$name"* ]]
            grep -qxF -- "${lines[0]#usage: }" "$D/synopsis"
        done
    done <"$D/names"
    # The case the issue found: verify --help ran verify.
    run "$RAFTFS_CTL" --socket "$D/none" verify --help
    assert_success
    refute_output --partial MISMATCH
    run "$RAFTFS_CTL" --socket "$D/none" tls --help
    assert_success
    assert_line --index 0 "usage: raftfs-ctl tls init dir [--force] [--json]"
}

# json_is STATUS ARGS...: raftfs-ctl ARGS --json exits with STATUS and prints one line of valid,
# ASCII-only JSON (left in $output).
json_is() {
    local want=$1
    shift
    run -"$want" "$RAFTFS_CTL" "$@" --json
    [ "${#lines[@]}" = 1 ]
    jq -e . >/dev/null <<<"$output"
    ! LC_ALL=C grep -q '[^ -~]' <<<"$output"
}

@test "--json on every command, errors included, is one line of valid JSON" {
    fsd_cluster_start
    wait_for 10 agreed_leader 1 2 3
    l=$(agreed_leader 1 2 3)
    s=(--socket "$(ctl_sock "$l")")
    for cmd in status members stats verify locks sessions; do
        json_is 0 "${s[@]}" "$cmd"
    done
    json_is 0 "${s[@]}" snapshot
    [ "$(jq -r .message <<<"$output")" = "snapshot taken" ]
    json_is 0 "${s[@]}" faults "delay:$((l % 3 + 1)):1"
    [ "$(jq -r .faults <<<"$output")" = "delay:$((l % 3 + 1)):1" ]
    json_is 0 "${s[@]}" faults
    [ "$(jq -r .message <<<"$output")" = "faults healed" ]
    json_is 0 "${s[@]}" transfer-leader "$l"
    [ "$(jq -c '[.node, .already_leader]' <<<"$output")" = "[$l,true]" ]
    fsd_start 4 $PEERS --peer "4=$(addr 4)"
    json_is 0 "${s[@]}" add-nonvoter 4 "$(addr 4)"
    [ "$(jq -r .message <<<"$output")" = "node 4 added as a non-voter" ]
    [ "$(jq .node <<<"$output")" = 4 ]
    json_is 0 "${s[@]}" remove 4
    [ "$(jq -r .message <<<"$output")" = "node 4 removed" ]
    fsd_stop 4
    o=$((l % 3 + 1))
    json_is 0 "${s[@]}" demote "$o"
    json_is 0 "${s[@]}" --help status
    [ "$(jq -r .usage <<<"$output")" = "raftfs-ctl [--socket path] status [--json]" ]
    # Errors: of the daemon, of the command line, of the socket; bytes that are not UTF-8 in a
    # message are replaced, not passed through.
    json_is 1 "${s[@]}" remove 99
    [ "$(jq -r .error <<<"$output")" = "no such server in the configuration" ]
    [ "$(jq .exit_status <<<"$output")" = 1 ]
    json_is 2 "${s[@]}" add-voter 4 host:99999
    [ "$(jq -r .command <<<"$output")" = add-voter ]
    [ "$(jq -r .usage <<<"$output")" = \
        "raftfs-ctl [--socket path] add-voter id host:port [--expect-index n] [--json]" ]
    json_is 2 frobnicate
    json_is 3 --socket "$D/caf$(printf '\xc3\xa9')" status
    assert_output --partial 'caf\u00E9'
    json_is 3 --socket "$D/$(printf '\xff\xfe')" status
    assert_output --partial '\uFFFD\uFFFD'
    json_is 0 tls init "$D/pki"
    [ "$(jq -r '.files[0]' <<<"$output")" = "$D/pki/ca.crt" ]
    json_is 0 tls issue "$D/pki" 7 --ip 127.0.0.1
    [ "$(jq .node <<<"$output")" = 7 ]
    json_is 1 tls issue "$D/pki" 7
    assert_output --partial "exists"
    fsd_stop 1
    fsd_stop 2
    fsd_stop 3
    json_is 0 "${s[@]}" recover --data-dir "$D/n$l" --peer "$l=$(addr "$l")"
    [ "$(jq .epoch <<<"$output")" = 1 ]
    [ "$(jq .voters <<<"$output")" = 1 ]
}

@test "--version: the build's version and the formats, from raftfs-ctl and raftfsd alike" {
    run "$RAFTFS_CTL" --version
    assert_success
    assert_line --index 0 --regexp '^raftfs-ctl [^ ]+$'
    refute_line --index 0 "raftfs-ctl unknown"
    assert_line --regexp '^wire format: control protocol [1-9][0-9]*$'
    assert_line --regexp '^disk format: log [1-9][0-9]*$'
    ctl_version=${lines[0]#raftfs-ctl }
    # Anywhere on the line, and nothing else is done.
    run "$RAFTFS_CTL" --socket "$D/none" status --version
    assert_success
    assert_line --index 0 "raftfs-ctl $ctl_version"
    run "$RAFTFS_CTL" --version --json
    assert_success
    [ "$(jq -r .version <<<"$output")" = "$ctl_version" ]
    ctl_proto=$(jq '.formats[] | select(.name == "control protocol") | .version' <<<"$output")
    run "$RAFTFSD" --version
    assert_success
    assert_line --index 0 "raftfsd $ctl_version"
    assert_line "wire format: control protocol $ctl_proto"
    for f in "disk format: state machine" "disk format: snapshot" "log entry format: command" \
        "wire format: transport frame" "wire format: transport handshake"; do
        assert_line --regexp "^$f [1-9][0-9]*$"
    done
    # In a git checkout the version is what git describes: the build's commit (the tree may
    # have changed since, so only the commit is compared; make rebuilds when it changes).
    if git -C "$BATS_TEST_DIRNAME" rev-parse --git-dir >/dev/null 2>&1; then
        [[ "$ctl_version" == *"$(git -C "$BATS_TEST_DIRNAME" rev-parse --short HEAD)"* ]]
    fi
}
