#!/usr/bin/env bash
# vm-guests: 2
# Soft-RoCE between two guests (groundwork of the RDMA mirror transport,
# issue 6; Documentation/rdma-transport.md): node A (10.0.0.1) and node B
# (10.0.0.2) on the harness's UDP-socket network each bring up rdma_rxe on
# their virtio-net interface (rxe0 must be ACTIVE); A measures the ICMP and
# TCP (python3, TCP_NODELAY, request + 8-byte answer) round trips to B.
#
# With RDMA_TEST_KO=<module> (a kernel RDMA ping with the interface of the
# scratch module trping.ko of Documentation/rdma-transport.md, "Verified on
# Soft-RoCE"; not in the repository: role=server|client, addr=, sizes=,
# iters=, retry=, ack_timeout=, timeout_ms=, dev=, and a write-only
# parameter poke=SIZE that does one mirrored write and fails with its error),
# also: kernel rdma_cm/RC round trips of RDMA WRITE + SEND with a SEND as
# the ACK for 64 B..256 KiB, a graceful disconnect, B's rxe device deleted
# under a connection, B's module unloaded under a connection, and B killed
# (how long A's next write takes to fail).  The host relays A's requests
# (/out/req-NAME in A's out dir) to B.
#
# Results: results-a.txt and results-b.txt in the scenario's log dir.
#   RDMA_TEST_KO, RDMA_ITERS (500), RDMA_ACK_TIMEOUT (14), RDMA_RETRY (6),
#   RDMA_PERSIST=1 (B writes each write to its /dev/pmem0 with FUA before the ACK),
#   RDMA_PIN=1 (each QEMU on its own core, for timing)
set -uo pipefail
. "$(dirname "$0")/../lib.sh"

guest=$VM_TESTS/guest/rdma-rxe.sh
ko=${RDMA_TEST_KO:-}
[ -z "$ko" ] || [ -f "$ko" ] || fail "RDMA_TEST_KO=$ko: no such file"
command -v rdma > /dev/null || fail "no rdma tool (iproute2) on the host"

pa=$(vm_udp_ports) || fail "no free UDP ports"
pb=$((pa + 1))
pin_a=() pin_b=()
[ "${RDMA_PIN:-0}" != 1 ] || { pin_a=(--pin 0); pin_b=(--pin 1); }
envs=(--env RDMA_ITERS="${RDMA_ITERS:-500}" --env RDMA_ACK_TIMEOUT="${RDMA_ACK_TIMEOUT:-14}"
	--env RDMA_RETRY="${RDMA_RETRY:-6}"
	--env RDMA_PERSIST="${RDMA_PERSIST:-0}")
[ -z "$ko" ] || envs+=(--env RDMA_TEST_KO="$(realpath "$ko")")
nv=()
if [ "${RDMA_PERSIST:-0}" = 1 ]; then
	vm_image "$VM_TMPDIR/nvram-b.img" 64M
	nv=(--nvdimm "$VM_TMPDIR/nvram-b.img")
fi

vm_start b "$guest" --udp "$pb:$pa:52:54:00:72:00:02" --timeout 900 "${pin_b[@]}" \
	"${nv[@]}" --env RDMA_ROLE=server "${envs[@]}" || fail "$VM_REASON"
ob=$(vm_out b)
# A starts once B is up: the time B waits for a slot (other runs on the
# machine) must not count against A's wait for B's answers.
while [ ! -e "$ob/ready" ]; do
	[ ! -e "$ob/qemu.rc" ] || { vm_wait b; fail "B ended before it was ready: $VM_REASON"; }
	sleep 0.5
done
vm_start a "$guest" --udp "$pa:$pb:52:54:00:72:00:01" --timeout 900 "${pin_a[@]}" \
	--env RDMA_ROLE=client "${envs[@]}" || fail "$VM_REASON"
oa=$(vm_out a)

# Relay A's requests to B until A ends.
killed=0
declare -A done_req=()
while [ ! -e "$oa/qemu.rc" ]; do
	for f in "$oa"/req-*; do
		[ -e "$f" ] || continue
		n=${f##*/req-}
		[ -z "${done_req[$n]:-}" ] || continue
		done_req[$n]=1
		vm_log "A asks: $n"
		case $n in
		devremove | reload)
			: > "$ob/$n"
			for ((t = 0; t < 600; t++)); do
				[ -e "$ob/$n-done" ] || [ -e "$ob/qemu.rc" ] && break
				sleep 0.2
			done
			[ -e "$ob/$n-done" ] || fail "B did not do $n: $(tail -3 "$ob/script.log" 2>/dev/null)"
			;;
		kill)
			vm_kill b || fail "$VM_REASON"
			killed=1
			;;
		*) fail "unknown request $n from A" ;;
		esac
		: > "$oa/done-$n"
	done
	sleep 0.2
done
vm_wait a || fail "$VM_REASON"
[ "$killed" = 1 ] || : > "$ob/stop"
vm_wait b || fail "$VM_REASON"
cp "$oa/results.txt" "$VM_LOGDIR/results-a.txt"
cp "$ob/results.txt" "$VM_LOGDIR/results-b.txt" 2>/dev/null
sed 's/^/  A: /' "$VM_LOGDIR/results-a.txt" >&2
sed 's/^/  B: /' "$VM_LOGDIR/results-b.txt" >&2
grep -q '^icmp_rtt=' "$VM_LOGDIR/results-a.txt" || fail "no ICMP round trips measured"
grep -q '^tcp_rtt_4096=' "$VM_LOGDIR/results-a.txt" || fail "no TCP round trips measured"
if [ -n "$ko" ]; then
	grep -q '^rdma_rtt_4096=' "$VM_LOGDIR/results-a.txt" || fail "no RDMA round trips measured"
	grep -q '^dead_peer=poke=failed' "$VM_LOGDIR/results-a.txt" ||
		fail "a write to a killed peer did not fail: $(grep '^dead_peer' "$VM_LOGDIR/results-a.txt")"
fi
exit 0
