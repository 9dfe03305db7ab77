#!/usr/bin/env python3
"""Concurrent namespace and data stress, for scenario 30-stress.

  stress.py run   ROOT SECS NPROC RECORD   NPROC processes for SECS seconds
  stress.py check ROOT RECORD              after remount: same tree, every
                                           file intact

Three shared directories ROOT/d0..d2, each with subdirectories s0..s5 that
come and go.  Workers create files (written under a private temporary name,
then renamed to a shared name f0..f59, often into another directory), rename
files and subdirectories within and across the shared directories, unlink,
rmdir, list, and read.  A shared file is never modified after its rename,
and carries its own checksum, so any reader can verify any file it opens.
Each worker also keeps a private file it overwrites and truncates at random
and compares against an in-memory model.  Races give ENOENT, EEXIST,
ENOTEMPTY and the like; those are expected, any other error is a failure.
"""
import errno
import hashlib
import json
import os
import random
import struct
import sys
import time

DIRS = 3
SUBDIRS = 6
NAMES = 60
MAGIC = b"TWST"
HDR = struct.Struct("<4sQ32s")
# Outcomes a racing operation may legitimately have.
RACY = {errno.ENOENT, errno.EEXIST, errno.ENOTEMPTY, errno.ENOTDIR, errno.EISDIR}


def make_content(rng):
    r = rng.random()
    size = rng.randrange(0, 16384) if r < 0.7 else (
        rng.randrange(16384, 262144) if r < 0.97 else rng.randrange(262144, 1 << 20))
    payload = rng.randbytes(size)
    return HDR.pack(MAGIC, size, hashlib.sha256(payload).digest()) + payload


def content_ok(data):
    if len(data) < HDR.size:
        return False
    magic, size, digest = HDR.unpack_from(data)
    payload = data[HDR.size:]
    return magic == MAGIC and size == len(payload) and hashlib.sha256(payload).digest() == digest


def write_all(fd, data):
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def read_path(path):
    with open(path, "rb") as f:
        return f.read()


