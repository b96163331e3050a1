#!/usr/bin/env bash
# test/pg/serve_fixture.sh — fixtures of the serving tests, for a running throwaway cluster
# (test/pg/cluster.sh; PGHOST etc. exported). Sourced by test/run_sql_tests.sh.
#
# genrec_serve_copy_models: copies test/fixtures/*.safetensors (tiny models trained by the
# engine program on genrec_synthetic(150, 80, 20, 7), see test/fixtures/make_fixtures.sh)
# into the data directory, so SQL reads them with pg_read_binary_file('genrec_fixtures/...').
#
# genrec_serve_fixture DB: in database DB (with the genrec extension) creates schema
# genrec_fixture with
#   events   the synthetic log (user_id, item_id, rating double precision, ts), indexed by user
#   cli      (command, layout, split, doc jsonb): what the engine program prints (--json) for
#            the same models and rows: `genrec score` of users 1..3's histories (--history
#            ITEM:RATING,... oldest first) for candidates 1..20 and 99999, `genrec recommend
#            --user 1 --data`, and `genrec eval` on both splits with --ks 10,50 and 1,5,20
# and one deployed model per layout in genrec.models, named fx_lac, fx_int, fx_pc, fx_item,
# whose source is genrec_fixture.events.

# Copy the fixture models into the cluster's data directory.
genrec_serve_copy_models() {
	local dst="$GENREC_PG_DIR/data/genrec_fixtures"
	mkdir -p "$dst" && cp test/fixtures/*.safetensors "$dst/" || return 1
	if [ "$(id -u)" = 0 ]; then
		chown -R postgres:postgres "$dst"
	fi
}

# Build the serving fixtures in database $1.
genrec_serve_fixture() {
	local db=$1 tmp psql cli=build/genrec layout user split ks hist cands
	tmp=$(mktemp -d) || return 1
	psql=("$("${PG_CONFIG:-pg_config}" --bindir)/psql" -X -q -v ON_ERROR_STOP=1 -d "$db")
	"${psql[@]}" <<'SQL' || return 1
SET client_min_messages = warning;
CREATE SCHEMA genrec_fixture;
CREATE TABLE genrec_fixture.events AS
  SELECT user_id, item_id, action::numeric(3,1)::float8 AS rating, ts
    FROM genrec.genrec_synthetic(150, 80, 20, 7);
CREATE INDEX ON genrec_fixture.events (user_id);
ANALYZE genrec_fixture.events;
CREATE TABLE genrec_fixture.cli (command text, layout text, split text, doc jsonb);
GRANT USAGE ON SCHEMA genrec_fixture TO PUBLIC;
GRANT SELECT ON ALL TABLES IN SCHEMA genrec_fixture TO PUBLIC;
INSERT INTO genrec.models (name, version, layout, config, source, n_items, weights, owner,
                           deployed)
SELECT 'fx_' || l, 1, l, '{}',
       jsonb_build_object('relation', 'genrec_fixture.events', 'query', NULL,
                          'user_col', 'user_id', 'item_col', 'item_id',
                          'action_cols', CASE WHEN l = 'item' THEN '[]'::jsonb
                                              ELSE '["rating"]'::jsonb END,
                          'time_col', 'ts', 'tiebreak_col', NULL),
       80, pg_read_binary_file('genrec_fixtures/' || l || '.safetensors'),
       (SELECT oid FROM pg_roles WHERE rolname = current_user), true
  FROM unnest(ARRAY['lac', 'int', 'pc', 'item']) l;
SQL
	"${psql[@]}" -c "\\copy (SELECT user_id, item_id, rating, extract(epoch FROM ts)::bigint FROM genrec_fixture.events ORDER BY user_id, ts) TO '$tmp/events.tsv'" ||
		return 1
	cands=$(seq -s, 1 20),99999
	for layout in lac int pc item; do
		for user in 1 2 3; do
			hist=$("${psql[@]}" -At -c "SELECT string_agg(item_id || ':' || rating, ',' ORDER BY ts) FROM genrec_fixture.events WHERE user_id = $user")
			[ "$layout" = item ] && hist=$(echo "$hist" | sed -E 's/:[^,]*//g')
			"$cli" score --model "test/fixtures/$layout.safetensors" --history "$hist" \
				--candidates "$cands" --threads 1 --quiet --json "$tmp/doc.json" >/dev/null || return 1
			genrec_serve_load_doc "$db" "$tmp/doc.json" score "$layout" "user$user" || return 1
		done
		"$cli" recommend --model "test/fixtures/$layout.safetensors" --user 1 \
			--data "$tmp/events.tsv" --cols 0,1,2,3 --k 10 --threads 1 --quiet \
			--json "$tmp/doc.json" >/dev/null 2>&1 || return 1
		genrec_serve_load_doc "$db" "$tmp/doc.json" recommend "$layout" user1 || return 1
		for split in test valid; do
			for ks in 10,50 1,5,20; do
				"$cli" eval --model "test/fixtures/$layout.safetensors" --data "$tmp/events.tsv" \
					--cols 0,1,2,3 --split "$split" --ks "$ks" --threads 1 --quiet \
					--json "$tmp/doc.json" >/dev/null 2>&1 || return 1
				genrec_serve_load_doc "$db" "$tmp/doc.json" eval "$layout" "$split:$ks" || return 1
			done
		done
	done
	rm -rf "$tmp"
}

# Insert one JSON document into genrec_fixture.cli.
genrec_serve_load_doc() {
	local db=$1 file=$2 command=$3 layout=$4 split=$5
	"$("${PG_CONFIG:-pg_config}" --bindir)/psql" -X -q -v ON_ERROR_STOP=1 -d "$db" \
		-v command="$command" -v layout="$layout" -v split="$split" -v doc="$(cat "$file")" <<'SQL'
INSERT INTO genrec_fixture.cli VALUES (:'command', :'layout', :'split', :'doc'::jsonb);
SQL
}
