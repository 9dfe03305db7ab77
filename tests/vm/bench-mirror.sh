#!/usr/bin/env bash
# The mirroring benchmark (issue 6; `make bench`, or BENCH_SUITE=mirror
# make bench for this one alone): two guests, A measured and B its
# partner, on a private UDP-socket network, each QEMU pinned to its own
# host core.  In ONE run: create+fsync (file and directory fsynced) and
# 4 KiB write+fsync with 1 and 8 threads on twinfs local-only, twinfs
# mirrored over TCP, twinfs mirrored over RDMA (when available), ext4 on
# DRBD protocol C between A and B, and local ext4 (configurations:
# tests/vm/bench/mirror_configs.sh; guest half: tests/vm/guest/
# bench_mirror.sh), interleaved round after round; the TCP (and RDMA)
# round trip A-B measured before and after.  Then the medians, each twinfs
# configuration's ratio to DRBD and to local ext4 against the targets, the
# 8/1-thread ratios, (mirrored p50 - local p50) / round trip, a plot and
# the "Mirroring" results section of Documentation/benchmarks.md.
#
# Environment:
#   BENCH_QUICK=1     development run (~3 min): 1 round, 1 s measurements;
#                     the doc is not touched unless BENCH_DOC=1
#   BENCH_ROUNDS      rounds (3; quick 1)
#   BENCH_SECS        seconds per measurement (4; quick 1)
#   BENCH_CONFIGS     ("twinfs-local twinfs-mirror-tcp twinfs-mirror-rdma
#                     ext4-drbd ext4")
#   BENCH_WORKLOADS   ("create_fsync_dir write_fsync")
#   BENCH_THREADS     ("1 8")
#   BENCH_FILE_MB     write_fsync's file (16 MiB: written through every
#                     mirror at set-up)
#   BENCH_MIRROR_DISK_SIZE  the virtio disks (4G, as bench.sh: with 1G,
#                     twinfs-local runs out of inodes in the second round)
#   BENCH_RXE         Soft-RoCE on both guests (default 1: the RDMA round
#                     trip is measured, and the RDMA configuration runs
#                     once twinfs.ko has mirror_transport=)
#   BENCH_CPU_A, BENCH_CPU_B  host cores of A's and B's QEMU (0, 1)
#   BENCH_DOC=0|1     update Documentation/benchmarks.md and
#                     benchmarks-mirror.png (1; quick runs 0)
#   BENCH_REV         measure this commit's module and tools, built apart
#                     (as in bench.sh)
#   BENCH_MAX_QEMU    wait (up to 5 min) while this many QEMUs or more
#                     already run (1); hold /tmp/twinfs-vm.lock around the run
#   BENCH_TIMEOUT     wall-clock limit of each guest (1500 s)
# Raw results and logs: build/bench-mirror/.
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd -P)
src=$(cd "$here/../.." && pwd -P)
build=${TWINFS_BUILD:-$src/build}
export TWINFS_BUILD=$build
export VM_LOGDIR=$build/bench-mirror/logs VM_TMPDIR=$build/bench-mirror/tmp
# shellcheck source=tests/vm/lib.sh
. "$here/lib.sh"
# shellcheck source=tests/vm/bench/mirror_configs.sh
. "$here/bench/mirror_configs.sh"

say() { printf 'bench-mirror: %s\n' "$*" >&2; }

quick=${BENCH_QUICK:-0}
if [ "$quick" = 1 ]; then
	rounds=${BENCH_ROUNDS:-1} secs=${BENCH_SECS:-1} doc=${BENCH_DOC:-0}
else
	rounds=${BENCH_ROUNDS:-3} secs=${BENCH_SECS:-4} doc=${BENCH_DOC:-1}
fi
configs=${BENCH_CONFIGS:-${BM_CONFIGS_ALL[*]}}
workloads=${BENCH_WORKLOADS:-${BM_WORKLOADS_ALL[*]}}
threads=${BENCH_THREADS:-${BM_THREADS_ALL[*]}}
file_mb=${BENCH_FILE_MB:-16}
rxe=${BENCH_RXE:-1}
cpu_a=${BENCH_CPU_A:-0} cpu_b=${BENCH_CPU_B:-1}
max_qemu=${BENCH_MAX_QEMU:-1}
timeout=${BENCH_TIMEOUT:-1500}
out=$build/bench-mirror
docfile=$src/Documentation/benchmarks.md
plotfile=$src/Documentation/benchmarks-mirror.png
for c in $configs; do
	[ -n "${BM_KIND[$c]:-}" ] || { say "unknown configuration $c"; exit 2; }
done

