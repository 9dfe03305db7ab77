#!/usr/bin/env bash
# The twinfs benchmark (`make bench`): one guest, every configuration of
# tests/vm/bench/configs.sh on its own virtio disk (twinfs-nvram: plus a
# 64 MiB file-backed NVDIMM, /dev/pmem0, as its change memory), every
# workload with 1 and 8 threads, configurations interleaved round after
# round; then the medians, the ratios twinfs-nvram/ext4 and 8/1 threads
# against the targets, a plot, and the results section of
# Documentation/benchmarks.md.  See that file.
#
# Environment:
#   BENCH_QUICK=1      smoke run (~1 min): 2 rounds, short measurements; does
#                      not touch the doc unless BENCH_DOC=1
#   BENCH_ROUNDS       rounds (3; quick 2)
#   BENCH_SECS         seconds per create/write measurement (4; quick 1)
#   BENCH_FILES        untar files (2000; quick 400); BENCH_DIRS (50)
#   BENCH_UNTAR_REPS   untar trees per measurement, each with its syncfs
#                      (3; quick 1): one tree takes only about a second
#   BENCH_CONFIGS      configurations, in run order ("twinfs-nvram ext4";
#                      "twinfs" is twinfs without nvram=)
#   BENCH_WORKLOADS    ("create_fsync_dir write_fsync untar"; create_fsync,
#                      the file's fsync without the directory's, on request)
#   BENCH_THREADS      ("1 8")
#   BENCH_CPU          host CPU the guest's QEMU is pinned to (0)
#   BENCH_SMP          guest vCPUs (1: a pinned QEMU has one host core anyway)
#   BENCH_DOC=0|1      update Documentation/benchmarks.md and its plot
#                      (default 1, quick runs 0)
#   BENCH_MAX_QEMU     wait (polling every 30 s) while this many or more
#                      QEMUs run on the machine (2)
#   BENCH_REV          benchmark the module and tools of this commit, built
#                      in build/bench/rev-<sha>/ (default: the work tree's
#                      kmod/twinfs.ko and build/, made only when missing)
#   BENCH_TIMEOUT      wall-clock limit of the guest (1200 s)
#   BENCH_NVRAM_SIZE   the NVDIMM of twinfs-nvram (64M; the doc's figures
#                      are of 64M)
#   BENCH_NVRAM_MOUNT=0  mount twinfs-nvram WITHOUT nvram= (the NVDIMM is
#                      still attached): plumbing tests with a module that
#                      refuses the option; the doc is never updated then
# Raw results, logs and the summary stay in build/bench/.
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd -P)
src=$(cd "$here/../.." && pwd -P)
build=${TWINFS_BUILD:-$src/build}
export TWINFS_BUILD=$build
export VM_LOGDIR=$build/bench/logs VM_TMPDIR=$build/bench/tmp
# shellcheck source=tests/vm/lib.sh
. "$here/lib.sh"
# shellcheck source=tests/vm/bench/configs.sh
. "$here/bench/configs.sh"

quick=${BENCH_QUICK:-0}
if [ "$quick" = 1 ]; then
	rounds=${BENCH_ROUNDS:-2} secs=${BENCH_SECS:-1} files=${BENCH_FILES:-400}
	reps=${BENCH_UNTAR_REPS:-1}
	doc=${BENCH_DOC:-0}
else
	rounds=${BENCH_ROUNDS:-3} secs=${BENCH_SECS:-4} files=${BENCH_FILES:-2000}
	reps=${BENCH_UNTAR_REPS:-3}
	doc=${BENCH_DOC:-1}
fi
nvram_mount=${BENCH_NVRAM_MOUNT:-1}
if [ "$nvram_mount" != 1 ] && [ "$doc" = 1 ]; then
	say "BENCH_NVRAM_MOUNT=$nvram_mount: not the NVRAM configuration, the doc stays as it is"
	doc=0
fi
dirs=${BENCH_DIRS:-50}
file_mb=${BENCH_FILE_MB:-64}
configs=${BENCH_CONFIGS:-${BENCH_CONFIGS_ALL[*]}}
workloads=${BENCH_WORKLOADS:-${BENCH_WORKLOADS_ALL[*]}}
threads=${BENCH_THREADS:-${BENCH_THREADS_ALL[*]}}
cpu=${BENCH_CPU:-0}
smp=${BENCH_SMP:-1}
max_qemu=${BENCH_MAX_QEMU:-2}
out=$build/bench
fsbench=$out/fsbench
docfile=$src/Documentation/benchmarks.md
plotfile=$src/Documentation/benchmarks-local.png

say() { printf 'bench: %s\n' "$*" >&2; }

