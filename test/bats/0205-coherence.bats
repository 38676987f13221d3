#!/usr/bin/env bats
# Kernel caches kept coherent across nodes (docs/fs.md, "Kernel caches"), O_TRUNC committed with
# the new data, interrupted waits, statfs and fsyncdir: three raftfsd daemons on 127.0.0.1.

load helpers
bats_require_minimum_version 1.5.0

setup() {
    cluster_init 3
}

teardown() {
    # A daemon stopped by a test must be able to take SIGTERM.
    for f in "$D"/n*.pid; do
        [ -e "$f" ] && kill -CONT "$(cat "$f")" 2>/dev/null
    done
    teardown_fs
}

# applied_at_least I INDEX: node I has applied the log up to INDEX.
applied_at_least() { [ "$(rctl "$1" status --json | jq .applied_index)" -ge "$2" ]; }

# synced I: node I has applied everything committed before the call (open() waits for a
# ReadIndex barrier in the default mode, and for the invalidations the barrier covered).
synced() { : <"$(mnt "$1")/.sync"; }

start3() {
    fsd_cluster_start "$@"
    echo >"$(mnt 1)/.sync"
    wait_for 10 test -e "$(mnt 2)/.sync"
    wait_for 10 test -e "$(mnt 3)/.sync"
}

@test "a change on node 2 is seen on node 1 once applied there, though node 1 caches it" {
    start3
    m1=$(mnt 1) m2=$(mnt 2)
    echo old >"$m2/f"
    synced 1
    [ "$(cat "$m1/f")" = old ]
    [ "$(stat -c %a-%s "$m1/f")" = 644-4 ] # now in node 1's kernel caches
    chmod 600 "$m2/f"
    echo newer >"$m2/f"
    # close-to-open: the open waits for node 1 to apply, the pages cached are dropped
    run cat "$m1/f"
    assert_output newer
    run stat -c %a-%s "$m1/f"
    assert_output 600-6
    # a name renamed away, then a name replaced by a rename
    mv "$m2/f" "$m2/g"
    synced 1
    run -1 stat "$m1/f"
    assert_output --partial "No such file"
    echo third >"$m2/tmp"
    mv "$m2/tmp" "$m2/g"
    run cat "$m1/g"
    assert_output third
    # a directory and a file removed; a hard link seen with its count
    mkdir "$m2/d"
    synced 1
    stat "$m1/d" >/dev/null
    rmdir "$m2/d"
    ln "$m2/g" "$m2/h"
    synced 1
    run -1 stat "$m1/d"
    assert_output --partial "No such file"
    run stat -c %h "$m1/g"
    assert_output 2
    rm "$m2/h"
    synced 1
    run stat -c %h "$m1/g"
    assert_output 1
    run -1 stat "$m1/h"
}

@test "stat in a loop on node 1 sees each mode and size node 2 sets, once node 1 applied it" {
    start3
    m1=$(mnt 1) m2=$(mnt 2)
    echo x >"$m1/f"
    synced 2
    (while :; do stat -c %a-%s "$m1/f" >/dev/null 2>&1; done) &
    loop=$!
    for k in $(seq 1 15); do
        chmod "6$((k % 8))0" "$m2/f"
        truncate -s "$k" "$m2/f"
        synced 1
        run stat -c %a-%s "$m1/f"
        [ "$output" = "6$((k % 8))0-$k" ] || {
            kill "$loop"
            echo "round $k: node 1 shows $output" >&2
            return 1
        }
    done
    kill "$loop"
    wait "$loop" || true
}

@test "local mode: names, attributes and pages are served from the kernel's caches while nothing changes" {
    start3 --consistency local
    m1=$(mnt 1)
    head -c 100000 /dev/urandom >"$D/data"
    cp "$D/data" "$m1/f"
    cmp "$D/data" "$m1/f"
    stat "$m1/f" >/dev/null
    # With the daemon stopped, only the kernel can answer: stat of a name just looked at, and
    # a read of a file whose pages were kept across opens.
    run timeout 20 python3 - "$m1/f" "$(node_pid 1)" "$D/data" <<'EOF'
import os, signal, sys
path, pid, ref = sys.argv[1], int(sys.argv[2]), open(sys.argv[3], "rb").read()
fd = os.open(path, os.O_RDONLY)  # answered by the daemon; the pages stay (FOPEN_KEEP_CACHE)
os.kill(pid, signal.SIGSTOP)
try:
    st = os.stat(path)
    data = os.pread(fd, len(ref) + 1, 0)
finally:
    os.kill(pid, signal.SIGCONT)
print(st.st_size, data == ref)
EOF
    kill -CONT "$(node_pid 1)"
    assert_success
    assert_output "100000 True"
}

