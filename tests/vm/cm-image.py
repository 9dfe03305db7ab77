#!/usr/bin/env python3
"""Host-side reading and surgery of a twinfs change memory (NVRAM) image,
for scenario 62-cm-corrupt.  The format is include/twinfs/twinfs_cm.h
(Documentation/design.md, "Change memory format"), all little endian:
two header copies at 0 and 2048 (the valid one with the higher h_update
counts), lanes from 4096, each h_lane_size bytes, a ring of 64-byte-aligned
records (40-byte header with magic 0x54574352, then the payload).

  cm-image.py dump [-v [--seq A B]] IMG header, lanes and records
  cm-image.py corrupt IMG [--seed N] [--min-seq S]
        flip one byte in the payload of a record with seq > S (and > the
        header's cp_seq) that has later records after it in its lane;
        prints what it changed
  cm-image.py garbage IMG [--seed N]    fill IMG (its size stays) with random
        bytes, with a valid magic and version in both header copies
"""
import argparse
import random
import struct
import sys

CM_MAGIC = 0x5457434D
CM_VERSION = 1
HDR_AREA = 4096
HDR_COPY = 2048
LANES_MAX = 64
REC_MAGIC = 0x54574352
REC_ALIGN = 64
REC_HDR = 40
REC_MAX = 65536
PAYLOAD_MAX = REC_MAX - REC_HDR
OPS = {1: "CREATE", 2: "MKNOD", 3: "MKDIR", 4: "SYMLINK", 5: "LINK", 6: "UNLINK",
       7: "RMDIR", 8: "RENAME", 9: "SETATTR", 10: "TRUNCATE", 11: "WRITE"}


def _table():
    t = []
    for i in range(256):
        c = i
        for _ in range(8):
            c = (c >> 1) ^ 0x82F63B78 if c & 1 else c >> 1
        t.append(c)
    return t


_T = _table()


