#!/usr/bin/env bash
# Runs the VM test scenarios, tests/vm/scenarios/*.sh.
#   tests/vm/run-all.sh [FILTER]     only scenarios whose name contains FILTER
# Scenarios of one guest at a time run VM_PARALLEL (2) at once, the most
# expensive first (a "# vm-cost: SECONDS" line in the scenario, default 60);
# scenarios marked "# vm-guests: 2" (two guests at once, timing matters)
# then run alone, one after the other.
# Prints "PASS <name> (<secs>s)" or "FAIL <name>: <reason>" per scenario,
# keeps each one's logs in build/vm/logs/<name>/ (scenario.log: its output;
# one sub-directory per guest boot), writes build/vm/results.txt
# ("passed=N" and "failed=M") and exits non-zero if any failed.
# VM_VERBOSE=1 also shows each scenario's output as it runs (and runs one
# scenario at a time).
# VM_SCENARIO_TIMEOUT (default 1800 s) bounds a whole scenario on top of the
# per-guest timeouts; a scenario's "# vm-timeout: N" line raises it for
# that scenario.
# TWINFS_SOAK=1: the soak versions (60-crash: 500 kills instead of 18; 70 and
# 74: 100 owner kills instead of 10) and a
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
parallel=${VM_PARALLEL:-2}
[ "${VM_VERBOSE:-0}" != 1 ] || parallel=1
verdicts=$vmdir/verdicts

# run_scenario FILE: runs one scenario, prints its PASS/FAIL line and
# writes "pass" or "fail" to $verdicts/<name>.
run_scenario() {
	local sc=$1 name logs tmp start rc secs reason limit
	name=$(basename "$sc" .sh)
	limit=$(header_value "$sc" vm-timeout 0)
	[ "$limit" -gt "$VM_SCENARIO_TIMEOUT" ] || limit=$VM_SCENARIO_TIMEOUT
	logs=$vmdir/logs/$name
	tmp=$vmdir/tmp/$name
	rm -rf "$logs" "$tmp"
	mkdir -p "$logs" "$tmp"
	start=$(date +%s)
	# The scenario's own traps kill its guests when timeout(1) sends TERM.
	if [ "${VM_VERBOSE:-0}" = 1 ]; then
		VM_LOGDIR=$logs VM_TMPDIR=$tmp TWINFS_BUILD=$build \
			timeout -k 30 "$limit" bash "$sc" 2>&1 |
			tee "$logs/scenario.log"
		rc=${PIPESTATUS[0]}
	else
		VM_LOGDIR=$logs VM_TMPDIR=$tmp TWINFS_BUILD=$build \
			timeout -k 30 "$limit" bash "$sc" \
			> "$logs/scenario.log" 2>&1 < /dev/null
		rc=$?
	fi
	secs=$(($(date +%s) - start))
	if [ "$rc" -eq 0 ]; then
		echo "PASS $name (${secs}s)"
		echo pass > "$verdicts/$name"
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
		echo fail > "$verdicts/$name"
	fi
}

# header_value FILE KEY DEFAULT: the value of a "# KEY: VALUE" line.
header_value() {
	local v
	v=$(sed -n "s/^# $2: *\([0-9][0-9]*\).*/\1/p" "$1" | head -1)
	echo "${v:-$3}"
}

rm -rf "$verdicts"
mkdir -p "$vmdir/logs" "$vmdir/tmp" "$verdicts"
singles=() pairs=()
for sc in "$here"/scenarios/*.sh; do
	[ -e "$sc" ] || continue
	name=$(basename "$sc" .sh)
	[[ -z "$filter" || "$name" == *"$filter"* ]] || continue
	if [ "$(header_value "$sc" vm-guests 1)" -ge 2 ]; then
		pairs+=("$sc")
	else
		singles+=("$(header_value "$sc" vm-cost 60) $sc")
	fi
done

# One-guest scenarios, the longest first, at most $parallel at once.
running=0
while read -r _ sc; do
	[ -n "$sc" ] || continue
	if [ "$running" -ge "$parallel" ]; then
		wait -n
		running=$((running - 1))
	fi
	run_scenario "$sc" &
	running=$((running + 1))
done < <(printf '%s\n' "${singles[@]}" | sort -rn -k1,1)
wait
for sc in "${pairs[@]}"; do
	run_scenario "$sc"
done
rmdir "$vmdir/tmp" 2>/dev/null

passed=$(grep -lx pass "$verdicts"/* 2>/dev/null | wc -l)
failed=$(grep -lx fail "$verdicts"/* 2>/dev/null | wc -l)
# A scenario that left no verdict (the runner itself was killed) failed.
failed=$((failed + ${#singles[@]} + ${#pairs[@]} - passed - failed))
printf 'passed=%d\nfailed=%d\n' "$passed" "$failed" > "$vmdir/results.txt"
echo "$passed passed, $failed failed"
if [ $((passed + failed)) -eq 0 ]; then
	echo "no scenario matches '$filter'" >&2
	exit 1
fi
[ "$failed" -eq 0 ]
