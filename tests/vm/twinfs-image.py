#!/usr/bin/env python3
"""Host-side surgery on twinfs images, for scenario 40-corrupt.
Offsets follow include/twinfs/twinfs_format.h (all little endian).

  twinfs-image.py set-version IMG N      s_version = N, checksum recomputed
  twinfs-image.py flip IMG OFFSET        xor the byte at OFFSET with 0xff
  twinfs-image.py dir-leaves IMG INO     block numbers of the directory leaf
                                         blocks of inode INO (magic "TWDL" at
                                         a block start, d_ino == INO), from
                                         the first allocation group on
"""
import struct
import sys

BLOCK = 4096
SB_VERSION = 4
SB_FIRST_AG = 72		# s_first_ag_block, __le64
SB_CSUM = BLOCK - 4		# s_checksum, crc32c of the block with it zero
DIR_LEAF_MAGIC = 0x5457444C


def _table():
    t = []
    for i in range(256):
        c = i
        for _ in range(8):
            c = (c >> 1) ^ 0x82F63B78 if c & 1 else c >> 1
        t.append(c)
    return t


_T = _table()


def crc32c(data, crc=0xFFFFFFFF):
    for b in data:
        crc = _T[(crc ^ b) & 0xFF] ^ (crc >> 8)
    return crc


def block_csum(blk, off):
    """As twinfs_csum_block(): ~crc32c(~0, block with the field zeroed)."""
    return crc32c(blk[:off] + b"\0\0\0\0" + blk[off + 4:]) ^ 0xFFFFFFFF


def main():
    cmd, img = sys.argv[1], sys.argv[2]
    with open(img, "r+b") as f:
        if cmd == "set-version":
            sb = bytearray(f.read(BLOCK))
            struct.pack_into("<I", sb, SB_VERSION, int(sys.argv[3]))
            struct.pack_into("<I", sb, SB_CSUM, block_csum(sb, SB_CSUM))
            f.seek(0)
            f.write(sb)
        elif cmd == "flip":
            off = int(sys.argv[3], 0)
            f.seek(off)
            b = f.read(1)
            f.seek(off)
            f.write(bytes([b[0] ^ 0xFF]))
        elif cmd == "dir-leaves":
            ino = int(sys.argv[3])
            first_ag = struct.unpack_from("<Q", f.read(BLOCK), SB_FIRST_AG)[0]
            blk = first_ag
            f.seek(blk * BLOCK)
            while True:
                data = f.read(BLOCK)
                if len(data) < 8:
                    break
                magic, d_ino = struct.unpack_from("<II", data)
                if magic == DIR_LEAF_MAGIC and d_ino == ino:
                    print(blk)
                blk += 1
        else:
            sys.exit(f"unknown command {cmd}")


if __name__ == "__main__":
    main()
