#!/usr/bin/env bash
# vm-guests: 2
# vm-timeout: 3000
# twinfsd on corosync, failure after failure (issue 7): two guests (node a,
# node b; guest/cluster-node.sh, the setup of 90-cluster) with twinfsd's
# defaults (mirror_after_takeover = yes), the owner killed CLUSTER_KILLS times (20; 
# TWINFS_SOAK=1: 100) by role swap: the holder H of fs0 runs the workload
# (acks to the host through /out), the host kills H's QEMU once H's mount
# is mirrored to the partner P, acknowledges P's fence request, P's
# twinfsd takes over from its NVRAM copy; the host boots H again (fresh
# nvdimm): it rejoins, its twinfsd starts the mirror target, P's takeover
# mount (partner= H) resyncs to it; P verifies every acknowledged operation
# of H's iteration and every earlier one, then runs the next iteration;
# the roles swap.  Between kill rounds (CLUSTER_PHASES, "phase@round"):
#   restart   SIGKILL of twinfsd on the holder mid-workload and a restart:
#             no fence (daemon_grace_ms), the mount stays, acks go on
#   partner   the partner's QEMU killed mid-workload: the holder fences it,
#             goes degraded and keeps acknowledging, no takeover; the
#             partner boots again and is resynced
#   giveback  (holder b) "giveback fs0" on b's control socket: a, back and
#             resynced, takes it back and verifies every operation
#   cut       the cluster link down in both guests mid-workload: the holder
#             fences the partner at once, the partner's fence of the holder
#             waits fence_delay_ms, so the holder wins: it never stops
#             serving, the partner never mounts; the link comes back, the
#             partner boots again
# At every poll at most one node has fs0 mounted (twinfsd's status files).
# At the end the holder stops (SIGTERM: umount, RELEASED), the other node
# takes it back without a fence, verifies everything, stops; fsck.
# Prints per round the failover time next to corosync's token timeout, and
# "kills: N, acknowledged ops checked: M, lost: 0" (cluster-rounds.txt).
#
#   CLUSTER_KILLS, CLUSTER_PHASES, CLUSTER_SEED, CLUSTER_TOKEN (ms, 2000),
#   CLUSTER_FENCE_DELAY (twinfsd's fence_delay_ms, its default if unset),
#   CLUSTER_GRACE (daemon_grace_ms), CLUSTER_HEARTBEAT (disk_heartbeat_ms,
#   its default if unset; 0: no disk heartbeat, every takeover waits
#   fence_delay_ms), CLUSTER_NVRAM (each node's nvdimm, 16M)
set -uo pipefail
. "$(dirname "$0")/../lib.sh"
. "$VM_TESTS/cluster-lib.sh"

nw=2
CLUSTER_TOKEN=${CLUSTER_TOKEN:-2000}
cluster_setup
kills=${CLUSTER_KILLS:-20}
# A returning node's nvdimm is fresh: the holder's mount copies all of it
# (64 MiB take about 18 s under TCG, 16 MiB 4-5 s).
nvsize=${CLUSTER_NVRAM:-16M}
[ "${TWINFS_SOAK:-0}" != 1 ] || kills=${CLUSTER_KILLS:-100}
phases=${CLUSTER_PHASES-restart@2 partner@3 giveback@4 cut@5}
guest=$VM_TESTS/guest/cluster-node.sh
sumf=$VM_LOGDIR/cluster-rounds.txt
: > "$sumf"
[ -z "${CLUSTER_FENCE_DELAY:-}" ] || cl_envs+=(--env CLUSTER_FENCE_DELAY="$CLUSTER_FENCE_DELAY")
[ -z "${CLUSTER_GRACE:-}" ] || cl_envs+=(--env CLUSTER_GRACE="$CLUSTER_GRACE")
[ -z "${CLUSTER_HEARTBEAT:-}" ] || cl_envs+=(--env CLUSTER_HEARTBEAT="$CLUSTER_HEARTBEAT")

declare -A boots=() gname=() gout=() ncmd=()

# boot NODE: a new guest for node a or b (a1, a2, ...), fresh nvdimm.
boot() {
	local n=$1 g
	boots[$n]=$((${boots[$n]:-0} + 1))
	g=$n${boots[$n]}
	vm_image "$VM_TMPDIR/nvram-$n.img" "$nvsize"
	vm_start "$g" "$guest" --disk "$img" --nvdimm "$VM_TMPDIR/nvram-$n.img" \
		--udp "$(cluster_net "$n")" --timeout 1200 --env CLUSTER_NODE="$n" \
		"${cl_envs[@]}" || fail "$g: $VM_REASON"
	gname[$n]=$g gout[$n]=$(vm_out "$g") ncmd[$n]=0
}

