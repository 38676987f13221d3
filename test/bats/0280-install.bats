#!/usr/bin/env bats
# make install and make uninstall into a staging folder (DESTDIR): the programs, the manual
# pages, the example configuration (which raftfsd accepts) and the systemd unit.

load helpers
bats_require_minimum_version 1.5.0

TOP=$BATS_TEST_DIRNAME/../..

# make in the repository with this build's folder; the test's make must not join the jobserver
# of a `make check` that runs it.
mk() {
    env -u MAKEFLAGS -u MFLAGS -u MAKELEVEL make -C "$TOP" --no-print-directory B="$BUILD" "$@"
}

setup() {
    D=$BATS_TEST_TMPDIR
}

@test "make install DESTDIR puts every file in place, and make uninstall removes them" {
    local R=$D/root
    run mk install DESTDIR="$R"
    assert_success
    (cd "$R" && find . -type f | sort) >"$D/files"
    run cat "$D/files"
    assert_output "./etc/raftfs/raftfs.conf.example
./usr/local/bin/raftfs-ctl
./usr/local/bin/raftfsd
./usr/local/lib/systemd/system/raftfsd.service
./usr/local/share/man/man5/raftfs.conf.5
./usr/local/share/man/man8/raftfs-ctl.8
./usr/local/share/man/man8/raftfsd.8"
    [ "$(stat -c %a "$R/usr/local/bin/raftfsd")" = 755 ]
    [ "$(stat -c %a "$R/usr/local/share/man/man5/raftfs.conf.5")" = 644 ]
    [ "$(stat -c %a "$R/usr/local/lib/systemd/system/raftfsd.service")" = 644 ]
    cmp "$R/usr/local/bin/raftfsd" "$TOP/$BUILD/raftfsd"
    run "$R/usr/local/bin/raftfs-ctl" --help
    assert_success
    assert_output --partial "usage: raftfs-ctl tls"
    run mandoc -Tlint -Wwarning "$R"/usr/local/share/man/man*/*
    assert_success

    # The unit runs the installed daemon in the foreground, clears a dead mount first and is
    # restarted after a failure but not after a bad configuration (status 2).
    local unit=$R/usr/local/lib/systemd/system/raftfsd.service
    grep -qx "ExecStart=/usr/local/bin/raftfsd" "$unit"
    grep -qx "Restart=on-failure" "$unit"
    grep -qx "KillSignal=SIGTERM" "$unit"
    grep -qx "RestartPreventExitStatus=2" "$unit"
    grep -q "^ExecStartPre=-.*fusermount3 -u " "$unit"

    # The example configuration parses: raftfsd gets as far as its certificate files.
    run -2 "$R/usr/local/bin/raftfsd" -c "$R/etc/raftfs/raftfs.conf.example"
    assert_output --regexp "raftfs.conf.example:[0-9]+: tls-ca = /etc/raftfs/tls/ca.crt: "

    # The mount point the unit clears is the file's own: its shell snippet on the example.
    local pre
    pre=$(sed -n "s/^ExecStartPre=-\/bin\/sh -c '\(.*\)'$/\1/p" "$unit")
    [ -n "$pre" ]
    pre=${pre//\/etc\/raftfs\/raftfs.conf/$R/etc/raftfs/raftfs.conf.example}
    mkdir -p "$D/bin"
    printf '#!/bin/sh\necho "fusermount3 $*" >>%s\n' "$D/calls" >"$D/bin/fusermount3"
    chmod +x "$D/bin/fusermount3"
    PATH=$D/bin:$PATH sh -c "$pre"
    run cat "$D/calls"
    assert_output "fusermount3 -u /srv/raftfs"

    # A second install over the first is fine; uninstall leaves only folders.
    run mk install DESTDIR="$R"
    assert_success
    run mk uninstall DESTDIR="$R"
    assert_success
    run find "$R" -type f
    assert_output ""
    [ ! -e "$R/etc/raftfs" ]
    # A node's own configuration is not the installer's to remove.
    mk install DESTDIR="$R" >/dev/null
    echo "id = 1" >"$R/etc/raftfs/raftfs.conf"
    run mk uninstall DESTDIR="$R"
    assert_success
    run find "$R" -type f
    assert_output "$R/etc/raftfs/raftfs.conf"
}

@test "PREFIX moves the programs, and the unit's ExecStart with them" {
    local P=$D/prefix
    run mk install PREFIX="$P" SYSCONFDIR="$P/etc"
    assert_success
    [ -x "$P/bin/raftfsd" ]
    [ -f "$P/share/man/man5/raftfs.conf.5" ]
    [ -f "$P/etc/raftfs/raftfs.conf.example" ]
    grep -qx "ExecStart=$P/bin/raftfsd" "$P/lib/systemd/system/raftfsd.service"
    run mk uninstall PREFIX="$P" SYSCONFDIR="$P/etc"
    assert_success
    [ ! -e "$P/bin/raftfsd" ]
}

@test "the installed systemd unit passes systemd-analyze verify" {
    command -v systemd-analyze >/dev/null || skip "systemd-analyze is not installed"
    # Installed under a PREFIX of its own, the unit's ExecStart names a program that exists.
    local P=$D/prefix
    run mk install PREFIX="$P" SYSCONFDIR="$P/etc"
    assert_success
    run systemd-analyze verify --man=no "$P/lib/systemd/system/raftfsd.service"
    assert_success
    assert_output ""
}
