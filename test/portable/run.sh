#!/usr/bin/env bash
# test/portable/run.sh — checks of the portable build (make portable-check; scripts/test.sh).
#
#   1. check_isa.py: no instruction beyond baseline x86-64 in the engine library, the CLI,
#      genrec.so and the CUDA module's host code (when built) outside the GR_HOT kernels' x86-64-v3 / v4 clones (after a
#      self-test showing the scan flags -march=x86-64-v3 code);
#   2. for each clone this CPU can run, a build of the engine without clones for exactly that
#      level (GR_CLONES=no GR_ARCH="-march=x86-64[-vN]"; the baseline build is what the
#      default clone is): the op tests (build/unit/test_ops: every op against its reference,
#      gradient checks) pass in it, and a model trained by the dispatching build scores the
#      same candidates and recommends the same items in it as in the dispatching build
#      (scores within 1e-5 relative; FMA and vector widths change the last bits), and one
#      epoch of training from the same seed gives the same loss within 1e-6 relative. The
#      x86-64-v4 clone, which this build runs on an AVX-512 CPU, is the same code as a
#      -march=x86-64-v4 build (checked once: bit-identical results); GR_PORTABLE_V4=1 builds
#      and compares that too.
#
#   test/portable/run.sh [BUILD]     (default build; the variants go to BUILD/isa-LEVEL)
# Exit status 0 when every check passed. Needs ../shared/data/ml-100k for step 2's model.
set -uo pipefail
cd "$(dirname "$0")/../.." || exit 2
B=${1:-build}
DATA=${GENREC_DATA:-../shared/data}/ml-100k/u.data
failed=0
fail() { echo "FAIL $*"; failed=1; }

echo "== portable: instructions outside the dispatched clones"
python3 test/portable/check_isa.py --self-test || fail "check_isa self-test"
files=("$B/libgrengine.a" "$B/genrec")
[ -f genrec.so ] && files+=(genrec.so)
[ -f "$B/genrec_cuda.so" ] && files+=("$B/genrec_cuda.so")
python3 test/portable/check_isa.py "${files[@]}" || fail "instructions beyond x86-64 outside the clones"

case "$(uname -m)" in
x86_64) ;;
*) echo "== portable: not x86-64, no clones to compare"; exit $failed ;;
esac
if grep -q -- "-DGR_NO_CLONES" "$B/cflags" 2>/dev/null; then
	echo "== portable: $B was built without clones (NATIVE=1 or GR_CLONES=no): nothing to compare"
	exit $failed
fi

# levels this CPU runs: the baseline always, v3 and v4 when the CPU has them
levels=(x86-64)
flags=$(grep -m1 '^flags' /proc/cpuinfo)
has() { for f in "$@"; do [[ " $flags " == *" $f "* ]] || return 1; done; }
has avx2 fma bmi1 bmi2 movbe f16c && levels+=(x86-64-v3)
[ "${GR_PORTABLE_V4:-0}" = 1 ] && has avx512f avx512bw avx512cd avx512dq avx512vl &&
	levels+=(x86-64-v4)
echo "== portable: levels built without clones and compared: ${levels[*]}"

have_data=0
if [ -f "$DATA" ]; then
	have_data=1
	R=$B/isa-results
	mkdir -p "$R"
	common=(--data "$DATA" --layout lac --epochs 1 --patience 1 --threads 1 --seed 11
		--eval-users 100 --quiet)
	if ! "$B/genrec" train "${common[@]}" --save "$R/dispatch.safetensors" \
		--json "$R/train_dispatch.json" >/dev/null; then
		fail "training with the dispatching build"
		have_data=0
	fi
	serve=(--model "$R/dispatch.safetensors" --data "$DATA" --user 7 --quiet)
	cands=$(seq -s, 1 1682)
	"$B/genrec" score "${serve[@]}" --candidates "$cands" --json "$R/score_dispatch.json" \
		>/dev/null || fail "scoring with the dispatching build"
	"$B/genrec" recommend "${serve[@]}" --k 50 --json "$R/rec_dispatch.json" >/dev/null ||
		fail "recommending with the dispatching build"
else
	echo "== portable: $DATA not found: the op tests only"
fi

for L in "${levels[@]}"; do
	V=$B/isa-$L
	echo "== portable: $L without clones ($V)"
	if ! make -s NO_PGXS=1 GR_CUDA=no GR_CLONES=no GR_ARCH="-march=$L -mtune=generic" \
		BUILD="$V" "$V/genrec" "$V/unit/test_ops" >"$V.log" 2>&1; then
		tail -20 "$V.log"
		fail "$L build"
		continue
	fi
	"$V/unit/test_ops" | tail -1 || fail "$L: test_ops"
	[ $have_data = 1 ] || continue
	"$V/genrec" score "${serve[@]}" --candidates "$cands" --json "$R/score_$L.json" \
		>/dev/null || fail "$L: scoring"
	"$V/genrec" recommend "${serve[@]}" --k 50 --json "$R/rec_$L.json" >/dev/null ||
		fail "$L: recommending"
	"$V/genrec" train "${common[@]}" --json "$R/train_$L.json" >/dev/null || fail "$L: training"
	python3 - "$R" "$L" <<'EOF' || fail "$L: results differ from the dispatching build's"
import json, math, sys
R, L = sys.argv[1], sys.argv[2]
load = lambda n: json.load(open(f"{R}/{n}.json"))
ok = True

def close(what, a, b, tol):
    global ok
    a, b = float(a), float(b)
    if math.isnan(a) and math.isnan(b):
        return 0.0
    err = abs(a - b) / max(abs(b), 1e-30)
    if not err <= tol:
        ok = False
    return err

def rows(j):
    for key in ("candidates", "scores", "items", "results", "recommendations"):
        if isinstance(j.get(key), list):
            return j[key]
    raise SystemExit(f"no list of results in {sorted(j)}")

worst = 0.0
sd, sv = rows(load("score_dispatch")), rows(load(f"score_{L}"))
assert len(sd) == len(sv) and len(sd) > 1000, (len(sd), len(sv))
scale = max(abs(float(r["logit"])) for r in sd)
for a, b in zip(sv, sd):
    assert a["item"] == b["item"]
    # logits relative to the largest one (a logit near 0 has no relative precision); actions
    # relative to themselves
    pairs = [(a["logit"], b["logit"], scale)]
    pairs += [(a["actions"][k], b["actions"][k], None) for k in b.get("actions", {})]
    for x, y, ref in pairs:
        if x is None or y is None:
            ok &= x is None and y is None
            continue
        err = abs(float(x) - float(y)) / (ref or max(abs(float(y)), 1e-30))
        worst = max(worst, err)
        ok &= err <= 1e-5
rd, rv = rows(load("rec_dispatch")), rows(load(f"rec_{L}"))
same = sum(x["item"] == y["item"] for x, y in zip(rd, rv))
ok &= same >= len(rd) - 2  # near-ties may swap neighbours
td, tv = load("train_dispatch"), load(f"train_{L}")
lerr = close("loss", tv["epochs"][0]["train_loss"], td["epochs"][0]["train_loss"], 1e-6)
print(f"{'ok' if ok else 'FAIL'}   {L} vs dispatch: scores worst {worst:.2e} (tol 1e-5), "
      f"top-50 same rank {same}/{len(rd)}, epoch-1 loss {lerr:.2e} (tol 1e-6)")
sys.exit(0 if ok else 1)
EOF
done
[ $failed = 0 ] && echo "portable: all checks passed" || echo "portable: FAILED"
exit $failed
