#!/usr/bin/env bash
# bench/sql_train_scale.sh — training from tens of millions of rows through genrec_train.
#
# In a throwaway cluster: genrec_synthetic(USERS, ITEMS, PER_USER, 1) into a table (10^7 rows
# by default: 200,000 users x 50, 10^6 items of which most occur), then one genrec_train of
# EPOCHS epochs, item layout, d 64, sampled softmax (256 uniform negatives, the lazy item
# update), genrec.threads THREADS, validation on 2,000 users per epoch (eval_users; the test
# split is evaluated on every user). Printed: the table's size, genrec_train's NOTICEs (rows
# read and the cursor's time, the dataset build, the engine's estimate of the peak memory,
# each epoch's time), its result row, and the backend's peak resident memory (VmHWM of
# /proc/PID/status) against the estimate and against the sum the issue names (data +
# parameters + optimiser state + one batch of activations, from the engine's estimate).
#
# Usage (root, after `make`): bench/sql_train_scale.sh   (USERS=200000 ITEMS=1000000
#   PER_USER=50 EPOCHS=1 THREADS=1)
set -euo pipefail
cd "$(dirname "$0")/.."
. test/pg/cluster.sh
users=${USERS:-200000}
items=${ITEMS:-1000000}
per_user=${PER_USER:-50}

echo "load before: $(uptime | sed 's/.*load average/load average/')"
make -s >/dev/null && make -s install >/dev/null
genrec_cluster_start >/dev/null
trap genrec_cluster_stop EXIT
psql() { command psql -X -v ON_ERROR_STOP=1 "$@"; }
psql -q -c "CREATE EXTENSION genrec"
t0=$SECONDS
psql -q -c "CREATE TABLE big AS SELECT * FROM genrec.genrec_synthetic($users, $items, $per_user, 1)" \
	-c "ANALYZE big"
echo "table: $(psql -At -c "SELECT count(*) || ' rows, ' || count(DISTINCT item_id) || ' items, ' ||
	pg_size_pretty(pg_total_relation_size('big')) FROM big") ($((SECONDS - t0)) s to generate)"
psql -At <<SQL
SET genrec.device = cpu;
SET genrec.threads = ${THREADS:-1};
SET genrec.max_train_memory = -1;
SELECT pg_backend_pid() AS pid \\gset
\\setenv GR_PID :pid
\\! grep VmRSS /proc/\$GR_PID/status | sed 's/^/before training: /'
SELECT 'result: ' || row_to_json(t)::text FROM genrec.genrec_train('big', 'big', layout => 'item',
    epochs => ${EPOCHS:-1}, patience => 1, max_len => 50,
    options => '{"loss": "sampled", "negatives": 256, "eval_users": 2000}') t;
\\! grep VmHWM /proc/\$GR_PID/status | sed 's/^/peak of the backend: /'
SELECT 'estimate: ' || (metrics -> 'memory_estimate')::text FROM genrec.models WHERE name = 'big';
SQL
echo "load after: $(uptime | sed 's/.*load average/load average/')"
