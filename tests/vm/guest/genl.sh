# Guest half of scenarios/80-genl.sh: the genetlink family "twinfs".
#   vda: a twinfs file system, vdb: a spare device for the mirror target,
#   /dev/pmem0: the change memory.
# Checks: twinfsctl status --json over genetlink shows the mount (dump and
# doit by device and by uuid); twinfsctl watch sees MOUNTED, CP_DONE and
# UNMOUNTED; target start/status/stop over genetlink (and EBUSY, the
# transport check); set-node; a mirrored mount (to a target on this node
# over lo) disconnected, written, connected again (tail resync),
# relinquished and taken over from the target's copy (TAKEOVER_DONE);
# unprivileged callers get EPERM; malformed requests get EINVAL with the
# kernel's message; rmmod with a watcher subscribed is clean and ends the
# watcher.
. "$TWINFS_GUEST_LIB"

ctl=$TWINFS_BIN/twinfsctl
nobody() { setpriv --reuid=65534 --regid=65534 --clear-groups "$@"; }

# expect_kmsg ENAME TEXT CMD...: CMD fails with ENAME and its message has
# TEXT (the kernel's extended ACK).
expect_kmsg() {
	local want=$1 text=$2 out
	shift 2
	expect_errno "$want" "$@"
	out=$("$@" 2>&1)
	grep -qF -- "$text" <<< "$out" || die "$*: no '$text' in: $out"
	log "  kernel said: ${out#*kernel: }"
}

# wait_line FILE ERE [SECS]
wait_line() {
	local i
	for i in $(seq 1 $((${3:-20} * 10))); do
		grep -qE -- "$2" "$1" 2>/dev/null && return 0
		sleep 0.1
	done
	die "no line matching '$2' in $1 (has: $(tr '\n' '|' < "$1" 2>/dev/null))"
}

load_twinfs
for m in libnvdimm nd_pmem nfit; do modprobe $m 2>/dev/null; done
for i in 1 2 3 4 5 6 7 8 9 10; do [ -b /dev/pmem0 ] && break; sleep 0.5; done
[ -b /dev/pmem0 ] || die "no /dev/pmem0"
"$ctl" status --genl --json | grep -q '"filesystems": \[\]' ||
	die "the genetlink family twinfs does not answer: $("$ctl" status --genl 2>&1)"

log "--- watcher, set-node, mount"
"$ctl" watch > /out/events.txt 2> /out/watch.err &
watch_pid=$!
wait_line /out/watch.err "watching twinfs events"
"$ctl" watch --json --count 1 > /out/events1.json 2> /out/watch1.err &
watch1_pid=$!
wait_line /out/watch1.err "watching twinfs events"
run "$ctl" set-node 2
mount_twinfs /dev/vda /mnt nvram=/dev/pmem0
wait_line /out/events.txt "^MOUNTED device=vda "
wait "$watch1_pid" || die "watch --json --count 1 failed"
grep -q '^{"event": "MOUNTED", "device": "vda"' /out/events1.json ||
	die "watch --json: $(cat /out/events1.json)"

log "--- status over genetlink"
"$ctl" status --json > /out/status.json || die "status --json failed"
cat /out/status.json
uuid=$(cat /sys/fs/twinfs/vda/uuid)
python3 - "$uuid" <<'EOF' || die "status --json does not show the mount"
import json, sys
d = json.load(open("/out/status.json"))
assert d["source"] == "genetlink", d
assert d["node_id"] == 2, d
fs = d["filesystems"]
assert len(fs) == 1, fs
f = fs[0]
assert f["device"] == "vda" and f["uuid"] == sys.argv[1], f
assert f["mount_node"] == 0 and f["mirror"]["state"] == "none", f
cm = f["change_memory"]
assert cm["cm_device"] == "/dev/pmem0" and cm["cm_size"] > 0, cm
print("status --json: OK")
EOF
run "$ctl" status
"$ctl" status --genl vda --json | grep -q '"device": "vda"' || die "status vda (doit by device)"
"$ctl" status --genl "$uuid" --json | grep -q '"device": "vda"' || die "status <uuid> (doit by uuid)"
expect_kmsg ENODEV "no twinfs file system with that device" "$ctl" status --genl vdz

log "--- a consistency point"
for i in $(seq 1 20); do echo "$i" > /mnt/f$i; done
run sync
wait_line /out/events.txt "^CP_DONE device=vda uuid=$uuid cp_seq=[1-9]"
seq_sysfs=$(cat /sys/fs/twinfs/vda/cp_seq)
"$ctl" status --json | grep -q "\"cp_seq\": $seq_sysfs" || die "status cp_seq is not $seq_sysfs"

