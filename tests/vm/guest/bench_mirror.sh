# shellcheck shell=bash disable=SC2153
# Guest half of tests/vm/bench-mirror.sh, the mirroring benchmark (issue 6).
# Configurations: tests/vm/bench/mirror_configs.sh.
#
#   BM_ROLE=partner  node B (10.0.0.2): the round-trip responders (netrtt,
#                    ib_write_lat), Soft-RoCE when BENCH_RXE=1, the twinfs
#                    mirror target on /dev/pmem0, DRBD's secondary on
#                    /dev/vda; then /out/ready, and waits for the host's
#                    /out/stop to tear down.
#   BM_ROLE=owner    node A (10.0.0.1): waits for the host's /out/peer-ready
#                    (B is ready), measures the round trip to B, prepares
#                    every configuration, runs BENCH_ROUNDS rounds (every
#                    workload and thread count on every configuration in
#                    turn, a sync and a page-cache drop before each), measures
#                    the round trip again, tears down, fscks.
#
# A's results: /out/results.jsonl (fsbench lines; mirrored ones with the
# mirror's write count over the measurement), /out/rtt.jsonl, /out/setup.txt
# ("config: note"), /out/unavailable.txt ("config: reason").
# Environment: BM_ROLE, BENCH_CONFIGS, BENCH_WORKLOADS, BENCH_THREADS,
# BENCH_ROUNDS, BENCH_SECS, BENCH_FILE_MB, BENCH_FSBENCH, BENCH_NETRTT,
# BENCH_KEY (hex cluster key), BENCH_RXE (0/1), BENCH_NVRAM_BYTES,
# BENCH_HAS_TRANSPORT (1: twinfs.ko knows mirror_transport=).
# shellcheck source=tests/vm/guest-lib.sh
. "$TWINFS_GUEST_LIB"
# shellcheck source=tests/vm/bench/mirror_configs.sh
. "$(dirname "$VM_SCRIPT")/../bench/mirror_configs.sh"

