#!/bin/sh
# test_cli.sh — end-to-end checks of the genrec command-line program on a tiny generated
# data set: train every layout (2 epochs, tiny sizes) and save it, re-evaluate the saved model
# and compare with the test metrics train reported, score, recommend, info, the readers
# (gzip, stdin, CSV with a quoted header, MovieLens "::") and the error paths with their exit
# codes. Exits non-zero on any failure; prints "test_cli: N checks passed" at the end.
#
#   test/cli/test_cli.sh [path/to/genrec]     (default: build/genrec, or $GENREC)
set -u

here=$(cd "$(dirname "$0")" && pwd)
G=${1:-${GENREC:-$here/../../build/genrec}}
if [ ! -x "$G" ]; then
	echo "test_cli: $G not found; build it with: make NO_PGXS=1 cli" >&2
	exit 1
fi
command -v python3 >/dev/null 2>&1 || { echo "test_cli: python3 is needed" >&2; exit 1; }

T=$(mktemp -d "${TMPDIR:-/tmp}/genrec_cli.XXXXXX")
trap 'rm -rf "$T"' EXIT
passed=0
failed=0

# Record one check: ok NAME CONDITION-EXIT-STATUS.
ok() {
	if [ "$2" -eq 0 ]; then
		passed=$((passed + 1))
	else
		failed=$((failed + 1))
		echo "FAIL: $1" >&2
		[ -s "$T/err" ] && sed 's/^/    stderr: /' "$T/err" | head -5 >&2
	fi
}

# Run genrec, keep stdout/stderr, and check its exit code: run_rc NAME WANT ARGS...
run_rc() {
	name=$1
	want=$2
	shift 2
	"$G" "$@" >"$T/out" 2>"$T/err"
	got=$?
	[ "$got" -eq "$want" ]
	s=$?
	[ $s -ne 0 ] && echo "    $name: exit $got, wanted $want" >&2
	ok "$name" $s
}

# The last run's stderr contains a text: err_has NAME TEXT.
err_has() {
	grep -q -- "$2" "$T/err"
	ok "$1 (stderr mentions '$2')" $?
}

# Compare train's test metrics with eval's: same_metrics NAME TRAIN_JSON EVAL_JSON.
same_metrics() {
	python3 - "$2" "$3" <<'EOF'
import json, math, sys
t = json.load(open(sys.argv[1]))["test"]
e = json.load(open(sys.argv[2]))["metrics"]
def close(a, b):
    if a is None or b is None:
        return a is None and b is None
    return abs(a - b) <= 1e-6 * max(1.0, abs(b))
bad = []
for k in ("users", "hr@10", "hr@50", "ndcg@10", "ndcg@50", "mrr"):
    if not close(t[k], e[k]):
        bad.append("%s %r != %r" % (k, t[k], e[k]))
    if k != "users" and not close(t["nothing_excluded"][k], e["nothing_excluded"][k]):
        bad.append("nothing_excluded %s" % k)
for a, b in zip(t["actions"], e["actions"]):
    for k in ("targets", "rmse", "baseline_rmse", "logloss", "ne"):
        if not close(a[k], b[k]):
            bad.append("%s %s %r != %r" % (a["name"], k, a[k], b[k]))
if len(t["actions"]) != len(e["actions"]) or t["users"] < 1:
    bad.append("action count or users")
if bad:
    print("\n".join(bad), file=sys.stderr)
    sys.exit(1)
EOF
	ok "$1" $?
}

# Evaluate a Python expression over a JSON file: json_true NAME FILE EXPR (j = the document).
json_true() {
	python3 -c "import json,sys; j=json.load(open(sys.argv[1])); sys.exit(0 if ($3) else 1)" "$2"
	ok "$1" $?
}

# --- data: 60 users, 40 items, user,item,rating,click,time; ties in time on purpose ---
awk 'BEGIN {
	srand(7);
	for (u = 1; u <= 60; u++) {
		n = 4 + int(rand() * 17);
		t = 1000000 + u * 100;
		for (j = 0; j < n; j++) {
			item = 500 + int(rand() * 40);
			r = 1 + int(rand() * 5);
			c = (r >= 4) ? 1 : 0;
			if (rand() < 0.8) t += 1 + int(rand() * 50);
			printf "%d\t%d\t%d\t%d\t%d\n", u, item, r, c, t;
		}
	}
}' >"$T/tiny.tsv"
rows=$(wc -l <"$T/tiny.tsv")
COLS="--cols 0,1,2+3,4 --binary 3"
TINY="--epochs 2 --d 8 --heads 2 --layers 1 --max-len 8 --head-hidden 8 --buckets 4 --batch 16"

