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
# Adding a configuration later (twinfs with NVRAM change memory, twinfs
# mirrored over TCP / RDMA, ext4 on DRBD): add its name to BENCH_CONFIGS and
# the three entries above.  Mirrored ones need a partner guest, which
# bench.sh does not boot yet: they will add a BENCH_PEER[name] entry and a
# second vm_start on the UDP link (see /work/shared/vm-notes.md).

BENCH_CONFIGS_ALL=(twinfs ext4)
BENCH_BASELINE=ext4
BENCH_DISK_SIZE=4G

declare -A BENCH_DESC=(
	[twinfs]="twinfs on a local virtio disk (no change memory yet)"
	[ext4]="ext4 on a local virtio disk (defaults: data=ordered, barriers)"
)
declare -A BENCH_DISKS=([twinfs]=1 [ext4]=1)
declare -A BENCH_NVDIMM=()

# Workloads: fsbench's (tests/vm/bench/fsbench.c); their sizes come from
# bench.sh (BENCH_SECS, BENCH_FILES, BENCH_DIRS, BENCH_UNTAR_REPS,
# BENCH_FILE_MB).
BENCH_WORKLOADS_ALL=(create_fsync create_fsync_dir write_fsync untar)
BENCH_THREADS_ALL=(1 8)

declare -A BENCH_WORKLOAD_DESC=(
	[create_fsync]="open(O_CREAT|O_EXCL) + fsync + close of a new empty file"
	[create_fsync_dir]="create_fsync plus an fsync of the file's directory (POSIX-durable name)"
	[write_fsync]="pwrite 4 KiB at a random aligned offset of a 64 MiB file + fsync"
	[untar]="files of 1-16 KiB in 50 directories, no fsync, then one syncfs"
)

# --- guest side --------------------------------------------------------

_bench_twinfs_loaded=
bench_setup_twinfs() {
	local mnt=$1 dev=$2
	if [ -z "$_bench_twinfs_loaded" ]; then
		load_twinfs
		_bench_twinfs_loaded=1
	fi
	run "$TWINFS_BIN/mkfs.twinfs" -f -q "$dev"
	mkdir -p "$mnt"
	run mount -t twinfs "$dev" "$mnt"
}

bench_setup_ext4() {
	local mnt=$1 dev=$2
	run modprobe ext4
	# No lazy init: no background inode-table zeroing during the run.
	run mkfs.ext4 -q -F -E lazy_itable_init=0,lazy_journal_init=0 "$dev"
	mkdir -p "$mnt"
	run mount -t ext4 "$dev" "$mnt"
}
