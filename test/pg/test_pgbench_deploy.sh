#!/usr/bin/env bash
# test_pgbench_deploy.sh — pgbench: 8 clients call genrec_score for random users for 30 s
# while another session switches the deployed version of the model every 2 s, alternating
# between versions trained up front and, twice during the run, training and deploying a new
# version (genrec_train(deploy => true)). Every call is logged (pgbench runs INSERT ... SELECT
# genrec_score(...) with the statement's start and end times); the deployer logs when each
# switch began and when it had committed. Checks:
#   - pgbench reports no failed transaction and every transaction logged its row;
#   - every deploy and retrain succeeded, at least one retrain finished during the run;
#   - each version's scores for every user (recorded by deploying each version in turn: up
#     front for the pre-trained versions, again after the run for all) are distinct from the
#     other versions' and the same before and after the run;
#   - every logged result equals exactly one version's scores for that user, and that
#     version was the deployed one at some moment of the call: the one before the last
#     switch that had committed when the statement began, the one after a switch that began
#     before it ended, or one in between (the old or the new version, never a mix or another);
#   - several versions, the retrained ones among them, were served;
#   - once the clients have gone, the registry keeps one version of the model.
# Runs in the cluster of test/run_sql_tests.sh (PGHOST etc. exported), or starts its own
# throwaway cluster when GENREC_PG_DIR is unset. Needs pgbench (package postgresql-15).
set -uo pipefail

cd "$(dirname "$0")/../.." || exit 2
pgbin=$("${PG_CONFIG:-pg_config}" --bindir)
T=$(mktemp -d "${TMPDIR:-/tmp}/genrec_pgbench.XXXXXX")
if [ -z "${GENREC_PG_DIR:-}" ]; then
	. test/pg/cluster.sh
	genrec_cluster_start >/dev/null || exit 1
	trap 'genrec_cluster_stop; rm -rf "$T"' EXIT
else
	trap 'rm -rf "$T"' EXIT
fi
db=genrec_pgbench
clients=8
duration=30
users=200
cands='{1,2,3,4,5,6,7,8,9,10}'
failed=0
passed=0
t_begin=$(date +%s)

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
q() { PGOPTIONS='-c client_min_messages=warning' "$pgbin/psql" -X -q -At -v ON_ERROR_STOP=1 -d "$db" "$@"; }
TRAIN="d_model => 16, n_layer => 1, max_len => 20, epochs => 2, options => '{\"head_hidden\": 16}'"
# Record every version's scores for all users into table $1 (deploying each in turn).
record_expected() {
	local v
	for v in $(q -c "SELECT version FROM genrec.model_overview WHERE name = 'pb' ORDER BY 1"); do
		q -c "SELECT genrec.genrec_deploy('pb', $v)" \
			-c "INSERT INTO $1 SELECT $v, u, genrec.genrec_score('pb', u, '$cands')
			      FROM generate_series(1, $users) u" >/dev/null || return 1
	done
}

"$pgbin/psql" -X -q -d postgres -c "SET client_min_messages = warning" \
	-c "DROP DATABASE IF EXISTS $db" -c "CREATE DATABASE $db" || exit 1
q -c 'CREATE EXTENSION genrec' \
	-c "CREATE TABLE pb_events AS SELECT * FROM genrec.genrec_synthetic($users, 100, 20, 11)" \
	-c 'CREATE INDEX ON pb_events (user_id)' \
	-c 'ANALYZE pb_events' \
	-c 'CREATE UNLOGGED TABLE pb_log (id bigserial, client integer, u integer, s timestamptz, scores real[], e timestamptz)' \
	-c 'CREATE TABLE pb_deploys (seq integer PRIMARY KEY, kind text, version integer, t_start timestamptz, t_end timestamptz)' \
	-c 'CREATE TABLE pb_expected_pre (version integer, u integer, scores real[])' \
	-c 'CREATE TABLE pb_expected (version integer, u integer, scores real[])' || exit 1
for seed in 1 2 3; do
	q -c "SELECT version FROM genrec.genrec_train('pb', 'pb_events', $TRAIN, seed => $seed)" >/dev/null ||
		exit 1
