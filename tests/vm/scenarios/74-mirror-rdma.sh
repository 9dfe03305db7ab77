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

need_twinfs
command -v rdma > /dev/null || fail "no rdma tool (iproute2) on the host"
soak_kills=10
[ "${TWINFS_SOAK:-0}" != 1 ] || soak_kills=100
kills=${MIRROR_KILLS:-$soak_kills}
[[ "$kills" =~ ^[0-9]+$ ]] || fail "MIRROR_KILLS must be a number"
seed=${MIRROR_SEED:-$(( (RANDOM << 15) | RANDOM ))}
retain=6
guest=$VM_TESTS/guest/mirror.sh
img=$VM_TMPDIR/shared.img
nva=$VM_TMPDIR/nvram-a.img
nvb=$VM_TMPDIR/nvram-b.img
state=$VM_LOGDIR/state
summary=$VM_LOGDIR/mirror-rdma-summary.txt
mkdir -p "$state"

pa=$(vm_udp_ports) || fail "no free UDP ports"
pb=$((pa + 1))
k1=$(head -c 32 /dev/urandom | xxd -p -c 64)
RANDOM=$seed

vm_image "$img" 512M
twinfs_mkfs "$img"
vm_image "$nvb" 64M
vm_log "mirror over rdma: $kills kill rounds, seed $seed, UDP ports $pa (A) $pb (B)"
echo "seed=$seed kills=$kills ports=$pa,$pb" > "$summary"

# ack_count FILE ITER WORKER: complete "ACK ITER WORKER n" lines, n = 0, 1,
# ...; a torn last line does not count (as in 60-crash.sh).
ack_count() {
	[ -s "$1" ] || { echo 0; return 0; }
	{ if [ -n "$(tail -c1 "$1")" ]; then sed '$d' "$1"; else cat "$1"; fi; } |
		awk -v it="$2" -v w="$3" 'BEGIN { n = 0 }
			$0 == "ACK " it " " w " " n { n++; next }
			{ bad = 1; exit }
			END { if (bad) print "bad line " NR ": " $0; else print n }'
}

host_fsck() {
	local log=$VM_LOGDIR/fsck-last.log rc
	"$TWINFS_BIN/fsck.twinfs" -n "$img" > "$log" 2>&1
	rc=$?
	if [ $rc -ne 0 ]; then
		cp "$log" "$VM_LOGDIR/fsck-$1.log"
		grep -v '^ *$' "$log" | tail -15 | sed 's/^/  fsck: /' >&2
		fail "fsck.twinfs -n after $1: exit $rc (see fsck-$1.log)"
	fi
}

# wait_file OUT FILE: until the guest wrote FILE (0) or ended (1); the time
# QEMU waits for a slot does not count against the 240 s.
wait_file() {
	local t
	while [ ! -e "$1/start-time" ] && [ ! -e "$1/qemu.rc" ]; do sleep 0.2; done
	for ((t = 0; t < 2400; t++)); do
		[ -e "$1/$2" ] && [ ! -e "$1/status" ] && return 0
		[ -e "$1/qemu.rc" ] || [ -e "$1/status" ] && return 1
		sleep 0.1
	done
	return 1
}

net_a=(--udp "$pa:$pb:52:54:00:74:00:01")
net_b=(--udp "$pb:$pa:52:54:00:74:00:02")

# start_pair R A B [owner env...]: boots partner B (its nvdimm kept) and
# owner A (iteration R) of a round.
start_pair() {
	local r=$1 a=$2 b=$3 envs
	shift 3
	vm_start "$b" "$guest" --disk "$img" --nvdimm "$nvb" "${net_b[@]}" --timeout 600 \
		--env MIRROR_ROLE=partner --env MIRROR_KEY="$k1" --env MIRROR_SEED="$seed" \
		--env MIRROR_RETAIN=$retain "${b_envs[@]}" || fail "round $r: $VM_REASON"
	envs=(--env MIRROR_ROLE=owner --env MIRROR_KEY="$k1" --env MIRROR_SEED="$seed"
		--env MIRROR_ITER="$r" --env MIRROR_WORKERS="$nw" --env MIRROR_RETAIN="$retain"
		--env MIRROR_OPTS="${MIRROR_OPTS:-}" --env MIRROR_TRANSPORT=rdma)
	[ -z "$manifest" ] || envs+=(--env MIRROR_MANIFEST="$manifest")
	vm_start "$a" "$guest" --disk "$img" --nvdimm "$nva" "${net_a[@]}" --timeout 300 \
		"${envs[@]}" || fail "round $r: $VM_REASON"
	if ! wait_file "$(vm_out "$a")" started; then
		vm_wait "$a"
		fail "round $r: A's workload did not start: $VM_REASON"
	fi
}

