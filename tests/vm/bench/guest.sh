# shellcheck shell=bash disable=SC2153
# Guest half of tests/vm/bench.sh: prepares every configuration, then runs
# BENCH_ROUNDS rounds; in each round every (workload, threads) pair runs on
# each configuration in turn (A, B, A, B, ...), with a sync and a page-cache
# drop before every measurement.  One JSON line per measurement goes to
# /out/results.jsonl (fsbench's output).
#
# Environment (from bench.sh): BENCH_CONFIGS, BENCH_DEVS ("name=/dev/vda
# name2=/dev/vdb,/dev/vdc"), BENCH_WORKLOADS, BENCH_THREADS, BENCH_ROUNDS,
# BENCH_SECS, BENCH_FILES, BENCH_DIRS, BENCH_UNTAR_REPS, BENCH_FILE_MB,
# BENCH_FSBENCH; BENCH_NVRAM_MOUNT, BENCH_NVRAM_BYTES (twinfs-nvram).
# How each configuration was set up (mount lines, the NVDIMM, what the module
# logged) goes to /out/setup.txt; /sys/fs/twinfs/<dev>/ of each twinfs
# configuration, after the measurements, to /out/sysfs-<config>.txt.
# shellcheck source=tests/vm/guest-lib.sh
. "$TWINFS_GUEST_LIB"
# shellcheck source=tests/vm/bench/configs.sh
. "$(dirname "$VM_SCRIPT")/configs.sh"

out=/out/results.jsonl
: > "$out"
: > /out/setup.txt
declare -A devs=()
for e in $BENCH_DEVS; do
	devs[${e%%=*}]=${e#*=}
done

{
	printf '{"guest_kernel": "%s", "guest_cpus": %s, "guest_mem_mb": %s}\n' \
		"$(uname -r)" "$(nproc)" \
		"$(awk '/MemTotal/ { print int($2 / 1024) }' /proc/meminfo)"
} > /out/guest-info.json

for c in $BENCH_CONFIGS; do
	[ -n "${devs[$c]:-}" ] || die "no device for configuration $c"
	# shellcheck disable=SC2046
	"bench_setup_$c" "/bench/$c" $(tr , ' ' <<< "${devs[$c]}")
	# The write workload's 64 MiB file, written once per configuration.
	log "preparing $c: $BENCH_FILE_MB MiB file for write_fsync"
	"$BENCH_FSBENCH" -w write_fsync -d "/bench/$c/wfile" -m "$BENCH_FILE_MB" \
		-s 0.01 -c "$c" > /dev/null || die "preparing the write file on $c"
done
log "mounted: $(mount | grep ' /bench/' | tr '\n' ';')"

for ((r = 1; r <= BENCH_ROUNDS; r++)); do
	log "round $r of $BENCH_ROUNDS"
	for w in $BENCH_WORKLOADS; do
		for t in $BENCH_THREADS; do
			for c in $BENCH_CONFIGS; do
				case $w in
				write_fsync) dir=/bench/$c/wfile ;;
				*) dir=/bench/$c/$w-r$r-t$t ;;
				esac
				sync
				echo 3 > /proc/sys/vm/drop_caches
				line=$("$BENCH_FSBENCH" -w "$w" -d "$dir" -t "$t" \
					-s "$BENCH_SECS" -f "$BENCH_FILES" \
					-D "$BENCH_DIRS" -R "$BENCH_UNTAR_REPS" \
					-m "$BENCH_FILE_MB" \
					-c "$c" -r "$r") ||
					die "fsbench $w -t $t on $c (round $r) failed"
				echo "$line" >> "$out"
				log "$line"
			done
		done
	done
done

# What twinfs logged besides its mount messages (noted at setup): an error
# or warning during the measurements belongs next to the numbers.
dmesg --notime | grep -E '^twinfs \(' | grep -Ev 'mounted: |is new; formatting' |
	sort | uniq -c | sed 's/^ *\([0-9]*\) \(.*\)/\2 (x\1)/' | head -10 |
	while IFS= read -r l; do
		bench_note twinfs "kernel during the run: $l"
	done
for c in $BENCH_CONFIGS; do
	case $c in
	twinfs*)
		d=/sys/fs/twinfs/$(basename "${devs[$c]%%,*}")
		if [ -d "$d" ]; then
			for f in "$d"/*; do
				[ -f "$f" ] && printf '%s=%s\n' "$(basename "$f")" "$(tr '\n' ' ' < "$f" | sed 's/ $//')"
			done > "/out/sysfs-$c.txt" 2>/dev/null
			log "$c: $(tr '\n' ' ' < "/out/sysfs-$c.txt")"
			# The change memory's and the CPs' counters, if any.
			cm=$(grep -Ei '^[a-z_]*(cp|cm|nvram|record|commit|flush|seq|lane)[a-z_]*=' \
				"/out/sysfs-$c.txt" | tr '\n' ' ' | sed 's/ $//')
			[ -z "$cm" ] || bench_note "$c" "after the run: $cm"
		fi
		;;
	esac
	run df -h "/bench/$c"
	run df -i "/bench/$c"
	run umount "/bench/$c"
done
# Numbers from a damaged file system would mean nothing.
for c in $BENCH_CONFIGS; do
	case $c in
	twinfs*) fsck_clean "${devs[$c]%%,*}" ;;
	esac
done
log "bench: done"
