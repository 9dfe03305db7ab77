#!/usr/bin/env bash
# vm-guests: 2
# twinfsd on corosync (issue 7), two guests at once: a (node 1, 10.0.0.1)
# and b (node 2, 10.0.0.2) on a private network of two UDP-socket netdevs,
# one shared disk image, an nvdimm each.  Each guest runs corosync (knet,
# two_node: 1) and twinfsd (guest/cluster.sh); nothing else mounts or
# starts targets:
#   1. both twinfsd agree on the membership [1 2] and the leader (1);
#   2. a's twinfsd mounts the file system mirrored to b (b's twinfsd starts
#      the mirror target); a runs guest/crash_workload.py (acks in a's
#      /out/acks.w<k>);
#   3. the host SIGKILLs a's QEMU 2-4 s into the workload;
#   4. b's twinfsd (the leader now) runs the fence command
#      (guest/fence-vm.sh: /out/fence-request-a); the host checks a's QEMU
#      is gone and acknowledges (/out/fence-ack-a), as fence_xvm would;
#   5. b's twinfsd takes over (stop target, mount from its copy, first
#      operation, OWNED); b verifies every acknowledged operation, one more
#      operation, stops twinfsd (which unmounts) and fscks.
# Prints the failover time (the kill to b's status file saying "b
# serving", and twinfsd's own numbers from the membership change) next to
# corosync's token timeout in force (runtime.config.totem.token).
#
#   CLUSTER_SEED       seed of the workload and the kill delay
#   CLUSTER_TOKEN      corosync's token timeout in ms (3000)
#   CLUSTER_TRANSPORT  knet (default) or udpu
#   CLUSTER_RETURN=1   then also: a boots again (fresh nvdimm) and rejoins;
#                      b's takeover mount (mirror_after_takeover = yes)
#                      resyncs to a's target; "giveback fs0" on b's control
#                      socket; a takes it back and verifies everything
set -uo pipefail
. "$(dirname "$0")/../lib.sh"
. "$VM_TESTS/cluster-lib.sh"

nw=2
cluster_setup
guest=$VM_TESTS/guest/cluster.sh
envs=("${cl_envs[@]}" --env CLUSTER_RETURN="${CLUSTER_RETURN:-0}")
[ "${CLUSTER_RETURN:-0}" != 1 ] || envs+=(--env CLUSTER_REMIRROR=yes)
vm_start b "$guest" --disk "$img" --nvdimm "$nvb" --udp "$(cluster_net b)" \
	--timeout 400 --env CLUSTER_ROLE=b "${envs[@]}" || fail "b: $VM_REASON"
vm_start a "$guest" --disk "$img" --nvdimm "$nva" --udp "$(cluster_net a)" \
	--timeout 300 --env CLUSTER_ROLE=a "${envs[@]}" || fail "a: $VM_REASON"
oa=$(vm_out a) ob=$(vm_out b)

wait_file "$oa" joined 240 || guest_failed a "$oa"
wait_file "$ob" joined 60 || guest_failed b "$ob"
ja=$(cat "$oa/joined") jb=$(cat "$ob/joined")
vm_log "a: $ja; b: $jb"
[ "${ja% ring=*}" = "members=1 2 leader=1" ] || fail "a's view: $ja"
[ "${jb% ring=*}" = "${ja% ring=*}" ] || fail "a and b disagree: a $ja, b $jb"
token=$(sed -n 's/.*totem.token (u32) = //p' "$ob/token.txt")
consensus=$(sed -n 's/.*totem.consensus (u32) = //p' "$ob/token.txt")

wait_file "$oa" started 120 || guest_failed a "$oa"
delay_ms=$((2000 + RANDOM % 2001))
sleep "$((delay_ms / 1000)).$(printf %03d $((delay_ms % 1000)))"
[ ! -e "$ob/status" ] || guest_failed b "$ob"
vm_kill a || fail "kill a: $VM_REASON"
t_kill=$(date +%s%N)
vm_wait a || fail "a (killed): $VM_REASON"
[ ! -e "$oa/status" ] || fail "a's script ended before the kill: $(cat "$oa/result")"
vm_log "a killed $delay_ms ms into the workload"

