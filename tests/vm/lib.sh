# shellcheck shell=bash
# Host-side helpers of the twinfs VM tests; sourced by tests/vm/scenarios/*.sh.
#
# A guest is Debian's amd64 kernel under QEMU TCG with a small busybox
# initramfs (tests/vm/guest-init.sh) that mounts the host root read-only over
# 9p with a tmpfs overlay, chroots into it and runs `bash <guest script>`.
# Every tool of the host is therefore available in the guest, at the same
# paths, and the repository (with kmod/twinfs.ko and build/) is visible at
# $TWINFS_SRC.  Each guest gets a writable per-run host directory, its "out
# dir", mounted at /out: vm.env (its environment), script.log, status,
# dmesg, console.log, result.  See tests/vm/README.md.
#
# Main entry points:
#   vm_run   NAME SCRIPT [options] [-- script args]   boot, wait, check
#   vm_start NAME SCRIPT [options] [-- script args]   boot in the background
#   vm_wait  NAME                                     wait for it and check
#   vm_kill  NAME                                     kill -9 its QEMU
# options:
#   --disk IMG        raw image -> virtio-blk (vda, vdb, ... in order);
#                     cache=none, no locking, share-rw: several guests may
#                     share one image
#   --nvdimm IMG      file-backed NVDIMM -> /dev/pmem0 (size = file size)
#   --mem SIZE        guest memory (default $VM_MEM or 1024M)
#   --smp N           vCPUs (default $VM_SMP or 1; at most 2 makes sense here)
#   --timeout SECS    wall-clock limit of the whole guest (default $VM_TIMEOUT
#                     or 300); QEMU is killed with SIGKILL when it expires
#   --udp L:R[:MAC]   virtio-net on a UDP socket netdev: local port L, peer
#                     port R, both on 127.0.0.1 (see vm-notes.md)
#   --env K=V         extra environment for the guest script
#   --qemu ARG        extra QEMU argument (repeat per word)
#   --pin CPUS        run QEMU under taskset -c CPUS (only for timing)
# vm_wait / vm_run return 0 only when the guest script exited 0 and the
# kernel log is clean; otherwise non-zero with the reason in $VM_REASON
# (also in <out dir>/result).

TWINFS_SRC=${TWINFS_SRC:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd -P)}
TWINFS_BUILD=${TWINFS_BUILD:-$TWINFS_SRC/build}
TWINFS_BIN=${TWINFS_BIN:-$TWINFS_BUILD}
TWINFS_KO=${TWINFS_KO:-$TWINFS_SRC/kmod/twinfs.ko}
VM_TESTS=$TWINFS_SRC/tests/vm
VM_DIR=$TWINFS_BUILD/vm
VM_LOGDIR=${VM_LOGDIR:-$VM_DIR/logs/adhoc}
VM_TMPDIR=${VM_TMPDIR:-$VM_DIR/tmp/adhoc}
VM_MAX_GUESTS=${VM_MAX_GUESTS:-2}
# Kernel log lines that fail a test (extended regex), and lines to ignore.
VM_DMESG_BAD='WARNING:|BUG:|kernel BUG at|Oops|invalid opcode|general protection|Busy inodes after unmount|list_(add|del) corruption|possible circular locking|lockdep|INFO: task .* blocked|hung_task|UBSAN|KASAN|Call Trace:|Kernel panic|kernel panic'
VM_DMESG_IGNORE=${VM_DMESG_IGNORE:-}
VM_REASON=

# Modules the initramfs needs before the host root is reachable; nfit and
# virtio_net are loaded even when unused, which is harmless.
VM_INITRD_MODULES="virtio_ring virtio virtio_pci_modern_dev virtio_pci_legacy_dev
	virtio_pci virtio_blk failover net_failover virtio_net 9pnet 9pnet_virtio
	netfs fscache 9p overlay libnvdimm nd_btt nd_pmem nfit"

