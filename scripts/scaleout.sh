#!/usr/bin/env bash
# scripts/scaleout.sh — a local scaled-out genrec on this machine (README "Scaling out"): a
# trainer, a proxy and N partition servers, each a throwaway PostgreSQL cluster with its own
# directory, unix socket directory and port (no TCP), trust authentication, superuser
# "postgres". As root the servers run as the postgres user (as test/pg/cluster.sh does).
#
#   scripts/scaleout.sh start [--partitions N] [--dir DIR] [--port BASE]
#       create and start the servers (N = 2 by default; BASE = 5432: trainer BASE, proxy
#       BASE+1, partition k BASE+2+k), install genrec, PL/Proxy, postgres_fdw and
#       sql/scale/*.sql, subscribe every partition to the trainer's catalogue, create the
#       example table public.ratings (user_id, item_id, rating, ts) partitioned by
#       genrec_partition(user_id, N), and print the connection commands
#   scripts/scaleout.sh load DIR FILE        load a user/item/rating/time TSV (MovieLens u.data)
#                                            into public.ratings through the trainer
#   scripts/scaleout.sh table DIR NAME 'COLUMNS' USER_COL [INDEX_COLS]
#                                            another interaction table, placed like ratings
#   scripts/scaleout.sh role DIR NAME        a login role on every server (and the trainer's
#                                            postgres_fdw user mappings for it)
#   scripts/scaleout.sh psql DIR SERVER [psql arguments]   SERVER: trainer, proxy, p0, p1, ...
#   scripts/scaleout.sh stop-server DIR SERVER / start-server DIR SERVER
#   scripts/scaleout.sh stop DIR             stop every server and remove DIR
#
# Sourced, it defines the same steps as functions (genrec_scale_start, genrec_scale_psql, ...)
# for tests; genrec_scale_start exports GENREC_SCALE_DIR. GENREC_SCALE_CONF holds extra
# postgresql.conf lines for every server (e.g. "genrec.device = 'cpu'"). Needs the genrec extension
# installed (make install) and postgresql-15-plproxy (scripts/deps.sh).

genrec_scale_repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

# Run a command as the servers' owner, from / (the owner may not be able to read $PWD).
genrec_scale_run() {
	if [ "$(id -u)" = 0 ]; then
		(cd / && runuser -u postgres -- "$@")
	else
		(cd / && "$@")
	fi
}

genrec_scale_bindir() { "${PG_CONFIG:-pg_config}" --bindir; }

# Read DIR/env (the topology written by start) into the current shell.
genrec_scale_load_env() {
	local dir=$1
	[ -r "$dir/env" ] || { echo "scaleout.sh: $dir is not a scale-out directory" >&2; return 1; }
	# shellcheck disable=SC1091
	. "$dir/env"
}

