# shellcheck shell=bash
# Sourced by the guest scripts of the cluster scenarios (guest/cluster.sh
# for 90-cluster, guest/cluster-node.sh for 91-cluster-rounds): one node of
# the two-node cluster (a = node 1, 10.0.0.1; b = node 2, 10.0.0.2) on a
# private UDP-socket network, the shared disk /dev/vda and an nvdimm
# (/dev/pmem0).  cluster_up loads twinfs.ko, brings the network up, starts
# corosync (knet, two_node) and twinfsd (twinfsd_start) and waits until both
# nodes are members, quorate and synchronized (/out/joined).
#
# Environment: CLUSTER_NODE (a or b), CLUSTER_KEY (hex), CLUSTER_TOKEN
# (corosync's token timeout, ms), CLUSTER_TRANSPORT (knet); twinfsd.conf
# keys only when set (an older twinfsd refuses unknown keys):
# CLUSTER_REMIRROR (mirror_after_takeover), CLUSTER_FENCE_DELAY
# (fence_delay_ms), CLUSTER_GRACE (daemon_grace_ms), CLUSTER_HEARTBEAT
# (disk_heartbeat_ms; 0: off).

# shellcheck disable=SC2034 # used by the scripts that source this
here=$(dirname "$VM_SCRIPT")
# shellcheck source=../../cluster/corosync-conf.sh
. "$TWINFS_SRC/tests/cluster/corosync-conf.sh"
wl=$here/crash_workload.py
status=/out/twinfsd-status.json
sys=/sys/fs/twinfs/vda
td_pid='' cs_pid='' ifc=''
case ${CLUSTER_NODE:-} in
a) me=10.0.0.1 ;;
b) me=10.0.0.2 ;;
*) die "CLUSTER_NODE must be a or b" ;;
esac
node=$CLUSTER_NODE

# json_get FILTER: a value from twinfsd's status file (a jq filter, raw
# output; jq starts much faster than python3 under TCG).
json_get() {
	jq -r "$1" "$status" 2> /dev/null || echo
}

# The first file system's "holder state mounted_here", e.g. "b serving true".
FS0='.filesystems[0] | "\(.holder.name) \(.state) \(.mounted_here)"'

# wait_json FILTER WANT SECS (wall clock)
wait_json() {
	local end=$((SECONDS + $3))
	while [ "$SECONDS" -lt "$end" ]; do
		[ "$(json_get "$1")" = "$2" ] && return 0
		sleep 0.1
	done
	die "twinfsd's status: $1 is '$(json_get "$1")' after $3 s, expected '$2'"
}

# control REQUEST: twinfsd's control socket; prints the reply.
control() {
	python3 -S -c 'import socket,sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
s.connect("/run/twinfsd/control"); s.send(sys.argv[1].encode()); print(s.recv(65536).decode(), end="")' "$1"
}

# mirror_wait WORD SECS: until /sys/fs/twinfs/vda/mirror has " WORD ".
mirror_wait() {
	local end=$((SECONDS + $2)) l=
	while [ "$SECONDS" -lt "$end" ]; do
		read -r l < "$sys/mirror" 2> /dev/null
		[[ "$l" == *" $1 "* ]] && { echo "$l"; return 0; }
		sleep 0.2
	done
	die "mirror not $1 after $2 s: $l"
}

twinfsd_conf() {
	cat << EOC
; twinfsd in the VM test: one pair, one file system on the shared disk
[cluster]
fence_command = $here/fence-vm.sh %n
fence_timeout_ms = 40000
cluster_key = /tmp/cluster.key
status_file = $status
lost_quorum = freeze
EOC
	[ -z "${CLUSTER_REMIRROR:-}" ] || echo "mirror_after_takeover = $CLUSTER_REMIRROR"
	[ -z "${CLUSTER_FENCE_DELAY:-}" ] || echo "fence_delay_ms = $CLUSTER_FENCE_DELAY"
	[ -z "${CLUSTER_GRACE:-}" ] || echo "daemon_grace_ms = $CLUSTER_GRACE"
	[ -z "${CLUSTER_HEARTBEAT:-}" ] || echo "disk_heartbeat_ms = $CLUSTER_HEARTBEAT"
	cat << EOC

[node a]
id = 1
address = 10.0.0.1
disk_area = 0

[node b]
id = 2
address = 10.0.0.2
disk_area = 1

[pair ab]
owner = a
partner = b

[filesystem fs0]
pair = ab
device = /dev/vda
mountpoint = /mnt
nvram = /dev/pmem0
mirror_port = 7790
EOC
}

# twinfsd_start: in the background ($td_pid), appending to /out/twinfsd.log.
twinfsd_start() {
	"$TWINFS_BIN/twinfsd" -f -c /tmp/twinfsd.conf >> /out/twinfsd.log 2>&1 &
	td_pid=$!
}

# twinfsd_stop: SIGTERM (it unmounts what it serves and releases it).
twinfsd_stop() {
	kill -TERM "$td_pid"
	wait "$td_pid" || die "twinfsd exited $? on SIGTERM: $(tail -3 /out/twinfsd.log)"
}

corosync_stop() {
	kill -TERM "$cs_pid"
	wait "$cs_pid"
}

cluster_up() {
	load_twinfs
	for m in libnvdimm nd_pmem nfit; do modprobe $m 2> /dev/null; done
	for _ in $(seq 50); do [ -b /dev/pmem0 ] && break; sleep 0.1; done
	[ -b /dev/pmem0 ] || die "no /dev/pmem0 (nvdimm)"

	net_up "$me"
	ifc=$NET_IFC

	printf '%s' "$CLUSTER_KEY" | xxd -r -p > /tmp/cluster.key && chmod 600 /tmp/cluster.key

	mkdir -p /etc/corosync /var/lib/corosync /var/log/corosync /run/corosync
	corosync_conf twinfs-vm "${CLUSTER_TRANSPORT:-knet}" "${CLUSTER_TOKEN:-3000}" 10.0.0.1 10.0.0.2 > /tmp/corosync.conf
	corosync -f -c /tmp/corosync.conf > /out/corosync.log 2>&1 &
	cs_pid=$!
	for _ in $(seq 100); do
		corosync-cmapctl -g runtime.config.totem.token > /dev/null 2>&1 && break
		sleep 0.2
	done
	corosync-cmapctl -g runtime.config.totem.token > /out/token.txt 2>&1 ||
		die "corosync did not start: $(tail -3 /out/corosync.log)"
	corosync-cmapctl -g runtime.config.totem.consensus >> /out/token.txt 2>&1
	log "corosync up: $(tr '\n' ' ' < /out/token.txt)"

	twinfsd_conf > /tmp/twinfsd.conf
	"$TWINFS_BIN/twinfsd" --check -c /tmp/twinfsd.conf || die "twinfsd --check"
	twinfsd_start

	# Both members, the same leader (node 1, the lowest id), quorate.
	wait_json '.members | length' 2 180
	wait_json '.quorate and .synced' true 60
	echo "members=$(json_get '[.members[].id | tostring] | join(" ")') leader=$(json_get '.leader.id') ring=$(json_get '.ring_seq')" > /out/joined
	log "joined: $(cat /out/joined); $(corosync-quorumtool -s | grep -E '^(Quorate|Flags)' | tr -s ' ' | tr '\n' ' ')"
	corosync-quorumtool -s > /out/quorumtool.txt 2>&1
}