# The fence request of b's twinfsd: a's QEMU is gone (vm_kill waited for
# it), so acknowledge it.
fence_ack "$ob" a a 60 || { [ ! -e "$ob/status" ] || guest_failed b "$ob"; fail "b asked for no fence of a within 60 s of the kill"; }
t_req=$(date +%s%N)
vm_log "fence of a requested $(((t_req - t_kill) / 1000000)) ms after the kill; acknowledged"

# Until b's status file says b serves the file system.
wait_fs "$ob" "b serving True" 120 || { [ ! -e "$ob/status" ] || guest_failed b "$ob"
	fail "b's twinfsd did not take over within 120 s of the kill (status: $(fs_status "$ob"))"; }
t_owned=$(date +%s%N)
failover_ms=$(((t_owned - t_kill) / 1000000))

# The acknowledged operations, for b's check.
acks=$(count_acks "$oa" 1 "$nw")
total=$(sum_list "$acks")
[ "$total" -gt 0 ] || fail "a acknowledged no operation before the kill"
printf 'PREV_ITER=1\nPREV_ACKS=%s\n' "$acks" > "$ob/takeover.tmp"
mv "$ob/takeover.tmp" "$ob/takeover"
ret=
if [ "${CLUSTER_RETURN:-0}" = 1 ]; then
	wait_file "$ob" verified 120 || guest_failed b "$ob"
	vm_image "$nva" 64M
	vm_start a2 "$guest" --disk "$img" --nvdimm "$nva" --udp "$(cluster_net a)" \
		--timeout 300 --env CLUSTER_ROLE=a-return "${envs[@]}" || fail "a2: $VM_REASON"
	oa2=$(vm_out a2)
	cp "$ob/manifest.json" "$oa2/manifest-in.json"
	t_back=$(date +%s%N)
	wait_file "$ob" given-back 280 || guest_failed b "$ob"
	wait_file "$oa2" takeback.txt 120 || guest_failed a2 "$oa2"
	vm_wait b || fail "b: $VM_REASON"
	: > "$oa2/b-done"
	vm_wait a2 || fail "a2: $VM_REASON"
	ret="; a back: b mirrored to it ($(cat "$ob/remirror.txt")), giveback in $(sed -n 's/^giveback_ms=//p' "$ob/giveback.txt") ms, a verified the file system ($(cat "$oa2/takeback.txt")) ($((($(date +%s%N) - t_back) / 1000000)) ms from a's boot)"
else
	vm_wait b || fail "b: $VM_REASON"
fi
checked=$(sed -n 's/^checked=//p' "$ob/verify-result")
lost=$(sed -n 's/^lost=//p' "$ob/verify-result")
[ "${lost:-1}" = 0 ] || fail "$lost acknowledged operations lost after the takeover"
[ "${checked:-0}" = "$total" ] || fail "b checked ${checked:-0} operations, a acknowledged $total"
"$TWINFS_BIN/fsck.twinfs" -n "$img" > "$VM_LOGDIR/fsck.log" 2>&1 || fail "fsck.twinfs -n: see fsck.log"

tl=$(grep -h 'taken over from node' "$ob/twinfsd.log" | tail -1 | sed 's/.*twinfsd: //')
line="failover: ${failover_ms} ms from the kill of a to b serving (fence asked at $(((t_req - t_kill) / 1000000)) ms); corosync token ${token:-?} ms, consensus ${consensus:-?} ms; b's twinfsd: $tl; acks $acks (checked $checked, lost $lost)$ret"
vm_log "$line"
echo "$line" > "$VM_LOGDIR/cluster-summary.txt"
exit 0
