#!/usr/bin/env bash
# Runs the VM test scenarios, tests/vm/scenarios/*.sh, one after the other.
#   tests/vm/run-all.sh [FILTER]     only scenarios whose name contains FILTER
# Prints "PASS <name> (<secs>s)" or "FAIL <name>: <reason>" per scenario,
# keeps each one's logs in build/vm/logs/<name>/ (scenario.log: its output;
# one sub-directory per guest boot), writes build/vm/results.txt
# ("passed=N" and "failed=M") and exits non-zero if any failed.
# VM_VERBOSE=1 also shows each scenario's output as it runs.
# VM_SCENARIO_TIMEOUT (default 1800 s) bounds a whole scenario on top of the
# per-guest timeouts.
# TWINFS_SOAK=1: the soak versions (60-crash: 500 kills instead of 25) and a
# default VM_SCENARIO_TIMEOUT of 8 hours.
set -uo pipefail

filter=${1:-}
here=$(cd "$(dirname "$0")" && pwd -P)
src=$(cd "$here/../.." && pwd -P)
build=${TWINFS_BUILD:-$src/build}
vmdir=$build/vm
passed=0 failed=0
if [ "${TWINFS_SOAK:-0}" = 1 ]; then
	export VM_SCENARIO_TIMEOUT=${VM_SCENARIO_TIMEOUT:-28800}
else
	export VM_SCENARIO_TIMEOUT=${VM_SCENARIO_TIMEOUT:-1800}
fi

mkdir -p "$vmdir/logs" "$vmdir/tmp"
for sc in "$here"/scenarios/*.sh; do
	[ -e "$sc" ] || continue
	name=$(basename "$sc" .sh)
	[[ -z "$filter" || "$name" == *"$filter"* ]] || continue
	logs=$vmdir/logs/$name
	tmp=$vmdir/tmp/$name
	rm -rf "$logs" "$tmp"
	mkdir -p "$logs" "$tmp"
	start=$(date +%s)
	# The scenario's own traps kill its guests when timeout(1) sends TERM.
	if [ "${VM_VERBOSE:-0}" = 1 ]; then
		VM_LOGDIR=$logs VM_TMPDIR=$tmp TWINFS_BUILD=$build \
			timeout -k 30 "$VM_SCENARIO_TIMEOUT" bash "$sc" 2>&1 |
			tee "$logs/scenario.log"
		rc=${PIPESTATUS[0]}
	else
		VM_LOGDIR=$logs VM_TMPDIR=$tmp TWINFS_BUILD=$build \
			timeout -k 30 "$VM_SCENARIO_TIMEOUT" bash "$sc" \
			> "$logs/scenario.log" 2>&1 < /dev/null
		rc=$?
	fi
	secs=$(($(date +%s) - start))
	if [ "$rc" -eq 0 ]; then
		echo "PASS $name (${secs}s)"
		passed=$((passed + 1))
		rm -rf "$tmp"
	else
		if [ -s "$logs/reason" ]; then
			reason=$(head -1 "$logs/reason")
		elif [ "$rc" -eq 124 ] || [ "$rc" -eq 137 ]; then
			reason="scenario timed out after ${VM_SCENARIO_TIMEOUT}s"
		else
			reason="exit $rc: $(tail -1 "$logs/scenario.log")"
		fi
		echo "FAIL $name: $reason"
		failed=$((failed + 1))
	fi
done
rmdir "$vmdir/tmp" 2>/dev/null

printf 'passed=%d\nfailed=%d\n' "$passed" "$failed" > "$vmdir/results.txt"
echo "$passed passed, $failed failed"
if [ $((passed + failed)) -eq 0 ]; then
	echo "no scenario matches '$filter'" >&2
	exit 1
fi
[ "$failed" -eq 0 ]
