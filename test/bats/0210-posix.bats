#!/usr/bin/env bats
# POSIX behaviour of a raftfs mount: every operation and its error cases, on a three-node
# cluster (mutual TLS, real FUSE mounts), changes made through one mount and checked through
# another. Limits (name length, file size, total size) and the permission checks of a user who
# is not root.

load helpers
bats_require_minimum_version 1.5.0

RENAME2=$BATS_TEST_DIRNAME/../../$BUILD/test/rename2

setup() {
    cluster_init 3
}

teardown() {
    teardown_fs
}

# as_nobody COMMAND...: run as uid and gid 65534 without supplementary groups, in mount 2
# (relative paths: the test's own directory is closed to other users).
as_nobody() {
    (cd "$(mnt 2)" && setpriv --reuid=65534 --regid=65534 --clear-groups "$@")
}

@test "rename: over a file, over an empty and a non-empty directory, and the type errors" {
    fsd_cluster_start
    m1=$(mnt 1) m2=$(mnt 2)
    echo old >"$m1/f"
    echo new >"$m1/g"
    ino=$(stat -c %i "$m1/g")
    mv -T "$m2/g" "$m2/f"
    [ "$(cat "$m1/f")" = new ]
    [ "$(stat -c %i "$m1/f")" = "$ino" ]
    [ ! -e "$m1/g" ]

    mkdir -p "$m1/d1/sub" "$m1/d2" "$m1/full/x"
    echo inside >"$m1/d1/sub/file"
    # A directory over an empty directory replaces it; over a non-empty one it fails.
    run "$RENAME2" 0 "$m2/d1" "$m2/d2"
    assert_success
    [ "$(cat "$m1/d2/sub/file")" = inside ]
    [ ! -e "$m1/d1" ]
    run -1 "$RENAME2" 0 "$m2/d2" "$m2/full"
    assert_output --partial ENOTEMPTY
    # A file over a directory, a directory over a file.
    run -1 "$RENAME2" 0 "$m1/f" "$m1/d2"
    assert_output --partial EISDIR
    run -1 "$RENAME2" 0 "$m1/d2" "$m1/f"
    assert_output --partial ENOTDIR
    # A directory into itself, and a missing source.
    run -1 "$RENAME2" 0 "$m1/d2" "$m1/d2/sub/deeper"
    assert_output --partial EINVAL
    run -1 "$RENAME2" 0 "$m1/missing" "$m1/x"
    assert_output --partial ENOENT
    # The parents' link counts follow a directory that moves.
    [ "$(stat -c %h "$m2/d2")" = 3 ]
    run "$RENAME2" 0 "$m1/d2/sub" "$m1/full/sub"
    assert_success
    [ "$(stat -c %h "$m2/d2")" = 2 ]
    [ "$(stat -c %h "$m2/full")" = 4 ]
    [ "$(cat "$m2/full/sub/file")" = inside ]
}

@test "rename: RENAME_NOREPLACE and RENAME_EXCHANGE" {
    fsd_cluster_start
    m1=$(mnt 1) m3=$(mnt 3)
    echo a >"$m1/a"
    echo b >"$m1/b"
    mkdir "$m1/dir"
    echo in-dir >"$m1/dir/x"
    run -1 "$RENAME2" noreplace "$m3/a" "$m3/b"
    assert_output --partial EEXIST
    [ "$(cat "$m1/b")" = b ]
    run "$RENAME2" noreplace "$m3/a" "$m3/c"
    assert_success
    [ "$(cat "$m1/c")" = a ]
    [ ! -e "$m1/a" ]

    run "$RENAME2" exchange "$m3/b" "$m3/c"
    assert_success
    [ "$(cat "$m1/b")" = a ]
    [ "$(cat "$m1/c")" = b ]
    # A file and a directory trade places.
    run "$RENAME2" exchange "$m1/c" "$m1/dir"
    assert_success
    [ "$(cat "$m3/dir")" = b ]
    [ "$(cat "$m3/c/x")" = in-dir ]
    run -1 "$RENAME2" exchange "$m1/b" "$m1/missing"
    assert_output --partial ENOENT
    run -1 "$RENAME2" whiteout "$m1/b" "$m1/w"
    assert_output --partial EINVAL
}

