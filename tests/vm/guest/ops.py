#!/usr/bin/env python3
"""File-operation checks of a mounted file system, run in the guest by
tests/vm/guest/ops.sh (scenario 10-ops).  Written for twinfs; runs against
ext4 as well, which is how the checks themselves were validated.

  ops.py run    --mnt DIR [--small DIR] [--sysfs DIR] --record FILE
      exercise the operations and their error cases, then record the state
      of the whole tree (attributes, checksums, listings) in FILE
  ops.py verify --mnt DIR --record FILE
      after umount/fsck/mount: the tree must be exactly as recorded

Every check runs even when an earlier one failed (each test works in its own
directory); the failures are listed at the end and the exit status is 1.
"""
import argparse
import errno
import hashlib
import json
import mmap
import os
import random
import stat
import subprocess
import sys
import time
import traceback

MiB = 1 << 20
GiB = 1 << 30


class Fail(Exception):
    pass


def log(msg):
    print(f"[ops {time.strftime('%T')}] {msg}", flush=True)


def check(cond, msg):
    if not cond:
        raise Fail(msg)


def ename(e):
    return errno.errorcode.get(e.errno, str(e.errno))


def expect_err(names, fn, *args, **kw):
    """fn(*args) must raise OSError with one of names ("EEXIST" or
    "ENOTEMPTY|EEXIST")."""
    want = names.split("|")
    what = f"{fn.__name__}{tuple(a if not isinstance(a, str) or len(a) < 60 else a[:20] + '...' for a in args)}"
    try:
        fn(*args, **kw)
    except OSError as e:
        check(ename(e) in want, f"{what}: expected {names}, got {ename(e)} ({e.strerror})")
        return
    raise Fail(f"{what}: succeeded, expected {names}")


def write_file(path, data, mode=0o644):
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    try:
        view = memoryview(data)
        while view:
            n = os.write(fd, view)
            view = view[n:]
    finally:
        os.close(fd)


def read_file(path):
    with open(path, "rb") as f:
        return f.read()


def pread_all(fd, size, off):
    out = bytearray()
    while len(out) < size:
        b = os.pread(fd, size - len(out), off + len(out))
        if not b:
            break
        out += b
    return bytes(out)


def rand_bytes(rng, n):
    return rng.randbytes(n)


# --- the tests -------------------------------------------------------------
# Each takes its own fresh directory d.

