#!/usr/bin/env bats
# The filesystem end to end: three raftfsd daemons on 127.0.0.1 (mutual TLS, real FUSE mounts in
# the test's directory), changes made through one mount and checked through the others.

load helpers
bats_require_minimum_version 1.5.0

setup() {
    cluster_init 3
}

teardown() {
    teardown_fs
}

@test "a file written and closed on node 1 reads the same on nodes 2 and 3" {
    fsd_cluster_start
    echo "hello from node 1" >"$(mnt 1)/f"
    for i in 2 3; do
        run cat "$(mnt "$i")/f"
        assert_success
        assert_output "hello from node 1"
    done
    # A larger file, written in many pieces, arrives whole.
    head -c 300000 /dev/urandom >"$D/big"
    cp "$D/big" "$(mnt 2)/big"
    cmp "$D/big" "$(mnt 3)/big"
    cmp "$D/big" "$(mnt 1)/big"
    # Appending through another node keeps what was there.
    echo "more" >>"$(mnt 3)/f"
    run cat "$(mnt 1)/f"
    assert_output "$(printf 'hello from node 1\nmore')"
}

@test "directories, rename over a file, symlinks and hard links agree across nodes" {
    fsd_cluster_start
    mkdir "$(mnt 1)/d"
    [ -d "$(mnt 2)/d" ]
    run rmdir "$(mnt 3)/d"
    assert_success
    run ls "$(mnt 1)"
    refute_output --partial "d"
    mkdir -p "$(mnt 1)/a/b/c"
    run rmdir "$(mnt 2)/a"
    assert_failure
    assert_output --partial "Directory not empty"

    echo old >"$(mnt 1)/target"
    echo new >"$(mnt 1)/source"
    mv "$(mnt 2)/source" "$(mnt 2)/target"
    run cat "$(mnt 3)/target"
    assert_output "new"
    [ ! -e "$(mnt 3)/source" ]

    ln -s "some/where" "$(mnt 1)/sym"
    run readlink "$(mnt 3)/sym"
    assert_output "some/where"

    echo x >"$(mnt 1)/h1"
    ln "$(mnt 1)/h1" "$(mnt 1)/h2"
    ln "$(mnt 2)/h1" "$(mnt 2)/h3"
    wait_for 10 output_is 3 stat -c %h "$(mnt 3)/h1"
    rm "$(mnt 3)/h2"
    wait_for 10 output_is 2 stat -c %h "$(mnt 1)/h3"
    [ ! -e "$(mnt 3)/h2" ]
    [ "$(stat -c %i "$(mnt 1)/h1")" = "$(stat -c %i "$(mnt 2)/h3")" ]
}

@test "chmod, nanosecond times, truncate and xattrs are seen on another node" {
    fsd_cluster_start
    echo "0123456789" >"$(mnt 1)/f"
    chmod 640 "$(mnt 1)/f"
    touch -m -d "2021-03-04 05:06:07.123456789 UTC" "$(mnt 1)/f"
    wait_for 10 output_is "640 1614834367.2021-03-04 05:06:07.123456789 +0000" \
        stat -c "%a %Y.%y" "$(mnt 2)/f"

    truncate -s 4 "$(mnt 2)/f"
    run cat "$(mnt 3)/f"
    assert_output "0123"
    truncate -s 8 "$(mnt 3)/f"
    wait_for 10 output_is 8 stat -c %s "$(mnt 1)/f"
    [ "$(od -An -c "$(mnt 1)/f" | tr -d ' \n')" = '0123\0\0\0\0' ]

    # Plain reads on other nodes may lag by the replication delay (consistency=open): poll.
    setfattr -n user.color -v blue "$(mnt 1)/f"
    wait_for 10 output_is blue getfattr --absolute-names --only-values -n user.color "$(mnt 3)/f"
    wait_for 10 output_is 'user.color' sh -c "getfattr --absolute-names -d '$(mnt 2)/f' |
        sed -n 's/=.*//p'"
    setfattr -x user.color "$(mnt 2)/f"
    wait_for 10 sh -c "! getfattr --absolute-names -n user.color '$(mnt 1)/f' 2>/dev/null"
    run getfattr --absolute-names -n user.color "$(mnt 1)/f"
    assert_failure
    assert_output --partial "No such attribute"
}