@test "hard links: counts on every node, unlink of one name keeps the others, no links to directories" {
    fsd_cluster_start
    m1=$(mnt 1) m2=$(mnt 2) m3=$(mnt 3)
    echo data >"$m1/f"
    mkdir "$m1/d"
    # (Each mount is its own filesystem to the kernel: a link stays within one mount.)
    ln "$m2/f" "$m2/d/g"
    ln "$m3/d/g" "$m3/h"
    for m in "$m1" "$m2" "$m3"; do
        [ "$(stat -c %h "$m/f")" = 3 ]
    done
    [ "$(stat -c %i "$m1/f")" = "$(stat -c %i "$m3/d/g")" ]
    echo more >>"$m2/h"
    [ "$(cat "$m3/f")" = "$(printf 'data\nmore')" ]
    rm "$m1/f"
    [ "$(stat -c %h "$m3/h")" = 2 ]
    rm "$m2/d/g"
    [ "$(stat -c %h "$m1/h")" = 1 ]
    [ "$(cat "$m1/h")" = "$(printf 'data\nmore')" ]
    run -1 ln "$m1/d" "$m1/dlink"
    assert_output --partial "hard link not allowed for directory"
    run -1 ln -T "$m1/h" "$m1/d"
    assert_output --partial "File exists"
    run -1 ln "$m1/missing" "$m1/x"
    assert_output --partial "No such file or directory"
    # Directory link counts: 2 plus one per subdirectory.
    mkdir "$m1/d/s1" "$m1/d/s2"
    [ "$(stat -c %h "$m2/d")" = 4 ]
    rmdir "$m3/d/s1"
    [ "$(stat -c %h "$m1/d")" = 3 ]
}

@test "symlinks: targets, following, dangling links, loops and the target length limit" {
    fsd_cluster_start
    m1=$(mnt 1) m2=$(mnt 2)
    mkdir "$m1/dir"
    echo target >"$m1/dir/file"
    ln -s dir/file "$m1/rel"
    ln -s "$m1/dir" "$m1/abs"
    ln -s nowhere "$m1/dangling"
    ln -s loop "$m1/loop"
    [ "$(readlink "$m2/rel")" = dir/file ]
    [ "$(cat "$m2/rel")" = target ]
    [ "$(cat "$m2/abs/file")" = target ]
    [ "$(stat -c %F "$m2/rel")" = "symbolic link" ]
    [ "$(stat -L -c %F "$m2/rel")" = "regular file" ]
    run -1 cat "$m2/dangling"
    assert_output --partial "No such file or directory"
    run -1 cat "$m2/loop"
    assert_output --partial "Too many levels of symbolic links"
    run -1 ln -s x "$m2/rel"
    assert_output --partial "File exists"
    # The size of a symlink is its target's length; the longest target is 4095 bytes.
    [ "$(stat -c %s "$m2/rel")" = 8 ]
    long=$(printf 'x%.0s' $(seq 1 4095))
    ln -s "$long" "$m1/long"
    [ "$(readlink "$m2/long")" = "$long" ]
    run -1 ln -s "${long}x" "$m1/toolong"
    assert_output --partial "File name too long"
    # Removing the link leaves the target.
    rm "$m2/rel"
    [ "$(cat "$m1/dir/file")" = target ]
}

