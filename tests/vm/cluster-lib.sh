# shellcheck shell=bash
# Host-side helpers of the two-guest cluster scenarios (90-cluster,
# 91-cluster-rounds); sourced after lib.sh.  The guests run corosync and
# twinfsd (guest/cluster-lib.sh); the host plays the fence device (the
# guests' fence_command is guest/fence-vm.sh: it writes
# /out/fence-request-NODE and waits for /out/fence-ack-NODE).

# wait_file OUT FILE SECS: until the guest wrote FILE (0) or ended (1).
wait_file() {
	local t
	while [ ! -e "$1/start-time" ] && [ ! -e "$1/qemu.rc" ]; do sleep 0.2; done
	for ((t = 0; t < $3 * 10; t++)); do
		[ -e "$1/$2" ] && return 0
		[ -e "$1/status" ] || [ -e "$1/qemu.rc" ] && return 1
		sleep 0.1
	done
	return 1
}

# guest_failed NAME OUT: fail with the guest's own verdict.
guest_failed() {
	vm_wait "$1"
	fail "$1: $VM_REASON ($(grep -h FAIL "$2/script.log" 2>/dev/null | head -1))"
}

# fs_status OUT: "holder state mounted_here mirror" of the first file
# (the mirror line may end with its state: match " WORD" against "$s ")
# system in the guest's twinfsd status file ("" while there is none).
fs_status() {
	python3 -S -c 'import json,sys
try:
    f = json.load(open(sys.argv[1]))["filesystems"][0]
    print(f["holder"]["name"], f["state"], f["mounted_here"], f["mirror"] or "")
except Exception:
    print("")' "$1/twinfsd-status.json" 2>/dev/null
}

# count_acks OUT ITER WORKERS: "k0,k1,..." the operations of iteration ITER
# acknowledged per worker (/out/acks.w<k>: "ACK ITER W N" lines, 0, 1,
# ... in order; a last line without its newline does not count).
count_acks() {
	local w f n list=()
	for ((w = 0; w < $3; w++)); do
		f=$1/acks.w$w n=0
		if [ -s "$f" ]; then
			n=$({ if [ -n "$(tail -c1 "$f")" ]; then sed '$d' "$f"; else cat "$f"; fi; } |
				awk -v i="$2" -v w=$w 'BEGIN { n = 0 } $0 == "ACK " i " " w " " n { n++ } END { print n }')
		fi
		list+=("$n")
	done
	(IFS=,; echo "${list[*]}")
}

# sum_list "k0,k1,...": the sum.
sum_list() {
	local s=0 x
	for x in ${1//,/ }; do s=$((s + x)); done
	echo "$s"
}

# ms_since T0 (date +%s%N)
ms_since() { echo $((($(date +%s%N) - $1) / 1000000)); }

# fence_ack REQ_OUT VICTIM VICTIM_GUEST SECS: wait for the fence request
# about node VICTIM in the requester's out dir (guest/fence-vm.sh: its
# PID), make sure the victim's QEMU (guest VICTIM_GUEST) is gone (kill it if
# not), remove the request and acknowledge, as fence_xvm would.  Returns 1
# if no request came within SECS.
fence_ack() {
	local t req=$1/fence-request-$2 pid=
	for ((t = 0; t < $4 * 50; t++)); do
		[ -s "$req" ] && read -r pid < "$req" && [ -n "$pid" ] && break
		[ -e "$1/status" ] && return 1
		sleep 0.02
	done
	[ -n "$pid" ] || return 1
	! _vm_qemu_pid "$3" > /dev/null || vm_kill "$3" || fail "fence: cannot kill $3: $VM_REASON"
	_vm_qemu_pid "$3" > /dev/null && fail "fence: $3's QEMU still runs"
	rm -f "$req"
	echo "$3's QEMU is gone (killed by the host)" > "$1/fence-ack-$2-$pid"
}

# wait_fs OUT WANT SECS: until fs_status starts with WANT (e.g. "b serving
# True"); returns 1 after SECS or when the guest ended.
wait_fs() {
	local t s
	for ((t = 0; t < $3 * 10; t++)); do
		s=$(fs_status "$1")
		[[ "$s" == "$2"* ]] && return 0
		[ -e "$1/status" ] && return 1
		sleep 0.1
	done
	return 1
}

# cluster_setup: the shared disk (mkfs'd), the nvdimms, two UDP ports
# ($pa for a, $pb for b), the mirror key and the guests' common --env
# options ($cl_envs); $seed from CLUSTER_SEED or random.
cluster_setup() {
	need_twinfs
	[ -x "$TWINFS_BIN/twinfsd" ] || fail "no $TWINFS_BIN/twinfsd"
	command -v corosync > /dev/null || fail "corosync is not installed (scripts/install-deps.sh)"
	seed=${CLUSTER_SEED:-$(( (RANDOM << 15) | RANDOM ))}
	RANDOM=$seed
	img=$VM_TMPDIR/shared.img
	nva=$VM_TMPDIR/nvram-a.img
	nvb=$VM_TMPDIR/nvram-b.img
	pa=$(vm_udp_ports) || fail "no free UDP ports"
	pb=$((pa + 1))
	key=$(head -c 32 /dev/urandom | xxd -p -c 64)
	vm_image "$img" 512M
	twinfs_mkfs "$img"
	vm_image "$nva" 64M
	vm_image "$nvb" 64M
	vm_log "cluster test: seed $seed, UDP ports $pa (a) $pb (b)"
	cl_envs=(--env CLUSTER_KEY="$key" --env CLUSTER_SEED="$seed" --env CLUSTER_WORKERS="$nw"
		--env CLUSTER_TOKEN="${CLUSTER_TOKEN:-3000}"
		--env CLUSTER_TRANSPORT="${CLUSTER_TRANSPORT:-knet}")
}

# cluster_net NODE: the --udp option of node a or b (fixed MACs).
cluster_net() {
	case $1 in
	a) echo "$pa:$pb:52:54:00:90:00:01" ;;
	b) echo "$pb:$pa:52:54:00:90:00:02" ;;
	esac
}