role=${BM_ROLE:-}
tgt=/sys/fs/twinfs/mirror_target
key=/tmp/cluster.key
mdev=${BM_A_DEV[twinfs-mirror]}
msys=/sys/fs/twinfs/${mdev#/dev/}
ifc=
rxe=0

note() {	# CONFIG TEXT
	printf '%s: %s\n' "$1" "$2" >> /out/setup.txt
	log "$1: $2"
}

setup_net() {	# IP NAME
	net_up "$1"
	ifc=$NET_IFC
	run hostname "$2"
}

# rxe_up: Soft-RoCE on the link (vm-notes.md); 1 with a note on failure.
rxe_up() {
	local st _
	{ command -v rdma && modprobe crc32_generic && modprobe rdma_rxe &&
		modprobe rdma_cm && modprobe ib_uverbs &&
		rdma link add rxe0 type rxe netdev "$ifc"; } > /tmp/rxe.log 2>&1 ||
		{ log "rxe: $(tail -2 /tmp/rxe.log | tr '\n' ' ')"; return 1; }
	for _ in $(seq 50); do
		st=$(rdma link show rxe0/1 2>&1)
		[[ "$st" == *"state ACTIVE"* ]] && { log "rxe: $st"; return 0; }
		sleep 0.1
	done
	log "rxe0 is not ACTIVE: $st"
	return 1
}

load_modules() {
	local m _
	load_twinfs
	for m in libnvdimm nd_pmem nfit; do modprobe $m 2> /dev/null; done
	run modprobe drbd
	run modprobe ext4
	for m in "$@"; do
		for _ in $(seq 100); do [ -b "$m" ] && break; sleep 0.1; done
		[ -b "$m" ] || die "no $m (NVDIMM not seen by the guest?)"
		[ -z "${BENCH_NVRAM_BYTES:-}" ] ||
			[ "$(blockdev --getsize64 "$m")" = "$BENCH_NVRAM_BYTES" ] ||
			die "$m has $(blockdev --getsize64 "$m") bytes, expected $BENCH_NVRAM_BYTES"
	done
	printf '%s' "$BENCH_KEY" | xxd -r -p > "$key" && chmod 600 "$key" ||
		die "cannot write the cluster key"
}

drbd_conf() {	# A's backing disk, B's
	mkdir -p /run/lock /var/lib/drbd /etc/drbd.d
	cat > /etc/drbd.conf <<EOF
global { usage-count no; }
resource r0 {
	protocol C;
	device /dev/drbd0;
	meta-disk internal;
	on bench-a { disk $1; address $BM_A:$BM_DRBD_PORT; }
	on bench-b { disk $2; address $BM_B:$BM_DRBD_PORT; }
}
EOF
}

drbd_up() {
	drbd_conf "${BM_A_DEV[drbd]}" "$BM_B_DRBD_DISK"
	# A zeroed disk: nothing to confirm (stdin closed all the same).
	drbdadm create-md r0 < /dev/null > /tmp/drbd-md.log 2>&1 ||
		die "drbdadm create-md: $(tail -3 /tmp/drbd-md.log | tr '\n' ' ')"
	run drbdadm up r0
}

drbd_state() { sed -n 's/^ *0: \(cs:[^ ]* ro:[^ ]* ds:[^ ]* [A-C]\).*/\1/p' /proc/drbd; }

# --- node B -------------------------------------------------------------
partner() {
	setup_net "$BM_B" bench-b
	"$BENCH_NETRTT" server "$BM_RTT_PORT" &
	if [ "${BENCH_RXE:-0}" = 1 ] && rxe_up; then
		rxe=1
		if command -v ib_write_lat > /dev/null; then
			# One test per run of the server; A runs up to two.
			(for _ in 1 2; do ib_write_lat -d rxe0 -F -s 64 -n 1000 > /dev/null 2>&1 || sleep 1; done) &
		fi
	fi
	load_modules /dev/pmem0
	dmesg_mark
	echo "start $BM_PORT /dev/pmem0 $key" > "$tgt" ||
		die "cannot start the mirror target: $(dmesg_since | tail -2 | tr '\n' ' ')"
	log "target: $(cat "$tgt")"
	drbd_up
	echo "rxe=$rxe" > /out/ready.tmp && mv /out/ready.tmp /out/ready
	local n=0
	while [ ! -e /out/stop ]; do
		sleep 0.5
		n=$((n + 1))
		[ $((n % 120)) != 0 ] || log "target: $(cat "$tgt"); drbd: $(drbd_state)"
	done
	cat "$tgt" > /out/target-final.txt
	drbd_state > /out/drbd-final.txt
	log "target: $(cat "$tgt"); drbd: $(drbd_state)"
	run drbdadm down r0
	run sh -c "echo stop > $tgt"
	log "partner: done"
}

# --- node A: configurations --------------------------------------------

declare -A avail=() wfile=()
mounted_mirror=	# the twinfs-mirror configuration mounted now, if any

unavailable() {	# CONFIG REASON
	printf '%s: %s\n' "$1" "$2" >> /out/unavailable.txt
	log "$1: NOT AVAILABLE: $2"
}

mounted_line() {	# MNT
	awk -v m="$1" '$2 == m { print $1, "type", $3, "(" $4 ")" }' /proc/mounts
}

mirror_line() { cat "$msys/mirror" 2> /dev/null; }
mirror_writes() { sed -n 's/.* writes=\([0-9]*\).*/\1/p' "$msys/mirror" 2> /dev/null; }

# check_mirror CONFIG: mirrored, over the configuration's transport.
check_mirror() {
	local l w1 w3
	l=$(mirror_line)
	read -r w1 _ w3 _ <<< "$l"
	[ "$w3" = mirrored ] && [ "$w1" = "${BM_TRANSPORT[$1]}" ]
}

# mount_mirror CONFIG: mount the shared twinfs-mirror file system as
# CONFIG (after a umount of the other one); 1 when it does not mirror over
# CONFIG's transport within 120 s.
mount_mirror() {
	local c=$1 opts t0 i l
	[ "$mounted_mirror" = "$c" ] && return 0
	if [ -n "$mounted_mirror" ]; then
		run umount /bench/mirror
		mounted_mirror=
	fi
	opts="nvram=/dev/pmem1,partner=$BM_B:$BM_PORT,cluster_key=$key,mirror=required"
	[ -z "${BM_MOUNT_OPTS[$c]}" ] || opts+=",${BM_MOUNT_OPTS[$c]}"
	[ "$c" != twinfs-mirror-tcp ] || [ "${BENCH_HAS_TRANSPORT:-0}" != 1 ] ||
		opts+=",mirror_transport=tcp"
	mkdir -p /bench/mirror
	dmesg_mark
	log "+ mount -t twinfs -o $opts $mdev /bench/mirror"
	mount -t twinfs -o "$opts" "$mdev" /bench/mirror || {
		unavailable "$c" "mount -o $opts failed: $(dmesg_since | grep -i twinfs | tail -1)"
		return 1
	}
	mounted_mirror=$c
	t0=$(date +%s%N)
	for ((i = 0; i < 600; i++)); do
		check_mirror "$c" && break
		sleep 0.2
	done
	l=$(mirror_line)
	if ! check_mirror "$c"; then
		unavailable "$c" "not mirrored over ${BM_TRANSPORT[$c]} 120 s after the mount: '$l'; kernel: $(dmesg_since | grep -i mirror | tail -1)"
		run umount /bench/mirror
		mounted_mirror=
		return 1
	fi
	log "$c: '$l' $((($(date +%s%N) - t0) / 1000000)) ms after the mount"
	return 0
}

bm_prepare() {	# CONFIG: format, mount, note; 1 if not available
	local c=$1 opts
	case ${BM_KIND[$c]} in
	twinfs-local)
		run "$TWINFS_BIN/mkfs.twinfs" -f -q "${BM_A_DEV[twinfs-local]}"
		mkdir -p "/bench/$c"
		dmesg_mark
		run mount -t twinfs -o nvram=/dev/pmem0 "${BM_A_DEV[twinfs-local]}" "/bench/$c"
		note "$c" "mounted: \`$(mounted_line "/bench/$c")\`"
		wfile[$c]=/bench/$c/wfile
		;;
	twinfs-mirror)
		if [ "${BM_TRANSPORT[$c]}" = rdma ]; then
			[ "${BENCH_HAS_TRANSPORT:-0}" = 1 ] || {
				unavailable "$c" "twinfs.ko has no mirror_transport= option (the RDMA transport has not landed)"
				return 1
			}
			[ "$rxe" = 1 ] || {
				unavailable "$c" "no Soft-RoCE device on both guests (rxe0; BENCH_RXE=${BENCH_RXE:-0})"
				return 1
			}
		fi
		if [ ! -e /tmp/mirror-formatted ]; then
			run "$TWINFS_BIN/mkfs.twinfs" -f -q "$mdev"
			: > /tmp/mirror-formatted
		fi
		mount_mirror "$c" || return 1
		note "$c" "mounted: \`$(mounted_line /bench/mirror)\`; mirror: \`$(mirror_line)\`"
		mkdir -p "/bench/mirror/$c"
		wfile[$c]=/bench/mirror/$c/wfile
		;;
	ext4-drbd)
		# Both images start zeroed: no initial sync (vm-notes.md).
		local t
		for ((t = 0; t < 600; t++)); do
			[[ "$(drbd_state)" == cs:Connected* ]] && break
			sleep 0.2
		done
		[[ "$(drbd_state)" == cs:Connected* ]] ||
			{ unavailable "$c" "DRBD did not connect in 120 s: $(tr '\n' ' ' < /proc/drbd)"; return 1; }
		drbdadm new-current-uuid --clear-bitmap r0 > /tmp/drbd.log 2>&1 ||
			drbdadm -- --clear-bitmap new-current-uuid r0 >> /tmp/drbd.log 2>&1 ||
			die "drbdadm new-current-uuid: $(tail -2 /tmp/drbd.log | tr '\n' ' ')"
		run drbdadm primary r0
		for ((t = 0; t < 600; t++)); do
			[[ "$(drbd_state)" == *"ds:UpToDate/UpToDate C" ]] && break
			sleep 0.2
		done
		[[ "$(drbd_state)" == "cs:Connected ro:Primary/Secondary ds:UpToDate/UpToDate C" ]] ||
			{ unavailable "$c" "DRBD not Primary/Secondary UpToDate/UpToDate: $(drbd_state)"; return 1; }
		run mkfs.ext4 -q -F -E lazy_itable_init=0,lazy_journal_init=0 /dev/drbd0
		mkdir -p "/bench/$c"
		run mount -t ext4 /dev/drbd0 "/bench/$c"
		note "$c" "DRBD $(sed -n 's/^version: \([^ ]*\).*/\1/p' /proc/drbd): \`$(drbd_state)\` (the last letter: the protocol); mounted: \`$(mounted_line "/bench/$c")\`"
		wfile[$c]=/bench/$c/wfile
		;;
	ext4)
		run mkfs.ext4 -q -F -E lazy_itable_init=0,lazy_journal_init=0 "${BM_A_DEV[ext4]}"
		mkdir -p "/bench/$c"
		run mount -t ext4 "${BM_A_DEV[ext4]}" "/bench/$c"
		note "$c" "mounted: \`$(mounted_line "/bench/$c")\`"
		wfile[$c]=/bench/$c/wfile
		;;
	*) die "unknown configuration $c" ;;
	esac
	log "preparing $c: $BENCH_FILE_MB MiB file for write_fsync"
	"$BENCH_FSBENCH" -w write_fsync -d "${wfile[$c]}" -m "$BENCH_FILE_MB" \
		-s 0.01 -c "$c" > /dev/null || die "preparing the write file on $c"
	return 0
}

