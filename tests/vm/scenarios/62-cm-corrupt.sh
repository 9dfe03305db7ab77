#!/usr/bin/env bash
# A bad change memory refuses the mount and touches nothing (issue 5).
#  1. A fresh file system and an all-zero 64 MiB nvram (accepted: a fresh
#     change memory); mount with cp_interval_ms=600000 so the records stay,
#     2 workers on 2 vCPUs (two lanes) run CM_OPS (80) operations each;
#     QEMU is killed.
#  2. tests/vm/cm-image.py flips a byte in the payload of a record (above
#     the CP) that has later records in its lane: the mount must fail
#     (non-zero exit, EUCLEAN, "twinfs (vda): change memory:" in dmesg), and
#     the disk and nvram images must be byte-identical before and after.
#  3. The same with an nvram full of random bytes with a valid magic.
#  4. Control: the uncorrupted copy of the nvram mounts, replays, and the
#     directories are exactly the state after every acknowledged operation;
#     fsck clean.
set -uo pipefail
. "$(dirname "$0")/../lib.sh"

need_twinfs
ops=${CM_OPS:-80}
seed=${CM_SEED:-$(( (RANDOM << 15) | RANDOM ))}
cmimg=$VM_TESTS/cm-image.py
guest=$VM_TESTS/guest/cm_corrupt.sh
img=$VM_TMPDIR/cm.img
nv=$VM_TMPDIR/nvram.img
vm_image "$img" 256M
twinfs_mkfs "$img"
vm_image "$nv" 64M
vm_log "seed $seed, $ops operations per worker"

# 1. The workload, then a kill.
vm_start workload "$guest" --disk "$img" --nvdimm "$nv" --smp 2 --timeout 240 \
	--env CM_SEED="$seed" --env CM_OPS="$ops" -- workload || fail "$VM_REASON"
out=$(vm_out workload)
# QEMU may first wait for a slot (other guests on the machine).
while [ ! -e "$out/start-time" ] && [ ! -e "$out/qemu.rc" ]; do sleep 0.2; done
for ((t = 0; t < 2000; t++)); do
	[ -e "$out/ready" ] || [ -e "$out/status" ] || [ -e "$out/qemu.rc" ] || { sleep 0.1; continue; }
	break
done
if [ ! -e "$out/ready" ]; then
	vm_wait workload
	fail "workload: $VM_REASON"
fi
vm_kill workload || fail "$VM_REASON"
vm_wait workload || fail "$VM_REASON"
acks=
for w in 0 1; do
	n=$(grep -c "^ACK 1 $w " "$out/acks.w$w")
	[ "$n" = "$ops" ] || fail "worker $w acknowledged $n of $ops operations"
	acks=${acks:+$acks,}$n
done
cp_seq=$(sed -n 's/^cp_seq=//p' "$out/sysfs-after.txt")
python3 "$cmimg" dump "$nv" > "$VM_LOGDIR/cm-dump.txt" 2>&1 || fail "cm-image.py dump failed"
sed 's/^/  /' "$VM_LOGDIR/cm-dump.txt" >&2
cp --sparse=always "$nv" "$nv.orig"

# refused NAME NVRAM WHAT: the mount with NVRAM must fail and change nothing.
refused() {
	local before after
	before=$(sha256sum "$img" "$2" | cut -d' ' -f1 | tr '\n' ' ')
	vm_run "$1" "$guest" --disk "$img" --nvdimm "$2" --timeout 120 -- refuse ||
		fail "$3: $VM_REASON"
	after=$(sha256sum "$img" "$2" | cut -d' ' -f1 | tr '\n' ' ')
	[ "$before" = "$after" ] ||
		fail "$3: the refused mount changed the images (sha256 disk nvram before: $before, after: $after)"
	vm_log "$3: refused, images unchanged: $(grep -m1 "dmesg:.*change memory" "$(vm_out "$1")/script.log" | sed "s/^.*dmesg: //")"
}

# 2. A corrupt record with later records after it.
python3 "$cmimg" corrupt "$nv" --seed "$seed" --min-seq "${cp_seq:-0}" > "$VM_LOGDIR/corrupt.txt" 2>&1 ||
	fail "cm-image.py corrupt: $(tail -1 "$VM_LOGDIR/corrupt.txt")"
vm_log "$(cat "$VM_LOGDIR/corrupt.txt")"
refused refuse-record "$nv" "corrupt record"

# 3. Random garbage with a valid magic.
nvg=$VM_TMPDIR/nvram-garbage.img
vm_image "$nvg" 64M
python3 "$cmimg" garbage "$nvg" --seed "$seed" > /dev/null || fail "cm-image.py garbage failed"
refused refuse-garbage "$nvg" "random nvram with a valid magic"

# 4. Control: the original change memory replays the workload exactly.
vm_run control "$guest" --disk "$img" --nvdimm "$nv.orig" --smp 2 --timeout 200 \
	--env CM_SEED="$seed" --env CM_ACKS="$acks" -- control ||
	fail "control (uncorrupted nvram): $VM_REASON"
vm_log "control: $(grep -E '^(records_replayed|last_seq|cp_seq)=' "$(vm_out control)/sysfs-mount.txt" | tr '\n' ' ')"
"$TWINFS_BIN/fsck.twinfs" -n "$img" > "$VM_LOGDIR/fsck-final.log" 2>&1 ||
	fail "host fsck.twinfs -n after the control boot: exit $?"
exit 0