# count_acks R OA [live]: sets acks (per worker, comma separated) and
# total; "live": A still runs (its console may be ahead of the files).
count_acks() {
	local r=$1 oa=$2 live=${3:-} w n c list=()
	total=0
	for ((w = 0; w < nw; w++)); do
		n=$(ack_count "$oa/acks.w$w" "$r" "$w")
		[[ "$n" =~ ^[0-9]+$ ]] || fail "round $r: $oa/acks.w$w: $n"
		c=$(grep -c "^ACK $r $w " "$oa/console.log")
		[ -n "$live" ] || [ "$c" -le "$n" ] || fail "round $r: console.log has $c acks of worker $w, acks.w$w only $n"
		list+=("$n")
		total=$((total + n))
	done
	acks=$(IFS=,; echo "${list[*]}")
}

# kill_and_takeover R A B WHAT: SIGKILLs owner A, hands its acknowledged
# operations to partner B, which takes over and verifies; sets line.
kill_and_takeover() {
	local r=$1 a=$2 b=$3 what=$4 oa ob degr c l rr
	oa=$(vm_out "$a") ob=$(vm_out "$b")
	[ ! -e "$ob/status" ] || { vm_wait "$b"; fail "round $r: B ended before the kill: $VM_REASON"; }
	vm_kill "$a" || fail "round $r: $VM_REASON"
	vm_wait "$a" || fail "round $r (A killed): $VM_REASON"
	[ ! -e "$oa/status" ] || fail "round $r: A's script ended before the kill: $(cat "$oa/result")"
	[ -s "$oa/manifest.json" ] || fail "round $r: A wrote no manifest"
	count_acks "$r" "$oa"
	# Did the pair stay mirrored through the workload?
	degr=$(grep -v ' mirrored ' "$oa/mirror-trace" 2>/dev/null | head -1)
	cp "$oa/manifest.json" "$ob/manifest-in.json"
	printf 'PREV_ITER=%s\nPREV_ACKS=%s\n' "$r" "$acks" > "$ob/takeover.tmp"
	mv "$ob/takeover.tmp" "$ob/takeover"
	vm_log "round $r: A killed $what with acks $acks; B takes over"
	vm_wait "$b" || fail "round $r (takeover on B): $VM_REASON"
	c=$(sed -n 's/^checked=//p' "$ob/verify-result")
	l=$(sed -n 's/^lost=//p' "$ob/verify-result")
	rr=$(sed -n 's/^records_replayed=//p' "$ob/sysfs-takeover.txt")
	checked=$((checked + ${c:-0})) lost=$((lost + ${l:-0})) replayed=$((replayed + ${rr:-0}))
	[ "${l:-1}" = 0 ] || fail "round $r: $l acknowledged operations lost (see $ob/script.log)"
	[ "${c:-0}" = "$total" ] || fail "round $r: B checked ${c:-0} operations, A acknowledged $total"
	host_fsck "round $r"
	manifest=$state/manifest-$r.json
	cp "$ob/manifest.json" "$manifest"
	line="round $r: workers $nw, killed $what, acks $acks (checked $c, lost $l), B replayed ${rr:-?} records (A's mount: $(sed -n 's/^records_replayed=//p' "$oa/sysfs-mount.txt")); A: $(grep -E '^mirror=' "$oa/sysfs-mount.txt" | cut -d= -f2-); A's group commit: $(cat "$oa/group-commit" 2>/dev/null); B's target: $(cat "$ob/target-final.txt")${degr:+; NOT mirrored at: $degr}"
}

# sleep_ms N
sleep_ms() { sleep "$(($1 / 1000)).$(printf %03d $(($1 % 1000)))"; }

# --- kill rounds ------------------------------------------------------------
checked=0 lost=0 replayed=0 t_start=$(date +%s) manifest= b_envs=(--env MIRROR_TRANSPORT=rdma)
for ((r = 1; r <= kills; r++)); do
	a=a$r b=b$r nw=$((2 + r % 2))
	[ "${MIRROR_KEEP_A_NVRAM:-0}" = 1 ] && [ -e "$nva" ] || vm_image "$nva" 64M
	start_pair "$r" "$a" "$b"
	delay_ms=$((1000 + RANDOM % 3001))
	sleep_ms $delay_ms
	kill_and_takeover "$r" "$a" "$b" "$delay_ms ms into the workload"
	vm_log "$line"
	echo "$line" >> "$summary"
done
# Over three rounds at least one kill lands after a consistency point.
[ "$kills" -lt 3 ] || [ "$replayed" -gt 0 ] ||
	fail "B replayed no record in $kills takeovers: was its copy used at all?"
[ "$kills" = 0 ] || {
	line="kills: $kills, acknowledged ops checked: $checked, lost: $lost (records replayed on B: $replayed; $(($(date +%s) - t_start)) s)"
	vm_log "$line"
	echo "$line" >> "$summary"
}


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
