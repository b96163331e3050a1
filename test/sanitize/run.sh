#!/bin/sh
# run.sh — run the engine's unit tests and the command-line program's tests built with
# AddressSanitizer + UndefinedBehaviorSanitizer (make NO_PGXS=1 sanitize builds them under
# build/sanitize and calls this). Every sanitizer report is fatal: reports go to files under
# DIR/reports as well as stopping the process with exit code 66, and the run fails when any
# report file exists afterwards, so an error path that the CLI tests expect to fail (exit 1)
# cannot hide a report. No suppressions are needed (OpenMP and the dlopen'ed OpenBLAS report
# nothing), so none are used.
#
#   test/sanitize/run.sh [DIR]      (default: build/sanitize)
set -u

here=$(cd "$(dirname "$0")" && pwd)
dir=${1:-$here/../../build/sanitize}
dir=$(cd "$dir" && pwd)
reports=$dir/reports
rm -rf "$reports"
mkdir -p "$reports"

ASAN_OPTIONS="detect_leaks=1:halt_on_error=1:exitcode=66:strict_string_checks=1"
ASAN_OPTIONS="$ASAN_OPTIONS:detect_stack_use_after_return=1:log_path=$reports/asan"
UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1:exitcode=66:log_path=$reports/ubsan"
export ASAN_OPTIONS UBSAN_OPTIONS

status=0
for t in "$dir"/unit/test_*; do
	echo "== $t"
	"$t" || status=1
done
echo "== test/cli/test_cli.sh $dir/genrec"
"$here/../cli/test_cli.sh" "$dir/genrec" || status=1

if [ -n "$(ls -A "$reports")" ]; then
	for f in "$reports"/*; do
		echo "---- sanitizer report $f"
		cat "$f"
	done
	status=1
fi
[ $status -eq 0 ] && echo "sanitize: no sanitizer reports"
exit $status
