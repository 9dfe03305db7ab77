#!/usr/bin/env bash
# The main job: a two-node twinfs cluster in VMs.  Two guests share one
# disk, each with its own NVRAM (nvdimm); corosync and twinfsd run in both.
# The disk is formatted, twinfsd mounts it on node a mirrored to node b, a
# workload runs on a and reports every acknowledged operation to the host;
# the host kills a (SIGKILL of its QEMU); b's twinfsd fences a, takes over
# from its NVRAM copy and serves; b checks that every acknowledged
# operation is there.  Prints how long the takeover took next to
# corosync's own detection timeouts.  Installs what it needs first.
# (tests/vm/scenarios/90-cluster.sh is the scenario; DEMO_RETURN=1 also
# brings a back and gives the file system back to it.)
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
echo "== building twinfs.ko, the tools and twinfsd"
make -s all >/dev/null
build=${TWINFS_BUILD:-$PWD/build}
echo "== two guests: corosync + twinfsd, mkfs, mount mirrored, workload, kill the owner, takeover"
status=0
CLUSTER_RETURN=${DEMO_RETURN:-0} VM_VERBOSE=1 bash tests/vm/run-all.sh 90-cluster ||
	status=$?
summary=$build/vm/logs/90-cluster/cluster-summary.txt
if [ "$status" -eq 0 ] && [ -s "$summary" ]; then
	echo "== demo finished: every acknowledged operation was there after the takeover"
	sed 's/^/   /' "$summary"
	echo "   (logs in $build/vm/logs/90-cluster)"
else
	echo "== demo FAILED (logs in $build/vm/logs/90-cluster)" >&2
	exit 1
fi