# The libpq connection string of a server (trainer, proxy, pK) of the cluster in $1.
genrec_scale_conninfo() {
	local dir=$1 server=$2 port db
	genrec_scale_load_env "$dir" || return 1
	case "$server" in
	trainer) port=$SCALE_BASE_PORT db=genrec ;;
	proxy) port=$((SCALE_BASE_PORT + 1)) db=genrec ;;
	p[0-9]*) port=$((SCALE_BASE_PORT + 2 + ${server#p})) db=genrec_$server ;;
	*) echo "scaleout.sh: unknown server $server" >&2; return 1 ;;
	esac
	echo "host=$dir/$server port=$port dbname=$db"
}

# psql on one server of the cluster in $1, in its genrec database (or --db NAME), as
# $GENREC_SCALE_USER (default postgres): genrec_scale_psql DIR SERVER [--db NAME] [args].
genrec_scale_psql() {
	local dir=$1 server=$2 conn
	shift 2
	conn=$(genrec_scale_conninfo "$dir" "$server") || return 1
	if [ "${1:-}" = --db ]; then
		conn="${conn% dbname=*} dbname=$2"
		shift 2
	fi
	"$(genrec_scale_bindir)/psql" -X -q -v ON_ERROR_STOP=1 "$conn user=${GENREC_SCALE_USER:-postgres}" "$@"
}

# Every server name of the cluster in $1: trainer proxy p0 p1 ...
genrec_scale_servers() {
	local k
	genrec_scale_load_env "$1" || return 1
	echo trainer proxy
	for ((k = 0; k < SCALE_PARTITIONS; k++)); do echo "p$k"; done
}

# initdb one server directory with the settings of its role.
genrec_scale_initdb() {
	local dir=$1 server=$2 port=$3 bindir
	bindir=$(genrec_scale_bindir)
	mkdir -p "$dir/$server" && chmod 700 "$dir/$server" || return 1
	[ "$(id -u)" = 0 ] && { chown postgres:postgres "$dir/$server" || return 1; }
	if ! genrec_scale_run "$bindir/initdb" -D "$dir/$server/data" -U postgres -A trust -E UTF8 \
		--locale=C --no-sync >"$dir/$server/initdb.log" 2>&1; then
		echo "scaleout.sh: initdb of $server failed:" >&2
		cat "$dir/$server/initdb.log" >&2
		return 1
	fi
	cat >>"$dir/$server/data/postgresql.conf" <<CONF
# genrec scale-out: $server
listen_addresses = ''
unix_socket_directories = '$dir/$server'
port = $port
fsync = off
full_page_writes = off
max_connections = 60
lc_messages = 'C'
wal_level = logical
max_wal_senders = 20
max_replication_slots = 20
max_slot_wal_keep_size = '1GB'
wal_retrieve_retry_interval = '1s'
${GENREC_SCALE_CONF:-}
CONF
}

# Start one server of the cluster in $1.
genrec_scale_start_server() {
	local dir=$1 server=$2
	if ! genrec_scale_run "$(genrec_scale_bindir)/pg_ctl" -D "$dir/$server/data" \
		-l "$dir/$server/server.log" -w -t 60 start >"$dir/$server/pg_ctl.log" 2>&1; then
		echo "scaleout.sh: $server did not start:" >&2
		cat "$dir/$server/pg_ctl.log" "$dir/$server/server.log" >&2
		return 1
	fi
}

# Stop one server of the cluster in $1 (fast shutdown: sessions are disconnected).
genrec_scale_stop_server() {
	local dir=$1 server=$2
	[ -d "$dir/$server/data" ] || return 0
	genrec_scale_run "$(genrec_scale_bindir)/pg_ctl" -D "$dir/$server/data" -m fast -w \
		stop >/dev/null 2>&1
}

# An interaction table on every partition (with a CHECK that its users belong there and an
# index for serving) and on the trainer as a table partitioned by genrec_partition whose
# partitions are postgres_fdw foreign tables: genrec_scale_table DIR NAME COLUMNS USER_COL [IDX].
genrec_scale_table() {
	local dir=$1 name=$2 cols=$3 ucol=$4 idx=${5:-$4} k sql
	genrec_scale_load_env "$dir" || return 1
	for ((k = 0; k < SCALE_PARTITIONS; k++)); do
		genrec_scale_psql "$dir" "p$k" -c "CREATE TABLE public.$name ($cols,
			CONSTRAINT ${name}_partition CHECK (genrec.genrec_partition($ucol, $SCALE_PARTITIONS) = $k))" \
			-c "CREATE INDEX ON public.$name ($idx)" || return 1
	done
	sql="CREATE TABLE public.$name ($cols) PARTITION BY LIST (genrec.genrec_partition($ucol, $SCALE_PARTITIONS));"
	for ((k = 0; k < SCALE_PARTITIONS; k++)); do
		sql+="CREATE FOREIGN TABLE public.${name}_p$k PARTITION OF public.$name FOR VALUES IN ($k)
			SERVER genrec_p$k OPTIONS (schema_name 'public', table_name '$name');"
	done
	genrec_scale_psql "$dir" trainer -c "$sql"
}

# A login role on every server, with postgres_fdw user mappings on the trainer (trust
# sockets: no password; password_required only a superuser may turn off).
genrec_scale_role() {
	local dir=$1 role=$2 server k sql=""
	genrec_scale_load_env "$dir" || return 1
	for server in $(genrec_scale_servers "$dir"); do
		genrec_scale_psql "$dir" "$server" -c "CREATE ROLE \"$role\" LOGIN" || return 1
	done
	for ((k = 0; k < SCALE_PARTITIONS; k++)); do
		sql+="CREATE USER MAPPING FOR \"$role\" SERVER genrec_p$k
			OPTIONS (user '$role', password_required 'false');"
	done
	genrec_scale_psql "$dir" trainer -c "$sql"
}