@test "local mode: a file still open at an older version does not cut a newer open short" {
    start3 --consistency local
    m1=$(mnt 1) m2=$(mnt 2)
    : >"$m1/f"
    wait_for 10 test -e "$m2/f"
    exec 8<"$m2/f" # the empty version
    echo "new contents" >"$m1/f"
    # Node 2 has applied it (which dropped the kernel's attributes of f there), and nothing
    # asked for them since.
    c=$(rctl 1 status --json | jq .commit_index)
    wait_for 10 applied_at_least 2 "$c"
    run cat <&8 # reads the version it opened: asks the size through its handle
    assert_output ""
    exec 8<&-
    # The old version's size was answered without a cache timeout: the new open reads it all.
    run cat "$m2/f"
    assert_output "new contents"
}

@test "O_TRUNC and the new data are one change: readers on node 2 never see the file empty or torn" {
    # The versions differ in size, so a reader whose read() calls straddled a commit (the first
    # got the short version, the next one past its end) would see a mix: that is what the
    # per-open version prevents (docs/fs.md, "One version per open").
    start3
    m1=$(mnt 1) m2=$(mnt 2)
    # Each version is written in 500-byte writes after the O_TRUNC.
    head -c 3000 /dev/zero | tr '\0' a >"$D/a"
    head -c 2000 /dev/zero | tr '\0' b >"$D/b"
    cp "$D/a" "$m1/f"
    synced 2
    (
        for k in $(seq 1 30); do
            if [ $((k % 2)) = 0 ]; then v=a; else v=b; fi
            dd if="$D/$v" of="$m1/f" bs=500 status=none
        done
        echo done >"$m1/writer-done"
    ) &
    writer=$!
    seen=0
    while [ ! -e "$m2/writer-done" ]; do
        cat "$m2/f" >"$D/read"
        sum=$(md5sum <"$D/read" | cut -d' ' -f1)
        case $sum in
        "$(md5sum <"$D/a" | cut -d' ' -f1)" | "$(md5sum <"$D/b" | cut -d' ' -f1)") ;;
        *)
            kill "$writer" 2>/dev/null
            echo "node 2 read $(wc -c <"$D/read") bytes that are neither version:" \
                "$(uniq -c <"$D/read" | head -c 300)" >&2
            return 1
            ;;
        esac
        seen=$((seen + 1))
    done
    wait "$writer"
    echo "reads on node 2: $seen"
    [ "$seen" -gt 0 ]
    cmp "$D/a" "$m2/f" # the last version written
}

@test "a read-only open reads the version it opened, whatever is committed during its reads" {
    start3
    m1=$(mnt 1) m2=$(mnt 2)
    # 300 KiB: the kernel reads it in several requests, and the rest after a commit
    head -c 307200 /dev/urandom >"$D/old"
    head -c 409600 /dev/urandom >"$D/new"
    cp "$D/old" "$m1/f"
    synced 2
    exec 8<"$m2/f"
    dd bs=1000 count=1 status=none <&8 >"$D/read"
    cp "$D/new" "$m1/f" # O_TRUNC and a longer version, committed on close
    synced 2
    cmp "$D/new" "$m2/f" # a new open sees it
    cat <&8 >>"$D/read"
    exec 8<&-
    cmp "$D/old" "$D/read"
    # shorter this time: the open version is not cut
    exec 8<"$m2/f"
    dd bs=1000 count=1 status=none <&8 >"$D/read"
    cp "$D/old" "$m1/f"
    synced 2
    cat <&8 >>"$D/read"
    exec 8<&-
    cmp "$D/new" "$D/read"
}

@test "O_TRUNC: the writing node sees the new size at once, other nodes the old file until close" {
    start3
    m1=$(mnt 1) m2=$(mnt 2)
    echo "old contents" >"$m1/f"
    synced 2
    run python3 - "$m1/f" "$m2/f" <<'EOF'
import os, sys
mine, other = sys.argv[1], sys.argv[2]
fd = os.open(mine, os.O_WRONLY | os.O_TRUNC)
print(os.stat(mine).st_size, open(other).read().strip())
os.ftruncate(fd, 50)
os.pwrite(fd, b"new", 0)
print(os.stat(mine).st_size, open(other).read().strip())
os.close(fd)
EOF
    assert_success
    assert_line -n 0 "0 old contents"
    assert_line -n 1 "50 old contents"
    synced 2
    run stat -c %s "$m2/f"
    assert_output 50
    [ "$(head -c 3 "$m2/f")" = new ]
    [ "$(tail -c 47 "$m2/f" | tr -d '\0' | wc -c)" = 0 ]
}

