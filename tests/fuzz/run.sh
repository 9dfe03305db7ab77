#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
# Fuzzes the change-record decoder, lane scanner and replay planner of the
# portable core (tests/fuzz/fuzz_cm_decode.c): the target of `make fuzz`.
#
#   1. builds the seed generator (tests/fuzz/gen_corpus.c) and writes a seed
#      corpus made by the core's encoder into build/fuzz/seeds
#   2. builds the target with clang -fsanitize=fuzzer,address,undefined into
#      build/fuzz/fuzz_cm_decode (libFuzzer); without a working clang, or
#      with FUZZ_ENGINE=standalone, with gcc -fsanitize=address,undefined
#      and the driver tests/fuzz/standalone.c (random mutations, no coverage
#      guidance)
#   3. runs it for FUZZ_SECS seconds (default 60), keeping what libFuzzer
#      finds in build/fuzz/corpus, crashes in build/fuzz/crash-*
#
# Prints the number of inputs run, and exits non-zero on a crash, a
# sanitizer report or a build failure.
#
# Environment: FUZZ_SECS (default 60), FUZZ_ENGINE=auto|libfuzzer|standalone,
# BUILD (default build), CLANG (default clang).
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/../.."

BUILD=${BUILD:-build}
OUT=$BUILD/fuzz
SECS=${FUZZ_SECS:-60}
ENGINE=${FUZZ_ENGINE:-auto}
CLANG=${CLANG:-clang}
CORE="kmod/core/cm.c kmod/core/csum.c kmod/core/crc32c_user.c"
CFLAGS="-std=gnu11 -g -O1 -I. -Ikmod/core -Wall -Wextra -Werror -fno-omit-frame-pointer"
SAN="-fsanitize=address,undefined -fno-sanitize-recover=all"

say() { printf 'fuzz: %s\n' "$*"; }

mkdir -p "$OUT" "$OUT/corpus"

# ---- 1. seeds ---------------------------------------------------------------
# shellcheck disable=SC2086
gcc $CFLAGS -O2 tests/fuzz/gen_corpus.c $CORE -o "$OUT/gen_corpus"
rm -rf "$OUT/seeds"
mkdir -p "$OUT/seeds"
"$OUT/gen_corpus" "$OUT/seeds"

# ---- 2. build ---------------------------------------------------------------
if [ "$ENGINE" = auto ]; then
	ENGINE=standalone
	if command -v "$CLANG" >/dev/null 2>&1 &&
		echo 'int LLVMFuzzerTestOneInput(const char *d, unsigned long n) { (void)d; (void)n; return 0; }' |
		"$CLANG" -x c -fsanitize=fuzzer - -o "$OUT/.probe" >/dev/null 2>&1; then
		ENGINE=libfuzzer
	else
		say "clang with libFuzzer not found (Debian: clang libclang-rt-14-dev):" \
			"using the standalone driver with gcc"
	fi
	rm -f "$OUT/.probe"
fi

BIN=$OUT/fuzz_cm_decode
case $ENGINE in
libfuzzer)
	# shellcheck disable=SC2086
	"$CLANG" $CFLAGS -fsanitize=fuzzer $SAN tests/fuzz/fuzz_cm_decode.c $CORE -o "$BIN"
	;;
standalone)
	# shellcheck disable=SC2086
	gcc $CFLAGS $SAN -DFUZZ_STANDALONE tests/fuzz/fuzz_cm_decode.c tests/fuzz/standalone.c \
		$CORE -o "$BIN"
	;;
*)
	say "unknown FUZZ_ENGINE=$ENGINE"
	exit 2
	;;
esac

# ---- 3. run -----------------------------------------------------------------
say "$ENGINE, ${SECS}s, $(find "$OUT/seeds" -type f | wc -l) seeds, corpus $OUT/corpus"
LOG=$OUT/fuzz.log
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
export ASAN_OPTIONS=abort_on_error=1:detect_leaks=1
set +e
if [ "$ENGINE" = libfuzzer ]; then
	"$BIN" -max_total_time="$SECS" -timeout=10 -rss_limit_mb=2048 -max_len=140000 \
		-print_final_stats=1 -artifact_prefix="$OUT/" "$OUT/corpus" "$OUT/seeds" >"$LOG" 2>&1
else
	"$BIN" -max_total_time="$SECS" "$OUT/corpus" "$OUT/seeds" >"$LOG" 2>&1
fi
rc=$?
set -e

execs=$(sed -n 's/^stat::number_of_executed_units: *\([0-9]*\).*/\1/p' "$LOG" | tail -n 1)
if [ "$rc" -ne 0 ]; then
	tail -n 40 "$LOG"
	say "FAILED (exit status $rc) after ${execs:-?} inputs; log $LOG, crash input $OUT/crash-* (libFuzzer)"
	exit 1
fi
say "${execs:-?} inputs in ${SECS}s, no crash ($ENGINE; log $LOG)"
