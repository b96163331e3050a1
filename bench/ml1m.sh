#!/usr/bin/env bash
# bench/ml1m.sh — the ML-1M quality run of the engine (item-only, max_len 200, seen items
# excluded: the protocol of SASRec's and HSTU's published numbers), and the PyTorch model's
# training throughput on the same data for a few epochs (a full PyTorch run takes hours on
# two cores).
#
#   bench/ml1m.sh [TORCH_EPOCHS=1]     -> the engine's results table and JSON in
#                                         build/bench/results/ml1m_*.json
set -euo pipefail
cd "$(dirname "$0")/.."
DATA=${DATA:-../shared/data/ml-1m/ml1m_5core_implicit.tsv.gz}
TORCH_EPOCHS=${1:-1}
OUT=build/bench/results
mkdir -p "$OUT"
make -s NO_PGXS=1 cli >/dev/null
echo "machine: $(lscpu | sed -n 's/^Model name: *//p'), $(nproc) cores; load: $(cut -d' ' -f1-3 /proc/loadavg)"
build/genrec train --data "$DATA" --layout item --max-len 200 --d 64 --layers 2 --heads 2 \
	--epochs 300 --patience 20 --threads 2 --json "$OUT/ml1m_engine.json" \
	--save "$OUT/ml1m_engine.safetensors"
/usr/bin/python3 bench/torch_train.py --data "$DATA" --layout item --max-len 200 \
	--epochs "$TORCH_EPOCHS" --patience "$TORCH_EPOCHS" --threads 2 --json "$OUT/ml1m_torch.json"
/usr/bin/python3 - "$OUT" <<'PY'
import json, sys
d = sys.argv[1]
e = json.load(open(f"{d}/ml1m_engine.json"))
t = json.load(open(f"{d}/ml1m_torch.json"))
print(f"engine : {e['result']['interactions_per_second']:.0f} inter/s, "
      f"{e['result']['seconds_per_epoch']:.1f} s/epoch, best epoch {e['result']['best_epoch']}, "
      f"test HR@10 {e['test']['hr@10']:.4f} NDCG@10 {e['test']['ndcg@10']:.4f}")
print(f"pytorch: {t['result']['interactions_per_second']:.0f} inter/s, "
      f"{t['result']['seconds_per_epoch']:.1f} s/epoch ({t['result']['epochs_run']} epochs)")
print("published (same protocol): SASRec .2853/.1603, HSTU .3097/.1720, HSTU-large .3294/.1893")
PY
