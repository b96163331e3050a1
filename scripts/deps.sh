#!/usr/bin/env bash
# scripts/deps.sh — install the Debian packages genrec needs, by group, skipping apt entirely
# when they are all present. Run as root (or with sudo).
#
#   scripts/deps.sh demo     build + run: what scripts/demo.sh needs (no PyTorch, no browser)
#   scripts/deps.sh [all]    build + run + test: what scripts/test.sh (CI) needs
#   scripts/deps.sh --list GROUP   print the packages of GROUP, one a line, and install nothing
#
#   build:  build-essential pkg-config postgresql-server-dev-15 libcjson-dev zlib1g-dev
#   run:    postgresql-15 libopenblas0-openmp (OpenBLAS, opened at run time)
#   test:   postgresql-15-pgtap libtap-parser-sourcehandler-pgtap-perl (pgTAP, pg_prove);
#           python3-torch python3-numpy (the PyTorch reference and round trips);
#           libopenblas-openmp-dev; clang libclang-rt-14-dev (libFuzzer, for test/fuzz);
#           chromium (renders the model report in test/pg/test_report_render.sh);
#           postgresql-15-plproxy (scripts/scaleout.sh, test/pg/test_scaleout.sh; postgres_fdw
#           and pgbench come with postgresql-15 and its client);
#           debhelper postgresql-server-dev-all dpkg-dev fakeroot (pg_buildext and
#           dpkg-buildpackage for the Debian package, test/pg/test_debian_package.sh)
# nvcc is optional: when found, the CUDA module is built too.
set -euo pipefail

build=(build-essential pkg-config postgresql-server-dev-15 libcjson-dev zlib1g-dev)
run=(postgresql-15 libopenblas0-openmp)
test=(postgresql-15-pgtap libtap-parser-sourcehandler-pgtap-perl python3-torch python3-numpy
	libopenblas-openmp-dev clang libclang-rt-14-dev chromium postgresql-15-plproxy
	debhelper postgresql-server-dev-all dpkg-dev fakeroot)

list=0
if [ "${1:-}" = --list ]; then
	list=1
	shift
fi
case "${1:-all}" in
demo) packages=("${build[@]}" "${run[@]}") ;;
all | test) packages=("${build[@]}" "${run[@]}" "${test[@]}") ;;
*)
	echo "usage: $0 [--list] [demo | all]" >&2
	exit 2
	;;
esac
if [ $list = 1 ]; then
	printf '%s\n' "${packages[@]}"
	exit 0
fi

missing=()
for p in "${packages[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
	echo "deps: all ${#packages[@]} packages of group ${1:-all} present"
	exit 0
fi
if [ "$(id -u)" != 0 ]; then
	echo "deps: missing ${missing[*]}; run as root (sudo $0 ${1:-all})" >&2
	exit 1
fi
echo "deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get -o DPkg::Lock::Timeout=600 update -qq
apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
echo "deps: done"