@test "xattrs: set, replace, list, remove, and their errors" {
    fsd_cluster_start
    m1=$(mnt 1) m2=$(mnt 2)
    echo x >"$m1/f"
    mkdir "$m1/d"
    setfattr -n user.one -v 1 "$m1/f"
    setfattr -n user.two -v 0x00ff00 "$m1/f"
    setfattr -n trusted.root-only -v t "$m1/f"
    setfattr -n user.dir -v yes "$m1/d"
    [ "$(getfattr --absolute-names --only-values -n user.two "$m2/f" | od -An -tx1 | tr -d ' \n')" = 00ff00 ]
    run getfattr --absolute-names -d -m - "$m2/f"
    assert_output --partial 'user.one="1"'
    assert_output --partial 'trusted.root-only="t"'
    [ "$(getfattr --absolute-names --only-values -n user.dir "$m2/d")" = yes ]
    # XATTR_REPLACE of a missing name, XATTR_CREATE of an existing one (setfattr has neither:
    # python's os.setxattr has both).
    run -1 python3 -c "import os; os.setxattr('$m2/f', 'user.one', b'2', os.XATTR_CREATE)"
    assert_output --partial "File exists"
    run -1 python3 -c "import os; os.setxattr('$m2/f', 'user.new', b'2', os.XATTR_REPLACE)"
    assert_output --partial "No data available"
    python3 -c "import os; os.setxattr('$m2/f', 'user.one', b'replaced', os.XATTR_REPLACE)"
    [ "$(getfattr --absolute-names --only-values -n user.one "$m1/f")" = replaced ]
    # An empty value, and the largest one (64 KiB); larger is refused.
    setfattr -n user.empty -v '""' "$m1/f"
    run getfattr --absolute-names -n user.empty "$m2/f"
    assert_success
    python3 -c "import os; os.setxattr('$m1/f', 'user.big', b'v' * 65536)"
    [ "$(getfattr --absolute-names --only-values -n user.big "$m2/f" | wc -c)" = 65536 ]
    run -1 python3 -c "import os; os.setxattr('$m1/f', 'user.huge', b'v' * 65537)"
    assert_output --partial "Argument list too long"
    # An unknown namespace, a missing attribute, removal.
    run -1 setfattr -n bogus.name -v 1 "$m1/f"
    assert_output --partial "Operation not supported"
    run -1 getfattr --absolute-names -n user.missing "$m1/f"
    assert_output --partial "No such attribute"
    setfattr -x user.one "$m2/f"
    run -1 setfattr -x user.one "$m1/f"
    assert_output --partial "No such attribute"
    run getfattr --absolute-names -d "$m1/f"
    refute_output --partial user.one
    assert_output --partial user.two
}

@test "chmod, chown and nanosecond times are kept and seen on every node" {
    fsd_cluster_start
    m1=$(mnt 1) m2=$(mnt 2) m3=$(mnt 3)
    echo x >"$m1/f"
    mkdir "$m1/d"
    chmod 4751 "$m1/f"
    chmod 1777 "$m1/d"
    [ "$(stat -c %a "$m2/f")" = 4751 ]
    # chown clears the set-user-ID bit of a file, also for root (as on every Linux filesystem).
    chown 1234:5678 "$m2/f"
    [ "$(stat -c '%a %u %g' "$m3/f")" = "751 1234 5678" ]
    [ "$(stat -c %a "$m3/d")" = 1777 ]
    touch -m -d "2001-02-03 04:05:06.123456789 UTC" "$m2/f"
    touch -a -d "1999-12-31 23:59:59.000000001 UTC" "$m3/f"
    [ "$(stat -c '%Y %y' "$m1/f")" = "981173106 2001-02-03 04:05:06.123456789 +0000" ]
    [ "$(stat -c '%X %x' "$m1/f")" = "946684799 1999-12-31 23:59:59.000000001 +0000" ]
    # Times before 1970 and far after 2038.
    touch -m -d "1960-06-01 00:00:00.5 UTC" "$m1/f"
    [ "$(stat -c %y "$m2/f")" = "1960-06-01 00:00:00.500000000 +0000" ]
    touch -m -d "2200-01-01 00:00:00 UTC" "$m1/f"
    [ "$(stat -c %Y "$m3/f")" = 7258118400 ]
    # A change moves ctime; touch without a date sets times to now.
    before=$(stat -c %Z "$m1/f")
    chmod 600 "$m1/f"
    [ "$(stat -c %Z "$m2/f")" -ge "$before" ]
    touch "$m1/f"
    now=$(date +%s)
    [ $((now - $(stat -c %Y "$m2/f"))) -lt 60 ]
    run -1 chmod 600 "$m1/missing"
    assert_output --partial "No such file or directory"
}

