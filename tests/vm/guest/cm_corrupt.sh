# shellcheck shell=bash
# Guest half of scenarios/62-cm-corrupt.sh.
#   cm_corrupt.sh workload  mount /dev/vda with nvram=/dev/pmem0 (all zero:
#                           must be accepted as a fresh change memory) and a
#                           CP interval of 10 minutes, run CM_OPS operations
#                           in each of 2 workers (crash_workload.py, pinned
#                           to both CPUs: two lanes), record sysfs, write
#                           /out/ready and wait for the host's kill
#   cm_corrupt.sh refuse    the mount must fail: non-zero exit, EUCLEAN, a
#                           "twinfs (vda): change memory:" line; then power
#                           off without touching the devices
#   cm_corrupt.sh control   the mount must succeed and replay; the workload's
#                           directories must be exactly the state after all
#                           CM_ACKS operations; umount, fsck
. "$TWINFS_GUEST_LIB"

wl=$(dirname "$VM_SCRIPT")/crash_workload.py
load_twinfs
for _ in $(seq 50); do [ -b /dev/pmem0 ] && break; sleep 0.1; done
[ -b /dev/pmem0 ] || die "no /dev/pmem0 (nvdimm)"
mkdir -p /mnt

sysfs() {
	local f v
	: > "$1"
	for f in /sys/fs/twinfs/vda/*; do
		[ -f "$f" ] && read -r v < "$f" && printf '%s=%s\n' "${f##*/}" "$v" >> "$1"
	done
	log "$1: $(grep -E '^(cm_device|cm_size|cm_used|last_seq|cp_seq|cp_count|records_replayed)=' "$1" | tr '\n' ' ')"
}

case ${1:-} in
workload)
	dmesg_mark
	mount -t twinfs -o nvram=/dev/pmem0,cp_interval_ms=600000 /dev/vda /mnt ||
		die "mount with an all-zero nvram (a fresh change memory) failed: $(dmesg_since | grep twinfs | tail -1)"
	sysfs /out/sysfs-mount.txt
	grep -q '^cm_device=.*pmem0' /out/sysfs-mount.txt || die "sysfs cm_device does not name pmem0"
	n=$(sed -n 's/^records_replayed=//p' /out/sysfs-mount.txt)
	[ "${n:-0}" = 0 ] || die "records_replayed=$n from an all-zero nvram"
	python3 -S "$wl" run --seed "$CM_SEED" --iter 1 --workers 2 --ops "$CM_OPS" ||
		die "workload failed"
	sysfs /out/sysfs-after.txt
	dmesg -s 1048576 > /out/dmesg	# the kill leaves none; the harness scans it
	touch /out/ready
	log "workload done, waiting for the kill"
	sleep 1000
	;;
refuse)
	dmesg_mark
	if out=$(mount -t twinfs -o nvram=/dev/pmem0 /dev/vda /mnt 2>&1); then
		umount /mnt
		die "the mount succeeded with a bad change memory"
	fi
	log "mount failed as it should: $out"
	grep -q '/mnt' /proc/mounts && die "/mnt is mounted"
	expect_dmesg 'twinfs \(vda\): change memory:'
	# The exact errno, from mount(2) itself.
	got=$(python3 -c '
import ctypes, errno, os
libc = ctypes.CDLL(None, use_errno=True)
r = libc.mount(b"/dev/vda", b"/mnt", b"twinfs", 0, b"nvram=/dev/pmem0")
print("OK" if r == 0 else errno.errorcode.get(ctypes.get_errno(), "?"))')
	[ "$got" != OK ] || { umount /mnt; die "the second mount attempt succeeded"; }
	[ "$got" = EUCLEAN ] || die "mount(2) failed with $got, expected EUCLEAN"
	log "mount(2): EUCLEAN as expected"
	dmesg_since | grep 'twinfs' | sed 's/^/  dmesg: /'
	;;
control)
	dmesg_mark
	mount -t twinfs -o nvram=/dev/pmem0 /dev/vda /mnt ||
		die "mount with the uncorrupted change memory failed: $(dmesg_since | grep twinfs | tail -1)"
	sysfs /out/sysfs-mount.txt
	n=$(sed -n 's/^records_replayed=//p' /out/sysfs-mount.txt)
	[ "${n:-0}" -gt 0 ] || die "records_replayed=${n:-?}: nothing was replayed"
	python3 -S "$wl" verify --no-prune --seed "$CM_SEED" --prev-iter 1 --prev-acks "$CM_ACKS" ||
		die "the replayed state is wrong"
	run umount /mnt
	fsck_clean /dev/vda
	;;
*)
	die "usage: cm_corrupt.sh workload|refuse|control"
	;;
esac
