# shellcheck shell=bash
# Helpers for guest scripts (run inside the VM by tests/vm/guest-init.sh):
#   . "$TWINFS_GUEST_LIB"
# The environment comes from /out/vm.env: TWINFS_SRC, TWINFS_KO, TWINFS_BIN,
# VM_NAME, VM_OUT (= /out, writable, kept on the host), VM_SCRIPT_ARGS.
# A failed check prints "FAIL: ..." and exits 1; the host shows that line.

set -uo pipefail
export LC_ALL=C		# error messages are compared as text

log() { printf '[%s %s] %s\n' "$(date +%T)" "${VM_NAME:-guest}" "$*"; }
die() { printf 'FAIL: %s\n' "$*"; exit 1; }

# run CMD...: echo and run a command that must succeed.
run() {
	log "+ $*"
	"$@" || die "command failed (exit $?): $*"
}

# check DESC CMD...: CMD must succeed, else fail with DESC.
check() {
	local desc=$1
	shift
	"$@" || die "$desc (command: $*)"
}

# expect_fail DESC CMD...: CMD must fail.
expect_fail() {
	local desc=$1
	shift
	if "$@"; then die "$desc: succeeded but should have failed: $*"; fi
	return 0
}

# errno_call FUNC ARGS...: call os.FUNC(*ARGS) in python3 and print OK or
# the errno name (EEXIST, ...).  An argument int:N is passed as integer N.
errno_call() {
	python3 -c '
import errno, os, sys
args = [int(a[4:]) if a.startswith("int:") else a for a in sys.argv[2:]]
try:
    getattr(os, sys.argv[1])(*args)
except OSError as e:
    print(errno.errorcode.get(e.errno, str(e.errno)))
else:
    print("OK")' "$@"
}

# expect_os_errno ENAME[|ENAME2] FUNC ARGS...: os.FUNC must fail with ENAME.
expect_os_errno() {
	local want=$1 got
	shift
	got=$(errno_call "$@")
	[[ "|$want|" == *"|$got|"* ]] || die "os.$*: expected $want, got $got"
	log "os.$1 ${2:-}: $got as expected"
}

# expect_errno ENAME[|ENAME2] CMD...: CMD must fail and its error output must
# contain the strerror text of ENAME ("File exists" for EEXIST).
expect_errno() {
	local want=$1 out texts
	shift
	if out=$("$@" 2>&1); then die "$*: succeeded, expected $want"; fi
	texts=$(python3 -c '
import errno, os, sys
for n in sys.argv[1].split("|"):
    print(os.strerror(getattr(errno, n)))' "$want") || die "bad errno name $want"
	grep -qF -- "$texts" <<< "$out" ||
		die "$*: expected $want, got: $(head -3 <<< "$out")"
	log "$1: $want as expected"
}

# load_twinfs: its dependencies first (busybox-free modprobe works in here:
# the host's /lib/modules/<guest version> is the guest's), then insmod.
load_twinfs() {
	local dep
	[ -e "$TWINFS_KO" ] || die "no module $TWINFS_KO"
	modprobe crc32c_generic || die "modprobe crc32c_generic"
	modprobe libcrc32c || die "modprobe libcrc32c"
	for dep in $(modinfo -F depends "$TWINFS_KO" | tr , ' '); do
		modprobe "$dep" || die "modprobe $dep (needed by twinfs.ko)"
	done
	insmod "$TWINFS_KO" || die "insmod $TWINFS_KO"
	log "twinfs.ko loaded"
}

# dmesg_mark: put a marker in the kernel log; dmesg_since prints the lines
# logged after the latest marker (without timestamps).
_DMESG_MARK=0
dmesg_mark() {
	_DMESG_MARK=$((_DMESG_MARK + 1))
	echo "vm-mark-$$-$_DMESG_MARK" > /dev/kmsg
}
dmesg_since() {
	dmesg --notime | awk -v m="vm-mark-$$-$_DMESG_MARK" 'p; index($0, m) { p = 1 }'
}

# expect_dmesg ERE: a line logged since the last dmesg_mark matches ERE.
expect_dmesg() {
	local l
	l=$(dmesg_since | grep -E -- "$1" | head -1)
	[ -n "$l" ] || die "no kernel log line matching '$1' (got: $(dmesg_since | tail -3 | tr '\n' '|'))"
	log "dmesg: $l"
}

# fsck_clean DEV: fsck.twinfs must find DEV clean.
fsck_clean() {
	local out
	out=$("$TWINFS_BIN/fsck.twinfs" "$1" 2>&1)
	local rc=$?
	printf '%s\n' "$out" | sed 's/^/  fsck: /' | tail -20
	[ $rc -eq 0 ] || die "fsck.twinfs $1 exit $rc"
	log "fsck.twinfs $1: clean"
}

# mount_twinfs DEV DIR [options]
mount_twinfs() {
	mkdir -p "$2"
	run mount -t twinfs ${3:+-o "$3"} "$1" "$2"
}

# net_up IP: the one virtio-net interface (NET_IFC, also in /out/netif)
# gets IP/24; it and lo go up.
net_up() {
	local _ n
	NET_IFC=
	for _ in $(seq 100); do
		for n in /sys/class/net/*; do
			[ "${n##*/}" = lo ] || [ ! -e "$n" ] || { NET_IFC=${n##*/}; break; }
		done
		[ -n "$NET_IFC" ] && break
		sleep 0.1
	done
	[ -n "$NET_IFC" ] || die "no network interface besides lo"
	run ip addr add "$1/24" dev "$NET_IFC"
	run ip link set "$NET_IFC" up
	run ip link set lo up
	log "network: $NET_IFC $1 mac $(cat "/sys/class/net/$NET_IFC/address")" \
		"mtu $(cat "/sys/class/net/$NET_IFC/mtu")" \
		"(interfaces: $(ls /sys/class/net | tr '\n' ' '))"
	echo "$NET_IFC" > /out/netif
}
