#!/usr/bin/env bash
# test/pg/test_scaleout.sh — genrec scaled out over PostgreSQL servers on this machine
# (README "Scaling out"): scripts/scaleout.sh starts a trainer, a proxy and two partitions
# (unix sockets only), MovieLens-100K is loaded through the trainer (each user's rows go to
# partition genrec_partition(user, 2)), and a "single server" database on the trainer's server
# holds all of it. Run by test/run_sql_tests.sh; starts and stops its own servers. Skipped
# (with a message) only when ../shared/data/ml-100k/u.data is absent ($GENREC_DATA overrides
# the folder).
#
# Checks:
#   * placement: each partition holds exactly its users' rows; role OIDs differ between servers
#   * a model trained on the trainer from the partitions (postgres_fdw) by a non-superuser
#     reaches both partitions owned by the local role of the same name, with the grant to the
#     client role; its scores, details, recommendations and batch scores through the proxy
#     equal, for every user, those of the same training on the single server (1e-6)
#   * each partition reports its own cached model; the proxy has no catalogue
#   * a revoke and a new grant on the trainer reach the partitions
#   * a new version: genrec_scale.deploy refuses while a partition lacks it (55000), and
#     rollout deploys it on both; a proxy session open across the rollout switches to it (the
#     partitions' serving notices replicated catalogue changes) and scores as the single
#     server's second version
#   * one partition stopped: that partition's users get an error naming it, the other's are
#     served; after a restart all are served again
#   * 2,000 calls through the proxy from two clients (pgbench): no errors
set -uo pipefail
cd "$(dirname "$0")/../.." || exit 2

data=${GENREC_DATA:-../shared/data}/ml-100k/u.data
if [ ! -r "$data" ]; then
	echo "test_scaleout: skipped: MovieLens-100K not found at $data"
	exit 0
fi
data=$(cd "$(dirname "$data")" && pwd)/u.data

. scripts/scaleout.sh
pgbin=$("${PG_CONFIG:-pg_config}" --bindir)
tmp=$(mktemp -d)
fail=0
t_start=$SECONDS
# check ok|0 DESCRIPTION (anything else fails)
check() {
	if [ "$1" = ok ] || [ "$1" = 0 ]; then echo "ok - $2"; else echo "not ok - $2"; fail=1; fi
}
# Expect: check_eq GOT WANT DESCRIPTION
check_eq() {
	if [ "$1" = "$2" ]; then
		echo "ok - $3"
	else
		echo "not ok - $3"
		echo "#   got:  $(echo "$1" | head -c 600)"
		echo "#   want: $(echo "$2" | head -c 600)"
		fail=1
	fi
}
# Query a server as a role: q ROLE SERVER [--db DB] SQL... (unaligned, '|'-separated)
q() {
	local role=$1
	shift
	GENREC_SCALE_USER=$role genrec_scale_psql "$@" -At -F'|' 2>&1
}
# Poll a query on the trainer (as recsys) until it prints WANT, for at most 60 s.
wait_for() {
	local want=$1 sql=$2 got="" i
	for ((i = 0; i < 600; i++)); do
		got=$(q recsys "$D" trainer -c "$sql")
		[ "$got" = "$want" ] && return 0
		sleep 0.1
	done
	echo "# waited 60 s for '$want' from: $sql (last: $got)"
	return 1
}

GENREC_SCALE_CONF="genrec.device = 'cpu'" genrec_scale_start --partitions 2 || {
	echo "not ok - scripts/scaleout.sh start"
	[ -n "${GENREC_SCALE_DIR:-}" ] && genrec_scale_stop "$GENREC_SCALE_DIR"
	exit 1
}
D=$GENREC_SCALE_DIR
trap 'genrec_scale_stop "$D"; rm -rf "$tmp"' EXIT
echo "# servers up in $((SECONDS - t_start)) s ($D)"

# roles: recsys trains and owns, app is the client; partition 1 creates two roles first, so
# the same names have other OIDs there
q postgres "$D" p1 -c 'CREATE ROLE scale_filler_1' -c 'CREATE ROLE scale_filler_2' >/dev/null
genrec_scale_role "$D" recsys && genrec_scale_role "$D" app || exit 1
for s in trainer p0 p1; do
	q postgres "$D" "$s" -c 'GRANT SELECT ON public.ratings TO recsys' >/dev/null
done
oid_t=$(q postgres "$D" trainer -c "SELECT 'recsys'::regrole::oid")
oid_1=$(q postgres "$D" p1 -c "SELECT 'recsys'::regrole::oid")
check "$([ "$oid_t" != "$oid_1" ] && echo ok)" "role recsys has OID $oid_t on the trainer and $oid_1 on partition 1"