@test "truncate and sparse files: holes read as zeros and take no space" {
    fsd_cluster_start
    m1=$(mnt 1) m2=$(mnt 2)
    printf 0123456789 >"$m1/f"
    truncate -s 3 "$m2/f"
    [ "$(cat "$m1/f")" = 012 ]
    truncate -s 10000 "$m1/f"
    [ "$(stat -c %s "$m2/f")" = 10000 ]
    head -c 3 "$m2/f" >"$D/head"
    [ "$(cat "$D/head")" = 012 ]
    [ "$(tail -c +4 "$m2/f" | tr -d '\0' | wc -c)" = 0 ]
    truncate -s 0 "$m2/f"
    [ "$(stat -c %s "$m1/f")" = 0 ]

    # A sparse file: 8 MB with two small islands of data.
    truncate -s 8000000 "$D/sparse"
    printf island1 | dd of="$D/sparse" bs=1 seek=1000000 conv=notrunc status=none
    printf island2 | dd of="$D/sparse" bs=1 seek=7999993 conv=notrunc status=none
    truncate -s 8000000 "$m1/s"
    printf island1 | dd of="$m1/s" bs=1 seek=1000000 conv=notrunc status=none
    printf island2 | dd of="$m2/s" bs=1 seek=7999993 conv=notrunc status=none
    cmp "$D/sparse" "$(mnt 3)/s"
    [ "$(stat -c %s "$(mnt 3)/s")" = 8000000 ]
    # Two 4 KiB blocks stored (st_blocks counts 512-byte units), not 8 MB.
    [ "$(stat -c %b "$(mnt 3)/s")" -le 16 ]
    # Growing by truncation after shrinking shows zeros, not the old bytes.
    truncate -s 1000003 "$m1/s"
    truncate -s 2000000 "$m2/s"
    [ "$(dd if="$(mnt 3)/s" bs=1 skip=1000000 count=7 status=none | tr -d '\0')" = isl ]
    run -1 truncate -s 10 "$m1/no-such-dir/f"
    assert_output --partial "No such file or directory"
    run -1 truncate -s 10 "$m1"
    assert_output --partial "Is a directory"
}

@test "a directory of 10,000 entries is listed completely on every node" {
    fsd_cluster_start
    mkdir "$(mnt 1)/big"
    seq -f 'entry-%05g' 1 10000 >"$D/names"
    # Eight creators at once (their commits share log writes); a redirection creates with one
    # change, where touch would also set the times.
    (cd "$(mnt 1)/big" && xargs -P 8 -n 250 sh -c 'for f; do : >"$f"; done' sh <"$D/names")
    for i in 1 2 3; do
        ls -f "$(mnt "$i")/big" | grep -v '^\.\.\?$' | sort >"$D/listed-$i"
        cmp "$D/names" "$D/listed-$i"
    done
    [ "$(stat -c %s "$(mnt 2)/big")" = $((40 + 20 * 10000)) ]
    # readdirplus: the attributes come with the names.
    [ "$(find "$(mnt 3)/big" -type f | wc -l)" = 10000 ]
}

@test "limits: ENAMETOOLONG, EFBIG past --max-file-size, and statfs reports them" {
    fsd_cluster_start --max-file-size 100000
    m1=$(mnt 1) m2=$(mnt 2)
    name255=$(printf 'n%.0s' $(seq 1 255))
    touch "$m1/$name255"
    [ -e "$m2/$name255" ]
    run -1 touch "$m1/${name255}n"
    assert_output --partial "File name too long"
    run -1 mkdir "$m1/${name255}n"
    assert_output --partial "File name too long"
    run -1 mv "$m1/$name255" "$m1/${name255}n"
    assert_output --partial "File name too long"
    [ "$(stat -f -c %l "$m2")" = 255 ]

    head -c 100000 /dev/urandom >"$D/max"
    cp "$D/max" "$m1/max"
    cmp "$D/max" "$m2/max"
    run -1 dd if=/dev/zero of="$m2/max" bs=1 count=1 seek=100000 conv=notrunc status=none
    assert_output --partial "File too large"
    run -1 truncate -s 100001 "$m1/max"
    assert_output --partial "File too large"
    run -1 bash -c "head -c 100001 /dev/zero >'$m1/over'"
    assert_output --partial "File too large"
    cmp "$D/max" "$(mnt 3)/max"
}