@test "a signal ends a wait for the cluster at once (EINTR); the change may still commit" {
    start3 --op-timeout 60
    m1=$(mnt 1)
    echo old >"$m1/w"
    # A signal with a handler: the call fails with EINTR (Python raises from the handler).
    # The file to fsync is opened while there is a quorum; then nodes 2 and 3 stop. (A wait
    # for a barrier is interruptible the same way, but without a quorum the leader steps down
    # and barriers then fail at once, so only commits wait long enough here.)
    timeout 60 python3 - "$m1/d" "$m1/.sync" "$m1/renamed" "$m1/w" "$D" >"$D/out" 2>&1 <<'EOF' &
import os, signal, sys, threading, time
class Interrupted(Exception):
    pass
def handler(sig, frame):
    raise Interrupted()
signal.signal(signal.SIGUSR1, handler)
fd = os.open(sys.argv[4], os.O_WRONLY)
os.write(fd, b"new")
open(sys.argv[5] + "/ready", "w").close()
while not os.path.exists(sys.argv[5] + "/go"):
    time.sleep(0.02)
for what in ("mkdir", "rename", "fsync", "close"):
    timer = threading.Timer(1.0, os.kill, (os.getpid(), signal.SIGUSR1))
    timer.start()
    start = time.monotonic()
    try:
        if what == "mkdir":
            os.mkdir(sys.argv[1])
        elif what == "rename":
            os.rename(sys.argv[2], sys.argv[3])
        elif what == "fsync":
            os.fsync(fd)
        else:
            os.close(fd)  # the descriptor is gone either way
        print(what, "returned")
    except Interrupted:
        took = time.monotonic() - start
        print(what, "interrupted", "within 10 s" if took < 10 else "after %.0f s" % took)
EOF
    py=$!
    wait_for 20 test -e "$D/ready"
    fsd_stop 2
    fsd_stop 3
    touch "$D/go"
    wait "$py"
    run cat "$D/out"
    assert_line -n 0 "mkdir interrupted within 10 s"
    assert_line -n 1 "rename interrupted within 10 s"
    assert_line -n 2 "fsync interrupted within 10 s"
    assert_line -n 3 "close interrupted within 10 s"
    # A fatal signal: the process does not sleep uninterruptibly until the op timeout.
    mkdir "$m1/e" &
    pid=$!
    wait_for 10 blocked_in "$pid" 83 258 # mkdir or mkdirat
    start=$SECONDS
    kill -TERM "$pid"
    status=0
    wait "$pid" || status=$?
    echo "mkdir ended $((SECONDS - start)) s after SIGTERM, status $status"
    [ "$status" = 143 ]
    [ $((SECONDS - start)) -lt 10 ]
    # The proposals stayed in the leader's log: with a quorum again they may commit.
    fsd_start 2 $PEERS --op-timeout 60
    wait_for 30 fs_writable 1
    echo "after the quorum returned: d $(test -d "$m1/d" && echo exists || echo missing)," \
        "e $(test -d "$m1/e" && echo exists || echo missing)," \
        "renamed $(test -e "$m1/renamed" && echo exists || echo missing)," \
        "w holds $(cat "$m1/w")"
}

# inodes_used I: inodes in the state machine of node I (statfs), orphans included.
inodes_used() {
    python3 -c "import os,sys; v=os.statvfs(sys.argv[1]); print(v.f_files - v.f_ffree)" "$(mnt "$1")"
}

inodes_used_is() { [ "$(inodes_used "$1")" = "$2" ]; }

