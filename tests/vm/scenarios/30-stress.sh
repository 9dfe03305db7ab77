#!/usr/bin/env bash
# vm-cost: 80
# Concurrency stress on 2 vCPUs: STRESS_PROCS (6) processes for STRESS_SECS
# (60) seconds create, write, rename (within and across 3 shared
# directories), unlink and read (guest/stress.py); then umount, fsck,
# remount, every remaining file intact.  STRESS_FSTYPE=ext4 runs it on ext4.
set -uo pipefail
. "$(dirname "$0")/../lib.sh"

fstype=${STRESS_FSTYPE:-twinfs}
secs=${STRESS_SECS:-60}
procs=${STRESS_PROCS:-6}
img=$VM_TMPDIR/stress.img
vm_image "$img" 512M
if [ "$fstype" = twinfs ]; then
	need_twinfs
	twinfs_mkfs "$img"
fi

vm_run stress "$VM_TESTS/guest/stress.sh" --disk "$img" --smp 2 \
	--timeout $((secs + 300)) --env STRESS_FSTYPE="$fstype" \
	--env STRESS_SECS="$secs" --env STRESS_PROCS="$procs" ||
	fail "$VM_REASON"
if [ "$fstype" = twinfs ]; then
	twinfs_fsck "$img" || fail "host fsck.twinfs after the run: exit $?"
fi
exit 0
