#!/bin/sh
# /init of the VM test initramfs (busybox sh).  Built into the cpio by
# vm_initramfs in lib.sh; it is not run on the host.
#
# 1. load the modules listed, in dependency order, in /modules.list
# 2. mount the host root read-only over 9p (tag hostroot) under a tmpfs
#    overlay at /newroot, and the per-run host directory (tag out) at
#    /newroot/out, writable
# 3. chroot and run the runner below: it sources /out/vm.env (written by
#    vm_start) and runs `bash $VM_SCRIPT` with a timeout, output to the
#    console and /out/script.log, exit status to /out/status
# 4. save dmesg to /out/dmesg and power off
# A watchdog covers a script stuck in the kernel, where timeout(1) cannot
# help: it dumps blocked tasks (sysrq w), saves dmesg and powers off.

export PATH=/bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
# What udev would add; bash's process substitution needs /dev/fd.
ln -s /proc/self/fd /dev/fd
ln -s /proc/self/fd/0 /dev/stdin
ln -s /proc/self/fd/1 /dev/stdout
ln -s /proc/self/fd/2 /dev/stderr

say() { echo "vm-init: $*" > /dev/console; }
die() {
	say "FATAL: $*"
	[ -d /newroot/out ] && echo "init failure: $*" > /newroot/out/init-error
	poweroff -f
}

while read -r ko; do
	insmod "$ko" || die "insmod $ko failed"
done < /modules.list

mkdir -p /host /ov /newroot
# cache=loose: the host root does not change under a test, and page-caching
# it makes python3 and friends start much faster than cache=none.
mount -t 9p -o trans=virtio,version=9p2000.L,ro,cache=loose,msize=262144 \
	hostroot /host || die "cannot mount the host root (9p hostroot)"
mount -t tmpfs -o size=50% tmpfs /ov || die "tmpfs /ov"
mkdir -p /ov/u /ov/w
mount -t overlay overlay -o lowerdir=/host,upperdir=/ov/u,workdir=/ov/w \
	/newroot || die "overlay mount failed"

for d in proc sys dev; do
	mount -o bind "/$d" "/newroot/$d" || die "bind /$d"
done
mount -t tmpfs tmpfs /newroot/tmp
mount -t tmpfs tmpfs /newroot/run
mkdir -p /newroot/dev/shm /newroot/out
mount -t tmpfs tmpfs /newroot/dev/shm
# The out share must see every write at once (cache=none is 9p's default):
# after a kill -9 of QEMU the host keeps what the guest wrote there.
mount -t 9p -o trans=virtio,version=9p2000.L,msize=262144 out /newroot/out ||
	die "cannot mount the out share (9p out)"

[ -r /newroot/out/vm.env ] || die "/out/vm.env missing"
# The only values init needs itself; the runner sources the whole file.
wd=$(sed -n 's/^VM_WATCHDOG_SECS=//p' /newroot/out/vm.env)
[ -n "$wd" ] || wd=600
# The repository is shared on its own at its host path, so a clone under
# /tmp (hidden by the guest's tmpfs) is visible too.
src=$(sed -n 's/^VM_SRC_DIR=//p' /newroot/out/vm.env)
if [ -n "$src" ]; then
	mkdir -p "/newroot$src"
	mount -t 9p -o trans=virtio,version=9p2000.L,ro,cache=loose,msize=262144 \
		src "/newroot$src" || die "cannot mount the repository (9p src)"
fi

(
	sleep "$wd"
	say "watchdog: guest still running after ${wd}s, dumping blocked tasks"
	echo w > /proc/sysrq-trigger
	sleep 2
	echo "$wd" > /newroot/out/watchdog
	dmesg -s 1048576 > /newroot/out/dmesg
	poweroff -n -f	# -n: no sync, it may hang on the same stuck file system
) &

# The runner, in bash inside the chroot.  tee runs in a process
# substitution, not a pipeline, so that a daemon the script left running
# with our stdout open cannot keep the runner waiting; tee gets 3 s to
# copy the script's last lines.
chroot /newroot /usr/bin/env -i PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
	HOME=/root TERM=dumb LANG=C.UTF-8 /bin/bash -c '
	set -a; . /out/vm.env; set +a
	cd /out || exit 1
	echo "vm-init: running $VM_SCRIPT (timeout ${VM_SCRIPT_TIMEOUT}s)"
	timeout -k 5 "$VM_SCRIPT_TIMEOUT" bash "$VM_SCRIPT" "${VM_SCRIPT_ARGS[@]}" \
		> >(tee /out/script.log) 2>&1 < /dev/null
	st=$?
	tee_pid=$!
	for i in $(seq 30); do kill -0 $tee_pid 2>/dev/null || break; sleep 0.1; done
	# 124, or 137 after timeout(1) had to SIGKILL; not an OOM kill
	if { [ "$st" = 124 ] || [ "$st" = 137 ]; } && [ $SECONDS -ge "$VM_SCRIPT_TIMEOUT" ]; then
		echo "vm-init: script timed out after ${VM_SCRIPT_TIMEOUT}s"
		echo "$VM_SCRIPT_TIMEOUT" > /out/script-timeout
		echo w > /proc/sysrq-trigger
	fi
	echo "vm-init: script exit status $st"
	echo "$st" > /out/status
' > /dev/console 2>&1 || [ -s /newroot/out/status ] ||
	echo "runner failed" > /newroot/out/init-error

dmesg -s 1048576 > /newroot/out/dmesg
# sync, but do not wait forever for a wedged file system (the test has
# already failed on its kernel log then); poweroff -f would sync again
# unless told -n.
sync &
sync_pid=$!
i=0
while [ $i -lt 300 ] && kill -0 $sync_pid 2>/dev/null; do
	sleep 0.1
	i=$((i + 1))
done
[ $i -lt 300 ] || say "sync still blocked after 30 s; powering off anyway"
poweroff -n -f
