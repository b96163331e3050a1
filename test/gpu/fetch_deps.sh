#!/usr/bin/env bash
# test/gpu/fetch_deps.sh — run on a machine WITH Debian's package mirror (a developer machine
# or CI, not the GPU machine): download the Debian packages the GPU suite needs and that the
# GPU machine's image may lack, into .gpu-deps/ (git-ignored through .git/info/exclude).
# test/gpu/run.sh unpacks them there with dpkg -x; carry .gpu-deps with the run.
#   libcjson1, libcjson-dev    cJSON (safetensors headers): needed to build the engine
#   zlib1g, zlib1g-dev         gzip input of the CLI
#   libopenblas0-pthread, libgfortran5, libquadmath0
#                              OpenBLAS for the CPU reference path (the engine opens it with
#                              dlopen; without it the CPU uses its plain-C GEMM, much slower)
set -eu
cd "$(dirname "$0")/../.."
EXCLUDE=$(git rev-parse --git-path info/exclude)
mkdir -p "$(dirname "$EXCLUDE")"
grep -qx '/.gpu-deps/' "$EXCLUDE" 2>/dev/null || echo '/.gpu-deps/' >> "$EXCLUDE"
mkdir -p .gpu-deps
cd .gpu-deps
rm -f ./*.deb
apt-get download libcjson1 libcjson-dev zlib1g zlib1g-dev libopenblas0-pthread libgfortran5 \
	libquadmath0
ls -la