@test "an open file removed on this node or another stays usable through its descriptor; closed, it is freed" {
    start3
    head -c 50000 /dev/urandom >"$D/ref"
    for remover in 1 2; do
        cp "$D/ref" "$(mnt 1)/f"
        for i in 1 2 3; do synced "$i"; done
        before=$(inodes_used 3)
        rm -f "$D/ready" "$D/close"
        # Node 1 holds the file open while node $remover removes its name.
        python3 - "$(mnt 1)/f" "$D" >"$D/out" 2>&1 <<'EOF' &
import os, sys, time
path, d = sys.argv[1], sys.argv[2]
ref = open(d + "/ref", "rb").read()
fd = os.open(path, os.O_RDWR)
open(d + "/ready", "w").close()
end = time.monotonic() + 30
while os.path.exists(path) and time.monotonic() < end:
    time.sleep(0.02)
print("name gone:", not os.path.exists(path))
print("read same:", os.pread(fd, len(ref) + 10, 0) == ref)
os.pwrite(fd, b"appended", len(ref))
os.fsync(fd)
print("size, links:", os.fstat(fd).st_size, os.fstat(fd).st_nlink)
print("read back:", os.pread(fd, 8, len(ref)).decode())
sys.stdout.flush()
while not os.path.exists(d + "/close") and time.monotonic() < end:
    time.sleep(0.02)
os.close(fd)
EOF
        py=$!
        wait_for 10 test -e "$D/ready"
        rm "$(mnt "$remover")/f"
        wait_for 20 grep -q "read back" "$D/out"
        run cat "$D/out"
        assert_line "name gone: True"
        assert_line "read same: True"
        assert_line "size, links: 50008 0"
        assert_line "read back: appended"
        # Still there everywhere while open; freed everywhere once closed.
        for i in 1 2 3; do synced "$i"; done
        [ "$(inodes_used 3)" = "$before" ]
        touch "$D/close"
        wait "$py"
        for i in 1 2 3; do wait_for 20 inodes_used_is "$i" $((before - 1)); done
    done
}

@test "a file replaced by a rename while open on another node keeps its contents for the reader" {
    start3
    echo "version one" >"$(mnt 1)/cfg"
    synced 2
    exec 4<"$(mnt 2)/cfg"
    before=$(inodes_used 2)
    echo "version two" >"$(mnt 1)/cfg.new"
    mv "$(mnt 1)/cfg.new" "$(mnt 1)/cfg"
    synced 2
    [ "$(cat "$(mnt 2)/cfg")" = "version two" ]
    run cat <&4
    assert_output "version one"
    [ "$(inodes_used 2)" = $((before + 1)) ] # the new file, and the old one as an orphan
    exec 4<&-
    wait_for 20 inodes_used_is 2 "$before"
    wait_for 20 inodes_used_is 1 "$before"
}

@test "a node that dies holding a removed file open releases it when it mounts again" {
    start3
    m1=$(mnt 1) m2=$(mnt 2)
    echo data >"$m1/f"
    for i in 1 2 3; do synced "$i"; done
    before=$(inodes_used 1)
    exec 4<"$m2/f"
    rm "$m1/f"
    synced 2
    [ "$(cat <&4)" = data ]
    exec 4<&-
    # Node 2 holds g open when it is killed: its bit stays in the orphan until it mounts again.
    echo again >"$m1/g"
    synced 2
    exec 4<"$m2/g"
    rm "$m1/g"
    synced 1
    wait_for 20 inodes_used_is 1 "$before" # f freed; g kept while node 2 holds it
    kill -9 "$(node_pid 2)"
    exec 4<&-
    wait_for 10 bash -c "! grep -q ' $m2 ' /proc/mounts || fusermount3 -u '$m2'"
    [ "$(inodes_used 1)" = "$before" ]
    fsd_start 2 $PEERS
    wait_for 20 inodes_used_is 1 $((before - 1))
    wait_for 20 inodes_used_is 2 $((before - 1))
}

@test "statfs reports the limits and the use; fsyncdir succeeds" {
    start3
    m1=$(mnt 1)
    run stat -f -c "%l %S %b" "$m1"
    assert_success
    assert_output "255 4096 262144" # 1 GiB map in 4 KiB blocks
    use() { python3 -c "import os,sys; v=os.statvfs(sys.argv[1]); print(v.f_files - v.f_ffree, v.f_blocks - v.f_bfree)" "$m1"; }
    read -r files blocks < <(use)
    mkdir "$m1/d"
    for k in $(seq 1 20); do head -c 40000 /dev/urandom >"$m1/d/f$k"; done
    read -r files2 blocks2 < <(use)
    echo "inodes $files -> $files2, blocks used $blocks -> $blocks2"
    [ "$files2" = $((files + 21)) ]
    [ "$blocks2" -gt $((blocks + 20 * 40000 / 4096)) ]
    run python3 -c "import os,sys; fd=os.open(sys.argv[1], os.O_RDONLY); os.fsync(fd); print('ok')" "$m1/d"
    assert_output ok
}
