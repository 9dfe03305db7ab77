#!/bin/sh
# The VM harness's fence agent, twinfsd's fence_command in the guests of
# the cluster scenarios (guest/cluster-lib.sh):  fence-vm.sh NODE
#
# Like fence_xvm for real VMs, it asks the host, which owns the QEMUs:
# writes its PID to /out/fence-request-NODE and waits for the host's
# /out/fence-ack-NODE-PID (written, and the request removed, once the named
# QEMU is gone).  Exit 0: fenced; 1: no answer within FENCE_TIMEOUT seconds
# (30).  POSIX sh with builtins only (dash starts much faster than bash
# under TCG, and every exec costs there): the first 2000 looks at /out
# (each a 9p round trip to the host) without sleeping, then every 20 ms.
set -u
node=${1:?usage: fence-vm.sh NODE}
ack=/out/fence-ack-$node-$$
echo $$ > "/out/fence-request-$node"
spin=2000
n=$((${FENCE_TIMEOUT:-30} * 50))
while [ "$n" -gt 0 ]; do
	if [ -e "$ack" ]; then
		read -r why < "$ack"
		echo "fence-vm: node $node fenced by the host: $why" >&2
		exit 0
	fi
	if [ "$spin" -gt 0 ]; then
		spin=$((spin - 1))
		continue
	fi
	sleep 0.02
	n=$((n - 1))
done
echo "fence-vm: no answer from the host about node $node" >&2
exit 1
