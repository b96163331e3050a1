#!/usr/bin/env bash
# bench/loss_bench.sh — the item losses for large catalogues, measured:
#   1. training tokens/s against the catalogue (10^3 .. 10^6 items) for the full, sampled and
#      in-batch losses (build/bench/cpu_train_scale: optimiser steps only, no evaluation), the
#      sampled ones with the lazy item-table update (their default) and with the dense one;
#      the full softmax at 10^6 items runs with a batch of 8 users (a step of 128 users would
#      take minutes; its cost per token does not depend on the batch);
#   2. top-100 retrieval over 10^6 items in the engine (build/bench/cpu_retrieval);
#   3. quality on MovieLens-100K (item layout, EPOCHS epochs, patience 5): test HR@10 / NDCG@10
#      of the full softmax against sampled softmax at several negative counts and InfoNCE;
#   4. (ml1m) the same on MovieLens-1M 5-core (item, max_len 200, ML1M_EPOCHS epochs, no early
#      stop, validation on 2,000 users, test on all): full softmax, sampled with negatives per
#      batch and per user at several counts, popularity negatives, InfoNCE; two runs at a time,
#      one thread each;
#   5. (synth) the same on a larger catalogue from the synthetic generator (`genrec synth
#      --users 4000 --items 20000 --per-user 50 --seed 5`, 200,000 rows; item, max_len 50,
#      SYNTH_EPOCHS epochs, no early stop): full softmax against sampled per user at 64 / 256 /
#      1024 negatives, sampled with cosine logits, InfoNCE; two runs at a time, one thread each.
#
#   THREADS=2 SECONDS_PER=8 EPOCHS=30 bench/loss_bench.sh [train|retrieval|quality|ml1m|synth ...]
set -uo pipefail
cd "$(dirname "$0")/.." || exit 2
THREADS=${THREADS:-2}
SECONDS_PER=${SECONDS_PER:-8}
EPOCHS=${EPOCHS:-30}
DATA=${GENREC_ML100K:-../shared/data/ml-100k/u.data}
ML1M=${GENREC_ML1M:-../shared/data/ml-1m/ml1m_5core_implicit.tsv.gz}
ML1M_EPOCHS=${ML1M_EPOCHS:-20}
SYNTH_EPOCHS=${SYNTH_EPOCHS:-10}
parts=${*:-train retrieval quality}
make -s bench-bins || exit 1
echo "# $(date -u '+%Y-%m-%d %H:%M UTC'), $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 |
	sed 's/^ //'), $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg)"
