# Guest half of the undo-log scenarios; /dev/vda is a fresh twinfs.
#   undo.sh [matrix]   scenarios/50-undo.sh: guest/undo.py runs every
#                      operation variant with a fault armed at every step it
#                      reaches and checks the rollback
#   undo.sh stress     scenarios/55-undo-concurrent.sh: guest/undo_stress.py,
#                      UNDO_STRESS_PROCS processes for UNDO_STRESS_SECS
#                      seconds under "random UNDO_STRESS_PERMILLE" faults
# Both then umount, fsck, remount without fault_inject and check the tree
# as recorded.  twinfs kernel lines of level err or worse fail the test.
. "$TWINFS_GUEST_LIB"

mode=${1:-matrix}
here=$(dirname "$VM_SCRIPT")

failed=
# later DESC: note a failure, go on with the remaining checks.
later() { printf 'FAIL: %s\n' "$1"; failed=${failed:-$1}; }

twinfs_errors() {
	local errs
	errs=$(dmesg --level=emerg,alert,crit,err --notime | grep 'twinfs' | head -20)
	[ -z "$errs" ] && return 0
	printf '%s\n' "$errs" | sed 's/^/  dmesg: /'
	later "twinfs logged errors (first: $(head -1 <<< "$errs"))"
}

# umount, fsck, remount without fault_inject, CMD..., umount, fsck.
remount_check() {
	local st
	run umount /mnt
	"$TWINFS_BIN/fsck.twinfs" /dev/vda 2>&1 | tail -20 | sed 's/^/  fsck: /'
	st=${PIPESTATUS[0]}
	[ "$st" = 0 ] || later "fsck.twinfs /dev/vda after the run: exit $st"
	mount_twinfs /dev/vda /mnt
	"$@" || later "check after remount failed: $*"
	run umount /mnt
	"$TWINFS_BIN/fsck.twinfs" /dev/vda > /dev/null 2>&1 || later "fsck.twinfs /dev/vda after the remount: exit $?"
	[ -z "$failed" ] || die "$failed"
}

load_twinfs
mountpoint -q /sys/kernel/debug || run mount -t debugfs none /sys/kernel/debug
mkdir -p /mnt
dmesg_mark
mount_twinfs /dev/vda /mnt fault_inject
[ -w /sys/kernel/debug/twinfs/vda/fail ] || die "no /sys/kernel/debug/twinfs/vda/fail"

if [ "$mode" = stress ]; then
	rec=/out/undo-stress.json
	log "undo stress: ${UNDO_STRESS_PROCS:-6} processes for ${UNDO_STRESS_SECS:-60}s on $(nproc) CPUs"
	python3 "$here/undo_stress.py" run /mnt/st "$rec" --dev vda \
		--secs "${UNDO_STRESS_SECS:-60}" --nproc "${UNDO_STRESS_PROCS:-6}" \
		--permille "${UNDO_STRESS_PERMILLE:-20}"
	rc=$?
	log "points (hits per step): $(tr '\n' ' ' < /sys/kernel/debug/twinfs/vda/points)"
	twinfs_errors
	[ "$rc" = 0 ] || later "undo_stress.py run failed"
	remount_check python3 "$here/undo_stress.py" check /mnt/st "$rec"
	log "undo stress: all checks passed"
	exit 0
fi

undo=$here/undo.py
rec=/out/undo-record.json

python3 "$undo" matrix --mnt /mnt --dev vda --record "$rec" --json /out/undo-matrix.json |
	tee /out/undo-matrix.log
rc=${PIPESTATUS[0]}
cat /sys/kernel/debug/twinfs/vda/points > /out/points.txt
log "points (hits per step): $(tr '\n' ' ' < /out/points.txt)"
log "dmesg: $(dmesg_since | grep -c 'injected fault') 'injected fault' lines"
twinfs_errors
[ "$rc" = 0 ] || later "undo.py matrix failed (first: $(grep -m1 '^FAIL' /out/undo-matrix.log | cut -c1-200))"
remount_check python3 "$undo" verify --mnt /mnt --record "$rec"
log "undo: all checks passed"
