# shellcheck shell=bash disable=SC2034
# The configurations of the mirroring benchmark (tests/vm/bench-mirror.sh,
# issue 6), sourced by it (host) and by tests/vm/guest/bench_mirror.sh
# (both guests).
#
# Two guests on a private UDP-socket network (vm-notes.md): node A
# (10.0.0.1, "bench-a"), where every measurement runs, and node B
# (10.0.0.2, "bench-b"), the partner: it runs the twinfs mirror target on
# its own NVDIMM, the secondary of DRBD, and the round-trip responders.
# Each QEMU is pinned to its own host core.
#
# A configuration declares:
#   BM_DESC[name]       one line for the report
#   BM_KIND[name]       twinfs-local | twinfs-mirror | ext4-drbd | ext4
#   BM_TRANSPORT[name]  twinfs-mirror only: the transport it must use, tcp
#                       or rdma; the guest checks the first word of
#                       /sys/fs/twinfs/<dev>/mirror against it after the
#                       mount and around every measurement
#   BM_MOUNT_OPTS[name] twinfs-mirror only: its mount options besides
#                       nvram=, partner=, cluster_key=, mirror=required
# The twinfs-mirror configurations share one file system on A (disk vdb,
# NVDIMM pmem1): B's target serves one owner at a time, so the one being
# measured is mounted and the others are not (a switch is a umount and a
# mount; with a single mirrored configuration it stays mounted).  A
# configuration the guest cannot set up (RDMA before the transport exists,
# no rxe device, ...) is skipped and reported "not available" with the
# reason.  Adding one is an entry below plus, for a new kind, its
# bm_prepare_/bm_mount_ functions in tests/vm/guest/bench_mirror.sh.
#
# The guarantee compared: every counted operation survives the loss of
# either node.  twinfs-mirror: the change record is in A's NVDIMM and, with
# mirror=required, written with FUA to B's NVDIMM before the call returns
# (an operation fails rather than return unmirrored).  ext4-drbd: ext4's
# fsync is a journal commit whose writes and flushes DRBD protocol C
# completes only once both nodes' disks have them.  twinfs-local and ext4
# are the unmirrored references (they survive a crash, not the loss of
# the node).

BM_CONFIGS_ALL=(twinfs-local twinfs-mirror-tcp twinfs-mirror-rdma ext4-drbd ext4)
BM_DRBD=ext4-drbd	# the peer of the same guarantee
BM_LOCAL=ext4		# the unmirrored reference
BM_TWINFS_LOCAL=twinfs-local
BM_DISK_SIZE=${BENCH_MIRROR_DISK_SIZE:-4G}	# as the local benchmark: 262144 inodes, room for 3 rounds of creates
BM_NVRAM_SIZE=${BENCH_NVRAM_SIZE:-64M}
BM_A=10.0.0.1
BM_B=10.0.0.2
BM_PORT=7790		# twinfs mirror target (RDMA: the target offers port + 1)
BM_DRBD_PORT=7789
BM_RTT_PORT=7792

declare -A BM_DESC=(
	[twinfs-local]="twinfs, change memory in a ${BM_NVRAM_SIZE/%M/ MiB} NVDIMM, no partner (nvram=/dev/pmem0)"
	[twinfs-mirror-tcp]="twinfs, change memory in a ${BM_NVRAM_SIZE/%M/ MiB} NVDIMM mirrored over TCP to B's NVDIMM (partner=, mirror=required)"
	[twinfs-mirror-rdma]="twinfs, change memory mirrored over RDMA (Soft-RoCE rxe0 on both guests, mirror_transport=auto, mirror=required)"
	[ext4-drbd]="ext4 on DRBD 8.4 protocol C between A and B (each node's own virtio disk)"
	[ext4]="ext4 on a local virtio disk of A (unmirrored reference)"
)
declare -A BM_KIND=([twinfs-local]=twinfs-local [twinfs-mirror-tcp]=twinfs-mirror
	[twinfs-mirror-rdma]=twinfs-mirror [ext4-drbd]=ext4-drbd [ext4]=ext4)
declare -A BM_TRANSPORT=([twinfs-mirror-tcp]=tcp [twinfs-mirror-rdma]=rdma)
# mirror_transport=tcp is added to the TCP configuration by the guest when
# the module knows the option (else it has no other transport anyway).
declare -A BM_MOUNT_OPTS=([twinfs-mirror-tcp]="" [twinfs-mirror-rdma]="mirror_transport=auto")

# A's devices (fixed, whatever the configurations run): vda twinfs-local,
# vdb twinfs-mirror, vdc ext4, vdd DRBD's backing disk; NVDIMMs pmem0
# (twinfs-local) and pmem1 (twinfs-mirror).  B: vda DRBD's backing disk,
# pmem0 the mirror target's copy.
BM_A_DISKS=(twinfs-local twinfs-mirror ext4 drbd)
declare -A BM_A_DEV=([twinfs-local]=/dev/vda [twinfs-mirror]=/dev/vdb
	[ext4]=/dev/vdc [drbd]=/dev/vdd)
BM_B_DRBD_DISK=/dev/vda

BM_WORKLOADS_ALL=(create_fsync_dir write_fsync)
BM_THREADS_ALL=(1 8)