# --- build ---------------------------------------------------------------
mkdir -p "$out"
if [ -n "${BENCH_REV:-}" ]; then
	sha=$(git -C "$src" rev-parse --verify -q "${BENCH_REV}^{commit}") ||
		{ say "BENCH_REV=$BENCH_REV is not a commit"; exit 2; }
	rdir=$build/bench/rev-${sha:0:12}
	if [ ! -e "$rdir/kmod/twinfs.ko" ] || [ ! -e "$rdir/build/mkfs.twinfs" ] ||
		[ ! -e "$rdir/build/fsck.twinfs" ]; then
		say "building twinfs at ${sha:0:12} in $rdir"
		rm -rf "$rdir" && mkdir -p "$rdir" &&
			git -C "$src" archive "$sha" | tar -x -C "$rdir" &&
			make -C "$rdir" module > "$rdir.log" 2>&1 &&
			make -C "$rdir" build/mkfs.twinfs build/fsck.twinfs >> "$rdir.log" 2>&1 ||
			{ say "building $BENCH_REV failed (see $rdir.log)"; exit 1; }
	fi
	TWINFS_KO=$rdir/kmod/twinfs.ko
	TWINFS_BIN=$rdir/build
	module="commit ${sha:0:12} (BENCH_REV=$BENCH_REV, built apart from the work tree)"
else
	if [ ! -e "$TWINFS_KO" ] || [ ! -e "$TWINFS_BIN/mkfs.twinfs" ] ||
		[ ! -e "$TWINFS_BIN/fsck.twinfs" ]; then
		say "building twinfs (make)"
		make -C "$src" module user || { say "make failed"; exit 1; }
	fi
	module="work tree at $(git -C "$src" rev-parse --short HEAD 2>/dev/null || echo '?')"
	git -C "$src" diff --quiet HEAD -- kmod include 2>/dev/null ||
		module+=" with uncommitted kmod/include changes"
fi
module+=", twinfs.ko sha256 $(sha256sum "$TWINFS_KO" | cut -c1-12)"
has_transport=0
grep -qa 'mirror_transport' "$TWINFS_KO" && has_transport=1
command -v drbdadm > /dev/null ||
	{ say "no drbdadm on the host (drbd-utils; scripts/install-deps.sh)"; exit 1; }
for p in fsbench netrtt; do
	if [ ! -x "$out/$p" ] || [ "$here/bench/$p.c" -nt "$out/$p" ]; then
		gcc -O2 -Wall -Wextra -Werror -pthread -o "$out/$p" "$here/bench/$p.c" ||
			{ say "cannot build $p"; exit 1; }
	fi
done

# --- images --------------------------------------------------------------
disks_a=()
for d in "${BM_A_DISKS[@]}"; do
	vm_image "$VM_TMPDIR/a-$d.img" "$BM_DISK_SIZE"
	disks_a+=(--disk "$VM_TMPDIR/a-$d.img")
done
vm_image "$VM_TMPDIR/b-drbd.img" "$BM_DISK_SIZE"
for n in a-local a-mirror b-target; do
	vm_image "$VM_TMPDIR/nv-$n.img" "$BM_NVRAM_SIZE"
	# Zeros written, not sparse: no host block allocation on first store.
	dd if=/dev/zero of="$VM_TMPDIR/nv-$n.img" bs=1M \
		count=$(($(stat -c %s "$VM_TMPDIR/nv-$n.img") >> 20)) conv=notrunc,fsync status=none ||
		{ say "cannot write nv-$n.img"; exit 1; }
done
nvbytes=$(stat -c %s "$VM_TMPDIR/nv-a-local.img")
key=$(head -c 32 /dev/urandom | xxd -p -c 64)

# --- a quiet machine -----------------------------------------------------
waited=0
while [ "$(pgrep -c qemu-system)" -ge "$max_qemu" ] && [ $waited -lt 300 ]; do
	say "$(pgrep -c qemu-system) QEMUs already running, waiting 30 s (at most 300 s in all)"
	sleep 30
	waited=$((waited + 30))
done
# Two free UDP ports on 127.0.0.1 for the link.
pa=
for _ in $(seq 100); do
	p=$((20000 + 2 * (($$ * 7 + RANDOM) % 20000)))
	ss -Huan 2>/dev/null | awk '{ print $4 }' | grep -qE ":($p|$((p + 1)))\$" || { pa=$p; break; }
done
[ -n "$pa" ] || { say "no free UDP ports"; exit 1; }
pb=$((pa + 1))

meta=$out/meta.env
{
	echo "date=$(date -u '+%Y-%m-%d %H:%M UTC')"
	echo "module=$module"
	echo "qemu=$(qemu-system-x86_64 --version | sed -n '1s/.*version \([^ ]*\).*/\1/p')"
	echo "host_cpu=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1)"
	echo "host_cpus=$(nproc)"
	echo "host_fs=$(df -T "$VM_TMPDIR" | awk 'NR == 2 { print $2 }')"
	echo "pin=A on host CPU $cpu_a, B on host CPU $cpu_b"
	echo "disk_size=${BM_DISK_SIZE/%G/ GiB}"
	echo "nvram_bytes=$nvbytes"
	echo "secs=$secs"
	echo "rounds=$rounds"
	echo "file_mb=$file_mb"
	echo "quick=$quick"
	echo "configs=$configs"
	echo "has_transport=$has_transport"
	echo "drbd_utils=$(dpkg-query -W -f='${Version}' drbd-utils 2>/dev/null)"
} > "$meta"

