#!/usr/bin/env python3
"""Undo-log checks of twinfs with injected faults (scenario 50-undo, run in
the guest by guest/undo.sh on a mount with -o fault_inject).

  undo.py matrix --mnt DIR --dev vda --record FILE [--json FILE]
  undo.py verify --mnt DIR --record FILE     after umount/fsck/mount: the
                                             tree exactly as recorded

matrix builds a fixture tree (fx/: files incl. 100 KiB and a depth-1 extent
map, symlinks, hard links, a fifo, an empty and a full directory; big/: 2000
entries), then for every operation variant (VARIANTS) and every fault step:

  - a dry run (nothing armed) counts the hits of each step;
  - for skip 0 (and skip 1, middle and last hit when a step is hit more
    than once): fresh objects in w/<n> and w2/<n>, snapshot of the whole
    tree, arm "<op>:<step> <skip>", run the one operation, read "fired";
  - fired: the operation must fail with EIO (ENOMEM at undo_alloc, whose
    failure is an allocation failure) and the tree must equal the snapshot:
    type, mode, uid, gid, size, nlink, ino, rdev, mtime, ctime, contents,
    symlink targets, listings, and lookups of the names involved (so a
    dentry left behind shows); then the same operation, unarmed, must
    succeed.  A multi-page write cut short by a later hit (a short count,
    no error) is accepted when the file is the old content plus exactly
    the bytes reported;
  - not fired: the step is not reached by that operation, which succeeded;
  - either way: no twinfs kernel line of level warning or worse, and after
    the case's objects are removed the free block and inode counts are
    what they were before it (leaks).
Plus "*:undo_alloc" and "*:commit" for every variant; <op>:commit must fire
for every variant.  dir_split, dir_grow and dir_new_leaf are reached by
adding names until the fault fires, into a fresh directory (its first leaf
fills at ~200 names) and, for create, into big/.  hole_reuse: a write into
a hole rolled back at commit must leave nothing pointing at the block it
gave back.  Prints the matrix variant x step; ends with sync, drop_caches
and a comparison with the state before them, and records the tree.

st_blocks is compared too, but a difference after a rollback is only
reported as a note: by design extent-map leaves an operation allocated stay
(extent_map.c: "leaves are structure, not content").  The final
comparisons (drop_caches, remount) include st_blocks strictly.
UNDO_ONLY=SUBSTRING runs only the variants whose name contains it.
"""
import argparse
import errno
import hashlib
import json
import os
import random
import shutil
import stat
import sys
import time

KiB = 1024
MiB = 1 << 20
BS = 4096
STEPS = ["undo_alloc", "alloc_blocks", "alloc_inode", "map_insert", "map_leaf",
         "truncate", "dir_insert", "dir_split", "dir_grow", "dir_new_leaf",
         "dir_remove", "dir_replace", "dir_parent", "dir_init", "inode_new",
         "symlink", "write_begin", "setattr", "commit"]
DIR_LOOP_STEPS = ["dir_split", "dir_grow", "dir_new_leaf"]
STAR_STEPS = ["undo_alloc", "commit"]
EMPTY_SHA = hashlib.sha256(b"").hexdigest()
MAX_EXTRA_SKIPS = 3		# besides skip 0: skip 1, middle, last hit


def log(msg):
    print(f"[undo {time.strftime('%T')}] {msg}", flush=True)


def ename(code):
    return "OK" if not code else errno.errorcode.get(code, str(code))


class ShortWrite(Exception):
    def __init__(self, n, want):
        super().__init__(f"short write: {n} of {want} bytes")
        self.n = n


# --- fault control ----------------------------------------------------------

class Fault:
    def __init__(self, dev):
        self.dir = f"/sys/kernel/debug/twinfs/{dev}"
        self.total = 0

    def cmd(self, s):
        with open(f"{self.dir}/fail", "w") as f:
            f.write(s)

    def arm(self, point, skip=0, err=None):
        self.cmd(f"{point} {skip}" + (f" {err}" if err else ""))

    def off(self):
        self.cmd("off")

    def fired(self):
        with open(f"{self.dir}/fail") as f:
            for line in f:
                if line.startswith("fired "):
                    return int(line.split()[1])
        raise RuntimeError("no 'fired' line in fail")

    def points(self):
        out = {}
        with open(f"{self.dir}/points") as f:
            for line in f:
                k, v = line.split()
                out[k] = int(v)
        return out


class Kmsg:
    """Kernel log records since the last read (from /dev/kmsg)."""
    def __init__(self):
        self.fd = os.open("/dev/kmsg", os.O_RDONLY | os.O_NONBLOCK)
        os.lseek(self.fd, 0, os.SEEK_END)

    def read(self):
        out = []
        while True:
            try:
                rec = os.read(self.fd, 8192)
            except BlockingIOError:
                break
            except OSError as e:
                if e.errno == errno.EPIPE:	# overwritten records
                    continue
                raise
            head, _, msg = rec.decode(errors="replace").partition(";")
            out.append((int(head.split(",")[0]) & 7, msg.split("\n")[0]))
        return out


