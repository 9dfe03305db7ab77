#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
# twinfsd's membership logic on real corosync, without VMs: two nodes, each
# a network namespace (veth 10.9.0.1 <-> 10.9.0.2) and a mount namespace
# (private /run, /dev/shm and /var/lib/corosync: one corosync each), run
# corosync (knet, two_node) and `twinfsd --dry-run` (no twinfs.ko: module
# calls are logged).  Root only; about 20 s.
#
#   1. both agree on the membership [1 2] and the leader 1; a "mounts", b
#      starts the mirror target;
#   2. a's corosync and twinfsd are SIGKILLed: b fences a exactly once
#      (the fence command kills a's processes and logs), takes over and
#      logs the time from the membership change;
#   3. a comes back (a fresh node): it adopts the map and mirrors for b;
#   4. "giveback fs0" on a's control socket: b unmounts and RELEASEs, a
#      takes it back, no fence;
#   5. a stops (SIGTERM): it unmounts and RELEASEs; b takes over, no fence.
# Prints PASS or FAIL: <reason>; logs in $TWINFS_NETNS_DIR (/tmp/twinfs-netns).
set -uo pipefail

src=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
twinfsd=${TWINFSD:-$src/build/twinfsd}
dir=${TWINFS_NETNS_DIR:-/tmp/twinfs-netns}
ns1=twinfs-t1 ns2=twinfs-t2

fail() { echo "FAIL: $*"; exit 1; }
[ "$(id -u)" = 0 ] || fail "needs root (network namespaces)"
[ -x "$twinfsd" ] || fail "no $twinfsd (make user)"
command -v corosync > /dev/null || fail "corosync is not installed"

cleanup() {
	local n p
	for n in 1 2; do
		for p in twinfsd corosync; do
			[ -s "$dir/n$n/$p.pid" ] && kill -9 "$(cat "$dir/n$n/$p.pid")" 2> /dev/null
		done
	done
	ip netns del $ns1 2> /dev/null
	ip netns del $ns2 2> /dev/null
}
trap cleanup EXIT
cleanup
rm -rf "$dir"
mkdir -p "$dir"

ip netns add $ns1 && ip netns add $ns2 &&
	ip link add twinfs-v1 type veth peer name twinfs-v2 &&
	ip link set twinfs-v1 netns $ns1 && ip link set twinfs-v2 netns $ns2 &&
	ip -n $ns1 addr add 10.9.0.1/24 dev twinfs-v1 && ip -n $ns2 addr add 10.9.0.2/24 dev twinfs-v2 &&
	ip -n $ns1 link set twinfs-v1 up && ip -n $ns2 link set twinfs-v2 up &&
	ip -n $ns1 link set lo up && ip -n $ns2 link set lo up || fail "cannot set up the namespaces"

# shellcheck source=corosync-conf.sh
. "$(dirname "$0")/corosync-conf.sh"
corosync_conf twinfs-netns knet 1000 10.9.0.1 10.9.0.2 > "$dir/corosync.conf"
cat > "$dir/fence.sh" << EOF2
#!/bin/sh
# fence.sh NAME ID: "power off" the node: kill its corosync and twinfsd.
echo "\$1" >> "$dir/fence.log"
kill -9 \$(cat "$dir/n\$2/corosync.pid" "$dir/n\$2/twinfsd.pid" 2> /dev/null) 2> /dev/null
exit 0
EOF2
chmod +x "$dir/fence.sh"

# start N: corosync and twinfsd of node N in its namespaces.
start() {
	local n=$1 d=$dir/n$1 ns
	ns=twinfs-t$1
	mkdir -p "$d/run" "$d/lib"
	sed "s/@N@/$n/" > "$d/twinfsd.conf" << EOF2
[cluster]
fence_command = $dir/fence.sh %n %i
status_file = $d/status.json
cluster_key = $dir/key
daemon_grace_ms = 3000
[node a]
id = 1
address = 10.9.0.1
[node b]
id = 2
address = 10.9.0.2
[pair ab]
owner = a
partner = b
[filesystem fs0]
pair = ab
device = /dev/vda
mountpoint = $d/mnt
nvram = /dev/pmem0
EOF2
	ip netns exec "$ns" unshare -m sh -c "
		mount -t tmpfs tmpfs /dev/shm && mount --bind '$d/run' /run &&
		mount --bind '$d/lib' /var/lib/corosync || exit 1
		corosync -f -c '$dir/corosync.conf' > '$d/corosync.log' 2>&1 & echo \$! > '$d/corosync.pid'
		for i in \$(seq 50); do corosync-cmapctl -g runtime.config.totem.token > /dev/null 2>&1 && break; sleep 0.2; done
		'$twinfsd' -f -n -c '$d/twinfsd.conf' >> '$d/twinfsd.log' 2>&1 & echo \$! > '$d/twinfsd.pid'
		wait" > /dev/null 2>&1 &
}

# restart_twinfsd N: twinfsd of node N again, in the namespaces of its
# corosync (which kept running).
restart_twinfsd() {
	local d=$dir/n$1
	nsenter -t "$(cat "$d/corosync.pid")" -m -n -- \
		"$twinfsd" -f -n -c "$d/twinfsd.conf" >> "$d/twinfsd.log" 2>&1 &
	echo $! > "$d/twinfsd.pid"
	disown
}

