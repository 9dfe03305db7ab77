#!/usr/bin/env bash
# vm-cost: 360
# Undo logs: on a mount with -o fault_inject, every modifying operation
# (create, mknod, mkdir, symlink, link, unlink, rmdir, rename in its forms,
# chmod/chown/utimes, truncate, write) fails once at every fault step it
# reaches (guest/undo.py), and the tree must be exactly as before: EIO,
# attributes (ctime included), contents, listings, lookups.  Splits and
# table growth of a 2000-entry directory are reached by adding names until
# the fault fires.  Then drop_caches, umount, fsck, remount: same tree.
# UNDO_ONLY=SUBSTRING runs only the variants whose name contains it (for
# debugging; the counters check then may fail).
set -uo pipefail
. "$(dirname "$0")/../lib.sh"

need_twinfs
img=$VM_TMPDIR/undo.img
vm_image "$img" 256M
twinfs_mkfs "$img"

vm_run undo "$VM_TESTS/guest/undo.sh" --disk "$img" \
	--timeout "${UNDO_TIMEOUT:-1500}" ${UNDO_ONLY:+--env UNDO_ONLY="$UNDO_ONLY"} ||
	fail "$VM_REASON"
twinfs_fsck "$img" || fail "host fsck.twinfs of undo.img after the run: exit $?"
exit 0
