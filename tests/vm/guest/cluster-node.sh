# shellcheck shell=bash
# Guest half of scenarios/91-cluster-rounds.sh: one node (CLUSTER_NODE a or
# b) of the two-node cluster (guest/cluster-lib.sh: corosync, twinfsd).
# twinfsd does everything about twinfs; this script runs the workload
# where the host says and does what the host asks, one command at a time:
# the host writes /out/cmd-N (N = 1, 2, ...), the script answers
# /out/done-N (one line) once it is done.
#
#   serve ITER PREV_ITER PREV_ACKS  wait until twinfsd serves fs0 here, then
#           guest/crash_workload.py run: verify iteration PREV_ITER (PREV_ACKS
#           acknowledged operations per worker) and the earlier ones
#           (/out/manifest-in.json when the host put one there), then
#           iteration ITER until killed (acks in /out/acks.w<k>); done once
#           the workers run (/out/verify-result has the counts)
#   stop    SIGKILL the workload (its last operation may be unacknowledged)
#   giveback  "giveback fs0" on twinfsd's control socket; done when the
#           other node serves it
#   restart-twinfsd  SIGKILL twinfsd (the module keeps serving), start it
#           again; done when it serves fs0 again (adopted, not remounted)
#   link down|up  the cluster link (both ways: nothing leaves or arrives)
#   quit [fsck]  stop twinfsd (it unmounts and releases what it serves) and
#           corosync; fsck.twinfs the disk; exit 0
#
# Environment: as guest/cluster-lib.sh, plus CLUSTER_SEED, CLUSTER_WORKERS.
. "$TWINFS_GUEST_LIB"
. "$(dirname "$VM_SCRIPT")/cluster-lib.sh"

cluster_up
wl_pid=
n=1
while :; do
	while [ ! -e "/out/cmd-$n" ]; do
		[ -z "$td_pid" ] || kill -0 "$td_pid" 2> /dev/null ||
			die "twinfsd died: $(tail -3 /out/twinfsd.log)"
		sleep 0.1
	done
	read -r verb a1 a2 a3 < "/out/cmd-$n"
	log "command $n: $verb $a1 $a2 $a3"
	reply=ok
	case $verb in
	serve)
		wait_json "$FS0" "$node serving true" 180
		log "twinfsd serves fs0 here: $(read -r l < "$sys/mirror"; echo "$l")"
		m=()
		[ ! -e /out/manifest-in.json ] || m=(--manifest /out/manifest-in.json)
		rm -f /out/started /out/verify-result
		setsid python3 -S "$wl" run --seed "$CLUSTER_SEED" --iter "$a1" \
			--prev-iter "$a2" --prev-acks "$a3" "${m[@]}" \
			--workers "${CLUSTER_WORKERS:-2}" --save-dmesg /out/dmesg &
		wl_pid=$!
		while [ ! -e /out/started ]; do
			kill -0 "$wl_pid" 2> /dev/null || die "the workload ended: $(cat /out/verify-result 2> /dev/null | tr '\n' ' ')"
			sleep 0.1
		done
		reply="ok $(tr '\n' ' ' < /out/verify-result)"
		;;
	stop)
		[ -n "$wl_pid" ] || die "stop: no workload"
		kill -KILL -- "-$wl_pid"
		wait "$wl_pid"
		wl_pid=
		;;
	giveback)
		r=$(control "giveback fs0")
		log "control socket: $r"
		[[ "$r" == ok* ]] || die "giveback: $r"
		other=a
		[ "$node" = b ] || other=b
		wait_json "$FS0" "$other serving false" 120
		reply="ok $(grep -E 'giveback|released' /out/twinfsd.log | tail -1)"
		;;
	restart-twinfsd)
		kill -KILL "$td_pid"
		wait "$td_pid"
		grep -q ' /mnt twinfs ' /proc/mounts || die "/mnt is not mounted after twinfsd was killed"
		sleep "${a1:-1}"
		twinfsd_start
		wait_json '.synced and .quorate and (.members | length) == 2' true 60
		wait_json "$FS0" "$node serving true" 60
		grep -q ' /mnt twinfs ' /proc/mounts || die "/mnt is not mounted after twinfsd's restart"
		reply="ok $(grep -E 'adopt' /out/twinfsd.log | tail -1)"
		;;
	link)
		run ip link set "$ifc" "$a1"
		;;
	quit)
		[ -z "$wl_pid" ] || die "quit: the workload still runs"
		twinfsd_stop
		! grep -q ' /mnt twinfs ' /proc/mounts || die "/mnt still mounted after twinfsd stopped"
		corosync_stop
		[ "$a1" != fsck ] || fsck_clean /dev/vda
		echo ok > "/out/done-$n"
		log "done"
		exit 0
		;;
	*) die "unknown command: $verb" ;;
	esac
	echo "$reply" > "/out/done-$n.tmp" && mv "/out/done-$n.tmp" "/out/done-$n"
	n=$((n + 1))
done
