# Guest half of scenarios/25-nvram.sh: the change memory on /dev/pmem0.
#   nvram.sh basic   mount with nvram=, operations, sysfs, sync trims, umount,
#                    fsck, remount: everything there, nothing replayed
#   nvram.sh crash   mount, operations, no sync: the host kills the guest
#   nvram.sh after   mount (replays), check what "crash" did, fsck
. "$TWINFS_GUEST_LIB"

load_twinfs
for m in libnvdimm nd_pmem nfit; do modprobe $m 2>/dev/null; done
for i in 1 2 3 4 5 6 7 8 9 10; do [ -b /dev/pmem0 ] && break; sleep 0.5; done
[ -b /dev/pmem0 ] || die "no /dev/pmem0"
sys=/sys/fs/twinfs/vda
opts=nvram=/dev/pmem0${CP_MS:+,cp_interval_ms=$CP_MS}

workload() {
	mkdir -p /mnt/d/sub
	for i in $(seq 1 200); do echo "file $i" > /mnt/d/f$i; done
	dd if=/dev/urandom of=/mnt/d/big bs=64k count=40 status=none
	sha256sum /mnt/d/big | cut -d' ' -f1 > /tmp/big.sum
	ln /mnt/d/f1 /mnt/d/f1.link
	ln -s f2 /mnt/d/f2.sym
	mv /mnt/d/f3 /mnt/d/sub/f3.moved
	rm /mnt/d/f4
	truncate -s 3 /mnt/d/f5
	chmod 600 /mnt/d/f6
	touch -d @1000000000 /mnt/d/f7
	mkdir /mnt/d/gone && rmdir /mnt/d/gone
	printf 'overwrite' | dd of=/mnt/d/big bs=1 seek=1000 conv=notrunc status=none
	sha256sum /mnt/d/big | cut -d' ' -f1 > /out/big.sum
}

check_tree() {
	[ "$(cat /mnt/d/f200)" = "file 200" ] || die "f200: $(cat /mnt/d/f200)"
	[ "$(cat /mnt/d/f1.link)" = "file 1" ] || die "f1.link"
	[ "$(stat -c %h /mnt/d/f1)" = 2 ] || die "f1 nlink"
	[ "$(readlink /mnt/d/f2.sym)" = f2 ] || die "f2.sym"
	[ -e /mnt/d/f3 ] && die "f3 still there"
	[ "$(cat /mnt/d/sub/f3.moved)" = "file 3" ] || die "f3.moved"
	[ -e /mnt/d/f4 ] && die "f4 still there"
	[ "$(cat /mnt/d/f5)" = "fil" ] || die "f5: '$(cat /mnt/d/f5)'"
	[ "$(stat -c %a /mnt/d/f6)" = 600 ] || die "f6 mode $(stat -c %a /mnt/d/f6)"
	[ "$(stat -c %Y /mnt/d/f7)" = 1000000000 ] || die "f7 mtime $(stat -c %Y /mnt/d/f7)"
	[ -e /mnt/d/gone ] && die "gone still there"
	[ "$(sha256sum /mnt/d/big | cut -d' ' -f1)" = "${BIGSUM:-$(cat /out/big.sum)}" ] || die "big differs"
	log "tree checked"
}

show() { for f in cm_device cm_size cm_used last_seq cp_seq cp_count cp_dirty_blocks records_replayed; do printf '%s=%s ' $f "$(cat $sys/$f)"; done; echo; }

case ${1:-} in
basic)
	mount_twinfs /dev/vda /mnt "$opts"
	show
	workload
	show
	[ "$(cat $sys/last_seq)" -gt 200 ] || die "last_seq did not grow"
	run sync
	show
	[ "$(cat $sys/cp_seq)" = "$(cat $sys/last_seq)" ] || die "sync did not make a consistency point"
	check_tree
	run umount /mnt
	fsck_clean /dev/vda
	mount_twinfs /dev/vda /mnt "$opts"
	show
	check_tree
	[ "$(cat $sys/records_replayed)" = 0 ] || die "replayed after a clean umount"
	run umount /mnt
	fsck_clean /dev/vda
	;;
crash)
	mount_twinfs /dev/vda /mnt "$opts"
	workload
	show
	log "WORKLOAD-DONE"
	sleep 600
	;;
after)
	dmesg_mark
	mount_twinfs /dev/vda /mnt "$opts"
	dmesg_since | grep twinfs
	show
	[ "$(cat $sys/records_replayed)" -gt 0 ] || die "nothing replayed"
	check_tree
	run umount /mnt
	fsck_clean /dev/vda
	mount_twinfs /dev/vda /mnt "$opts"
	check_tree
	run umount /mnt
	;;
*)
	die "usage: nvram.sh basic|crash|after"
	;;
esac
