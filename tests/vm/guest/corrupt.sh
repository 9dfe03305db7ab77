# Guest half of scenarios/40-corrupt.sh.
#   corrupt.sh populate   /dev/vda: mount, a directory with a few files, umount
#   corrupt.sh check      /dev/vda: all zeros, /dev/vdb: wrong format version,
#                         /dev/vdc: corrupt superblock, /dev/vdd: corrupt root
#                         directory leaf.  Each mount fails (for vdd the mount
#                         or the listing fails with EUCLEAN or EIO) with a
#                         "twinfs (vdX):" kernel message; nothing hangs.
. "$TWINFS_GUEST_LIB"

load_twinfs
mkdir -p /mnt
case ${1:-} in
populate)
	run mount -t twinfs /dev/vda /mnt
	run mkdir /mnt/dir
	for i in 1 2 3 4 5; do
		echo "file $i" > "/mnt/dir/file$i" || die "write file$i"
	done
	echo top > /mnt/top || die "write top"
	run umount /mnt
	fsck_clean /dev/vda
	;;
check)
	for dev in vda vdb vdc; do
		dmesg_mark
		if mount -t twinfs "/dev/$dev" /mnt; then
			umount /mnt
			die "mount of corrupt /dev/$dev succeeded"
		fi
		expect_dmesg "^twinfs \($dev\):"
	done
	dmesg_mark
	if mount -t twinfs /dev/vdd /mnt; then
		log "corrupt directory image mounted; listing the root must fail"
		dmesg_mark	# the message must come from the listing
		expect_errno "EUCLEAN|EIO" ls /mnt
		expect_os_errno "EUCLEAN|EIO" listdir /mnt
		run umount /mnt
	else
		log "corrupt directory image refused at mount"
	fi
	expect_dmesg "^twinfs \(vdd\):"
	# failed mounts must not leak references to the module
	run rmmod twinfs
	;;
*)
	die "usage: corrupt.sh populate|check"
	;;
esac
