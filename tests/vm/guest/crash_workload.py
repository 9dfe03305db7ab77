#!/usr/bin/env python3
"""Deterministic workload and verifier of the crash-kill test of the change
memory (scenarios/60-crash.sh, also used by 62-cm-corrupt.sh).

  crash_workload.py run    workload of iteration ITER in MNT/i<ITER>/w<k>
  crash_workload.py verify only the checks (the final boot)

Each worker k of iteration i owns MNT/i<i>/w<k>.  A random generator seeded
with (seed, i, k) picks every operation from the worker's model of its
directory, so the sequence of operations, and the state after any prefix of
it, can be rebuilt from (seed, i, k) alone.  After each operation's system
call returned, the worker appends "ACK <i> <k> <n>" to /out/acks.w<k> (the
out share is 9p without a cache: when write() returns the line is in the
host's file, so a kill -9 of QEMU cannot lose it) and prints the same line
to stdout.  The host counts the lines: with k acknowledged operations the
directory must be in the state after k operations or after k+1 (the one in
flight may or may not have landed); anything else is a lost or a doubled
operation.

Every state-changing step is one system call: create (open O_CREAT|O_EXCL),
write (pwrite of 1 B .. 32 KiB, sometimes + fsync), rename (files, symlinks,
empty or full directories, sometimes over an existing name), unlink,
truncate up/down, chmod, utime with explicit times, mkdir, rmdir, link,
symlink.  No mmap, no unlink of an open file.

The verifier (mode run with --prev-iter, and mode verify) also checks that
the directories of earlier iterations are exactly as last verified (the
manifest, written to /out/manifest.json for the next boot), that MNT holds
nothing else, and removes iterations older than --retain (before the new
workload starts, so those removals are acknowledged too).
"""
import argparse
import hashlib
import json
import os
import random
import stat
import sys
import time

MAXSZ = 160 * 1024          # files stay below this
WMAX = 32 * 1024            # bytes per write call
TOP_FILES = [f"f{n}" for n in range(8)]
DIRS = [f"d{n}" for n in range(4)]
SUB_FILES = [f"f{n}" for n in range(4)]
SYMS = [f"l{n}" for n in range(4)]
ROOT_MODE = 0o755


class Fail(Exception):
    pass


def log(msg):
    print(f"[{time.strftime('%T')} crash_workload] {msg}", flush=True)


# --------------------------------------------------------------------------
# The model of one worker directory

class Inode:
    __slots__ = ("kind", "mode", "data", "target", "mtime")

    def __init__(self, kind, mode, data=None, target=None):
        self.kind, self.mode, self.data, self.target = kind, mode, data, target
        self.mtime = None   # ns, when set explicitly by utime and not since changed


class Model:
    def __init__(self):
        self.names = {}     # relative path -> Inode (hard links share it)

    def copy(self):
        m = Model()
        memo = {}
        for p, ino in self.names.items():
            if id(ino) not in memo:
                c = Inode(ino.kind, ino.mode,
                          bytearray(ino.data) if ino.data is not None else None,
                          ino.target)
                c.mtime = ino.mtime
                memo[id(ino)] = c
            m.names[p] = memo[id(ino)]
        return m

    def kind_paths(self, kind):
        return sorted(p for p, i in self.names.items() if i.kind == kind)

    def dirs(self):
        return self.kind_paths("d")

    def files(self):
        return self.kind_paths("f")

    def syms(self):
        return self.kind_paths("l")

    def file_slots(self):
        s = list(TOP_FILES)
        for d in self.dirs():
            s += [f"{d}/{f}" for f in SUB_FILES]
        return s

    def children(self, d):
        return sorted(p for p in self.names if p.startswith(d + "/"))

    def snapshot(self):
        """path -> entry, the same form as fs_snapshot()."""
        groups = {}
        for p, ino in self.names.items():
            groups.setdefault(id(ino), []).append(p)
        snap = {".": ["d", ROOT_MODE, 2 + len(self.dirs()), None, None, None, None]}
        for p, ino in sorted(self.names.items()):
            if ino.kind == "d":
                snap[p] = ["d", ino.mode, 2, None, None, None, None]
            elif ino.kind == "l":
                snap[p] = ["l", None, len(ino.target.encode()), None, 1, None, ino.target]
            else:
                g = groups[id(ino)]
                snap[p] = ["f", ino.mode, len(ino.data),
                           hashlib.sha256(ino.data).hexdigest(), len(g), min(g), ino.mtime]
        return snap


