# shellcheck shell=bash
# Guest half of scenarios/90-cluster.sh: corosync and twinfsd on two guests
# (a = node 1, 10.0.0.1; b = node 2, 10.0.0.2) on a private UDP-socket
# network, one shared disk (/dev/vda) and an nvdimm each (/dev/pmem0).
# twinfsd does everything about twinfs: a mounts (mirrored to b's target),
# b takes over when a is gone.  The script only watches and checks.
#
#   CLUSTER_ROLE=a  wait for the mount and "mirrored", then the workload
#                   (guest/crash_workload.py, acks in /out/acks.w<k>)
#                   until the host kills the guest
#   CLUSTER_ROLE=b  wait for the takeover by twinfsd (the host acks the
#                   fence), then for the host's /out/takeover (the acks),
#                   verify every acknowledged operation on twinfsd's mount,
#                   one more operation, stop twinfsd (it unmounts), fsck;
#                   with CLUSTER_RETURN=1 instead: wait until a is back
#                   (CLUSTER_ROLE=a-return) and the mount is mirrored to it,
#                   "giveback fs0" on the control socket, wait until a
#                   serves it, stop
#   CLUSTER_ROLE=a-return  a boots again (fresh nvdimm): it mirrors for b,
#                   takes fs0 back on the giveback, verifies the earlier
#                   iterations (/out/manifest-in.json), stops twinfsd, fsck
#
# Environment: CLUSTER_KEY (hex), CLUSTER_SEED, CLUSTER_WORKERS,
# CLUSTER_TOKEN (corosync's token timeout, ms), CLUSTER_TRANSPORT (knet).
. "$TWINFS_GUEST_LIB"

here=$(dirname "$VM_SCRIPT")
wl=$here/crash_workload.py
role=${CLUSTER_ROLE:-}
status=/out/twinfsd-status.json
sys=/sys/fs/twinfs/vda
case $role in
a | a-return) me=10.0.0.1 ;;
b) me=10.0.0.2 ;;
*) die "CLUSTER_ROLE must be a, b or a-return" ;;
esac

load_twinfs
for m in libnvdimm nd_pmem nfit; do modprobe $m 2>/dev/null; done
for _ in $(seq 50); do [ -b /dev/pmem0 ] && break; sleep 0.1; done
[ -b /dev/pmem0 ] || die "no /dev/pmem0 (nvdimm)"

ifc=
for _ in $(seq 100); do
	for n in /sys/class/net/*; do
		[ "${n##*/}" = lo ] || { ifc=${n##*/}; break; }
	done
	[ -n "$ifc" ] && break
	sleep 0.1
done
[ -n "$ifc" ] || die "no network interface besides lo"
run ip addr add "$me/24" dev "$ifc"
run ip link set "$ifc" up
run ip link set lo up

printf '%s' "$CLUSTER_KEY" | xxd -r -p > /tmp/cluster.key && chmod 600 /tmp/cluster.key

# json_get EXPR: a value from twinfsd's status file (python3 expression on j).
json_get() {
	python3 -S -c 'import json,sys
try:
    j = json.load(open(sys.argv[1]))
    print(eval(sys.argv[2]))
except Exception:
    print("")' "$status" "$1" 2> /dev/null
}

# wait_json EXPR WANT SECS (wall clock: python3 itself is slow under TCG)
wait_json() {
	local end=$((SECONDS + $3))
	while [ "$SECONDS" -lt "$end" ]; do
		[ "$(json_get "$1")" = "$2" ] && return 0
		sleep 0.1
	done
	die "twinfsd's status: $1 is '$(json_get "$1")' after $3 s, expected '$2'"
}

# --- corosync ---------------------------------------------------------------
mkdir -p /etc/corosync /var/lib/corosync /var/log/corosync /run/corosync
cat > /tmp/corosync.conf << EOC
totem {
	version: 2
	cluster_name: twinfs-vm
	transport: ${CLUSTER_TRANSPORT:-knet}
	crypto_cipher: none
	crypto_hash: none
	token: ${CLUSTER_TOKEN:-3000}
}
nodelist {
	node {
		ring0_addr: 10.0.0.1
		name: a
		nodeid: 1
	}
	node {
		ring0_addr: 10.0.0.2
		name: b
		nodeid: 2
	}
}
quorum {
	provider: corosync_votequorum
	two_node: 1
}
logging {
	to_stderr: yes
	to_syslog: no
	to_logfile: no
	timestamp: hires
}
EOC
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

