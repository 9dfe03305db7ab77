# shellcheck shell=bash
# Guest half of scenarios/70-mirror-tcp.sh: mirroring of the change memory
# over TCP between two guests on a private UDP-socket network, both with the
# same shared disk (/dev/vda) and each with its own nvdimm (/dev/pmem0).
#
#   MIRROR_ROLE=owner    node A (10.0.0.1): mount /dev/vda with nvram=,
#                        partner=10.0.0.2:PORT, cluster_key=; wait until the
#                        pair is "mirrored", then guest/crash_workload.py
#                        (checks the earlier iterations against the manifest,
#                        starts the workers of iteration MIRROR_ITER) until
#                        the host kills the guest
#   MIRROR_ROLE=partner  node B (10.0.0.2): start the mirror target on
#                        /dev/pmem0, then wait for the host's /out/takeover
#                        (written after A was killed): stop the target,
#                        mount with nvram=/dev/pmem0,node=0 (replays B's
#                        copy), verify every acknowledged operation, umount,
#                        fsck, mount again (nothing to replay), verify, umount;
#                        with MIRROR_PARTIAL=1 then also: a peer that dies
#                        during its resync leaves the copy partial, and a
#                        takeover mount refuses it without writing
#   MIRROR_ROLE=badkey-owner    node A with the wrong key, hostile peers
#                        (guest/mirror_peer.py), then the right key
#   MIRROR_ROLE=badkey-partner  node B: the target until the host's /out/check
#   MIRROR_ROLE=rdma-owner  node A, over Soft-RoCE (scenarios/74-mirror-rdma.sh):
#                        a wrong rdma token (refused, falls back to tcp),
#                        mirror_transport=tcp, then rdma; the latency of a
#                        mirrored 4 KiB write + fsync over each; then the
#                        host kills B under a workload: A must degrade
#                        within mirror_timeout_ms and go on
#   MIRROR_ROLE=rdma-partner  node B for rdma-owner: the target until killed
#
# MIRROR_TRANSPORT=rdma: both bring Soft-RoCE (rxe0) up on their link first
# and the owner's mirror must say "rdma"; tcp (the default): no RDMA device.
#
# Environment: MIRROR_KEY (hex, the cluster key; badkey-owner also
# MIRROR_BADKEY), MIRROR_PORT (7790), MIRROR_SEED, MIRROR_ITER,
# MIRROR_WORKERS, MIRROR_RETAIN, MIRROR_MANIFEST (a host path, read-only
# here), MIRROR_OPTS (extra mount options of the owner), MIRROR_TRANSPORT.
. "$TWINFS_GUEST_LIB"

here=$(dirname "$VM_SCRIPT")
wl=$here/crash_workload.py
peer=$here/mirror_peer.py
role=${MIRROR_ROLE:-}
port=${MIRROR_PORT:-7790}
transport=${MIRROR_TRANSPORT:-tcp}
case $role in rdma-*) transport=rdma ;; esac
A=10.0.0.1
B=10.0.0.2
tgt=/sys/fs/twinfs/mirror_target
sys=/sys/fs/twinfs/vda

load_twinfs
for m in libnvdimm nd_pmem nfit; do modprobe $m 2>/dev/null; done
for _ in $(seq 50); do [ -b /dev/pmem0 ] && break; sleep 0.1; done
[ -b /dev/pmem0 ] || die "no /dev/pmem0 (nvdimm)"
mkdir -p /mnt

# setup_net IP: the one virtio-net interface gets IP/24 (net_up).
setup_net() {
	net_up "$1"
	[ "$transport" != rdma ] || rxe_up "$NET_IFC"
}