# Entry: [type, mode, size, sha256, nlink, link group, mtime-or-target]
# (for a symlink the last field is its target; for the others the mtime in
# ns, None in a model where the mtime is not known).
FIELDS = ["type", "mode", "size", "sha256", "nlink", "hard-link group", "mtime/target"]


def fs_snapshot(root):
    """The actual state of a worker directory, in the form of snapshot()."""
    snap = {}
    inos = {}
    st = os.lstat(root)
    snap["."] = ["d", stat.S_IMODE(st.st_mode), st.st_nlink, None, None, None, st.st_mtime_ns]

    def walk(rel):
        full = os.path.join(root, rel) if rel else root
        for name in sorted(os.listdir(full)):
            p = f"{rel}/{name}" if rel else name
            fp = os.path.join(root, p)
            st = os.lstat(fp)
            if stat.S_ISDIR(st.st_mode):
                snap[p] = ["d", stat.S_IMODE(st.st_mode), st.st_nlink, None, None, None,
                           st.st_mtime_ns]
                walk(p)
            elif stat.S_ISLNK(st.st_mode):
                snap[p] = ["l", None, st.st_size, None, st.st_nlink, None, os.readlink(fp)]
            elif stat.S_ISREG(st.st_mode):
                h = hashlib.sha256()
                with open(fp, "rb") as f:
                    while True:
                        b = f.read(1 << 20)
                        if not b:
                            break
                        h.update(b)
                snap[p] = ["f", stat.S_IMODE(st.st_mode), st.st_size, h.hexdigest(),
                           st.st_nlink, None, st.st_mtime_ns]
                inos.setdefault(st.st_ino, []).append(p)
            else:
                snap[p] = [f"mode {st.st_mode:o}", None, None, None, None, None, None]
    walk("")
    for paths in inos.values():
        for p in paths:
            snap[p][5] = min(paths)
    return snap


def short(v):
    if isinstance(v, str) and len(v) > 24:
        return v[:16] + "..."
    return v


def compare(actual, expected):
    """Differences of actual from expected; a None in expected is not checked."""
    diffs = []
    for p in sorted(set(actual) | set(expected)):
        a, e = actual.get(p), expected.get(p)
        if a is None:
            diffs.append(f"{p}: missing (expected {e[0]})")
            continue
        if e is None:
            diffs.append(f"{p}: unexpected {a[0]}")
            continue
        for n, (x, y) in enumerate(zip(a, e)):
            if y is not None and x != y:
                if n == 1:
                    x, y = oct(x) if x is not None else x, oct(y)
                diffs.append(f"{p}: {FIELDS[n]} {short(x)}, expected {short(y)}")
    return diffs


# --------------------------------------------------------------------------
# Operations: generated from the model, applied to the model or the disk

def rng_for(seed, it, w):
    return random.Random(f"twinfs-crash/{seed}/{it}/{w}")