# --- twinfsd ----------------------------------------------------------------
cat > /tmp/twinfsd.conf << EOC
; twinfsd in the VM test: one pair, one file system on the shared disk
[cluster]
fence_command = bash $here/fence-vm.sh %n
fence_timeout_ms = 40000
cluster_key = /tmp/cluster.key
status_file = $status
lost_quorum = freeze
mirror_after_takeover = ${CLUSTER_REMIRROR:-no}

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
"$TWINFS_BIN/twinfsd" --check -c /tmp/twinfsd.conf || die "twinfsd --check"
"$TWINFS_BIN/twinfsd" -f -c /tmp/twinfsd.conf > /out/twinfsd.log 2>&1 &
td_pid=$!

# Both members, the same leader (node 1, the lowest id), quorate.
wait_json 'len(j["members"])' 2 180
wait_json 'j["quorate"] and j["synced"]' True 60
echo "members=$(json_get '" ".join(str(m["id"]) for m in j["members"])') leader=$(json_get 'j["leader"]["id"]') ring=$(json_get 'j["ring_seq"]')" > /out/joined
log "joined: $(cat /out/joined); $(corosync-quorumtool -s | grep -E '^(Quorate|Flags)' | tr -s ' ' | tr '\n' ' ')"
corosync-quorumtool -s > /out/quorumtool.txt 2>&1

case $role in
a)
	wait_json 'j["filesystems"][0]["mounted_here"]' True 60
	for ((i = 0; i < 600; i++)); do
		read -r l < "$sys/mirror"
		[[ "$l" == *" mirrored "* ]] && break
		sleep 0.2
	done
	[[ "$l" == *" mirrored "* ]] || die "not mirrored after 120 s: $l"
	log "twinfsd mounted fs0, $l"
	(while :; do
		read -r l < "$sys/mirror"
		echo "$(date +%T.%N | cut -c1-12) $l" >> /out/mirror-trace
		sleep 0.5
	done) &
	python3 -S "$wl" run --seed "$CLUSTER_SEED" --iter 1 --workers "${CLUSTER_WORKERS:-2}" \
		--save-dmesg /out/dmesg || die "workload failed"
	die "the workload ended by itself (it runs until the host kills the guest)"
	;;
b)
	wait_json 'j["filesystems"][0]["target_here"]' True 60
	log "mirror target: $(cat /sys/fs/twinfs/mirror_target)"
	# twinfsd takes over by itself once a is gone and fenced.
	wait_json 'j["filesystems"][0]["holder"]["name"] + " " + j["filesystems"][0]["state"] + " " + str(j["filesystems"][0]["mounted_here"])' "b serving True" 200
	log "twinfsd took over: $(grep -E 'taken over|fence' /out/twinfsd.log | tail -3 | tr '\n' '|')"
	# twinfsctl status: the cluster from twinfsd's control socket (b leads
	# and holds fs0 now, a is its partner), the module over genetlink.
	"$TWINFS_BIN/twinfsctl" status > /out/twinfsctl-status.txt 2>&1 ||
		die "twinfsctl status: $(cat /out/twinfsctl-status.txt)"
	for re in '^cluster: node b \(2\), quorate, leader b \(2\)' '^fs0 +serving +b +a ' '^vda '; do
		grep -qE "$re" /out/twinfsctl-status.txt ||
			die "twinfsctl status: no '$re' in: $(tr '\n' '|' < /out/twinfsctl-status.txt)"
	done
	"$TWINFS_BIN/twinfsctl" status --json > /out/twinfsctl-status.json 2> /out/twinfsctl-status.err ||
		die "twinfsctl status --json: $(cat /out/twinfsctl-status.err)"
	python3 -S -c 'import json,sys
