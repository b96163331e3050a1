#!/usr/bin/env bash
# bench/portable_bench.sh — the portable build (default: baseline x86-64 with AVX2/AVX-512
# clones of the hot kernels picked at load time) against the native build (make NATIVE=1:
# -march=native, no clones), run back to back and interleaved (the order alternates every
# repetition), so load on a shared machine hits both alike. Per repetition and build:
#   training: genrec train, MovieLens-100K, each of LAYOUTS, EPOCHS epochs, THREADS threads,
#     seed 1 (the same work in both builds): training tokens/s (the program's own count,
#     training time only) and the process's CPU seconds (user + system);
#   serving: bench/cpu_latency on one model (trained by the portable build), 1 thread:
#     p50 of scoring 100 candidates after a history of 50 and of top-10 retrieval.
# Prints every sample, then medians, min-max and the portable / native ratio of medians.
#
#   bench/portable_bench.sh [REPS=5] [EPOCHS=2] [THREADS=2] [ITERS=2000]
#   (LAYOUTS="lac item" by default; DATA=... overrides the data file)
set -euo pipefail
cd "$(dirname "$0")/.."
REPS=${REPS:-${1:-5}}
EPOCHS=${EPOCHS:-${2:-2}}
THREADS=${THREADS:-${3:-2}}
ITERS=${ITERS:-${4:-2000}}
LAYOUTS=${LAYOUTS:-lac item}
DATA=${DATA:-../shared/data/ml-100k/u.data}
OUT=build/bench/portable
mkdir -p "$OUT"
make -s NO_PGXS=1 GR_CUDA=no build/genrec build/bench/cpu_latency >/dev/null
make -s NO_PGXS=1 GR_CUDA=no NATIVE=1 BUILD=build/native build/native/genrec \
	build/native/bench/cpu_latency >/dev/null
declare -A DIR=([portable]=build [native]=build/native)

echo "machine: $(lscpu | sed -n 's/^Model name: *//p'), $(nproc) cores; load at start: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "portable: $(cat build/cflags)"
echo "native:   $(cat build/native/cflags)"
echo "data: $DATA; $REPS repetitions; training $EPOCHS epochs on $THREADS threads; serving 1 thread, $ITERS calls"
for L in $LAYOUTS; do
	build/genrec train --data "$DATA" --layout "$L" --epochs 1 --patience 1 --threads "$THREADS" \
		--seed 1 --eval-users 100 --quiet --save "$OUT/model_$L.safetensors" >/dev/null
done

S=$OUT/samples.tsv
printf 'rep\tbuild\tlayout\ttrain_tokens_per_s\ttrain_cpu_s\tscore_p50_us\trecommend_p50_us\n' >"$S"
for rep in $(seq 1 "$REPS"); do
	order=(portable native)
	[ $((rep % 2)) = 0 ] && order=(native portable)
	for b in "${order[@]}"; do
		d=${DIR[$b]}
		for L in $LAYOUTS; do
			/usr/bin/time -f '%U %S' -o "$OUT/time" "$d/genrec" train --data "$DATA" --layout "$L" \
				--epochs "$EPOCHS" --patience "$EPOCHS" --threads "$THREADS" --seed 1 \
				--eval-users 100 --quiet --json "$OUT/train.json" >/dev/null
			tps=$(python3 -c "import json; print(round(json.load(open('$OUT/train.json'))['result']['tokens_per_second']))")
			cpu=$(awk '{print $1 + $2}' "$OUT/time")
			lat=$("$d/bench/cpu_latency" --model "$OUT/model_$L.safetensors" --data "$DATA" \
				--history 50 --candidates 100 --k 10 --iters "$ITERS" --threads 1 --json)
			s50=$(python3 -c "import json,sys; print(json.loads(sys.argv[1])['score_p50_us'])" "$lat")
			r50=$(python3 -c "import json,sys; print(json.loads(sys.argv[1])['recommend_p50_us'])" "$lat")
			printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$rep" "$b" "$L" "$tps" "$cpu" "$s50" "$r50" | tee -a "$S"
		done
	done
done
echo "load at end: $(cut -d' ' -f1-3 /proc/loadavg)"
python3 - "$S" <<'EOF'
import csv, statistics, sys
rows = list(csv.DictReader(open(sys.argv[1]), delimiter="\t"))
cols = [("train_tokens_per_s", "train tokens/s"), ("train_cpu_s", "train CPU s"),
        ("score_p50_us", "score p50 us"), ("recommend_p50_us", "top-10 p50 us")]
print("\n| layout | metric | portable median (min-max) | native median (min-max) | portable / native |")
print("|---|---|---:|---:|---:|")
for L in dict.fromkeys(r["layout"] for r in rows):
    for c, name in cols:
        med = {}
        cell = {}
        for b in ("portable", "native"):
            v = [float(r[c]) for r in rows if r["layout"] == L and r["build"] == b]
            med[b] = statistics.median(v)
            fmt = (lambda x: f"{x:,.0f}") if c == "train_tokens_per_s" else (lambda x: f"{x:.1f}")
            cell[b] = f"{fmt(med[b])} ({fmt(min(v))}-{fmt(max(v))})"
        print(f"| {L} | {name} | {cell['portable']} | {cell['native']} | {med['portable'] / med['native']:.3f} |")
EOF