# --- build ---------------------------------------------------------------
mkdir -p "$out"
if [ -n "${BENCH_REV:-}" ]; then
	# A committed revision, built apart from the work tree: in-progress
	# edits there do not leak into the numbers.
	sha=$(git -C "$src" rev-parse --verify -q "${BENCH_REV}^{commit}") ||
		{ say "BENCH_REV=$BENCH_REV is not a commit"; exit 2; }
	rdir=$out/rev-${sha:0:12}
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
		make -C "$src" || { say "make failed"; exit 1; }
	fi
	module="work tree at $(git -C "$src" rev-parse --short HEAD 2>/dev/null || echo '?')"
	git -C "$src" diff --quiet HEAD -- kmod include 2>/dev/null ||
		module+=" with uncommitted kmod/include changes"
	[ -z "$(find "$src/kmod" "$src/include" -newer "$TWINFS_KO" -name '*.[ch]' 2>/dev/null | head -1)" ] ||
		module+=", sources newer than twinfs.ko"
fi
module+=", twinfs.ko sha256 $(sha256sum "$TWINFS_KO" | cut -c1-12)"
if [ ! -x "$fsbench" ] || [ "$here/bench/fsbench.c" -nt "$fsbench" ]; then
	gcc -O2 -Wall -Wextra -Werror -pthread -o "$fsbench" "$here/bench/fsbench.c" ||
		{ say "cannot build fsbench"; exit 1; }
fi

# --- disks ---------------------------------------------------------------
disk_args=() devspec='' n=0 nvdimm='' nvbytes='' letters=abcdefghijklmnop
for c in $configs; do
	[ -n "${BENCH_DESC[$c]:-}" ] || { say "unknown configuration $c"; exit 2; }
	devs=
	for ((i = 0; i < ${BENCH_DISKS[$c]:-0}; i++)); do
		img=$VM_TMPDIR/$c-$i.img
		vm_image "$img" "$BENCH_DISK_SIZE"
		disk_args+=(--disk "$img")
		devs+=${devs:+,}/dev/vd${letters:n:1}
		n=$((n + 1))
	done
	if [ -n "${BENCH_NVDIMM[$c]:-}" ]; then
		[ -z "$nvdimm" ] || { say "only one configuration may use an NVDIMM"; exit 2; }
		nvdimm=$VM_TMPDIR/$c-nv.img
		vm_image "$nvdimm" "${BENCH_NVDIMM[$c]}"
		nvbytes=$(stat -c %s "$nvdimm")
		# Zeros written, not a sparse file: the guest's first store to
		# each page then costs no host block allocation.
		dd if=/dev/zero of="$nvdimm" bs=1M count=$((nvbytes >> 20)) \
			conv=notrunc,fsync status=none ||
			{ say "cannot write $nvdimm"; exit 1; }
		disk_args+=(--nvdimm "$nvdimm")
		devs+=${devs:+,}/dev/pmem0
	fi
	devspec+="${devspec:+ }$c=$devs"
done

# --- a quiet machine -----------------------------------------------------
# Other guests (the VM suite, other people's runs) share these cores; wait
# until fewer than max_qemu run, then record what else runs during ours.
while [ "$(pgrep -c qemu-system)" -ge "$max_qemu" ]; do
	say "$(pgrep -c qemu-system) QEMUs already running, waiting 30 s"
	sleep 30
done
others_at_start=$(pgrep -c qemu-system)

meta=$out/meta.env
{
	echo "date=$(date -u '+%Y-%m-%d %H:%M UTC')"
	echo "module=$module"
	echo "qemu=$(qemu-system-x86_64 --version | sed -n '1s/.*version \([^ ]*\).*/\1/p')"
	echo "host_cpu=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1)"
	echo "host_cpus=$(nproc)"
	echo "host_fs=$(df -T "$VM_TMPDIR" | awk 'NR == 2 { print $2 }')"
	echo "pin_cpu=$cpu"
	echo "disk_size=${BENCH_DISK_SIZE/%G/ GiB}"
	echo "secs=$secs"
	echo "files=$files"
	echo "dirs=$dirs"
	echo "reps=$reps"
	echo "file_mb=$file_mb"
	echo "quick=$quick"
	echo "configs=$configs"
	echo "nvram_bytes=$nvbytes"
	echo "nvram_mount=$nvram_mount"
} > "$meta"

# Samples the other QEMUs every 5 s while ours runs.
loadlog=$out/other-qemus.log
: > "$loadlog"
(
	while sleep 5; do
		echo "$(date +%s) $(($(pgrep -c qemu-system) - 1)) $(cut -d' ' -f1 /proc/loadavg)"
	done
) >> "$loadlog" &
sampler=$!
trap '_vm_cleanup; kill "$sampler" 2>/dev/null' EXIT