# joined NODE: wait until its corosync and twinfsd are in the cluster.
joined() {
	wait_file "${gout[$1]}" joined 240 || guest_failed "${gname[$1]}" "${gout[$1]}"
}

# cmd NODE WORDS...: the next command to the node's script (no wait).
cmd() {
	local n=$1 o
	shift
	o=${gout[$n]}
	ncmd[$n]=$((ncmd[$n] + 1))
	echo "$*" > "$o/cmd.tmp" && mv "$o/cmd.tmp" "$o/cmd-${ncmd[$n]}"
}

# done_wait NODE SECS: the reply to its last command.
done_wait() {
	local o=${gout[$1]}
	wait_file "$o" "done-${ncmd[$1]}" "$2" ||
		{ [ -e "$o/status" ] && guest_failed "${gname[$1]}" "$o"
		  fail "${gname[$1]}: no answer to '$(cat "$o/cmd-${ncmd[$1]}")' within $2 s"; }
	cat "$o/done-${ncmd[$1]}"
}

# one_mount: fail if both running guests have fs0 mounted.
one_mount() {
	local sa sb
	[ -n "${gout[a]:-}" ] && [ -n "${gout[b]:-}" ] || return 0
	sa=$(fs_status "${gout[a]}") sb=$(fs_status "${gout[b]}")
	[[ "$sa" == *" True "* && "$sb" == *" True "* ]] &&
		fail "both nodes have fs0 mounted: a: $sa; b: $sb"
	return 0
}

# mirrored NODE: wait until its mount is mirrored (to the other node).
mirrored() {
	local t s
	for ((t = 0; t < 1800; t++)); do
		s=$(fs_status "${gout[$1]}")
		[[ "$s " == *" mirrored "* ]] && return 0
		[ -e "${gout[$1]}/status" ] && guest_failed "${gname[$1]}" "${gout[$1]}"
		one_mount
		sleep 0.1
	done
	fail "${gname[$1]}'s mount not mirrored after 180 s: $s"
}

# serve NODE ITER PREV_ITER PREV_ACKS: the node verifies PREV_ITER (and the
# earlier iterations: the manifest of the last verification) and runs ITER.
manifest=
serve() {
	local n=$1 r chk lost
	[ -z "$manifest" ] || cp "$manifest" "${gout[$n]}/manifest-in.json"
	cmd "$n" serve "$2" "$3" "$4"
	r=$(done_wait "$n" 300)
	chk=$(sed -n 's/^checked=//p' "${gout[$n]}/verify-result")
	lost=$(sed -n 's/^lost=//p' "${gout[$n]}/verify-result")
	[ "${lost:-1}" = 0 ] || fail "${gname[$n]}: $lost acknowledged operations lost"
	[ "${chk:-0}" = "$(sum_list "$4")" ] || fail "${gname[$n]} checked ${chk:-0} operations, $4 were acknowledged"
	manifest=${gout[$n]}/manifest.json
	checked_total=$((checked_total + chk))
	vm_log "${gname[$n]} serves iteration $2 (iteration $3: $4 acknowledged, $r)"
}

# fences NODE: how many fences its twinfsd started.
fences() { grep -c 'fencing node' "${gout[$1]}/twinfsd.log"; }

# sleep_ms MS
sleep_ms() { sleep "$(($1 / 1000)).$(printf %03d $(($1 % 1000)))"; }

# acks_grow NODE ITER SECS: the holder's workload acknowledges more
# operations within SECS.
acks_grow() {
	local o=${gout[$1]} a0 t
	a0=$(sum_list "$(count_acks "$o" "$2" "$nw")")
	for ((t = 0; t < $3 * 10; t++)); do
		[ "$(sum_list "$(count_acks "$o" "$2" "$nw")")" -gt "$a0" ] && return 0
		sleep 0.1
	done
	fail "${gname[$1]}'s workload acknowledged nothing for $3 s (at $a0)"
}

token=
checked_total=0
nkills=0
iter=1
boot a
boot b
joined a
joined b
token=$(sed -n 's/.*totem.token (u32) = //p' "${gout[b]}/token.txt")
consensus=$(sed -n 's/.*totem.consensus (u32) = //p' "${gout[b]}/token.txt")
vm_log "a: $(cat "${gout[a]}/joined"); b: $(cat "${gout[b]}/joined"); token $token ms, consensus $consensus ms"
H=a P=b
serve a 1 0 ""