# Train the item layout on $1 (columns $2, max_len $3, $4 epochs without early stop, test
# on $5 users) with the loss options $6; print test HR@10 / NDCG@10, the training seconds per
# epoch and the popularity baseline's HR@10.
loss_quality_run() {
	build/genrec train --data "$1" --cols "$2" --layout item --max-len "$3" --epochs "$4" \
		--patience "$4" --threads 1 --seed 1 --eval-users "$5" --quiet --json - \
		--loss $6 2>/dev/null | /usr/bin/python3 -c "
import json, sys
d = json.load(sys.stdin)
t = d['test']
e = d['epochs']
print('%-66s %8.4f %8.4f %8.1f %8.4f' % ('$6', t['hr@10'], t['ndcg@10'],
      sum(x['train_seconds'] for x in e) / len(e), t['popularity']['hr@10']))" ||
		echo "loss_bench: $6 failed" >&2
}
# Run loss_quality_run with the first five arguments over every later one, two at a time.
loss_quality_pairs() {
	local fixed=("${@:1:5}") specs=("${@:6}")
	printf '%-66s %8s %8s %8s %8s\n' loss test_hr10 test_ndcg10 s_epoch pop_hr10
	for ((i = 0; i < ${#specs[@]}; i += 2)); do
		loss_quality_run "${fixed[@]}" "${specs[i]}" &
		[ $((i + 1)) -lt ${#specs[@]} ] && loss_quality_run "${fixed[@]}" "${specs[i + 1]}" &
		wait
	done
}
for part in $parts; do
	case $part in
	train)
		build/bench/cpu_train_scale --items 1000,10000,100000,1000000 --losses sampled,infonce \
			--threads "$THREADS" --seconds "$SECONDS_PER"
		# the dense AdamW step of the item table, for comparison with the lazy default
		build/bench/cpu_train_scale --items 1000,100000,1000000 --losses sampled,infonce \
			--threads "$THREADS" --seconds "$SECONDS_PER" --item-update dense | tail -n +3
		build/bench/cpu_train_scale --items 1000,10000,100000 --losses full \
			--threads "$THREADS" --seconds "$SECONDS_PER" | grep -v '^#' | tail -n +2
		build/bench/cpu_train_scale --items 1000000 --losses full --batch 8 \
			--threads "$THREADS" --seconds 1 | tail -1
		;;
	retrieval)
		build/bench/cpu_retrieval --items 1000000 --k 100 --iters 300 --threads "$THREADS"
		build/bench/cpu_retrieval --items 1000000 --k 100 --iters 300 --threads 1
		;;
	quality)
		echo "# MovieLens-100K, item layout, up to $EPOCHS epochs (patience 5), seed 42"
		printf '%-34s %8s %8s %10s\n' loss test_hr10 test_ndcg10 s
		for spec in "full" "sampled --negatives 64" "sampled --negatives 256" \
			"sampled --negatives 1024" "sampled --negatives 256 --sampler popularity" \
			"sampled --negatives 256 --negatives-per batch" "infonce --temperature 0.2"; do
			t0=$(date +%s.%N)
			out=$(build/genrec train --data "$DATA" --layout item --epochs "$EPOCHS" --patience 5 \
				--threads "$THREADS" --seed 42 --quiet --json - --loss $spec 2>/dev/null) || {
				echo "loss_bench: $spec failed" >&2; continue; }
			t1=$(date +%s.%N)
			echo "$out" | /usr/bin/python3 -c "
import json, sys
d = json.load(sys.stdin)
t = d['test']
print('%-34s %8.4f %8.4f %10.1f' % ('$spec', t['hr@10'], t['ndcg@10'], $t1 - $t0))"
		done
		;;
	ml1m)
		echo "# MovieLens-1M 5-core, item layout, max_len 200, $ML1M_EPOCHS epochs, seed 1"
		specs=("full" "sampled --negatives 256 --negatives-per batch"
			"sampled --negatives 2048 --negatives-per batch"
			"sampled --negatives 256 --negatives-per batch --sampler popularity"
			"sampled --negatives 2048 --negatives-per batch --sampler popularity"
			"sampled --negatives 64" "sampled --negatives 256"
			"infonce --negatives 4096 --temperature 0.2"
			"sampled --negatives 256 --similarity cosine --temperature 0.2")
		loss_quality_pairs "$ML1M" 0,1,-,2 200 "$ML1M_EPOCHS" 2000 "${specs[@]}"
		;;
	synth)
		syn=$(mktemp /tmp/genrec_synth.XXXXXX.tsv)
		build/genrec synth --users 4000 --items 20000 --per-user 50 --seed 5 > "$syn" || exit 1
		echo "# synthetic: $(wc -l < "$syn") rows, $(cut -f2 "$syn" | sort -u | wc -l) items;" \
			"item layout, max_len 50, $SYNTH_EPOCHS epochs, seed 1"
		specs=("full" "sampled --negatives 64" "sampled --negatives 256"
			"sampled --negatives 1024"
			"sampled --negatives 256 --similarity cosine --temperature 0.2 --lr 0.003"
			"infonce --temperature 0.2")
		loss_quality_pairs "$syn" 0,1,-,3 50 "$SYNTH_EPOCHS" 1000 "${specs[@]}"
		rm -f "$syn"
		;;
	esac
done