class Worker:
    def __init__(self, root, wid, deadline):
        self.root, self.wid, self.deadline = root, wid, deadline
        self.rng = random.Random(wid * 7919 + int(time.time()))
        self.stats = {}
        self.errors = []
        self.n = 0
        self.priv = f"{root}/d{wid % DIRS}/priv-w{wid}"
        self.model = bytearray()
        with open(self.priv, "wb"):
            pass

    def error(self, msg):
        self.errors.append(msg)
        print(f"FAIL: worker {self.wid}: {msg}", flush=True)

    def rand_dir(self):
        d = f"{self.root}/d{self.rng.randrange(DIRS)}"
        if self.rng.random() < 0.3:
            d += f"/s{self.rng.randrange(SUBDIRS)}"
        return d

    def rand_file(self):
        return f"{self.rand_dir()}/f{self.rng.randrange(NAMES)}"

    def op(self, name, fn, *args):
        """Run one operation; expected race errors are counted, not failed."""
        try:
            fn(*args)
            key = name
        except OSError as e:
            if e.errno not in RACY:
                self.error(f"{name}{args}: {errno.errorcode.get(e.errno, e.errno)} {e.strerror}")
            key = f"{name}:{errno.errorcode.get(e.errno, e.errno)}"
        self.stats[key] = self.stats.get(key, 0) + 1

    def create(self):
        self.n += 1
        tmp = f"{self.root}/d{self.rng.randrange(DIRS)}/.tmp-w{self.wid}-{self.n}"
        fd = os.open(tmp, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        try:
            write_all(fd, make_content(self.rng))
            if self.rng.random() < 0.1:
                os.fsync(fd)
        finally:
            os.close(fd)
        try:
            os.rename(tmp, self.rand_file())
        except OSError:
            os.unlink(tmp)		# the target directory is gone: racy
            raise

    def read(self):
        data = read_path(self.rand_file())
        if not content_ok(data):
            self.error(f"corrupt content ({len(data)} bytes) read from a shared file")

    def listdir(self):
        d = self.rand_dir()
        for name in os.listdir(d):
            try:
                os.lstat(f"{d}/{name}")
            except FileNotFoundError:
                pass

    def rename_dir(self):
        src = f"{self.root}/d{self.rng.randrange(DIRS)}/s{self.rng.randrange(SUBDIRS)}"
        dst = f"{self.root}/d{self.rng.randrange(DIRS)}/s{self.rng.randrange(SUBDIRS)}"
        os.rename(src, dst)

    def priv_op(self):
        r = self.rng.random()
        if r < 0.6:
            off = self.rng.randrange(0, 300000)
            data = self.rng.randbytes(self.rng.randrange(1, 20000))
            fd = os.open(self.priv, os.O_WRONLY)
            os.pwrite(fd, data, off)
            os.close(fd)
            if off > len(self.model):
                self.model += bytes(off - len(self.model))
            self.model[off:off + len(data)] = data
        elif r < 0.8:
            size = self.rng.randrange(0, len(self.model) + 10000)
            os.truncate(self.priv, size)
            if size < len(self.model):
                del self.model[size:]
            else:
                self.model += bytes(size - len(self.model))
        else:
            if read_path(self.priv) != self.model:
                self.error("private file differs from its model")

    def run(self):
        ops = [(30, "create", self.create), (15, "rename", lambda: os.rename(self.rand_file(), self.rand_file())),
               (12, "unlink", lambda: os.unlink(self.rand_file())), (15, "read", self.read),
               (8, "listdir", self.listdir), (8, "private", self.priv_op),
               (4, "mkdir", lambda: os.mkdir(f"{self.root}/d{self.rng.randrange(DIRS)}/s{self.rng.randrange(SUBDIRS)}")),
               (3, "rmdir", lambda: os.rmdir(f"{self.root}/d{self.rng.randrange(DIRS)}/s{self.rng.randrange(SUBDIRS)}")),
               (5, "rename_dir", self.rename_dir)]
        weights = [w for w, _, _ in ops]
        while time.time() < self.deadline and len(self.errors) < 10:
            _, name, fn = self.rng.choices(ops, weights)[0]
            self.op(name, fn)
        if read_path(self.priv) != self.model:
            self.error("private file differs from its model at the end")
        return hashlib.sha256(self.model).hexdigest()


def walk(root):
    """{relative path: 'dir' | 'file'} of the whole tree."""
    out = {}
    for top, dirs, files in os.walk(root):
        for n in dirs:
            out[os.path.relpath(f"{top}/{n}", root)] = "dir"
        for n in files:
            out[os.path.relpath(f"{top}/{n}", root)] = "file"
    return out


def verify_tree(root, privs):
    """Every shared file intact, private files as the workers left them."""
    bad = []
    tree = walk(root)
    for p, kind in sorted(tree.items()):
        base = os.path.basename(p)
        if kind == "dir":
            continue
        data = read_path(f"{root}/{p}")
        if base.startswith(".tmp-"):
            bad.append(f"leftover temporary file {p}")
        elif base.startswith("priv-"):
            if hashlib.sha256(data).hexdigest() != privs.get(p):
                bad.append(f"private file {p} differs")
        elif not content_ok(data):
            bad.append(f"corrupt file {p} ({len(data)} bytes)")
    return tree, bad


def run(root, secs, nproc, record):
    os.makedirs(root)
    for i in range(DIRS):
        os.mkdir(f"{root}/d{i}")
        for j in range(SUBDIRS):
            os.mkdir(f"{root}/d{i}/s{j}")
    deadline = time.time() + secs
    pids = {}
    for wid in range(nproc):
        rfd, wfd = os.pipe()
        pid = os.fork()
        if pid == 0:
            os.close(rfd)
            rc = 1
            try:
                w = Worker(root, wid, deadline)
                digest = w.run()
                os.write(wfd, json.dumps({"stats": w.stats, "errors": len(w.errors),
                                          "priv": os.path.relpath(w.priv, root),
                                          "sha": digest}).encode())
                rc = 1 if w.errors else 0
            except BaseException as e:  # noqa: BLE001 - report any crash
                print(f"FAIL: worker {wid} crashed: {e!r}", flush=True)
            finally:
                os._exit(rc)
        os.close(wfd)
        pids[pid] = (wid, rfd)
    failed = 0
    total = {}
    privs = {}
    for pid, (wid, rfd) in pids.items():
        chunks = []
        while True:
            b = os.read(rfd, 65536)
            if not b:
                break
            chunks.append(b)
        os.close(rfd)
        _, status = os.waitpid(pid, 0)
        if status != 0:
            failed += 1
        if chunks:
            res = json.loads(b"".join(chunks))
            privs[res["priv"]] = res["sha"]
            for k, v in res["stats"].items():
                total[k] = total.get(k, 0) + v
    print("stress: operations: " + ", ".join(f"{k}={v}" for k, v in sorted(total.items())), flush=True)
    tree, bad = verify_tree(root, privs)
    for b in bad[:20]:
        print(f"FAIL: {b}")
    with open(record, "w") as f:
        json.dump({"tree": tree, "privs": privs}, f)
    nfiles = sum(1 for k in tree.values() if k == "file")
    print(f"stress: {nfiles} files, {len(tree) - nfiles} directories at the end", flush=True)
    return 1 if failed or bad else 0


def check(root, record):
    with open(record) as f:
        rec = json.load(f)
    tree, bad = verify_tree(root, rec["privs"])
    if tree != rec["tree"]:
        missing = sorted(set(rec["tree"]) - set(tree))
        extra = sorted(set(tree) - set(rec["tree"]))
        bad.append(f"tree changed across remount: missing {missing[:5]}, unexpected {extra[:5]}")
    for b in bad[:20]:
        print(f"FAIL: {b}")
    print(f"stress: checked {len(tree)} entries after remount, {len(bad)} problems", flush=True)
    return 1 if bad else 0


if __name__ == "__main__":
    if sys.argv[1] == "run":
        sys.exit(run(sys.argv[2], float(sys.argv[3]), int(sys.argv[4]), sys.argv[5]))
    sys.exit(check(sys.argv[2], sys.argv[3]))
