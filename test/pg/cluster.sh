#!/usr/bin/env bash
# test/pg/cluster.sh — a throwaway PostgreSQL cluster for tests and demos: a `mktemp -d`
# directory, a unix socket inside it and no TCP port, trust authentication, superuser
# "postgres". As root, initdb and the server run as the postgres user (runuser) from `cd /`;
# as another user they run as that user. About a second to start.
#
# Command line (print the connection environment for the caller to eval):
#   eval "$(test/pg/cluster.sh start)"   # exports PGHOST PGPORT PGUSER PGDATABASE GENREC_PG_DIR
#   trap 'test/pg/cluster.sh stop' EXIT  # stops the cluster and removes $GENREC_PG_DIR
#   test/pg/cluster.sh stop [DIR]
#
# Sourced (functions that set the same variables in the caller's shell):
#   . test/pg/cluster.sh; genrec_cluster_start; trap genrec_cluster_stop EXIT
#
# Environment: PG_CONFIG (default pg_config) picks the installation; GENREC_PG_TMPROOT
# (default /tmp) holds the directory; GENREC_PG_KEEP=1 keeps the directory after stop.
# The server log is $GENREC_PG_DIR/server.log.

# Run a command as the cluster's owner, from / (the owner may not be able to read $PWD).
genrec_cluster_run() {
	if [ "$(id -u)" = 0 ]; then
		(cd / && runuser -u postgres -- "$@")
	else
		(cd / && "$@")
	fi
}

# Create and start a cluster; export PGHOST, PGPORT, PGUSER, PGDATABASE and GENREC_PG_DIR.
genrec_cluster_start() {
	local bindir dir port=5432
	bindir=$("${PG_CONFIG:-pg_config}" --bindir) || return 1
	dir=$(mktemp -d "${GENREC_PG_TMPROOT:-/tmp}/genrec-pg.XXXXXX") || return 1
	chmod 700 "$dir"
	if [ "$(id -u)" = 0 ]; then
		chown postgres:postgres "$dir" || return 1
	fi
	if ! genrec_cluster_run "$bindir/initdb" -D "$dir/data" -U postgres -A trust -E UTF8 \
		--locale=C --no-sync >"$dir/initdb.log" 2>&1; then
		echo "cluster.sh: initdb failed:" >&2
		cat "$dir/initdb.log" >&2
		return 1
	fi
	cat >>"$dir/data/postgresql.conf" <<CONF
# genrec throwaway cluster
listen_addresses = ''
unix_socket_directories = '$dir'
port = $port
fsync = off
synchronous_commit = off
full_page_writes = off
max_connections = 30
lc_messages = 'C'
CONF
	if ! genrec_cluster_run "$bindir/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 \
		start >"$dir/pg_ctl.log" 2>&1; then
		echo "cluster.sh: server did not start:" >&2
		cat "$dir/pg_ctl.log" "$dir/server.log" >&2
		return 1
	fi
	export PGHOST="$dir" PGPORT="$port" PGUSER=postgres PGDATABASE=postgres GENREC_PG_DIR="$dir"
}

# Stop the cluster in $1 (default $GENREC_PG_DIR) and remove its directory.
genrec_cluster_stop() {
	local dir="${1:-${GENREC_PG_DIR:-}}" bindir
	[ -n "$dir" ] && [ -d "$dir/data" ] || return 0
	bindir=$("${PG_CONFIG:-pg_config}" --bindir)
	genrec_cluster_run "$bindir/pg_ctl" -D "$dir/data" -m fast -w stop >/dev/null 2>&1
	if [ "${GENREC_PG_KEEP:-0}" != 1 ]; then
		rm -rf "$dir"
	fi
}

# Command-line use; nothing runs when the file is sourced.
if [ "${BASH_SOURCE[0]}" = "$0" ]; then
	set -eu
	case "${1:-}" in
	start)
		genrec_cluster_start
		printf 'export PGHOST=%q PGPORT=%q PGUSER=%q PGDATABASE=%q GENREC_PG_DIR=%q\n' \
			"$PGHOST" "$PGPORT" "$PGUSER" "$PGDATABASE" "$GENREC_PG_DIR"
		;;
	stop)
		genrec_cluster_stop "${2:-}"
		;;
	*)
		echo "usage: $0 start | stop [DIR]" >&2
		exit 2
		;;
	esac
fi
