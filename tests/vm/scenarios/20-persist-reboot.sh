#!/usr/bin/env bash
# Persistence across a reboot: boot 1 builds a tree of files, directories and
# symlinks (guest/tree.py), records its state, unmounts and powers off;
# boot 2 mounts the same image and must find exactly that state.  fsck after
# each.  PERSIST_FSTYPE=ext4 runs it on ext4 (validates the scenario).
set -uo pipefail
. "$(dirname "$0")/../lib.sh"

fstype=${PERSIST_FSTYPE:-twinfs}
img=$VM_TMPDIR/persist.img
vm_image "$img" 256M
if [ "$fstype" = twinfs ]; then
	need_twinfs
	twinfs_mkfs "$img"
fi
guest=$VM_TESTS/guest/persist.sh

vm_run boot1 "$guest" --disk "$img" --timeout 240 \
	--env PERSIST_FSTYPE="$fstype" -- write ||
	fail "$VM_REASON"
[ -s "$(vm_out boot1)/manifest.json" ] || fail "boot1 recorded no manifest"
if [ "$fstype" = twinfs ]; then
	twinfs_fsck "$img" || fail "host fsck.twinfs between the boots: exit $?"
fi
vm_run boot2 "$guest" --disk "$img" --timeout 240 --env PERSIST_FSTYPE="$fstype" \
	--env MANIFEST="$(vm_out boot1)/manifest.json" -- verify ||
	fail "$VM_REASON"
if [ "$fstype" = twinfs ]; then
	twinfs_fsck "$img" || fail "host fsck.twinfs after boot 2: exit $?"
fi
exit 0