done
record_expected pb_expected_pre || exit 1
q -c "SELECT genrec.genrec_deploy('pb', 1)" \
	-c "INSERT INTO pb_deploys VALUES (0, 'initial', 1, '-infinity', '-infinity')" || exit 1

cat >"$T/score.sql" <<SQL
\\set u random(1, $users)
INSERT INTO pb_log (client, u, s, scores, e) SELECT :client_id, :u, statement_timestamp(), genrec.genrec_score('pb', (:u)::bigint, '$cands'), clock_timestamp();
SQL
echo "# setup took $(($(date +%s) - t_begin)) s"

PGOPTIONS='-c genrec.device=cpu -c client_min_messages=warning' "$pgbin/pgbench" -n -c "$clients" -j 4 -T "$duration" -P 10 \
	-M prepared -f "$T/score.sql" "$db" >"$T/pgbench.out" 2>"$T/pgbench.err" &
bench=$!

# the deployer: every 2 s switch to the next version; the 3rd and 8th switches retrain
seq=0
cur=1
maxv=3
deploy_errors=0
while sleep 2 && kill -0 "$bench" 2>/dev/null; do
	seq=$((seq + 1))
	if [ "$seq" = 3 ] || [ "$seq" = 8 ]; then
		q -c "INSERT INTO pb_deploys VALUES ($seq, 'retrain', NULL, clock_timestamp())" 2>>"$T/deploy.err"
		v=$(q -c "SELECT version FROM genrec.genrec_train('pb', 'pb_events', $TRAIN, seed => $((100 + seq)), deploy => true)" 2>>"$T/deploy.err")
		[ -n "$v" ] && maxv=$v
	else
		v=$((cur % maxv + 1))
		q -c "INSERT INTO pb_deploys VALUES ($seq, 'deploy', $v, clock_timestamp())" \
			-c "SELECT genrec.genrec_deploy('pb', $v)" >/dev/null 2>>"$T/deploy.err"
	fi
	if [ -n "$v" ] && q -c "UPDATE pb_deploys SET version = $v, t_end = clock_timestamp() WHERE seq = $seq" 2>>"$T/deploy.err"; then
		cur=$v
	else
		deploy_errors=$((deploy_errors + 1))
	fi
done
wait "$bench"
bench_rc=$?
grep -E '^(number of (transactions actually processed|failed transactions)|tps)' "$T/pgbench.out" | sed 's/^/# /'

processed=$(sed -n 's/^number of transactions actually processed: \([0-9]*\).*/\1/p' "$T/pgbench.out")
failed_tx=$(sed -n 's/^number of failed transactions: \([0-9]*\).*/\1/p' "$T/pgbench.out")
check "pgbench ran $clients clients for $duration s without an error (exit $bench_rc, ${failed_tx:-?} failed transactions)" \
	"$([ "$bench_rc" = 0 ] && [ "$failed_tx" = 0 ] && ! grep -qiE 'error|abort' "$T/pgbench.err"; echo $?)"
[ "$bench_rc" = 0 ] || head -n 5 "$T/pgbench.err"
logged=$(q -c 'SELECT count(*) FROM pb_log')
check "every transaction logged its result (${processed:-?} processed, $logged logged)" \
	"$([ -n "$processed" ] && [ "$processed" -gt 0 ] && [ "$logged" = "$processed" ]; echo $?)"