loadlog=$out/other-qemus.log
: > "$loadlog"
(
	while sleep 5; do
		echo "$(date +%s) $(($(pgrep -c qemu-system) - 2)) $(cut -d' ' -f1 /proc/loadavg)"
	done
) >> "$loadlog" &
sampler=$!
trap '_vm_cleanup; kill "$sampler" 2>/dev/null' EXIT

common=(--env "BENCH_KEY=$key" --env "BENCH_RXE=$rxe" --env "BENCH_NETRTT=$out/netrtt"
	--env "BENCH_NVRAM_BYTES=$nvbytes" --env "BENCH_HAS_TRANSPORT=$has_transport"
	--mem 1024M --smp 1 --timeout "$timeout")
start=$(date +%s)
say "A: $configs; rounds=$rounds secs=$secs; A on CPU $cpu_a, B on CPU $cpu_b; link UDP $pa/$pb"
vm_start b "$src/tests/vm/guest/bench_mirror.sh" --disk "$VM_TMPDIR/b-drbd.img" \
	--nvdimm "$VM_TMPDIR/nv-b-target.img" --udp "$pb:$pa:52:54:00:76:00:02" \
	--pin "$cpu_b" "${common[@]}" --env BM_ROLE=partner ||
	{ say "cannot start B: $VM_REASON"; exit 1; }
vm_start a "$src/tests/vm/guest/bench_mirror.sh" "${disks_a[@]}" \
	--nvdimm "$VM_TMPDIR/nv-a-local.img" \
	--qemu -object --qemu "memory-backend-file,id=nv1,share=on,mem-path=$VM_TMPDIR/nv-a-mirror.img,size=$nvbytes" \
	--qemu -device --qemu nvdimm,memdev=nv1,id=nvd1 \
	--udp "$pa:$pb:52:54:00:76:00:01" --pin "$cpu_a" "${common[@]}" \
	--env BM_ROLE=owner --env "BENCH_CONFIGS=$configs" \
	--env "BENCH_WORKLOADS=$workloads" --env "BENCH_THREADS=$threads" \
	--env "BENCH_ROUNDS=$rounds" --env "BENCH_SECS=$secs" \
	--env "BENCH_FILE_MB=$file_mb" --env "BENCH_FSBENCH=$out/fsbench" ||
	{ say "cannot start A: $VM_REASON"; exit 1; }
oa=$(vm_out a) ob=$(vm_out b)

# B's readiness to A; B's stop once A is done.
while [ ! -e "$ob/ready" ]; do
	if [ -e "$ob/qemu.rc" ] || [ -e "$oa/qemu.rc" ]; then
		say "a guest ended before B was ready"
		break
	fi
	sleep 0.5
done
if [ -e "$ob/ready" ]; then
	sed 's/^rxe=/peer_rxe=/' "$ob/ready" > "$oa/peer-ready.tmp" &&
		mv "$oa/peer-ready.tmp" "$oa/peer-ready"
fi
vm_wait a
rc_a=$?
reason_a=$VM_REASON
: > "$ob/stop"
vm_wait b
rc_b=$?
reason_b=$VM_REASON
kill "$sampler" 2>/dev/null
wait "$sampler" 2>/dev/null
wall=$(($(date +%s) - start))
for f in results.jsonl rtt.jsonl setup.txt unavailable.txt guest-info.json; do
	rm -f "$out/$f"
	[ -e "$oa/$f" ] && cp "$oa/$f" "$out/$f"
done
for f in target-final.txt drbd-final.txt; do
	[ -e "$ob/$f" ] && echo "partner: after the run: $f: \`$(cat "$ob/$f")\`" >> "$out/setup.txt"
done
if [ $rc_a != 0 ] || [ $rc_b != 0 ]; then
	say "A: $reason_a"
	say "B: $reason_b"
	say "logs: $oa, $ob"
	[ -s "$out/results.jsonl" ] && python3 "$here/bench/report_mirror.py" "$out" --meta "$meta" || true
	say "the doc is not updated"
	exit 1
fi

max_other=$(awk 'BEGIN { m = 0 } $2 > m { m = $2 } END { print m }' "$loadlog")
samples=$(wc -l < "$loadlog")
if [ "$max_other" -le 0 ]; then
	other="none seen (no other QEMU in $samples samples every 5 s)"
else
	other="other guests ran: up to $max_other other QEMU(s) at once ($(awk '$2 > 0 { n++ } END { print n + 0 }' "$loadlog") of $samples samples every 5 s)"
fi
{
	echo "wall_secs=$wall"
	echo "other_load=$other"
} >> "$meta"

report=(python3 "$here/bench/report_mirror.py" "$out" --meta "$meta" --md "$out/results.md")
if [ "$doc" = 1 ]; then
	report+=(--doc "$docfile" --plot "$plotfile" --plot-link "$(basename "$plotfile")")
else
	report+=(--plot "$out/bench-mirror.png")
fi
"${report[@]}" || exit 1
rm -f "$VM_TMPDIR"/*.img
say "done in ${wall}s; raw results in $out"