# js N EXPR: a value of node N's status file (python3 expression on j).
js() {
	python3 -c 'import json,sys
try:
    j = json.load(open(sys.argv[1])); print(eval(sys.argv[2]))
except Exception:
    print("")' "$dir/n$1/status.json" "$2"
}
# wait_js N EXPR WANT SECS
wait_js() {
	local t
	for ((t = 0; t < $4 * 10; t++)); do
		[ "$(js "$1" "$2")" = "$3" ] && return 0
		sleep 0.1
	done
	fail "node $1: $2 is '$(js "$1" "$2")' after $4 s, expected '$3' (logs: $dir)"
}
fsx='j["filesystems"][0]'
holder="${fsx}[\"holder\"][\"name\"] + \" \" + ${fsx}[\"state\"]"

start 1
start 2
for n in 1 2; do
	wait_js $n '" ".join(str(m["id"]) for m in j["members"]) + " " + str(j["leader"]["id"]) + " " + str(j["quorate"])' "1 2 1 True" 20
done
wait_js 1 "${fsx}[\"mounted_here\"]" True 5
wait_js 2 "${fsx}[\"target_here\"]" True 5
echo "1. members [1 2], leader 1 on both; a serves fs0, b is its mirror target"

kill -9 "$(cat "$dir/n1/corosync.pid")" "$(cat "$dir/n1/twinfsd.pid")"
wait_js 2 "$holder + \" \" + str(${fsx}[\"mounted_here\"])" "b serving True" 20
sleep 1
[ "$(cat "$dir/fence.log")" = a ] || fail "fence log: $(tr '\n' ' ' < "$dir/fence.log") (expected a, once)"
t=$(grep -h 'taken over from node 1' "$dir/n2/twinfsd.log" | sed 's/.*: first operation/first operation/')
[ -n "$t" ] || fail "b logged no takeover"
echo "2. a killed: b fenced it once and took over: $t"

start 1
wait_js 1 '" ".join(str(m["id"]) for m in j["members"])' "1 2" 20
wait_js 1 "$holder" "b serving" 5
wait_js 1 "${fsx}[\"target_here\"]" True 5
echo "3. a is back: it adopted the map (b serves fs0) and mirrors for b"

# ctl N REQUEST: node N's control socket (/run/twinfsd/control in its
# mount namespace; the same file on the host).
ctl() {
	python3 -c 'import socket,sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
s.connect(sys.argv[1]); s.send(sys.argv[2].encode()); print(s.recv(65536).decode(), end="")' \
		"$dir/n$1/run/twinfsd/control" "$2"
}
r=$(ctl 1 "giveback fs0")
[[ "$r" == "ok: giveback of fs0 to node 1 asked"* ]] || fail "giveback: $r"
wait_js 1 "$holder + \" \" + str(${fsx}[\"mounted_here\"])" "a serving True" 20
wait_js 2 "${fsx}[\"target_here\"]" True 5
[ "$(ctl 2 status | sed -n 2p)" = "{" ] || fail "status on the control socket: $(ctl 2 status | head -2)"
r=$(ctl 2 "giveback fs0")
[[ "$r" == "error: fs0 is serving on node 1: nothing to give back"* ]] || fail "second giveback: $r"
[ "$(wc -l < "$dir/fence.log")" = 1 ] || fail "a fence in the giveback: $(tr '\n' ' ' < "$dir/fence.log")"
echo "4. giveback on a's control socket: b released fs0, a serves it again, no fence"

kill -TERM "$(cat "$dir/n1/twinfsd.pid")"
wait_js 2 "$holder + \" \" + str(${fsx}[\"mounted_here\"])" "b serving True" 20
grep -q 'unmounted .* for the shutdown' "$dir/n1/twinfsd.log" || fail "a did not unmount on SIGTERM"
[ "$(wc -l < "$dir/fence.log")" = 1 ] || fail "a fence after a clean stop: $(tr '\n' ' ' < "$dir/fence.log")"
echo "5. a stopped cleanly: b took fs0 over without a fence"

restart_twinfsd 1
wait_js 1 "${fsx}[\"target_here\"]" True 20
kill -9 "$(cat "$dir/n2/twinfsd.pid")"
wait_js 1 'len(j["absent"])' 1 10
sleep 1
restart_twinfsd 2
wait_js 2 "$holder + \" \" + str(${fsx}[\"mounted_here\"])" "b serving True" 20
wait_js 1 'len(j["absent"])' 0 5
sleep 3
[ "$(wc -l < "$dir/fence.log")" = 1 ] || fail "a fence after twinfsd's restart: $(tr '\n' ' ' < "$dir/fence.log")"
grep -q 'daemon_grace_ms' "$dir/n1/twinfsd.log" || fail "a did not wait for b's twinfsd"
echo "6. b's twinfsd SIGKILLed and restarted (its corosync kept running): absent, back within daemon_grace_ms, no fence"

kill -9 "$(cat "$dir/n2/twinfsd.pid")"
wait_js 1 "$holder + \" \" + str(${fsx}[\"mounted_here\"])" "a serving True" 30
[ "$(tail -1 "$dir/fence.log")" = b ] || fail "fence log: $(tr '\n' ' ' < "$dir/fence.log") (expected b last)"
grep -q 'did not come back' "$dir/n1/twinfsd.log" || fail "a did not log the grace's end"
echo "7. b's twinfsd SIGKILLed for good: after daemon_grace_ms a fenced b and took fs0 over"
echo PASS
