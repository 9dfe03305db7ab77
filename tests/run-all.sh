#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
# Runs every twinfs test: the one command behind `make check` and CI.
#
#   1. installs missing Debian packages (scripts/install-deps.sh)
#   2. builds everything: `make all` (twinfs.ko and user space)
#   3. runs the Catch2 unit tests (build/unit-tests), then the change-record
#      fuzzer for FUZZ_SECS (60) seconds (tests/fuzz/run.sh; one test)
#   4. runs the VM suite (tests/vm/run-all.sh, results in build/vm/results.txt)
#
# and prints as its last line "N passed, M failed", counting test cases.  A
# failed step (package install, build, a suite that cannot report) counts
# as one failure.  Exits non-zero if anything failed or no test ran.
#
# Environment:
#   TWINFS_SKIP_VM=1   skip the VM suite (unit tests only; said in the output)
#   TWINFS_SKIP_FUZZ=1 skip the fuzzer; FUZZ_SECS=n its run time (60)
#   JOBS=n             parallel make jobs (default: number of CPUs)
set -uo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.." || exit 1

# The build directory of the Makefile's default, whatever the environment says.
BUILD=build

JOBS=${JOBS:-$(nproc 2>/dev/null || echo 2)}
UNIT_BIN=$BUILD/unit-tests
UNIT_LOG=$BUILD/unit-tests.log
VM_RESULTS=$BUILD/vm/results.txt

passed=0
failed=0
notes=()

say() { printf 'run-all: %s\n' "$*"; }
fail_step() {
	say "FAILED: $*"
	notes+=("FAILED: $*")
	failed=$((failed + 1))
}
finish() {
	echo
	local n
	for n in "${notes[@]}"; do
		say "$n"
	done
	if [ $((passed + failed)) -eq 0 ]; then
		say "no test ran"
	fi
	echo "$passed passed, $failed failed"
	if [ "$failed" -ne 0 ] || [ "$passed" -eq 0 ]; then
		exit 1
	fi
	exit 0
}

# Parses the totals of the Catch2 console reporter from a log into the
# globals unit_passed, unit_failed.  Returns 1 if there are none.
parse_catch2_totals() {
	local log=$1 line
	unit_passed=0
	unit_failed=0
	line=$(grep -E '^(All tests passed|test cases:|No tests ran)' "$log" | tail -n 1)
	case $line in
	"All tests passed"*)
		# All tests passed (A assertions in N test cases)
		[[ $line =~ in\ ([0-9]+)\ test\ case ]] || return 1
		unit_passed=${BASH_REMATCH[1]}
		;;
	"test cases:"*)
		# test cases: N | X passed | Y failed | Z failed as expected
		# (zero counts are left out)
		if [[ $line =~ \|\ +([0-9]+)\ passed ]]; then
			unit_passed=${BASH_REMATCH[1]}
		fi
		if [[ $line =~ \|\ +([0-9]+)\ failed($|\ \|) ]]; then
			unit_failed=${BASH_REMATCH[1]}
		fi
		if [[ $line =~ \|\ +([0-9]+)\ failed\ as\ expected ]]; then
			unit_passed=$((unit_passed + BASH_REMATCH[1]))
		fi
		;;
	"No tests ran"*) ;;
	*) return 1 ;;
	esac
	return 0
}

# ---- 1. packages ---------------------------------------------------------
say "installing missing packages (scripts/install-deps.sh)"
if ! bash scripts/install-deps.sh </dev/null; then
	fail_step "scripts/install-deps.sh"
fi

# ---- 2. build ------------------------------------------------------------
say "building: make all (module and user space)"
built_all=1
if ! make -j"$JOBS" BUILD="$BUILD" all </dev/null; then
	fail_step "make all (module or user space did not build)"
	built_all=0
	# Still try the unit tests for their own results.
	say "building the unit tests alone: make $UNIT_BIN"
	make -j"$JOBS" BUILD="$BUILD" "$UNIT_BIN" </dev/null ||
		fail_step "make $UNIT_BIN"
fi

# ---- 3. unit tests -------------------------------------------------------
if [ -x "$UNIT_BIN" ]; then
	say "unit tests: $UNIT_BIN"
	mkdir -p "$(dirname "$UNIT_LOG")"
	"$UNIT_BIN" --use-colour no </dev/null 2>&1 | tee "$UNIT_LOG"
	unit_rc=${PIPESTATUS[0]}
	if parse_catch2_totals "$UNIT_LOG"; then
		say "unit tests: $unit_passed passed, $unit_failed failed"
		passed=$((passed + unit_passed))
		failed=$((failed + unit_failed))
		if [ "$unit_rc" -ne 0 ] && [ "$unit_failed" -eq 0 ]; then
			fail_step "unit tests exited with status $unit_rc"
		fi
		if [ $((unit_passed + unit_failed)) -eq 0 ]; then
			fail_step "no unit test ran"
		fi
	else
		fail_step "unit tests: no totals in $UNIT_LOG (exit status $unit_rc)"
	fi
else
	fail_step "unit tests: $UNIT_BIN was not built"
fi

# ---- 3b. fuzzer, bounded ---------------------------------------------------
if [ "${TWINFS_SKIP_FUZZ:-0}" = 1 ]; then
	say "fuzzer SKIPPED (TWINFS_SKIP_FUZZ=1)"
	notes+=("fuzzer SKIPPED (TWINFS_SKIP_FUZZ=1)")
else
	say "fuzzer: tests/fuzz/run.sh for ${FUZZ_SECS:-60} s"
	if BUILD="$BUILD" FUZZ_SECS="${FUZZ_SECS:-60}" bash tests/fuzz/run.sh </dev/null; then
		passed=$((passed + 1))
	else
		fail_step "fuzzer (tests/fuzz/run.sh)"
	fi
fi

# ---- 4. VM suite ---------------------------------------------------------
if [ "${TWINFS_SKIP_VM:-0}" = 1 ]; then
	say "VM suite SKIPPED (TWINFS_SKIP_VM=1): only the unit tests ran"
	notes+=("VM suite SKIPPED (TWINFS_SKIP_VM=1)")
elif [ "$built_all" -ne 1 ]; then
	fail_step "VM suite not run: the build failed"
elif [ ! -f tests/vm/run-all.sh ]; then
	fail_step "VM suite missing: tests/vm/run-all.sh"
else
	say "VM suite: tests/vm/run-all.sh"
	rm -f "$VM_RESULTS"
	BUILD="$BUILD" bash tests/vm/run-all.sh </dev/null
	vm_rc=$?
	if [ -f "$VM_RESULTS" ]; then
		vm_passed=$(sed -n 's/^passed=\([0-9][0-9]*\)$/\1/p' "$VM_RESULTS" | tail -n 1)
		vm_failed=$(sed -n 's/^failed=\([0-9][0-9]*\)$/\1/p' "$VM_RESULTS" | tail -n 1)
	fi
	if [ -z "${vm_passed:-}" ] || [ -z "${vm_failed:-}" ]; then
		fail_step "VM suite: no passed=/failed= lines in $VM_RESULTS (exit status $vm_rc)"
	else
		say "VM suite: $vm_passed passed, $vm_failed failed"
		passed=$((passed + vm_passed))
		failed=$((failed + vm_failed))
		if [ "$vm_rc" -ne 0 ] && [ "$vm_failed" -eq 0 ]; then
			fail_step "VM suite exited with status $vm_rc"
		fi
		if [ $((vm_passed + vm_failed)) -eq 0 ]; then
			fail_step "no VM test ran"
		fi
	fi
fi

finish
