#!/usr/bin/env bats
# Every file type (regular, directory, symlink, FIFO, socket, character and block device) with
# every operation that applies to it, on a three-node cluster: made through one mount, seen and
# changed through the others, and the same in every node's digest. A device is only a name and
# a number here (the mount is nodev); a socket's listener lives on the node that bound it.

load helpers
bats_require_minimum_version 1.5.0

RENAME2=$BATS_TEST_DIRNAME/../../$BUILD/test/rename2

setup() {
    cluster_init 3
}

teardown() {
    teardown_fs
}

# make_all DIR: one file of each type in DIR.
make_all() {
    echo data >"$1/reg"
    mkdir "$1/dir"
    ln -s reg "$1/lnk"
    mkfifo "$1/fifo"
    python3 -c 'import socket, sys; socket.socket(socket.AF_UNIX).bind(sys.argv[1])' "$1/sock"
    mknod "$1/chr" c 1 3
    mknod "$1/blk" b 7 200
}

# types DIR: "name type rdev(hex major:minor)" for each file of DIR, sorted.
types() {
    (cd "$1" && stat -c '%n %F %t:%T' -- *) | sort
}

@test "every file type is made, shown and removed alike on every node" {
    fsd_cluster_start
    make_all "$(mnt 1)"
    want="blk block special file 7:c8
chr character special file 1:3
dir directory 0:0
fifo fifo 0:0
lnk symbolic link 0:0
reg regular file 0:0
sock socket 0:0"
    for i in 1 2 3; do
        run types "$(mnt "$i")"
        assert_output "$want"
    done
    # A device is a name, not the device: the mount is nodev.
    run -1 cat "$(mnt 2)/chr"
    assert_output --partial "Permission denied"
    run rctl 1 verify
    assert_success
    assert_output --partial "all 3 digests are equal"
}

@test "chmod, chown and times of every type, through another node" {
    fsd_cluster_start
    make_all "$(mnt 1)"
    m2=$(mnt 2) m3=$(mnt 3)
    for f in reg dir fifo sock chr blk; do
        chmod 0604 "$m2/$f"
        chown 12:34 "$m2/$f"
        touch -m -d @1000000000.5 "$m2/$f"
        [ "$(stat -c '%a %u %g %Y' "$m3/$f")" = "604 12 34 1000000000" ]
    done
    chown -h 56:78 "$m2/lnk"
    touch -h -m -d @1000000001 "$m2/lnk"
    [ "$(stat -c '%u %g %Y' "$m3/lnk")" = "56 78 1000000001" ]
    # The device number survives a change of its owner.
    [ "$(stat -c '%t:%T' "$m3/chr")" = 1:3 ]
    run rctl 2 verify
    assert_success
}

@test "links, renames over and onto, unlink and rmdir with every type" {
    fsd_cluster_start
    m1=$(mnt 1) m2=$(mnt 2) m3=$(mnt 3)
    make_all "$m1"
    mkdir "$m1/into"
    for f in reg lnk fifo sock chr blk; do
        # A second name: both on every node, with two links.
        ln -P "$m2/$f" "$m2/$f.2"
        [ "$(stat -c '%h %i' "$m3/$f.2")" = "2 $(stat -c %i "$m3/$f")" ]
        # Renamed onto a new name in another directory, then over an existing regular file.
        mv -T "$m2/$f.2" "$m2/into/$f"
        [ "$(stat -c %F "$m3/into/$f")" = "$(stat -c %F "$m1/$f")" ]
        echo victim >"$m1/victim"
        mv -T "$m3/into/$f" "$m3/victim"
        [ "$(stat -c %F "$m2/victim")" = "$(stat -c %F "$m1/$f")" ]
        # A regular file renamed over it.
        echo back >"$m1/back"
        mv -T "$m2/back" "$m2/victim"
        [ "$(cat "$m3/victim")" = back ]
        [ "$(stat -c %h "$m3/$f")" = 1 ]
        rm "$m3/victim"
    done
    # A directory holding one of each is not removed; emptied, it is.
    make_all "$m1/dir"
    run -1 rmdir "$m2/dir"
    assert_output --partial "Directory not empty"
    for f in reg lnk fifo sock chr blk; do
        rm "$m3/dir/$f"
        [ ! -e "$m1/dir/$f" ] && [ ! -L "$m1/dir/$f" ]
    done
    rmdir "$m2/dir/dir"
    rmdir "$m2/dir"
    [ ! -e "$m1/dir" ]
    # A name of each type over a directory and a directory over it are type errors.
    mkdir "$m1/d2"
    run -1 "$RENAME2" 0 "$m1/chr" "$m1/d2"
    assert_output --partial EISDIR
    run -1 "$RENAME2" 0 "$m1/d2" "$m1/sock"
    assert_output --partial ENOTDIR
    run rctl 3 verify
    assert_success
    assert_output --partial "all 3 digests are equal"
}

@test "xattrs: user. on files and directories only, trusted. on every type, as on Linux" {
    fsd_cluster_start
    m1=$(mnt 1) m2=$(mnt 2)
    make_all "$m1"
    for f in reg dir; do
        setfattr -n user.k -v "$f" "$m2/$f"
        [ "$(getfattr --only-values -n user.k "$m1/$f")" = "$f" ]
    done
    for f in fifo sock chr blk; do
        run -1 setfattr -n user.k -v x "$m2/$f"
        assert_output --partial "Operation not permitted"
    done
    for f in reg dir fifo sock chr blk; do
        setfattr -n trusted.k -v "t$f" "$m2/$f"
        [ "$(getfattr --only-values -n trusted.k "$m1/$f")" = "t$f" ]
        setfattr -x trusted.k "$m1/$f"
        run -1 getfattr -n trusted.k "$(mnt 3)/$f"
    done
}

@test "a socket's listener lives on the node that bound it" {
    fsd_cluster_start
    m1=$(mnt 1) m2=$(mnt 2)
    # shellcheck disable=SC2016
    python3 -c '
import socket, sys
s = socket.socket(socket.AF_UNIX)
s.bind(sys.argv[1])
s.listen(1)
open(sys.argv[2], "w").close()
c, _ = s.accept()
c.sendall(b"hello from node 1")
c.close()
' "$m1/sock" "$D/listening" &
    server=$!
    wait_for 10 test -e "$D/listening"
    # Another node sees the name but reaches no listener.
    [ "$(stat -c %F "$m2/sock")" = socket ]
    run -1 python3 -c 'import socket, sys; socket.socket(socket.AF_UNIX).connect(sys.argv[1])' "$m2/sock"
    assert_output --partial "ConnectionRefusedError"
    run python3 -c '
import socket, sys
c = socket.socket(socket.AF_UNIX)
c.connect(sys.argv[1])
print(c.recv(100).decode())
' "$m1/sock"
    assert_success
    assert_output "hello from node 1"
    wait "$server"
}
