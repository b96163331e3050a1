#!/usr/bin/env bash
# test_worker.sh — the serving worker (README "GPU worker") in CPU mode, on its own throwaway
# cluster with genrec in shared_preload_libraries (test/pg/cluster.sh, the serving fixtures of
# test/pg/serve_fixture.sh: one model per layout, 150 users).
#   1. genrec.worker = off: the reference. Every user of every layout is scored (candidate
#      lists of varying length with an unknown item and a NULL), recommended (k 10, seen items
#      excluded for half), scored in detail and from a genrec_history; no worker runs.
#   2. genrec.worker = cpu, one session (genrec.worker_fallback = error, so nothing is scored
#      locally unnoticed): every result is bit-identical to the reference (each request is alone
#      in its pass), the worker took every request, and the backend mapped no CUDA module and
#      reports the CPU for genrec.device = auto.
#   3. eight concurrent sessions scoring and recommending: every result equals the reference
#      within 1e-5 (relative, absolute below 1) with the same recommended items in the same
#      order (ties within 1e-5 may swap), and batching happened: passes with more than one
#      request, max_batch > 1.
#   4. cancel: a request held in the worker by genrec.worker_test_delay_ms is cancelled with
#      pg_cancel_backend (57014 within 1 s); a request queued behind a slow one is cancelled
#      before the worker takes it (also within 1 s); statement_timeout likewise; the cancelled
#      counter counts them; the cancelled sessions' next calls are correct.
#   5. the worker terminated (pg_terminate_backend) while a session waits: the session gets a
#      NOTICE and the locally computed, correct result; with genrec.worker_fallback = error it
#      gets ERROR 55000; the postmaster starts a new worker (starts + 1) and the next call is
#      served by it.
#   6. kill -9 of the worker: the postmaster reinitialises the server (the waiting session
#      loses its connection, as for any crashed process attached to shared memory), a worker
#      runs again and a new session's calls are served and correct.
#   7. genrec.worker = gpu without a GPU: the worker records why and stays down, calls are
#      scored locally (NOTICE) and correct, and the backends still map no CUDA module.
#   8. dynamic shared memory exhausted (segments as files on a small tmpfs, then filled): a new
#      session that cannot create its mailbox scores locally with a NOTICE, correctly; once
#      there is room again its calls go to the worker (skipped where no tmpfs can be mounted).
# Every psql call is bounded by timeout. Exits non-zero on any failure.
set -uo pipefail

cd "$(dirname "$0")/../.." || exit 2
. test/pg/cluster.sh
. test/pg/serve_fixture.sh
failed=0
passed=0
db=genrec_worker
T=$(mktemp -d "${TMPDIR:-/tmp}/genrec_worker.XXXXXX")
chmod 755 "$T"
bindir=$("${PG_CONFIG:-pg_config}" --bindir)

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
q() { PGOPTIONS="-c client_min_messages=warning ${QOPT:-}" timeout 120 psql -X -q -At -d "$db" "$@"; }
now() { date +%s.%N; }
diff_s() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f", a - b }'; }
less() { awk -v a="$1" -v b="$2" 'BEGIN { exit !(a < b) }'; }