# --- the memory estimate: printed by train, and alone with --dry-run (nothing trained) ---
run_rc "train --dry-run" 0 train --data "$T/tiny.tsv" $COLS --layout lac $TINY --dry-run \
	--save "$T/dry.safetensors" --json "$T/dry.json"
grep -q "^memory: an estimated [0-9.]* MB at the peak (parameters" "$T/out" && ! grep -q "throughput" "$T/out"
ok "train --dry-run prints the estimate and does not train" $?
[ ! -e "$T/dry.safetensors" ]
ok "train --dry-run saves nothing" $?
json_true "train --dry-run json" "$T/dry.json" \
	"j['dry_run'] and j['memory']['total'] == sum(j['memory'][k] for k in ('parameters', 'gradients', 'optimiser', 'activations', 'evaluation', 'data')) and j['memory']['total'] > j['memory']['weights_file'] > 0"
run_rc "train --dry-run --quiet" 0 train --data "$T/tiny.tsv" $COLS --layout lac $TINY --dry-run --quiet
grep -q "^memory: an estimated" "$T/out"
ok "train --dry-run --quiet still prints the estimate" $?

# --- train every layout, save, re-evaluate, score, recommend, info ---
for layout in item int lac pc attnlfa attnmvp; do
	m="$T/$layout.safetensors"
	run_rc "train $layout" 0 train --data "$T/tiny.tsv" $COLS --layout $layout $TINY \
		--save "$m" --json "$T/train_$layout.json"
	[ -s "$m" ]
	ok "train $layout wrote the model" $?
	grep -q "^ *1 .*\*$" "$T/out"
	ok "train $layout printed epoch 1 improved" $?
	grep -q "seen excluded" "$T/out" && grep -q "nothing excluded" "$T/out" &&
		grep -q "leave-one-out" "$T/out" && grep -q "throughput" "$T/out"
	ok "train $layout printed protocol, both tables and throughput" $?
	json_true "train $layout json" "$T/train_$layout.json" \
		"j['data']['interactions'] == $rows and j['model']['layout'] == '$layout' and len(j['epochs']) == 2 and j['result']['epochs_run'] == 2 and j['data']['actions'][1]['binary'] and j['memory']['total'] > 0"
	grep -q "^memory: an estimated" "$T/out"
	ok "train $layout printed the memory estimate" $?

	run_rc "eval $layout" 0 eval --model "$m" --data "$T/tiny.tsv" $COLS --json "$T/eval_$layout.json"
	same_metrics "eval $layout reproduces train's test metrics" "$T/train_$layout.json" \
		"$T/eval_$layout.json"
	run_rc "eval $layout --split valid" 0 eval --model "$m" --data "$T/tiny.tsv" $COLS \
		--split valid --ks 5,10,20 --quiet
	grep -q "NDCG@20" "$T/out"
	ok "eval $layout --ks shows NDCG@20" $?

	run_rc "score $layout" 0 score --model "$m" --history 500:5:1,501::0,502:3 \
		--candidates 500,510,99999
	[ "$(wc -l <"$T/out")" -eq 4 ] && head -1 "$T/out" | grep -q "^item	known	logit	col2	col3$" &&
		grep -q "^99999	0	nan	" "$T/out"
	ok "score $layout output: header, 3 rows, unknown item" $?

	run_rc "score $layout --user" 0 score --model "$m" --user 3 --data "$T/tiny.tsv" $COLS \
		--candidates 500,501 --json "$T/score.json"
	json_true "score $layout json" "$T/score.json" \
		"len(j['candidates']) == 2 and j['candidates'][0]['known'] and j['history_length'] > 0"

	run_rc "recommend $layout" 0 recommend --model "$m" --user 3 --data "$T/tiny.tsv" $COLS --k 5
	[ "$(wc -l <"$T/out")" -eq 6 ]
	ok "recommend $layout printed 5 items" $?
	# excluded items never come back
	seen=$(awk -F'\t' '$1 == 3 { print $2 }' "$T/tiny.tsv" | sort -u)
	hit=0
	for i in $(awk 'NR > 1 { print $2 }' "$T/out"); do
		echo "$seen" | grep -qx "$i" && hit=1
	done
	ok "recommend $layout excludes seen items" $hit
	run_rc "recommend $layout --include-seen" 0 recommend --model "$m" --history 500,501 \
		--k 100 --include-seen --json "$T/rec.json"
	json_true "recommend $layout --k clamps to the catalogue" "$T/rec.json" \
		"len(j['items']) == json.load(open('$T/train_$layout.json'))['model']['n_items']"

	run_rc "info $layout" 0 info --model "$m" --json "$T/info.json"
	grep -q "layout $layout" "$T/out" && grep -q "item_emb" "$T/out"
	ok "info $layout shows layout and tensors" $?
	json_true "info $layout json" "$T/info.json" \
		"j['model']['layout'] == '$layout' and j['extra']['action_names'] == ['col2', 'col3']"
