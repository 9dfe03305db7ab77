# Guest half of scenarios/30-stress.sh: stress.py on the twinfs on /dev/vda
# for $STRESS_SECS seconds with $STRESS_PROCS processes, then umount, fsck,
# remount and check every remaining file.  STRESS_FSTYPE=ext4 runs it on
# ext4 (validates stress.py).
. "$TWINFS_GUEST_LIB"

fstype=${STRESS_FSTYPE:-twinfs}
stress=$(dirname "$VM_SCRIPT")/stress.py
if [ "$fstype" = twinfs ]; then
	load_twinfs
	fsck() { fsck_clean "$1"; }
else
	run modprobe "$fstype"
	run "mkfs.$fstype" -q -F /dev/vda
	fsck() { run "fsck.$fstype" -n -f "$1"; }
fi
mkdir -p /mnt
run mount -t "$fstype" /dev/vda /mnt
log "stress: ${STRESS_PROCS} processes for ${STRESS_SECS}s on $(nproc) CPUs"
python3 "$stress" run /mnt/stress "$STRESS_SECS" "$STRESS_PROCS" /out/stress.json ||
	die "stress run failed"
run umount /mnt
fsck /dev/vda
run mount -t "$fstype" /dev/vda /mnt
python3 "$stress" check /mnt/stress /out/stress.json || die "stress check after remount failed"
run umount /mnt
fsck /dev/vda
