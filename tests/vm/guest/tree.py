#!/usr/bin/env python3
"""A tree of files, directories and symlinks with known content, for the
persistence scenario (20-persist-reboot).

  tree.py write  DIR MANIFEST   build the tree under DIR (must not exist),
                                change part of it, record its final state
  tree.py verify DIR MANIFEST   DIR must be exactly as recorded
"""
import json
import os
import random
import sys

from ops import snapshot, write_file

MiB = 1 << 20


def build(root):
    rng = random.Random(20)
    os.umask(0)
    os.mkdir(root)
    sizes = [0, 1, 100, 4095, 4096, 4097, 65536, MiB + 3, 3 * MiB]
    for path in ("a", "a/b", "a/b/c", "empty", "many", "moved-from", "gone"):
        os.mkdir(f"{root}/{path}", 0o755)
    for i, size in enumerate(sizes):
        write_file(f"{root}/a/file{i}", rng.randbytes(size), 0o644)
        write_file(f"{root}/a/b/c/deep{i}", rng.randbytes(size // 3), 0o600)
    for i in range(300):
        write_file(f"{root}/many/m{i:03d}", f"file {i}\n".encode() * (i % 7))
    fd = os.open(f"{root}/sparse", os.O_CREAT | os.O_WRONLY, 0o644)
    os.pwrite(fd, b"start", 0)
    os.pwrite(fd, b"far away", 1 << 30)
    os.close(fd)
    os.symlink("a/file1", f"{root}/rel-link")
    os.symlink(f"{root}/a/b", f"{root}/abs-link")
    os.symlink("does/not/exist", f"{root}/dangling")
    os.symlink("L" * 1000, f"{root}/long-link")
    os.link(f"{root}/a/file3", f"{root}/a/b/hardlink")
    os.chmod(f"{root}/a/file2", 0o4711)
    os.chown(f"{root}/a/file4", 1000, 1001)
    os.utime(f"{root}/a/file5", ns=(1_234_567_890_111_222_333, 1_234_567_890_444_555_666))
    for i in range(20):
        write_file(f"{root}/moved-from/x{i}", rng.randbytes(5000))
        write_file(f"{root}/gone/y{i}", rng.randbytes(5000))
    os.sync()
    # changes after the first sync: renames, deletes, overwrites, truncates
    os.rename(f"{root}/moved-from", f"{root}/a/b/moved-to")
    os.rename(f"{root}/a/file6", f"{root}/many/file6-renamed")
    os.rename(f"{root}/many/m000", f"{root}/a/file7")	# over an existing file
    for i in range(20):
        os.unlink(f"{root}/gone/y{i}")
    os.rmdir(f"{root}/gone")
    for i in range(0, 300, 3):
        if os.path.exists(f"{root}/many/m{i:03d}"):
            os.unlink(f"{root}/many/m{i:03d}")
    fd = os.open(f"{root}/a/file8", os.O_WRONLY)
    os.pwrite(fd, b"overwritten" * 100, 12345)
    os.close(fd)
    os.truncate(f"{root}/a/file7", 2)
    os.truncate(f"{root}/a/b/c/deep8", 777)
    with open(f"{root}/many/m001", "ab") as f:
        f.write(b"appended")
    os.sync()


def main():
    mode, root, manifest = sys.argv[1:4]
    if mode == "write":
        build(root)
        snap = snapshot(root)
        with open(manifest, "w") as f:
            json.dump(snap, f)
        print(f"tree: wrote and recorded {len(snap)} entries")
        return 0
    with open(manifest) as f:
        want = json.load(f)
    now = snapshot(root)
    bad = [f"missing: {p}" for p in sorted(set(want) - set(now))]
    bad += [f"unexpected: {p}" for p in sorted(set(now) - set(want))]
    for p in sorted(set(want) & set(now)):
        if want[p] != now[p]:
            bad.append(f"{p}: " + ", ".join(f"{k} {want[p].get(k)} -> {now[p].get(k)}"
                                            for k in sorted(set(want[p]) | set(now[p]))
                                            if want[p].get(k) != now[p].get(k)))
    for b in bad[:20]:
        print(f"FAIL: {b}")
    if len(bad) > 20:
        print(f"FAIL: ... {len(bad)} differences in all")
    print(f"tree: verified {len(now)} entries, {len(bad)} differences")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