# race_all FN N: run FN 1, FN 2 and FN 3 at once (FN I notes each name it won through mount I
# in $D/won-I); N names must have been won, each exactly once.
race_all() {
    local pids=()
    touch "$D/won-1" "$D/won-2" "$D/won-3"
    for i in 1 2 3; do
        "$1" "$i" &
        pids+=($!)
    done
    for p in "${pids[@]}"; do wait "$p"; done
    echo "wins: node 1 $(wc -l <"$D/won-1"), node 2 $(wc -l <"$D/won-2"), node 3 $(wc -l <"$D/won-3")"
    [ "$(cat "$D"/won-* | wc -l)" -eq "$2" ]
    [ "$(cat "$D"/won-* | sort -u | wc -l)" -eq "$2" ]
}

# race NODE: create r-1..r-50 with O_CREAT|O_EXCL (bash's noclobber) through mount NODE;
# the names won go to $D/won-NODE.
race() {
    set -o noclobber
    for k in $(seq 1 50); do
        if { echo "$1" >"$(mnt "$1")/r-$k"; } 2>/dev/null; then
            echo "r-$k" >>"$D/won-$1"
        fi
    done
}

@test "O_EXCL: three nodes race to create the same 50 names; exactly one wins each" {
    fsd_cluster_start
    race_all race 50
    # Each file holds its winner's number, on every node.
    for i in 1 2 3; do
        while read -r name; do
            [ "$(cat "$(mnt 1)/$name")" = "$i" ]
            [ "$(cat "$(mnt 2)/$name")" = "$i" ]
        done <"$D/won-$i"
    done
}

# race_mkdir_link I: node I makes d-K with mkdir and l-K as a hard link to its own file src-I,
# for K = 1..30, noting the names it won.
race_mkdir_link() {
    local m
    m=$(mnt "$1")
    for k in $(seq 1 30); do
        mkdir "$m/d-$k" 2>/dev/null && echo "d-$k" >>"$D/won-$1"
        ln "$m/src-$1" "$m/l-$k" 2>/dev/null && echo "l-$k" >>"$D/won-$1"
    done
    return 0
}

@test "mkdir and link: three nodes race for the same names; exactly one wins each" {
    fsd_cluster_start
    for i in 1 2 3; do echo "$i" >"$(mnt 1)/src-$i"; done
    wait_for 10 test -e "$(mnt 3)/src-3"
    race_all race_mkdir_link 60
    # Each link is to its winner's file, and the link counts add up, on every node.
    for i in 1 2 3; do
        links=$(grep -c '^l-' "$D/won-$i" || true)
        for n in 1 2 3; do
            wait_for 10 output_is $((links + 1)) stat -c %h "$(mnt "$n")/src-$i"
            grep '^l-' "$D/won-$i" | while read -r name; do
                [ "$(cat "$(mnt "$n")/$name")" = "$i" ]
            done
        done
    done
}