done

# --- readers: gzip, stdin, CSV with a quoted header, MovieLens, default columns ---
gzip -c "$T/tiny.tsv" >"$T/tiny.tsv.gz"
run_rc "train from gzip" 0 train --data "$T/tiny.tsv.gz" $COLS --layout lac $TINY --quiet \
	--json "$T/gz.json"
json_true "gzip: every row read" "$T/gz.json" "j['data']['interactions'] == $rows"
"$G" train --data - $COLS --layout lac $TINY --quiet --json "$T/stdin.json" <"$T/tiny.tsv" \
	>/dev/null 2>"$T/err"
ok "train from stdin" $?
json_true "stdin: same test metrics as the file" "$T/stdin.json" \
	"j['test'] == json.load(open('$T/train_lac.json'))['test']"

awk -F'\t' 'BEGIN { print "\"user_id\",\"item_id\",rating,click,timestamp" }
	{ printf "%s,\"%s\",%s,%s,%s\n", $1, $2, $3, $4, $5 }' "$T/tiny.tsv" >"$T/tiny.csv"
run_rc "csv with header names" 0 train --data "$T/tiny.csv" --binary click --layout pc $TINY \
	--quiet --json "$T/csv.json"
json_true "csv: header detected, columns by name" "$T/csv.json" \
	"j['data']['header'] and j['data']['format'] == 'csv' and j['data']['interactions'] == $rows and [a['name'] for a in j['data']['actions']] == ['rating', 'click'] and j['data']['time_col'] == 4"
json_true "csv: same test metrics as the TSV" "$T/csv.json" \
	"abs(j['test']['ndcg@10'] - json.load(open('$T/train_pc.json'))['test']['ndcg@10']) < 1e-6"

awk -F'\t' '{ printf "%s::%s::%s::%s\n", $1, $2, $3, $5 }' "$T/tiny.tsv" >"$T/tiny.dat"
run_rc "movielens format, default columns" 0 train --data "$T/tiny.dat" $TINY --quiet \
	--json "$T/ml.json"
json_true "movielens: u,i,rating,time and layout lac by default" "$T/ml.json" \
	"j['data']['format'] == 'movielens' and j['data']['time_col'] == 3 and len(j['data']['actions']) == 1 and j['model']['layout'] == 'lac'"
run_rc "item-only: --cols with no action" 0 train --data "$T/tiny.dat" --cols 0,1,-,3 $TINY \
	--quiet --json "$T/item0.json" --save "$T/item0.safetensors"
json_true "item-only: layout item by default" "$T/item0.json" \
	"j['model']['layout'] == 'item' and j['data']['actions'] == []"
run_rc "eval of an item-only model ignores the data's actions" 0 eval \
	--model "$T/item0.safetensors" --data "$T/tiny.dat" --json "$T/eval_item0.json"
err_has "eval of an item-only model" "reads no action"
same_metrics "item-only eval reproduces train" "$T/item0.json" "$T/eval_item0.json"

run_rc "eval of an item model on data without its action columns" 0 eval \
	--model "$T/item.safetensors" --data "$T/tiny.tsv" --cols 0,1,-,4 --json "$T/eval_item2.json"
same_metrics "item model on action-less data reproduces train" "$T/train_item.json" \
	"$T/eval_item2.json"

# --- --emb-scale reaches the model and its saved configuration ---
run_rc "train --emb-scale" 0 train --data "$T/tiny.dat" --cols 0,1,-,3 $TINY --emb-scale 0.25 \
	--quiet --save "$T/emb.safetensors"
run_rc "info of an --emb-scale model" 0 info --model "$T/emb.safetensors" --json "$T/emb.json"
json_true "--emb-scale is stored in the model" "$T/emb.json" "j['model']['emb_scale'] == 0.25"

