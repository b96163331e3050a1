#!/usr/bin/env bash
# scripts/test.sh — every test of genrec, in the order CI runs them:
#   1. dependencies (scripts/deps.sh all: the build, run and test groups) and the build (PGXS
#      make: extension, engine, CLI, and the CUDA module when nvcc is present)
#   1b. the portable build (make portable-check: no instruction beyond x86-64 outside the
#      dispatched clones; builds equivalent to each clone give the same results)
#   2. engine unit tests (make unit: ops vs references with gradient checks, layouts,
#      leakage, safetensors, the device loader), then the CUDA kernels on the CPU emulation
#      against the CPU ops with a tiny grid cap (make cuda-emu-check)
#   3. the command-line program end to end (test/cli/test_cli.sh), then the unit tests and
#      the CLI tests again built with AddressSanitizer + UndefinedBehaviorSanitizer
#      (make sanitize; any report fails the step), and a few seconds of each libFuzzer target
#      (test/fuzz/smoke.sh: history text and binary input, safetensors, the model configuration
#      JSON, the training options)
#   4. parity with a float64 PyTorch reference (make parity)
#   5. genrec -> PyTorch -> genrec through the engine program (test/torch/test_roundtrip.py)
#   6. training quality on MovieLens-100K (test/quality/ml100k.sh), when ../shared/data exists
#   7. the SQL suites against a throwaway cluster (pg_regress, the shell tests, then pgTAP's
#      pg_prove last)
# Exits non-zero if any step failed. Run as root on Debian 12 (it installs packages and
# the extension).
set -uo pipefail

cd "$(dirname "$0")/.." || exit 2
failed=()

# Run one step, recording its failure.
step() {
	local name=$1
	shift
	echo
	echo "==== $name"
	local t0=$SECONDS
	if "$@"; then
		echo "==== $name: ok ($((SECONDS - t0)) s)"
	else
		echo "==== $name: FAILED ($((SECONDS - t0)) s)"
		failed+=("$name")
	fi
}

scripts/deps.sh all || exit 1
step build make -s -j2
step portable make -s portable-check
step unit make -s unit
step cuda-emu make -s cuda-emu-check
step cli test/cli/test_cli.sh build/genrec
step sanitize make -s sanitize
step fuzz test/fuzz/smoke.sh 5
step parity make -s parity
step torch test/torch/test_roundtrip.py --bin build/genrec
if [ -d ../shared/data/ml-100k ]; then
	step quality test/quality/ml100k.sh build/genrec
else
	echo "==== quality: skipped (../shared/data/ml-100k not found)"
fi

echo
if [ ${#failed[@]} -gt 0 ]; then
	echo "FAILED before the SQL suites: ${failed[*]}"
fi
echo "==== sql (pg_regress, then pgTAP)"
test/run_sql_tests.sh
sql=$?
if [ $sql -ne 0 ] || [ ${#failed[@]} -gt 0 ]; then
	exit 1
fi
exit 0
