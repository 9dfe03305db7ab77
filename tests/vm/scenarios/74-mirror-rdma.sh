#!/usr/bin/env bash
# vm-guests: 2
# Mirroring of the change memory over RDMA (issue 6,
# Documentation/rdma-transport.md): the kill rounds of scenarios/70-mirror-
# tcp.sh with Soft-RoCE (rdma_rxe) up in both guests, so that the owner
# mirrors over an RC queue pair (its /sys/fs/twinfs/vda/mirror must say
# "rdma"), then one more pair of guests for the RDMA-only cases.
#
# Kill rounds (MIRROR_KILLS, default 10), each with a fresh boot of both, as
# in 70 (guest/mirror.sh with MIRROR_TRANSPORT=rdma): B starts the target on
# its /dev/pmem0 (rdma_cm listener on port 7791), A mounts with partner=,
# mirrors over rdma, runs guest/crash_workload.py, the host SIGKILLs A's QEMU
# 1-4 s in; B takes over from its copy: every acknowledged operation there,
# nothing doubled (the workload's verify), fsck clean in the guest and on
# the host.
#
# RDMA round (guest/mirror.sh roles rdma-owner, rdma-partner):
#   - A connects with a wrong token (the test-only module parameter
#     mirror_rdma_bad_token): B rejects it and logs "rejected rdma
#     connection from 10.0.0.1:...: bad token"; A says so and mirrors over
#     tcp;
#   - A mounts with mirror_transport=tcp, then auto (rdma): the latency of
#     a mirrored 4 KiB write + fsync over each (rdma-results.txt);
#   - the host SIGKILLs B under a workload: A must be degraded within
#     mirror_timeout_ms (2000) of seeing the kill, its operations go on
#     (none longer than the timeout + 2 s), umount, fsck clean.
#
#   MIRROR_KILLS=N   kill rounds (10; TWINFS_SOAK=1: 100)
#   MIRROR_SEED      seed of the workloads and kill delays
#   MIRROR_OPTS      extra mount options of the owner in the kill rounds
#   MIRROR_RDMA_ROUND=0  skip the RDMA round
set -uo pipefail
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/../mirror-lib.sh"

need_twinfs
command -v rdma > /dev/null || fail "no rdma tool (iproute2) on the host"
mirror_setup mirror-rdma-summary.txt "mirror over rdma" 74

# --- kill rounds ------------------------------------------------------------
mirror_envs=(--env MIRROR_TRANSPORT=rdma)
mirror_kill_rounds

# --- wrong token, tcp vs rdma latency, partner killed ------------------------
if [ "${MIRROR_RDMA_ROUND:-1}" != 0 ]; then
	vm_image "$nva" 64M
	vm_start pb "$guest" --disk "$img" --nvdimm "$nvb" "${net_b[@]}" --timeout 600 \
		--env MIRROR_ROLE=rdma-partner --env MIRROR_KEY="$k1" || fail "rdma round: $VM_REASON"
	vm_start pa "$guest" --disk "$img" --nvdimm "$nva" "${net_a[@]}" --timeout 400 \
		--env MIRROR_ROLE=rdma-owner --env MIRROR_KEY="$k1" || fail "rdma round: $VM_REASON"
	opa=$(vm_out pa) opb=$(vm_out pb)
	while [ ! -e "$opa/req-kill" ]; do
		if [ -e "$opa/qemu.rc" ]; then
			vm_wait pa
			why=$VM_REASON
			vm_kill pb
			vm_wait pb
			fail "rdma round (A): $why"
		fi
		[ ! -e "$opb/qemu.rc" ] || { vm_wait pb; fail "rdma round: B ended early: $VM_REASON"; }
		sleep 0.1
	done
	vm_kill pb || fail "rdma round: $VM_REASON"
	: > "$opa/done-kill"
	vm_log "rdma round: B killed under A's workload"
	vm_wait pa || fail "rdma round (A): $VM_REASON"
	vm_wait pb || fail "rdma round (B, killed): $VM_REASON"
	host_fsck "the rdma round"
	l=$(grep -E 'rejected rdma connection from 10\.0\.0\.1:[0-9]+: bad token' "$opb/partner-dmesg.txt" | head -1)
	[ -n "$l" ] || fail "rdma round: B did not log the rejected token: $(grep rdma "$opb/partner-dmesg.txt" | tail -3)"
	vm_log "B on the wrong token: ${l#*] }"
	grep -q 'rdma connection of node 0 at 10.0.0.1' "$opb/partner-dmesg.txt" ||
		fail "rdma round: B never accepted A's rdma connection"
	sed 's/^/  A: /' "$opa/rdma.txt" >&2
	cp "$opa/rdma.txt" "$VM_LOGDIR/rdma-results.txt"
	line="rdma round: wrong token rejected by B, A fell back: $(sed -n 's/^hostile_token_line=//p' "$opa/rdma.txt"); 4 KiB write+fsync over tcp $(sed -n 's/^lat_tcp=//p' "$opa/rdma.txt"); over rdma $(sed -n 's/^lat_rdma=//p' "$opa/rdma.txt"); B killed: A degraded $(sed -n 's/^degraded_ms=//p' "$opa/rdma.txt") ms after seeing it, longest op $(sed -n 's/^longest_op_ms=//p' "$opa/rdma.txt") ms"
	vm_log "$line"
	echo "$line" >> "$summary"
fi
[ "$lost" = 0 ] || fail "kills: $kills, acknowledged ops checked: $checked, lost: $lost"
exit 0
