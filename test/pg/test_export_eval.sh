#!/usr/bin/env bash
# test_export_eval.sh — the same numbers in SQL and in the engine program:
#   1. `genrec synth` prints exactly the rows of genrec_synthetic (same arguments);
#   2. a model trained with genrec_train, exported with genrec_export and evaluated by
#      `genrec eval` on those rows gives the test and validation metrics stored in
#      genrec.models.metrics (HR/NDCG@10/50, MRR, action RMSE), to 1e-9;
#   3. a model trained by `genrec train` imports with genrec_import and keeps its summary.
# Needs a running cluster with genrec installed and the CLI ($GENREC_BIN, default
# build/genrec); test/run_sql_tests.sh runs it. Exits non-zero on any failure.
set -uo pipefail

here=$(cd "$(dirname "$0")" && pwd)
G=${GENREC_BIN:-$here/../../build/genrec}
db=genrec_export
T=$(mktemp -d "${TMPDIR:-/tmp}/genrec_export.XXXXXX")
trap 'rm -rf "$T"' EXIT
failed=0
passed=0
SYN="300, 400, 20, 21"

# Record one check: check NAME STATUS.
check() {
	if [ "$2" -eq 0 ]; then
		passed=$((passed + 1))
		echo "ok - $1"
	else
		failed=$((failed + 1))
		echo "not ok - $1"
	fi
}
q() { PGOPTIONS='-c client_min_messages=warning' psql -X -q -At -v ON_ERROR_STOP=1 -d "$db" "$@"; }

if [ ! -x "$G" ]; then
	echo "test_export_eval: $G not found (make NO_PGXS=1 cli)"
	exit 1
fi
psql -X -q -d postgres -c "SET client_min_messages = warning" -c "DROP DATABASE IF EXISTS $db" \
	-c "CREATE DATABASE $db" || exit 1
q -c 'CREATE EXTENSION genrec' -c "CREATE TABLE syn AS SELECT * FROM genrec.genrec_synthetic($SYN)" ||
	exit 1

# --- 1. the same rows ---
"$G" synth --users 300 --items 400 --per-user 20 --seed 21 >"$T/syn.tsv"
q -F $'\t' -c "SELECT user_id, item_id, to_char(action, 'FM9.0'), extract(epoch FROM ts)::bigint
                 FROM genrec.genrec_synthetic($SYN)" >"$T/syn_sql.tsv"
cmp -s "$T/syn.tsv" "$T/syn_sql.tsv"
check "genrec synth prints the rows of genrec_synthetic ($(wc -l <"$T/syn.tsv") rows)" $?

# --- 2. train in SQL, evaluate with the program ---
q -c 'SET genrec.threads = 1' \
	-c "SELECT version FROM genrec.genrec_train('ex', 'syn', d_model => 16, n_layer => 1,
	      max_len => 20, epochs => 3)" >/dev/null
check "genrec_train trains the model" $?
q -c "SELECT encode(genrec.genrec_export('ex'), 'base64')" | base64 -d >"$T/ex.safetensors"
check "genrec_export writes the safetensors bytes" "$([ -s "$T/ex.safetensors" ]; echo $?)"
q -c "SELECT metrics FROM genrec.models WHERE name = 'ex'" >"$T/catalogue.json"
for split in test valid; do
	"$G" eval --model "$T/ex.safetensors" --data "$T/syn.tsv" --split "$split" --threads 1 \
		--quiet --json "$T/eval_$split.json" >/dev/null 2>"$T/eval.err"
	check "genrec eval reads the exported model ($split)" $?
	python3 - "$T/catalogue.json" "$T/eval_$split.json" "$split" <<'EOF'
import json, math, sys
cat = json.load(open(sys.argv[1]))[sys.argv[3]]
ev = json.load(open(sys.argv[2]))["metrics"]
keys = ["users", "hr@10", "hr@50", "ndcg@10", "ndcg@50", "mrr"]
pairs = [(k, cat[k], ev[k]) for k in keys]
pairs += [("nothing_excluded." + k, cat["nothing_excluded"][k], ev["nothing_excluded"][k])
          for k in keys[1:]]
pairs += [("actions[0].rmse", cat["actions"][0]["rmse"], ev["actions"][0]["rmse"])]
bad = [(k, a, b) for k, a, b in pairs
       if not (isinstance(a, (int, float)) and isinstance(b, (int, float))
               and abs(a - b) <= 1e-9 * max(1.0, abs(b)))]
for k, a, b in pairs:
    print(f"#   {sys.argv[3]} {k}: catalogue {a} eval {b}")
sys.exit(1 if bad else 0)
EOF
	check "genrec eval gives the catalogue's $split metrics" $?
done

# --- 3. train with the program, import into the catalogue ---
"$G" train --data "$T/syn.tsv" --layout lac --d 16 --layers 1 --max-len 20 --epochs 2 \
	--threads 1 --quiet --save "$T/cli.safetensors" --json "$T/cli.json" >/dev/null 2>&1
check "genrec train saves a model" $?
b64=$(base64 -w0 "$T/cli.safetensors")
# psql interpolates :'b64' only in scripts, not in -c
version=$(echo "SELECT genrec.genrec_import('cli', decode(:'b64', 'base64'), true,
            '{\"relation\": \"syn\", \"action_cols\": [\"action\"]}')" | q -v b64="$b64")
check "genrec_import adds the program's model as version 1" "$([ "$version" = 1 ]; echo $?)"
got=$(q -c "SELECT (metrics #>> '{test,ndcg@10}')::float8 FROM genrec.models WHERE name = 'cli'")
want=$(python3 -c "import json; print(json.load(open('$T/cli.json'))['test']['ndcg@10'])")
python3 -c "import sys; a, b = float('$got'), float('$want'); sys.exit(abs(a - b) > 1e-12)"
check "the imported model keeps the program's test NDCG@10 ($got)" $?
same=$(echo "SELECT weights = decode(:'b64', 'base64') FROM genrec.models WHERE name = 'cli'" |
	q -v b64="$b64")
check "the imported bytes are stored unchanged" "$([ "$same" = t ]; echo $?)"
q -c "SELECT genrec.genrec_import('bad', decode('00010203', 'hex'))" >/dev/null 2>"$T/bad.err"
grep -q "XX001\|model file" "$T/bad.err"
check "corrupt bytes are rejected" $?

psql -X -q -d postgres -c "DROP DATABASE $db"
echo "test_export_eval: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
