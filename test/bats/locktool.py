#!/usr/bin/env python3
"""fcntl(2) lock helper for test/bats/0300-locks.bats.

  locktool.py count FILE SLOT START LEN N   N times: open FILE, take a write lock on
      [START, START+LEN) (LEN 0: to the end), add 1 to the decimal counter stored in the 16
      bytes at SLOT*16, and let go: odd rounds unlock with F_UNLCK, even rounds just close.
  locktool.py hold FILE TYPE START LEN      take a read (r) or write (w) lock, print "held",
      keep it until stdin reaches its end.
  locktool.py flock FILE                    take an exclusive flock(2), print "held", keep it
      until stdin reaches its end.
  locktool.py getlk FILE TYPE START LEN     print F_GETLK's answer: "type start len pid".
  locktool.py token FILE                    print the raftfs.lock_token extended attribute.
"""
import fcntl
import os
import struct
import sys

FLOCK = "@hhqqi4x"  # struct flock on Linux (64-bit off_t), with its trailing padding
TYPES = {"r": fcntl.F_RDLCK, "w": fcntl.F_WRLCK}
NAMES = {fcntl.F_RDLCK: "r", fcntl.F_WRLCK: "w", fcntl.F_UNLCK: "u"}


def count(path, slot, start, length, n):
    for i in range(n):
        fd = os.open(path, os.O_RDWR)
        fcntl.lockf(fd, fcntl.LOCK_EX, length, start)
        raw = os.pread(fd, 16, slot * 16).strip(b"\0 \n")
        value = int(raw) if raw else 0
        os.pwrite(fd, b"%15d\n" % (value + 1), slot * 16)
        if i % 2:
            fcntl.lockf(fd, fcntl.LOCK_UN, length, start)
        os.close(fd)


def main(argv):
    cmd = argv[1]
    if cmd == "count":
        count(argv[2], int(argv[3]), int(argv[4]), int(argv[5]), int(argv[6]))
    elif cmd == "hold":
        fd = os.open(argv[2], os.O_RDWR)
        kind = fcntl.LOCK_SH if argv[3] == "r" else fcntl.LOCK_EX
        fcntl.lockf(fd, kind, int(argv[5]), int(argv[4]))
        print("held", flush=True)
        sys.stdin.read()
    elif cmd == "flock":
        fd = os.open(argv[2], os.O_RDWR)
        fcntl.flock(fd, fcntl.LOCK_EX)
        print("held", flush=True)
        sys.stdin.read()
    elif cmd == "getlk":
        fd = os.open(argv[2], os.O_RDWR)
        arg = struct.pack(FLOCK, TYPES[argv[3]], os.SEEK_SET, int(argv[4]), int(argv[5]), 0)
        t, _, start, length, pid = struct.unpack(FLOCK, fcntl.fcntl(fd, fcntl.F_GETLK, arg))
        print(NAMES[t], start, length, pid)
    elif cmd == "token":
        print(os.getxattr(argv[2], "raftfs.lock_token").decode())
    else:
        sys.exit("locktool.py: unknown command " + cmd)


if __name__ == "__main__":
    main(sys.argv)
