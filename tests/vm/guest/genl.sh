# Guest half of scenarios/80-genl.sh: the genetlink family "twinfs".
#   vda: a twinfs file system, vdb: a spare device for the mirror target,
#   /dev/pmem0: the change memory.
# Checks: twinfsctl status --json over genetlink shows the mount (dump and
# doit by device and by uuid); twinfsctl watch sees MOUNTED, CP_DONE and
# UNMOUNTED; target start/status/stop over genetlink (and EBUSY, the
# transport check); set-node; unprivileged callers get EPERM; malformed
# requests get EINVAL with the kernel's message; rmmod with a watcher
# subscribed is clean and ends the watcher.
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
