#!/usr/bin/env bats
# Durability and quorum loss end to end: what close() or fsync() acknowledged survives kill -9 of
# the leader and of the node that wrote it; without a quorum writes fail with EROFS within the
# op timeout, reads go on, nothing hangs, and writes resume when the quorum is back.

load helpers
bats_require_minimum_version 1.5.0

setup() {
    cluster_init 3
}

teardown() {
    teardown_fs
}

# fsd_crash I: kill -9 raftfsd I. Its mount fails fast (ENOTCONN) until the next start, which
# clears it.
fsd_crash() {
    kill -9 "$(node_pid "$1")"
    wait "$(node_pid "$1")" 2>/dev/null || true
    run -1 timeout 10 stat "$(mnt "$1")/."
    assert_output --partial "Transport endpoint is not connected"
}

# write_acked NODE PREFIX COUNT MODE: write PREFIX-1..COUNT through NODE, by close() (MODE
# close) or fsync() then close() (MODE fsync); "name md5" of each acknowledged file goes to
# $D/acked. Failures are allowed (a leader may be dying).
write_acked() {
    local f
    for k in $(seq 1 "$3"); do
        f=$(mnt "$1")/$2-$k
        head -c $((RANDOM % 20000 + 1)) /dev/urandom >"$D/data"
        if [ "$4" = fsync ]; then
            dd if="$D/data" of="$f" bs=64k conv=fsync status=none 2>/dev/null || continue
        else
            cp "$D/data" "$f" 2>/dev/null || continue
        fi
        echo "$2-$k $(md5sum <"$D/data" | cut -d' ' -f1)" >>"$D/acked"
    done
}

# acked_at_least PREFIX N: N files named PREFIX... were acknowledged so far.
acked_at_least() { [ "$(grep -c "^$1" "$D/acked" 2>/dev/null)" -ge "$2" ]; }

# Every acknowledged file has its contents on every node given.
acked_files_everywhere() {
    local name sum got
    while read -r name sum; do
        for i in "$@"; do
            got=$(md5sum <"$(mnt "$i")/$name" | cut -d' ' -f1) || return 1
            if [ "$got" != "$sum" ]; then
                echo "acknowledged $name differs on node $i" >&2
                return 1
            fi
        done
    done <"$D/acked"
}

@test "files acknowledged by close and fsync on a follower survive kill -9 of the leader and of that follower" {
    fsd_cluster_start
    l=$(fsd_leader)
    w=$((l % 3 + 1))
    other=$((w % 3 + 1))
    [ "$other" != "$l" ] || other=$((other % 3 + 1))
    echo "leader $l, writer $w, survivor $other"
    write_acked "$w" closed 30 close
    write_acked "$w" synced 30 fsync
    [ "$(wc -l <"$D/acked")" = 60 ]
    # Both die at once: the survivor alone has no quorum, and the files must come back from the
    # disks of the dead when they restart.
    kill -9 "$(node_pid "$l")" "$(node_pid "$w")"
    for i in "$l" "$w"; do
        wait "$(node_pid "$i")" 2>/dev/null || true
    done
    fsd_start "$l" $PEERS
    fsd_start "$w" $PEERS
    wait_for 20 fs_writable "$w"
    acked_files_everywhere 1 2 3
}

@test "writes acknowledged while the leader is killed survive, and the restarted leader has them" {
    fsd_cluster_start
    l=$(fsd_leader)
    w=$((l % 3 + 1))
    # Writes through the leader itself, then through a follower across the leader's death.
    write_acked "$l" on-leader 20 fsync
    write_acked "$w" across 40 close &
    writer=$!
    wait_for 20 acked_at_least across- 10
    fsd_crash "$l"
    wait "$writer"
    echo "acknowledged: $(wc -l <"$D/acked") of 60"
    survivors=$(seq 1 3 | grep -vx "$l" | tr '\n' ' ')
    # shellcheck disable=SC2086
    acked_files_everywhere $survivors
    # More writes with the leader gone, then it comes back and catches up.
    write_acked "$w" after 10 close
    fsd_start "$l" $PEERS
    wait_for 20 fs_writable "$l"
    grep -q "cleared the dead mount of an earlier raftfsd" "$D/n$l.log"
    acked_files_everywhere 1 2 3
}

# The survivor's calls: each must finish within the bound, writes with EROFS.
bound() { echo $((OP_TIMEOUT * 3 + 5)); }

expect_erofs() {
    local start=$SECONDS
    run -1 timeout "$(bound)" "$@"
    assert_output --partial "Read-only file system"
    [ $((SECONDS - start)) -le $((OP_TIMEOUT * 3)) ] || {
        echo "'$*' took $((SECONDS - start)) s" >&2
        return 1
    }
}

@test "quorum loss: every kind of write fails with EROFS in bounded time, reads go on, writes resume" {
    fsd_cluster_start
    m=$(mnt 1)
    mkdir "$m/dir"
    echo content >"$m/file"
    ln -s file "$m/link"
    setfattr -n user.k -v v "$m/file"
    fsd_crash 2
    fsd_stop 3
    start=$SECONDS
    expect_erofs touch "$m/new"
    expect_erofs mkdir "$m/newdir"
    expect_erofs rmdir "$m/dir"
    expect_erofs rm "$m/file"
    expect_erofs mv "$m/file" "$m/moved"
    expect_erofs ln "$m/file" "$m/hard"
    expect_erofs ln -s x "$m/sym"
    expect_erofs chmod 600 "$m/file"
    expect_erofs chown 1:1 "$m/file"
    expect_erofs touch -d 2000-01-01 "$m/file"
    expect_erofs truncate -s 1 "$m/file"
    expect_erofs setfattr -n user.k -v w "$m/file"
    expect_erofs setfattr -x user.k "$m/file"
    # Data is committed by close() (dd checks what close returns; a shell's >> does not) and by
    # fsync().
    echo more >"$D/more"
    expect_erofs dd if="$D/more" of="$m/file" oflag=append conv=notrunc status=none
    expect_erofs dd if=/dev/zero of="$m/file" bs=1 count=1 conv=notrunc,fsync status=none
    # Reads: local state, each within the bound.
    run timeout "$(bound)" cat "$m/file"
    assert_success
    assert_output content
    run timeout "$(bound)" ls "$m"
    assert_success
    assert_output --partial dir
    run timeout "$(bound)" readlink "$m/link"
    assert_output file
    run timeout "$(bound)" getfattr --absolute-names --only-values -n user.k "$m/file"
    assert_output v
    run timeout "$(bound)" stat -c %s "$m/file"
    assert_output 8
    run timeout "$(bound)" df "$m"
    assert_success
    echo "without a quorum for $((SECONDS - start)) s"
    # Nothing was changed by the refused writes.
    [ ! -e "$m/new" ] && [ ! -e "$m/moved" ] && [ -d "$m/dir" ]
    [ "$(stat -c '%s %a' "$m/file")" = "8 644" ]
    fsd_start 2 $PEERS
    fsd_start 3 $PEERS
    wait_for 20 fs_writable 1
    echo "more" >>"$m/file"
    mkdir "$m/newdir"
    run cat "$(mnt 3)/file"
    assert_output "$(printf 'content\nmore')"
    [ -d "$(mnt 2)/newdir" ]
}