phase() {
	local p=$1 o t0 s t
	case $p in
	restart)
		mirrored "$H"
		o=${gout[$P]}
		nf=$(fences "$P")
		t0=$(date +%s%N)
		cmd "$H" restart-twinfsd 1
		s=$(done_wait "$H" 120)
		acks_grow "$H" "$iter" 20
		sleep 2
		[ "$(fences "$P")" = "$nf" ] || fail "$P fenced $H after its twinfsd restarted"
		[[ "$(fs_status "$o")" == "$H serving False"* ]] || fail "$P: $(fs_status "$o")"
		echo "restart: twinfsd on $H SIGKILLed and restarted mid-workload: no fence, serving again after $(ms_since "$t0") ms, acks go on; $s" | tee -a "$sumf" >&2
		;;
	partner)
		mirrored "$H"
		sleep_ms $((500 + RANDOM % 1500))
		vm_kill "${gname[$P]}" || fail "kill ${gname[$P]}: $VM_REASON"
		t0=$(date +%s%N)
		vm_wait "${gname[$P]}" || fail "${gname[$P]} (killed): $VM_REASON"
		fence_ack "${gout[$H]}" "$P" "${gname[$P]}" 60 || fail "$H asked for no fence of its partner $P"
		for ((t = 0; t < 600; t++)); do
			s=$(fs_status "${gout[$H]}")
			[[ "$s " == *" degraded "* || "$s " == *" disconnected "* ]] && break
			sleep 0.1
		done
		[[ "$s " == "$H serving True "*" degraded "* || "$s " == "$H serving True "*" disconnected "* ]] ||
			fail "$H after its partner's kill: $s"
		degraded_ms=$(ms_since "$t0")
		# Once the fence is done, twinfsd disconnects the link (genetlink
		# DISCONNECT): no more connection attempts to a dead node.
		for ((t = 0; t < 300; t++)); do
			s=$(fs_status "${gout[$H]}")
			[[ "$s " == *" disconnected "* ]] && break
			sleep 0.1
		done
		[[ "$s " == "$H serving True "*" disconnected "* ]] || fail "$H did not disconnect from its fenced partner: $s"
		acks_grow "$H" "$iter" 20
		echo "partner: $P killed mid-workload, $H fenced it, degraded after $degraded_ms ms, disconnected after $(ms_since "$t0") ms, kept serving and acknowledging ($s)" | tee -a "$sumf" >&2
		boot "$P"
		;;
	giveback)
		[ "$H" = b ] || fail "the giveback phase needs b as the holder (it is $H)"
		mirrored b
		cmd b stop
		done_wait b 60 > /dev/null
		acks=$(count_acks "${gout[b]}" "$iter" "$nw")
		t0=$(date +%s%N)
		cmd b giveback
		s=$(done_wait b 180)
		wait_fs "${gout[a]}" "a serving True" 60 || fail "a did not take fs0 back: $(fs_status "${gout[a]}")"
		echo "giveback: fs0 back on a $(ms_since "$t0") ms after 'giveback fs0' on b ($s)" | tee -a "$sumf" >&2
		H=a P=b
		serve a $((iter + 1)) "$iter" "$acks"
		iter=$((iter + 1))
		;;
	cut)
		mirrored "$H"
		sleep_ms $((500 + RANDOM % 1500))
		cmd "$H" link down
		cmd "$P" link down
		done_wait "$H" 30 > /dev/null
		done_wait "$P" 30 > /dev/null
		t0=$(date +%s%N)
		vm_log "cluster link down in both guests"
		# The holder fences the partner first (no delay); the host is the
		# fence device: it kills the partner, whose own fence of the
		# holder (delayed) must not have been asked for yet.
		for ((t = 0; t < 1200; t++)); do
			[ -e "${gout[$H]}/fence-request-$P" ] && break
			[ -e "${gout[$P]}/fence-request-$H" ] &&
				fail "cut: $P asked to fence the holder $H before $H asked to fence $P"
			one_mount
			sleep 0.05
		done
		[ -e "${gout[$H]}/fence-request-$P" ] || fail "cut: $H asked for no fence of $P within 60 s"
		s=$(fs_status "${gout[$P]}")
		[[ "$s" != *" True "* ]] || fail "cut: $P has fs0 mounted before it was fenced: $s"
		fence_ack "${gout[$H]}" "$P" "${gname[$P]}" 5 || fail "cut: fence request gone"
		vm_wait "${gname[$P]}" || fail "${gname[$P]} (fenced): $VM_REASON"
		grep -q 'taking over' "${gout[$P]}/twinfsd.log" && fail "cut: $P's twinfsd started a takeover"
		cmd "$H" link up
		done_wait "$H" 30 > /dev/null
		acks_grow "$H" "$iter" 20
		s=$(fs_status "${gout[$H]}")
		[[ "$s" == "$H serving True"* ]] || fail "cut: $H after the cut: $s"
		echo "cut: link down both ways; $H fenced $P $(ms_since "$t0") ms later ($P's own fence of $H still delayed), $H kept serving ($s); $P never mounted" | tee -a "$sumf" >&2
		boot "$P"
		;;
	*) fail "unknown phase $p" ;;
	esac
}