def gen_op(rng, m):
    """The next operation, a tuple, chosen from the model's state."""
    while True:
        r = rng.randrange(100)
        files = m.files()
        if r < 12:                                  # create
            free = [p for p in m.file_slots() if p not in m.names]
            if free:
                return ("create", rng.choice(free),
                        rng.choice([0o644, 0o600, 0o640, 0o755, 0o444, 0o664]))
        elif r < 40:                                # write, write + fsync
            if files:
                p = rng.choice(files)
                size = len(m.names[p].data)
                n = rng.choice([rng.randint(1, 64), rng.randint(1, 4096),
                                rng.randint(1, WMAX)])
                if rng.random() < 0.15 and size + n < MAXSZ:
                    off = rng.randint(size, min(size + 20000, MAXSZ - n))   # leaves a hole
                else:
                    off = rng.randint(0, max(0, min(size, MAXSZ - n)))
                return ("write", p, off, rng.randbytes(n), rng.random() < 0.15)
        elif r < 50:                                # rename
            k = rng.randrange(10)
            if k < 7 and files:
                src = rng.choice(files)
                dst = [p for p in m.file_slots() if p != src
                       and (p not in m.names or (m.names[p].kind == "f"
                                                 and m.names[p] is not m.names[src]))]
                if dst:
                    return ("rename", src, rng.choice(dst))
            elif k < 8 and m.syms():
                src = rng.choice(m.syms())
                return ("rename", src, rng.choice([s for s in SYMS if s != src]))
            elif m.dirs():
                src = rng.choice(m.dirs())
                dst = [d for d in DIRS if d != src
                       and (d not in m.names or not m.children(d))]
                if dst:
                    return ("rename", src, rng.choice(dst))
        elif r < 58:                                # unlink
            c = files + m.syms()
            if c:
                return ("unlink", rng.choice(c))
        elif r < 65:                                # truncate
            if files:
                p = rng.choice(files)
                size = len(m.names[p].data)
                k = rng.randrange(10)
                if k == 0:
                    n = 0
                elif k < 5:
                    n = rng.randint(0, size)
                else:
                    n = rng.randint(size, MAXSZ)
                return ("truncate", p, n)
        elif r < 70:                                # chmod
            c = files + m.dirs()
            if c:
                return ("chmod", rng.choice(c), rng.randrange(0o1000))
        elif r < 76:                                # utime
            if files:
                return ("utime", rng.choice(files),
                        rng.randrange(10**9, 2 * 10**9) * 10**9 + rng.randrange(10**9),
                        rng.randrange(10**9, 2 * 10**9) * 10**9 + rng.randrange(10**9))
        elif r < 80:                                # mkdir
            free = [d for d in DIRS if d not in m.names]
            if free:
                return ("mkdir", rng.choice(free), rng.choice([0o755, 0o700, 0o750]))
        elif r < 84:                                # rmdir
            empty = [d for d in m.dirs() if not m.children(d)]
            if empty:
                return ("rmdir", rng.choice(empty))
        elif r < 92:                                # link
            free = [p for p in m.file_slots() if p not in m.names]
            if files and free:
                return ("link", rng.choice(files), rng.choice(free))
        else:                                       # symlink
            free = [s for s in SYMS if s not in m.names]
            if free:
                k = rng.randrange(4)
                if k == 0:
                    t = rng.choice(TOP_FILES + DIRS)
                elif k == 1:
                    t = f"../w{rng.randrange(3)}/{rng.choice(TOP_FILES)}"
                elif k == 2:
                    t = "/" + "/".join(f"x{rng.randrange(1000)}" for _ in range(rng.randint(1, 8)))
                else:
                    t = "t" * rng.randint(100, 1000) + str(rng.randrange(10**6))
                return ("symlink", t, rng.choice(free))


def apply_model(m, op):
    kind = op[0]
    if kind == "create":
        m.names[op[1]] = Inode("f", op[2], bytearray())
    elif kind == "write":
        ino = m.names[op[1]]
        off, data = op[2], op[3]
        if len(ino.data) < off:
            ino.data.extend(bytes(off - len(ino.data)))
        ino.data[off:off + len(data)] = data
        ino.mtime = None
    elif kind == "rename":
        src, dst = op[1], op[2]
        if m.names[src].kind == "d":
            moved = {c: m.names.pop(c) for c in m.children(src)}
            m.names.pop(dst, None)
            m.names[dst] = m.names.pop(src)
            for c, ino in moved.items():
                m.names[dst + c[len(src):]] = ino
        else:
            m.names[dst] = m.names.pop(src)
    elif kind in ("unlink", "rmdir"):
        del m.names[op[1]]
    elif kind == "truncate":
        ino = m.names[op[1]]
        n = op[2]
        if n < len(ino.data):
            del ino.data[n:]
        else:
            ino.data.extend(bytes(n - len(ino.data)))
        ino.mtime = None
    elif kind == "chmod":
        m.names[op[1]].mode = op[2]
    elif kind == "utime":
        m.names[op[1]].mtime = op[3]
    elif kind == "mkdir":
        m.names[op[1]] = Inode("d", op[2])
    elif kind == "link":
        m.names[op[2]] = m.names[op[1]]
    elif kind == "symlink":
        m.names[op[2]] = Inode("l", 0o777, target=op[1])
    else:
        raise AssertionError(op)


def apply_fs(root, op):
    """Perform op below root: exactly one state-changing system call."""
    kind = op[0]
    p = os.path.join(root, op[1])
    if kind == "create":
        os.close(os.open(p, os.O_WRONLY | os.O_CREAT | os.O_EXCL, op[2]))
    elif kind == "write":
        fd = os.open(p, os.O_WRONLY)
        try:
            n = os.pwrite(fd, op[3], op[2])
            if n != len(op[3]):
                raise Fail(f"short write: {n} of {len(op[3])} bytes")
            if op[4]:
                os.fsync(fd)
        finally:
            os.close(fd)
    elif kind == "rename":
        os.rename(p, os.path.join(root, op[2]))
    elif kind == "unlink":
        os.unlink(p)
    elif kind == "rmdir":
        os.rmdir(p)
    elif kind == "truncate":
        os.truncate(p, op[2])
    elif kind == "chmod":
        os.chmod(p, op[2])
    elif kind == "utime":
        os.utime(p, ns=(op[2], op[3]))
    elif kind == "mkdir":
        os.mkdir(p, op[2])
    elif kind == "link":
        os.link(p, os.path.join(root, op[2]))
    elif kind == "symlink":
        os.symlink(op[1], os.path.join(root, op[2]))