def crc32c(data):
    """crc32c with the ~0 seed and the final inversion (twinfs_csum_block)."""
    crc = 0xFFFFFFFF
    t = _T
    for b in data:
        crc = t[(crc ^ b) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF


def csum_block(buf, off):
    return crc32c(bytes(buf[:off]) + b"\0\0\0\0" + bytes(buf[off + 4:]))


class Header:
    def __init__(self, raw, slot):
        self.slot = slot
        (self.magic, self.version) = struct.unpack_from("<II", raw, 0)
        self.uuid = raw[8:24].hex()
        (self.node_id, self.lane_count, self.region_size, self.lane_size,
         self.flags, self.cp_seq, self.update) = struct.unpack_from("<IIQIIQQ", raw, 24)
        self.lanes = [struct.unpack_from("<II", raw, 64 + 8 * i) for i in range(LANES_MAX)]
        self.checksum = struct.unpack_from("<I", raw, HDR_COPY - 4)[0]
        self.zero = not any(raw)
        self.why = None
        if self.magic != CM_MAGIC:
            self.why = "bad magic"
        elif self.checksum != csum_block(raw, HDR_COPY - 4):
            self.why = "checksum mismatch"
        elif self.version != CM_VERSION:
            self.why = f"version {self.version}"
        elif not 1 <= self.lane_count <= LANES_MAX or self.lane_size % 4096:
            self.why = "bad geometry"

    def __str__(self):
        if self.zero:
            return f"copy {self.slot}: all zero"
        s = (f"copy {self.slot}: magic {self.magic:#x} version {self.version} "
             f"update {self.update} cp_seq {self.cp_seq} lanes {self.lane_count} x "
             f"{self.lane_size} region {self.region_size} node {self.node_id} uuid {self.uuid}")
        return s + (f" INVALID ({self.why})" if self.why else " valid")


ATTRS = {1: "parent", 2: "ino", 3: "name", 4: "new_parent", 5: "new_name", 6: "target_ino",
         7: "mode", 8: "uid", 9: "gid", 10: "size", 11: "atime", 12: "mtime", 13: "ctime",
         14: "rdev", 15: "offset", 16: "data", 17: "symlink", 18: "generation", 19: "flags"}


def attrs(payload):
    """The payload's attributes as text, for dump -v."""
    out, pos = [], 0
    while pos + 4 <= len(payload):
        t, n = struct.unpack_from("<HH", payload, pos)
        v = payload[pos + 4:pos + 4 + n]
        pos += 4 + n
        name = ATTRS.get(t, f"attr{t}")
        if t in (1, 2, 4, 6, 10, 15) and n == 8:
            out.append(f"{name}={struct.unpack('<Q', v)[0]}")
        elif t in (7, 19) and n == 4:
            out.append(f"{name}={struct.unpack('<I', v)[0]:o}")
        elif t in (8, 9, 14, 18) and n == 4:
            out.append(f"{name}={struct.unpack('<I', v)[0]}")
        elif t in (11, 12, 13) and n == 12:
            sec, ns = struct.unpack("<qI", v)
            out.append(f"{name}={sec}.{ns:09d}")
        elif t == 16:
            out.append(f"data[{n}]")
        else:
            out.append(f"{name}={bytes(v).decode(errors='replace')[:40]!r}")
    return " ".join(out)


class Rec:
    __slots__ = ("lane", "off", "abs", "seq", "acked", "op", "len", "size", "gen")


def rec_check(data, pos, avail, gen):
    """The record at absolute offset pos with avail bytes of space, of
    generation gen, or None (no record: torn, stale or never written)."""
    if avail < REC_ALIGN:
        return None
    h = data[pos:pos + REC_HDR]
    magic, hcrc, seq, acked, op, flags, ln, pcrc, g = struct.unpack("<IIQQHHIII", h)
    if magic != REC_MAGIC or hcrc != csum_block(h, 4) or g != gen:
        return None
    size = (REC_HDR + ln + REC_ALIGN - 1) // REC_ALIGN * REC_ALIGN
    if ln > PAYLOAD_MAX or size > avail:
        return None
    if pcrc != crc32c(data[pos + REC_HDR:pos + REC_HDR + ln]):
        return None
    r = Rec()
    r.abs, r.seq, r.acked, r.op, r.len, r.size, r.gen = pos, seq, acked, op, ln, size, g
    return r


def scan_lane(data, hdr, i):
    """Records of lane i from its head, as the kernel's scanner reads them
    (twinfs_cm_lane_scan: one lap of the head's generation, then a second
    lap from 0 up to the head if the writer wrapped)."""
    base = HDR_AREA + i * hdr.lane_size
    head, gen = hdr.lanes[i]
    recs = []
    pos, g, limit, wrapped = head, gen, hdr.lane_size, False
    while True:
        r = rec_check(data, base + pos, limit - pos, g) if pos < limit else None
        if r is None:
            if wrapped:
                break
            if head and rec_check(data, base, head, g + 1):
                wrapped, pos, g, limit = True, 0, g + 1, head
                continue
            break
        r.lane, r.off = i, pos
        recs.append(r)
        pos += r.size
    return recs


def load(img):
    with open(img, "rb") as f:
        data = f.read()
    hdrs = [Header(data[0:HDR_COPY], 0), Header(data[HDR_COPY:HDR_AREA], 1)]
    good = [h for h in hdrs if not h.why]
    hdr = max(good, key=lambda h: h.update) if good else None
    lanes = [scan_lane(data, hdr, i) for i in range(hdr.lane_count)] if hdr else []
    return data, hdrs, hdr, lanes


def cmd_dump(a):
    data, hdrs, hdr, lanes = load(a.img)
    for h in hdrs:
        print(h)
    if not hdr:
        print("no valid header")
        return 0
    allr = [r for recs in lanes for r in recs]
    for i, recs in enumerate(lanes):
        if recs:
            print(f"lane {i}: head {hdr.lanes[i][0]} gen {hdr.lanes[i][1]}: {len(recs)} records, "
                  f"seq {recs[0].seq}..{recs[-1].seq}, tail {recs[-1].off + recs[-1].size}")
    print(f"{len(allr)} records in {sum(1 for r in lanes if r)} lanes; cp_seq {hdr.cp_seq}")
    seqs = sorted(r.seq for r in allr)
    gaps = [s for s, t in zip(seqs, seqs[1:]) if t != s + 1]
    if gaps:
        print(f"seq gaps after: {gaps[:20]}")
    if a.verbose:
        for r in sorted(allr, key=lambda r: r.seq):
            if a.seq and r.seq not in range(a.seq[0], a.seq[1] + 1):
                continue
            print(f"  seq {r.seq} acked_upto {r.acked} lane {r.lane} off {r.off} "
                  f"{OPS.get(r.op, r.op)} len {r.len}: "
                  f"{attrs(data[r.abs + REC_HDR:r.abs + REC_HDR + r.len])}")
    return 0


def cmd_corrupt(a):
    data, hdrs, hdr, lanes = load(a.img)
    if not hdr:
        print("FAIL: no valid change memory header", file=sys.stderr)
        return 1
    allr = [r for recs in lanes for r in recs]
    floor = max(hdr.cp_seq, a.min_seq)
    cands = []
    for recs in lanes:
        for n, r in enumerate(recs[:-1]):       # later records in its lane
            if r.seq > floor:
                cands.append((r, len(recs) - 1 - n))
    if not cands:
        print(f"FAIL: no record above seq {floor} with later records in its lane "
              f"({len(allr)} records)", file=sys.stderr)
        return 1
    rng = random.Random(a.seed)
    cands.sort(key=lambda c: c[0].seq)
    # Not the first or last few: well inside the live records.
    lo, hi = len(cands) // 4, max(len(cands) // 4 + 1, 3 * len(cands) // 4)
    r, later = cands[rng.randrange(lo, hi)]
    witnesses = sorted(x.seq for x in allr if x.acked >= r.seq and x.lane != r.lane)
    byte = r.abs + REC_HDR + rng.randrange(r.len)
    with open(a.img, "r+b") as f:
        f.seek(byte)
        b = f.read(1)[0]
        f.seek(byte)
        f.write(bytes([b ^ 0xFF]))
    print(f"corrupted record seq {r.seq} ({OPS.get(r.op, r.op)}, payload {r.len} bytes, "
          f"acked_upto {r.acked}) in lane {r.lane} at {r.off}: byte {byte} "
          f"(payload offset {byte - r.abs - REC_HDR}) {b:#04x} -> {b ^ 0xFF:#04x}; "
          f"{later} later records in its lane; acked_upto >= {r.seq} in other lanes: "
          f"{len(witnesses)} records; cp_seq {hdr.cp_seq}, last seq "
          f"{max(x.seq for x in allr)}")
    return 0


def cmd_garbage(a):
    rng = random.Random(a.seed)
    with open(a.img, "r+b") as f:
        f.seek(0, 2)
        size = f.tell()
        f.seek(0)
        left = size
        while left:
            n = min(left, 1 << 20)
            f.write(rng.randbytes(n))
            left -= n
        for off in (0, HDR_COPY):
            f.seek(off)
            f.write(struct.pack("<II", CM_MAGIC, CM_VERSION))
    print(f"{a.img}: {size} random bytes, magic {CM_MAGIC:#x} version {CM_VERSION} at 0 and {HDR_COPY}")
    return 0


def main():
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("dump")
    p.add_argument("img")
    p.add_argument("-v", "--verbose", action="store_true", help="every record, decoded")
    p.add_argument("--seq", type=int, nargs=2, metavar=("FIRST", "LAST"),
                   help="with -v: only these records")
    p.set_defaults(fn=cmd_dump)
    p = sub.add_parser("corrupt")
    p.add_argument("img")
    p.add_argument("--seed", default="0")
    p.add_argument("--min-seq", type=int, default=0)
    p.set_defaults(fn=cmd_corrupt)
    p = sub.add_parser("garbage")
    p.add_argument("img")
    p.add_argument("--seed", default="0")
    p.set_defaults(fn=cmd_garbage)
    a = ap.parse_args()
    return a.fn(a)


if __name__ == "__main__":
    sys.exit(main())
