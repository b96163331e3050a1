#!/usr/bin/env bash
# bench/layout_bench.sh — every layout on the same data and model size: training time per
# epoch relative to INT, and test quality over several seeds with the baselines beside.
#
# MovieLens-100K twice: the rating as a continuous action (HR@10, NDCG@10 with seen items
# excluded, rating RMSE on the [0,1] scale; popularity and bias baselines), and "liked"
# = rating >= 4 as a binary action (eval log loss and NE, the AttnLFA/AttnMVP paper's
# metrics). Model: the program's defaults (d 64, 2 layers, 2 heads, max_len 50, batch 128,
# AdamW lr 1e-3, dropout 0.2), EPOCHS epochs without early stopping before, THREADS threads.
# Seconds per epoch are the training passes only (train_seconds / epochs run).
#
#   bench/layout_bench.sh [EPOCHS=20] [SEEDS="1 2 3"] [THREADS=2] [LAYOUTS="int lac pc item attnlfa attnmvp"]
#                         [TRUNKS="gpt2"]   (e.g. TRUNKS="gpt2 hstu": one table per trunk)
#   -> a Markdown table on stdout, JSON per run in build/bench/layouts/
set -euo pipefail
cd "$(dirname "$0")/.."
EPOCHS=${EPOCHS:-${1:-20}}
SEEDS=${SEEDS:-1 2 3}
THREADS=${THREADS:-2}
LAYOUTS=${LAYOUTS:-int lac pc item attnlfa attnmvp}
TRUNKS=${TRUNKS:-gpt2}
DATA=${DATA:-../shared/data/ml-100k/u.data}
OUT=build/bench/layouts
PY=/usr/bin/python3
mkdir -p "$OUT"
make -s NO_PGXS=1 cli >/dev/null
awk -F'\t' -v OFS='\t' '{ print $1, $2, ($3 >= 4 ? 1 : 0), $4 }' "$DATA" >"$OUT/liked.tsv"

echo "machine: $(lscpu | sed -n 's/^Model name: *//p'), $(nproc) cores; load at start: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "data: $DATA; epochs $EPOCHS; seeds $SEEDS; threads $THREADS"
for seed in $SEEDS; do
	for trunk in $TRUNKS; do
		for layout in $LAYOUTS; do
			build/genrec train --data "$DATA" --layout "$layout" --trunk "$trunk" \
				--epochs "$EPOCHS" --patience "$EPOCHS" --threads "$THREADS" --seed "$seed" \
				--quiet --json "$OUT/rating_${trunk}_${layout}_$seed.json" >/dev/null
			[ "$layout" = item ] && continue
			build/genrec train --data "$OUT/liked.tsv" --cols 0,1,2,3 --binary 2 \
				--layout "$layout" --trunk "$trunk" --epochs "$EPOCHS" --patience "$EPOCHS" \
				--threads "$THREADS" --seed "$seed" --quiet \
				--json "$OUT/liked_${trunk}_${layout}_$seed.json" >/dev/null
		done
	done
done
echo "load at end: $(cut -d' ' -f1-3 /proc/loadavg)"
for trunk in $TRUNKS; do
echo
echo "trunk: $trunk"
$PY - "$OUT" "$LAYOUTS" "$SEEDS" "$trunk" <<'PYEOF'
import json, os, statistics as st, sys
out, layouts, seeds, trunk = sys.argv[1], sys.argv[2].split(), sys.argv[3].split(), sys.argv[4]

def runs(task, layout):
    r = []
    for s in seeds:
        p = os.path.join(out, "%s_%s_%s_%s.json" % (task, trunk, layout, s))
        if os.path.exists(p):
            r.append(json.load(open(p)))
    return r

def ms(xs, f="%.4f"):
    xs = [x for x in xs if x is not None]
    if not xs:
        return "–"
    if len(xs) == 1:
        return f % xs[0]
    return (f + " ± " + f) % (st.mean(xs), st.stdev(xs))

def spe(j):
    return j["result"]["train_seconds"] / j["result"]["epochs_run"]

int_spe = [spe(j) for j in runs("rating", "int")]
base = st.mean(int_spe) if int_spe else None
print()
print("| layout | s/epoch | vs INT | HR@10 | NDCG@10 | RMSE | liked log loss | liked NE |")
print("|---|---:|---:|---:|---:|---:|---:|---:|")
for l in layouts:
    r, b = runs("rating", l), runs("liked", l)
    t = [spe(j) for j in r]
    a = lambda j: j["test"]["actions"][0] if j["test"].get("actions") else {}
    print("| %s | %s | %s | %s | %s | %s | %s | %s |" % (
        l, ms(t, "%.3f"), ("%.3f" % (st.mean(t) / base)) if base and t else "–",
        ms([j["test"]["hr@10"] for j in r]), ms([j["test"]["ndcg@10"] for j in r]),
        ms([a(j).get("rmse") for j in r]), ms([a(j).get("logloss") for j in b]),
        ms([a(j).get("ne") for j in b])))
r = runs("rating", layouts[0])
if r:
    pop = r[0]["test"]["popularity"]
    bl = [x for x in (j["test"]["actions"][0].get("baseline_rmse") for j in r if j["test"].get("actions")) if x]
    print("| popularity | | | %.4f | %.4f | | | |" % (pop["hr@10"], pop["ndcg@10"]))
    if bl:
        print("| bias baseline | | | | | %.4f | | |" % bl[0])
PYEOF
done