# Restart the server with these genrec settings (appended to a fresh copy of the base file).
restart_with() {
	cp "$GENREC_PG_DIR/base.conf" "$GENREC_PG_DIR/data/postgresql.conf"
	printf '%s\n' "shared_preload_libraries = 'genrec'" "$@" >>"$GENREC_PG_DIR/data/postgresql.conf"
	genrec_cluster_run "$bindir/pg_ctl" -D "$GENREC_PG_DIR/data" -l "$GENREC_PG_DIR/server.log" \
		-w -t 60 restart >/dev/null 2>&1
}
# Wait (up to 10 s) until the worker takes requests; print its pid.
wait_worker() {
	local pid=""
	for _ in $(seq 1 100); do
		pid=$(q -c "SELECT pid FROM genrec.genrec_worker_status() WHERE running" 2>/dev/null)
		[ -n "$pid" ] && break
		sleep 0.1
	done
	echo "$pid"
}
# Score in a session and, while it is still connected, print whether its backend maps the
# CUDA module or a CUDA library ("cuda") or not ("none"), then what genrec_device_info says.
backend_cuda() {
	local pid
	PGAPPNAME=cuda_probe PGOPTIONS="-c client_min_messages=warning" timeout 60 \
		psql -X -q -At -d "$db" -c "$CALL" -c "SELECT pg_sleep(2)" >/dev/null 2>&1 &
	sleep 1
	pid=$(q -c "SELECT pid FROM pg_stat_activity WHERE application_name = 'cuda_probe'")
	if [ -z "$pid" ]; then
		echo "no-backend"
	elif grep -qE 'genrec_cuda|libcuda|libcudart' "/proc/$pid/maps" 2>/dev/null; then
		echo "cuda"
	else
		echo "none"
	fi
	wait
}

genrec_cluster_start >/dev/null || exit 1
trap 'genrec_cluster_run "$bindir/pg_ctl" -D "$GENREC_PG_DIR/data" -m fast -w stop >/dev/null 2>&1
      umount "$GENREC_PG_DIR/data/pg_dynshmem" 2>/dev/null; genrec_cluster_stop; rm -rf "$T"' EXIT
cp "$GENREC_PG_DIR/data/postgresql.conf" "$GENREC_PG_DIR/base.conf"
restart_with "genrec.worker = off"
check "the server starts preloaded with genrec.worker = off" $?
genrec_serve_copy_models || exit 1
psql -X -q -d postgres -c "CREATE DATABASE $db" || exit 1
q -c "CREATE EXTENSION genrec" || exit 1
genrec_serve_fixture "$db" || { echo "could not build the fixtures" >&2; exit 1; }

# Everything served, into tables PREFIX_score, PREFIX_rec (one statement each).
q <<'SQL' || exit 1
CREATE TABLE public.cases AS
  SELECT l AS layout, u AS user_id,
         ARRAY(SELECT i::bigint FROM generate_series(1 + u % 5, 80, 1 + u % 7) i)
           || ARRAY[99999, NULL]::bigint[] AS cands
    FROM unnest(ARRAY['lac', 'int', 'pc', 'item']) l, generate_series(1, 150) u;
CREATE TABLE public.hist AS
  SELECT user_id, genrec.genrec_history(item_id, rating::real, ts) AS h
    FROM genrec_fixture.events WHERE user_id <= 20 GROUP BY user_id;
SQL
cat >"$T/serve.sql" <<'SQL'
INSERT INTO public.:p_score
  SELECT layout, user_id, genrec.genrec_score('fx_' || layout, user_id, cands) FROM public.cases;
INSERT INTO public.:p_rec
  SELECT c.layout, c.user_id, array_agg(r.item_id ORDER BY r.rank), array_agg(r.score ORDER BY r.rank)
    FROM public.cases c, genrec.genrec_recommend('fx_' || c.layout, c.user_id, 10, c.user_id % 2 = 0) r
   GROUP BY 1, 2;
SQL
cat >"$T/extra.sql" <<'SQL'
INSERT INTO public.:p_extra
  SELECT 'detail ' || c.layout, c.user_id,
         array_agg(d.retrieval_logit ORDER BY d.ord) || array_agg(d.actions[1] ORDER BY d.ord)
    FROM public.cases c,
         genrec.genrec_score_detail('fx_' || c.layout, c.user_id, c.cands) WITH ORDINALITY d(item_id, known, retrieval_logit, actions, ord)
   WHERE c.user_id <= 30 GROUP BY 1, 2;
INSERT INTO public.:p_extra
  SELECT 'history ' || c.layout, c.user_id, genrec.genrec_score('fx_' || c.layout, h.h, c.cands)
    FROM public.cases c JOIN public.hist h USING (user_id);