# Load a TSV of user, item, rating, time into public.ratings through the trainer: rows go to
# their partition by genrec_partition(user_id, N) (postgres_fdw, batches of 1,000).
genrec_scale_load() {
	local dir=$1 file=$2
	[ -r "$file" ] || { echo "scaleout.sh: cannot read $file" >&2; return 1; }
	genrec_scale_psql "$dir" trainer \
		-c 'CREATE TEMP TABLE staging (LIKE public.ratings)' \
		-c "\\copy staging FROM '$file'" \
		-c 'INSERT INTO public.ratings SELECT * FROM staging'
}

# Create and start the cluster; export GENREC_SCALE_DIR.
genrec_scale_start() {
	local n=2 dir="" base=5432 k server conn parts="" pids=() rc=0
	while [ $# -gt 0 ]; do
		case "$1" in
		--partitions) n=$2; shift 2 ;;
		--dir) dir=$2; shift 2 ;;
		--port) base=$2; shift 2 ;;
		*) echo "scaleout.sh: unknown option $1" >&2; return 2 ;;
		esac
	done
	[[ "$n" =~ ^[0-9]+$ ]] && [ "$n" -ge 1 ] || { echo "scaleout.sh: --partitions must be >= 1" >&2; return 2; }
	if [ -z "$dir" ]; then
		dir=$(mktemp -d "${GENREC_PG_TMPROOT:-/tmp}/genrec-scale.XXXXXX") || return 1
	else
		if [ -e "$dir" ] && [ -n "$(ls -A "$dir" 2>/dev/null)" ]; then
			echo "scaleout.sh: $dir exists and is not empty (stop that cluster first)" >&2
			return 1
		fi
		mkdir -p "$dir" || return 1
		dir=$(cd "$dir" && pwd)
	fi
	chmod 755 "$dir"
	cat >"$dir/env" <<ENV