# rxe_up IFC: Soft-RoCE (rdma_rxe) on IFC as rxe0, ACTIVE.
rxe_up() {
	local st _
	command -v rdma > /dev/null || die "no rdma tool (iproute2)"
	run modprobe crc32_generic	# else: "failed to init crc32 algorithm err:-2"
	run modprobe rdma_rxe
	run rdma link add rxe0 type rxe netdev "$1"
	for _ in $(seq 50); do
		st=$(rdma link show rxe0/1 2>&1)
		[[ "$st" == *"state ACTIVE"* ]] && break
		sleep 0.1
	done
	[[ "$st" == *"state ACTIVE"* ]] || die "rxe0 is not ACTIVE: $st"
	log "rdma link: $st"
}

# mirror_transport: the first word of the mirror line (rdma or tcp).
mirror_transport() {
	local l
	read -r l < "$sys/mirror" || return 1
	echo "${l%% *}"
}

# expect_transport T: the mirror says it uses T.
expect_transport() {
	local l
	read -r l < "$sys/mirror"
	[ "$(mirror_transport)" = "$1" ] ||
		die "mirror transport is not $1: $l ($(dmesg | grep 'mirror' | tail -3 | tr '\n' '|'))"
}

# lat_test NAME N: N times a 4 KiB pwrite + fsync of one file on /mnt, each
# a mirrored change-memory write; prints the percentiles in microseconds.
lat_test() {
	python3 -S - "$@" <<'PY'
import os, sys, time
name, n = sys.argv[1], int(sys.argv[2])
fd = os.open("/mnt/lat-" + name, os.O_CREAT | os.O_WRONLY, 0o644)
buf = os.urandom(4096)
lat = []
for i in range(n + 10):
    t0 = time.perf_counter_ns()
    os.pwrite(fd, buf, (i % 64) * 4096)
    os.fsync(fd)
    if i >= 10:
        lat.append((time.perf_counter_ns() - t0) // 1000)
os.close(fd)
lat.sort()
print("n=%d min=%d p50=%d p90=%d p99=%d max=%d us" % (n, lat[0], lat[n // 2],
      lat[n * 9 // 10], lat[n * 99 // 100], lat[-1]))
PY
}

# wait_ping IP SECS: the peer answers (it may still be booting).  The
# host has no iputils: busybox's ping.
wait_ping() {
	local t0=$SECONDS
	while ! busybox ping -c1 -W1 "$1" > /dev/null 2>&1; do
		[ $((SECONDS - t0)) -lt "$2" ] || die "no answer from $1 in $2 s"
		sleep 0.5
	done
	log "$1 answers ping ($(busybox ping -c3 -q "$1" | tail -1))"
}

# write_key FILE HEX
write_key() {
	printf '%s' "$2" | xxd -r -p > "$1" || die "cannot write the key $1"
	chmod 600 "$1"
	[ "$(stat -c %s "$1")" -ge 16 ] || die "key $1 is shorter than 16 bytes"
}

# mirror_state: degraded, resyncing or mirrored (the third word of
# /sys/fs/twinfs/vda/mirror, "tcp ADDR STATE writes=N resyncs=N").
mirror_state() {
	local l
	read -r l < "$sys/mirror" || return 1
	set -- $l
	echo "${3:-$1}"
}

# wait_mirror STATE SECS
wait_mirror() {
	local t0 l
	t0=$(date +%s%N)
	for ((i = 0; i < $2 * 5; i++)); do
		[ "$(mirror_state)" = "$1" ] && break
		sleep 0.2
	done
	read -r l < "$sys/mirror"
	[ "$(mirror_state)" = "$1" ] ||
		die "the mirror is not $1 after $2 s: $l ($(dmesg | grep 'mirror' | tail -2 | tr '\n' '|'))"
	log "mirror $1 after $((($(date +%s%N) - t0) / 1000000)) ms: $l"
}

# save_sysfs FILE: every value of /sys/fs/twinfs/vda.
save_sysfs() {
	local f v
	: > "$1"
	for f in "$sys"/*; do
		[ -f "$f" ] && read -r v < "$f" && printf '%s=%s\n' "${f##*/}" "$v" >> "$1"
	done
}

target_status() { cat "$tgt"; }

# target_start KEYFILE
target_start() {
	dmesg_mark
	echo "start $port /dev/pmem0 $1" > "$tgt" || die "cannot start the mirror target: $(dmesg_since | tail -2 | tr '\n' '|')"
	expect_dmesg "twinfs: mirror target: listening on port $port"
	log "target: $(target_status)"
	: > /out/target-ready
}

target_stop() {
	dmesg_mark
	run sh -c "echo stop > $tgt"
	[ "$(target_status)" = stopped ] || die "mirror_target after stop: $(target_status)"
	expect_dmesg "twinfs: mirror target: stopped; /dev/pmem0 is free"
}

# wait_host FILE: until the host creates /out/FILE.
wait_host() {
	local n=0
	while [ ! -e "/out/$1" ]; do
		sleep 0.2
		n=$((n + 1))
		[ $((n % 50)) != 0 ] || log "waiting for the host ($1); target: $(target_status)"
	done
}

mount_owner() {	# KEYFILE [extra options]
	mount_twinfs /dev/vda /mnt "nvram=/dev/pmem0,partner=$B:$port,cluster_key=$1${2:+,$2}"
}

case $role in
owner)
	setup_net $A
	write_key /tmp/cluster.key "$MIRROR_KEY"
	wait_ping $B 120
	dmesg_mark
	mount_owner /tmp/cluster.key "${MIRROR_OPTS:-}"
	wait_mirror mirrored 120
	expect_transport "$transport"
	save_sysfs /out/sysfs-mount.txt
	log "mounted: $(grep -E '^(records_replayed|last_seq|cp_seq|cm_size|mirror)=' /out/sysfs-mount.txt | tr '\n' ' ')"
	# The mirror state through the workload, for the host (a drop to
	# degraded under load would explain lost operations).
	(while :; do
		read -r l < "$sys/mirror"
		echo "$(date +%T.%N | cut -c1-12) $l" >> /out/mirror-trace
		cat "$sys/group_commit" > /out/group-commit.tmp && mv /out/group-commit.tmp /out/group-commit
		sleep 0.5
	done) &
	args=(run --seed "$MIRROR_SEED" --iter "$MIRROR_ITER" --workers "$MIRROR_WORKERS"
		--retain "${MIRROR_RETAIN:-6}" --save-dmesg /out/dmesg)
	[ -z "${MIRROR_MANIFEST:-}" ] || args+=(--manifest "$MIRROR_MANIFEST")
	python3 -S "$wl" "${args[@]}" || die "workload of iteration $MIRROR_ITER failed"
	die "the workload ended by itself (it runs until the host kills the guest)"
	;;
partner)
	setup_net $B
	write_key /tmp/cluster.key "$MIRROR_KEY"
	target_start /tmp/cluster.key
	wait_host takeover
	# shellcheck disable=SC1091
	. /out/takeover		# PREV_ITER, PREV_ACKS
	st=$(target_status)
	echo "$st" > /out/target-final.txt
	log "takeover of iteration $PREV_ITER (acks $PREV_ACKS); target was: $st"
	w=$(sed -n 's/.* writes=\([0-9]*\).*/\1/p' <<< "$st")
	[ "${w:-0}" -gt 0 ] || die "the target received no writes: $st"
	dmesg | grep 'mirror target' | tail -4 | sed 's/^/  dmesg: /'
	target_stop
	t0=$(date +%s%N)
	dmesg_mark
	mount_twinfs /dev/vda /mnt nvram=/dev/pmem0,node=0
	save_sysfs /out/sysfs-takeover.txt
	log "takeover mount in $((($(date +%s%N) - t0) / 1000000)) ms:" \
		"$(grep -E '^(records_replayed|last_seq|cp_seq|cp_count)=' /out/sysfs-takeover.txt | tr '\n' ' ')"
	dmesg_since | grep twinfs | sed 's/^/  dmesg: /'
	args=(--seed "$MIRROR_SEED" --retain "${MIRROR_RETAIN:-6}"
		--prev-iter "$PREV_ITER" --prev-acks "$PREV_ACKS")
	[ ! -s /out/manifest-in.json ] || args+=(--manifest /out/manifest-in.json)
	python3 -S "$wl" verify "${args[@]}" || die "verification after the takeover failed"
	run umount /mnt
	fsck_clean /dev/vda
	mount_twinfs /dev/vda /mnt nvram=/dev/pmem0,node=0
	save_sysfs /out/sysfs-remount.txt
	n=$(sed -n 's/^records_replayed=//p' /out/sysfs-remount.txt)
	[ "${n:-0}" = 0 ] || die "records_replayed=$n on the mount after a clean umount"
	mkdir -p /out/remount
	python3 -S "$wl" verify --no-prune --seed "$MIRROR_SEED" --out /out/remount \
		--manifest /out/manifest.json || die "verification after the remount failed"
	run umount /mnt
	fsck_clean /dev/vda
	[ "${MIRROR_PARTIAL:-0}" = 1 ] || exit 0
	# An owner that dies during its resync leaves a partial copy: a
	# takeover mount must refuse it and write nothing.
	target_start /tmp/cluster.key
	r=$(timeout 30 python3 "$peer" 127.0.0.1 "$port" partial /tmp/cluster.key 2>&1) ||
		die "peer partial: $r"
	log "$r"
	for _ in $(seq 50); do
		[[ "$(target_status)" == *copy=partial* ]] && break
		sleep 0.1
	done
	st=$(target_status)
	[[ "$st" == *copy=partial* ]] || die "target after an unfinished resync: $st"
	target_stop
	sum0=$(md5sum < /dev/vda)
	dmesg_mark
	if mount -t twinfs -o nvram=/dev/pmem0,node=0 /dev/vda /mnt 2> /tmp/mount.err; then
		die "a partial mirror copy was mounted"
	fi
	expect_dmesg "is a mirror copy whose resync did not finish"
	[ "$(md5sum < /dev/vda)" = "$sum0" ] || die "the refused mount changed the shared disk"
	log "partial copy refused: $(cat /tmp/mount.err); $(dmesg_since | grep 'resync did not finish' | sed 's/.*\] //')"
	echo "partial_refused=1" > /out/partial.txt
	;;
badkey-partner)
	setup_net $B
	write_key /tmp/cluster.key "$MIRROR_KEY"
	target_start /tmp/cluster.key
	wait_host check
	target_status | tee /out/target-final.txt
	target_stop
	;;
badkey-owner)
	setup_net $A
	write_key /tmp/k-good "$MIRROR_KEY"
	write_key /tmp/k-bad "$MIRROR_BADKEY"
	wait_ping $B 120
	: > /out/peer-results.txt

	# 1. The wrong key, mirror=degraded (the default): the mount succeeds,
	# the pair stays degraded, operations go on with the local NVRAM.
	dmesg_mark
	mount_owner /tmp/k-bad mirror_timeout_ms=1000
	for _ in $(seq 150); do
		dmesg_since | grep -q 'does not have the cluster key' && break
		sleep 0.2
	done
	expect_dmesg "twinfs \(vda\): mirror: partner $B:$port does not have the cluster key; refusing it"
	[ "$(mirror_state)" = degraded ] || die "wrong key: mirror state $(cat $sys/mirror), expected degraded"
	run mkdir /mnt/degraded
	for i in 1 2 3 4 5; do
		head -c $((i * 3000)) /dev/urandom > /mnt/degraded/f$i || die "write in degraded mode"
	done
	run mv /mnt/degraded/f1 /mnt/degraded/g1
	run rm /mnt/degraded/f2
	sleep 4
	read -r l < "$sys/mirror"
	[ "$(mirror_state)" = degraded ] || die "wrong key: mirror state $l after 4 s"
	n=$(dmesg_since | grep -c 'does not have the cluster key')
	log "wrong key (degraded): sysfs '$l'; 'does not have the cluster key' logged $n times in about 5 s"
	echo "degraded_mirror_line=$l" >> /out/badkey.txt
	echo "nokey_messages=$n" >> /out/badkey.txt
	dmesg_since | grep 'mirror' | sort | uniq -c | sed 's/^/  dmesg: /' | head -8
	run umount /mnt
	fsck_clean /dev/vda

	# 2. The wrong key, mirror=required: operations fail with ENOLINK after
	# mirror_timeout_ms.
	dmesg_mark
	mount_owner /tmp/k-bad mirror=required,mirror_timeout_ms=500
	expect_errno ENOLINK touch /mnt/required-op
	expect_dmesg "mirror=required: failing the operation"
	[ ! -e /mnt/required-op ] || die "the failed operation left /mnt/required-op"
	run umount /mnt
	fsck_clean /dev/vda

	# 3. Hostile peers on the target's port (no owner is connected now).
	for mode in garbage badcrc badlen wrongkey badframe baddata badreq; do
		k=/tmp/k-good
		[ $mode != wrongkey ] || k=/tmp/k-bad
		r=$(timeout 30 python3 "$peer" $B "$port" $mode $k 2>&1) ||
			die "peer $mode: $r"
		log "$r"
		echo "$r" >> /out/peer-results.txt
		sleep 0.6	# the target's log lines are rate limited
	done

	# 4. The right key: the target still serves a proper owner.
	dmesg_mark
	mount_owner /tmp/k-good
	wait_mirror mirrored 120
	w0=$(sed -n 's/.* writes=\([0-9]*\).*/\1/p' "$sys/mirror")
	run mkdir /mnt/good
	for i in $(seq 1 20); do
		head -c $((i * 1000)) /dev/urandom > /mnt/good/f$i || die "write to /mnt/good/f$i"
	done
	run mv /mnt/good/f1 /mnt/good/g1
	run rm /mnt/good/f2
	read -r l < "$sys/mirror"
	w1=$(sed -n 's/.* writes=\([0-9]*\).*/\1/p' <<< "$l")
	[ "$(mirror_state)" = mirrored ] || die "right key: $l after the operations"
	[ "${w1:-0}" -gt "${w0:-0}" ] || die "right key: no mirrored writes ($w0 -> $w1)"
	log "right key: $l (writes $w0 -> $w1)"
	echo "good_mirror_line=$l" >> /out/badkey.txt
	dmesg_since | grep 'mirror' | sed 's/^/  dmesg: /'
	run umount /mnt
	fsck_clean /dev/vda
	;;