# measure CONFIG WORKLOAD THREADS ROUND: one fsbench line, with the
# mirror's writes (twinfs-mirror) over the measurement.
measure() {
	local c=$1 w=$2 t=$3 r=$4 dir base w0='' w1 line
	case ${BM_KIND[$c]} in
	twinfs-mirror)
		mount_mirror "$c" || die "$c: the mirror is gone: $(tail -1 /out/unavailable.txt)"
		base=/bench/mirror/$c
		check_mirror "$c" || die "$c: not mirrored before the measurement: $(mirror_line)"
		;;
	ext4-drbd)
		base=/bench/$c
		[ "$(drbd_state)" = "cs:Connected ro:Primary/Secondary ds:UpToDate/UpToDate C" ] ||
			die "$c: DRBD is $(drbd_state)"
		;;
	*) base=/bench/$c ;;
	esac
	case $w in
	write_fsync) dir=${wfile[$c]} ;;
	*) dir=$base/$w-r$r-t$t ;;
	esac
	sync
	echo 3 > /proc/sys/vm/drop_caches
	[ "${BM_KIND[$c]}" != twinfs-mirror ] || w0=$(mirror_writes)
	line=$("$BENCH_FSBENCH" -w "$w" -d "$dir" -t "$t" -s "$BENCH_SECS" \
		-m "$BENCH_FILE_MB" -c "$c" -r "$r") ||
		die "fsbench $w -t $t on $c (round $r) failed"
	if [ -n "$w0" ]; then
		w1=$(mirror_writes)
		check_mirror "$c" || die "$c: not mirrored after the measurement: $(mirror_line)"
		line="${line%\}}, \"mirror_writes\": $((w1 - w0))}"
	fi
	if [ "${BM_KIND[$c]}" = ext4-drbd ] &&
		[ "$(drbd_state)" != "cs:Connected ro:Primary/Secondary ds:UpToDate/UpToDate C" ]; then
		die "$c: DRBD is $(drbd_state) after the measurement"
	fi
	echo "$line" >> /out/results.jsonl
	log "$line"
}

