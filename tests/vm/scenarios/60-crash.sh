#!/usr/bin/env bash
# vm-cost: 420
# Crash-kill test of the change memory (issue 5).  One disk image (mkfs'd
# once) and one 64 MiB nvdimm image (/dev/pmem0, all zero at first) live
# through all boots; each boot (guest/crash.sh, guest/crash_workload.py)
# mounts with nvram=/dev/pmem0, which replays what the previous boot left
# in the change memory, verifies the previous iteration's directories
# against the deterministic model (after k or k+1 operations for k
# acknowledged ones) and the older ones against the manifest, then starts a
# new workload in /mnt/i<iter>/w<k> (2 or 3 workers).  The host waits for
# the start, sleeps 0.5-6 s and kills QEMU with SIGKILL; then fsck.twinfs
# -n of the image must be clean.  Every sixth boot is instead killed 0-2 s
# into its mount (in the replay or the consistency point after it); the
# boot after it must replay the same records, exactly once.  A last boot
# verifies the last iteration, umounts, fsck, mounts again (nothing to
# replay) and verifies again.
#
#   boots (= kills): 18; CRASH_KILLS=N: N; TWINFS_SOAK=1: 500
#   CRASH_SEED       base seed of the workloads and of the kill delays
#   CRASH_CP_MS      cp_interval_ms for every boot (default: cycles through
#                    the default 5000, 300 and 1000)
#   CRASH_SMP        vCPUs of every boot (default: 2 in every third, else 1)
#   CRASH_RETAIN     iterations kept on the file system (6); older ones are
#                    removed before a new workload starts
#   CRASH_DEV=1      no nvram= option, no kill: the workers stop after
#                    CRASH_DEV_OPS (random 100..400) operations, the odd
#                    ones leaving their last unacknowledged, and the guest
#                    umounts (checks the model and verifier on a module
#                    without the change memory)
#   CRASH_MOUNT_OPTS mount options instead of nvram=/dev/pmem0,... ("-":
#                    none): the kill loop on a module without the change
#                    memory, which must FAIL (fsck or lost operations)
#   CRASH_FSCK_IGNORE  extended regex of fsck problems to log but not fail on
#                    (to look past a known, reported problem)
#   CRASH_KEEP_LOGS  out dirs of passed boots kept (all up to 50 boots,
#                    else the last 5)
# Acknowledgements: each worker appends "ACK <iter> <worker> <n>" to its
# /out/acks.w<k> after the call returned (9p without cache: on the host once
# write() returns) before its next operation, and prints it to the console.
# The files are what counts; console.log may lag by what tee still buffered.
set -uo pipefail
. "$(dirname "$0")/../lib.sh"

need_twinfs
if [ -n "${CRASH_KILLS:-}" ]; then
	iters=$CRASH_KILLS
elif [ "${TWINFS_SOAK:-0}" = 1 ]; then
	iters=500
else
	iters=18
fi
[[ "$iters" =~ ^[1-9][0-9]*$ ]] || fail "CRASH_KILLS must be a positive number"
# A boot takes 12-25 s here; do not start what run-all.sh's scenario
# timeout would cut off anyway.
if [ -n "${VM_SCENARIO_TIMEOUT:-}" ] && [ $((iters * 14 + 60)) -gt "$VM_SCENARIO_TIMEOUT" ]; then
	fail "$iters kills need about $((iters * 20)) s, more than VM_SCENARIO_TIMEOUT=$VM_SCENARIO_TIMEOUT (raise it)"
fi
dev=${CRASH_DEV:-0}
seed=${CRASH_SEED:-$(( (RANDOM << 15) | RANDOM ))}
retain=${CRASH_RETAIN:-6}
keep=${CRASH_KEEP_LOGS:-$((iters <= 50 ? iters + 1 : 5))}
RANDOM=$seed	# the kill delays follow the seed too
guest=$VM_TESTS/guest/crash.sh
img=$VM_TMPDIR/crash.img
nv=$VM_TMPDIR/nvram.img
state=$VM_LOGDIR/state
summary=$VM_LOGDIR/crash-summary.txt
mkdir -p "$state"
vm_image "$img" 512M
twinfs_mkfs "$img"
vm_image "$nv" 64M
nvopt=(--nvdimm "$nv")
[ "$dev" != 1 ] || nvopt=()
vm_log "crash test: $iters iterations, seed $seed, retain $retain$([ "$dev" = 1 ] && echo ', CRASH_DEV')"
echo "seed=$seed iterations=$iters dev=$dev" > "$summary"

