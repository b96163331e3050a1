#!/usr/bin/env bash
# scripts/deps.sh — install the Debian packages genrec needs to build, test and run its
# demo, skipping apt entirely when they are all present. Run as root (or with sudo).
#
#   build:  build-essential pkg-config postgresql-server-dev-15 libcjson-dev zlib1g-dev
#   run:    postgresql-15 libopenblas0-openmp (OpenBLAS, opened at run time)
#   test:   postgresql-15-pgtap libtap-parser-sourcehandler-pgtap-perl python3-torch
#           python3-numpy clang libclang-rt-14-dev (libFuzzer, for test/fuzz) chromium (renders
#           the model report in test/pg/test_report_render.sh)
#   scale-out (scripts/scaleout.sh, test/pg/test_scaleout.sh): postgresql-15-plproxy
#           (postgres_fdw and pgbench come with postgresql-15 and its client)
# nvcc is optional: when found, the CUDA module is built too.
set -euo pipefail

packages=(build-essential pkg-config postgresql-15 postgresql-server-dev-15 libcjson-dev
	zlib1g-dev libopenblas0-openmp libopenblas-openmp-dev postgresql-15-pgtap
	libtap-parser-sourcehandler-pgtap-perl python3-torch python3-numpy clang libclang-rt-14-dev chromium
	postgresql-15-plproxy)

missing=()
for p in "${packages[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
	echo "deps: all ${#packages[@]} packages present"
	exit 0
fi
if [ "$(id -u)" != 0 ]; then
	echo "deps: missing ${missing[*]}; run as root (sudo $0)" >&2
	exit 1
fi
echo "deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get -o DPkg::Lock::Timeout=600 update -qq
apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
echo "deps: done"