declare -A _VM_JOB=()	# name -> pid of the background pipeline

vm_log() { printf '[%s] %s\n' "$(date +%T)" "$*" >&2; }
# A usage or setup error of vm_*: also the reason a scenario reports.
_vm_err() { VM_REASON=$*; vm_log "$*"; return 2; }

# fail REASON: end the scenario; run-all.sh prints REASON after FAIL.
fail() {
	mkdir -p "$VM_LOGDIR"
	printf '%s\n' "$*" > "$VM_LOGDIR/reason"
	vm_log "FAIL: $*"
	exit 1
}

vm_kver() {
	[ -n "${VM_KVER:-}" ] || VM_KVER=$(bash "$TWINFS_SRC/scripts/guest-kernel.sh") || return 1
	echo "$VM_KVER"
}

# The out dir of guest NAME (created by vm_start).
vm_out() { echo "$VM_LOGDIR/$1"; }

# vm_udp_ports: prints P, the first of two free UDP ports P and P+1 on
# 127.0.0.1 for a --udp link between two guests (other runs on the machine
# may use some, so they are not derived from a scenario's seed).
vm_udp_ports() {
	local p _
	for _ in $(seq 100); do
		p=$((20000 + 2 * (($$ * 7 + RANDOM) % 20000)))
		ss -Huan 2>/dev/null | awk '{ print $4 }' | grep -qE ":($p|$((p + 1)))\$" || {
			echo "$p"
			return 0
		}
	done
	return 1
}

# vm_image FILE SIZE: a fresh sparse raw image (SIZE as for truncate: 256M).
vm_image() {
	mkdir -p "$(dirname "$1")"
	rm -f "$1"
	truncate -s "$2" "$1"
}

# The initramfs, rebuilt when the kernel, the module files, guest-init.sh or
# busybox change.  Prints its path.
vm_initramfs() {
	local kver out key mods
	kver=$(vm_kver) || return 1
	out=$VM_DIR/initramfs-$kver.cpio.gz
	mkdir -p "$VM_DIR"
	# modprobe -S resolves the load order from that kernel's modules.dep
	# without touching the running kernel.
	# shellcheck disable=SC2086
	mods=$(for m in $VM_INITRD_MODULES; do
		modprobe -S "$kver" --show-depends "$m" || exit 1
	done | awk '$1 == "insmod" && !seen[$2]++ { print $2 }') || {
		vm_log "cannot resolve guest modules for $kver"
		return 1
	}
	# shellcheck disable=SC2086
	key=$( { echo "$kver"; stat -c '%n %s %Y' $mods /bin/busybox;
		cat "$VM_TESTS/guest-init.sh"; } | sha256sum | cut -c1-16)
	if [ -f "$out" ] && [ "$(cat "$out.key" 2>/dev/null)" = "$key" ]; then
		echo "$out"
		return 0
	fi
	(
		flock 8
		# Another run may have built it while we waited for the lock.
		if [ -f "$out" ] && [ "$(cat "$out.key" 2>/dev/null)" = "$key" ]; then
			exit 0
		fi
		_vm_build_initramfs "$out" "$mods" && echo "$key" > "$out.key"
	) 8> "$VM_DIR/initramfs.lock" || return 1
	echo "$out"
}

