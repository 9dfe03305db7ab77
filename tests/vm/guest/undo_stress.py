#!/usr/bin/env python3
"""Concurrent operations under random injected faults, for scenario
55-undo-concurrent (guest half: the heredoc in that scenario's guest script).

  undo_stress.py run   ROOT RECORD --secs 60 --nproc 6 --dev vda [--permille 20]
  undo_stress.py check ROOT RECORD            after umount/fsck/mount

ROOT/s and ROOT/x are shared by NPROC processes; process w owns the names
starting with "p<w>-" in both (and everything inside its own directories)
and keeps a model of them: name -> file (an inode id: hard links share it),
directory, or symlink; inode id -> content and mode.  With "random
<permille>" armed, any fault point of any operation may fail.  An
operation that succeeds updates the model; one that fails with EIO (ENOMEM
at undo_alloc) must have been rolled back: the model stays, and the names
it touched are checked against it at once.  A write may also be cut short
by a fault after its first page: then the file has the bytes reported.
Any other outcome is a failure.  Writes only append (also into a block
left a hole by a grow and then a cut inside the hole), truncate grows only
to block multiples.

At the end the faults are switched off and every process's names are
checked against its model: types, contents, modes, link counts, symlink
targets, directory listings, nothing extra.  "check" repeats that after
the remount from the recorded models.
"""
import argparse
import errno
import hashlib
import json
import os
import random
import stat
import sys
import time

ROLLED = {errno.EIO, errno.ENOMEM}
BS = 4096
MAX_SIZE = 256 * 1024


def ename(e):
    return errno.errorcode.get(e, str(e))


class Fail(Exception):
    pass


