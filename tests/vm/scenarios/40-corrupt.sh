#!/usr/bin/env bash
# Corrupt images are refused cleanly: not twinfs (zeros), wrong format
# version, a flipped byte in the superblock, a flipped byte in the root
# directory's leaf block.  The guest must see mount (or readdir) fail with a
# "twinfs (vdX):" message and no oops or hang; fsck.twinfs must exit
# non-zero on each.
set -uo pipefail
. "$(dirname "$0")/../lib.sh"
need_twinfs

img() { echo "$VM_TMPDIR/$1.img"; }
surgery() { python3 "$VM_TESTS/twinfs-image.py" "$@"; }

vm_image "$(img zeros)" 64M
vm_image "$(img version)" 64M
twinfs_mkfs "$(img version)"
surgery set-version "$(img version)" 99 || fail "cannot set the version"
vm_image "$(img super)" 64M
twinfs_mkfs "$(img super)"
twinfs_fsck "$(img super)" || fail "fsck.twinfs of a fresh image: exit $?"
surgery flip "$(img super)" 200 || fail "cannot flip a superblock byte"

# The directory case needs a populated file system first.
vm_image "$(img dir)" 64M
twinfs_mkfs "$(img dir)"
vm_run populate "$VM_TESTS/guest/corrupt.sh" --disk "$(img dir)" --timeout 120 -- populate ||
	fail "$VM_REASON"
twinfs_fsck "$(img dir)" || fail "fsck.twinfs of the populated image: exit $?"
# The root directory's leaf blocks: from `fsck.twinfs -v` ("dir 1 leaf N at
# block B"), cross-checked against a scan of the image for the leaf magic.
scanned=$(surgery dir-leaves "$(img dir)" 1) || fail "cannot scan for directory leaves"
leaves=$("$TWINFS_BIN/fsck.twinfs" -v "$(img dir)" 2>/dev/null |
	sed -n 's/^dir 1 leaf [0-9]* at block \([0-9]*\)$/\1/p' | sort -n)
if [ -z "$leaves" ]; then
	leaves=$scanned
elif [ "$leaves" != "$(sort -n <<< "$scanned")" ]; then
	fail "root directory leaves: fsck.twinfs -v says $(echo $leaves), the scan finds $(echo $scanned)"
fi
[ -n "$leaves" ] || fail "no leaf block of the root directory found (magic TWDL, d_ino 1)"
for b in $leaves; do
	# byte 34: inside the first entry's name (24-byte leaf header, 10-byte
	# entry header), so only the checksum can tell
	surgery flip "$(img dir)" $((b * 4096 + 34)) || fail "cannot flip a leaf byte"
done
vm_log "flipped byte 34 of root directory leaf block(s): $(echo $leaves)"

for i in zeros version super dir; do
	if twinfs_fsck "$(img "$i")"; then
		fail "fsck.twinfs exits 0 on the corrupt image $i.img"
	fi
done

vm_run check "$VM_TESTS/guest/corrupt.sh" --timeout 180 --disk "$(img zeros)" \
	--disk "$(img version)" --disk "$(img super)" --disk "$(img dir)" -- check ||
	fail "$VM_REASON"
exit 0