INSERT INTO public.:p_extra
  SELECT 'history-rec ' || c.layout, c.user_id, array_agg(r.score ORDER BY r.rank)
    FROM public.cases c JOIN public.hist h USING (user_id),
         genrec.genrec_recommend('fx_' || c.layout, h.h, 5, true) r
   GROUP BY 1, 2;
SQL
make_tables() {
	q -c "CREATE TABLE public.${1}_score (layout text, user_id int, s real[])" \
		-c "CREATE TABLE public.${1}_rec (layout text, user_id int, items bigint[], s real[])" \
		-c "CREATE TABLE public.${1}_extra (what text, user_id int, s real[])"
}
serve_into() {
	local p=$1
	shift
	q "$@" -v p_score="${p}_score" -v p_rec="${p}_rec" -v p_extra="${p}_extra" -f "$T/serve.sql"
}

# --- 1. the reference, worker off ---
make_tables ref
serve_into ref && q -v p_extra=ref_extra -f "$T/extra.sql"
check "reference results with the worker off" $?
n=$(q -c "SELECT count(*) FROM ref_score")
check "600 reference score rows ($n)" "$([ "$n" = 600 ]; echo $?)"
s=$(q -c "SELECT mode || ' ' || running || ' ' || coalesce(requests::text, 'null') FROM genrec.genrec_worker_status()")
check "genrec_worker_status() with the worker off: off, not running, NULL counters ($s)" \
	"$([ "$s" = "off false null" ]; echo $?)"
[ -z "$(q -c "SELECT pid FROM pg_stat_activity WHERE backend_type = 'genrec worker'")" ]
check "no worker process with genrec.worker = off" $?

# one call whose result is checked against the reference ('t' when equal)
CALL="SELECT genrec.genrec_score('fx_lac', 7, cands) = (SELECT s FROM public.ref_score WHERE layout = 'lac' AND user_id = 7) FROM public.cases WHERE layout = 'lac' AND user_id = 7"

# --- 2. the worker, one session: bit-identical ---
restart_with "genrec.worker = cpu" "genrec.worker_batch_us = 2000"
check "the server restarts with genrec.worker = cpu" $?
wpid=$(wait_worker)
check "the worker runs (pid ${wpid:-none})" "$([ -n "$wpid" ]; echo $?)"
[ "$(q -c "SELECT backend_type FROM pg_stat_activity WHERE pid = '${wpid:-0}'")" = "genrec worker" ]
check "pg_stat_activity shows it as 'genrec worker'" $?
make_tables one
before=$(q -c "SELECT requests FROM genrec.genrec_worker_status()")
QOPT="-c genrec.worker_fallback=error" serve_into one && QOPT="-c genrec.worker_fallback=error" q -v p_extra=one_extra -f "$T/extra.sql"
check "one session serves everything through the worker (fallback = error)" $?
after=$(q -c "SELECT requests FROM genrec.genrec_worker_status()")
calls=$(q -c "SELECT (SELECT count(*) FROM one_score) + (SELECT count(*) FROM one_rec) + (SELECT count(*) FROM one_extra)")
check "the worker took every call ($((after - before)) requests for $calls calls)" \
	"$([ $((after - before)) -eq "$calls" ]; echo $?)"
same=$(q <<'SQL'
SELECT (SELECT count(*) FROM ref_score r JOIN one_score o USING (layout, user_id) WHERE r.s IS NOT DISTINCT FROM o.s)
       || ' ' || (SELECT count(*) FROM ref_rec r JOIN one_rec o USING (layout, user_id) WHERE r.items = o.items AND r.s = o.s)
       || ' ' || (SELECT count(*) FROM ref_extra r JOIN one_extra o USING (what, user_id) WHERE r.s IS NOT DISTINCT FROM o.s)
       || ' ' || (SELECT count(*) FROM ref_extra);
SQL
)
read -r a b c d <<<"$same"
check "scores through the worker are bit-identical to direct scoring ($a/600 score, $b/600 recommend, $c/$d detail and history rows)" \
	"$([ "$a" = 600 ] && [ "$b" = 600 ] && [ "$c" = "$d" ]; echo $?)"
