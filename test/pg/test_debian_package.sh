#!/usr/bin/env bash
# test/pg/test_debian_package.sh — the Debian package (debian/, pg_buildext): builds
# postgresql-15-genrec with `dpkg-buildpackage -us -uc -b` on a copy of the tree (the files git
# tracks or would track, so nothing built here leaks in), checks its contents and dependencies,
# then installs it into a private root (`dpkg -x` over a copy of the system's PostgreSQL 15,
# with any genrec files of that copy removed first) and starts a throwaway cluster from there:
# CREATE EXTENSION genrec from the package, the module the backend maps is the package's, and a
# tiny training, scoring and retrieval work. The system's PostgreSQL is never written to, so
# other tests and users of this machine are unaffected. Needs debhelper,
# postgresql-server-dev-all, dpkg-dev and fakeroot (scripts/deps.sh all); about a minute and a
# half on 2 cores, most of it the build.
set -uo pipefail
cd "$(dirname "$0")/../.." || exit 2
src=$PWD
. test/pg/cluster.sh

fail=0
check() {
	if [ "$1" = ok ]; then echo "ok - $2"; else echo "not ok - $2"; fail=1; fi
}
for tool in dpkg-buildpackage pg_buildext dh; do
	if ! command -v "$tool" >/dev/null; then
		echo "not ok - $tool is not installed (scripts/deps.sh all installs it)"
		exit 1
	fi
done
sysbin=/usr/lib/postgresql/15/bin
[ -x "$sysbin/postgres" ] || { echo "not ok - no PostgreSQL 15 in /usr/lib/postgresql/15"; exit 1; }

tmp=$(mktemp -d) || exit 2
chmod 755 "$tmp"
cleanup() {
	genrec_cluster_stop
	rm -rf "$tmp"
}
trap cleanup EXIT

# 1. Build on a copy of the tree.
version=$(sed -n '1s/^genrec (\([^)]*\)).*/\1/p' debian/changelog)
extversion=$(sed -n "s/^default_version = '\(.*\)'/\1/p" genrec.control)
check "$([ -n "$version" ] && [ "$version" = "$extversion" ] && echo ok || echo no)" \
	"debian/changelog's version ($version) is the extension's default_version ($extversion)"
mkdir "$tmp/genrec-$version"
git ls-files -co --exclude-standard -z | tar -c --null -T - | tar -x -C "$tmp/genrec-$version"
t0=$SECONDS
if (cd "$tmp/genrec-$version" && dpkg-buildpackage -us -uc -b -j2) >"$tmp/build.log" 2>&1; then
	check ok "dpkg-buildpackage -us -uc -b ($((SECONDS - t0)) s)"
else
	tail -n 40 "$tmp/build.log"
	check no "dpkg-buildpackage -us -uc -b"
	exit 1
fi
deb=$(ls "$tmp"/postgresql-15-genrec_"$version"_*.deb 2>/dev/null | head -n 1)
check "$([ -f "$deb" ] && echo ok || echo no)" "it made postgresql-15-genrec ($(basename "${deb:-none}"))"
[ -f "$deb" ] || exit 1
if grep -q -- '-march=native' "$tmp/build.log"; then r="no (-march=native in the build)"; else r=ok; fi
check "$r" "the package is built portable (no -march=native)"

# 2. Contents and dependencies.
dpkg-deb -c "$deb" | awk '{ print $6 }' >"$tmp/files"
missing=""
for f in ./usr/lib/postgresql/15/lib/genrec.so ./usr/share/postgresql/15/extension/genrec.control \
	"./usr/share/postgresql/15/extension/genrec--$extversion.sql" \
	./usr/share/postgresql/15/extension/genrec--0.1.0.sql \
	./usr/share/postgresql/15/extension/genrec--0.1.0--0.2.0.sql \
	./usr/share/doc/postgresql-15-genrec/reference.md.gz; do
	grep -qxF "$f" "$tmp/files" || missing="$missing $f"
done
check "$([ -z "$missing" ] && echo ok || echo "no (missing:$missing)")" \
	"the package holds the module, the control file, the install and upgrade scripts and the reference"
depends=$(dpkg-deb -f "$deb" Depends)
case "$depends" in
*postgresql-15*libcjson1*) r=ok ;;
*) r="no ($depends)" ;;
esac
check "$r" "it depends on postgresql-15 and libcjson1 ($depends)"
# Whether dpkg would install the package here (waits while apt elsewhere holds dpkg's lock).
dry_run() {
	local i
	for i in $(seq 1 30); do
		dpkg --dry-run -i "$deb" >"$tmp/dry-run.log" 2>&1 && return 0
		grep -qi 'lock' "$tmp/dry-run.log" || return 1
		sleep 2
	done
	return 1
}
if [ "$(id -u)" != 0 ]; then
	echo "ok - # SKIP dpkg's dry run needs root"
else
	if dry_run; then r=ok; else r="no ($(tail -n 3 "$tmp/dry-run.log"))"; fi
	check "$r" "dpkg would install it here (dependencies satisfied; dry run)"
fi

# 3. Install into a private root and create the extension from it.
root=$tmp/root
mkdir -p "$root/usr/lib/postgresql" "$root/usr/share/postgresql"
cp -a /usr/lib/postgresql/15 "$root/usr/lib/postgresql/"
cp -a /usr/share/postgresql/15 "$root/usr/share/postgresql/"
rm -f "$root"/usr/lib/postgresql/15/lib/genrec*.so "$root"/usr/share/postgresql/15/extension/genrec*
dpkg -x "$deb" "$root"
chmod -R a+rX "$root"
export PG_CONFIG=$root/usr/lib/postgresql/15/bin/pg_config
genrec_cluster_start >/dev/null || exit 1
psql() { "$root/usr/lib/postgresql/15/bin/psql" -X -q -At -v ON_ERROR_STOP=1 -d postgres "$@"; }
out=$(psql -c 'CREATE EXTENSION genrec' -c 'SELECT genrec.genrec_version()' \
	-c "SELECT l FROM regexp_split_to_table(pg_read_file('/proc/self/maps'), E'\\n') l
	    WHERE l LIKE '%/genrec.so' LIMIT 1" 2>&1)
case "$out" in
"$extversion"*"$root/usr/lib/postgresql/15/lib/genrec.so"*) r=ok ;;
*) r="no ($out)" ;;
esac
check "$r" "CREATE EXTENSION genrec from the installed package (genrec_version() $extversion, the package's genrec.so mapped)"
out=$(psql -c 'SET client_min_messages = warning' \
	-c 'CREATE TABLE ev AS SELECT * FROM genrec.genrec_synthetic(60, 40, 10, 3)' \
	-c "SELECT layout FROM genrec.genrec_train('pkg', 'ev', action_cols => '{action}', d_model => 8, n_layer => 1, max_len => 8, epochs => 1, options => '{\"head_hidden\": 8, \"n_buckets\": 4}')" \
	-c "SELECT array_length(genrec.genrec_score('pkg', 1, '{1,2,3}'), 1)" \
	-c "SELECT count(*) FROM genrec.genrec_recommend('pkg', 1, 5)" 2>&1)
expected=$(printf 'lac\n3\n5')
check "$([ "$out" = "$expected" ] && echo ok || echo "no ($out)")" \
	"a tiny training, genrec_score and genrec_recommend work from the package"

[ $fail -eq 0 ] && echo "test_debian_package: all passed" || echo "test_debian_package: FAILED"
exit $fail
