# shellcheck shell=bash disable=SC2034
# The benchmark's configurations and workloads, sourced by tests/vm/bench.sh
# (host) and tests/vm/bench/guest.sh (guest).
#
# A configuration is a way to prepare a device and mount a file system on it.
# Each one declares:
#   BENCH_DESC[name]    one line for the report
#   BENCH_DISKS[name]   how many virtio disks of BENCH_DISK_SIZE it needs
#                       (the host creates them; the guest gets their /dev
#                       names in order, vda, vdb, ... across configurations)
#   BENCH_NVDIMM[name]  size of an NVDIMM it needs (/dev/pmem0), or unset;
#                       the harness gives a guest one NVDIMM at most
#   bench_setup_<name> MNT DEV...   (guest) format, mount on MNT
# and the guest runs every workload on every configuration, interleaved.
# Ratios are reported against BENCH_BASELINE.
#
# The subject is twinfs with its change memory in NVRAM (issue 5): a
# file-backed QEMU NVDIMM of BENCH_NVRAM_SIZE gives the guest /dev/pmem0, and
# twinfs is mounted with nvram=/dev/pmem0, so every modifying call returns
# once its change record is durable there.  ext4, the baseline, gets a
# virtio disk of the same kind and size (raw image, cache=none).
# `twinfs` (no nvram=: with the change-memory module its change memory is
# volatile RAM, not crash-safe) can be added with BENCH_CONFIGS for
# reference; it is not a fair peer of ext4 and is not run by default.
#
# Adding a configuration later (twinfs mirrored over TCP / RDMA, ext4 on
# DRBD): add its name to BENCH_CONFIGS and the entries above.  Mirrored
# ones need a partner guest, which bench.sh does not boot yet: they will add
# a BENCH_PEER[name] entry and a second vm_start on the UDP link (see
# /work/shared/vm-notes.md).

BENCH_CONFIGS_ALL=(twinfs-nvram ext4)
BENCH_BASELINE=ext4
# The configuration the headline ratios and the targets are about.
BENCH_SUBJECT=twinfs-nvram
BENCH_DISK_SIZE=4G
BENCH_NVRAM_SIZE=${BENCH_NVRAM_SIZE:-64M}	# the NVDIMM of twinfs-nvram

declare -A BENCH_DESC=(
	[twinfs-nvram]="twinfs on a local virtio disk, change memory in a ${BENCH_NVRAM_SIZE/%M/ MiB} NVDIMM (mount -o nvram=/dev/pmem0)"
	[twinfs]="twinfs on a local virtio disk, no nvram= (change memory in volatile RAM with the change-memory module; not crash-safe)"
	[ext4]="ext4 on a local virtio disk (defaults: data=ordered, barriers)"
)
declare -A BENCH_DISKS=([twinfs-nvram]=1 [twinfs]=1 [ext4]=1)
declare -A BENCH_NVDIMM=([twinfs-nvram]=$BENCH_NVRAM_SIZE)

# Workloads: fsbench's (tests/vm/bench/fsbench.c); their sizes come from
# bench.sh (BENCH_SECS, BENCH_FILES, BENCH_DIRS, BENCH_UNTAR_REPS,
# BENCH_FILE_MB).  "create+fsync" is create_fsync_dir: the file's fsync and
# its directory's, the POSIX-durable create, so both file systems promise
# the same (ext4 commits the name with the file's fsync anyway; twinfs
# without change memory did not).  create_fsync (the file's fsync only)
# stays available through BENCH_WORKLOADS.
BENCH_WORKLOADS_ALL=(create_fsync_dir write_fsync untar)
BENCH_THREADS_ALL=(1 8)

declare -A BENCH_WORKLOAD_DESC=(
	[create_fsync]="open(O_CREAT|O_EXCL) + fsync + close of a new empty file (no directory fsync)"
	[create_fsync_dir]="open(O_CREAT|O_EXCL) + fsync of the file + fsync of its directory + close (POSIX-durable name)"
	[write_fsync]="pwrite 4 KiB at a random aligned offset of a 64 MiB file + fsync"
	[untar]="files of 1-16 KiB in 50 directories, no fsync, then one syncfs"
)