for ((r = 1; r <= kills; r++)); do
	for p in $phases; do
		[ "${p#*@}" = "$r" ] && phase "${p%@*}"
	done
	mirrored "$H"
	delay_ms=$((1000 + RANDOM % 2001))
	sleep_ms "$delay_ms"
	one_mount
	vm_kill "${gname[$H]}" || fail "kill ${gname[$H]}: $VM_REASON"
	t_kill=$(date +%s%N)
	vm_wait "${gname[$H]}" || fail "${gname[$H]} (killed): $VM_REASON"
	acks=$(count_acks "${gout[$H]}" "$iter" "$nw")
	[ "$(sum_list "$acks")" -gt 0 ] || fail "${gname[$H]} acknowledged nothing in iteration $iter"
	fence_ack "${gout[$P]}" "$H" "${gname[$H]}" 60 ||
		{ [ -e "${gout[$P]}/status" ] && guest_failed "${gname[$P]}" "${gout[$P]}"
		  fail "${gname[$P]} asked for no fence of $H within 60 s of the kill"; }
	req_ms=$(ms_since "$t_kill")
	killed=${gname[$H]}
	wait_fs "${gout[$P]}" "$P serving True" 120 ||
		{ [ -e "${gout[$P]}/status" ] && guest_failed "${gname[$P]}" "${gout[$P]}"
		  fail "${gname[$P]} did not take over within 120 s (status: $(fs_status "${gout[$P]}"))"; }
	failover_ms=$(ms_since "$t_kill")
	# The killed node is fenced: it boots again (fresh nvdimm) once its
	# partner serves.  Real nodes do not share CPUs; here both guests
	# share the host's two cores, and a boot during the takeover would
	# slow the survivor's replay down and be counted as failover.
	boot "$H"
	nkills=$((nkills + 1))
	old=$H H=$P P=$old
	tl=$(grep -h 'taken over from node' "${gout[$H]}/twinfsd.log" | tail -1 | sed 's/.*fs0: taken over from node [0-9]*: //; s/; corosync token.*//')
	serve "$H" $((iter + 1)) "$iter" "$acks"
	echo "round $r: $killed killed ${delay_ms} ms into the workload (acks $acks); ${gname[$H]} serving ${failover_ms} ms after the kill (fence asked at ${req_ms} ms); corosync token ${token} ms, consensus ${consensus} ms; twinfsd: $tl" |
		tee -a "$sumf" >&2
	iter=$((iter + 1))
done

# The end: the holder stops cleanly (umount, RELEASED), the other node takes
# fs0 back without a fence and verifies everything.
mirrored "$H"
nf=$(fences "$P")
cmd "$H" stop
done_wait "$H" 60 > /dev/null
acks=$(count_acks "${gout[$H]}" "$iter" "$nw")
cmd "$H" quit
done_wait "$H" 120 > /dev/null
vm_wait "${gname[$H]}" || fail "${gname[$H]}: $VM_REASON"
gout[$H]=
wait_fs "${gout[$P]}" "$P serving True" 60 || fail "$P did not take fs0 back after $H stopped: $(fs_status "${gout[$P]}")"
[ "$(fences "$P")" = "$nf" ] || fail "$P fenced $H after a clean stop"
serve "$P" $((iter + 1)) "$iter" "$acks"
cmd "$P" stop
done_wait "$P" 60 > /dev/null
cmd "$P" quit fsck
done_wait "$P" 180 > /dev/null
vm_wait "${gname[$P]}" || fail "${gname[$P]}: $VM_REASON"
"$TWINFS_BIN/fsck.twinfs" -n "$img" > "$VM_LOGDIR/fsck.log" 2>&1 || fail "fsck.twinfs -n: see fsck.log"
line="kills: $nkills, acknowledged ops checked: $checked_total, lost: 0"
echo "$line" | tee -a "$sumf" >&2
exit 0
