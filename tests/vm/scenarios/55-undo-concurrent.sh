#!/usr/bin/env bash
# vm-cost: 80
# Undo logs under concurrency: on 2 vCPUs, with "random 20" armed (every
# fault point of every operation fails with probability 2%),
# UNDO_STRESS_PROCS (6) processes for UNDO_STRESS_SECS (60) seconds create,
# append, truncate, rename (also into a second shared directory), link,
# unlink, mkdir/rmdir, chmod and symlink their own names in one shared
# directory (guest/undo_stress.py).  A failed operation must leave each
# process's model of its names intact; at the end, and after umount, fsck
# and remount, every name is exactly as modelled.
set -uo pipefail
. "$(dirname "$0")/../lib.sh"

secs=${UNDO_STRESS_SECS:-60}
need_twinfs
img=$VM_TMPDIR/undo-stress.img
vm_image "$img" 256M
twinfs_mkfs "$img"

vm_run undo-stress "$VM_TESTS/guest/undo.sh" --disk "$img" --smp 2 \
	--timeout $((secs + 360)) --env UNDO_STRESS_SECS="$secs" \
	--env UNDO_STRESS_PROCS="${UNDO_STRESS_PROCS:-6}" \
	--env UNDO_STRESS_PERMILLE="${UNDO_STRESS_PERMILLE:-20}" -- stress ||
	fail "$VM_REASON"
twinfs_fsck "$img" || fail "host fsck.twinfs of undo-stress.img after the run: exit $?"
exit 0
