#!/usr/bin/env bash
# Proves the harness itself with ext4 instead of twinfs: disks, nvdimm, the
# out share, guest-lib.sh's checks, persistence across boots, and a guest
# killed with vm_kill.  About 30 s.
set -uo pipefail
. "$(dirname "$0")/../lib.sh"

img=$VM_TMPDIR/ext4.img
nv=$VM_TMPDIR/nv.img
vm_image "$img" 64M
vm_image "$nv" 16M
guest=$VM_TESTS/guest/selftest.sh

vm_run boot1 "$guest" --disk "$img" --nvdimm "$nv" --smp 2 --timeout 120 \
	--env SELFTEST_WORD=twinfs -- write ||
	fail "$VM_REASON"
# What the guest wrote to /dev/pmem0 is in the backing file.
grep -qa 'nvdimm-selftest' "$nv" || fail "nvdimm write did not reach $nv"
[ "$(cat "$(vm_out boot1)/word")" = twinfs ] || fail "--env did not reach the guest"

# The second boot sees the first one's data; it is killed while running.
vm_start boot2 "$guest" --disk "$img" --timeout 120 \
	--env SUMS="$(vm_out boot1)/sums" -- verify-then-wait ||
	fail "vm_start boot2"
out2=$(vm_out boot2)
for ((i = 0; i < 600; i++)); do
	[ -e "$out2/verified" ] && break
	[ -e "$out2/status" ] && break
	sleep 0.1
done
[ -e "$out2/verified" ] || { vm_wait boot2; fail "boot2 did not verify: $VM_REASON"; }
vm_kill boot2 || fail "vm_kill boot2"
vm_wait boot2 || fail "$VM_REASON"
[ ! -e "$out2/status" ] || fail "boot2 finished although killed"
exit 0