rdma-partner)
	setup_net $B
	write_key /tmp/cluster.key "$MIRROR_KEY"
	target_start /tmp/cluster.key
	expect_dmesg "rdma on $((port + 1))"
	# Until the host kills this guest: keep the log where it can see it.
	while :; do
		dmesg | grep 'twinfs' > /out/partner-dmesg.tmp
		mv /out/partner-dmesg.tmp /out/partner-dmesg.txt
		target_status > /out/target-final.txt
		sleep 0.5
	done
	;;
rdma-owner)
	setup_net $A
	write_key /tmp/cluster.key "$MIRROR_KEY"
	wait_ping $B 120
	tmo=${MIRROR_TIMEOUT_MS:-2000}
	bad=/sys/module/twinfs/parameters/mirror_rdma_bad_token

	# 1. A connection request with a wrong token: refused by B, A mirrors
	# over tcp.
	echo 1 > $bad || die "cannot set $bad"
	dmesg_mark
	mount_owner /tmp/cluster.key
	wait_mirror mirrored 120
	expect_transport tcp
	expect_dmesg "refused the rdma connection"
	expect_dmesg "no rdma to $B:$((port + 1)): the partner did not accept the connection"
	echo 0 > $bad
	read -r l < "$sys/mirror"
	echo "hostile_token_line=$l" >> /out/rdma.txt
	dmesg_since | grep 'mirror' | sed 's/^/  dmesg: /'
	run umount /mnt

	# 2. mirror_transport=tcp, then auto (rdma): the latency of a mirrored
	# write over each.
	for t in tcp rdma; do
		o=mirror_timeout_ms=$tmo
		[ $t = rdma ] || o+=,mirror_transport=tcp
		dmesg_mark
		mount_owner /tmp/cluster.key "$o"
		wait_mirror mirrored 120
		expect_transport $t
		[ $t = tcp ] || expect_dmesg "mirror: rdma to $B:$((port + 1)) via rxe0 set up"
		grep -q "mirror_transport=tcp" /proc/mounts || [ $t = rdma ] ||
			die "mirror_transport=tcp not in /proc/mounts"
		r=$(lat_test $t "${MIRROR_LAT_N:-300}") || die "latency test over $t failed"
		log "mirrored 4 KiB write + fsync over $t: $r"
		echo "lat_$t=$r" >> /out/rdma.txt
		read -r l < "$sys/mirror"
		echo "line_$t=$l" >> /out/rdma.txt
		[ $t = rdma ] || run umount /mnt
	done

	# 3. B killed under a workload: A degrades within mirror_timeout_ms
	# and its operations go on.
	python3 -S - <<'PY' &
