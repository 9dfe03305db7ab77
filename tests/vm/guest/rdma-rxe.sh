# shellcheck shell=bash
# Guest half of scenarios/72-rdma-rxe.sh: Soft-RoCE (rdma_rxe) between two
# guests on the harness's UDP-socket network, the groundwork of the RDMA
# mirror transport (Documentation/rdma-transport.md).
#
#   RDMA_ROLE=server  node B (10.0.0.2): rxe0 on the link, a TCP echo
#                     responder (python3), and, with RDMA_TEST_KO, that test
#                     module as the RDMA server; then serves the host's
#                     requests (/out/devremove, /out/reload) until /out/stop
#                     or until the host kills it.
#   RDMA_ROLE=client  node A (10.0.0.1): rxe0, ICMP and TCP round trips to B,
#                     and, with RDMA_TEST_KO, the kernel RDMA round trips
#                     (RDMA WRITE + SEND, ACK by SEND) and the teardown
#                     cases: graceful disconnect, B's rxe device removed,
#                     B's module reloaded, B killed (dead peer).
#
# Environment: RDMA_TEST_KO (a kernel module with the interface of the
# scratch module trping: role=, addr=, sizes=, iters=, poke; optional),
# RDMA_ITERS (500), RDMA_PING (100), RDMA_TCP_ITERS (500),
# RDMA_ACK_TIMEOUT (the module's ack_timeout= for the dead-peer phase, 14),
# RDMA_RETRY (the RC retry count, 6: rxe retries forever with 7),
# RDMA_PERSIST=1 (the server persists each write to /dev/pmem0 with FUA).
# Results: /out/results.txt (key=value lines).
# shellcheck source=../guest-lib.sh
. "$TWINFS_GUEST_LIB"

role=${RDMA_ROLE:-}
ko=${RDMA_TEST_KO:-}
A=10.0.0.1
B=10.0.0.2
tcp_port=7792
res=/out/results.txt
: > "$res"

result() { log "result: $1=$2"; printf '%s=%s\n' "$1" "$2" >> "$res"; }

# setup_net IP: the one virtio-net interface (ifc) gets IP/24.
setup_net() {
	net_up "$1"
	ifc=$NET_IFC
}

# rxe_up: rdma_rxe on the interface, ACTIVE.
rxe_up() {
	local st _
	command -v rdma > /dev/null || die "no rdma tool (iproute2)"
	run modprobe crc32_generic	# else: "failed to init crc32 algorithm err:-2"
	run modprobe rdma_rxe
	run modprobe rdma_cm
	run modprobe libcrc32c
	run rdma link add rxe0 type rxe netdev "$ifc"
	for _ in $(seq 50); do
		st=$(rdma link show rxe0/1 2>&1)
		[[ "$st" == *"state ACTIVE"* ]] && break
		sleep 0.1
	done
	[[ "$st" == *"state ACTIVE"* ]] || die "rxe0 is not ACTIVE: $st"
	log "rdma link: $st"
	log "rdma dev: $(rdma dev show rxe0 2>&1 | tr '\n' ' ')"
	log "gid 1: $(cat /sys/class/infiniband/rxe0/ports/1/gids/1 2>/dev/null)"
}

# ping_stats PEER N: busybox ping (the host has no iputils), the median of
# N echo round trips.
ping_stats() {
	busybox ping -c "$2" -i 0.02 "$1" 2>&1 |
		sed -n 's/.*time=\([0-9.]*\) ms.*/\1/p' | sort -n |
		awk '{ v[NR] = $1 } END { if (!NR) exit 1
			printf "n=%d min=%.0f p50=%.0f p90=%.0f p99=%.0f max=%.0f us\n", NR,
				v[1] * 1000, v[int(NR / 2) + 1] * 1000, v[int(NR * 0.9) + 1] * 1000,
				v[int(NR * 0.99) + 1] * 1000, v[NR] * 1000 }'
}