dev=$(q -c "SELECT setting || ' ' || device || ' ' || (detail LIKE '%genrec.worker is on%') FROM genrec.genrec_device_info()")
check "a backend with genrec.device = auto uses the CPU while the worker is on ($dev)" \
	"$([ "$dev" = "auto cpu true" ]; echo $?)"

# --- 3. concurrent sessions: batching ---
b0=$(q -c "SELECT batched_requests FROM genrec.genrec_worker_status()")
for i in $(seq 1 8); do
	make_tables "c$i" || exit 1
done
t0=$(now)
for i in $(seq 1 8); do
	QOPT="-c genrec.worker_fallback=error" serve_into "c$i" >"$T/c$i.out" 2>&1 &
done
wait
echo "# 8 sessions x 1,200 calls: $(diff_s "$(now)" "$t0") s"
bad=0
for i in $(seq 1 8); do
	[ -s "$T/c$i.out" ] && { cat "$T/c$i.out"; bad=1; }
done
check "eight concurrent sessions serve without errors" $bad
cmp=$(q <<'SQL'
CREATE FUNCTION pg_temp.close(a real[], b real[]) RETURNS boolean LANGUAGE sql IMMUTABLE AS $$
  SELECT coalesce(array_length(a, 1), 0) = coalesce(array_length(b, 1), 0) AND
         NOT EXISTS (SELECT 1 FROM unnest(a, b) u(x, y)
                      WHERE (x IS NULL) <> (y IS NULL) OR abs(x - y) > 1e-5 * greatest(1, abs(y)))
$$;
CREATE FUNCTION pg_temp.same_ranking(ia bigint[], sa real[], ib bigint[], sb real[]) RETURNS boolean
LANGUAGE sql IMMUTABLE AS $$
  SELECT pg_temp.close(sa, sb) AND
         NOT EXISTS (SELECT 1 FROM generate_subscripts(ia, 1) i
                      WHERE ia[i] <> ib[i] AND abs(sa[i] - sb[i]) > 1e-5 * greatest(1, abs(sb[i])))
$$;
SELECT sum(ok_s) || ' ' || sum(ok_r) || ' ' || sum(exact_s) || ' ' || sum(n_s) FROM (
  SELECT (SELECT count(*) FILTER (WHERE pg_temp.close(c.s, r.s)) FROM ref_score r JOIN c1_score c USING (layout, user_id)) AS ok_s,
         (SELECT count(*) FILTER (WHERE pg_temp.same_ranking(c.items, c.s, r.items, r.s)) FROM ref_rec r JOIN c1_rec c USING (layout, user_id)) AS ok_r,
         (SELECT count(*) FILTER (WHERE c.s IS NOT DISTINCT FROM r.s) FROM ref_score r JOIN c1_score c USING (layout, user_id)) AS exact_s,
         (SELECT count(*) FROM c1_score) AS n_s
  UNION ALL SELECT (SELECT count(*) FILTER (WHERE pg_temp.close(c.s, r.s)) FROM ref_score r JOIN c2_score c USING (layout, user_id)),
         (SELECT count(*) FILTER (WHERE pg_temp.same_ranking(c.items, c.s, r.items, r.s)) FROM ref_rec r JOIN c2_rec c USING (layout, user_id)),
         (SELECT count(*) FILTER (WHERE c.s IS NOT DISTINCT FROM r.s) FROM ref_score r JOIN c2_score c USING (layout, user_id)),
         (SELECT count(*) FROM c2_score)
  UNION ALL SELECT (SELECT count(*) FILTER (WHERE pg_temp.close(c.s, r.s)) FROM ref_score r JOIN c3_score c USING (layout, user_id)),
         (SELECT count(*) FILTER (WHERE pg_temp.same_ranking(c.items, c.s, r.items, r.s)) FROM ref_rec r JOIN c3_rec c USING (layout, user_id)),
         (SELECT count(*) FILTER (WHERE c.s IS NOT DISTINCT FROM r.s) FROM ref_score r JOIN c3_score c USING (layout, user_id)),
         (SELECT count(*) FROM c3_score)
  UNION ALL SELECT (SELECT count(*) FILTER (WHERE pg_temp.close(c.s, r.s)) FROM ref_score r JOIN c4_score c USING (layout, user_id)),
         (SELECT count(*) FILTER (WHERE pg_temp.same_ranking(c.items, c.s, r.items, r.s)) FROM ref_rec r JOIN c4_rec c USING (layout, user_id)),
         (SELECT count(*) FILTER (WHERE c.s IS NOT DISTINCT FROM r.s) FROM ref_score r JOIN c4_score c USING (layout, user_id)),
         (SELECT count(*) FROM c4_score)
  UNION ALL SELECT (SELECT count(*) FILTER (WHERE pg_temp.close(c.s, r.s)) FROM ref_score r JOIN c5_score c USING (layout, user_id)),
         (SELECT count(*) FILTER (WHERE pg_temp.same_ranking(c.items, c.s, r.items, r.s)) FROM ref_rec r JOIN c5_rec c USING (layout, user_id)),
         (SELECT count(*) FILTER (WHERE c.s IS NOT DISTINCT FROM r.s) FROM ref_score r JOIN c5_score c USING (layout, user_id)),
         (SELECT count(*) FROM c5_score)
  UNION ALL SELECT (SELECT count(*) FILTER (WHERE pg_temp.close(c.s, r.s)) FROM ref_score r JOIN c6_score c USING (layout, user_id)),
         (SELECT count(*) FILTER (WHERE pg_temp.same_ranking(c.items, c.s, r.items, r.s)) FROM ref_rec r JOIN c6_rec c USING (layout, user_id)),
         (SELECT count(*) FILTER (WHERE c.s IS NOT DISTINCT FROM r.s) FROM ref_score r JOIN c6_score c USING (layout, user_id)),
         (SELECT count(*) FROM c6_score)
  UNION ALL SELECT (SELECT count(*) FILTER (WHERE pg_temp.close(c.s, r.s)) FROM ref_score r JOIN c7_score c USING (layout, user_id)),
         (SELECT count(*) FILTER (WHERE pg_temp.same_ranking(c.items, c.s, r.items, r.s)) FROM ref_rec r JOIN c7_rec c USING (layout, user_id)),
         (SELECT count(*) FILTER (WHERE c.s IS NOT DISTINCT FROM r.s) FROM ref_score r JOIN c7_score c USING (layout, user_id)),
         (SELECT count(*) FROM c7_score)
  UNION ALL SELECT (SELECT count(*) FILTER (WHERE pg_temp.close(c.s, r.s)) FROM ref_score r JOIN c8_score c USING (layout, user_id)),
         (SELECT count(*) FILTER (WHERE pg_temp.same_ranking(c.items, c.s, r.items, r.s)) FROM ref_rec r JOIN c8_rec c USING (layout, user_id)),
         (SELECT count(*) FILTER (WHERE c.s IS NOT DISTINCT FROM r.s) FROM ref_score r JOIN c8_score c USING (layout, user_id)),
         (SELECT count(*) FROM c8_score)
) t;
SQL
)
read -r ok_s ok_r exact_s n_s <<<"$cmp"
check "concurrent results equal direct scoring within 1e-5 ($ok_s/4800 score rows, $ok_r/4800 rankings; $exact_s bit-identical)" \
	"$([ "$ok_s" = 4800 ] && [ "$ok_r" = 4800 ]; echo $?)"