def describe(op):
    if op is None:
        return "-"
    if op[0] == "write":
        return f"write {op[1]} off {op[2]} len {len(op[3])}{' + fsync' if op[4] else ''}"
    if op[0] in ("chmod", "mkdir", "create"):
        return f"{op[0]} {op[1]} {op[2]:o}"
    if op[0] == "symlink":
        return f"symlink {op[2]} -> {short(op[1])}"
    return " ".join(str(x) for x in op)


def models_upto(seed, it, w, n):
    """Generator of (j, model after j ops, op j) for j = 0 .. n."""
    rng = rng_for(seed, it, w)
    m = Model()
    for j in range(n + 1):
        op = gen_op(rng, m)
        yield j, m, op
        apply_model(m, op)


# --------------------------------------------------------------------------
# Workers

def worker(args, w, root):
    os.umask(0)
    ncpu = os.cpu_count() or 1
    try:
        os.sched_setaffinity(0, {w % ncpu})     # spread over the CPUs' lanes
    except OSError:
        pass
    ack = os.open(os.path.join(args.out, f"acks.w{w}"),
                  os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    rng = rng_for(args.seed, args.iter, w)
    m = Model()
    j = 0
    while args.ops is None or j < args.ops:
        op = gen_op(rng, m)
        try:
            apply_fs(root, op)
        except (OSError, Fail) as e:
            print(f"FAIL: iteration {args.iter} worker {w} op {j} ({describe(op)}): {e}",
                  flush=True)
            return 1
        apply_model(m, op)
        # --dev-unacked: the last operation lands but is never acknowledged
        # (what a kill between the call and its ACK looks like).
        if not (args.dev_unacked and w % 2 == 1 and j == args.ops - 1):
            line = f"ACK {args.iter} {w} {j}\n"
            os.write(ack, line.encode())
            sys.stdout.write(line)
            sys.stdout.flush()
        j += 1
    os.close(ack)
    return 0


def run_workers(args):
    it_dir = os.path.join(args.mnt, f"i{args.iter}")
    os.umask(0)
    os.mkdir(it_dir, 0o755)
    for w in range(args.workers):
        os.mkdir(os.path.join(it_dir, f"w{w}"), ROOT_MODE)
    pids = {}
    for w in range(args.workers):
        pid = os.fork()
        if pid == 0:
            rc = 1
            try:
                rc = worker(args, w, os.path.join(it_dir, f"w{w}"))
            except BaseException as e:      # noqa: B036 - report anything
                print(f"FAIL: worker {w}: {e!r}", flush=True)
            finally:
                os._exit(rc)
        pids[pid] = w
    with open(os.path.join(args.out, "started"), "w") as f:
        f.write(f"{args.iter} {args.workers} {time.time():.3f}\n")
    print(f"CRASH-WORKLOAD-START {args.iter} workers {args.workers}", flush=True)
    bad = 0
    while pids:
        pid, st = os.wait()
        w = pids.pop(pid)
        if st:
            bad += 1
            log(f"worker {w} failed (wait status {st})")
    return 1 if bad else 0


# --------------------------------------------------------------------------
# Verification

def torn_write(actual, want_k, m_k, op):
    """If op is a write and the directory is the state before it except for
    the written file, which holds only a part of the data, say which part."""
    if op[0] != "write":
        return None
    path, off, data = op[1], op[2], op[3]
    ino = m_k.names[path]
    names = {p for p, i in m_k.names.items() if i is ino}     # with its hard links
    if compare({p: e for p, e in actual.items() if p not in names},
               {p: e for p, e in want_k.items() if p not in names}):
        return None
    cuts = sorted({min(len(data), 4096 - off % 4096 + 4096 * j)
                   for j in range(len(data) // 4096 + 2)} | set(range(1, min(len(data), 64))))
    for m in cuts:
        new = bytearray(ino.data)
        if len(new) < off:
            new.extend(bytes(off - len(new)))
        new[off:off + m] = data[:m]
        h = hashlib.sha256(new).hexdigest()
        if all(actual.get(p) and actual[p][2] == len(new) and actual[p][3] == h for p in names):
            return f"the first {m} of {len(data)} bytes"
    return None


def verify_worker(args, root, w, k):
    """Check root against the models after k and k+1 operations.
    Returns (snapshot, lost count, messages)."""
    actual = fs_snapshot(root)
    want_k = want_k1 = None
    op_k = m_k = None
    for j, m, op in models_upto(args.seed, args.prev_iter, w, k):
        if j == k:
            want_k = m.snapshot()
            op_k = op
            m_k = m.copy()
            m2 = m.copy()
            apply_model(m2, op)
            want_k1 = m2.snapshot()
    d0 = compare(actual, want_k)
    if not d0:
        return actual, 0, [f"w{w}: {k} acked, state after {k} ops "
                           f"(op {k}, {describe(op_k)}, did not land)"]
    d1 = compare(actual, want_k1)
    if not d1:
        return actual, 0, [f"w{w}: {k} acked, state after {k + 1} ops "
                           f"(op {k}, {describe(op_k)}, landed unacknowledged)"]
    # Diagnose: which prefix, if any, is it?
    msgs = [f"w{w}: {k} operations acknowledged, but the directory is neither the "
            f"state after {k} nor after {k + 1} operations"]
    lo, hi = max(0, k - 300), k + 30
    ops = []
    found = None
    for j, m, op in models_upto(args.seed, args.prev_iter, w, hi):
        ops.append(op)
        if j >= lo and j not in (k, k + 1) and not compare(actual, m.snapshot()):
            found = j
            if j > k:
                break
    torn = torn_write(actual, want_k, m_k, op_k)
    if torn:
        msgs.append(f"w{w}: op {k} ({describe(op_k)}) landed only in part: {torn}")
        lost = 1
    elif found is not None and found < k:
        msgs.append(f"w{w}: it is the state after {found} operations: the last "
                    f"{k - found} acknowledged operations were LOST "
                    f"(ops {found}..{k - 1}: "
                    + "; ".join(describe(o) for o in ops[found:min(k, found + 8)])
                    + ("; ..." if k - found > 8 else "") + ")")
        lost = k - found
    elif found is not None:
        msgs.append(f"w{w}: it is the state after {found} operations, more than "
                    f"were issued ({k + 1} at most)")
        lost = found - k - 1
    else:
        lost = max(1, min(len(d0), len(d1)))
        msgs.append(f"w{w}: no prefix of {lo}..{hi} operations matches (a lost, doubled or "
                    f"torn operation)")
    msgs.append(f"w{w}: ops {max(0, k - 3)}..{k}: "
                + "; ".join(f"[{i}] {describe(ops[i])}" for i in range(max(0, k - 3), k + 1)))
    msgs.append(f"w{w}: differences from the state after {k} ops:")
    msgs += ["    " + d for d in d0[:40]]
    msgs.append(f"w{w}: differences from the state after {k + 1} ops:")
    msgs += ["    " + d for d in d1[:40]]
    return actual, lost, msgs


def verify(args):
    """Returns (new manifest, acked ops checked, lost)."""
    manifest = {"iters": {}}
    if args.manifest:
        with open(args.manifest) as f:
            manifest = json.load(f)
    iters = manifest["iters"]
    checked = lost = 0
    errors = []
    expect_top = {f"i{j}" for j in iters}
    if args.prev_iter:
        expect_top.add(f"i{args.prev_iter}")
    top = set(os.listdir(args.mnt))
    if top != expect_top:
        errors.append(f"{args.mnt} holds {sorted(top)}, expected {sorted(expect_top)}"
                      f" (missing {sorted(expect_top - top)}, extra {sorted(top - expect_top)})")

    if args.prev_iter:
        acks = [int(x) for x in args.prev_acks.split(",")] if args.prev_acks else []
        it_dir = os.path.join(args.mnt, f"i{args.prev_iter}")
        want = {f"w{w}" for w in range(len(acks))}
        have = set(os.listdir(it_dir)) if os.path.isdir(it_dir) else set()
        if have != want:
            errors.append(f"{it_dir} holds {sorted(have)}, expected {sorted(want)}")
        snaps = {}
        for w, k in enumerate(acks):
            root = os.path.join(it_dir, f"w{w}")
            if not os.path.isdir(root):
                lost += k
                continue
            t0 = time.time()
            snap, l, msgs = verify_worker(args, root, w, k)
            for msg in msgs:
                log(msg)
            log(f"w{w}: checked in {time.time() - t0:.1f}s, {len(snap) - 1} entries")
            checked += k
            if l:
                lost += l
                errors.append(msgs[0])
            snaps[str(w)] = snap
        st = os.lstat(it_dir)
        iters[str(args.prev_iter)] = {"workers": len(acks), "snap": snaps,
                                      "top": [stat.S_IMODE(st.st_mode), st.st_nlink]}

    # Earlier iterations: exactly as last verified.
    for j, ent in sorted(iters.items(), key=lambda x: int(x[0])):
        if int(j) == args.prev_iter:
            continue
        it_dir = os.path.join(args.mnt, f"i{j}")
        if not os.path.isdir(it_dir):
            errors.append(f"{it_dir} is gone")
            continue
        st = os.lstat(it_dir)
        if [stat.S_IMODE(st.st_mode), st.st_nlink] != ent["top"]:
            errors.append(f"{it_dir}: mode/nlink {[oct(st.st_mode), st.st_nlink]}, "
                          f"was {ent['top']}")
        have = set(os.listdir(it_dir))
        want = {f"w{w}" for w in range(ent["workers"])}
        if have != want:
            errors.append(f"{it_dir} holds {sorted(have)}, was {sorted(want)}")
        for w, snap in ent["snap"].items():
            root = os.path.join(it_dir, f"w{w}")
            d = compare(fs_snapshot(root), snap) if os.path.isdir(root) else ["gone"]
            if d:
                errors.append(f"{root} changed since it was verified: " + "; ".join(d[:20]))
                lost += len(d)
    log(f"earlier iterations compared with the manifest: "
        f"{sorted(int(j) for j in iters if int(j) != args.prev_iter)}")
    for e in errors:
        print(f"FAIL: {e}", flush=True)
    return manifest, checked, lost, errors


def prune(args, manifest):
    """Remove the oldest iterations beyond --retain (acknowledged removals:
    they happen before the new workload starts)."""
    iters = manifest["iters"]
    for j in sorted(iters, key=int)[:max(0, len(iters) - args.retain)]:
        d = os.path.join(args.mnt, f"i{j}")
        rmtree(d)
        del iters[j]
        log(f"removed {d}")


def rmtree(d):
    for name in os.listdir(d):
        p = os.path.join(d, name)
        if stat.S_ISDIR(os.lstat(p).st_mode):
            rmtree(p)
        else:
            os.unlink(p)
    os.rmdir(d)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("mode", choices=["run", "verify"])
    ap.add_argument("--mnt", default="/mnt")
    ap.add_argument("--out", default="/out")
    ap.add_argument("--seed", required=True)
    ap.add_argument("--iter", type=int, default=0, help="iteration of the new workload")
    ap.add_argument("--workers", type=int, default=3)
    ap.add_argument("--ops", type=int, default=None,
                    help="operations per worker, then stop (default: until killed)")
    ap.add_argument("--dev-unacked", action="store_true",
                    help="odd workers do not acknowledge their last operation")
    ap.add_argument("--prev-iter", type=int, default=0)
    ap.add_argument("--prev-acks", default="", help="k0,k1,...: acknowledged ops per worker")
    ap.add_argument("--manifest", default="")
    ap.add_argument("--retain", type=int, default=6)
    ap.add_argument("--no-prune", action="store_true")
    ap.add_argument("--save-dmesg", default="", help="write dmesg here after the checks")
    args = ap.parse_args()

    t0 = time.time()
    manifest, checked, lost, errors = verify(args)
    with open(os.path.join(args.out, "verify-result"), "w") as f:
        f.write(f"checked={checked}\nlost={lost}\nerrors={len(errors)}\n")
    log(f"verify: {checked} acknowledged ops checked, {lost} lost, {len(errors)} errors"
        f" ({time.time() - t0:.1f}s)")
    if errors:
        return 1
    if not args.no_prune:
        prune(args, manifest)
    with open(os.path.join(args.out, "manifest.json"), "w") as f:
        json.dump(manifest, f)
        f.flush()
        os.fsync(f.fileno())
    if args.save_dmesg:
        # A killed guest writes no dmesg: keep the mount's and the replay's
        # kernel log for the harness's scan and for the reader.
        import subprocess
        with open(args.save_dmesg, "w") as f:
            subprocess.run(["dmesg", "-s", "1048576"], stdout=f, check=False)
    if args.mode == "verify":
        return 0
    return run_workers(args)


if __name__ == "__main__":
    sys.exit(main())
