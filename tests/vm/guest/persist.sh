# Guest half of scenarios/20-persist-reboot.sh.
#   persist.sh write    mount the fresh twinfs on /dev/vda, build the tree,
#                       record /out/manifest.json, umount, fsck
#   persist.sh verify   (next boot) mount, compare with $MANIFEST, umount, fsck
# PERSIST_FSTYPE=ext4 runs the same on ext4 (formatted by the write step).
. "$TWINFS_GUEST_LIB"

fstype=${PERSIST_FSTYPE:-twinfs}
tree=$(dirname "$VM_SCRIPT")/tree.py
if [ "$fstype" = twinfs ]; then
	load_twinfs
	fsck() { fsck_clean "$1"; }
else
	run modprobe "$fstype"
	fsck() { run "fsck.$fstype" -n -f "$1"; }
fi
mkdir -p /mnt

case ${1:-} in
write)
	[ "$fstype" = twinfs ] || run "mkfs.$fstype" -q -F /dev/vda
	run mount -t "$fstype" /dev/vda /mnt
	run python3 "$tree" write /mnt/tree /out/manifest.json
	run umount /mnt
	fsck /dev/vda
	;;
verify)
	run mount -t "$fstype" /dev/vda /mnt
	python3 "$tree" verify /mnt/tree "$MANIFEST" || die "the tree changed across the reboot"
	run umount /mnt
	fsck /dev/vda
	;;
*)
	die "usage: persist.sh write|verify"
	;;
esac