# host_fsck WHEN: fsck.twinfs -n of the image (QEMU is gone) must be clean.
# CRASH_FSCK_IGNORE (an extended regex): problems matching it are logged
# but do not fail, for looking past a known, reported one.
fsck_ignored=0
host_fsck() {
	local log=$VM_LOGDIR/fsck-last.log rest
	"$TWINFS_BIN/fsck.twinfs" -n "$img" > "$log" 2>&1
	local rc=$?
	[ $rc -ne 0 ] || return 0
	cp "$log" "$VM_LOGDIR/fsck-${1// /-}.log"
	if [ -n "${CRASH_FSCK_IGNORE:-}" ] && [ $rc = 4 ]; then
		rest=$(sed '$d' "$log" | grep -v -e ': warning: ' -e ': orphan inode ' -e '^dir ' -e '^inode .* at block' |
			grep -Ev -- "$CRASH_FSCK_IGNORE")
		if [ -z "$rest" ]; then
			fsck_ignored=$((fsck_ignored + 1))
			vm_log "fsck after $1: ignoring (CRASH_FSCK_IGNORE): $(grep -m1 -E -- "$CRASH_FSCK_IGNORE" "$log" | sed "s|^.*$img: ||")"
			return 0
		fi
	fi
	grep -v '^ *$' "$log" | tail -15 | sed 's/^/  fsck: /' >&2
	fail "fsck.twinfs -n after $1: exit $rc: $(tail -1 "$log" | sed 's/.*: //'); first: $(grep -v -m1 -e 'warning:' "$log" | sed "s|^.*$img: ||")"
}

# verified NAME: add the guest's verify-result to the totals.
checked=0 lost=0 replayed=0 kills=0
verified() {
	local out c l
	out=$(vm_out "$1")
	[ -s "$out/verify-result" ] || return 0
	c=$(sed -n 's/^checked=//p' "$out/verify-result")
	l=$(sed -n 's/^lost=//p' "$out/verify-result")
	checked=$((checked + ${c:-0}))
	lost=$((lost + ${l:-0}))
	c=$(sed -n 's/^records_replayed=//p' "$out/sysfs-mount.txt" 2>/dev/null)
	replayed=$((replayed + ${c:-0}))
}

# The images as they were before the latest boot (kept after a FAIL with the
# rest of $VM_TMPDIR: what the failing mount found).
snapshot_images() {
	cp --sparse=always "$img" "$img.before" || fail "cannot copy $img"
	[ "$dev" = 1 ] || cp --sparse=always "$nv" "$nv.before" || fail "cannot copy $nv"
}

# wait_file OUT FILE: until the guest wrote FILE (0) or ended (1).  QEMU
# may first wait for a slot (other guests on the machine): that time does
# not count against the 140 s.
wait_file() {
	local t0
	while [ ! -e "$1/start-time" ] && [ ! -e "$1/qemu.rc" ]; do sleep 0.2; done
	t0=$SECONDS
	while [ $((SECONDS - t0)) -lt 140 ]; do
		if [ -e "$1/$2" ] && [ ! -e "$1/status" ]; then
			return 0
		fi
		if [ -e "$1/qemu.rc" ] || [ -e "$1/status" ]; then
			vm_log "waiting for $2: the guest ended after $((SECONDS - t0)) s"
			return 1
		fi
		sleep 0.1
	done
	vm_log "no $2 after $((SECONDS - t0)) s"
	return 1
}

