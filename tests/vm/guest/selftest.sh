# Guest half of scenarios/00-harness-selftest.sh: ext4 on /dev/vda.
. "$TWINFS_GUEST_LIB"

case ${1:-} in
write)
	run modprobe ext4
	run mkfs.ext4 -q -F /dev/vda
	run mount -t ext4 /dev/vda /mnt
	run mkdir /mnt/d
	seq 1 100000 > /mnt/d/numbers || die "write"
	sha256sum /mnt/d/numbers > /out/sums
	expect_errno EEXIST mkdir /mnt/d
	expect_errno ENOENT cat /mnt/nope
	expect_errno "ENOTEMPTY|EEXIST" rmdir /mnt/d
	expect_os_errno EISDIR unlink /mnt/d
	expect_os_errno ENAMETOOLONG mkdir "/mnt/$(printf 'x%.0s' {1..256})"
	expect_os_errno EXDEV rename /mnt/d/numbers /tmp/numbers
	[ "$(errno_call mkdir /mnt/e)" = OK ] || die "errno_call mkdir"
	run umount /mnt
	run fsck.ext4 -n -f /dev/vda
	# The nvdimm is a block device here; the host greps its backing file.
	[ -b /dev/pmem0 ] || die "no /dev/pmem0"
	echo nvdimm-selftest | dd of=/dev/pmem0 oflag=direct,sync bs=4096 conv=sync 2>/dev/null ||
		die "write /dev/pmem0"
	[ "$(nproc)" = 2 ] || die "expected 2 CPUs, got $(nproc)"
	echo "$SELFTEST_WORD" > /out/word
	;;
verify-then-wait)
	run modprobe ext4
	run mount -t ext4 -o ro /dev/vda /mnt
	# boot1's out dir, read through the read-only host root.
	run sha256sum -c "$SUMS"
	touch /out/verified
	sleep 600	# killed by the host
	;;
*)
	die "usage: selftest.sh write|verify-then-wait"
	;;
esac
