# Guest half of scenarios/50-undo.sh: /dev/vda is a fresh 256 MiB twinfs.
# Mounted with fault_inject, guest/undo.py runs every operation variant with
# a fault armed at every step it reaches and checks the rollback; then
# umount, fsck, remount without fault_inject and the tree as recorded.
. "$TWINFS_GUEST_LIB"

undo=$(dirname "$VM_SCRIPT")/undo.py
rec=/out/undo-record.json

load_twinfs
mountpoint -q /sys/kernel/debug || run mount -t debugfs none /sys/kernel/debug
mkdir -p /mnt
dmesg_mark
mount_twinfs /dev/vda /mnt fault_inject
[ -w /sys/kernel/debug/twinfs/vda/fail ] || die "no /sys/kernel/debug/twinfs/vda/fail"

python3 "$undo" matrix --mnt /mnt --dev vda --record "$rec" --json /out/undo-matrix.json
rc=$?
cat /sys/kernel/debug/twinfs/vda/points > /out/points.txt
log "points (hits per step): $(tr '\n' ' ' < /out/points.txt)"
injected=$(dmesg_since | grep -c 'injected fault')
log "dmesg: $injected 'injected fault' lines"
# Error-level twinfs lines (cannot undo, corruption, ...) are failures.
errs=$(dmesg --level=emerg,alert,crit,err --notime | grep 'twinfs' | head -20)
[ -z "$errs" ] || { printf '%s\n' "$errs" | sed 's/^/  dmesg: /'; die "twinfs logged errors"; }
[ "$rc" = 0 ] || die "undo.py matrix failed"

run umount /mnt
fsck_clean /dev/vda
mount_twinfs /dev/vda /mnt
python3 "$undo" verify --mnt /mnt --record "$rec" || die "tree differs after remount"
run umount /mnt
fsck_clean /dev/vda
log "undo: all checks passed"