j = json.load(open(sys.argv[1])); c = j["cluster"]; f = c["filesystems"][0]
assert c["leader"]["name"] == "b" and f["holder"]["name"] == "b" and f["partner"]["name"] == "a", c
assert f["mounted_here"] and j["filesystems"][0]["device"] == "vda", j' /out/twinfsctl-status.json ||
		die "twinfsctl status --json: $(tr -d '\n' < /out/twinfsctl-status.json)"
	log "twinfsctl status: $(head -3 /out/twinfsctl-status.txt | tr -s ' ' | tr '\n' '|')"
	json_get 'j["last_takeover"]' > /out/takeover-times.txt
	while [ ! -e /out/takeover ]; do sleep 0.2; done
	. /out/takeover		# PREV_ITER, PREV_ACKS
	python3 -S "$wl" verify --seed "$CLUSTER_SEED" --prev-iter "$PREV_ITER" \
		--prev-acks "$PREV_ACKS" || die "verification after the takeover failed"
	# One more operation on the taken-over file system (removed again:
	# the verifier wants nothing but its own iterations in /mnt).
	run sh -c 'echo after-takeover > /mnt/after-takeover && sync'
	[ "$(cat /mnt/after-takeover)" = after-takeover ] || die "/mnt/after-takeover"
	run rm /mnt/after-takeover
	if [ "${CLUSTER_RETURN:-0}" = 1 ]; then
		: > /out/verified
		# a comes back and runs the target: our mount resyncs to it.
		for ((i = 0; i < 1200; i++)); do
			read -r l < "$sys/mirror"
			[[ "$l" == *" mirrored "* ]] && break
			sleep 0.2
		done
		[[ "$l" == *" mirrored "* ]] || die "not mirrored to the returned a after 240 s: $l"
		log "mirrored to the returned a: $l"
		echo "$l" > /out/remirror.txt
		t0=$(date +%s%N)
		r=$(python3 -c 'import socket,sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
s.connect("/run/twinfsd/control"); s.send(b"giveback fs0"); print(s.recv(4096).decode(), end="")')
		log "control socket: $r"
		[[ "$r" == ok* ]] || die "giveback: $r"
		wait_json 'j["filesystems"][0]["holder"]["name"] + " " + j["filesystems"][0]["state"] + " " + str(j["filesystems"][0]["mounted_here"])' "a serving False" 120
		echo "giveback_ms=$((($(date +%s%N) - t0) / 1000000))" > /out/giveback.txt
		log "giveback done: $(cat /out/giveback.txt); $(grep -E 'giveback|released' /out/twinfsd.log | tail -2 | tr '\n' '|')"
		: > /out/given-back
		kill -TERM "$td_pid"
		wait "$td_pid" || die "twinfsd exited $? on SIGTERM"
		kill -TERM "$cs_pid"
		wait "$cs_pid"
		log "done"
		exit 0
	fi
	kill -TERM "$td_pid"
	wait "$td_pid"
	rc=$?
	[ "$rc" = 0 ] || die "twinfsd exited $rc on SIGTERM: $(tail -3 /out/twinfsd.log)"
	grep -q 'unmounted /mnt for the shutdown' /out/twinfsd.log || die "twinfsd did not unmount on SIGTERM"
	! grep -q ' /mnt twinfs ' /proc/mounts || die "/mnt still mounted after twinfsd stopped"
	fsck_clean /dev/vda
	kill -TERM "$cs_pid"
	wait "$cs_pid"
	log "done"
	;;
a-return)
	# The map says b serves fs0: twinfsd starts our mirror target; b's
	# mount resyncs to it and b gives fs0 back (that may all be over
	# before this script looks): twinfsd stops the target and mounts.
	wait_json 'j["filesystems"][0]["holder"]["name"] + " " + j["filesystems"][0]["state"] + " " + str(j["filesystems"][0]["mounted_here"])' "a serving True" 240
	grep -q 'fs0: mirror target for node 2' /out/twinfsd.log || die "twinfsd never ran the mirror target for b"
	log "took fs0 back: $(grep -E 'mirror target for|taken back|taking back' /out/twinfsd.log | tail -3 | tr '\n' '|')"
	save=$(cat "$sys/records_replayed" 2> /dev/null)
	echo "records_replayed=$save" > /out/takeback.txt
	python3 -S "$wl" verify --no-prune --seed "$CLUSTER_SEED" \
		--manifest /out/manifest-in.json || die "verification after the giveback failed"
	while [ ! -e /out/b-done ]; do sleep 0.2; done
	kill -TERM "$td_pid"
	wait "$td_pid" || die "twinfsd exited $? on SIGTERM"
	! grep -q ' /mnt twinfs ' /proc/mounts || die "/mnt still mounted after twinfsd stopped"
	fsck_clean /dev/vda
	kill -TERM "$cs_pid"
	wait "$cs_pid"
	log "done"
	;;
esac