# Pin: the QEMU inherits this shell's CPU mask at fork; the mask is restored
# right after vm_start.
oldmask=$(taskset -p $$ | awk '{ print $NF }')
taskset -p -c "$cpu" $$ > /dev/null || { say "taskset failed"; exit 1; }
start=$(date +%s)
say "guest: $configs on $devspec; rounds=$rounds secs=$secs files=$files x $reps; pinned to CPU $cpu"
vm_start bench "$here/bench/guest.sh" "${disk_args[@]}" --smp "$smp" --mem 1024M \
	--timeout "${BENCH_TIMEOUT:-1200}" \
	--env "BENCH_CONFIGS=$configs" --env "BENCH_DEVS=$devspec" \
	--env "BENCH_WORKLOADS=$workloads" --env "BENCH_THREADS=$threads" \
	--env "BENCH_ROUNDS=$rounds" --env "BENCH_SECS=$secs" \
	--env "BENCH_FILES=$files" --env "BENCH_DIRS=$dirs" \
	--env "BENCH_UNTAR_REPS=$reps" \
	--env "BENCH_FILE_MB=$file_mb" --env "BENCH_FSBENCH=$fsbench" \
	--env "BENCH_NVRAM_MOUNT=$nvram_mount" --env "BENCH_NVRAM_BYTES=$nvbytes"
rc=$?
taskset -p "$oldmask" $$ > /dev/null
[ $rc = 0 ] || { kill "$sampler"; say "cannot start the guest: $VM_REASON"; exit 1; }
vm_wait bench
rc=$?
kill "$sampler" 2>/dev/null
wait "$sampler" 2>/dev/null
wall=$(($(date +%s) - start))
gout=$(vm_out bench)
rm -f "$out/results.jsonl" "$out/setup.txt" "$out"/sysfs-*.txt
[ -s "$gout/results.jsonl" ] && cp "$gout/results.jsonl" "$out/results.jsonl"
[ -e "$gout/setup.txt" ] && cp "$gout/setup.txt" "$out/setup.txt"
for f in "$gout"/sysfs-*.txt; do [ -e "$f" ] && cp "$f" "$out/"; done
if [ $rc != 0 ]; then
	say "guest failed: $VM_REASON (logs: $gout)"
	read -ra a <<< "$configs"; read -ra b <<< "$workloads"; read -ra c <<< "$threads"
	want=$((rounds * ${#a[@]} * ${#b[@]} * ${#c[@]}))
	got=0
	[ -e "$out/results.jsonl" ] && got=$(wc -l < "$out/results.jsonl")
	# Measurements that all completed are still worth a look (the guest
	# may have failed at the umount or fsck after them), but they do not
	# go into the doc.
	if [ "$got" = "$want" ]; then
		say "all $want measurements completed before the failure; summary below, doc not updated"
		python3 "$here/bench/report.py" "$out/results.jsonl" --meta "$meta" \
			--guest-info "$gout/guest-info.json" --setup "$out/setup.txt" \
			--baseline "$BENCH_BASELINE" --subject "$BENCH_SUBJECT" \
			--md "$out/results.md"
	else
		say "$got of $want measurements completed"
	fi
	exit 1
fi

max_other=$(awk 'BEGIN { m = 0 } $2 > m { m = $2 } END { print m }' "$loadlog")
busy=$(awk '$2 > 0 { n++ } END { print n + 0 }' "$loadlog")
samples=$(wc -l < "$loadlog")
if [ "$max_other" = 0 ] && [ "$others_at_start" = 0 ]; then
	other="none seen (no other QEMU in $samples samples every 5 s)"
else
	other="overlapped other guests: up to $max_other other QEMU(s) at once, in $busy of $samples samples every 5 s (host load average up to $(awk 'BEGIN { m = 0 } $3 > m { m = $3 } END { print m }' "$loadlog")); ratios are less affected than absolute numbers"
fi
{
	echo "wall_secs=$wall"
	echo "other_load=$other"
} >> "$meta"

report=(python3 "$here/bench/report.py" "$out/results.jsonl" --meta "$meta"
	--guest-info "$gout/guest-info.json" --setup "$out/setup.txt"
	--baseline "$BENCH_BASELINE" --subject "$BENCH_SUBJECT"
	--md "$out/results.md")
if [ "$doc" = 1 ]; then
	report+=(--doc "$docfile" --plot "$plotfile"
		--plot-link "$(basename "$plotfile")")
else
	report+=(--plot "$out/bench.png")
fi
"${report[@]}" || exit 1
rm -f "$VM_TMPDIR"/*.img	# up to a GiB each once written; kept after a failure
say "done in ${wall}s; raw results $out/results.jsonl, summary $out/results.md"
