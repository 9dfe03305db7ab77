# shellcheck shell=bash
# Host-side helpers of the mirror scenarios (70-mirror-tcp, 74-mirror-rdma):
# two guests at once, owner A (10.0.0.1) and partner B (10.0.0.2), on a
# private network of two UDP-socket netdevs, the same shared disk image and
# each its own 64 MiB nvdimm image; guest/mirror.sh plays both roles.
# Sourced after lib.sh:
#
#   . "$(dirname "$0")/../lib.sh"
#   . "$(dirname "$0")/../mirror-lib.sh"
#   need_twinfs
#   mirror_setup SUMMARY WHAT MAC   # MIRROR_KILLS, MIRROR_SEED; images, ports
#   mirror_kill_rounds              # the kill rounds and their summary line
#
# mirror_setup sets kills, seed, retain, guest, img, nva, nvb, state,
# summary ($VM_LOGDIR/SUMMARY), pa, pb, k1, net_a, net_b (MAC: the 5th byte
# of the guests' MAC addresses, 52:54:00:MAC:00:0x) and seeds RANDOM.
# mirror_envs (set it before the rounds): --env options both guests of a
# kill round get.

mirror_envs=()

# mirror_setup SUMMARY WHAT MAC
mirror_setup() {
	local soak_kills=10
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
	summary=$VM_LOGDIR/$1
	mkdir -p "$state"

	pa=$(vm_udp_ports) || fail "no free UDP ports"
	pb=$((pa + 1))
	k1=$(head -c 32 /dev/urandom | xxd -p -c 64)
	RANDOM=$seed

	vm_image "$img" 512M
	twinfs_mkfs "$img"
	vm_image "$nvb" 64M
	vm_log "$2: $kills kill rounds, seed $seed, UDP ports $pa (A) $pb (B)"
	echo "seed=$seed kills=$kills ports=$pa,$pb" > "$summary"
	net_a=(--udp "$pa:$pb:52:54:00:$3:00:01")
	net_b=(--udp "$pb:$pa:52:54:00:$3:00:02")
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

# start_pair R A B: boots partner B (its nvdimm kept; b_envs: more of its
# --env) and owner A (iteration R) of a round.
start_pair() {
	local r=$1 a=$2 b=$3 envs
	vm_start "$b" "$guest" --disk "$img" --nvdimm "$nvb" "${net_b[@]}" --timeout 600 \
		--env MIRROR_ROLE=partner --env MIRROR_KEY="$k1" --env MIRROR_SEED="$seed" \
		--env MIRROR_RETAIN=$retain "${b_envs[@]}" || fail "round $r: $VM_REASON"
	envs=(--env MIRROR_ROLE=owner --env MIRROR_KEY="$k1" --env MIRROR_SEED="$seed"
		--env MIRROR_ITER="$r" --env MIRROR_WORKERS="$nw" --env MIRROR_RETAIN="$retain"
		--env MIRROR_OPTS="${MIRROR_OPTS:-}" "${mirror_envs[@]}")
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

# mirror_kill_rounds: MIRROR_KILLS rounds, each with a fresh boot of both:
# A killed 1-4 s into its workload, B takes over from its copy; a line per
# round and one of the totals in the summary.
mirror_kill_rounds() {
	local r a b delay_ms
	checked=0 lost=0 replayed=0 t_start=$(date +%s) manifest= b_envs=("${mirror_envs[@]}")
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
}
