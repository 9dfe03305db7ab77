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

role=${CLUSTER_ROLE:-}
case $role in
a | a-return) CLUSTER_NODE=a ;;
b) CLUSTER_NODE=b ;;
*) die "CLUSTER_ROLE must be a, b or a-return" ;;
esac
. "$(dirname "$VM_SCRIPT")/cluster-lib.sh"
cluster_up

case $role in
a)
	wait_json '.filesystems[0].mounted_here' true 60
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
	wait_json '.filesystems[0].target_here' true 60
	log "mirror target: $(cat /sys/fs/twinfs/mirror_target)"
	# twinfsd takes over by itself once a is gone and fenced.
	wait_json "$FS0" "b serving true" 200
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
	json_get '.last_takeover' > /out/takeover-times.txt
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
		r=$(control "giveback fs0")
		log "control socket: $r"
		[[ "$r" == ok* ]] || die "giveback: $r"
		wait_json "$FS0" "a serving false" 120
		echo "giveback_ms=$((($(date +%s%N) - t0) / 1000000))" > /out/giveback.txt
		log "giveback done: $(cat /out/giveback.txt); $(grep -E 'giveback|released' /out/twinfsd.log | tail -2 | tr '\n' '|')"
		: > /out/given-back
		twinfsd_stop
		corosync_stop
		log "done"
		exit 0
	fi
	twinfsd_stop
	grep -q 'unmounted /mnt for the shutdown' /out/twinfsd.log || die "twinfsd did not unmount on SIGTERM"
	! grep -q ' /mnt twinfs ' /proc/mounts || die "/mnt still mounted after twinfsd stopped"
	fsck_clean /dev/vda
	corosync_stop
	log "done"
	;;
a-return)
	# The map says b serves fs0: twinfsd starts our mirror target; b's
	# mount resyncs to it and b gives fs0 back (that may all be over
	# before this script looks): twinfsd stops the target and mounts.
	wait_json "$FS0" "a serving true" 240
	grep -q 'fs0: mirror target for node 2' /out/twinfsd.log || die "twinfsd never ran the mirror target for b"
	log "took fs0 back: $(grep -E 'mirror target for|taken back|taking back' /out/twinfsd.log | tail -3 | tr '\n' '|')"
	save=$(cat "$sys/records_replayed" 2> /dev/null)
	echo "records_replayed=$save" > /out/takeback.txt
	python3 -S "$wl" verify --no-prune --seed "$CLUSTER_SEED" \
		--manifest /out/manifest-in.json || die "verification after the giveback failed"
	while [ ! -e /out/b-done ]; do sleep 0.2; done
	twinfsd_stop
	! grep -q ' /mnt twinfs ' /proc/mounts || die "/mnt still mounted after twinfsd stopped"
	fsck_clean /dev/vda
	corosync_stop
	log "done"
	;;
esac