# MovieLens-100K through the trainer, and all of it in the single-server database
genrec_scale_load "$D" "$data" >/dev/null || exit 1
q postgres "$D" trainer --db postgres -c 'CREATE DATABASE genrec_single' >/dev/null
q postgres "$D" trainer --db genrec_single -c 'SET client_min_messages = warning' \
	-c 'CREATE EXTENSION genrec' \
	-c 'CREATE TABLE public.ratings (user_id bigint NOT NULL, item_id bigint NOT NULL, rating real, ts bigint NOT NULL)' \
	-c "\\copy public.ratings FROM '$data'" \
	-c 'CREATE INDEX ON public.ratings (user_id, ts)' -c 'GRANT SELECT ON public.ratings TO recsys' \
	-c 'ANALYZE public.ratings' >/dev/null || exit 1
want=$(q postgres "$D" trainer --db genrec_single -c \
	"SELECT genrec.genrec_partition(user_id, 2), count(*), count(DISTINCT user_id) FROM public.ratings GROUP BY 1 ORDER BY 1")
got="$(q postgres "$D" p0 -c 'SELECT 0, count(*), count(DISTINCT user_id) FROM public.ratings')
$(q postgres "$D" p1 -c 'SELECT 1, count(*), count(DISTINCT user_id) FROM public.ratings')"
check_eq "$got" "$want" "each partition holds its users' rows (partition|rows|users)"
check_eq "$(q postgres "$D" trainer -c 'SELECT count(*) FROM public.ratings')" 100000 \
	"the trainer reads all 100,000 rows through postgres_fdw"
echo "# loaded in $((SECONDS - t_start)) s"

# the same training on the trainer (from the partitions) and on the single server
train="SELECT version FROM genrec.genrec_train('movies', 'public.ratings', action_cols => '{rating}',
	tiebreak_col => 'item_id', epochs => 2, d_model => 32, seed => 42)"
for where in "trainer" "trainer --db genrec_single"; do
	# shellcheck disable=SC2086
	got=$(q recsys "$D" $where -c 'SET client_min_messages = warning' -c "$train" \
		-c "SELECT genrec.genrec_grant('movies', 'app')")
	check_eq "$got" "1" "genrec_train by recsys on $where: version 1"