# --- error paths ---
run_rc "--emb-scale 0" 2 train --data "$T/tiny.tsv" --emb-scale 0
run_rc "missing data file" 1 train --data "$T/nope.tsv"
err_has "missing data file" "nope.tsv"
printf '1\t10\t5\t1\t100\n1\t11\tx\t0\t101\n' >"$T/bad.tsv"
run_rc "malformed line" 1 train --data "$T/bad.tsv" $COLS
err_has "malformed line" "bad.tsv:2:"
printf '1\t10\t5\t1\t100\n1\t11\n' >"$T/short.tsv"
run_rc "short line" 1 train --data "$T/short.tsv" $COLS
err_has "short line" "short.tsv:2:"
printf '1\t10\t5\t7\t100\n' >"$T/nonbin.tsv"
run_rc "binary column with a 7" 1 train --data "$T/nonbin.tsv" $COLS
err_has "binary column with a 7" "not 0 or 1"
head -c 300 "$T/tiny.tsv.gz" >"$T/trunc.gz"
run_rc "truncated gzip" 1 train --data "$T/trunc.gz" $COLS
: >"$T/empty.tsv"
run_rc "empty file" 1 train --data "$T/empty.tsv"
err_has "empty file" "no data lines"
run_rc "bad layout name" 2 train --data "$T/tiny.tsv" --layout foo
err_has "bad layout name" "unknown layout"
run_rc "unknown flag" 2 train --data "$T/tiny.tsv" --frobnicate
run_rc "bad number" 2 train --data "$T/tiny.tsv" --epochs zero
run_rc "missing value" 2 train --data "$T/tiny.tsv" --epochs
run_rc "missing --data" 2 train --epochs 1
run_rc "heads not dividing d" 2 train --data "$T/tiny.tsv" $COLS --d 9 --heads 2 --epochs 1
run_rc "layout needing actions on item-only data" 2 train --data "$T/tiny.dat" \
	--cols 0,1,-,3 --layout lac
run_rc "bad --cols" 2 train --data "$T/tiny.tsv" --cols 0,1
run_rc "unknown command" 2 frobnicate
run_rc "unknown format" 2 train --data "$T/tiny.tsv" --format xml
run_rc "--device cuda" 1 train --data "$T/tiny.tsv" --device cuda
err_has "--device cuda" "--device cuda: "
run_rc "--device auto falls back to the CPU" 0 info --model "$T/lac.safetensors" --device auto
err_has "--device auto" "using the CPU"
run_rc "missing model" 1 eval --model "$T/nope.safetensors" --data "$T/tiny.tsv"
printf 'not a model' >"$T/junk.safetensors"
run_rc "corrupt model" 1 info --model "$T/junk.safetensors"
run_rc "action count mismatch" 1 eval --model "$T/lac.safetensors" --data "$T/tiny.tsv" \
	--cols 0,1,2,4
run_rc "score without candidates" 2 score --model "$T/lac.safetensors" --history 500
run_rc "score with both histories" 2 score --model "$T/lac.safetensors" --history 500 \
	--user 1 --data "$T/tiny.tsv" --candidates 500
run_rc "history with too many actions" 2 score --model "$T/lac.safetensors" \
	--history 500:1:1:1 --candidates 500
run_rc "unknown user" 1 recommend --model "$T/lac.safetensors" --user 12345 --data "$T/tiny.tsv" $COLS
run_rc "recommend on an empty history" 1 recommend --model "$T/lac.safetensors" --history -
run_rc "unwritable --save" 1 train --data "$T/tiny.tsv" $COLS --save "$T/no/dir/m.safetensors"
# synth: the rows of genrec_synthetic(3, 100, 6, 42) (expected/synthetic.out), then a
# synthetic log trains
run_rc "synth" 0 synth --users 3 --items 100 --per-user 6 --seed 42
[ "$(sed -n '1p;14p' "$T/out" | tr '\t\n' ',;')" = "1,49,2.6,1704264776;3,45,2.6,1706611151;" ] &&
	[ "$(wc -l <"$T/out")" -eq 14 ]
ok "synth prints the rows of genrec_synthetic(3, 100, 6, 42)" $?
"$G" synth --users 40 --items 60 --per-user 12 --seed 5 >"$T/syn.tsv" 2>"$T/err"
ok "synth to a file" $?
run_rc "train on synth output" 0 train --data "$T/syn.tsv" --layout lac $TINY --quiet
run_rc "synth without --items" 2 synth --users 3
run_rc "synth with too many rows" 2 synth --users 10000000 --items 5 --per-user 101
err_has "synth row limit" "at most 1000000000"
run_rc "help" 0 --help
run_rc "train --help" 0 train --help
grep -q -- "--max-len" "$T/out"
ok "train --help lists --max-len" $?

if [ "$failed" -ne 0 ]; then
	echo "test_cli: $failed of $((passed + failed)) checks FAILED" >&2
	exit 1
fi
echo "test_cli: $passed checks passed"