SCALE_PARTITIONS=$n
SCALE_BASE_PORT=$base
ENV
	export GENREC_SCALE_DIR=$dir

	# initdb and start every server at once
	genrec_scale_initdb "$dir" trainer "$base" & pids+=($!)
	genrec_scale_initdb "$dir" proxy $((base + 1)) & pids+=($!)
	for ((k = 0; k < n; k++)); do
		genrec_scale_initdb "$dir" "p$k" $((base + 2 + k)) & pids+=($!)
	done
	for k in "${pids[@]}"; do wait "$k" || rc=1; done
	[ $rc = 0 ] || return 1
	pids=()
	for server in $(genrec_scale_servers "$dir"); do
		genrec_scale_start_server "$dir" "$server" & pids+=($!)
	done
	for k in "${pids[@]}"; do wait "$k" || rc=1; done
	[ $rc = 0 ] || return 1

	for ((k = 0; k < n; k++)); do
		conn=$(genrec_scale_conninfo "$dir" "p$k")
		parts+="${parts:+, }p$k '$conn connect_timeout=2'"
	done
	# partitions: genrec, their scale-out objects, and the catalogue's subscription
	for ((k = 0; k < n; k++)); do
		genrec_scale_psql "$dir" "p$k" --db postgres -c "CREATE DATABASE genrec_p$k" || return 1
		genrec_scale_psql "$dir" "p$k" -c 'CREATE EXTENSION genrec' \
			-v partition=$k -v n_partitions="$n" -f "$genrec_scale_repo/sql/scale/partition.sql" || return 1
	done
	# trainer: genrec, PL/Proxy and postgres_fdw; the publication; the partitions as a
	# PL/Proxy cluster and as postgres_fdw servers
	genrec_scale_psql "$dir" trainer --db postgres -c 'CREATE DATABASE genrec' || return 1
	genrec_scale_psql "$dir" trainer \
		-c 'CREATE EXTENSION genrec' -c 'CREATE EXTENSION plproxy' -c 'CREATE EXTENSION postgres_fdw' \
		-v n_partitions="$n" -f "$genrec_scale_repo/sql/scale/trainer.sql" \
		-c "CREATE SERVER genrec_partitions FOREIGN DATA WRAPPER plproxy OPTIONS (modular_mapping '1', $parts)" \
		-c 'CREATE USER MAPPING FOR PUBLIC SERVER genrec_partitions' \
		-c 'GRANT USAGE ON FOREIGN SERVER genrec_partitions TO PUBLIC' || return 1
	for ((k = 0; k < n; k++)); do
		genrec_scale_psql "$dir" trainer -c "CREATE SERVER genrec_p$k FOREIGN DATA WRAPPER postgres_fdw
			OPTIONS (host '$dir/p$k', port '$((base + 2 + k))', dbname 'genrec_p$k',
			         fetch_size '10000', batch_size '1000', async_capable 'true')" \
			-c "CREATE USER MAPPING FOR postgres SERVER genrec_p$k OPTIONS (user 'postgres')" || return 1
	done
	# proxy: the routing functions and the same cluster
	genrec_scale_psql "$dir" proxy --db postgres -c 'CREATE DATABASE genrec' || return 1
	genrec_scale_psql "$dir" proxy -c 'CREATE EXTENSION plproxy' \
		-f "$genrec_scale_repo/sql/scale/proxy.sql" \
		-c "CREATE SERVER genrec_partitions FOREIGN DATA WRAPPER plproxy OPTIONS (modular_mapping '1', $parts)" \
		-c 'CREATE USER MAPPING FOR PUBLIC SERVER genrec_partitions' \
		-c 'GRANT USAGE ON FOREIGN SERVER genrec_partitions TO PUBLIC' || return 1
	conn=$(genrec_scale_conninfo "$dir" trainer)
	for ((k = 0; k < n; k++)); do
		genrec_scale_psql "$dir" "p$k" -c "CREATE SUBSCRIPTION genrec_catalogue_p$k
			CONNECTION '$conn user=postgres' PUBLICATION genrec_catalogue" 2>/dev/null || return 1
	done
	genrec_scale_table "$dir" ratings \
		'user_id bigint NOT NULL, item_id bigint NOT NULL, rating real, ts bigint NOT NULL' \
		user_id 'user_id, ts' || return 1
}

# Stop every server of the cluster in $1 (partitions first) and remove the directory.
genrec_scale_stop() {
	local dir=${1:-${GENREC_SCALE_DIR:-}} server
	[ -n "$dir" ] && [ -r "$dir/env" ] || return 0
	for server in $(genrec_scale_servers "$dir" | tac); do
		genrec_scale_stop_server "$dir" "$server"
	done
	if [ "${GENREC_PG_KEEP:-0}" != 1 ]; then
		rm -rf "$dir"
	fi
}

# Command-line use; nothing runs when the file is sourced.
if [ "${BASH_SOURCE[0]}" = "$0" ]; then
	set -uo pipefail
	cmd=${1:-}
	shift || true
	case "$cmd" in
	start)
		genrec_scale_start "$@" || { [ -n "${GENREC_SCALE_DIR:-}" ] && genrec_scale_stop "$GENREC_SCALE_DIR"; exit 1; }
		d=$GENREC_SCALE_DIR
		echo "genrec scale-out cluster in $d ($(genrec_scale_servers "$d" | xargs))"
		for s in $(genrec_scale_servers "$d"); do
			printf '  %-8s psql "%s"\n' "$s" "$(genrec_scale_conninfo "$d" "$s")"
		done
		echo "stop it with: $0 stop $d"
		;;
	load) genrec_scale_load "$@" ;;
	table) genrec_scale_table "$@" ;;
	role) genrec_scale_role "$@" ;;
	psql) genrec_scale_psql "$@" ;;
	stop-server) genrec_scale_stop_server "$@" ;;
	start-server) genrec_scale_start_server "$@" ;;
	stop) genrec_scale_stop "$@" ;;
	*)
		sed -n '2,26p' "$0" | sed 's/^# \{0,1\}//' >&2
		exit 2
		;;
	esac
fi
