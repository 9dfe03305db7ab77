#!/usr/bin/env bash
# The generic netlink family "twinfs" (kmod/genl.c) and its client,
# twinfsctl: status over genetlink, events (watch), the mirror target
# through genetlink, EPERM for unprivileged callers, EINVAL for malformed
# requests, rmmod with a watcher subscribed (guest/genl.sh has the checks).
# One guest; vdb is a spare device for the mirror target.
set -uo pipefail
. "$(dirname "$0")/../lib.sh"

need_twinfs
[ -x "$TWINFS_BIN/twinfsctl" ] || fail "not built: twinfsctl (run make)"
img=$VM_TMPDIR/disk.img
tgt=$VM_TMPDIR/target.img
nv=$VM_TMPDIR/nvram.img
vm_image "$img" 128M
vm_image "$tgt" 80M
twinfs_mkfs "$img"
truncate -s 64M "$nv"

vm_run genl "$VM_TESTS/guest/genl.sh" --disk "$img" --disk "$tgt" \
	--nvdimm "$nv" --timeout 300 || fail "$VM_REASON"
twinfs_fsck "$img" || fail "host fsck after the guest: exit $?"
exit 0