log "--- mirror target over genetlink"
head -c 32 /dev/urandom > /tmp/cluster.key
run "$ctl" target status
[ "$("$ctl" target status)" = stopped ] || die "target not stopped at first"
run "$ctl" target start 7790 /dev/vdb /tmp/cluster.key
out=$("$ctl" target status --json)
log "target status: $out"
# Started without --transport the target offers rdma (its rdma_cm
# listener binds even before an RDMA device exists).
grep -q '"state": "listening", "port": 7790, "device": "/dev/vdb", "transport": "rdma"' <<< "$out" ||
	die "target status after start: $out"
grep -q '^listening port=7790 device=/dev/vdb' /sys/fs/twinfs/mirror_target ||
	die "sysfs mirror_target: $(cat /sys/fs/twinfs/mirror_target)"
expect_kmsg EBUSY "runs already" "$ctl" target start 7791 /dev/vdb /tmp/cluster.key
run "$ctl" target stop
[ "$("$ctl" target status)" = stopped ] || die "target not stopped after stop"
grep -q '^stopped' /sys/fs/twinfs/mirror_target || die "sysfs: target still running"
run "$ctl" target stop
expect_kmsg EOPNOTSUPP "must be tcp or rdma" \
	"$ctl" target start 7790 /dev/vdb /tmp/cluster.key --transport carrier-pigeon
run "$ctl" target start 7790 /dev/vdb /tmp/cluster.key --transport tcp
grep -q ' rdma=no ' /sys/fs/twinfs/mirror_target ||
	die "target started with --transport tcp offers rdma: $(cat /sys/fs/twinfs/mirror_target)"
run "$ctl" target stop
expect_kmsg ENOENT "did not start" "$ctl" target start 7790 /dev/nonexistent /tmp/cluster.key

log "--- unprivileged callers"
expect_kmsg EPERM "need CAP_NET_ADMIN" nobody "$ctl" status --genl
expect_kmsg EPERM "need CAP_NET_ADMIN" nobody "$ctl" target status
expect_kmsg EPERM "need CAP_NET_ADMIN" nobody "$ctl" target stop
expect_kmsg EPERM "need CAP_NET_ADMIN" nobody "$ctl" set-node 1
expect_kmsg EPERM "needs CAP_NET_ADMIN" nobody "$ctl" watch --timeout 1
expect_kmsg EPERM "need CAP_NET_ADMIN" nobody "$ctl" debug send STATUS --dump
# Plain status falls back to sysfs, with a warning.
out=$(nobody "$ctl" status 2>&1) || die "unprivileged status: $out"
grep -q "warning: status (the twinfs genetlink commands need CAP_NET_ADMIN" <<< "$out" ||
	die "unprivileged status: no warning: $out"
grep -q "^vda" <<< "$out" || die "unprivileged status: no vda row: $out"

log "--- malformed requests"
expect_kmsg EINVAL "missing attribute PORT" "$ctl" debug send TARGET_START
expect_kmsg EINVAL "missing attribute KEY_FILE" \
	"$ctl" debug send TARGET_START PORT:u16=7790 TARGET_DEVICE:str=/dev/vdb
expect_kmsg EINVAL "invalid attribute length" "$ctl" debug send TARGET_START \
	PORT:u32=7790 TARGET_DEVICE:str=/dev/vdb KEY_FILE:str=/tmp/cluster.key
expect_errno EINVAL "$ctl" debug send TARGET_START \
	PORT:u16=7790 TARGET_DEVICE:strn=200 KEY_FILE:str=/tmp/cluster.key
expect_errno EINVAL "$ctl" debug send TARGET_START \
	PORT:u16=7790 TARGET_DEVICE:str=/dev/vdb KEY_FILE:strn=4000
expect_errno EINVAL "$ctl" debug send TARGET_START \
	PORT:u16=7790 TARGET_DEVICE:bin=2f6465762f766462 KEY_FILE:str=/tmp/cluster.key
expect_kmsg EINVAL "absolute path" "$ctl" debug send TARGET_START \
	PORT:u16=7790 "TARGET_DEVICE:str=/dev/vdb x" KEY_FILE:str=/tmp/cluster.key
expect_kmsg EINVAL "absolute path" "$ctl" debug send TARGET_START \
	PORT:u16=7790 TARGET_DEVICE:str=vdb KEY_FILE:str=/tmp/cluster.key
