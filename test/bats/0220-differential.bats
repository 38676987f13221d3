#!/usr/bin/env bats
# The differential test: one seeded random script of operations (test/node/fsdiff.c) runs on a
# tmpfs directory and on raftfs, each operation on the next of the three mounts in turn; every
# result and the final trees must be the same. Replay a failure with RAFTFS_SEED=N (the failing
# test prints the command).

load helpers
bats_require_minimum_version 1.5.0

FSDIFF=$BATS_TEST_DIRNAME/../../$BUILD/test/fsdiff
FSDIFF_OPS=${FSDIFF_OPS:-2000}
FSDIFF_FLAGS=${FSDIFF_FLAGS:-}

setup() {
    cluster_init 3
    mkdir -p "$D/ref"
    # nodev, as FUSE mounts are: the device nodes the script makes never open.
    mount -t tmpfs -o mode=0755,size=64m,nodev raftfs-ref "$D/ref"
}

teardown() {
    teardown_fs
    umount "$D/ref" 2>/dev/null || true
}

# diff_seed SEED: run fsdiff on fresh subdirectories (the root holds the cluster's probe file).
diff_seed() {
    mkdir "$D/ref/s$1" "$(mnt 1)/s$1"
    echo "replay: RAFTFS_SEED=$1 FSDIFF_OPS=$FSDIFF_OPS FSDIFF_FLAGS=-v BUILD=$BUILD bats test/bats/0220-differential.bats"
    # shellcheck disable=SC2086
    "$FSDIFF" $FSDIFF_FLAGS -n "$FSDIFF_OPS" "$1" "$D/ref/s$1" "$(mnt 1)/s$1" "$(mnt 2)/s$1" "$(mnt 3)/s$1"
}

@test "the same random operations on tmpfs and on three raftfs mounts: same results, same tree" {
    fsd_cluster_start
    seeds=${RAFTFS_SEED:-"1 2 3"}
    for s in $seeds; do
        run diff_seed "$s"
        echo "$output"
        assert_success
    done
}