summary=$(q -c "SELECT count(*) FILTER (WHERE kind = 'deploy'), count(*) FILTER (WHERE kind = 'retrain'),
                       count(*) FILTER (WHERE kind = 'retrain' AND t_end < (SELECT max(e) FROM pb_log))
                  FROM pb_deploys WHERE seq > 0 AND t_end IS NOT NULL")
IFS='|' read -r n_deploys n_retrains n_retrains_in <<<"$summary"
check "the deployer switched $n_deploys times and retrained $n_retrains times during the run ($deploy_errors errors)" \
	"$([ "$deploy_errors" = 0 ] && [ ! -s "$T/deploy.err" ] && [ "$n_deploys" -ge 5 ] && [ "$n_retrains_in" -ge 1 ]; echo $?)"
[ -s "$T/deploy.err" ] && head -n 5 "$T/deploy.err"

# once the clients' backends have exited, one version of pb stays in the registry
for _ in $(seq 1 200); do
	[ "$(q -c "SELECT count(*) FROM pg_stat_activity WHERE datname = '$db' AND application_name = 'pgbench'")" = 0 ] && break
	sleep 0.05
done
n_cached=$(q -c "SELECT count(*) FROM genrec.genrec_cache_status() WHERE name = 'pb'")
check "after the run the registry keeps one version of pb ($n_cached)" "$([ "$n_cached" = 1 ]; echo $?)"

record_expected pb_expected || echo "could not record the scores after the run"
n_versions=$(q -c 'SELECT count(DISTINCT version) FROM pb_expected')
dup=$(q -c 'SELECT count(*) FROM (SELECT u, scores FROM pb_expected GROUP BY u, scores HAVING count(*) > 1) d')
check "the $n_versions versions score every one of the $users users differently ($dup shared vectors)" \
	"$([ "$n_versions" -ge 4 ] && [ "$dup" = 0 ] &&
		[ "$(q -c 'SELECT count(*) FROM pb_expected')" = $((n_versions * users)) ]; echo $?)"
changed=$(q -c 'SELECT count(*) FROM pb_expected_pre a LEFT JOIN pb_expected b
                  ON b.version = a.version AND b.u = a.u AND b.scores = a.scores WHERE b.u IS NULL')
check "the pre-trained versions score the same before and after the run ($changed differ)" \
	"$([ "$changed" = 0 ]; echo $?)"

q -c "CREATE TABLE pb_matched AS
        SELECT l.id, l.s, l.e, count(x.version) AS n, min(x.version) AS version
          FROM pb_log l LEFT JOIN pb_expected x ON x.u = l.u AND x.scores = l.scores
         GROUP BY l.id, l.s, l.e" || exit 1
read -r unmatched ambiguous < <(q -F' ' -c 'SELECT count(*) FILTER (WHERE n = 0), count(*) FILTER (WHERE n > 1) FROM pb_matched')
check "every result equals one version's scores for its user ($unmatched match none, $ambiguous several)" \
	"$([ "$unmatched" = 0 ] && [ "$ambiguous" = 0 ]; echo $?)"
q -c 'SELECT id, u, scores FROM pb_log WHERE id IN (SELECT id FROM pb_matched WHERE n <> 1) LIMIT 3' | sed 's/^/# /'
stale=$(q -c "SELECT count(*) FROM pb_matched m WHERE n = 1 AND NOT EXISTS (
                SELECT 1 FROM pb_deploys d
                 WHERE d.version = m.version
                   AND d.seq >= (SELECT max(seq) FROM pb_deploys WHERE t_end <= m.s)
                   AND d.seq <= (SELECT max(seq) FROM pb_deploys WHERE t_start <= m.e))")
check "every result comes from the version deployed before or after the switches around its call ($stale others)" \
	"$([ "$stale" = 0 ]; echo $?)"
echo "# results per version: $(q -c "SELECT string_agg(version || ':' || c, ' ' ORDER BY version) FROM (SELECT version, count(*) c FROM pb_matched GROUP BY 1) x")"
served=$(q -c 'SELECT count(DISTINCT version) FROM pb_matched WHERE n = 1')
served_new=$(q -c "SELECT count(DISTINCT m.version) FROM pb_matched m JOIN pb_deploys d
                     ON d.kind = 'retrain' AND d.version = m.version")
check "$served versions were served, $served_new of them retrained during the run" \
	"$([ "$served" -ge 4 ] && [ "$served_new" -ge 1 ]; echo $?)"

"$pgbin/psql" -X -q -d postgres -c "DROP DATABASE $db"
echo "test_pgbench_deploy: $passed passed, $failed failed ($(($(date +%s) - t_begin)) s)"
[ "$failed" -eq 0 ]
