#!/usr/bin/env bash
# The change memory on a file-backed NVDIMM (/dev/pmem0): operations are
# recorded, sync makes a consistency point, a clean umount replays nothing;
# a kill -9 of the guest without any sync loses nothing: the next mount
# replays the change memory (guest/nvram.sh has the checks).
set -uo pipefail
. "$(dirname "$0")/../lib.sh"

need_twinfs
img=$VM_TMPDIR/disk.img
nv=$VM_TMPDIR/nvram.img
vm_image "$img" 256M
twinfs_mkfs "$img"
truncate -s 64M "$nv"
guest=$VM_TESTS/guest/nvram.sh

vm_run basic "$guest" --disk "$img" --nvdimm "$nv" --timeout 240 -- basic ||
	fail "$VM_REASON"
twinfs_fsck "$img" || fail "host fsck after the clean umount: exit $?"

# No consistency point while the workload runs: everything is in NVRAM.
vm_start crash "$guest" --disk "$img" --nvdimm "$nv" --timeout 300 \
	--env CP_MS=3600000 -- crash || fail "$VM_REASON"
for _ in $(seq 1 240); do
	grep -q WORKLOAD-DONE "$(vm_out crash)/console.log" 2>/dev/null && break
	sleep 1
done
grep -q WORKLOAD-DONE "$(vm_out crash)/console.log" || fail "crash workload did not finish"
vm_kill crash
vm_run after "$guest" --disk "$img" --nvdimm "$nv" --timeout 240 \
	--env BIGSUM="$(cat "$(vm_out crash)/big.sum")" -- after ||
	fail "$VM_REASON"
twinfs_fsck "$img" || fail "host fsck after the replay: exit $?"
exit 0
