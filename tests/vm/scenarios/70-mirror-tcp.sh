#!/usr/bin/env bash
# vm-guests: 2
# Mirroring of the change memory over TCP (issue 6), two guests at once:
# node A (owner, 10.0.0.1) and node B (partner, 10.0.0.2) on a private
# network of two UDP-socket netdevs, both with the SAME shared disk image
# (mkfs'd once here; lib.sh's --disk is share-rw=on, file.locking=off) and
# each with its own 64 MiB nvdimm image.
#
# Kill rounds (MIRROR_KILLS, default 10), each with a fresh boot of both:
#   B starts the mirror target on its /dev/pmem0; A mounts the shared disk
#   with nvram=/dev/pmem0,partner=10.0.0.2:7790,cluster_key=, waits until
#   /sys/fs/twinfs/vda/mirror says "mirrored", then runs
#   guest/crash_workload.py (2 or 3 workers: create, pwrite up to 32 KiB,
#   rename, unlink, truncate, link, symlink, ...; one ACK line per completed
#   operation in A's /out/acks.w<k>).  The host SIGKILLs A's QEMU 1-4 s into
#   the workload, counts the ACKs, and hands them to B (/out/takeover in B's
#   out dir): B stops the target, mounts with nvram=/dev/pmem0,node=0 (the
#   replay from B's copy), checks that every acknowledged operation is there
#   (the one in flight may or may not be), umount, fsck, mount again (nothing
#   replayed), check, umount, fsck.  Then fsck.twinfs -n of the image on the
#   host.  A's change memory starts all-zero in every round (the old owner
#   comes back as a fresh node; rejoining with its stale NVRAM is not
#   specified yet: MIRROR_KEEP_A_NVRAM=1 tries it), B's is kept (the resync
#   must overwrite it all).
# Bad-key round: B's target has key K1, A mounts with K2: the mount
# succeeds, stays degraded, A logs that the partner does not have the
# cluster key; with mirror=required an operation fails with ENOLINK; hostile
# peers (guest/mirror_peer.py: garbage, bad crc, bad length, wrong-key
# AUTH, malformed and out-of-range WRITEs after a good handshake) are
# dropped and logged by B ("malformed", "wrong cluster key", "bad
# request"); then A with K1 reaches "mirrored" and its operations are
# mirrored (B still serves a proper owner).
#
#   MIRROR_KILLS=N   kill rounds (10; TWINFS_SOAK=1: 100)
#   MIRROR_SEED      seed of the workloads and kill delays
#   MIRROR_BADKEY=0  skip the bad-key round
#   MIRROR_RETURN=0  skip the partner-killed-and-back round
#   MIRROR_OPTS      extra mount options of the owner in the kill rounds
#   MIRROR_KEEP_A_NVRAM=1  A keeps its nvdimm image from round to round (it
#                    mounts with what it had when it was killed, after B's
#                    takeover); A's check of the earlier iterations then
#                    shows whether a stale record came back
#
# Both guests of a round must run at once: B takes a slot, then A waits for
# the other one (VM_MAX_GUESTS=2); B's timeout (600 s) covers that wait.
set -uo pipefail
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/../mirror-lib.sh"

need_twinfs
mirror_setup mirror-summary.txt "mirror test" 70
k2=$(head -c 32 /dev/urandom | xxd -p -c 64)

# --- kill rounds ------------------------------------------------------------
mirror_kill_rounds

# --- the partner killed and back ---------------------------------------------
# A runs its workload mirrored; the host SIGKILLs B; A must go on alone
# (degraded, its ACK count still growing), then B boots again with the
# same nvdimm and starts its target; A resyncs and is mirrored again
# (resyncs=2) by a tail resync (B's copy is whole and of A's session, so
# only the chunks written while B was away are sent); then A is killed and
# B takes over from the resynced copy.
# B then also checks that a copy left partial by an unfinished resync is
# refused (MIRROR_PARTIAL).
# trace_has OA REGEX SECS: A's mirror trace gets a matching line.
trace_has() {
	local t
	for ((t = 0; t < $3 * 5; t++)); do
		tail -n 3 "$1/mirror-trace" 2>/dev/null | grep -qE "$2" && return 0
		sleep 0.2
	done
	return 1
}
if [ "${MIRROR_RETURN:-1}" != 0 ]; then
	r=$((kills + 1)) nw=2
	vm_image "$nva" 64M
	start_pair "$r" ra rb1
	oa=$(vm_out ra)
	sleep_ms $((1000 + RANDOM % 1001))
	vm_kill rb1 || fail "return: $VM_REASON"
	vm_wait rb1 >/dev/null 2>&1
	t_kill=$(date +%s%N)
	count_acks "$r" "$oa" live
	acks_kill=$total
	trace_has "$oa" ' degraded ' 30 || fail "return: A not degraded 30 s after B was killed: $(tail -1 "$oa/mirror-trace")"
	t_degr=$((($(date +%s%N) - t_kill) / 1000000))
	sleep 2
	count_acks "$r" "$oa" live
	acks_alone=$total
	[ "$acks_alone" -gt "$acks_kill" ] || fail "return: A acknowledged nothing while B was away ($acks_kill -> $acks_alone)"
	b_envs=(--env MIRROR_PARTIAL=1)
	vm_start rb2 "$guest" --disk "$img" --nvdimm "$nvb" "${net_b[@]}" --timeout 600 \
		--env MIRROR_ROLE=partner --env MIRROR_KEY="$k1" --env MIRROR_SEED="$seed" \
		--env MIRROR_RETAIN=$retain "${b_envs[@]}" || fail "return: $VM_REASON"
	t_back=$(date +%s%N)
	trace_has "$oa" ' mirrored .*resyncs=2' 120 || fail "return: A not mirrored again 120 s after B came back: $(tail -1 "$oa/mirror-trace")"
	t_resync=$((($(date +%s%N) - t_back) / 1000000))
	# B's copy was whole and of A's session: only the tail is sent.
	tail -n 1 "$oa/mirror-trace" | grep -q 'tail_resyncs=1' ||
		fail "return: A did a full resync, not a tail resync: $(tail -1 "$oa/mirror-trace")"
	tail_line=$(tail -n 1 "$oa/mirror-trace" | grep -o 'last_resync=[0-9/]*')
	count_acks "$r" "$oa" live
	acks_back=$total
	sleep_ms $((1000 + RANDOM % 1001))
	kill_and_takeover "$r" ra rb2 "after B came back"
	grep -q partial_refused=1 "$(vm_out rb2)/partial.txt" 2>/dev/null || fail "return: B did not check the partial copy"
	line="partner killed and back: A degraded ${t_degr} ms after B's kill, acks $acks_kill -> $acks_alone alone, mirrored again ${t_resync} ms after B's boot (tail resync, chunks sent: ${tail_line#last_resync=}, acks $acks_back), then $line; a partial copy was refused"
	vm_log "$line"
	echo "$line" >> "$summary"
	b_envs=()