done
echo "# trained in $((SECONDS - t_start)) s"
wait_for "" "SELECT genrec_scale.missing_on('movies', 1, true)"
check $? "version 1 reaches both partitions, deployed"
for p in p0 p1; do
	got=$(q postgres "$D" "$p" -c "SELECT m.owner = 'recsys'::regrole, n.owner = 'recsys'::regrole,
		m.weights_sha256 = sha256(m.weights) FROM genrec.models m JOIN genrec.model_names n USING (name)
		WHERE m.name = 'movies'" -c "SELECT grantee::regrole, grantor::regrole FROM genrec.model_grants
		WHERE name = 'movies'")
	check_eq "$got" "t|t|t
app|recsys" "$p: owner mapped to the local recsys, weights_sha256 computed there, grant to app"
done

# scores, details, recommendations and batches for every user: proxy vs single server
cands="'{1,50,100,181,258,286,294,300,313,999999}'"
serve_sql="SELECT 's', u, genrec.genrec_score('movies', u, $cands) FROM generate_series(1, 943) u;
SELECT 'r', u, r.rank, r.item_id, r.score FROM generate_series(1, 943) u,
       LATERAL genrec.genrec_recommend('movies', u, 10) r ORDER BY u, r.rank;
SELECT 'd', u, d.item_id, d.known, d.retrieval_logit, d.actions FROM generate_series(1, 943, 5) u,
       LATERAL genrec.genrec_score_detail('movies', u, '{7,99999,12}') d;
SELECT 'b', b.user_id, b.scores FROM genrec.genrec_score_batch('movies',
       ARRAY(SELECT generate_series(1, 943)::bigint), $cands) b ORDER BY b.user_id;"
t0=$SECONDS
q app "$D" proxy -c "$serve_sql" >"$tmp/proxy.out"
t_proxy=$((SECONDS - t0))
q app "$D" trainer --db genrec_single -c "$serve_sql" >"$tmp/single.out"
# Compare two outputs field by field: numbers within 1e-6, everything else exactly.
compare() {
	python3 - "$1" "$2" <<'PY'
import re, sys
a, b = (open(f).read().splitlines() for f in sys.argv[1:3])
num = re.compile(r'-?\d+(\.\d+)?(e[-+]?\d+)?$')
def fields(line):
    return [x for x in re.split(r'[|{},]', line)]
bad = 0
if len(a) != len(b):
    print(f"# {len(a)} lines vs {len(b)}"); bad += 1
for i, (x, y) in enumerate(zip(a, b)):
    fx, fy = fields(x), fields(y)
    same = len(fx) == len(fy) and all(
        (abs(float(p) - float(q)) <= 1e-6 if num.match(p) and num.match(q) else p == q)
        for p, q in zip(fx, fy))
    if not same:
        bad += 1
        if bad <= 3: print(f"# line {i + 1}: {x!r} vs {y!r}")
kinds = {}
for x in a: kinds[x[:1]] = kinds.get(x[:1], 0) + 1
print(f"# compared {len(a)} lines {kinds}, {bad} different")
sys.exit(1 if bad or not a else 0)
PY
}
compare "$tmp/proxy.out" "$tmp/single.out"
check $? "proxy = single server for all 943 users: scores, recommendations, details, batch (1e-6; proxy pass $t_proxy s)"
grep -q 'ERROR' "$tmp/proxy.out" && { check fail "no errors through the proxy"; head -3 "$tmp/proxy.out"; }

# each partition holds its own copy; the proxy none
got=$(q postgres "$D" proxy -c "SELECT partition, version, state, shared FROM genrec_scale.cache_status()
	WHERE name = 'movies' ORDER BY partition")
check_eq "$got" "0|1|ready|t
1|1|ready|t" "each partition reports movies v1 in its own shared memory"
got=$(q postgres "$D" proxy -c "SELECT to_regclass('genrec.models') IS NULL,
	NOT EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'genrec')")
check_eq "$got" "t|t" "the proxy has no genrec extension and no catalogue: it holds no model"

# revokes and grants made on the trainer reach the partitions (grants travel by role name)
q postgres "$D" proxy -c "CREATE FUNCTION public.try_score(m text, u bigint) RETURNS text
	LANGUAGE plpgsql AS \$\$ BEGIN PERFORM genrec.genrec_score(m, u, '{1}'); RETURN 'ok';
	EXCEPTION WHEN OTHERS THEN RETURN SQLSTATE || ' ' || SQLERRM; END \$\$" >/dev/null
try_both="SELECT public.try_score('movies', 1) || ' / ' || public.try_score('movies', 2)"
q recsys "$D" trainer -c "SELECT genrec.genrec_revoke('movies', 'app')" >/dev/null
for ((i = 0; i < 100; i++)); do
	got=$(q app "$D" proxy -c "$try_both")
	[[ "$got" == 42501*/\ 42501* ]] && break
	sleep 0.1
done
check "$([[ "$got" == 42501*/\ 42501* ]] && echo ok)" "a revoke on the trainer: 42501 on both partitions ($got)"
q recsys "$D" trainer -c "SELECT genrec.genrec_grant('movies', 'public')" >/dev/null
for ((i = 0; i < 100; i++)); do
	got=$(q app "$D" proxy -c "$try_both")
	[ "$got" = "ok / ok" ] && break
	sleep 0.1
done
check_eq "$got" "ok / ok" "a grant to PUBLIC on the trainer: served on both partitions"

# a new version: not deployable while partition 1 lacks it; rollout deploys it everywhere
q postgres "$D" p1 -c 'ALTER SUBSCRIPTION genrec_catalogue_p1 DISABLE' >/dev/null
train2="SELECT version FROM genrec.genrec_train('movies', 'public.ratings', action_cols => '{rating}',
	tiebreak_col => 'item_id', epochs => 1, d_model => 32, seed => 7, deploy => false)"
check_eq "$(q recsys "$D" trainer -c 'SET client_min_messages = warning' -c "$train2")" 2 \
	"version 2 trained on the trainer (not deployed)"
check_eq "$(q recsys "$D" trainer --db genrec_single -c 'SET client_min_messages = warning' \
	-c "$train2" -c "SELECT genrec.genrec_deploy('movies', 2)")" 2 "version 2 on the single server"
wait_for "1" "SELECT genrec_scale.missing_on('movies', 2, false)"
check $? "version 2 reaches partition 0 only (partition 1's subscription is disabled)"
got=$(GENREC_SCALE_USER=recsys genrec_scale_psql "$D" trainer -c "\\set VERBOSITY verbose" \
	-c "SELECT genrec_scale.deploy('movies', 2)" 2>&1)
check "$(echo "$got" | grep -q '55000.*missing on partition 1' && echo ok)" \
	"genrec_scale.deploy refuses: 55000, missing on partition 1"
check_eq "$(q recsys "$D" trainer -c "SELECT version FROM genrec.models WHERE name = 'movies' AND deployed")" 1 \
	"nothing was deployed"
# one proxy session across the rollout: its partition backends must switch to version 2
q postgres "$D" p1 -c 'ALTER SUBSCRIPTION genrec_catalogue_p1 ENABLE' >/dev/null
cat >"$tmp/rollout.sh" <<SH
. scripts/scaleout.sh
GENREC_SCALE_USER=recsys genrec_scale_psql "$D" trainer -c "CALL genrec_scale.rollout('movies', 2)"
SH
GENREC_SCALE_USER=app genrec_scale_psql "$D" proxy -At -F'|' >"$tmp/session.out" 2>&1 <<SQL
SELECT 'before', u, genrec.genrec_score('movies', u, $cands) FROM generate_series(1, 40) u;
\\! bash $tmp/rollout.sh >$tmp/rollout.out 2>&1
SELECT 'after', u, genrec.genrec_score('movies', u, $cands) FROM generate_series(1, 40) u;
SQL
check "$(grep -q 'version 2 serves on every partition' "$tmp/rollout.out" && echo ok)" \
	"rollout: $(grep -o 'serves on every partition.*' "$tmp/rollout.out")"
got=$(q app "$D" proxy -c "SELECT partition, present, deployed, serving_version
	FROM genrec_scale.partition_version('movies', 2) ORDER BY partition")
check_eq "$got" "0|t|t|2
1|t|t|2" "version 2 is on both partitions and deployed on both"
q app "$D" trainer --db genrec_single -c "SELECT 'after', u, genrec.genrec_score('movies', u, $cands)
	FROM generate_series(1, 40) u" >"$tmp/single2.out"
grep '^after' "$tmp/session.out" >"$tmp/session2.out"
compare "$tmp/session2.out" "$tmp/single2.out"
check $? "the proxy session open across the rollout scores with version 2 (= single server's version 2)"
check "$(! cmp -s <(grep '^before' "$tmp/session.out" | cut -d'|' -f2-) <(cut -d'|' -f2- "$tmp/session2.out") && echo ok)" \
	"version 2 scores differ from version 1's"
got=$(q postgres "$D" proxy -c "SELECT partition, version FROM genrec_scale.cache_status()
	WHERE name = 'movies' AND state = 'ready' ORDER BY partition")
check_eq "$got" "0|2
1|2" "each partition now holds version 2"

# partition 1 stopped: its users fail with an error naming it, partition 0's are served
genrec_scale_stop_server "$D" p1
try_all="SELECT genrec.genrec_partition(u, 2), count(*) FILTER (WHERE r = 'ok'),
	count(*) FILTER (WHERE r LIKE '%genrec_p1%'), count(*)
	FROM (SELECT u, public.try_score('movies', u) r FROM generate_series(1, 943) u) x GROUP BY 1 ORDER BY 1"
check_eq "$(q app "$D" proxy -c 'SET client_min_messages = warning' -c "$try_all")" "0|468|0|468
1|0|475|475" "partition 1 down: its 475 users get an error naming genrec_p1, partition 0's 468 are served"
got=$(q app "$D" proxy -c "SELECT genrec.genrec_score('movies', 2, '{1}')")
echo "# the error: $(echo "$got" | head -1)"
genrec_scale_start_server "$D" p1 || exit 1
check_eq "$(q app "$D" proxy -c 'SET client_min_messages = warning' -c "$try_all")" "0|468|0|468
1|475|0|475" "partition 1 restarted: all 943 users served again"

# 2,000 calls through the proxy from two clients
cat >"$tmp/bench.sql" <<SQL
\\set u random(1, 943)
SELECT genrec.genrec_score('movies', :u, $cands);
SQL
conn=$(genrec_scale_conninfo "$D" proxy)
"$pgbin/pgbench" -n -c 2 -j 2 -t 1000 -f "$tmp/bench.sql" "$conn user=app" >"$tmp/pgbench.out" 2>&1
rc=$?
check "$([ $rc = 0 ] && grep -q 'number of transactions actually processed: 2000/2000' "$tmp/pgbench.out" &&
	grep -q 'number of failed transactions: 0 ' "$tmp/pgbench.out" && echo ok)" \
	"2,000 calls through the proxy, 0 errors ($(grep -o 'tps = [0-9.]*' "$tmp/pgbench.out"))"
[ $rc = 0 ] || tail -5 "$tmp/pgbench.out"

echo "# test_scaleout: $((SECONDS - t_start)) s"
exit $fail