@test "write-temp-then-rename on node 1 while nodes 2 and 3 read: never a missing or partial file" {
    fsd_cluster_start
    m1=$(mnt 1)
    # version K: a header line, 3000 bytes of one letter, an end line
    version() { printf 'version %s\n' "$1"; head -c 3000 /dev/zero | tr '\0' "$2"; printf '\nend %s\n' "$1"; }
    version 0 a >"$m1/cfg"
    wait_for 10 test -e "$(mnt 2)/cfg"
    wait_for 10 test -e "$(mnt 3)/cfg"
    (
        for k in $(seq 1 60); do
            version "$k" "$(printf '\\%03o' $((98 + k % 20)))" >"$m1/cfg.tmp"
            mv "$m1/cfg.tmp" "$m1/cfg"
        done
        touch "$m1/writer-done"
    ) &
    writer=$!
    reader() {
        local m n=0
        m=$(mnt "$1")
        while [ ! -e "$m/writer-done" ]; do
            if ! cat "$m/cfg" >"$D/read-$1" 2>"$D/err-$1"; then
                echo "node $1: cat failed: $(cat "$D/err-$1")" >&2
                return 1
            fi
            # whole: the header's number matches the end line's, and 3000 letters between
            local k
            k=$(sed -n '1s/^version //p' "$D/read-$1")
            if [ -z "$k" ] || [ "$(sed -n '3p' "$D/read-$1")" != "end $k" ] ||
                [ "$(sed -n '2p' "$D/read-$1" | tr -d '\n' | wc -c)" != 3000 ]; then
                echo "node $1 read a partial file: $(head -c 200 "$D/read-$1" | od -c | head -3)" >&2
                return 1
            fi
            n=$((n + 1))
        done
        echo "node $1: $n whole reads"
    }
    reader 2 &
    r2=$!
    reader 3 &
    r3=$!
    wait "$writer"
    wait "$r2"
    wait "$r3"
    [ "$(sed -n '1p' "$(mnt 2)/cfg")" = "version 60" ]
}

@test "quorum loss: writes fail with EROFS, reads still work; writes resume with a quorum" {
    fsd_cluster_start
    echo "kept" >"$(mnt 3)/f"
    [ "$(cat "$(mnt 1)/f")" = kept ]
    fsd_stop 2
    fsd_stop 3
    start=$SECONDS
    run -1 timeout 15 bash -c "echo lost >'$(mnt 1)/new'"
    assert_output --partial "Read-only file system"
    run -1 timeout 15 mkdir "$(mnt 1)/dir"
    assert_output --partial "Read-only file system"
    run timeout 15 cat "$(mnt 1)/f"
    assert_success
    assert_output "kept"
    echo "without a quorum: $((SECONDS - start)) s"
    fsd_start 2 $PEERS
    wait_for 20 fs_writable 1
    echo "back" >"$(mnt 1)/new"
    run cat "$(mnt 2)/new"
    assert_output "back"
}

# 20 times: chmod through one mount, then stat through the next one sees the new mode at once.
chmod_then_stat_elsewhere() {
    echo x >"$(mnt 1)/f"
    for k in $(seq 1 20); do
        chmod "6$((k % 8))0" "$(mnt $((k % 3 + 1)))/f"
        run stat -c %a "$(mnt $(((k + 1) % 3 + 1)))/f"
        assert_output "6$((k % 8))0"
    done
}

@test "consistency=strict: a change made on one node is at once visible to stat on another" {
    fsd_cluster_start --consistency strict
    chmod_then_stat_elsewhere
}

@test "lease reads with consistency=strict: each change is at once visible on another node" {
    fsd_cluster_start --consistency strict --lease-reads
    chmod_then_stat_elsewhere
}

@test "raftfsd refuses bad options with status 2 and names the option" {
    mkdir -p "$(mnt 1)"
    base=(--id 1 --data-dir "$D/n1" --listen "$(addr 1)" --tls-ca "$D/tls/ca.crt"
        --tls-cert "$D/tls/1.crt" --tls-key "$D/tls/1.key")
    run -2 "$RAFTFSD" "${base[@]}" --consistency sometimes "$(mnt 1)"
    assert_output --partial "--consistency sometimes"
    run -2 "$RAFTFSD" "${base[@]}" --op-timeout 0 "$(mnt 1)"
    assert_output --partial "--op-timeout 0: out of range"
    run -2 "$RAFTFSD" "${base[@]}" --peer 2=nowhere "$(mnt 1)"
    assert_output --partial "--peer 2=nowhere: want HOST:PORT"
    run -2 "$RAFTFSD" "${base[@]}" --max-file-size 1G "$(mnt 1)"
    assert_output --partial "--max-file-size 1G"
    run -2 "$RAFTFSD" "${base[@]}" "$D/no-such-dir"
    assert_output --partial "mount point"
    run -2 "$RAFTFSD" "${base[@]}"
    assert_output --partial "mount point is missing"
    ! is_mounted 1
}
