#!/usr/bin/env bash
# bench/cpu_bench.sh — the engine against the PyTorch reference model on this machine's CPU,
# one after the other, same model, data and protocol, and a table of the results.
#
# For each layout (item, int, lac, pc) on MovieLens-100K (d 64, 2 layers, 2 heads, max_len 50,
# batch 128, lr 1e-3, dropout 0.2):
#   training: EPOCHS epochs (no early stop before), THREADS threads for both: train
#     interactions/s, tokens/s, seconds per epoch (training only), test metrics at the best
#     epoch (HR@10, NDCG@10, RMSE);
#   serving (1 thread, the engine's trained model; PyTorch on random weights of the same
#     shape): scoring 100 candidates with a history of 50, and top-10 retrieval with seen items
#     excluded, p50/p99 over ITERS calls.
#
#   bench/cpu_bench.sh [EPOCHS=20] [THREADS=2] [ITERS=2000]     -> table on stdout,
#   JSON in build/bench/results/ (DATA=... overrides the data file)
set -euo pipefail
cd "$(dirname "$0")/.."
EPOCHS=${EPOCHS:-${1:-20}}
THREADS=${THREADS:-${2:-2}}
ITERS=${ITERS:-${3:-2000}}
DATA=${DATA:-../shared/data/ml-100k/u.data}
PY=/usr/bin/python3
OUT=build/bench/results
mkdir -p "$OUT"
make -s NO_PGXS=1 bench-bins >/dev/null

echo "machine: $(lscpu | sed -n 's/^Model name: *//p'), $(nproc) cores; load: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "data: $DATA; epochs $EPOCHS; training threads $THREADS; serving 1 thread, $ITERS calls"
for layout in item int lac pc; do
	build/genrec train --data "$DATA" --layout "$layout" --epochs "$EPOCHS" --patience "$EPOCHS" \
		--threads "$THREADS" --quiet --json "$OUT/engine_$layout.json" \
		--save "$OUT/engine_$layout.safetensors" >/dev/null
	$PY bench/torch_train.py --data "$DATA" --layout "$layout" --epochs "$EPOCHS" \
		--patience "$EPOCHS" --threads "$THREADS" --json "$OUT/torch_$layout.json" >/dev/null
	build/bench/cpu_latency --model "$OUT/engine_$layout.safetensors" --data "$DATA" \
		--history 50 --candidates 100 --k 10 --iters "$ITERS" --threads 1 --json \
		>"$OUT/engine_latency_$layout.json"
	n_items=$($PY -c "import json; print(json.load(open('$OUT/engine_$layout.json'))['model']['n_items'])")
	$PY bench/torch_latency.py --layout "$layout" --n-items "$n_items" --history 50 \
		--candidates 100 --k 10 --iters "$ITERS" --threads 1 --json \
		>"$OUT/torch_latency_$layout.json"
done
$PY bench/cpu_table.py "$OUT"