st=$(q -c "SELECT batched_requests - $b0, max_batch, passes, batches, requests FROM genrec.genrec_worker_status()")
IFS='|' read -r batched maxb passes batches reqs <<<"$st"
echo "# worker: $reqs requests, $batches batches, $passes passes, $batched requests shared a pass in phase 3, max batch $maxb"
check "requests of concurrent sessions shared engine passes ($batched batched, max batch $maxb)" \
	"$([ "${batched:-0}" -gt 0 ] && [ "${maxb:-0}" -gt 1 ]; echo $?)"
check "no call fell back to local scoring" \
	"$([ "$(q -c "SELECT local_fallbacks + failed FROM genrec.genrec_worker_status()")" = 0 ]; echo $?)"
check "the worker holds the four models" \
	"$([ "$(q -c "SELECT models FROM genrec.genrec_worker_status()")" = 4 ]; echo $?)"
r=$(backend_cuda)
check "a backend that scored maps no CUDA module while the worker is on ($r)" "$([ "$r" = none ]; echo $?)"

# --- 4. cancel ---
c0=$(q -c "SELECT cancelled FROM genrec.genrec_worker_status()")
# a request the worker holds for 4 s: cancelled after 0.7 s; then the same session scores again
PGAPPNAME=slow_one PGOPTIONS="-c genrec.worker_test_delay_ms=4000" \
	timeout 60 psql -X -At -d "$db" -v VERBOSITY=verbose -c "$CALL" \
	-c "\\! date +%s.%N >$T/cancel1.end" -c "SET genrec.worker_test_delay_ms = 0" \
	-c "$CALL" >"$T/cancel1.out" 2>&1 &
