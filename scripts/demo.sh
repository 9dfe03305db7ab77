#!/usr/bin/env bash
# The main job, for now: one guest formats a twinfs disk, mounts it, runs a
# visible workload, shows the file system's state, unmounts, checks it and
# mounts it again to show the data survived.  (The two-node failover demo
# arrives with twinfsd.)  Installs what it needs first.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
make -s all >/dev/null
. tests/vm/lib.sh
VM_LOGDIR=$TWINFS_BUILD/vm/logs/demo
VM_TMPDIR=$TWINFS_BUILD/vm/tmp/demo
mkdir -p "$VM_LOGDIR" "$VM_TMPDIR"
img=$VM_TMPDIR/demo.img
rm -f "$img"
vm_image "$img" 512M
echo "== mkfs.twinfs on a 512 MiB virtual disk"
"$TWINFS_BIN/mkfs.twinfs" -f -L demo "$img"
echo "== booting a guest (Debian kernel under QEMU) with twinfs.ko"
vm_start demo "$VM_TESTS/guest/demo.sh" --disk "$img" --timeout 600 ||
	{ echo "demo: $VM_REASON" >&2; exit 1; }
# Show the guest's workload as it runs.
tail -n +1 -F "$(vm_out demo)/script.log" 2>/dev/null &
tailer=$!
status=0
vm_wait demo || status=$?
sleep 1
kill "$tailer" 2>/dev/null || true
if [ "$status" -eq 0 ]; then
	echo "== demo finished: every check passed (logs in $VM_LOGDIR)"
	rm -rf "$VM_TMPDIR"
else
	echo "== demo FAILED: $VM_REASON (logs in $VM_LOGDIR)" >&2
	exit 1
fi