def t_create_open(d, ctx):
    p = f"{d}/f"
    fd = os.open(p, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o640)
    os.close(fd)
    st = os.stat(p)
    check(stat.S_ISREG(st.st_mode), "created file is not regular")
    check(stat.S_IMODE(st.st_mode) == 0o640, f"mode {oct(st.st_mode)}, want 0640")
    check(st.st_size == 0 and st.st_nlink == 1, "new file: size/nlink")
    check(read_file(p) == b"", "new file not empty")
    expect_err("EEXIST", os.open, p, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
    expect_err("ENOENT", os.open, f"{d}/missing", os.O_RDONLY)
    expect_err("ENOENT", os.open, f"{d}/nodir/f", os.O_CREAT | os.O_WRONLY, 0o644)
    expect_err("ENOTDIR", os.open, f"{p}/x", os.O_CREAT | os.O_WRONLY, 0o644)
    expect_err("EISDIR", os.open, d, os.O_WRONLY)
    os.mkdir(f"{d}/sub")
    expect_err("EISDIR", os.open, f"{d}/sub", os.O_RDWR)
    # O_CREAT without O_EXCL opens the existing file.
    os.close(os.open(p, os.O_CREAT | os.O_WRONLY, 0o600))
    check(stat.S_IMODE(os.stat(p).st_mode) == 0o640, "O_CREAT changed the mode of an existing file")
    os.mknod(f"{d}/fifo", 0o600 | stat.S_IFIFO)
    check(stat.S_ISFIFO(os.stat(f"{d}/fifo").st_mode), "mkfifo")


def t_read_write(d, ctx):
    rng = random.Random(1)
    data = bytearray(rand_bytes(rng, 3 * MiB + 123))
    p = f"{d}/data"
    fd = os.open(p, os.O_CREAT | os.O_RDWR, 0o644)
    off, sizes = 0, [1, 4095, 4097, 65537, 131072, 7]
    i = 0
    while off < len(data):
        n = min(sizes[i % len(sizes)], len(data) - off)
        check(os.write(fd, data[off:off + n]) == n, "short write")
        off += n
        i += 1
    check(pread_all(fd, len(data), 0) == data, "read back after sequential writes differs")
    # unaligned overwrite inside the file
    patch = rand_bytes(rng, 10000)
    os.pwrite(fd, patch, 5000)
    data[5000:15000] = patch
    check(pread_all(fd, len(data), 0) == data, "read back after overwrite differs")
    check(os.fstat(fd).st_size == len(data), "size after overwrite")
    # reads at and past EOF
    check(os.pread(fd, 100, len(data)) == b"", "read at EOF not empty")
    check(os.pread(fd, 100, len(data) - 10) == data[-10:], "short read at EOF")
    os.close(fd)
    # O_APPEND
    fd = os.open(p, os.O_WRONLY | os.O_APPEND)
    os.write(fd, b"tail")
    os.close(fd)
    data += b"tail"
    # mmap read and write go through the same page cache
    fd = os.open(p, os.O_RDWR)
    m = mmap.mmap(fd, len(data))
    check(m[:] == data, "mmap read differs")
    m[8190:8200] = b"M" * 10
    data[8190:8200] = b"M" * 10
    m.flush()
    m.close()
    check(pread_all(fd, len(data), 0) == data, "pread after mmap write differs")
    os.fsync(fd)
    os.close(fd)
    check(read_file(p) == data, "buffered read differs")
    # drop clean pages and read from disk
    os.sync()
    with open("/proc/sys/vm/drop_caches", "w") as f:
        f.write("3")
    check(read_file(p) == data, "read after drop_caches differs")


def t_sparse(d, ctx):
    p = f"{d}/sparse"
    fd = os.open(p, os.O_CREAT | os.O_RDWR, 0o644)
    os.pwrite(fd, b"head", 0)
    os.pwrite(fd, b"middle", 3 * MiB + 17)
    os.pwrite(fd, b"end", 8 * MiB + 1)
    os.fsync(fd)
    st = os.fstat(fd)
    check(st.st_size == 8 * MiB + 4, f"sparse size {st.st_size}")
    check(st.st_blocks * 512 < 256 * 1024, f"sparse file uses {st.st_blocks * 512} bytes")
    check(pread_all(fd, 4, 0) == b"head", "sparse head")
    check(pread_all(fd, 3 * MiB + 13, 4) == bytes(3 * MiB + 13), "hole not zero")
    check(pread_all(fd, 6, 3 * MiB + 17) == b"middle", "sparse middle")
    hole = pread_all(fd, 8 * MiB + 1 - (3 * MiB + 23), 3 * MiB + 23)
    check(hole == bytes(len(hole)), "second hole not zero")
    check(pread_all(fd, 10, 8 * MiB - 6) == bytes(7) + b"end", "sparse end")
    os.close(fd)


def t_large(d, ctx):
    """A file larger than 4 GiB (sparse): 32-bit block/offset arithmetic."""
    p = f"{d}/large"
    rng = random.Random(2)
    blob = rand_bytes(rng, 4096)
    edge = rand_bytes(rng, 300)
    fd = os.open(p, os.O_CREAT | os.O_RDWR, 0o644)
    os.pwrite(fd, blob, 5 * GiB)
    os.pwrite(fd, edge, 4 * GiB - 150)	# across the 4 GiB boundary
    os.fsync(fd)
    st = os.fstat(fd)
    check(st.st_size == 5 * GiB + 4096, f"large file size {st.st_size}")
    check(pread_all(fd, 4096, 5 * GiB) == blob, "data at 5 GiB differs")
    check(pread_all(fd, 300, 4 * GiB - 150) == edge, "data across 4 GiB differs")
    check(pread_all(fd, 8192, 4 * GiB + 4096) == bytes(8192), "hole after 4 GiB not zero")
    check(pread_all(fd, 4096, GiB) == bytes(4096), "hole at 1 GiB not zero")
    check(pread_all(fd, 4096, 5 * GiB - 4096) == bytes(4096), "hole before 5 GiB not zero")
    os.close(fd)
    os.sync()
    with open("/proc/sys/vm/drop_caches", "w") as f:
        f.write("3")
    fd = os.open(p, os.O_RDONLY)
    check(pread_all(fd, 4096, 5 * GiB) == blob, "data at 5 GiB differs after drop_caches")
    check(pread_all(fd, 300, 4 * GiB - 150) == edge, "data across 4 GiB differs after drop_caches")
    os.close(fd)
    # truncating above 4 GiB keeps what is before the cut, drops what is after
    p2 = f"{d}/large2"
    fd = os.open(p2, os.O_CREAT | os.O_RDWR, 0o644)
    os.pwrite(fd, blob, 4 * GiB + 4096)
    os.pwrite(fd, edge, 4 * GiB + 100)
    os.ftruncate(fd, 4 * GiB + 1000)
    check(os.fstat(fd).st_size == 4 * GiB + 1000, "ftruncate above 4 GiB")
    check(pread_all(fd, 2000, 4 * GiB) == bytes(100) + edge + bytes(600), "data before a cut above 4 GiB")
    os.ftruncate(fd, 4 * GiB + 3 * 4096)
    check(pread_all(fd, 4096, 4 * GiB + 4096) == bytes(4096), "data beyond a cut above 4 GiB came back")
    os.ftruncate(fd, 0)
    os.close(fd)


def t_truncate(d, ctx):
    rng = random.Random(3)
    data = rand_bytes(rng, 20000)
    p = f"{d}/t"
    write_file(p, data)
    os.truncate(p, 10000)
    check(os.stat(p).st_size == 10000, "shrink size")
    check(read_file(p) == data[:10000], "shrink content")
    os.truncate(p, 30000)		# grow: bytes beyond the old end are zero
    check(os.stat(p).st_size == 30000, "grow size")
    check(read_file(p) == data[:10000] + bytes(20000), "grow: data beyond old end not zero")
    fd = os.open(p, os.O_RDWR)
    os.ftruncate(fd, 4096)
    os.ftruncate(fd, 8192)
    check(pread_all(fd, 8192, 0) == data[:4096] + bytes(4096), "ftruncate to page boundary")
    os.ftruncate(fd, 0)
    check(os.fstat(fd).st_size == 0, "ftruncate 0")
    os.ftruncate(fd, 100)
    check(pread_all(fd, 200, 0) == bytes(100), "grow after truncate to 0")
    os.close(fd)
    # truncate a page-cached, partially written page, then write past it
    write_file(p, data)
    os.sync()
    os.truncate(p, 5000)
    fd = os.open(p, os.O_RDWR)
    os.pwrite(fd, b"X", 12000)
    check(pread_all(fd, 12001, 0) == data[:5000] + bytes(7000) + b"X", "stale data after truncate + extend")
    os.close(fd)
    os.sync()
    with open("/proc/sys/vm/drop_caches", "w") as f:
        f.write("3")
    check(read_file(p) == data[:5000] + bytes(7000) + b"X", "stale data after truncate (from disk)")
    # O_TRUNC
    os.close(os.open(p, os.O_WRONLY | os.O_TRUNC))
    check(os.stat(p).st_size == 0, "O_TRUNC")
    expect_err("EISDIR", os.truncate, d, 0)
    expect_err("ENOENT", os.truncate, f"{d}/missing", 0)
    write_file(f"{d}/final", data[:7777])
    os.truncate(f"{d}/final", 5555)


def t_unlink(d, ctx):
    p = f"{d}/u"
    write_file(p, b"x" * 10000)
    os.unlink(p)
    expect_err("ENOENT", os.stat, p)
    expect_err("ENOENT", os.unlink, p)
    os.mkdir(f"{d}/dir")
    expect_err("EISDIR", os.unlink, f"{d}/dir")
    # an open, unlinked file stays usable until closed
    write_file(p, b"still here")
    fd = os.open(p, os.O_RDWR)
    os.unlink(p)
    check(os.fstat(fd).st_nlink == 0, "nlink of unlinked open file")
    check(os.pread(fd, 100, 0) == b"still here", "read of unlinked open file")
    os.pwrite(fd, b"!", 10)
    check(os.pread(fd, 100, 0) == b"still here!", "write to unlinked open file")
    os.close(fd)
    check(os.listdir(d) == ["dir"], f"leftovers after unlink: {os.listdir(d)}")
    write_file(p, b"new")		# the name is free again
    check(read_file(p) == b"new", "recreate after unlink")


def nlink(p):
    return os.lstat(p).st_nlink


def t_mkdir_rmdir(d, ctx):
    n0 = nlink(d)
    os.mkdir(f"{d}/a", 0o750)
    st = os.stat(f"{d}/a")
    check(stat.S_ISDIR(st.st_mode) and stat.S_IMODE(st.st_mode) == 0o750, "mkdir mode")
    check(st.st_nlink == 2, f"new directory nlink {st.st_nlink}, want 2")
    check(nlink(d) == n0 + 1, f"parent nlink {nlink(d)} after mkdir, want {n0 + 1}")
    check(os.stat(f"{d}/a/..").st_ino == os.stat(d).st_ino, "'..' of a new directory")
    check(sorted(os.listdir(f"{d}/a")) == [], "new directory not empty")
    expect_err("EEXIST", os.mkdir, f"{d}/a")
    expect_err("ENOENT", os.mkdir, f"{d}/missing/x")
    write_file(f"{d}/file", b"f")
    expect_err("ENOTDIR", os.mkdir, f"{d}/file/x")
    expect_err("EEXIST", os.mkdir, f"{d}/file")
    write_file(f"{d}/a/child", b"c")
    expect_err("ENOTEMPTY|EEXIST", os.rmdir, f"{d}/a")
    expect_err("ENOTDIR", os.rmdir, f"{d}/file")
    expect_err("ENOENT", os.rmdir, f"{d}/missing")
    expect_err("EINVAL", os.rmdir, f"{d}/a/.")
    os.unlink(f"{d}/a/child")
    os.rmdir(f"{d}/a")
    expect_err("ENOENT", os.stat, f"{d}/a")
    check(nlink(d) == n0, f"parent nlink {nlink(d)} after rmdir, want {n0}")
    # deep nesting
    p = d
    for i in range(20):
        p = f"{p}/n{i}"
        os.mkdir(p)
    write_file(f"{p}/leaf", b"deep")


def t_rename(d, ctx):
    # plain, same directory
    write_file(f"{d}/a", b"A")
    os.rename(f"{d}/a", f"{d}/b")
    expect_err("ENOENT", os.stat, f"{d}/a")
    check(read_file(f"{d}/b") == b"A", "plain rename content")
    # over an existing file: the target is replaced
    write_file(f"{d}/c", b"C")
    ino_b = os.stat(f"{d}/b").st_ino
    os.rename(f"{d}/b", f"{d}/c")
    check(read_file(f"{d}/c") == b"A" and os.stat(f"{d}/c").st_ino == ino_b, "rename over a file")
    expect_err("ENOENT", os.stat, f"{d}/b")
    # the replaced file lives on while open
    write_file(f"{d}/victim", b"V")
    fd = os.open(f"{d}/victim", os.O_RDONLY)
    write_file(f"{d}/repl", b"R")
    os.rename(f"{d}/repl", f"{d}/victim")
    check(os.pread(fd, 10, 0) == b"V" and os.fstat(fd).st_nlink == 0, "replaced open file")
    os.close(fd)
    # across directories
    os.mkdir(f"{d}/d1")
    os.mkdir(f"{d}/d2")
    write_file(f"{d}/d1/x", b"X")
    os.rename(f"{d}/d1/x", f"{d}/d2/y")
    check(read_file(f"{d}/d2/y") == b"X" and os.listdir(f"{d}/d1") == [], "cross-directory rename")
    # same name, no-op
    os.rename(f"{d}/d2/y", f"{d}/d2/y")
    check(read_file(f"{d}/d2/y") == b"X", "rename onto itself")
    # directory over an empty directory
    os.mkdir(f"{d}/src")
    write_file(f"{d}/src/inner", b"I")
    os.mkdir(f"{d}/emptydst")
    n = nlink(d)
    os.rename(f"{d}/src", f"{d}/emptydst")
    check(read_file(f"{d}/emptydst/inner") == b"I", "dir over empty dir")
    expect_err("ENOENT", os.stat, f"{d}/src")
    check(nlink(d) == n - 1, f"parent nlink {nlink(d)} after dir over empty dir, want {n - 1}")
    # directory over a non-empty directory
    os.mkdir(f"{d}/full")
    write_file(f"{d}/full/f", b"F")
    expect_err("ENOTEMPTY|EEXIST", os.rename, f"{d}/emptydst", f"{d}/full")
    # file over directory, directory over file
    expect_err("EISDIR", os.rename, f"{d}/c", f"{d}/full")
    expect_err("ENOTDIR", os.rename, f"{d}/full", f"{d}/c")
    # directory into another parent: nlinks and '..' follow
    n1, n2 = nlink(f"{d}/d1"), nlink(f"{d}/d2")
    os.rename(f"{d}/full", f"{d}/d1/moved")
    os.rename(f"{d}/d1/moved", f"{d}/d2/moved")
    check(nlink(f"{d}/d1") == n1 and nlink(f"{d}/d2") == n2 + 1, "parent nlinks after moving a directory")
    check(os.stat(f"{d}/d2/moved/..").st_ino == os.stat(f"{d}/d2").st_ino, "'..' of a moved directory")
    check(read_file(f"{d}/d2/moved/f") == b"F", "content of a moved directory")
    # into its own subdirectory, missing source, missing target directory
    expect_err("EINVAL", os.rename, f"{d}/d2", f"{d}/d2/moved/loop")
    expect_err("ENOENT", os.rename, f"{d}/missing", f"{d}/z")
    expect_err("ENOENT", os.rename, f"{d}/c", f"{d}/nodir/z")
    # a hard-linked target: the other name keeps the old data
    write_file(f"{d}/h1", b"H")
    os.link(f"{d}/h1", f"{d}/h2")
    write_file(f"{d}/new", b"N")
    os.rename(f"{d}/new", f"{d}/h1")
    check(read_file(f"{d}/h2") == b"H" and nlink(f"{d}/h2") == 1, "rename over a hard link")
    # many renames in a row through a chain of names
    write_file(f"{d}/r0", b"chain")
    for i in range(200):
        os.rename(f"{d}/r{i}", f"{d}/r{i + 1}")
    check(read_file(f"{d}/r200") == b"chain", "rename chain")


def t_link(d, ctx):
    write_file(f"{d}/orig", b"linked")
    os.link(f"{d}/orig", f"{d}/second")
    s1, s2 = os.stat(f"{d}/orig"), os.stat(f"{d}/second")
    check(s1.st_ino == s2.st_ino and s1.st_nlink == 2, f"link: ino/nlink {s1.st_nlink}")
    with open(f"{d}/second", "ab") as f:
        f.write(b"+more")
    check(read_file(f"{d}/orig") == b"linked+more", "write through a link")
    expect_err("EEXIST", os.link, f"{d}/orig", f"{d}/second")
    os.mkdir(f"{d}/dir")
    expect_err("EPERM", os.link, f"{d}/dir", f"{d}/dirlink")
    expect_err("ENOENT", os.link, f"{d}/missing", f"{d}/x")
    os.link(f"{d}/orig", f"{d}/dir/third")
    check(nlink(f"{d}/orig") == 3, "nlink after link into a subdirectory")
    os.unlink(f"{d}/orig")
    check(nlink(f"{d}/second") == 2 and read_file(f"{d}/dir/third") == b"linked+more",
          "unlink of one name")
    expect_err("EXDEV", os.link, f"{d}/second", "/tmp/ops-xdev-link")


def t_symlink(d, ctx):
    write_file(f"{d}/target", b"via symlink")
    os.symlink("target", f"{d}/s")
    check(os.readlink(f"{d}/s") == "target", "readlink")
    st = os.lstat(f"{d}/s")
    check(stat.S_ISLNK(st.st_mode) and st.st_size == 6, f"lstat of symlink: size {st.st_size}")
    check(read_file(f"{d}/s") == b"via symlink", "open through symlink")
    os.symlink(f"{d}/target", f"{d}/abs")
    check(read_file(f"{d}/abs") == b"via symlink", "absolute symlink")
    os.symlink("nowhere", f"{d}/dangling")
    expect_err("ENOENT", os.stat, f"{d}/dangling")
    expect_err("EEXIST", os.symlink, "x", f"{d}/s")
    expect_err("EINVAL", os.readlink, f"{d}/target")
    long = "/".join(["d" * 99] * 41)[:4000]
    check(len(long) == 4000, "test bug: long target")
    os.symlink(long, f"{d}/long")
    check(os.readlink(f"{d}/long") == long, "readlink of a 4000-byte target")
    check(os.lstat(f"{d}/long").st_size == 4000, "size of a 4000-byte symlink")
    for n in (1, 59, 60, 61, 255, 4095):
        t = ("t" * n)
        os.symlink(t, f"{d}/len{n}")
        check(os.readlink(f"{d}/len{n}") == t, f"readlink of a {n}-byte target")
    expect_err("ENAMETOOLONG", os.symlink, "t" * 4096, f"{d}/toolong")
    os.mkdir(f"{d}/realdir")
    write_file(f"{d}/realdir/in", b"in")
    os.symlink("realdir", f"{d}/dirlink")
    check(read_file(f"{d}/dirlink/in") == b"in", "path through a directory symlink")
    os.unlink(f"{d}/dirlink")
    check(os.path.isdir(f"{d}/realdir"), "unlink of a symlink removed its target")
    os.rename(f"{d}/s", f"{d}/s-renamed")
    check(os.readlink(f"{d}/s-renamed") == "target", "renamed symlink")


def t_readdir(d, ctx):
    """10,000 entries, listed exactly once; then deletions while listing."""
    big = f"{d}/big"
    os.mkdir(big)
    names = []
    for i in range(10000):
        # name lengths vary so entries have different sizes
        name = f"f{i:05d}" + "x" * (i % 37)
        names.append(name)
        fd = os.open(f"{big}/{name}", os.O_CREAT | os.O_WRONLY, 0o644)
        if i % 100 == 0:
            os.write(fd, name.encode())
        os.close(fd)
    for k in range(5):
        os.mkdir(f"{big}/dir{k}")
    expected = set(names) | {f"dir{k}" for k in range(5)}
    listed = os.listdir(big)
    check(len(listed) == len(set(listed)), f"readdir returned {len(listed) - len(set(listed))} duplicates")
    check(set(listed) == expected, f"readdir: {len(expected - set(listed))} missing, {len(set(listed) - expected)} unexpected")
    with os.scandir(big) as it:
        for e in it:
            want_dir = e.name.startswith("dir")
            check(e.is_dir(follow_symlinks=False) == want_dir and
                  e.is_file(follow_symlinks=False) != want_dir, f"d_type of {e.name}")
    # "." and ".." are listed exactly once too (ls -f -a shows them)
    out = subprocess.run(["ls", "-f", "-a", big], capture_output=True, text=True, check=True).stdout.split("\n")
    out = [x for x in out if x]
    check(out.count(".") == 1 and out.count("..") == 1 and len(out) == len(expected) + 2,
          f"ls -a: {len(out)} entries, want {len(expected) + 2}")
    # delete every third file while iterating: the others are seen once
    seen = []
    with os.scandir(big) as it:
        for e in it:
            seen.append(e.name)
            if e.name.startswith("f") and int(e.name[1:6]) % 3 == 0:
                os.unlink(f"{big}/{e.name}")
    keep = {n for n in expected if not (n.startswith("f") and int(n[1:6]) % 3 == 0)}
    check(len(seen) == len(set(seen)), "readdir while deleting returned duplicates")
    check(keep <= set(seen), f"readdir while deleting missed {len(keep - set(seen))} entries")
    listed = os.listdir(big)
    check(sorted(listed) == sorted(keep), f"after deleting: {len(listed)} entries, want {len(keep)}")
    for n in names[::100]:
        if n in keep:
            check(read_file(f"{big}/{n}") == n.encode(), f"content of {n}")
    ctx["readdir"] = {"dir": os.path.relpath(big, ctx["mnt"]), "names": sorted(keep)}
    # an empty directory lists only . and ..
    os.mkdir(f"{d}/empty")
    check(os.listdir(f"{d}/empty") == [], "empty directory")


def t_attrs(d, ctx):
    p = f"{d}/a"
    write_file(p, b"attrs")
    c0 = os.stat(p).st_ctime_ns
    time.sleep(0.01)
    os.chmod(p, 0o751)
    st = os.stat(p)
    check(stat.S_IMODE(st.st_mode) == 0o751, f"chmod: {oct(st.st_mode)}")
    check(st.st_ctime_ns > c0, "chmod did not update ctime")
    os.chmod(p, 0o4755)
    check(stat.S_IMODE(os.stat(p).st_mode) == 0o4755, "chmod setuid")
    os.chown(p, 1234, 5678)
    st = os.stat(p)
    check((st.st_uid, st.st_gid) == (1234, 5678), f"chown: {st.st_uid}:{st.st_gid}")
    check(stat.S_IMODE(st.st_mode) == 0o755, "chown by root must clear setuid")
    os.chown(p, -1, 42)
    st = os.stat(p)
    check((st.st_uid, st.st_gid) == (1234, 42), "chown -1 keeps the uid")
    at, mt = 1_500_000_000_123_456_789, 1_600_000_000_987_654_321
    os.utime(p, ns=(at, mt))
    st = os.stat(p)
    check(st.st_atime_ns == at and st.st_mtime_ns == mt,
          f"utimes: atime {st.st_atime_ns} mtime {st.st_mtime_ns}, want {at} {mt}")
    os.utime(p, ns=(0, 4_000_000_000 * 10**9))	# after 2106: 64-bit times
    check(os.stat(p).st_mtime_ns == 4_000_000_000 * 10**9, "mtime beyond 2106")
    os.utime(p, ns=(at, mt))
    # a write updates mtime and ctime
    m0 = os.stat(p).st_mtime_ns
    with open(p, "ab") as f:
        f.write(b"!")
    check(os.stat(p).st_mtime_ns > m0, "write did not update mtime")
    os.utime(p, ns=(at, mt))
    # directory and symlink attributes
    os.mkdir(f"{d}/dir")
    os.chmod(f"{d}/dir", 0o700)
    os.chown(f"{d}/dir", 7, 8)
    os.utime(f"{d}/dir", ns=(at, mt))
    os.symlink("a", f"{d}/link")
    os.lchown(f"{d}/link", 9, 10)
    st = os.lstat(f"{d}/link")
    check((st.st_uid, st.st_gid) == (9, 10), "lchown of a symlink")
    check(os.stat(p).st_uid == 1234, "lchown followed the symlink")
    # creating an entry updates the directory's mtime
    m0 = os.stat(d).st_mtime_ns
    time.sleep(0.01)
    write_file(f"{d}/new", b"")
    check(os.stat(d).st_mtime_ns > m0, "create did not update the directory mtime")
    expect_err("ENOENT", os.chmod, f"{d}/missing", 0o644)


def statvfs_check(path, dev_size):
    s = os.statvfs(path)
    check(s.f_frsize == 4096 or s.f_bsize == 4096, f"block size {s.f_bsize}/{s.f_frsize}")
    check(0 < s.f_blocks and s.f_blocks * s.f_frsize <= dev_size,
          f"f_blocks {s.f_blocks} for a {dev_size}-byte device")
    check(s.f_bfree <= s.f_blocks and s.f_bavail <= s.f_bfree,
          f"free {s.f_bfree} avail {s.f_bavail} blocks {s.f_blocks}")
    check(s.f_ffree <= s.f_files, f"ffree {s.f_ffree} > files {s.f_files}")
    check(s.f_namemax == 255, f"namemax {s.f_namemax}")
    return s


def t_statfs(d, ctx):
    s0 = statvfs_check(d, ctx["dev_size"])
    data = random.Random(4).randbytes(16 * MiB)
    write_file(f"{d}/fill", data)
    os.sync()
    s1 = statvfs_check(d, ctx["dev_size"])
    used = (s0.f_bfree - s1.f_bfree) * s1.f_frsize
    check(used >= 15 * MiB, f"free space went down by {used} bytes after writing 16 MiB")
    check(used <= 18 * MiB, f"free space went down by {used} bytes after writing 16 MiB")
    if s0.f_files:
        check(s1.f_ffree < s0.f_ffree, "free inodes did not go down after create")
    df = subprocess.run(["df", "-B4096", d], capture_output=True, text=True, check=True).stdout
    log("df: " + df.strip().split("\n")[-1])
    os.unlink(f"{d}/fill")
    os.sync()
    s2 = statvfs_check(d, ctx["dev_size"])
    back = (s2.f_bfree - s1.f_bfree) * s2.f_frsize
    check(back >= 15 * MiB, f"only {back} bytes came back after deleting 16 MiB")


def t_fsync(d, ctx):
    p = f"{d}/f"
    fd = os.open(p, os.O_CREAT | os.O_RDWR, 0o644)
    os.write(fd, b"x" * 100000)
    os.fsync(fd)
    os.pwrite(fd, b"y" * 10, 50)
    os.fdatasync(fd)
    os.close(fd)
    fd = os.open(p, os.O_RDONLY)
    os.fsync(fd)
    os.close(fd)
    fd = os.open(d, os.O_RDONLY | os.O_DIRECTORY)
    os.fsync(fd)
    os.close(fd)
    fd = os.open(f"{d}/sync", os.O_CREAT | os.O_WRONLY | os.O_SYNC, 0o644)
    os.write(fd, b"o_sync")
    os.close(fd)
    os.sync()
    check(read_file(f"{d}/sync") == b"o_sync", "O_SYNC write")


def t_names(d, ctx):
    n255 = "n" * 255
    n256 = "n" * 256
    write_file(f"{d}/{n255}", b"255")
    check(read_file(f"{d}/{n255}") == b"255" and n255 in os.listdir(d), "255-byte name")
    os.mkdir(f"{d}/{'m' * 255}")
    expect_err("ENAMETOOLONG", os.open, f"{d}/{n256}", os.O_CREAT | os.O_WRONLY, 0o644)
    expect_err("ENAMETOOLONG", os.mkdir, f"{d}/{n256}")
    expect_err("ENAMETOOLONG", os.stat, f"{d}/{n256}")
    expect_err("ENAMETOOLONG", os.rename, f"{d}/{n255}", f"{d}/{n256}")
    expect_err("ENAMETOOLONG", os.symlink, "x", f"{d}/{n256}")
    # names with unusual bytes
    for name in ("with space", "new\nline", "ünïcødé", "-dash", ".hidden", "..dots", "a" * 1):
        write_file(f"{d}/{name}", name.encode())
        check(read_file(f"{d}/{name}") == name.encode(), f"name {name!r}")
    check(sorted(os.listdir(d)) == sorted([n255, "m" * 255, "with space", "new\nline", "ünïcødé",
                                           "-dash", ".hidden", "..dots", "a"]), "names listed")
    # case matters
    write_file(f"{d}/Case", b"1")
    write_file(f"{d}/case", b"2")
    check(read_file(f"{d}/Case") == b"1", "names are case-sensitive")


def t_xdev(d, ctx):
    write_file(f"{d}/f", b"x")
    os.mkdir(f"{d}/dir")
    expect_err("EXDEV", os.rename, f"{d}/f", "/tmp/ops-xdev")
    expect_err("EXDEV", os.rename, f"{d}/dir", "/tmp/ops-xdev-dir")
    write_file("/tmp/ops-xdev-src", b"y")
    expect_err("EXDEV", os.rename, "/tmp/ops-xdev-src", f"{d}/g")
    check(os.path.exists(f"{d}/f"), "file lost by a failed cross-device rename")


def t_enospc(small, ctx):
    """Fill the small file system until ENOSPC; deleting gives space back."""
    s0 = os.statvfs(small)
    avail0 = s0.f_bavail * s0.f_frsize
    chunk = b"\xa5" * MiB
    written = 0
    err = None
    fd = os.open(f"{small}/fill", os.O_CREAT | os.O_WRONLY, 0o644)
    try:
        while written < 4 * avail0 + 64 * MiB:
            written += os.write(fd, chunk)	# a short write, then ENOSPC
        check(False, f"no ENOSPC after writing {written} bytes (available {avail0})")
    except OSError as e:
        err = ename(e)
    try:
        os.fsync(fd)
    except OSError as e:
        err = err or ename(e)
    try:
        os.close(fd)
    except OSError as e:
        err = err or ename(e)
    check(err == "ENOSPC", f"filling: expected ENOSPC, got {err}")
    log(f"ENOSPC after {written} bytes ({avail0} available before)")
    check(written >= avail0 // 2, f"ENOSPC after only {written} of {avail0} available bytes")
    s1 = os.statvfs(small)
    check(s1.f_bavail * s1.f_frsize < 2 * MiB, f"{s1.f_bavail} blocks still available after ENOSPC")
    expect_err("ENOSPC", write_file, f"{small}/more", b"m" * (4 * MiB))
    size = os.stat(f"{small}/fill").st_size
    check(size >= written - MiB, f"filled file size {size}, written {written}")
    os.unlink(f"{small}/fill")
    for leftover in ("more",):
        if os.path.exists(f"{small}/{leftover}"):
            os.unlink(f"{small}/{leftover}")
    os.sync()
    s2 = os.statvfs(small)
    check(s2.f_bavail * s2.f_frsize >= avail0 - MiB,
          f"after deleting: {s2.f_bavail * s2.f_frsize} bytes available, {avail0} before")
    data = random.Random(5).randbytes(4 * MiB)
    write_file(f"{small}/after", data)
    os.sync()
    check(read_file(f"{small}/after") == data, "write after freeing space")


def t_sysfs(d, ctx):
    sysfs = ctx["sysfs"]
    check(os.path.isdir(sysfs), f"{sysfs} missing")
    vals = {}
    for name in ("format_version", "blocks", "free_blocks", "mount_options"):
        check(os.path.isfile(f"{sysfs}/{name}"), f"{sysfs}/{name} missing")
        with open(f"{sysfs}/{name}") as f:
            vals[name] = f.read().strip()
    log(f"sysfs: {vals}")
    check(vals["format_version"] == "1", f"format_version {vals['format_version']!r}")
    blocks, free = int(vals["blocks"]), int(vals["free_blocks"])
    check(0 < blocks and blocks * 4096 <= ctx["dev_size"], f"sysfs blocks {blocks}")
    check(0 <= free <= blocks, f"sysfs free_blocks {free} of {blocks}")


TESTS = [t_create_open, t_read_write, t_sparse, t_large, t_truncate, t_unlink,
         t_mkdir_rmdir, t_rename, t_link, t_symlink, t_readdir, t_attrs,
         t_statfs, t_fsync, t_names, t_xdev]


# --- recording and verifying the tree ---------------------------------------

def digest(path, size):
    """sha256 of the file; files over 64 MiB (sparse ones) by a few ranges."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        if size <= 64 * MiB:
            while True:
                b = f.read(MiB)
                if not b:
                    break
                h.update(b)
        else:
            for off in (0, 4 * GiB - MiB, size - 2 * MiB):
                f.seek(off)
                h.update(f.read(2 * MiB))
    return h.hexdigest()


def snapshot(mnt):
    tree = {}
    for top, dirs, files in os.walk(mnt):
        for name in dirs + files:
            p = os.path.join(top, name)
            st = os.lstat(p)
            e = {"mode": st.st_mode, "uid": st.st_uid, "gid": st.st_gid,
                 "nlink": st.st_nlink, "ino": st.st_ino, "size": st.st_size,
                 "mtime_ns": st.st_mtime_ns, "ctime_ns": st.st_ctime_ns}
            if stat.S_ISLNK(st.st_mode):
                e["target"] = os.readlink(p)
            elif stat.S_ISREG(st.st_mode):
                e["sha256"] = digest(p, st.st_size)
            if stat.S_ISDIR(st.st_mode):
                e.pop("size")	# directory sizes are the file system's business
            tree[os.path.relpath(p, mnt)] = e
    return tree


def run_tests(args):
    os.umask(0)
    ctx = {"mnt": args.mnt, "dev_size": args.dev_size, "sysfs": args.sysfs}
    failures = []

    def one(fn, d):
        t0 = time.time()
        try:
            fn(d, ctx)
            log(f"ok   {fn.__name__[2:]} ({time.time() - t0:.1f}s)")
        except Exception as e:  # noqa: BLE001 - report and go on
            msg = str(e) if isinstance(e, Fail) else traceback.format_exc().strip().split("\n")[-1]
            where = [f.lineno for f in traceback.extract_tb(e.__traceback__) if f.name.startswith("t_")]
            log(f"FAIL {fn.__name__[2:]}: {msg} (ops.py line {where[-1] if where else '?'})")
            failures.append(f"{fn.__name__[2:]}: {msg}")

    for fn in TESTS:
        d = os.path.join(args.mnt, fn.__name__[2:])
        os.mkdir(d)
        one(fn, d)
    if args.sysfs:
        one(t_sysfs, args.mnt)
    if args.small:
        one(t_enospc, args.small)
    os.sync()
    snap = snapshot(args.mnt)
    with open(args.record, "w") as f:
        json.dump({"tree": snap, "readdir": ctx.get("readdir"),
                   "statvfs": list(os.statvfs(args.mnt))}, f)
    log(f"recorded {len(snap)} entries in {args.record}")
    return failures


def verify(args):
    with open(args.record) as f:
        rec = json.load(f)
    failures = []
    now = snapshot(args.mnt)
    want = rec["tree"]
    for p in sorted(set(want) - set(now))[:10]:
        failures.append(f"missing after remount: {p}")
    for p in sorted(set(now) - set(want))[:10]:
        failures.append(f"unexpected after remount: {p}")
    bad = 0
    for p in sorted(set(want) & set(now)):
        if want[p] != now[p]:
            diff = {k: (want[p].get(k), now[p].get(k)) for k in set(want[p]) | set(now[p])
                    if want[p].get(k) != now[p].get(k)}
            bad += 1
            if bad <= 10:
                failures.append(f"{p} changed across remount: {diff}")
    if bad > 10:
        failures.append(f"... {bad} entries changed in all")
    r = rec.get("readdir")
    if r:
        listed = os.listdir(os.path.join(args.mnt, r["dir"]))
        if len(listed) != len(set(listed)) or sorted(listed) != r["names"]:
            failures.append(f"readdir of {r['dir']} after remount: {len(listed)} names "
                            f"({len(set(listed))} distinct), want {len(r['names'])}")
    s = os.statvfs(args.mnt)
    b0 = rec["statvfs"][3]
    if abs(s.f_bfree - b0) > 64:
        failures.append(f"free blocks {s.f_bfree} after remount, {b0} before umount")
    # still writable
    try:
        d = os.path.join(args.mnt, "after-remount")
        os.mkdir(d)
        write_file(f"{d}/f", b"after")
        os.rename(f"{d}/f", f"{d}/g")
        check(read_file(f"{d}/g") == b"after", "write after remount")
        os.unlink(os.path.join(args.mnt, "rename/r200"))
    except (OSError, Fail) as e:
        failures.append(f"changes after remount: {e}")
    log(f"verified {len(now)} entries")
    return failures


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("mode", choices=["run", "verify"])
    ap.add_argument("--mnt", required=True)
    ap.add_argument("--small", help="a small, empty file system for ENOSPC")
    ap.add_argument("--sysfs", help="the file system's /sys/fs/twinfs/<dev> directory")
    ap.add_argument("--dev-size", type=int, default=1 << 62)
    ap.add_argument("--record", required=True)
    args = ap.parse_args()
    failures = run_tests(args) if args.mode == "run" else verify(args)
    for f in failures:
        print(f"FAIL: {f}", flush=True)
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