_vm_build_initramfs() {
	local out=$1 mods=$2 root ko base a
	root=$(mktemp -d "$VM_DIR/initramfs.XXXXXX")
	mkdir -p "$root"/{bin,dev,proc,sys,lib/modules}
	cp /bin/busybox "$root/bin/busybox"
	# One symlink per applet; nothing else goes into bin/, so no cp can
	# ever land on a busybox symlink.
	for a in $(/bin/busybox --list); do
		[ "$a" = busybox ] || ln -s busybox "$root/bin/$a"
	done
	: > "$root/modules.list"
	for ko in $mods; do
		base=$(basename "$ko")
		case $ko in
		*.ko.xz)  xz -dc "$ko" > "$root/lib/modules/${base%.xz}" ;;
		*.ko.zst) zstd -qdc "$ko" > "$root/lib/modules/${base%.zst}" ;;
		*.ko.gz)  gzip -dc "$ko" > "$root/lib/modules/${base%.gz}" ;;
		*)        cp "$ko" "$root/lib/modules/$base" ;;
		esac || { rm -rf "$root"; return 1; }
		echo "/lib/modules/${base%.ko*}.ko" >> "$root/modules.list"
	done
	install -m 755 "$VM_TESTS/guest-init.sh" "$root/init"
	(cd "$root" && find . | cpio -o -H newc --quiet | gzip -1) > "$out.tmp" &&
		mv "$out.tmp" "$out"
	local rc=$?
	rm -rf "$root"
	vm_log "built $out"
	return $rc
}

# Kill every guest this shell started (on exit or interrupt): a scenario that
# dies must not leave QEMU running.
_vm_cleanup() {
	local n
	for n in "${!_VM_JOB[@]}"; do
		_vm_kill9 "$n"
	done
}
trap _vm_cleanup EXIT
trap '_vm_cleanup; exit 130' INT TERM

# PID of NAME's QEMU, only if that process is really it (the pidfile may be
# stale and the PID reused).
_vm_qemu_pid() {
	local out pid
	out=$(vm_out "$1")
	pid=$(cat "$out/qemu.pid" 2>/dev/null) || return 1
	[ -n "$pid" ] && tr '\0' ' ' 2>/dev/null < "/proc/$pid/cmdline" |
		grep -qF -- "$out/qemu.pid" && echo "$pid"
}

_vm_kill9() {
	local pid
	pid=$(_vm_qemu_pid "$1") && kill -9 "$pid" 2>/dev/null
	return 0
}