# Boot b runs workload iteration `it`; every sixth boot (not in CRASH_DEV
# mode) is instead killed 0-2 s into the mount, that is usually in the
# middle of the replay or of the consistency point after it: the next boot
# must replay the same records again, exactly once, and verifies the same
# iteration.
prev_iter='' prev_acks='' manifest='' t_start=$(date +%s) it=0 mountkills=0
for ((b = 1; b <= iters; b++)); do
	name=$(printf 'boot%03d' "$b")
	if [ -n "${CRASH_CP_MS:-}" ]; then
		cp_ms=$CRASH_CP_MS
	else
		case $((b / 3 % 3)) in 0) cp_ms= ;; 1) cp_ms=300 ;; 2) cp_ms=1000 ;; esac
	fi
	# Two vCPUs (concurrent writers on two CPUs) in every third boot:
	# under TCG they make a boot about twice as slow.
	smp=${CRASH_SMP:-$((b % 3 == 0 ? 2 : 1))}
	mode=run
	[ "$dev" = 1 ] || [ -z "$prev_iter" ] || [ $((b % 6)) != 5 ] || mode=mountkill
	[ $mode = mountkill ] || it=$((it + 1))
	nw=$((2 + it % 2))
	envs=(--env CRASH_MODE="$mode" --env CRASH_SEED="$seed" --env CRASH_ITER="$it"
		--env CRASH_WORKERS="$nw" --env CRASH_RETAIN="$retain"
		--env CRASH_CP_MS="$cp_ms" --env CRASH_DEV="$dev"
		--env CRASH_DEV_OPS=$((100 + RANDOM % 301))
		--env CRASH_MOUNT_OPTS="${CRASH_MOUNT_OPTS:-}")
	[ -z "$prev_iter" ] || envs+=(--env CRASH_PREV_ITER="$prev_iter" --env CRASH_PREV_ACKS="$prev_acks")
	[ -z "$manifest" ] || envs+=(--env CRASH_MANIFEST="$manifest")
	snapshot_images
	vm_start "$name" "$guest" --disk "$img" "${nvopt[@]}" --smp "$smp" --timeout 150 \
		"${envs[@]}" || fail "boot $b: $VM_REASON"
	out=$(vm_out "$name")
	delay_ms=$((500 + RANDOM % 5501))
	if [ "$dev" = 1 ]; then
		vm_wait "$name" || fail "boot $b: $VM_REASON"
	elif [ $mode = mountkill ]; then
		delay_ms=$((RANDOM % 2001))
		if ! wait_file "$out" mounting; then
			vm_wait "$name"
			vm_log "images before this boot: $img.before $nv.before"
			fail "boot $b: the guest did not get to the mount: $VM_REASON"
		fi
		sleep "$((delay_ms / 1000)).$(printf %03d $((delay_ms % 1000)))"
		vm_kill "$name" || fail "boot $b: $VM_REASON"
		kills=$((kills + 1)) mountkills=$((mountkills + 1))
		vm_wait "$name" || fail "boot $b (killed in the mount): $VM_REASON"
		if [ -e "$out/status" ]; then
			vm_log "images before this boot: $img.before $nv.before"
			fail "boot $b: the guest script ended before the kill: $(cat "$out/result")"
		fi
		host_fsck "boot $b (killed in the mount)"
		line="boot $b: killed ${delay_ms} ms into the mount ($([ -e "$out/mounted" ] && echo "after it returned" || echo "before it returned")), smp $smp, cp_interval_ms ${cp_ms:-default}; next boot verifies iteration $prev_iter again"
		vm_log "$line"
		echo "$line" >> "$summary"
		continue
	else
		if ! wait_file "$out" started; then
			vm_wait "$name"
			vm_log "images before this boot: $img.before $nv.before"
			fail "boot $b: the workload did not start: $VM_REASON"
		fi
		sleep "$((delay_ms / 1000)).$(printf %03d $((delay_ms % 1000)))"
		vm_kill "$name" || fail "boot $b: $VM_REASON"
		kills=$((kills + 1))
		vm_wait "$name" || fail "boot $b (killed): $VM_REASON"
		[ ! -e "$out/status" ] || fail "boot $b: the guest script ended before the kill: $(cat "$out/result")"
	fi
	verified "$name"
	[ "$lost" = 0 ] || fail "boot $b: $lost operations lost or doubled (see $out/script.log)"
	[ -s "$out/manifest.json" ] || fail "boot $b: the guest wrote no manifest"
	manifest=$state/manifest-$it.json
	cp "$out/manifest.json" "$manifest"
	rm -f "$state/manifest-$((it - 2)).json"
	acks=() line=
	for ((w = 0; w < nw; w++)); do
		n=$(ack_count "$out/acks.w$w" "$it" "$w")
		[[ "$n" =~ ^[0-9]+$ ]] || fail "boot $b: $out/acks.w$w: $n"
		c=$(grep -c "^ACK $it $w " "$out/console.log")
		[ "$c" -le "$n" ] || fail "boot $b: console.log has $c acks of worker $w, acks.w$w only $n"
		acks+=("$n")
	done
	prev_iter=$it
	prev_acks=$(IFS=,; echo "${acks[*]}")
	host_fsck "boot $b"
	line="boot $b: iteration $it, workers $nw, smp $smp, cp_interval_ms ${cp_ms:-default}, $([ "$dev" = 1 ] && echo "no kill (dev)" || echo "killed after ${delay_ms} ms"), acks $prev_acks; mount: $(grep -E '^(records_replayed|cp_count|mount_ms)=' "$out/sysfs-mount.txt" 2>/dev/null | tr '\n' ' ')"
	vm_log "$line"
	echo "$line" >> "$summary"
	# Old out dirs of passed boots (the soak would keep hundreds).
	[ $((b - keep)) -lt 1 ] || rm -rf "$(vm_out "$(printf 'boot%03d' $((b - keep)))")"
done

# The last iteration's state, then a clean umount and a remount.
snapshot_images
vm_run final "$guest" --disk "$img" "${nvopt[@]}" --smp 1 --timeout 200 \
	--env CRASH_MODE=final --env CRASH_SEED="$seed" --env CRASH_RETAIN="$retain" \
	--env CRASH_DEV="$dev" --env CRASH_PREV_ITER="$prev_iter" \
	--env CRASH_MOUNT_OPTS="${CRASH_MOUNT_OPTS:-}" \
	--env CRASH_PREV_ACKS="$prev_acks" --env CRASH_MANIFEST="$manifest" ||
	fail "final verification: $VM_REASON"
verified final
host_fsck "the final boot"
rm -f "$img.before" "$nv.before"
line="kills: $kills, acknowledged ops checked: $checked, lost: $lost"
echo "$line ($mountkills of the kills during a mount; records replayed: $replayed; $(($(date +%s) - t_start)) s)" | tee -a "$summary"
[ "$fsck_ignored" = 0 ] || echo "fsck problems ignored (CRASH_FSCK_IGNORE) after $fsck_ignored boots" | tee -a "$summary"
[ "$lost" = 0 ] || fail "$line"
exit 0
