#!/usr/bin/env bash
# File operations and their error cases on a fresh twinfs (guest/ops.py):
# create/read/write, sparse and >4 GiB files, truncate, unlink, mkdir/rmdir,
# rename, link, symlink, 10,000-entry readdir, attributes, statfs, fsync,
# errno cases, ENOSPC on a small image, sysfs; then umount, fsck, remount and
# verify everything recorded before the umount.
# OPS_FSTYPE=ext4 runs the same checks on ext4 (validates ops.py itself).
set -uo pipefail
. "$(dirname "$0")/../lib.sh"

fstype=${OPS_FSTYPE:-twinfs}
img=$VM_TMPDIR/ops.img
small=$VM_TMPDIR/small.img
vm_image "$img" 256M
vm_image "$small" 32M
if [ "$fstype" = twinfs ]; then
	need_twinfs
	twinfs_mkfs "$img"
	twinfs_mkfs "$small"
fi

vm_run ops "$VM_TESTS/guest/ops.sh" --disk "$img" --disk "$small" \
	--env OPS_FSTYPE="$fstype" --timeout 420 || fail "$VM_REASON"

if [ "$fstype" = twinfs ]; then
	twinfs_fsck "$img" || fail "host fsck.twinfs of ops.img after the run: exit $?"
	twinfs_fsck "$small" || fail "host fsck.twinfs of small.img after the run: exit $?"
fi
exit 0