rtt() {	# PHASE
	local l
	l=$("$BENCH_NETRTT" client "$BM_B" "$BM_RTT_PORT" 64 1000) ||
		die "netrtt to B failed"
	echo "${l%\}}, \"phase\": \"$1\"}" >> /out/rtt.jsonl
	log "tcp rtt ($1): $l"
	if [ "$rxe" = 1 ] && command -v ib_write_lat > /dev/null; then
		# perftest's one-way latency (half a ping-pong of RDMA WRITEs).
		if l=$(timeout 60 ib_write_lat -d rxe0 -F -s 64 -n 1000 "$BM_B" 2>&1); then
			l=$(awk '$1 == 64 && NF >= 7 { printf "{\"kind\": \"rdma\", \"size\": 64, \"n\": %d, \"min_us\": %.1f, \"p50_us\": %.1f, \"p99_us\": %.1f, \"mean_us\": %.1f, \"phase\": \"%s\", \"how\": \"ib_write_lat, 2 x t_typical\"}\n", $2, 2 * $3, 2 * $5, 2 * $8, 2 * $6, ph }' ph="$1" <<< "$l")
			[ -z "$l" ] || { echo "$l" >> /out/rtt.jsonl; log "rdma rtt ($1): $l"; }
		else
			log "ib_write_lat failed: $(tail -2 <<< "$l" | tr '\n' ' ')"
		fi
	fi
}

