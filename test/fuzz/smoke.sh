#!/bin/sh
# smoke.sh — build the libFuzzer targets (test/fuzz/fuzz_*.c) and run each for a few seconds
# from its seed corpus (test/fuzz/corpus/NAME; the safetensors target also reads the model
# fixtures), with ASan and UBSan. Any crash, leak, timeout or broken invariant fails the run;
# the executions of each target are printed, and a failing input is kept under
# build/fuzz/artifacts/. Skipped (exit 0) when clang cannot link
# -fsanitize=fuzzer (Debian: clang and libclang-rt-14-dev, see scripts/deps.sh).
#
#   test/fuzz/smoke.sh [SECONDS]      (default 5 per target, or $FUZZ_SECONDS)
set -u

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
secs=${1:-${FUZZ_SECONDS:-5}}
work=$(mktemp -d "${TMPDIR:-/tmp}/genrec_fuzz.XXXXXX")
trap 'rm -rf "$work"' EXIT

printf 'int LLVMFuzzerTestOneInput(const unsigned char *d, unsigned long n) { return 0; }\n' \
	>"$work/probe.c"
if ! command -v clang >/dev/null 2>&1 ||
	! clang -fsanitize=fuzzer "$work/probe.c" -o "$work/probe" >/dev/null 2>&1; then
	echo "fuzz smoke: skipped (clang with libFuzzer not available)"
	exit 0
fi
make -s -j2 -C "$root" NO_PGXS=1 fuzz || exit 1

status=0
mkdir -p "$root/build/fuzz/artifacts"
for bin in "$root"/build/fuzz/fuzz_*; do
	name=$(basename "$bin")
	seeds=$here/corpus/${name#fuzz_}
	extra=
	[ "$name" = fuzz_safetensors ] && extra=$root/test/fixtures
	mkdir -p "$work/$name"
	# shellcheck disable=SC2086
	"$bin" -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
		-artifact_prefix="$root/build/fuzz/artifacts/$name-" "$work/$name" $( [ -d "$seeds" ] && echo "$seeds") \
		$extra >"$work/$name.log" 2>&1
	rc=$?
	runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$work/$name.log")
	if [ $rc -ne 0 ]; then
		echo "fuzz smoke: $name FAILED (exit $rc)"
		tail -40 "$work/$name.log"
		status=1
	else
		echo "fuzz smoke: $name ok (${runs:-?} executions in $secs s)"
	fi
done
exit $status