vm_start() {
	local name=$1 script=$2
	shift 2 || { _vm_err "usage: vm_start NAME SCRIPT [options] [-- args]"; return; }
	local mem=${VM_MEM:-1024M} smp=${VM_SMP:-1} timeout=${VM_TIMEOUT:-300}
	local nvdimm= pin= out initrd kver i=0 l r mac
	local -a disks=() envs=() extra=() args=() udps=() q=()
	while [ $# -gt 0 ]; do
		case $1 in
		--disk) disks+=("$2"); shift ;;
		--nvdimm) nvdimm=$2; shift ;;
		--mem) mem=$2; shift ;;
		--smp) smp=$2; shift ;;
		--timeout) timeout=$2; shift ;;
		--udp) udps+=("$2"); shift ;;
		--env) envs+=("$2"); shift ;;
		--qemu) extra+=("$2"); shift ;;
		--pin) pin=$2; shift ;;
		--) shift; args=("$@"); break ;;
		*) _vm_err "vm_start: unknown option $1"; return ;;
		esac
		shift
	done
	[ -z "${_VM_JOB[$name]:-}" ] || { _vm_err "vm_start: $name is running"; return; }
	[ "$timeout" -ge 60 ] || { _vm_err "vm_start: --timeout must be >= 60"; return; }
	script=$(realpath -e "$script") || { _vm_err "vm_start: no guest script $script"; return; }
	# /tmp, /run and /dev/shm are the guest's own tmpfs: it cannot see
	# them, except the repository, which is shared on its own.
	case $script in
	"$TWINFS_SRC"/*) ;;
	/tmp/* | /run/* | /dev/*) _vm_err "vm_start: $script is not visible in the guest"; return ;;
	esac
	kver=$(vm_kver) && initrd=$(vm_initramfs) ||
		{ _vm_err "vm_start: cannot build the initramfs"; return; }
	out=$(vm_out "$name")
	rm -rf "$out"
	mkdir -p "$out"

	# The guest's environment.  The script gets 45 s less than the wall
	# clock (boot, dmesg, poweroff); init's watchdog fires 25 s before it.
	{
		printf '%s=%q\n' VM_NAME "$name" VM_SCRIPT "$script" \
			VM_SCRIPT_TIMEOUT $((timeout - 45)) \
			VM_WATCHDOG_SECS $((timeout - 25)) VM_OUT /out \
			VM_KVER "$kver" TWINFS_SRC "$TWINFS_SRC" VM_SRC_DIR "$TWINFS_SRC" \
			TWINFS_BUILD "$TWINFS_BUILD" TWINFS_BIN "$TWINFS_BIN" \
			TWINFS_KO "$TWINFS_KO" \
			TWINFS_GUEST_LIB "$VM_TESTS/guest-lib.sh"
		for i in "${envs[@]}"; do
			printf '%s=%q\n' "${i%%=*}" "${i#*=}"
		done
		printf 'VM_SCRIPT_ARGS=('
		[ ${#args[@]} -eq 0 ] || printf ' %q' "${args[@]}"
		printf ' )\n'
	} > "$out/vm.env"

	q=(qemu-system-x86_64 -accel tcg -nodefaults -no-user-config
		-display none -monitor none -serial stdio -no-reboot
		-smp "$smp" -kernel "/boot/vmlinuz-$kver" -initrd "$initrd"
		-append "console=ttyS0 loglevel=5 panic=-1"
		-pidfile "$out/qemu.pid"
		-virtfs "local,path=/,mount_tag=hostroot,security_model=none,readonly=on,multidevs=remap"
		-virtfs "local,path=$out,mount_tag=out,security_model=none,multidevs=remap"
		-virtfs "local,path=$TWINFS_SRC,mount_tag=src,security_model=none,readonly=on,multidevs=remap")
	if [ -n "$nvdimm" ]; then
		[ -f "$nvdimm" ] || { _vm_err "vm_start: no nvdimm image $nvdimm"; return; }
		q+=(-machine pc,nvdimm=on -m "$mem,slots=2,maxmem=4G"
			-object "memory-backend-file,id=nv0,share=on,mem-path=$nvdimm,size=$(stat -c %s "$nvdimm")"
			-device nvdimm,memdev=nv0,id=nvd0)
	else
		q+=(-machine pc -m "$mem")
	fi
	i=0
	for l in "${disks[@]}"; do
		[ -f "$l" ] || [ -b "$l" ] || { _vm_err "vm_start: no disk image $l"; return; }
		q+=(-drive "file=$l,if=none,id=disk$i,format=raw,cache=none,file.locking=off"
			-device "virtio-blk-pci,drive=disk$i,share-rw=on")
		i=$((i + 1))
	done
	i=0
	for l in "${udps[@]}"; do
		IFS=: read -r l r mac <<< "$l"
		mac=${mac:-52:54:00:12:$(printf %02x $((l % 256))):$(printf %02x $i)}
		q+=(-netdev "socket,id=net$i,udp=127.0.0.1:$r,localaddr=127.0.0.1:$l"
			-device "virtio-net-pci,netdev=net$i,mac=$mac")
		i=$((i + 1))
	done
	q+=("${extra[@]}")
	# taskset execs QEMU, so the pidfile and the timeout still see QEMU.
	[ -z "$pin" ] || q=(taskset -c "$pin" "${q[@]}")
	printf '%q ' "${q[@]}" > "$out/qemu.cmd"
	echo >> "$out/qemu.cmd"

	# The subshell takes one of VM_MAX_GUESTS slot locks and holds it (fd 9)
	# as long as QEMU runs.  timeout -s KILL is the wall clock: it SIGKILLs
	# exactly its child, QEMU.  tr strips the serial line's CRs; stdbuf
	# keeps it line-buffered so console.log can be watched live.
	(
		until _vm_take_slot; do sleep 1; done
		date +%s > "$out/start-time"
		timeout -s KILL "$timeout" "${q[@]}" < /dev/null 2>&1
		echo $? > "$out/qemu.rc"
	) 2>&1 < /dev/null | stdbuf -oL tr -d '\r' > "$out/console.log" &
	_VM_JOB[$name]=$!
	echo "$timeout" > "$out/timeout"
	vm_log "started guest $name ($(basename "$script"), out dir $out)"
}

# Opens fd 9 on a free slot lock, held by the caller's subshell.
_vm_take_slot() {
	local s
	mkdir -p "$VM_DIR"
	for ((s = 0; s < VM_MAX_GUESTS; s++)); do
		exec 9> "$VM_DIR/slot$s.lock"
		flock -n 9 && return 0
		exec 9>&-
	done
	return 1
}

# vm_kill NAME: SIGKILL its QEMU (a node crash: the images keep exactly what
# reached them) and wait until the process is gone.  Call vm_wait after.
vm_kill() {
	local out pid= t
	out=$(vm_out "$1")
	[ -n "${_VM_JOB[$1]:-}" ] || { _vm_err "vm_kill: $1 not started"; return; }
	touch "$out/killed"
	for ((t = 0; t < 300; t++)); do	# QEMU may not have started yet
		pid=$(_vm_qemu_pid "$1") && break
		[ -e "$out/qemu.rc" ] && return 0
		sleep 0.1
	done
	[ -n "$pid" ] || { _vm_err "vm_kill: no QEMU process for $1"; return; }
	kill -9 "$pid"
	while kill -0 "$pid" 2>/dev/null; do sleep 0.1; done
	vm_log "killed guest $1 (pid $pid)"
}

# vm_wait NAME: wait for the guest to end, then judge it: the script's
# status, timeouts, and the kernel log.  Sets VM_REASON.
vm_wait() {
	local name=$1 out rc st secs ret=0 bad i
	out=$(vm_out "$name")
	[ -n "${_VM_JOB[$name]:-}" ] || { _vm_err "vm_wait: $name not started"; return; }
	wait "${_VM_JOB[$name]}"
	unset "_VM_JOB[$name]"
	rc=$(cat "$out/qemu.rc" 2>/dev/null)
	st=$(cat "$out/status" 2>/dev/null)
	secs=$(( $(date +%s) - $(cat "$out/start-time" 2>/dev/null || date +%s) ))
	# What the script did first, then how the guest ended.
	local -a why=()
	if [ -e "$out/killed" ]; then
		why+=("killed by vm_kill")
	else
		if [ -e "$out/script-timeout" ]; then
			why+=("guest script timed out after $(cat "$out/script-timeout") s")
			ret=124
		elif [ -n "$st" ] && [ "$st" != 0 ]; then
			why+=("guest script failed (exit $st): $(_vm_last_error "$out/script.log")")
			ret=$st
		elif [ -z "$st" ] && [ -e "$out/init-error" ]; then
			why+=("guest init: $(cat "$out/init-error")")
			ret=125
		fi
		if [ -e "$out/watchdog" ]; then
			why+=("guest watchdog fired after $(cat "$out/watchdog") s (stuck in the kernel?)")
			[ "$ret" != 0 ] || ret=124
		elif [ "$rc" = 137 ]; then
			why+=("no power-off within $(cat "$out/timeout") s, QEMU killed")
			[ "$ret" != 0 ] || ret=124
		elif [ -z "$st" ] && [ ! -e "$out/init-error" ]; then
			why+=("guest wrote no status (QEMU exit ${rc:-?}; crash? see console.log)")
			ret=125
		fi
	fi
	[ ${#why[@]} -gt 0 ] || why=(ok)
	VM_REASON="$name: ${why[0]}"
	for ((i = 1; i < ${#why[@]}; i++)); do VM_REASON+="; ${why[i]}"; done
	if bad=$(vm_check_dmesg "$out"); then :; else
		printf '%s\n' "$bad" > "$out/dmesg-bad"
		vm_log "kernel log of $name has suspicious lines:"
		head -40 <<< "$bad" | sed 's/^/  /' >&2
		if [ "$ret" = 0 ] && [ ! -e "$out/killed" ]; then
			VM_REASON="$name: kernel log: $(head -1 <<< "$bad")"
		else
			VM_REASON="$VM_REASON; kernel log: $(head -1 <<< "$bad")"
		fi
		[ "$ret" != 0 ] || ret=1
	fi
	echo "$VM_REASON" > "$out/result"
	vm_log "guest $name ended after ${secs}s: $VM_REASON"
	return "$ret"
}

# The first FAIL line of a script log, else the last line that looks like an
# error, else its last line.
_vm_last_error() {
	local l
	l=$(grep -m1 '^FAIL' "$1" 2>/dev/null)
	[ -n "$l" ] || l=$(grep -E '[Ee]rror|No such|denied|failed' "$1" 2>/dev/null | tail -1)
	[ -n "$l" ] || l=$(grep -v '^vm-init:' "$1" 2>/dev/null | tail -1)
	printf '%s' "${l:0:300}"
}

# vm_check_dmesg OUTDIR: print the bad kernel lines of dmesg and of the
# console (kernel lines there carry a [ seconds ] stamp; the script's own
# output does not and is not scanned).  Returns 1 if there are any.
vm_check_dmesg() {
	local out=$1 lines
	lines=$( { cat "$out/dmesg" 2>/dev/null
		grep -E '^\[ *[0-9]+\.[0-9]+\]' "$out/console.log" 2>/dev/null; } |
		grep -E -- "$VM_DMESG_BAD" |
		{ if [ -n "$VM_DMESG_IGNORE" ]; then grep -Ev -- "$VM_DMESG_IGNORE"; else cat; fi; } |
		awk '!seen[$0]++')
	[ -z "$lines" ] && return 0
	printf '%s\n' "$lines"
	return 1
}

vm_run() {
	vm_start "$@" || return $?
	vm_wait "$1"
}

# --- twinfs helpers for scenarios ---------------------------------------

# need_twinfs: fail the scenario unless the module and the tools are built.
need_twinfs() {
	local f
	for f in "$TWINFS_KO" "$TWINFS_BIN/mkfs.twinfs" "$TWINFS_BIN/fsck.twinfs"; do
		[ -e "$f" ] || fail "not built: ${f#"$TWINFS_SRC"/} (run make)"
	done
}

# twinfs_mkfs IMAGE [mkfs args]
twinfs_mkfs() {
	local img=$1
	shift
	"$TWINFS_BIN/mkfs.twinfs" -f "$@" "$img" > "$VM_LOGDIR/mkfs-$(basename "$img").log" 2>&1 ||
		fail "mkfs.twinfs $(basename "$img") failed: $(tail -1 "$VM_LOGDIR/mkfs-$(basename "$img").log")"
}

# ack_count FILE ITER WORKER: complete "ACK ITER WORKER n" lines, n = 0, 1,
# ...; a torn last line (no newline) does not count (guest/crash_workload.py's
# acks.w<k>, as 60-crash and the mirror scenarios read them).
ack_count() {
	[ -s "$1" ] || { echo 0; return 0; }
	{ if [ -n "$(tail -c1 "$1")" ]; then sed '$d' "$1"; else cat "$1"; fi; } |
		awk -v it="$2" -v w="$3" 'BEGIN { n = 0 }
			$0 == "ACK " it " " w " " n { n++; next }
			{ bad = 1; exit }
			END { if (bad) print "bad line " NR ": " $0; else print n }'
}

# twinfs_fsck IMAGE: fsck.twinfs on the host; returns its status, output
# saved in the log dir.
twinfs_fsck() {
	local log
	log=$VM_LOGDIR/fsck-$(basename "$1")-$(date +%s%N).log
	"$TWINFS_BIN/fsck.twinfs" "$1" > "$log" 2>&1
}