import os, time
lat, i = [], 0
while not os.path.exists("/tmp/stop-writer"):
    t0 = time.perf_counter_ns()
    with open("/mnt/w%d" % (i % 200), "wb") as f:
        f.write(os.urandom(2048))
        os.fsync(f.fileno())
    lat.append(((time.perf_counter_ns() - t0) // 1000, time.time()))
    i += 1
with open("/out/writer.txt", "w") as f:
    for us, t in lat:
        f.write("%d %.3f\n" % (us, t))
PY
	wpid=$!
	sleep 2
	[ "$(mirror_state)" = mirrored ] || die "not mirrored under the writer: $(cat $sys/mirror)"
	t_req=$(date +%s%N)
	: > /out/req-kill
	while [ ! -e /out/done-kill ]; do sleep 0.05; done
	t_killed=$(date +%s%N)
	while [ "$(mirror_state)" != degraded ]; do
		[ $((($(date +%s%N) - t_req) / 1000000)) -lt $((tmo + 10000)) ] ||
			die "still $(cat $sys/mirror) $((tmo + 10000)) ms after B was killed"
		sleep 0.05
	done
	t_deg=$(date +%s%N)
	sleep 3	# the writer goes on with the local NVRAM
	touch /tmp/stop-writer
	wait $wpid || die "the writer failed"
	read -r l < "$sys/mirror"
	deg_ms=$(((t_deg - t_killed) / 1000000))
	req_ms=$(((t_deg - t_req) / 1000000))
	n_after=$(awk -v t="$((t_deg / 1000000000))" '$2 > t' /out/writer.txt | wc -l)
	max_ms=$(awk 'BEGIN { m = 0 } $1 > m { m = $1 } END { printf "%d", m / 1000 }' /out/writer.txt)
	log "B killed: degraded ${deg_ms} ms after A saw the kill (${req_ms} ms after asking for it); longest operation ${max_ms} ms; $n_after operations after; $l"
	dmesg | grep 'mirror' | tail -4 | sed 's/^/  dmesg: /'
	echo "degraded_ms=$deg_ms" >> /out/rdma.txt
	echo "degraded_from_request_ms=$req_ms" >> /out/rdma.txt
	echo "longest_op_ms=$max_ms" >> /out/rdma.txt
	echo "ops_after_degraded=$n_after" >> /out/rdma.txt
	echo "degraded_line=$l" >> /out/rdma.txt
	[ "$deg_ms" -le "$((tmo + 1000))" ] || die "degraded only after $deg_ms ms (mirror_timeout_ms=$tmo)"
	[ "$max_ms" -le "$((tmo + 2000))" ] || die "an operation took $max_ms ms (mirror_timeout_ms=$tmo)"
	[ "$n_after" -gt 0 ] || die "no operation completed after the pair degraded"
	run umount /mnt
	fsck_clean /dev/vda
	;;
*)
	die "MIRROR_ROLE must be owner, partner, badkey-owner, badkey-partner, rdma-owner or rdma-partner"
	;;
esac