@test "ENOSPC: a full state machine refuses writes; every node keeps the same tree and serves reads" {
    fsd_cluster_start --max-size 4194304
    m1=$(mnt 1)
    # Fill it with 64 KiB files until a write is refused.
    full=""
    for k in $(seq 1 200); do
        if ! head -c 65536 /dev/urandom >"$D/blob" || ! cp "$D/blob" "$m1/f$k" 2>"$D/err"; then
            full=$k
            break
        fi
    done
    [ -n "$full" ]
    cat "$D/err"
    grep -q "No space left on device" "$D/err"
    echo "full after $full files"
    # Every node holds the same files with the same contents.
    for i in 1 2 3; do
        (cd "$(mnt "$i")" && find . -type f ! -name '.probe-*' -exec md5sum {} + | sort) >"$D/sums-$i"
    done
    cmp "$D/sums-1" "$D/sums-2"
    cmp "$D/sums-1" "$D/sums-3"
    [ "$(stat -f -c %b "$m1")" = 1024 ]
    [ "$(cat "$(mnt 2)/f1" | wc -c)" = 65536 ]
    # Still full for another file of that size, through another node (small changes may fit).
    run -1 cp "$D/blob" "$(mnt 3)/more"
    assert_output --partial "No space left on device"
}

# More than 1000 of the 1024 blocks free, and the same number on every node.
room_back() {
    local a b c
    a=$(stat -f -c %a "$(mnt 1)") b=$(stat -f -c %a "$(mnt 2)") c=$(stat -f -c %a "$(mnt 3)")
    [ "$a" -gt 1000 ] && [ "$a" = "$b" ] && [ "$b" = "$c" ]
}

@test "ENOSPC: removing files from a full filesystem makes room again" {
    fsd_cluster_start --max-size 4194304
    m1=$(mnt 1) m2=$(mnt 2) m3=$(mnt 3)
    mkdir "$m1/d"
    head -c 65536 /dev/urandom >"$D/blob"
    full=""
    for k in $(seq 1 200); do
        if ! cp "$D/blob" "$m1/d/f$k" 2>"$D/err"; then
            full=$k
            break
        fi
    done
    [ -n "$full" ]
    grep -q "No space left on device" "$D/err"
    setfattr -n user.tag -v full "$m1/d/f1"
    # Fill the last bytes with empty files (at most 200 bytes each in the count) until one is
    # refused; then a directory with a longer name (226 bytes) cannot fit.
    for k in $(seq 1 400); do
        touch "$m1/s$k" 2>"$D/err" || break
    done
    grep -q "No space left on device" "$D/err"
    run -1 mkdir "$m2/newdirectory-name"
    assert_output --partial "No space left on device"
    [ "$(stat -f -c %a "$m1")" = 0 ]
    # Every way of giving room back works while full, from any node.
    truncate -s 10 "$m2/d/f2"
    setfattr -x user.tag "$m3/d/f1"
    mv "$m3/d/f3" "$m3/d/f4"
    rm "$m2/d/f5"
    rm -f "$m1"/s[0-9]*
    # An open file removed elsewhere keeps its blocks until it is closed.
    exec 4<"$m1/d/f6"
    rm "$m2/d/f6"
    [ "$(head -c 65536 <&4 | cmp - "$D/blob" && echo same)" = same ]
    exec 4<&-
    rm -r "$m3/d"
    # The room is back, the same on every node (once the orphan's FORGETs are applied).
    wait_for 10 room_back
    for k in $(seq 1 $((full - 3))); do
        cp "$D/blob" "$m2/g$k"
    done
    cmp "$D/blob" "$m3/g1"
    run rctl 1 verify
    assert_success
    assert_output --partial "all 3 digests are equal"
}

