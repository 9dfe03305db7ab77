# shellcheck shell=bash
# Guest half of scenarios/60-crash.sh: one boot of the crash-kill loop.
#   CRASH_MODE=run    mount /dev/vda with nvram=/dev/pmem0 (the mount replays
#                     what the previous boot left in the change memory),
#                     verify the previous iteration and the earlier ones,
#                     then start the workload of iteration CRASH_ITER and run
#                     until the host kills QEMU
#   CRASH_MODE=mountkill  mount, then wait: the host kills QEMU during the
#                     mount (the replay) or just after
#   CRASH_MODE=final  mount, verify, umount, fsck, mount again (nothing to
#                     replay after a clean umount), verify again, umount, fsck
# Environment from the host: CRASH_SEED, CRASH_ITER, CRASH_WORKERS,
# CRASH_RETAIN, CRASH_CP_MS (cp_interval_ms, empty: the default),
# CRASH_PREV_ITER / CRASH_PREV_ACKS (acknowledged ops per worker, k0,k1,..)
# / CRASH_MANIFEST (the previous boot's /out/manifest.json).
# CRASH_DEV=1: no nvram= option and no kill: each worker stops after
# CRASH_DEV_OPS operations (odd workers leave their last one unacknowledged),
# then umount and fsck; for developing the model and the verifier on a
# module without the change memory.  CRASH_MOUNT_OPTS: see below.
. "$TWINFS_GUEST_LIB"

wl=$(dirname "$VM_SCRIPT")/crash_workload.py
mode=${CRASH_MODE:-run}
dev=${CRASH_DEV:-0}

load_twinfs
opts=
if [ "$dev" != 1 ]; then
	for _ in $(seq 50); do [ -b /dev/pmem0 ] && break; sleep 0.1; done
	[ -b /dev/pmem0 ] || die "no /dev/pmem0 (nvdimm)"
	opts=nvram=/dev/pmem0${CRASH_CP_MS:+,cp_interval_ms=$CRASH_CP_MS}
fi
# CRASH_MOUNT_OPTS replaces the options ("-": none); for trying the kill
# loop itself on a module without the change memory (it must then FAIL).
if [ -n "${CRASH_MOUNT_OPTS:-}" ]; then
	opts=${CRASH_MOUNT_OPTS#-}
fi
mkdir -p /mnt

# mount_cm: mount with the options above, record the sysfs values.
mount_cm() {
	local t0 t1 f v
	dmesg_mark
	: > /out/mounting	# the host's cue for a kill in the mount
	t0=$(date +%s%N)
	if ! mount -t twinfs ${opts:+-o "$opts"} /dev/vda /mnt; then
		dmesg_since | tail -5 | sed 's/^/  dmesg: /'
		die "mount -t twinfs -o $opts /dev/vda /mnt failed: $(dmesg_since | grep twinfs | tail -1)"
	fi
	t1=$(date +%s%N)
	: > "$1"
	for f in /sys/fs/twinfs/vda/*; do	# builtins only: forks are slow here
		[ -f "$f" ] && read -r v < "$f" && printf '%s=%s\n' "${f##*/}" "$v" >> "$1"
	done
	echo "mount_ms=$(((t1 - t0) / 1000000))" >> "$1"
	log "mounted ($opts) in $(((t1 - t0) / 1000000)) ms:" \
		"$(grep -E '^(records_replayed|last_seq|cp_seq|cp_count|cm_used)=' "$1" | tr '\n' ' ')"
}

args=(--seed "$CRASH_SEED" --retain "${CRASH_RETAIN:-6}")
[ -z "${CRASH_PREV_ITER:-}" ] ||
	args+=(--prev-iter "$CRASH_PREV_ITER" --prev-acks "$CRASH_PREV_ACKS")
[ -z "${CRASH_MANIFEST:-}" ] || args+=(--manifest "$CRASH_MANIFEST")

case $mode in
run)
	mount_cm /out/sysfs-mount.txt
	args+=(--iter "$CRASH_ITER" --workers "$CRASH_WORKERS")
	[ "$dev" != 1 ] || args+=(--ops "${CRASH_DEV_OPS:-300}" --dev-unacked)
	# The kill leaves no dmesg; this one (up to the workload) is scanned.
	args+=(--save-dmesg /out/dmesg)
	python3 -S "$wl" run "${args[@]}" || die "crash workload of iteration $CRASH_ITER failed"
	# Only with CRASH_DEV=1 does the workload end by itself.
	run umount /mnt
	fsck_clean /dev/vda
	;;
mountkill)
	# The host kills QEMU 0-2 s after /out/mounting: in the replay, in the
	# consistency point after it, or after the mount returned.
	mount_cm /out/sysfs-mount.txt
	: > /out/mounted
	log "mounted; waiting for the kill"
	sleep 1000
	;;
final)
	mount_cm /out/sysfs-mount.txt
	python3 -S "$wl" verify --no-prune "${args[@]}" || die "final verification failed"
	run umount /mnt
	fsck_clean /dev/vda
	mkdir -p /out/remount
	mount_cm /out/sysfs-remount.txt
	if [ "$dev" != 1 ]; then
		n=$(sed -n 's/^records_replayed=//p' /out/sysfs-remount.txt)
		[ "${n:-0}" = 0 ] || die "records_replayed=$n on the mount after a clean umount"
	fi
	python3 -S "$wl" verify --no-prune --seed "$CRASH_SEED" --out /out/remount \
		--manifest /out/manifest.json || die "verification after the remount failed"
	run umount /mnt
	fsck_clean /dev/vda
	;;
*)
	die "CRASH_MODE must be run, mountkill or final"
	;;
esac
