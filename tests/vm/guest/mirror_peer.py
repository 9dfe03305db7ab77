#!/usr/bin/env python3
"""A hostile or test peer of the twinfs mirror target (scenarios/70-mirror-tcp.sh).

    mirror_peer.py HOST PORT MODE [KEYFILE]

speaks the wire format of include/twinfs/twinfs_mirror.h from user space and
checks that the target drops the connection (without an ACK or a READY it
should not give).  Modes:

  garbage    4 KiB of random bytes (no valid frame)
  badcrc     a HELLO frame with the right magic and a wrong header crc
  badlen     a HELLO frame with a valid crc claiming a 16 MiB payload
  wrongkey   a full handshake with KEYFILE, which is not the target's key:
             the target's CHALLENGE MAC must not verify with it, and the
             AUTH made with it must be refused (no READY)
  badframe   handshake with KEYFILE (the right key), then a WRITE whose
             header crc is wrong: dropped, no ACK
  baddata    handshake, then a WRITE whose payload crc is wrong
  badreq     handshake, then a well-formed WRITE beyond the end of the copy
  partial    handshake, SYNC_BEGIN, one WRITE, then close: an owner that
             died during its resync (the target's copy stays partial)

Prints one line "PEER <mode> <local ip:port> OK: ..." (exit 0) or
"FAIL: ..." (exit 1).  The local port lets the caller find the target's log
line about this connection.
"""
import hashlib
import hmac
import os
import socket
import struct
import sys
import time

MAGIC = 0x544D5752
HELLO, CHALLENGE, AUTH, READY, WRITE, ACK = 1, 2, 3, 4, 5, 6
SYNC_BEGIN, SYNC_DONE = 8, 9
VERSION = 3          # TWINFS_MIRROR_VERSION
HDR_AREA = 4096      # TWINFS_CM_HDR_AREA
FRAME = struct.Struct("<IHHQQIIII")         # struct twinfs_mirror_frame, 40 bytes
HELLO_S = struct.Struct("<II16sQ32s")       # struct twinfs_mirror_hello, 64 bytes
NONCE = 32
CLOSE_WAIT = 12.0   # the target's handshake receive timeout is 5 s

_T = []
for _i in range(256):
    _c = _i
    for _ in range(8):
        _c = (_c >> 1) ^ 0x82F63B78 if _c & 1 else _c >> 1
    _T.append(_c)