expect_errno ERANGE "$ctl" debug send TARGET_START \
	PORT:u16=0 TARGET_DEVICE:str=/dev/vdb KEY_FILE:str=/tmp/cluster.key
expect_kmsg EINVAL "STATUS needs DEVICE or UUID" "$ctl" debug send STATUS
expect_kmsg EINVAL "UUID must be 16 bytes" "$ctl" debug send STATUS UUID:bin=0102
expect_errno EINVAL "$ctl" debug send STATUS UUID:bin=${uuid//-/}00
expect_errno EINVAL "$ctl" debug send STATUS DEVICE:strn=64
expect_errno EINVAL "$ctl" debug send STATUS DEVICE:str=vda PORT:u16=1
expect_errno EINVAL "$ctl" debug send STATUS DEVICE:str=vda 200:u32=1
expect_errno EINVAL "$ctl" debug send TARGET_STOP NODE_ID:u32=1
expect_kmsg EINVAL "missing attribute NODE_ID" "$ctl" debug send SET_NODE
expect_errno ERANGE "$ctl" debug send SET_NODE NODE_ID:u32=100
expect_errno EOPNOTSUPP "$ctl" debug send MOUNTED
expect_errno EOPNOTSUPP "$ctl" debug send 77
run "$ctl" debug send SET_NODE NODE_ID:u32=3
"$ctl" status --json | grep -q '"node_id": 3' || die "node id not 3 after SET_NODE"
[ "$("$ctl" target status)" = stopped ] || die "a malformed request started the target"

log "--- umount"
run umount /mnt
wait_line /out/events.txt "^UNMOUNTED device=vda uuid=$uuid"
"$ctl" status --json | grep -q '"filesystems": \[\]' || die "status after umount: $("$ctl" status --json)"
fsck_clean /dev/vda
cat /out/events.txt
# The order: MOUNTED, a CP_DONE after it (sync), UNMOUNTED last.
order=$(awk '{ print $1 }' /out/events.txt | uniq | tr '\n' ' ')
grep -qE '^(CP_DONE )*MOUNTED (CP_DONE )+UNMOUNTED $' <<< "$order" || die "event order: $order"

log "--- failover commands: connect, disconnect, relinquish, takeover"
# mirror_state: the mount's mirror state from STATUS over genetlink.
mirror_state() {
	"$ctl" status --genl vda --json |
		python3 -c 'import json,sys; print(json.load(sys.stdin)["filesystems"][0]["mirror"]["state"])'
}
# wait_mirror STATE SECS
wait_mirror() {
	local i s
	for i in $(seq 1 $(($2 * 10))); do
		s=$(mirror_state)
		[ "$s" = "$1" ] && return 0
		sleep 0.1
	done
	die "mirror not $1 after $2 s: $s ($(cat /sys/fs/twinfs/vda/mirror))"
}
expect_kmsg ENODEV "no twinfs file system" "$ctl" disconnect vda
mount_twinfs /dev/vda /mnt nvram=/dev/pmem0
expect_kmsg EOPNOTSUPP "mounted without partner=" "$ctl" disconnect vda
expect_kmsg EOPNOTSUPP "mounted without partner=" "$ctl" connect "$uuid"
run umount /mnt
ip link set lo up
run "$ctl" target start 7790 /dev/vdb /tmp/cluster.key --transport tcp
mount_twinfs /dev/vda /mnt nvram=/dev/pmem0,partner=127.0.0.1:7790,cluster_key=/tmp/cluster.key
wait_mirror mirrored 60
for i in $(seq 1 20); do echo "g$i" > /mnt/g$i; done
run sync
t0=$(date +%s%N)
run "$ctl" disconnect vda
log "disconnect took $((($(date +%s%N) - t0) / 1000000)) ms"
[ "$(mirror_state)" = disconnected ] || die "after disconnect: $(mirror_state)"
wait_line /out/events.txt "^MIRROR_STATE device=vda uuid=$uuid mirror_state=disconnected"
grep -q ' disconnected ' /sys/fs/twinfs/vda/mirror || die "sysfs mirror: $(cat /sys/fs/twinfs/vda/mirror)"
# Acknowledged with the local NVRAM only, and marked for the tail resync.
for i in $(seq 1 20); do echo "h$i" > /mnt/h$i; done
python3 -c 'import os; fd = os.open("/mnt/h20", os.O_RDONLY); os.fsync(fd)'
sleep 2
[ "$(mirror_state)" = disconnected ] || die "reconnected without CONNECT: $(mirror_state)"
run "$ctl" connect vda
wait_mirror mirrored 60
log "mirror after connect: $(cat /sys/fs/twinfs/vda/mirror)"
grep -q 'tail_resyncs=[1-9]' /sys/fs/twinfs/vda/mirror ||
	die "connect did not resync the tail: $(cat /sys/fs/twinfs/vda/mirror)"
"$ctl" status --genl --json | grep -q '"tail_resyncs": [1-9]' ||
	die "STATUS has no mirror counters: $("$ctl" status --genl --json)"
run "$ctl" connect vda
out=$("$ctl" relinquish vda) || die "relinquish failed: $out"
log "relinquish: $out"
grep -qE '^vda: consistency point [1-9][0-9]* written' <<< "$out" || die "relinquish said: $out"
run umount /mnt
out=$("$ctl" takeover 0) || die "takeover failed: $out"
log "takeover: $out"
grep -q "copy on /dev/vdb" <<< "$out" || die "takeover said: $out"
[ "$("$ctl" target status)" = stopped ] || die "the target runs after TAKEOVER"
mount_twinfs /dev/vda /mnt nvram=/dev/vdb,node=0
wait_line /out/events.txt "^TAKEOVER_DONE device=vda uuid=$uuid mount_node=0 .*takeover_ms=[0-9]+"
grep TAKEOVER_DONE /out/events.txt
for i in $(seq 1 20); do
	[ "$(cat /mnt/g$i)" = "g$i" ] && [ "$(cat /mnt/h$i)" = "h$i" ] || die "g$i/h$i after the takeover mount"
done
# A mount that nobody armed sends no TAKEOVER_DONE.
run umount /mnt
mount_twinfs /dev/vda /mnt nvram=/dev/pmem0
wait_line /out/events.txt "^MOUNTED device=vda uuid=$uuid mount_node=0"
sleep 0.5
[ "$(grep -c TAKEOVER_DONE /out/events.txt)" = 1 ] || die "TAKEOVER_DONE without TAKEOVER"
run umount /mnt
fsck_clean /dev/vda
expect_kmsg EPERM "need CAP_NET_ADMIN" nobody "$ctl" takeover 0
expect_kmsg EPERM "need CAP_NET_ADMIN" nobody "$ctl" relinquish vda
expect_kmsg EPERM "need CAP_NET_ADMIN" nobody "$ctl" disconnect vda
expect_kmsg EPERM "need CAP_NET_ADMIN" nobody "$ctl" connect vda
expect_kmsg EINVAL "missing attribute MOUNT_NODE" "$ctl" debug send TAKEOVER
expect_errno ERANGE "$ctl" debug send TAKEOVER MOUNT_NODE:u32=100
expect_errno EINVAL "$ctl" debug send TAKEOVER MOUNT_NODE:u16=1
expect_errno EINVAL "$ctl" debug send TAKEOVER MOUNT_NODE:u32=1 DEVICE:str=vda
expect_kmsg EINVAL "RELINQUISH needs DEVICE or UUID" "$ctl" debug send RELINQUISH
expect_kmsg EINVAL "CONNECT needs DEVICE or UUID" "$ctl" debug send CONNECT
expect_kmsg EINVAL "UUID must be 16 bytes" "$ctl" debug send DISCONNECT UUID:bin=0102
expect_errno EINVAL "$ctl" debug send DISCONNECT DEVICE:strn=64
expect_kmsg ENODEV "no twinfs file system" "$ctl" relinquish vda
expect_errno EOPNOTSUPP "$ctl" debug send TAKEOVER_DONE

log "--- rmmod with a watcher subscribed"
kill -0 "$watch_pid" || die "the watcher is gone before rmmod"
dmesg_mark
run rmmod twinfs
for i in $(seq 1 50); do kill -0 "$watch_pid" 2>/dev/null || break; sleep 0.1; done
if kill -0 "$watch_pid" 2>/dev/null; then
	kill "$watch_pid"
	die "the watcher did not notice the module going"
fi
wait "$watch_pid" || die "the watcher failed: $(cat /out/watch.err)"
grep -q "the twinfs module was unloaded" /out/watch.err || die "watcher: $(cat /out/watch.err)"
expect_fail "family still there after rmmod" "$ctl" status --genl
load_twinfs
run "$ctl" status --json
run rmmod twinfs
log "genl: all checks passed"
