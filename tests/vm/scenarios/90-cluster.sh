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

need_twinfs
[ -x "$TWINFS_BIN/twinfsd" ] || fail "no $TWINFS_BIN/twinfsd"
command -v corosync > /dev/null || fail "corosync is not installed (scripts/install-deps.sh)"
seed=${CLUSTER_SEED:-$(( (RANDOM << 15) | RANDOM ))}
guest=$VM_TESTS/guest/cluster.sh
img=$VM_TMPDIR/shared.img
nva=$VM_TMPDIR/nvram-a.img
nvb=$VM_TMPDIR/nvram-b.img
nw=2
RANDOM=$seed

pa=$(vm_udp_ports) || fail "no free UDP ports"
pb=$((pa + 1))
key=$(head -c 32 /dev/urandom | xxd -p -c 64)

vm_image "$img" 512M
twinfs_mkfs "$img"
vm_image "$nva" 64M
vm_image "$nvb" 64M
vm_log "cluster test: seed $seed, UDP ports $pa (a) $pb (b)"

envs=(--env CLUSTER_KEY="$key" --env CLUSTER_SEED="$seed" --env CLUSTER_WORKERS="$nw"
	--env CLUSTER_TOKEN="${CLUSTER_TOKEN:-3000}" --env CLUSTER_TRANSPORT="${CLUSTER_TRANSPORT:-knet}"
	--env CLUSTER_RETURN="${CLUSTER_RETURN:-0}")
[ "${CLUSTER_RETURN:-0}" != 1 ] || envs+=(--env CLUSTER_REMIRROR=yes)
vm_start b "$guest" --disk "$img" --nvdimm "$nvb" --udp "$pb:$pa:52:54:00:90:00:02" \
	--timeout 400 --env CLUSTER_ROLE=b "${envs[@]}" || fail "b: $VM_REASON"
vm_start a "$guest" --disk "$img" --nvdimm "$nva" --udp "$pa:$pb:52:54:00:90:00:01" \
	--timeout 300 --env CLUSTER_ROLE=a "${envs[@]}" || fail "a: $VM_REASON"
oa=$(vm_out a) ob=$(vm_out b)

# wait_file OUT FILE SECS: until the guest wrote FILE (0) or ended (1).
wait_file() {
	local t
	while [ ! -e "$1/start-time" ] && [ ! -e "$1/qemu.rc" ]; do sleep 0.2; done
	for ((t = 0; t < $3 * 10; t++)); do
		[ -e "$1/$2" ] && return 0
		[ -e "$1/status" ] || [ -e "$1/qemu.rc" ] && return 1
		sleep 0.1
	done
	return 1
}
guest_failed() {	# NAME OUT: the guest's own verdict
	vm_wait "$1"
	fail "$1: $VM_REASON ($(grep -h FAIL "$2/script.log" 2>/dev/null | head -1))"
}

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
for ((t = 0; t < 600; t++)); do
	[ -e "$ob/fence-request-a" ] && break
	[ ! -e "$ob/status" ] || guest_failed b "$ob"
	sleep 0.1
done
[ -e "$ob/fence-request-a" ] || fail "b asked for no fence of a within 60 s of the kill"
t_req=$(date +%s%N)
! _vm_qemu_pid a > /dev/null || vm_kill a || fail "fence: cannot kill a: $VM_REASON"
_vm_qemu_pid a > /dev/null && fail "fence: a's QEMU still runs"
echo "a's QEMU is gone (killed by the host)" > "$ob/fence-ack-a"
vm_log "fence of a requested $(((t_req - t_kill) / 1000000)) ms after the kill; acknowledged"

# Until b's status file says b serves the file system.
for ((t = 0; t < 1200; t++)); do
	s=$(python3 -c 'import json,sys
try:
    f = json.load(open(sys.argv[1]))["filesystems"][0]
    print(f["holder"]["name"], f["state"], f["mounted_here"])
except Exception:
    print("")' "$ob/twinfsd-status.json" 2>/dev/null)
	[ "$s" = "b serving True" ] && break
	[ ! -e "$ob/status" ] || guest_failed b "$ob"
	sleep 0.1
done
[ "$s" = "b serving True" ] || fail "b's twinfsd did not take over within 120 s of the kill (status: $s)"
t_owned=$(date +%s%N)
failover_ms=$(((t_owned - t_kill) / 1000000))

# The acknowledged operations, for b's check.
total=0 list=()
for ((w = 0; w < nw; w++)); do
	f=$oa/acks.w$w n=0
	if [ -s "$f" ]; then
		{ if [ -n "$(tail -c1 "$f")" ]; then sed '$d' "$f"; else cat "$f"; fi; } > "$VM_TMPDIR/acks"
		n=$(awk -v w=$w 'BEGIN { n = 0 } $0 == "ACK 1 " w " " n { n++ } END { print n }' "$VM_TMPDIR/acks")
	fi
	list+=("$n")
	total=$((total + n))
done
acks=$(IFS=,; echo "${list[*]}")
[ "$total" -gt 0 ] || fail "a acknowledged no operation before the kill"
printf 'PREV_ITER=1\nPREV_ACKS=%s\n' "$acks" > "$ob/takeover.tmp"
mv "$ob/takeover.tmp" "$ob/takeover"
ret=
if [ "${CLUSTER_RETURN:-0}" = 1 ]; then
	wait_file "$ob" verified 120 || guest_failed b "$ob"
	vm_image "$nva" 64M
	vm_start a2 "$guest" --disk "$img" --nvdimm "$nva" --udp "$pa:$pb:52:54:00:90:00:01" \
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