# --- guest side --------------------------------------------------------

_bench_twinfs_loaded=
_bench_load_twinfs() {
	if [ -z "$_bench_twinfs_loaded" ]; then
		load_twinfs
		_bench_twinfs_loaded=1
	fi
}

# bench_note CONFIG TEXT: one line about how CONFIG was set up, for the
# report (/out/setup.txt, "config: text").
bench_note() {
	printf '%s: %s\n' "$1" "$2" >> /out/setup.txt
	log "$1: $2"
}

# bench_mounted CONFIG MNT: note the mount as /proc/mounts shows it.
bench_mounted() {
	bench_note "$1" "mounted: $(awk -v m="$2" '$2 == m { print $1, "type", $3, "(" $4 ")" }' /proc/mounts)"
}

bench_setup_twinfs() {
	local mnt=$1 dev=$2
	_bench_load_twinfs
	run "$TWINFS_BIN/mkfs.twinfs" -f -q "$dev"
	mkdir -p "$mnt"
	run mount -t twinfs "$dev" "$mnt"
	bench_mounted twinfs "$mnt"
}

# MNT DISK PMEM.  BENCH_NVRAM_MOUNT=0 (plumbing tests with a module that
# refuses nvram=) mounts without the option; bench.sh then keeps the doc
# untouched and the report says so.
bench_setup_twinfs-nvram() {
	local mnt=$1 dev=$2 pmem=${3:-} size want opts='' i
	[ -n "$pmem" ] || die "twinfs-nvram: no NVDIMM device"
	# The pmem namespace may still be probing when the script starts.
	for ((i = 0; i < 20; i++)); do [ -b "$pmem" ] && break; sleep 0.5; done
	[ -b "$pmem" ] || die "twinfs-nvram: $pmem is not a block device (NVDIMM not seen by the guest?)"
	size=$(blockdev --getsize64 "$pmem") || die "blockdev --getsize64 $pmem"
	want=${BENCH_NVRAM_BYTES:-}
	[ -z "$want" ] || [ "$size" = "$want" ] ||
		die "twinfs-nvram: $pmem has $size bytes, expected $want"
	local q=/sys/block/${pmem#/dev/}/queue ns
	ns=$(basename "$(readlink -f "/sys/block/${pmem#/dev/}/device")")
	bench_note twinfs-nvram "NVDIMM $pmem: $((size >> 20)) MiB, $ns mode $(cat "/sys/bus/nd/devices/$ns/mode" 2>/dev/null || echo '?'), dax $(cat "$q/dax" 2>/dev/null || echo '?'), $(cat "$q/logical_block_size" 2>/dev/null || echo '?')-byte blocks"
	_bench_load_twinfs
	run "$TWINFS_BIN/mkfs.twinfs" -f -q "$dev"
	mkdir -p "$mnt"
	if [ "${BENCH_NVRAM_MOUNT:-1}" = 1 ]; then
		opts=nvram=$pmem
	else
		bench_note twinfs-nvram "WARNING: mounted WITHOUT nvram= (BENCH_NVRAM_MOUNT=0): not the NVRAM configuration"
	fi
	dmesg_mark
	log "+ mount -t twinfs ${opts:+-o $opts} $dev $mnt"
	mount -t twinfs ${opts:+-o "$opts"} "$dev" "$mnt" ||
		die "mount -t twinfs ${opts:+-o $opts} $dev failed (exit $?); kernel: $(dmesg_since | grep -i twinfs | tail -2 | tr '\n' ' ')"
	bench_mounted twinfs-nvram "$mnt"
	# What the module said about it (the change memory it attached).
	dmesg_since | grep -i 'twinfs' | head -5 | while IFS= read -r l; do
		bench_note twinfs-nvram "kernel: $l"
	done
}

bench_setup_ext4() {
	local mnt=$1 dev=$2
	run modprobe ext4
	# No lazy init: no background inode-table zeroing during the run.
	run mkfs.ext4 -q -F -E lazy_itable_init=0,lazy_journal_init=0 "$dev"
	mkdir -p "$mnt"
	run mount -t ext4 "$dev" "$mnt"
	bench_mounted ext4 "$mnt"
}