class Worker:
    def __init__(self, root, wid, deadline, seed):
        self.root, self.wid, self.deadline = root, wid, deadline
        self.rng = random.Random(seed)
        self.pre = f"p{wid}-"
        self.names = {}		# relpath -> {"t": "f", "ino": id} | {"t": "d", "mode"} | {"t": "l", "target"}
        self.inodes = {}	# id -> {"data": bytearray, "mode": int}
        self.next_ino = 0
        self.k = 0
        self.stats = {}
        self.errors = []

    # --- helpers ------------------------------------------------------------
    def p(self, rel):
        return f"{self.root}/{rel}"

    def count(self, key):
        self.stats[key] = self.stats.get(key, 0) + 1

    def error(self, msg):
        self.errors.append(msg)
        print(f"FAIL: worker {self.wid}: {msg}", flush=True)

    def new_name(self, kind, parents=True):
        self.k += 1
        tops = ["s", "x"]
        dirs = [n for n, e in self.names.items() if e["t"] == "d"]
        if parents and dirs and self.rng.random() < 0.3:
            return f"{self.rng.choice(dirs)}/{kind}{self.k}"
        return f"{self.rng.choice(tops)}/{self.pre}{kind}{self.k}"

    def pick(self, *types):
        c = [n for n, e in self.names.items() if e["t"] in types]
        return self.rng.choice(c) if c else None

    def nlinks(self, ino):
        return sum(1 for e in self.names.values() if e["t"] == "f" and e["ino"] == ino)

    def children(self, d):
        pre = d + "/"
        return [n for n in self.names if n.startswith(pre)]

    # --- model checks ---------------------------------------------------------
    def check_name(self, rel, where):
        """rel on disk is exactly as the model says (or absent)."""
        e = self.names.get(rel)
        try:
            st = os.lstat(self.p(rel))
        except FileNotFoundError:
            if e is not None:
                self.error(f"{where}: {rel} missing")
            return
        if e is None:
            self.error(f"{where}: {rel} exists (mode {oct(st.st_mode)}), the model has no such name")
            return
        t = {"f": stat.S_ISREG, "d": stat.S_ISDIR, "l": stat.S_ISLNK}[e["t"]]
        if not t(st.st_mode):
            self.error(f"{where}: {rel} has mode {oct(st.st_mode)}, want type {e['t']}")
            return
        if e["t"] == "f":
            ino = self.inodes[e["ino"]]
            if stat.S_IMODE(st.st_mode) != ino["mode"]:
                self.error(f"{where}: {rel} mode {oct(st.st_mode)}, want {oct(ino['mode'])}")
            if st.st_nlink != self.nlinks(e["ino"]):
                self.error(f"{where}: {rel} nlink {st.st_nlink}, want {self.nlinks(e['ino'])}")
            with open(self.p(rel), "rb") as f:
                data = f.read()
            if data != ino["data"]:
                self.error(f"{where}: {rel} content differs: size {len(data)}, want "
                           f"{len(ino['data'])}" + (f", first difference at {first_diff(data, ino['data'])}"))
        elif e["t"] == "d":
            if stat.S_IMODE(st.st_mode) != e["mode"]:
                self.error(f"{where}: {rel} mode {oct(st.st_mode)}, want {oct(e['mode'])}")
            if st.st_nlink != 2:
                self.error(f"{where}: directory {rel} nlink {st.st_nlink}, want 2")
            got = sorted(os.listdir(self.p(rel)))
            want = sorted(n[len(rel) + 1:] for n in self.children(rel))
            if got != want:
                self.error(f"{where}: directory {rel} lists {got[:10]}, want {want[:10]}")
        else:
            t = os.readlink(self.p(rel))
            if t != e["target"]:
                self.error(f"{where}: symlink {rel} -> {t!r}, want {e['target']!r}")

    # --- one operation --------------------------------------------------------
    def attempt(self, name, fn, touched):
        """Runs fn(); returns its result, or None after a rolled-back
        failure (then the touched names are checked against the model)."""
        try:
            r = fn()
        except OSError as e:
            if e.errno in ROLLED:
                self.count(f"{name}:{ename(e.errno)}")
                for t in touched:
                    self.check_name(t, f"after {name} failed with {ename(e.errno)}")
                return None
            self.error(f"{name} {touched}: unexpected {ename(e.errno)} ({e.strerror})")
            self.count(f"{name}:{ename(e.errno)}")
            return None
        self.count(name)
        return True if r is None else r

    def write(self, rel, data):
        """Appends data; the model gets what was written."""
        ino = self.inodes[self.names[rel]["ino"]]

        def fn():
            fd = os.open(self.p(rel), os.O_WRONLY | os.O_APPEND)
            try:
                return os.write(fd, data)
            finally:
                os.close(fd)
        n = self.attempt("write", fn, [rel])
        if n is None:
            return
        if n < len(data):
            self.count("write:short")
        ino["data"] += data[:n]

    def op_create(self):
        rel = self.new_name("f")
        mode = self.rng.choice([0o644, 0o600, 0o640])

        def fn():
            os.close(os.open(self.p(rel), os.O_CREAT | os.O_EXCL | os.O_WRONLY, mode))
        if self.attempt("create", fn, [rel]):
            self.next_ino += 1
            self.inodes[self.next_ino] = {"data": bytearray(), "mode": mode, "holes": set()}
            self.names[rel] = {"t": "f", "ino": self.next_ino}
            size = self.rng.choice([0, 100, 4096, 5000, 20000, 65536])
            if size:
                self.write(rel, self.rng.randbytes(size))

    def op_append(self):
        rel = self.pick("f")
        if rel is None:
            return
        if len(self.inodes[self.names[rel]["ino"]]["data"]) > MAX_SIZE:
            return self.op_truncate(rel)
        self.write(rel, self.rng.randbytes(self.rng.choice([1, 100, 4096, 10000, 40000])))

    def op_truncate(self, rel=None):
        rel = rel or self.pick("f")
        if rel is None:
            return
        ino = self.inodes[self.names[rel]["ino"]]
        size = len(ino["data"])
        if self.rng.random() < 0.6 or size > MAX_SIZE:
            new = self.rng.randrange(0, size + 1)
        else:	# grow to a block multiple: appends never fill a hole
            new = (size + BS - 1) // BS * BS + self.rng.randrange(0, 4) * BS
        if self.attempt("truncate", lambda: os.truncate(self.p(rel), new), [rel]):
            if new < size:
                del ino["data"][new:]
                ino["holes"] = {b for b in ino["holes"] if b * BS < new}
            else:
                ino["data"] += bytes(new - size)
                ino["holes"] |= set(range((size + BS - 1) // BS, new // BS))

    def op_rename(self):
        src = self.pick("f", "l", "d")
        if src is None:
            return
        e = self.names[src]
        r = self.rng.random()
        if e["t"] == "d":
            if r < 0.3:
                dst = self.pick("d")
                if dst == src or dst is None or self.children(dst):
                    dst = self.new_name("d", parents=False)
            else:
                dst = self.new_name("d", parents=False)
        else:
            dst = self.pick("f", "l") if r < 0.3 else None
            if dst is None or dst == src:
                dst = self.new_name(e["t"])
            elif e["t"] == "f" and self.names[dst]["t"] == "f" and \
                    self.names[dst]["ino"] == e["ino"]:
                dst = self.new_name(e["t"])	# same inode: rename is a no-op
        touched = [src, dst] + (self.children(src) if e["t"] == "d" else [])
        if self.attempt("rename", lambda: os.rename(self.p(src), self.p(dst)), touched):
            old = self.names.get(dst)
            self.names[dst] = self.names.pop(src)
            if old and old["t"] == "f" and not self.nlinks(old["ino"]):
                del self.inodes[old["ino"]]
            if e["t"] == "d":
                for c in self.children(src):
                    self.names[dst + c[len(src):]] = self.names.pop(c)
            self.count("rename:dir" if e["t"] == "d" else "rename:file")
            if src.split("/")[0] != dst.split("/")[0]:
                self.count("rename:cross")

    def op_link(self):
        src = self.pick("f")
        if src is None:
            return
        dst = self.new_name("h")
        if self.attempt("link", lambda: os.link(self.p(src), self.p(dst)), [src, dst]):
            self.names[dst] = dict(self.names[src])

    def op_unlink(self):
        rel = self.pick("f", "l")
        if rel is None:
            return
        e = self.names[rel]
        others = [n for n, o in self.names.items() if n != rel and o.get("ino") == e.get("ino") and e["t"] == "f"]
        if self.attempt("unlink", lambda: os.unlink(self.p(rel)), [rel] + others[:1]):
            del self.names[rel]
            if e["t"] == "f" and not self.nlinks(e["ino"]):
                del self.inodes[e["ino"]]

    def op_mkdir(self):
        rel = self.new_name("d", parents=False)
        mode = self.rng.choice([0o755, 0o700])
        if self.attempt("mkdir", lambda: os.mkdir(self.p(rel), mode), [rel]):
            self.names[rel] = {"t": "d", "mode": mode}

    def op_rmdir(self):
        c = [n for n, e in self.names.items() if e["t"] == "d" and not self.children(n)]
        if not c:
            return
        rel = self.rng.choice(c)
        if self.attempt("rmdir", lambda: os.rmdir(self.p(rel)), [rel]):
            del self.names[rel]

    def op_chmod(self):
        rel = self.pick("f", "d")
        if rel is None:
            return
        e = self.names[rel]
        mode = self.rng.choice([0o600, 0o640, 0o644, 0o755, 0o700, 0o711])
        if self.attempt("chmod", lambda: os.chmod(self.p(rel), mode), [rel]):
            if e["t"] == "f":
                self.inodes[e["ino"]]["mode"] = mode
            else:
                e["mode"] = mode

    def op_symlink(self):
        rel = self.new_name("l")
        target = f"../t/{self.k}/" + "y" * self.rng.randrange(1, 200)
        if self.attempt("symlink", lambda: os.symlink(target, self.p(rel)), [rel]):
            self.names[rel] = {"t": "l", "target": target}

    def op_verify(self):
        rel = self.pick("f", "d", "l")
        if rel:
            self.check_name(rel, "spot check")

    def run(self):
        ops = [(14, self.op_create), (14, self.op_append), (8, self.op_truncate),
               (12, self.op_rename), (6, self.op_link), (10, self.op_unlink),
               (5, self.op_mkdir), (4, self.op_rmdir), (6, self.op_chmod),
               (4, self.op_symlink), (4, self.op_verify)]
        fns = [f for _, f in ops]
        weights = [w for w, _ in ops]
        while time.time() < self.deadline and len(self.errors) < 10:
            # Keep the population moderate: more removals when large.
            if len(self.names) > 150:
                self.rng.choice([self.op_unlink, self.op_rmdir, self.op_truncate])()
                continue
            self.rng.choices(fns, weights)[0]()

    def model(self):
        return {"names": self.names,
                "inodes": {str(k): {"sha": hashlib.sha256(v["data"]).hexdigest(),
                                    "size": len(v["data"]), "mode": v["mode"]}
                           for k, v in self.inodes.items()}}


def first_diff(a, b):
    for i, (x, y) in enumerate(zip(a, b)):
        if x != y:
            return i
    return min(len(a), len(b))


def verify(root, models):
    """Every process's names exactly as its model says; nothing else."""
    bad = []
    seen = {}
    for top in ("s", "x"):
        for n in os.listdir(f"{root}/{top}"):
            seen[f"{top}/{n}"] = True
    owners = {f"p{w}-": w for w in models}
    for rel in seen:
        base = rel.split("/", 1)[1]
        w = next((o for pfx, o in owners.items() if base.startswith(pfx)), None)
        if w is None or rel not in models[w]["names"]:
            bad.append(f"unexpected entry {rel}")
    for w, m in models.items():
        names, inodes = m["names"], m["inodes"]
        inos = {}
        for rel, e in sorted(names.items()):
            p = f"{root}/{rel}"
            try:
                st = os.lstat(p)
            except FileNotFoundError:
                bad.append(f"worker {w}: {rel} missing")
                continue
            if e["t"] == "f":
                ino = inodes[str(e["ino"])]
                nl = sum(1 for o in names.values() if o["t"] == "f" and o["ino"] == e["ino"])
                with open(p, "rb") as f:
                    data = f.read()
                if not stat.S_ISREG(st.st_mode):
                    bad.append(f"worker {w}: {rel} is not a file ({oct(st.st_mode)})")
                elif hashlib.sha256(data).hexdigest() != ino["sha"]:
                    bad.append(f"worker {w}: {rel} content differs (size {len(data)}, want {ino['size']})")
                elif stat.S_IMODE(st.st_mode) != ino["mode"] or st.st_nlink != nl:
                    bad.append(f"worker {w}: {rel} mode {oct(st.st_mode)} nlink {st.st_nlink}, "
                               f"want {oct(ino['mode'])} nlink {nl}")
                if inos.setdefault(e["ino"], st.st_ino) != st.st_ino:
                    bad.append(f"worker {w}: {rel} is inode {st.st_ino}, its hard links {inos[e['ino']]}")
            elif e["t"] == "d":
                want = sorted(n[len(rel) + 1:] for n in names if n.startswith(rel + "/"))
                got = sorted(os.listdir(p)) if stat.S_ISDIR(st.st_mode) else None
                if got != want or stat.S_IMODE(st.st_mode) != e["mode"] or st.st_nlink != 2:
                    bad.append(f"worker {w}: directory {rel}: mode {oct(st.st_mode)} nlink "
                               f"{st.st_nlink} lists {got and got[:8]}; want {oct(e['mode'])}, 2, {want[:8]}")
            else:
                if not stat.S_ISLNK(st.st_mode) or os.readlink(p) != e["target"]:
                    bad.append(f"worker {w}: symlink {rel} wrong ({oct(st.st_mode)})")
    return bad


def fault_cmd(dev, cmd):
    with open(f"/sys/kernel/debug/twinfs/{dev}/fail", "w") as f:
        f.write(cmd)


def fault_fired(dev):
    with open(f"/sys/kernel/debug/twinfs/{dev}/fail") as f:
        for line in f:
            if line.startswith("fired "):
                return int(line.split()[1])
    return 0


def sysfs(dev, name):
    with open(f"/sys/fs/twinfs/{dev}/{name}") as f:
        return int(f.read())


def run(args):
    root = args.root
    os.makedirs(f"{root}/s")
    os.makedirs(f"{root}/x")
    os.umask(0)
    seed = int(time.time())
    print(f"undo_stress: seed {seed}, {args.nproc} processes, {args.secs}s, "
          f"random {args.permille} per mille", flush=True)
    fired0 = fault_fired(args.dev)
    rb0 = sysfs(args.dev, "ops_rolled_back")
    pg0 = sysfs(args.dev, "pages_restored")
    deadline = time.time() + args.secs
    fault_cmd(args.dev, f"random {args.permille}")
    pids = {}
    for wid in range(args.nproc):
        rfd, wfd = os.pipe()
        pid = os.fork()
        if pid == 0:
            os.close(rfd)
            rc = 1
            try:
                w = Worker(root, wid, deadline, seed * 100 + wid)
                w.run()
                os.write(wfd, json.dumps({"stats": w.stats, "errors": len(w.errors),
                                          "model": w.model()}).encode())
                rc = 1 if w.errors else 0
            except BaseException as e:  # noqa: BLE001 - report any crash
                import traceback
                traceback.print_exc()
                print(f"FAIL: worker {wid} crashed: {e!r}", flush=True)
            finally:
                os._exit(rc)
        os.close(wfd)
        pids[pid] = (wid, rfd)
    failed = 0
    total, models = {}, {}
    for pid, (wid, rfd) in pids.items():
        chunks = []
        while True:
            b = os.read(rfd, 1 << 20)
            if not b:
                break
            chunks.append(b)
        os.close(rfd)
        _, status = os.waitpid(pid, 0)
        if status:
            failed += 1
        if chunks:
            res = json.loads(b"".join(chunks))
            models[wid] = res["model"]
            for k, v in res["stats"].items():
                total[k] = total.get(k, 0) + v
    fault_cmd(args.dev, "off")
    fired = fault_fired(args.dev) - fired0
    rb = sysfs(args.dev, "ops_rolled_back") - rb0
    pg = sysfs(args.dev, "pages_restored") - pg0
    ok = sum(v for k, v in total.items() if ":" not in k)
    failed_ops = sum(v for k, v in total.items() if k.endswith((":EIO", ":ENOMEM")))
    print("undo_stress: operations: " + ", ".join(f"{k}={v}" for k, v in sorted(total.items())), flush=True)
    print(f"undo_stress: {ok} succeeded, {failed_ops} failed and rolled back, "
          f"{total.get('write:short', 0)} short writes; faults fired {fired}, "
          f"ops_rolled_back +{rb}, pages_restored +{pg}", flush=True)
    bad = verify(root, models)
    for b in bad[:30]:
        print(f"FAIL: {b}")
    nn = sum(len(m["names"]) for m in models.values())
    print(f"undo_stress: verified {nn} names of {len(models)} processes, {len(bad)} problems", flush=True)
    with open(args.record, "w") as f:
        json.dump({str(k): v for k, v in models.items()}, f)
    if len(models) != args.nproc:
        print(f"FAIL: only {len(models)} of {args.nproc} processes reported")
        failed += 1
    if not fired or not failed_ops or rb <= 0:
        print(f"FAIL: no faults took effect (fired {fired}, failed ops {failed_ops}, rollbacks {rb})")
        failed += 1
    return 1 if failed or bad else 0


def check(args):
    with open(args.record) as f:
        models = {int(k): v for k, v in json.load(f).items()}
    bad = verify(args.root, models)
    for b in bad[:30]:
        print(f"FAIL: after remount: {b}")
    nn = sum(len(m["names"]) for m in models.values())
    print(f"undo_stress: checked {nn} names after remount, {len(bad)} problems", flush=True)
    return 1 if bad else 0


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("mode", choices=["run", "check"])
    ap.add_argument("root")
    ap.add_argument("record")
    ap.add_argument("--secs", type=float, default=60)
    ap.add_argument("--nproc", type=int, default=6)
    ap.add_argument("--dev", default="vda")
    ap.add_argument("--permille", type=int, default=20)
    args = ap.parse_args()
    return run(args) if args.mode == "run" else check(args)


if __name__ == "__main__":
    sys.exit(main())
