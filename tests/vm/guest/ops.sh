# Guest half of scenarios/10-ops.sh: /dev/vda (256 MiB) and /dev/vdb (32 MiB)
# are fresh twinfs images.  OPS_FSTYPE=ext4 runs the same checks on ext4
# (formatted here), which is how ops.py itself is validated.
. "$TWINFS_GUEST_LIB"

fstype=${OPS_FSTYPE:-twinfs}
ops=$(dirname "$VM_SCRIPT")/ops.py
rec=/out/ops-record.json

if [ "$fstype" = twinfs ]; then
	load_twinfs
	sysfs=(--sysfs /sys/fs/twinfs/vda)
	fsck() { fsck_clean "$1"; }
else
	run modprobe "$fstype"
	run mkfs."$fstype" -q -F -b 4096 /dev/vda
	run mkfs."$fstype" -q -F -b 4096 /dev/vdb
	sysfs=()
	fsck() { run fsck."$fstype" -n -f "$1"; }
fi

mkdir -p /mnt /small
run mount -t "$fstype" /dev/vda /mnt
run mount -t "$fstype" /dev/vdb /small
python3 "$ops" run --mnt /mnt --small /small "${sysfs[@]}" \
	--dev-size "$(blockdev --getsize64 /dev/vda)" --record "$rec" ||
	die "ops.py run failed"
run umount /small
fsck /dev/vdb
run umount /mnt
fsck /dev/vda

run mount -t "$fstype" /dev/vda /mnt
python3 "$ops" verify --mnt /mnt --record "$rec" || die "ops.py verify failed"
run umount /mnt
fsck /dev/vda
log "ops: all checks passed"