tcp_echo_server() {
	python3 - "$tcp_port" <<'EOF' &
import socket, struct, sys, threading
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("0.0.0.0", int(sys.argv[1])))
s.listen(4)
def serve(c):
    c.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    f = c.makefile("rb")
    while True:
        h = f.read(4)
        if len(h) < 4:
            return
        n, = struct.unpack("<I", h)
        if len(f.read(n)) < n:
            return
        c.sendall(b"A" * 8)
while True:
    c, _ = s.accept()
    threading.Thread(target=serve, args=(c,), daemon=True).start()
EOF
}

# tcp_rtt PEER SIZE N: request of SIZE bytes, 8-byte answer, over one TCP
# connection with TCP_NODELAY (what the TCP mirror does per WRITE/ACK).
tcp_rtt() {
	python3 - "$@" "$tcp_port" <<'EOF'
import socket, struct, sys, time
peer, size, n, port = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
c = socket.create_connection((peer, port), timeout=10)
c.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
msg = struct.pack("<I", size) + b"x" * size
lat = []
for i in range(n + 20):
    t0 = time.perf_counter_ns()
    c.sendall(msg)
    got = b""
    while len(got) < 8:
        d = c.recv(8 - len(got))
        if not d:
            sys.exit("connection closed")
        got += d
    if i >= 20:
        lat.append((time.perf_counter_ns() - t0) // 1000)
lat.sort()
print("n=%d min=%d p50=%d p90=%d p99=%d max=%d us" % (n, lat[0], lat[n // 2],
      lat[n * 9 // 10], lat[n * 99 // 100], lat[-1]))
EOF
}

# wait_host NAME: the host created /out/NAME.
wait_host() {
	local n=0
	while [ ! -e "/out/$1" ]; do
		sleep 0.2
		n=$((n + 1))
		[ $((n % 150)) != 0 ] || log "waiting for the host ($1)"
	done
}

# ask_host NAME: ask the host for action NAME, wait until it is done.
ask_host() {
	: > "/out/req-$1"
	wait_host "done-$1"
}

# ko_load ARGS...: insmod the test module; on a refused connection (the
# server not yet listening) try again for up to 90 s.
ko_load() {
	local t0=$SECONDS out
	while :; do
		out=$(insmod "$ko" retry="${RDMA_RETRY:-6}" "$@" 2>&1) && return 0
		# Only a server not listening yet is worth another try.
		if [[ "$out" != *"Connection refused"* ]] || [ $((SECONDS - t0)) -ge 90 ]; then
			log "insmod: $out"
			return 1
		fi
		sleep 2
	done
}

# poke SIZE: one write through the test module; prints its status.
poke() {
	if echo "$1" > /sys/module/trping/parameters/poke 2> /dev/null; then
		echo ok
	else
		echo failed
	fi
}

ms_since() { echo $((($(date +%s%N) - $1) / 1000000)); }

dmesg_grep() { dmesg | sed -n "s/.*trping: $1/\\1/p"; }

case $role in
server)
	setup_net $B
	rxe_up
	tcp_echo_server
	if [ -n "$ko" ]; then
		args=(role=server)
		if [ "${RDMA_PERSIST:-0}" = 1 ]; then
			for m in libnvdimm nd_pmem nfit; do modprobe $m 2> /dev/null; done
			for _ in $(seq 50); do [ -b /dev/pmem0 ] && break; sleep 0.1; done
			[ -b /dev/pmem0 ] || die "no /dev/pmem0"
			args+=(dev=/dev/pmem0)
		fi
		run insmod "$ko" "${args[@]}"
	fi
	: > /out/ready
	while [ ! -e /out/stop ]; do
		if [ -e /out/devremove ] && [ ! -e /out/devremove-done ]; then
			t0=$(date +%s%N)
			run rdma link delete rxe0
			result devremove_ms "$(ms_since "$t0")"
			sleep 1
			run rdma link add rxe0 type rxe netdev "$ifc"
			: > /out/devremove-done
		fi
		if [ -e /out/reload ] && [ ! -e /out/reload-done ]; then
			t0=$(date +%s%N)
			run rmmod trping
			result server_rmmod_connected_ms "$(ms_since "$t0")"
			run insmod "$ko" "${args[@]}"
			: > /out/reload-done
		fi
		# The host may kill this guest: keep the module's log in /out.
		[ -z "$ko" ] || dmesg | grep trping > /out/server-dmesg.txt
		sleep 0.2
	done
	[ -z "$ko" ] || run rmmod trping
	log "server done"
	;;
client)
	setup_net $A
	rxe_up
	t0=$SECONDS
	while ! busybox ping -c1 -W1 $B > /dev/null 2>&1; do
		[ $((SECONDS - t0)) -lt 180 ] || die "no answer from $B"
	done
	sleep 2
	result icmp_rtt "$(ping_stats $B "${RDMA_PING:-100}")"
	for _ in $(seq 30); do	# the echo server may still be starting
		tcp_rtt $B 64 5 > /dev/null 2>&1 && break
		sleep 1
	done
	for s in 64 4096 32768; do
		r=$(tcp_rtt $B $s "${RDMA_TCP_ITERS:-500}") || die "tcp round trips failed: $r"
		result "tcp_rtt_$s" "$r"
	done
	if [ -n "$ko" ]; then
		# 1. round trips, then a graceful disconnect.
		ko_load role=client addr=$B iters="${RDMA_ITERS:-500}" \
			sizes=64,4096,32768,262144 ||
			die "RDMA client failed: $(dmesg | grep trping | tail -3 | tr '\n' '|')"
		dmesg_grep 'client: connected \(.*\)' | tail -1 | sed 's/^/connected /' | while read -r l; do log "$l"; done
		while read -r sz rest; do
			result "rdma_rtt_${sz#size=}" "$rest"
		done < <(dmesg_grep 'RESULT \(.*\)')
		t0=$(date +%s%N)
		run rmmod trping
		result client_rmmod_ms "$(ms_since "$t0")"

		# 2. The server's rxe device goes away under a connection.
		ko_load role=client addr=$B iters=20 sizes=4096 || die "reconnect failed"
		[ "$(poke 4096)" = ok ] || die "poke failed on a fresh connection"
		ask_host devremove
		sleep 2
		t0=$(date +%s%N)
		p=$(poke 4096)
		result after_devremove "poke=$p in $(ms_since "$t0") ms"
		t0=$(date +%s%N)
		run rmmod trping
		result client_rmmod_after_devremove_ms "$(ms_since "$t0")"

		# 3. A new connection reaches the re-added device; then the server's
		# module is unloaded under it.
		ko_load role=client addr=$B iters=20 sizes=4096 ||
			die "no reconnection after the device came back"
		[ "$(poke 4096)" = ok ] || die "poke failed after the device came back"
		ask_host reload
		sleep 2
		t0=$(date +%s%N)
		p=$(poke 4096)
		result after_server_reload "poke=$p in $(ms_since "$t0") ms"
		run rmmod trping

		# 4. Dead peer: the host kills the server's QEMU.
		ko_load role=client addr=$B iters=20 sizes=4096 \
			ack_timeout="${RDMA_ACK_TIMEOUT:-14}" timeout_ms=20000 ||
			die "no reconnection after the server reloaded"
		[ "$(poke 4096)" = ok ] || die "poke failed before the kill"
		ask_host kill
		t0=$(date +%s%N)
		p=$(poke 4096)
		result dead_peer "poke=$p after $(ms_since "$t0") ms (ack_timeout=${RDMA_ACK_TIMEOUT:-14} retry=${RDMA_RETRY:-6})"
		log "$(dmesg | grep trping | tail -4 | tr '\n' '|')"
		t0=$(date +%s%N)
		run rmmod trping
		result client_rmmod_dead_peer_ms "$(ms_since "$t0")"
	fi
	dmesg | grep -E 'trping|rdma_rxe|rxe' > /out/rdma-dmesg.txt
	log "client done"
	;;
*)
	die "RDMA_ROLE must be server or client"
	;;
esac