def crc32c(data):
    crc = 0xFFFFFFFF
    for b in data:
        crc = _T[(crc ^ b) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF


def frame(ftype, fid=0, off=0, payload=b"", bad_crc=False, bad_data_crc=False,
          claim_len=None):
    dcrc = crc32c(payload) if payload else 0
    if bad_data_crc:
        dcrc ^= 0x1
    n = len(payload) if claim_len is None else claim_len
    hdr = FRAME.pack(MAGIC, ftype, 0, fid, off, n, dcrc, 0, 0)
    c = crc32c(hdr)     # the crc field is still 0: twinfs_csum_block()
    if bad_crc:
        c ^= 0xDEADBEEF
    return hdr[:36] + struct.pack("<I", c) + payload


class Closed(Exception):
    pass


def recv_exact(s, n):
    buf = b""
    while len(buf) < n:
        try:
            b = s.recv(n - len(buf))
        except (ConnectionResetError, BrokenPipeError):
            raise Closed("reset")
        if not b:
            raise Closed("closed")
        buf += b
    return buf


def recv_frame(s):
    hdr = recv_exact(s, FRAME.size)
    magic, ftype, flags, fid, off, n, dcrc, pad, c = FRAME.unpack(hdr)
    if magic != MAGIC or crc32c(hdr[:36] + b"\0\0\0\0") != c:
        raise SystemExit(f"FAIL: malformed frame from the target: {hdr.hex()}")
    payload = recv_exact(s, n) if n else b""
    if n and crc32c(payload) != dcrc:
        raise SystemExit("FAIL: bad payload crc from the target")
    return ftype, fid, payload


def expect_close(s, what):
    """The target must close the connection and send nothing more."""
    s.settimeout(CLOSE_WAIT)
    t0 = time.time()
    try:
        while True:
            b = s.recv(4096)
            if not b:
                break
            # Any bytes here would be an ACK/READY the target must not send.
            raise SystemExit(f"FAIL: {what}: the target answered {b[:48].hex()}")
    except (ConnectionResetError, BrokenPipeError):
        pass
    except socket.timeout:
        raise SystemExit(f"FAIL: {what}: the target kept the connection open "
                         f"for {CLOSE_WAIT} s")
    return time.time() - t0


def send(s, data):
    try:
        s.sendall(data)
    except (ConnectionResetError, BrokenPipeError):
        pass        # closed already: expect_close sees it


def handshake(s, key, want_ok=True):
    """HELLO / CHALLENGE / AUTH; returns whether the target proved our key."""
    nonce = os.urandom(NONCE)
    hello = HELLO_S.pack(VERSION, 0, bytes(16), 1 << 20, nonce)
    send(s, frame(HELLO, payload=hello))
    s.settimeout(CLOSE_WAIT)
    ftype, _, p = recv_frame(s)
    if ftype != CHALLENGE or len(p) != NONCE + 32:
        raise SystemExit(f"FAIL: expected a CHALLENGE, got type {ftype}, {len(p)} bytes")
    snonce, smac = p[:NONCE], p[NONCE:]
    proved = hmac.compare_digest(
        smac, hmac.new(key, b"twinfs-s" + nonce + snonce, hashlib.sha256).digest())
    mac = hmac.new(key, b"twinfs-c" + snonce + nonce, hashlib.sha256).digest()
    send(s, frame(AUTH, payload=mac))
    if want_ok:
        if not proved:
            raise SystemExit("FAIL: the target's CHALLENGE does not verify with the key")
        ftype, _, _ = recv_frame(s)
        if ftype != READY:
            raise SystemExit(f"FAIL: expected READY, got type {ftype}")
    return proved


def main():
    if len(sys.argv) < 4:
        raise SystemExit(__doc__)
    host, port, mode = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    key = open(sys.argv[4], "rb").read() if len(sys.argv) > 4 else None
    s = socket.create_connection((host, port), timeout=10)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    me = "%s:%d" % s.getsockname()
    note = ""
    if mode == "garbage":
        g = bytearray(os.urandom(4096))
        g[0:4] = b"\0\0\0\0"    # never the magic by chance
        send(s, bytes(g))
    elif mode == "badcrc":
        hello = HELLO_S.pack(VERSION, 0, bytes(16), 1 << 20, os.urandom(NONCE))
        send(s, frame(HELLO, payload=hello, bad_crc=True))
    elif mode == "badlen":
        send(s, frame(HELLO, claim_len=16 << 20))
    elif mode == "wrongkey":
        if handshake(s, key, want_ok=False):
            raise SystemExit("FAIL: wrongkey: the target proved the key we were "
                             "told is wrong")
        note = "target's CHALLENGE did not verify with our key; "
    elif mode in ("badframe", "baddata", "badreq"):
        handshake(s, key)
        data = os.urandom(4096)
        if mode == "badframe":
            send(s, frame(WRITE, fid=1, off=1 << 20, payload=data, bad_crc=True))
        elif mode == "baddata":
            send(s, frame(WRITE, fid=1, off=1 << 20, payload=data, bad_data_crc=True))
        else:
            send(s, frame(WRITE, fid=1, off=1 << 40, payload=data))
        note = "authenticated; "
    elif mode == "partial":
        # An owner that dies right after starting a resync: the target's
        # copy must now say "partial" (a takeover mount refuses it).
        handshake(s, key)
        send(s, frame(SYNC_BEGIN, fid=1, off=HDR_AREA))
        ftype, fid, _ = recv_frame(s)
        if ftype != ACK or fid != 1:
            raise SystemExit(f"FAIL: partial: expected the ACK of SYNC_BEGIN, got type {ftype} id {fid}")
        send(s, frame(WRITE, fid=2, off=1 << 20, payload=os.urandom(4096)))
        ftype, fid, _ = recv_frame(s)
        if ftype != ACK or fid != 2:
            raise SystemExit(f"FAIL: partial: expected the ACK of a WRITE, got type {ftype} id {fid}")
        s.close()
        print(f"PEER {mode} {me} OK: SYNC_BEGIN and one WRITE ACKed, then gone",
              flush=True)
        return
    else:
        raise SystemExit(f"FAIL: unknown mode {mode}")
    secs = expect_close(s, mode)
    s.close()
    print(f"PEER {mode} {me} OK: {note}connection dropped by the target after "
          f"{secs:.2f} s", flush=True)


if __name__ == "__main__":
    main()