# --- files ------------------------------------------------------------------

def write_all(fd, data):
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def mk_file(path, data, mode=0o644):
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    try:
        write_all(fd, data)
    finally:
        os.close(fd)


def mk_ext_file(path, nexts, rng, mode=0o644):
    """One 4 KiB block at every other file block: nexts extents (more than
    the 10 inline ones give a depth-1 map; 255 fill its first leaf)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    try:
        for k in range(nexts):
            os.pwrite(fd, rng.randbytes(BS), 2 * k * BS)
    finally:
        os.close(fd)


def append(path, data):
    fd = os.open(path, os.O_WRONLY | os.O_APPEND)
    try:
        n = os.write(fd, data)
    finally:
        os.close(fd)
    if n != len(data):
        raise ShortWrite(n, len(data))


def pwrite(path, data, off):
    fd = os.open(path, os.O_WRONLY)
    try:
        n = os.pwrite(fd, data, off)
    finally:
        os.close(fd)
    if n != len(data):
        raise ShortWrite(n, len(data))


def digest(path, size):
    if size == 0:
        with open(path, "rb") as f:
            if f.read(1):
                return "size 0 but has data"
        return EMPTY_SHA
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while True:
            b = f.read(1 << 20)
            if not b:
                break
            h.update(b)
    return h.hexdigest()


# --- snapshots --------------------------------------------------------------

def record(p, st):
    e = {"type": stat.S_IFMT(st.st_mode), "mode": stat.S_IMODE(st.st_mode),
         "uid": st.st_uid, "gid": st.st_gid, "nlink": st.st_nlink,
         "ino": st.st_ino, "size": st.st_size, "rdev": st.st_rdev,
         "mtime_ns": st.st_mtime_ns, "ctime_ns": st.st_ctime_ns,
         "blocks": st.st_blocks}
    if stat.S_ISLNK(st.st_mode):
        e["target"] = os.readlink(p)
    elif stat.S_ISREG(st.st_mode):
        e["sha256"] = digest(p, st.st_size)
    elif stat.S_ISDIR(st.st_mode):
        e["list"] = sorted(os.listdir(p))
    return e


class Snapper:
    def __init__(self, mnt):
        self.mnt = mnt
        self.big = os.path.join(mnt, "big")

    def rel(self, p):
        return p[len(self.mnt) + 1:] if p != self.mnt else "."

    def walk(self, top, tree, prev):
        reuse = prev is not None and top == self.big
        rtop = self.rel(top)
        for name in os.listdir(top):
            r = name if rtop == "." else f"{rtop}/{name}"
            # big/'s files never change once made: reuse their records from
            # prev (big/ itself and its listing are always read).
            if reuse:
                e = prev.get(r)
                if e is not None and e.get("type") not in (None, stat.S_IFDIR):
                    tree[r] = e
                    continue
            p = f"{top}/{name}"
            st = os.lstat(p)
            tree[r] = record(p, st)
            if stat.S_ISDIR(st.st_mode):
                self.walk(p, tree, prev)

    def snap(self, probes=(), prev=None):
        """{relative path: record} of the whole mount, plus the probe paths
        (names an operation adds or removes): looked up even if no listing
        has them, {"absent": True} when they do not exist."""
        tree = {".": record(self.mnt, os.lstat(self.mnt))}
        self.walk(self.mnt, tree, prev)
        for p in probes:
            r = self.rel(p)
            try:
                st = os.lstat(p)
            except FileNotFoundError:
                tree.setdefault(r, {"absent": True})
                continue
            if r not in tree:
                e = record(p, st)
                e["unlisted"] = True
                tree[r] = e
        return tree


def diff(want, got, strict_blocks=False):
    """(differences, notes): notes are st_blocks differences unless
    strict_blocks."""
    bad, notes = [], []
    for p in sorted(set(want) | set(got)):
        a, b = want.get(p), got.get(p)
        if a is None:
            bad.append(f"{p}: unexpected entry {short(b)}")
            continue
        if b is None:
            bad.append(f"{p}: missing (was {short(a)})")
            continue
        for k in sorted(set(a) | set(b)):
            va, vb = a.get(k), b.get(k)
            if va == vb:
                continue
            if k == "list":
                sa, sb = set(va or ()), set(vb or ())
                bad.append(f"{p}: listing: lost {sorted(sa - sb)[:8]}, gained {sorted(sb - sa)[:8]}")
            elif k == "blocks" and not strict_blocks:
                notes.append(f"{p}: st_blocks {va} -> {vb}")
            elif k == "mode" and va is not None and vb is not None:
                bad.append(f"{p}: mode {oct(va)} -> {oct(vb)}")
            else:
                bad.append(f"{p}: {k} {va} -> {vb}")
    return bad, notes


def short(e):
    if not e:
        return str(e)
    if e.get("absent"):
        return "(absent)"
    keep = {k: v for k, v in e.items() if k not in ("list", "sha256")}
    return str(keep)


# --- operation variants -----------------------------------------------------
# setup(c) prepares fresh objects (nothing armed) and returns (run, probes);
# run() is the one operation under test.  c.a = w/<n>, c.b = w2/<n> exist.

class Case:
    def __init__(self, mnt, n, target=None):
        self.n = n
        self.a = f"{mnt}/w/{n}"
        self.b = f"{mnt}/w2/{n}"
        self.t = target or self.a		# where a new name goes
        self.rng = random.Random(n)
        os.mkdir(self.a)
        os.mkdir(self.b)

    def cleanup(self):
        shutil.rmtree(self.a)
        shutil.rmtree(self.b)


def v_create(c):
    p = f"{c.t}/new{c.n}"
    return (lambda: os.close(os.open(p, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o640))), [p]


def v_mknod(c):
    p = f"{c.t}/fifo{c.n}"
    return (lambda: os.mkfifo(p, 0o600)), [p]


def v_mkdir(c):
    p = f"{c.t}/dir{c.n}"
    return (lambda: os.mkdir(p, 0o750)), [p]


def v_symlink(c):
    p = f"{c.t}/sym{c.n}"
    return (lambda: os.symlink(f"../target/of/link/{c.n}/" + "x" * 40, p)), [p]


def v_link(c):
    src = f"{c.a}/src"
    mk_file(src, c.rng.randbytes(3000))
    p = f"{c.t}/lnk{c.n}"
    return (lambda: os.link(src, p)), [src, p]


def v_unlink(c):
    p = f"{c.a}/f"
    mk_file(p, c.rng.randbytes(100 * KiB))
    return (lambda: os.unlink(p)), [p]


def v_unlink_hl(c):
    p = f"{c.a}/f"
    mk_file(p, c.rng.randbytes(5000))
    os.link(p, f"{c.b}/other")
    return (lambda: os.unlink(p)), [p, f"{c.b}/other"]


def v_rmdir(c):
    p = f"{c.a}/d"
    os.mkdir(p)
    return (lambda: os.rmdir(p)), [p]


def _rename(src, dst):
    return (lambda: os.rename(src, dst)), [src, dst]


def v_rename_same(c):
    mk_file(f"{c.a}/f", c.rng.randbytes(5000))
    return _rename(f"{c.a}/f", f"{c.a}/g")


def v_rename_cross(c):
    mk_file(f"{c.a}/f", c.rng.randbytes(5000))
    dst = f"{c.t}/ren{c.n}" if c.t != c.a else f"{c.b}/f"
    return _rename(f"{c.a}/f", dst)


def v_rename_over(c):
    mk_file(f"{c.a}/f", c.rng.randbytes(5000))
    mk_file(f"{c.a}/g", c.rng.randbytes(7000))
    return _rename(f"{c.a}/f", f"{c.a}/g")


def v_rename_over_cross(c):
    mk_file(f"{c.a}/f", c.rng.randbytes(5000))
    mk_file(f"{c.b}/g", c.rng.randbytes(7000))
    return _rename(f"{c.a}/f", f"{c.b}/g")


def v_rename_dir_cross(c):
    os.mkdir(f"{c.a}/d")
    os.mkdir(f"{c.a}/d/sub")
    mk_file(f"{c.a}/d/inner", c.rng.randbytes(2000))
    return _rename(f"{c.a}/d", f"{c.b}/d")


def v_rename_dir_over(c):
    os.mkdir(f"{c.a}/d")
    mk_file(f"{c.a}/d/inner", c.rng.randbytes(2000))
    os.mkdir(f"{c.b}/empty")
    return _rename(f"{c.a}/d", f"{c.b}/empty")


def v_chmod(c):
    p = f"{c.a}/f"
    mk_file(p, c.rng.randbytes(3000))
    return (lambda: os.chmod(p, 0o4751)), [p]


def v_chmod_dir(c):
    p = f"{c.a}/d"
    os.mkdir(p, 0o755)
    return (lambda: os.chmod(p, 0o700)), [p]


def v_chown(c):
    p = f"{c.a}/f"
    mk_file(p, c.rng.randbytes(3000))
    return (lambda: os.chown(p, 1234, 5678)), [p]


def v_utime(c):
    p = f"{c.a}/f"
    mk_file(p, c.rng.randbytes(3000))
    return (lambda: os.utime(p, ns=(1_000_000_123_456_789, 1_100_000_987_654_321))), [p]


def v_trunc_shrink(c):
    p = f"{c.a}/f"
    mk_file(p, c.rng.randbytes(100 * KiB + 123))
    return (lambda: os.truncate(p, 5000)), [p]


def v_trunc_grow(c):
    p = f"{c.a}/f"
    mk_file(p, c.rng.randbytes(5000))
    return (lambda: os.truncate(p, 300000)), [p]


def v_trunc_ext(c):
    """300 extents = 2 leaves; cut in the first leaf: frees the second."""
    p = f"{c.a}/f"
    mk_ext_file(p, 300, c.rng)
    return (lambda: os.truncate(p, 100 * BS + 17)), [p]


def v_trunc_ext0(c):
    p = f"{c.a}/f"
    mk_ext_file(p, 16, c.rng)
    return (lambda: os.truncate(p, 0)), [p]


def _append_case(c, old_size, size):
    """Appends size bytes to a file of old_size.  A fault after the first
    page gives a short write: run.partial lets the check accept that when
    the file is exactly the old content plus the bytes reported written."""
    p = f"{c.a}/f"
    old = c.rng.randbytes(old_size)
    mk_file(p, old)
    data = c.rng.randbytes(size)

    def run():
        append(p, data)
    run.partial = (p, old, data)
    return run, [p]


def v_write_4k(c):
    return _append_case(c, 100 * KiB, 4 * KiB)


def v_write_4k_unal(c):
    return _append_case(c, 100 * KiB + 1000, 4 * KiB)


def v_write_1m(c):
    return _append_case(c, 100 * KiB, MiB)


def v_write_new(c):
    return _append_case(c, 0, 16 * KiB)


def v_write_deepen(c):
    """10 inline extents; an 11th beyond EOF makes the map depth 1."""
    p = f"{c.a}/f"
    mk_ext_file(p, 10, c.rng)
    data = c.rng.randbytes(BS)
    return (lambda: pwrite(p, data, 20 * BS)), [p]


def v_write_leafsplit(c):
    """255 extents fill the first leaf; a 256th beyond EOF splits it."""
    p = f"{c.a}/f"
    mk_ext_file(p, 255, c.rng)
    data = c.rng.randbytes(BS)
    return (lambda: pwrite(p, data, 510 * BS)), [p]


def v_write_hole(c):
    """Fills a hole inside the old size of a depth-1 file."""
    p = f"{c.a}/f"
    mk_ext_file(p, 16, c.rng)
    data = c.rng.randbytes(BS)
    return (lambda: pwrite(p, data, 5 * BS)), [p]


# (name, kernel op name, setup)
VARIANTS = [
    ("create", "create", v_create),
    ("mknod_fifo", "mknod", v_mknod),
    ("mkdir", "mkdir", v_mkdir),
    ("symlink", "symlink", v_symlink),
    ("link", "link", v_link),
    ("unlink", "unlink", v_unlink),
    ("unlink_hardlink", "unlink", v_unlink_hl),
    ("rmdir", "rmdir", v_rmdir),
    ("rename_in_dir", "rename", v_rename_same),
    ("rename_cross_dir", "rename", v_rename_cross),
    ("rename_over_file", "rename", v_rename_over),
    ("rename_over_file_x", "rename", v_rename_over_cross),
    ("rename_dir_cross", "rename", v_rename_dir_cross),
    ("rename_dir_over_empty", "rename", v_rename_dir_over),
    ("chmod", "setattr", v_chmod),
    ("chmod_dir", "setattr", v_chmod_dir),
    ("chown", "setattr", v_chown),
    ("utime", "setattr", v_utime),
    ("truncate_shrink", "truncate", v_trunc_shrink),
    ("truncate_grow", "truncate", v_trunc_grow),
    ("truncate_2leaves", "truncate", v_trunc_ext),
    ("truncate_depth1_to_0", "truncate", v_trunc_ext0),
    ("write_append_4k", "write", v_write_4k),
    ("write_append_4k_unal", "write", v_write_4k_unal),
    ("write_append_1m", "write", v_write_1m),
    ("write_new_file", "write", v_write_new),
    ("write_deepen_map", "write", v_write_deepen),
    ("write_split_leaf", "write", v_write_leafsplit),
    ("write_fill_hole", "write", v_write_hole),
]
# Variants that add a name: run in a loop (into a fresh directory, and
# create also into big/) to reach the split steps.
LOOP_VARIANTS = [("create", "create", v_create), ("mknod_fifo", "mknod", v_mknod),
                 ("mkdir", "mkdir", v_mkdir), ("symlink", "symlink", v_symlink),
                 ("link", "link", v_link), ("rename_cross_dir", "rename", v_rename_cross)]


# --- the matrix -------------------------------------------------------------

class Matrix:
    def __init__(self, args):
        self.mnt = args.mnt
        self.fault = Fault(args.dev)
        self.snapper = Snapper(args.mnt)
        self.n = 0
        self.prev = None
        self.cells = {}		# (variant, column) -> [results]
        self.failures = []
        self.notes = []
        self.fired_total = 0
        self.cases = 0
        self.kmsg = Kmsg()
        self.injected = 0

    def next_case(self, target=None):
        self.n += 1
        return Case(self.mnt, self.n, target)

    def snap(self, probes=()):
        s = self.snapper.snap(probes, self.prev)
        self.prev = s
        return s

    def note_fail(self, msg):
        self.failures.append(msg)
        log(f"FAIL: {msg}")

    @staticmethod
    def call(run):
        try:
            run()
        except OSError as e:
            return e.errno, None
        except ShortWrite as e:
            return None, e
        return None, None

    def dry_hits(self, setup):
        """Hits per step of one unarmed run of the variant."""
        c = self.next_case()
        run, _ = setup(c)
        before = self.fault.points()
        err, sw = self.call(run)
        after = self.fault.points()
        c.cleanup()
        if err or sw:
            self.note_fail(f"dry run of {setup.__name__}: {ename(err)} {sw or ''}")
        return {k: after[k] - before.get(k, 0) for k in after}

    def one(self, name, point, skip=0, errnum=None, setup=None, case=None):
        """One armed attempt on the objects setup(case) makes (a fresh case
        unless given).  Returns 'fired', 'partial', 'not reached' or
        'failed'."""
        self.cases += 1
        free0 = None if case else self.free()
        c = case or self.next_case()
        run, probes = setup(c)
        before = self.snap(probes)
        self.fault.arm(point, skip, errnum)
        err, sw = self.call(run)
        fired = self.fault.fired()
        self.fault.off()
        what = f"{name} [{point} {skip}{' ' + str(errnum) if errnum else ''}]"
        want_err = errnum or errno.EIO
        if point.endswith(":undo_alloc"):
            # The undo log's segment allocation "fails": ENOMEM whatever
            # errno was armed.
            want_err = errno.ENOMEM
        result = "not reached"
        if fired and sw is not None and hasattr(run, "partial"):
            self.fired_total += fired
            result = self.check_partial(what, run.partial, sw.n, before, probes)
        elif fired:
            self.fired_total += fired
            result = "fired"
            if err != want_err:
                self.note_fail(f"{what}: fault fired, operation returned {ename(err)}"
                               f"{' (' + str(sw) + ')' if sw else ''}, want {ename(want_err)}")
                result = "failed"
            after = self.snapper.snap(probes, None)
            bad, notes = diff(before, after)
            if bad:
                self.note_fail(f"{what}: not restored: " + "; ".join(bad[:12]))
                result = "failed"
            for nt in notes:
                self.notes.append(f"{what}: {nt}")
            self.prev = after
            if result == "fired":
                # The rolled-back state must be usable: the same operation
                # now succeeds.
                err2, sw2 = self.call(run)
                if err2 or sw2:
                    self.note_fail(f"{what}: retry after the rollback: {ename(err2)} {sw2 or ''}")
                    result = "failed"
        elif err or sw:
            self.note_fail(f"{what}: not fired, but the operation failed: {ename(err)} {sw or ''}")
            result = "failed"
        klog = []
        for prio, msg in self.kmsg.read():
            if "injected fault" in msg:
                self.injected += 1
            elif prio <= 4 and "twinfs" in msg:
                klog.append(msg)
        if klog:
            self.note_fail(f"{what}: {len(klog)} kernel error lines: {klog[0]}"
                           + (f" ... {klog[-1]}" if len(klog) > 1 else ""))
            result = "failed"
        c.cleanup()
        if free0 is not None:
            free1 = self.free()
            if free1 != free0:
                self.note_fail(f"{what}: {free0[0] - free1[0]} blocks and {free0[1] - free1[1]} "
                               "inodes stay allocated after the case's objects were removed")
                result = "failed"
        return result

    def check_partial(self, what, partial, n, before, probes):
        """A write cut short by the fault: the file holds the old content
        plus the first n bytes, nothing else in the tree changed."""
        path, old, data = partial
        r = self.snapper.rel(path)
        after = self.snapper.snap(probes, None)
        self.prev = after
        ok = True
        f = after.get(r, {})
        want_sha = hashlib.sha256(old + data[:n]).hexdigest()
        if f.get("size") != len(old) + n or f.get("sha256") != want_sha:
            self.note_fail(f"{what}: short write of {n} bytes, but the file has size "
                           f"{f.get('size')} (want {len(old) + n}), content "
                           f"{'ok' if f.get('sha256') == want_sha else 'wrong'}")
            ok = False
        b2 = dict(before)
        a2 = dict(after)
        for k in ("size", "sha256", "mtime_ns", "ctime_ns", "blocks"):
            b2[r] = {kk: vv for kk, vv in b2[r].items() if kk != k}
            a2[r] = {kk: vv for kk, vv in a2.get(r, {}).items() if kk != k}
        bad, _ = diff(b2, a2)
        if bad:
            self.note_fail(f"{what}: short write of {n} bytes changed more: " + "; ".join(bad[:12]))
            ok = False
        return "partial" if ok else "failed"

    def cell(self, variant, col, res):
        self.cells.setdefault((variant, col), []).append(res)

    def free(self):
        st = os.statvfs(self.mnt)
        return st.f_bfree, st.f_ffree

    def leak_check(self, what, free0):
        b1, i1 = self.free()
        if (b1, i1) != free0:
            self.note_fail(f"{what}: free blocks {free0[0]} -> {b1}, free inodes "
                           f"{free0[1]} -> {i1} after all its cases were cleaned up")

    def run_variant(self, vname, kop, setup):
        t0 = time.time()
        free0 = self.free()
        hits = self.dry_hits(setup)
        for step in STEPS:
            h = hits.get(step, 0)
            skips = [0]
            if h > 1:
                skips += sorted({1, h // 2, h - 1})[:MAX_EXTRA_SKIPS]
            for k in skips:
                res = self.one(vname, f"{kop}:{step}", k, setup=setup)
                if res == "not reached" and h > k:
                    self.notes.append(f"{vname}: {step} skip {k} not reached although the dry run hit it {h} times")
                self.cell(vname, step, res)
                if res == "not reached":
                    break
        for step in STAR_STEPS:
            self.cell(vname, "*:" + step, self.one(vname, f"*:{step}", 0, setup=setup))
        if not set(self.cells.get((vname, "commit"), [])) & {"fired", "failed"}:
            self.note_fail(f"{vname}: {kop}:commit did not fire")
        # Every case cleaned up after itself: nothing may stay allocated.
        self.leak_check(vname, free0)
        log(f"{vname}: {self.row(vname)} ({time.time() - t0:.0f}s)")

    def run_loop(self, vname, kop, setup, step, target, limit, required=True):
        """Adds names to target until <op>:<step> fires."""
        t0 = time.time()
        row = f"{vname}@{os.path.basename(target)}"
        for i in range(limit):
            c = self.next_case(target=target)
            res = self.one(row, f"{kop}:{step}", 0, setup=setup, case=c)
            if res != "not reached":
                self.cell(row, step, res)
                log(f"{row} {step}: {res} after {i + 1} attempts ({time.time() - t0:.0f}s)")
                return
        self.cell(row, step, "not reached")
        msg = f"{row} {step}: not reached in {limit} attempts"
        if required:
            self.note_fail(msg)
        else:
            log(msg)

    def fill_to_split(self, d, limit=4000):
        """Adds names (nothing armed) until one splits a leaf of d: the
        next inserts are likely to split too (leaves fill in waves)."""
        for i in range(limit):
            h0 = self.fault.points()["dir_split"]
            mk_file(f"{d}/fill-{i:05d}", b"")
            if self.fault.points()["dir_split"] > h0:
                log(f"{os.path.basename(d)}: a leaf split after {i + 1} more names")
                return
        log(f"{os.path.basename(d)}: no split in {limit} names")

    def row(self, vname):
        return " ".join(f"{col}={self.sym(vname, col)}" for col in STEPS + ["*:" + s for s in STAR_STEPS]
                        if self.sym(vname, col) not in (".", " "))

    def sym(self, vname, col):
        rs = self.cells.get((vname, col))
        if not rs:
            return " "
        if "failed" in rs:
            return "X"
        n = rs.count("fired")
        pn = rs.count("partial")
        if not n and not pn:
            return "."
        return ("R" if n else "") + (str(n) if n > 1 else "") + ("P" if pn else "")

    def print_matrix(self):
        cols = STEPS + ["*:" + s for s in STAR_STEPS]
        rows = [v for v, _, _ in VARIANTS] + [v + "@fresh" for v, _, _ in LOOP_VARIANTS] + \
            ["create@big", "hole_reuse"]
        w = max(len(r) for r in rows) + 1
        print("\nundo matrix (operation variant x fault step):\n"
              "  R  = fault fired, operation failed with EIO (ENOMEM at undo_alloc), tree\n"
              "       exactly restored, nothing leaked, no kernel error, the retry succeeded\n"
              "  Rn = the same for n hit positions of the step (skip 0, 1, middle, last)\n"
              "  P  = a later hit cut a multi-page write short: file = old + bytes written\n"
              "  .  = the operation never reaches the step (it succeeded)\n"
              "  X  = FAILURE (see below); blank = not tried")
        for i, col in enumerate(cols):
            print(" " * w + "|  " * i + col)
        print(" " * w + "|  " * len(cols))
        for r in rows:
            print(f"{r:<{w}}" + "".join(f"{self.sym(r, c):<3}" for c in cols))
        print(flush=True)


def hole_reuse(m, mnt):
    """A write into a hole inside the file, rolled back at commit: the
    block it mapped is given back.  Nothing may still point at it: a file
    written next gets that block (on a fresh file system it is the lowest
    free one of the group) and must read back intact after writeback.
    Runs first, while no block below has been freed."""
    d = f"{mnt}/hole"
    os.mkdir(d)
    rng = random.Random(7)
    f, g = f"{d}/f", f"{d}/g"
    mk_ext_file(f, 16, rng)
    os.sync()
    x = rng.randbytes(BS)
    m.fault.arm("write:commit")
    err, _ = m.call(lambda: pwrite(f, x, 5 * BS))
    fired = m.fault.fired()
    m.fault.off()
    m.fired_total += fired
    if not fired or err != errno.EIO:
        m.note_fail(f"hole_reuse: write:commit fired {fired}, write returned {ename(err)}")
        return
    with open(f, "rb") as fh:
        fh.seek(5 * BS)
        got = fh.read(BS)
    log("hole_reuse: after the rolled-back write the hole reads "
        + ("the rolled-back data" if got == x else "zeros" if got == bytes(BS) else "other data"))
    data = rng.randbytes(256 * KiB)
    mk_file(g, data)
    fd = os.open(g, os.O_RDONLY)
    os.fsync(fd)		# g's blocks first, then whatever else is dirty
    os.close(fd)
    os.sync()
    with open("/proc/sys/vm/drop_caches", "w") as fh:
        fh.write("3")
    with open(f, "rb") as fh:
        fh.seek(5 * BS)
        hole = fh.read(BS)
    with open(g, "rb") as fh:
        gdata = fh.read()
    bad = []
    if got != bytes(BS):
        bad.append("before writeback the hole read the rolled-back data" if got == x
                   else "before writeback the hole read neither zeros nor the data")
    if hole != bytes(BS):
        bad.append("after drop_caches the hole reads " + ("the rolled-back data" if hole == x else "garbage"))
    if gdata != data:
        off = first_diff(gdata, data)
        bad.append(f"file g written after the rollback is corrupt from offset {off}"
                   + (" (holds the rolled-back write's data)" if gdata[off // BS * BS:off // BS * BS + BS] == x else ""))
    if bad:
        m.note_fail("hole_reuse [write:commit 0, pwrite into a hole inside the old size]: " + "; ".join(bad))
        m.cell("hole_reuse", "commit", "failed")
    else:
        m.cell("hole_reuse", "commit", "fired")
    log(f"hole_reuse: {'; '.join(bad) or 'ok'}")


def first_diff(a, b):
    for i in range(0, min(len(a), len(b)), BS):
        if a[i:i + BS] != b[i:i + BS]:
            return i + next(j for j in range(BS) if a[i + j:i + j + 1] != b[i + j:i + j + 1])
    return min(len(a), len(b))


def build_fixture(mnt):
    rng = random.Random(50)
    fx = f"{mnt}/fx"
    for d in ("fx", "fx/a", "fx/a/b", "fx/empty", "fx/full", "w", "w2", "big", "grow"):
        os.mkdir(f"{mnt}/{d}", 0o755)
    mk_file(f"{fx}/a/hundred_k", rng.randbytes(100 * KiB))
    mk_file(f"{fx}/a/small", b"hello twinfs\n")
    mk_file(f"{fx}/a/zero", b"")
    mk_file(f"{fx}/a/b/deep", rng.randbytes(10000), 0o600)
    mk_ext_file(f"{fx}/a/extents", 40, rng)
    for i in range(5):
        mk_file(f"{fx}/full/f{i}", rng.randbytes(i * 1000))
    os.symlink("a/hundred_k", f"{fx}/link_rel")
    os.symlink("/nowhere/at/all", f"{fx}/link_dangling")
    os.link(f"{fx}/a/small", f"{fx}/a/b/small_hl")
    os.link(f"{fx}/a/small", f"{fx}/small_hl2")
    os.mkfifo(f"{fx}/fifo", 0o644)
    os.chown(f"{fx}/a/b/deep", 1000, 1000)
    for i in range(2000):
        mk_file(f"{mnt}/big/entry-{i:05d}", b"")
    os.sync()


def cmd_matrix(args):
    os.umask(0o022)
    t0 = time.time()
    build_fixture(args.mnt)
    log(f"fixture built ({time.time() - t0:.0f}s)")
    m = Matrix(args)
    m.fault.off()
    sysfs = f"/sys/fs/twinfs/{args.dev}"
    rb0 = int(open(f"{sysfs}/ops_rolled_back").read())
    pg0 = int(open(f"{sysfs}/pages_restored").read())
    only = os.environ.get("UNDO_ONLY")
    if not only or only in "hole_reuse":
        hole_reuse(m, args.mnt)
    for vname, kop, setup in VARIANTS:
        if only and only not in vname:
            continue
        m.run_variant(vname, kop, setup)
    # Splits and table growth: names go into a fresh directory until the
    # fault fires (its first leaf fills at ~170 names: the table grows, the
    # leaf splits, a new leaf is made, all in one operation) ...
    # Removing the directory afterwards must give back everything.
    for vname, kop, setup in LOOP_VARIANTS:
        if only and only not in vname:
            continue
        for step in DIR_LOOP_STEPS:
            free0 = m.free()
            d = f"{args.mnt}/grow/fresh"
            os.mkdir(d)
            m.run_loop(vname, kop, setup, step, d, 400)
            shutil.rmtree(d)
            m.leak_check(f"{vname}@fresh {step}", free0)
    # ... and into the 2000-entry directory big/.
    if not only or only in "create":
        m.fill_to_split(f"{args.mnt}/big")
        for step in DIR_LOOP_STEPS:
            # Which steps a few hundred names reach in a 2000-entry
            # directory depends on where its leaves are in their fill
            # waves; each step is required in the fresh directory above.
            m.run_loop("create", "create", v_create, step, f"{args.mnt}/big", 600,
                       required=step == "dir_split")
    # A different errno passes through.
    extra = [("create", "create", v_create, "create:dir_insert", 28),
             ("write_append_4k", "write", v_write_4k, "write:alloc_blocks", 28),
             ("truncate_shrink", "truncate", v_trunc_shrink, "truncate:commit", 28)]
    for vname, kop, setup, point, en in extra:
        if only and only not in vname:
            continue
        res = m.one(vname, point, 0, en, setup=setup)
        log(f"{vname} [{point} 0 {en}]: {res}")
        if res != "fired":
            m.note_fail(f"{vname} [{point} 0 {en}]: {res}")
    m.print_matrix()
    rb = int(open(f"{sysfs}/ops_rolled_back").read()) - rb0
    pg = int(open(f"{sysfs}/pages_restored").read()) - pg0
    log(f"{m.cases} armed cases, {m.fired_total} faults fired ({m.injected} 'injected fault' "
        f"kernel lines), ops_rolled_back +{rb}, pages_restored +{pg}")
    if rb <= 0 or pg <= 0 or rb > m.fired_total:
        m.note_fail(f"sysfs counters: ops_rolled_back +{rb}, pages_restored +{pg}, "
                    f"{m.fired_total} faults fired")
    # The final state survives dropping the caches.
    os.sync()
    want = m.snapper.snap()
    with open("/proc/sys/vm/drop_caches", "w") as f:
        f.write("3")
    got = m.snapper.snap()
    bad, _ = diff(want, got, strict_blocks=True)
    for b in bad[:20]:
        m.note_fail(f"after drop_caches: {b}")
    with open(args.record, "w") as f:
        json.dump(want, f)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"cells": {f"{v}|{c}": r for (v, c), r in m.cells.items()},
                       "failures": m.failures, "notes": m.notes,
                       "fired": m.fired_total, "cases": m.cases,
                       "rolled_back": rb, "pages_restored": pg}, f, indent=1)
    if m.notes:
        log(f"{len(m.notes)} notes (not failures):")
        for nt in m.notes[:40]:
            print(f"  note: {nt}")
    log(f"{len(m.failures)} failures, {time.time() - t0:.0f}s")
    for fl in m.failures[:60]:
        print(f"FAIL: {fl}")
    return 1 if m.failures else 0


def cmd_verify(args):
    with open(args.record) as f:
        want = json.load(f)
    got = Snapper(args.mnt).snap()
    bad, _ = diff(want, got, strict_blocks=True)
    for b in bad[:40]:
        print(f"FAIL: after remount: {b}")
    log(f"verify: {len(got)} entries, {len(bad)} differences")
    return 1 if bad else 0


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("mode", choices=["matrix", "verify"])
    ap.add_argument("--mnt", required=True)
    ap.add_argument("--dev", default="vda")
    ap.add_argument("--record", required=True)
    ap.add_argument("--json")
    args = ap.parse_args()
    return cmd_matrix(args) if args.mode == "matrix" else cmd_verify(args)


if __name__ == "__main__":
    sys.exit(main())