job=$!
sleep 0.7
pid=$(q -c "SELECT pid FROM pg_stat_activity WHERE application_name = 'slow_one' AND wait_event_type = 'Extension'")
check "the slow request waits on the worker (wait event Extension)" "$([ -n "$pid" ]; echo $?)"
t_cancel=$(now)
q -c "SELECT pg_cancel_backend(${pid:-0})" >/dev/null
wait "$job"
lat=$(diff_s "$(cat "$T/cancel1.end" 2>/dev/null || now)" "$t_cancel")
check "a request running in the worker is cancelled within 1 s ($lat s)" "$(less "$lat" 1.0; echo $?)"
grep -q "57014" "$T/cancel1.out"
check "the cancelled request fails with 57014" $?
[ "$(tail -1 "$T/cancel1.out")" = t ]
check "the same session's next call (after the worker finished the abandoned one) is correct" $?

# a fast request queued behind a slow one: cancelled before the worker takes it
PGOPTIONS="-c genrec.worker_test_delay_ms=3000" timeout 60 psql -X -At -d "$db" -c "$CALL" >"$T/slow2.out" 2>&1 &
slow=$!
sleep 0.3
(
	PGAPPNAME=queued timeout 60 psql -X -At -d "$db" -v VERBOSITY=verbose -c "$CALL" >"$T/cancel2.out" 2>&1
	now >"$T/cancel2.end"
) &
job=$!
sleep 0.5
pid=$(q -c "SELECT pid FROM pg_stat_activity WHERE application_name = 'queued' AND wait_event_type = 'Extension'")
t_cancel=$(now)
q -c "SELECT pg_cancel_backend(${pid:-0})" >/dev/null
wait "$job"
lat=$(diff_s "$(cat "$T/cancel2.end")" "$t_cancel")
check "a request queued behind a slow one is cancelled within 1 s ($lat s)" "$(less "$lat" 1.0; echo $?)"
grep -q "57014" "$T/cancel2.out"
check "the queued request fails with 57014" $?
wait "$slow"
[ "$(cat "$T/slow2.out")" = t ]
check "the slow request in front of it completes correctly" $?

# statement_timeout
t0=$(now)
PGOPTIONS="-c genrec.worker_test_delay_ms=3000 -c statement_timeout=500" \
	timeout 60 psql -X -At -d "$db" -v VERBOSITY=verbose -c "$CALL" >"$T/timeout.out" 2>&1