@test "--max-size is recorded when the state machine is made: a restart with another keeps it" {
    fsd_cluster_start --max-size 4194304
    echo x >"$(mnt 1)/a"
    fsd_stop 2
    fsd_start 2 $PEERS --max-size 8388608
    grep -q "max-size 8388608 ignored: the state machine .* records 4194304" "$D/n2.log"
    for i in 1 2 3; do
        [ "$(stat -f -c %b "$(mnt "$i")")" = 1024 ]
    done
    wait_for 10 test -e "$(mnt 2)/a"
    run rctl 2 verify
    assert_success
    assert_output --partial "all 3 digests are equal"
}

@test "permissions: a user who is not root is held to the mode bits on every node" {
    fsd_cluster_start
    m1=$(mnt 1) m2=$(mnt 2)
    echo secret >"$m1/private"
    chmod 600 "$m1/private"
    echo public >"$m1/public"
    chmod 644 "$m1/public"
    mkdir "$m1/open" "$m1/closed" "$m1/sticky"
    chmod 777 "$m1/open"
    chmod 700 "$m1/closed"
    chmod 1777 "$m1/sticky"
    echo root >"$m1/sticky/roots"
    # Reads and writes against the mode bits.
    run -1 as_nobody cat "private"
    assert_output --partial "Permission denied"
    run as_nobody cat "public"
    assert_output public
    run -1 as_nobody bash -c "echo x >>'public'"
    assert_output --partial "Permission denied"
    run -1 as_nobody touch "new-in-root"
    assert_output --partial "Permission denied"
    run -2 as_nobody ls "closed"
    assert_output --partial "Permission denied"
    # Only the owner changes modes and times; only root gives files away.
    run -1 as_nobody chmod 666 "public"
    assert_output --partial "Operation not permitted"
    run -1 as_nobody chown 65534 "public"
    assert_output --partial "Operation not permitted"
    run -1 as_nobody touch -d "2000-01-01" "public"
    assert_output --partial "Permission denied"
    # A file anyone may write: times may be set to now, but only the owner picks them.
    echo shared >"$m1/shared"
    chmod 666 "$m1/shared"
    touch -d "2001-01-01 UTC" "$m1/shared"
    run as_nobody touch "shared"
    assert_success
    [ "$(stat -c %Y "$m1/shared")" -gt 978307200 ]
    run -1 as_nobody touch -d "2000-01-01" "shared"
    assert_output --partial "Operation not permitted"
    # What a user creates is theirs; in a sticky directory others' files stay.
    as_nobody bash -c "echo mine >'open/mine'"
    [ "$(stat -c '%u %g' "$m1/open/mine")" = "65534 65534" ]
    as_nobody chmod 600 "open/mine"
    [ "$(stat -c %a "$(mnt 3)/open/mine")" = 600 ]
    as_nobody touch "sticky/nobodys"
    run -1 as_nobody rm -f "sticky/roots"
    assert_output --partial "Operation not permitted"
    run as_nobody rm "sticky/nobodys"
    assert_success
    run -1 as_nobody mv "sticky/roots" "sticky/stolen"
    assert_output --partial "Operation not permitted"
    # trusted.* xattrs are root's; user.* follow the file's mode.
    run -1 as_nobody setfattr -n trusted.x -v 1 "open/mine"
    run as_nobody setfattr -n user.x -v 1 "open/mine"
    assert_success
    run -1 as_nobody setfattr -n user.x -v 1 "public"
    assert_output --partial "Permission denied"
    # The set-group-ID bit of a directory passes its group to new entries.
    mkdir "$m1/sgid"
    chown 0:4321 "$m1/sgid"
    chmod 2777 "$m1/sgid"
    as_nobody mkdir "sgid/sub"
    [ "$(stat -c '%u %g %a' "$m1/sgid/sub")" = "65534 4321 2755" ]
}