fi

# --- bad key, hostile peers, then the right key -------------------------------
if [ "${MIRROR_BADKEY:-1}" != 0 ]; then
	vm_image "$nva" 64M
	vm_start kb "$guest" --disk "$img" --nvdimm "$nvb" "${net_b[@]}" --timeout 600 \
		--env MIRROR_ROLE=badkey-partner --env MIRROR_KEY="$k1" ||
		fail "bad key: $VM_REASON"
	vm_run ka "$guest" --disk "$img" --nvdimm "$nva" "${net_a[@]}" --timeout 300 \
		--env MIRROR_ROLE=badkey-owner --env MIRROR_KEY="$k1" --env MIRROR_BADKEY="$k2" ||
		fail "bad key (A): $VM_REASON"
	okb=$(vm_out kb) oka=$(vm_out ka)
	: > "$okb/check"
	vm_wait kb || fail "bad key (B): $VM_REASON"
	host_fsck "the bad-key round"
	# B's kernel log about each hostile connection, found by its port.
	bd=$okb/dmesg
	while read -r _ mode addr _; do
		want='refused' why=
		case $mode in
		garbage | badcrc | badlen) why='malformed handshake' ;;
		wrongkey) why='wrong cluster key' ;;
		badframe | baddata) want='malformed frame'; why='dropping it' ;;
		badreq) want='bad request'; why='dropping it' ;;
		esac
		l=$(grep -E -- "${addr//./\\.}[:;]" "$bd" | grep -F "$want" | head -1)
		[ -n "$l" ] || fail "bad key: B logged nothing about the $mode peer $addr (grep '$want')"
		[[ "$l" == *"$why"* ]] || fail "bad key: B's line about the $mode peer: $l (expected '$why')"
		vm_log "B on $mode: ${l#*] }"
	done < "$oka/peer-results.txt"
	[ "$(wc -l < "$oka/peer-results.txt")" = 7 ] || fail "bad key: not every peer ran"
	# A's own (kernel) attempts with the wrong key.
	kr=$(grep -F 'refused 10.0.0.1' "$bd" | grep -vF -f <(awk '{ print $3 ":" }' "$oka/peer-results.txt") |
		sed 's/.*refused [0-9.:]*: //' | sort | uniq -c | tr -s ' ' | paste -sd ';')
	vm_log "B on A's kernel with the wrong key: ${kr:-nothing}"
	grep -q 'wrong cluster key' "$bd" || fail "bad key: B never logged 'wrong cluster key'"
	grep -q 'malformed' "$bd" || fail "bad key: B never logged 'malformed'"
	grep -q 'serving node 0 at 10.0.0.1' "$bd" || fail "bad key: B never served A"
	# The proper owner was served after the hostile peers.
	last_bad=$(grep -nE 'malformed|bad request|wrong cluster key' "$bd" | tail -1 | cut -d: -f1)
	served=$(grep -n 'serving node 0 at 10.0.0.1' "$bd" | tail -1 | cut -d: -f1)
	[ "$served" -gt "$last_bad" ] || fail "bad key: B did not serve A after the hostile peers"
	line="bad key: A $(grep '^degraded_mirror_line=' "$oka/badkey.txt" | cut -d= -f2-), 'does not have the cluster key' x$(sed -n 's/^nokey_messages=//p' "$oka/badkey.txt") in ~5 s; B on A's kernel: ${kr:-nothing}; right key afterwards: $(sed -n 's/^good_mirror_line=//p' "$oka/badkey.txt"); B's target: $(cat "$okb/target-final.txt")"
	vm_log "$line"
	echo "$line" >> "$summary"
fi
[ "$lost" = 0 ] || fail "kills: $kills, acknowledged ops checked: $checked, lost: $lost"
exit 0