lat=$(diff_s "$(now)" "$t0")
grep -q "57014" "$T/timeout.out" && less "$lat" 1.5
check "statement_timeout = 500 ms ends a request held by the worker ($lat s, 57014)" $?
c1=$(q -c "SELECT cancelled FROM genrec.genrec_worker_status()")
check "the worker counted the three withdrawn requests ($((c1 - c0)))" "$([ $((c1 - c0)) -eq 3 ]; echo $?)"
sleep 3
[ "$(q -c "$CALL")" = t ]
check "calls after the cancels are served correctly" $?

# --- 5. the worker terminated while a session waits ---
s0=$(q -c "SELECT starts FROM genrec.genrec_worker_status()")
f0=$(q -c "SELECT failed FROM genrec.genrec_worker_status()")
wpid=$(wait_worker)
PGOPTIONS="-c genrec.worker_test_delay_ms=3000" timeout 60 psql -X -At -d "$db" -c "$CALL" >"$T/term.out" 2>&1 &
job=$!
sleep 0.5
q -c "SELECT pg_terminate_backend($wpid)" >/dev/null
wait "$job"
grep -q "genrec worker unavailable: scoring in this backend" "$T/term.out" && [ "$(tail -1 "$T/term.out")" = t ]
check "a session waiting when the worker is terminated gets a NOTICE and the correct local result" $?
f1=$(q -c "SELECT failed FROM genrec.genrec_worker_status()")
check "the worker's exit failed the request it held ($((f1 - f0)))" "$([ $((f1 - f0)) -eq 1 ]; echo $?)"
wpid2=$(wait_worker)
s1=$(q -c "SELECT starts FROM genrec.genrec_worker_status()")
check "the postmaster started a new worker (pid $wpid -> ${wpid2:-none}, starts $s0 -> $s1)" \
	"$([ -n "$wpid2" ] && [ "$wpid2" != "$wpid" ] && [ "$s1" -eq $((s0 + 1)) ]; echo $?)"
r0=$(q -c "SELECT requests FROM genrec.genrec_worker_status()")
out=$(QOPT="-c genrec.worker_fallback=error" q -c "$CALL" 2>&1)
r1=$(q -c "SELECT requests FROM genrec.genrec_worker_status()")
check "the next call is served by the new worker ($out, requests +$((r1 - r0)))" \
	"$([ "$out" = t ] && [ $((r1 - r0)) -eq 1 ]; echo $?)"
PGOPTIONS="-c genrec.worker_test_delay_ms=3000 -c genrec.worker_fallback=error" \
	timeout 60 psql -X -At -d "$db" -v VERBOSITY=verbose -c "$CALL" >"$T/term2.out" 2>&1 &
job=$!
sleep 0.5
q -c "SELECT pg_terminate_backend($wpid2)" >/dev/null
wait "$job"
grep -q "55000: the genrec worker cannot serve this call" "$T/term2.out"
check "with genrec.worker_fallback = error the waiting session gets ERROR 55000" $?
wpid3=$(wait_worker)
check "and a worker runs again (pid ${wpid3:-none})" "$([ -n "$wpid3" ]; echo $?)"

# --- 6. kill -9 of the worker ---
PGOPTIONS="-c genrec.worker_test_delay_ms=3000" timeout 60 psql -X -At -d "$db" -c "$CALL" >"$T/kill.out" 2>&1 &
job=$!
sleep 0.5
kill -9 "$wpid3"
wait "$job"
grep -qE "terminating connection because of crash|server closed the connection" "$T/kill.out"
check "kill -9 of the worker: the waiting session loses its connection (server reinitialised)" $?
up=""
for _ in $(seq 1 100); do
	up=$(q -c "SELECT pid FROM genrec.genrec_worker_status() WHERE running" 2>/dev/null) && [ -n "$up" ] && break
	sleep 0.2