@test "mknod: FIFOs are files on every node (other types: 0215-filetypes.bats)" {
    fsd_cluster_start
    mkfifo -m 640 "$(mnt 1)/fifo"
    [ "$(stat -c '%F %a' "$(mnt 2)/fifo")" = "fifo 640" ]
    # A FIFO's data never leaves the node: a reader and a writer on node 2 meet there.
    (echo through >"$(mnt 2)/fifo") &
    writer=$!
    run timeout 10 cat "$(mnt 2)/fifo"
    assert_output through
    wait "$writer"
}

@test "fallocate: allocate, keep the size, punch holes; other modes are refused" {
    fsd_cluster_start
    m1=$(mnt 1) m2=$(mnt 2) m3=$(mnt 3)
    printf 0123456789 >"$m1/f"
    # Mode 0: the size grows, the new bytes are zeros, and the blocks are taken.
    fallocate -o 4096 -l 16384 "$m2/f"
    [ "$(stat -c %s "$m3/f")" = 20480 ]
    [ "$(stat -c %b "$m3/f")" -ge 40 ]
    [ "$(head -c 10 "$m3/f")" = 0123456789 ]
    [ "$(tail -c +11 "$m3/f" | tr -d '\0' | wc -c)" = 0 ]
    # KEEP_SIZE: blocks past the end, the size stays.
    fallocate -n -o 20480 -l 8192 "$m3/f"
    [ "$(stat -c %s "$m1/f")" = 20480 ]
    [ "$(stat -c %b "$m1/f")" -ge 56 ]
    # A hole in data: zeros, and a whole block punched is given back.
    head -c 20480 /dev/urandom >"$D/ref"
    cp "$D/ref" "$m1/g"
    blocks=$(stat -c %b "$m2/g")
    fallocate -p -o 1000 -l 9000 "$m2/g"
    fallocate -p -o 1000 -l 9000 "$D/ref"
    cmp "$D/ref" "$m3/g"
    [ "$(stat -c %s "$m3/g")" = 20480 ]
    [ "$(stat -c %b "$m3/g")" -lt "$blocks" ]
    # Zero range and collapse range are not supported; the file is untouched.
    run -1 fallocate -z -o 0 -l 4096 "$m1/g"
    assert_output --partial "Operation not supported"
    run -1 fallocate -c -o 0 -l 4096 "$m1/g"
    assert_output --partial "Operation not supported"
    cmp "$D/ref" "$m2/g"
    # Past the maximum file size (64 MiB by default).
    run -1 fallocate -l 70000000 "$m1/big"
    assert_output --partial "File too large"
    run rctl 1 verify
    assert_success
    assert_output --partial "all 3 digests are equal"
}

@test "fallocate through a file being written: what was written before is kept or punched" {
    fsd_cluster_start
    # One open file: a write, a hole punched over part of it, a write after, one close.
    python3 - "$(mnt 1)/f" "$D/ref" <<'PY'
import os, sys
for path in sys.argv[1:]:
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o644)
    os.pwrite(fd, b"a" * 10000, 0)
    os.posix_fallocate(fd, 0, 30000)  # mode 0, after an O_TRUNC not yet committed
    os.pwrite(fd, b"b" * 5000, 12000)
    fd2 = os.open(path, os.O_RDWR)  # the hole through another open file of the node
    os.pwrite(fd2, b"c" * 100, 20000)
    PUNCH, KEEP = 2, 1
    import ctypes
    libc = ctypes.CDLL(None, use_errno=True)
    libc.fallocate.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_long, ctypes.c_long]
    if libc.fallocate(fd2, PUNCH | KEEP, 4000, 10000) != 0:
        raise OSError(ctypes.get_errno(), "fallocate")
    os.pwrite(fd, b"d" * 10, 5000)
    os.close(fd2)
    os.close(fd)
PY
    cmp "$D/ref" "$(mnt 1)/f"
    cmp "$D/ref" "$(mnt 2)/f"
    [ "$(stat -c %s "$(mnt 3)/f")" = 30000 ]
}