owner() {
	local c w t r
	: > /out/results.jsonl
	: > /out/rtt.jsonl
	: > /out/setup.txt
	: > /out/unavailable.txt
	setup_net "$BM_A" bench-a
	[ "${BENCH_RXE:-0}" != 1 ] || ! rxe_up || rxe=2	# 1 once B has it too
	load_modules /dev/pmem0 /dev/pmem1
	drbd_conf "${BM_A_DEV[drbd]}" "$BM_B_DRBD_DISK"
	log "waiting for B"
	while [ ! -e /out/peer-ready ]; do sleep 0.2; done
	# shellcheck disable=SC1091
	. /out/peer-ready	# rxe=0|1 on B
	[ "$rxe" = 2 ] && [ "${peer_rxe:-0}" = 1 ] && rxe=1 || rxe=0
	note setup "A: $(uname -r), $(nproc) vCPU, $(awk '/MemTotal/ { print int($2 / 1024) }' /proc/meminfo) MiB; network $ifc $BM_A <-> $BM_B; Soft-RoCE on both: $([ "$rxe" = 1 ] && echo yes || echo no)"
	printf '{"guest_kernel": "%s", "guest_cpus": %s, "guest_mem_mb": %s}\n' \
		"$(uname -r)" "$(nproc)" \
		"$(awk '/MemTotal/ { print int($2 / 1024) }' /proc/meminfo)" > /out/guest-info.json
	drbd_up
	rtt start
	for c in $BENCH_CONFIGS; do
		[ -n "${BM_KIND[$c]:-}" ] || die "unknown configuration $c"
		bm_prepare "$c" && avail[$c]=1
	done
	log "mounted: $(mount | grep ' /bench/' | tr '\n' ';')"
	for ((r = 1; r <= BENCH_ROUNDS; r++)); do
		log "round $r of $BENCH_ROUNDS"
		for w in $BENCH_WORKLOADS; do
			for t in $BENCH_THREADS; do
				for c in $BENCH_CONFIGS; do
					[ -n "${avail[$c]:-}" ] || continue
					measure "$c" "$w" "$t" "$r"
				done
			done
		done
	done
	rtt end
	dmesg --notime | grep -E '^twinfs( \(|: mirror)' | grep -Ev 'mounted( in [0-9]+ ms \(.*\))?: |is new; formatting' |
		sort | uniq -c | sed 's/^ *\([0-9]*\) \(.*\)/\2 (x\1)/' | head -10 |
		while IFS= read -r l; do note twinfs "kernel during the run: $l"; done
	[ -z "$mounted_mirror" ] || note "$mounted_mirror" "after the run: \`$(mirror_line)\`"
	for c in $BENCH_CONFIGS; do
		[ -n "${avail[$c]:-}" ] || continue
		case ${BM_KIND[$c]} in
		twinfs-mirror) [ "$mounted_mirror" != "$c" ] || { run umount /bench/mirror; mounted_mirror=; } ;;
		ext4-drbd) note "$c" "after the run: \`$(drbd_state)\`"; run umount "/bench/$c" ;;
		*) run umount "/bench/$c" ;;
		esac
	done
	drbdadm secondary r0 > /dev/null 2>&1
	drbdadm down r0 > /dev/null 2>&1
	[ -z "${avail[twinfs-local]:-}" ] || fsck_clean "${BM_A_DEV[twinfs-local]}"
	[ ! -e /tmp/mirror-formatted ] || fsck_clean "$mdev"
	log "bench: done"
}

case $role in
owner) owner ;;
partner) partner ;;
*) die "BM_ROLE must be owner or partner" ;;
esac