done
check "after the crash restart a worker runs again (pid ${up:-none})" "$([ -n "$up" ]; echo $?)"
out=$(QOPT="-c genrec.worker_fallback=error" q -c "$CALL" 2>&1)
check "and a new session's call is served correctly ($out)" "$([ "$out" = t ]; echo $?)"
grep -q "genrec worker.*was terminated by signal 9" "$GENREC_PG_DIR/server.log"
check "the server log names the killed worker" $?

# --- 7. genrec.worker = gpu without a GPU ---
restart_with "genrec.worker = gpu"
check "the server restarts with genrec.worker = gpu" $?
sleep 2
st=$(q -c "SELECT running || ' ' || coalesce(pid::text, 'none') || ' ' || (message LIKE 'genrec.worker = gpu:%') FROM genrec.genrec_worker_status()")
echo "# $(q -c "SELECT message FROM genrec.genrec_worker_status()")"
check "without a GPU the worker stays down and says why ($st)" "$([ "$st" = "false none true" ]; echo $?)"
out=$(PGOPTIONS="-c client_min_messages=notice" timeout 60 psql -X -At -d "$db" -c "$CALL" 2>&1)
case "$out" in *"genrec worker unavailable: scoring in this backend"*t) r=0 ;; *) r=1 ;; esac
check "calls are scored locally with a NOTICE, correctly" $r
out=$(QOPT="-c genrec.worker_fallback=error" q -c "$CALL" 2>&1)
case "$out" in *"the genrec worker cannot serve this call"*) r=0 ;; *) r=1 ;; esac
check "with genrec.worker_fallback = error they are refused" $r
r=$(backend_cuda)
check "a backend that scored maps no CUDA module with genrec.worker = gpu ($r)" "$([ "$r" = none ]; echo $?)"

# --- 8. no room for a mailbox ---
dyn="$GENREC_PG_DIR/data/pg_dynshmem"
genrec_cluster_run "$bindir/pg_ctl" -D "$GENREC_PG_DIR/data" -m fast -w stop >/dev/null 2>&1
if mount -t tmpfs -o size=8m,mode=700,uid="$(id -u postgres 2>/dev/null || id -u)" tmpfs "$dyn" 2>/dev/null; then
	cp "$GENREC_PG_DIR/base.conf" "$GENREC_PG_DIR/data/postgresql.conf"
	printf '%s\n' "shared_preload_libraries = 'genrec'" "genrec.worker = cpu" \
		"dynamic_shared_memory_type = mmap" "max_parallel_workers_per_gather = 0" \
		>>"$GENREC_PG_DIR/data/postgresql.conf"
	genrec_cluster_run "$bindir/pg_ctl" -D "$GENREC_PG_DIR/data" -l "$GENREC_PG_DIR/server.log" \
		-w -t 60 start >/dev/null 2>&1
	wait_worker >/dev/null
	out=$(QOPT="-c genrec.worker_fallback=error" q -c "$CALL" 2>&1)
	check "segments on an 8 MB tmpfs: served by the worker ($out)" "$([ "$out" = t ]; echo $?)"
	dd if=/dev/zero of="$dyn/filler" bs=64k >/dev/null 2>&1
	out=$(PGOPTIONS="-c client_min_messages=notice" timeout 60 psql -X -At -d "$db" -c "$CALL" 2>&1)
	case "$out" in *"genrec worker unavailable: scoring in this backend"*t) r=0 ;; *) r=1 ;; esac
	check "with the tmpfs full, a new session without a mailbox scores locally with a NOTICE, correctly" $r
	rm -f "$dyn/filler"
	out=$(QOPT="-c genrec.worker_fallback=error" q -c "$CALL" 2>&1)
	check "with room again a new session is served by the worker ($out)" "$([ "$out" = t ]; echo $?)"
else
	echo "ok - # SKIP no room for a mailbox: cannot mount a tmpfs here"
	genrec_cluster_run "$bindir/pg_ctl" -D "$GENREC_PG_DIR/data" -l "$GENREC_PG_DIR/server.log" \
		-w -t 60 start >/dev/null 2>&1
fi

echo "test_worker: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
