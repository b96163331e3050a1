#!/usr/bin/env bash
# test/gpu/run.sh — the GPU suite: build the engine, the CLI and genrec_cuda.so with this
# machine's nvcc, then
#   ops    every op CPU vs CUDA on fresh random inputs, gradient / optimiser / scoring parity
#          through the engine (build/gpu/test_cuda_ops, all three math modes), and HSTU
#          attention (build/gpu/test_cuda_hstu)
#   cli    full training of each layout on ml-100k with --device cpu and --device cuda (fp32
#          and tf32): loss curves and test metrics; scoring and retrieval parity, and models
#          trained on one device evaluated on the other
#   bench  engine training tokens/s per layout (small and large), scoring latency, top-100
#          over 1M items, TFLOP/s and fraction of the measured peak, against PyTorch eager and
#          torch.compile (bench/gpu_bench.py)
# and print a short table last. The GPU machine has no PostgreSQL and no network: only the
# engine program is used. See test/gpu/README.md.
#
#   test/gpu/run.sh [all|build|ops|cli|bench|table]...      (default: all)
#
# Environment: GR_GPU_RESULTS (default build/gpu-results), GR_GPU_DATA (default
# ../shared/data/ml-100k/u.data), GR_GPU_EPOCHS (default 10), GR_GPU_MODULE (a CUDA module to
# use instead of build/genrec_cuda.so, e.g. build/genrec_cuda_emu.so for a dry run on the
# CPU emulation), GR_GPU_CLI (the engine program, default build/genrec), GR_GPU_QUICK=1
# (tiny sizes, 2 epochs, no PyTorch: a plumbing check).
# Exit status: 0 all passed, 1 a check failed, 2 no usable GPU or a build failure.
set -u
cd "$(dirname "$0")/../.." || exit 2
ROOT=$PWD
R=${GR_GPU_RESULTS:-build/gpu-results}
DATA=${GR_GPU_DATA:-../shared/data/ml-100k/u.data}
EPOCHS=${GR_GPU_EPOCHS:-10}
QUICK=${GR_GPU_QUICK:-0}
MODULE=${GR_GPU_MODULE:-build/genrec_cuda.so}
NPROC=$(nproc 2>/dev/null || echo 4)
CMP="python3 test/gpu/compare.py $R/summary.tsv"
CLI=${GR_GPU_CLI:-build/genrec}
STAGES=${*:-all}
mkdir -p "$R"
[ "$QUICK" = 1 ] && EPOCHS=2

say() { printf '\n== %s\n' "$*"; }
want() { case " $STAGES " in *" all "*|*" $1 "*) return 0 ;; esac; return 1; }

# Carried Debian packages (test/gpu/fetch_deps.sh): cJSON and zlib headers for the build,
# OpenBLAS for the CPU reference path. Without them the engine still builds where cJSON is
# installed, and the CPU path uses its plain-C GEMM when no OpenBLAS can be opened.
setup_deps() {
	local D ML
	ls .gpu-deps/*.deb >/dev/null 2>&1 || return 0
	D=$ROOT/.gpu-deps/root
	ML=$(gcc -print-multiarch 2>/dev/null || echo x86_64-linux-gnu)
	if [ ! -f "$D/.unpacked" ]; then
		mkdir -p "$D"
		for f in .gpu-deps/*.deb; do dpkg -x "$f" "$D" || exit 2; done
		touch "$D/.unpacked"
	fi
	export LD_LIBRARY_PATH=$D/usr/lib/$ML:$D/usr/lib/$ML/openblas-pthread:$D/lib/$ML:${LD_LIBRARY_PATH:-}
	export LIBRARY_PATH=$D/usr/lib/$ML:$D/lib/$ML:${LIBRARY_PATH:-}
	export C_INCLUDE_PATH=$D/usr/include:${C_INCLUDE_PATH:-}
	if [ -f "$D/usr/lib/$ML/openblas-pthread/libopenblas.so.0" ]; then
		export GENREC_BLAS_LIBRARY=$D/usr/lib/$ML/openblas-pthread/libopenblas.so.0
	fi
	# pkg-config answers for the carried cJSON (the real one, if any, for the rest)
	mkdir -p .gpu-deps/bin
	cat > .gpu-deps/bin/pkg-config <<EOF
#!/bin/sh
case " \$* " in
*" libcjson "*)
	case " \$* " in *" --cflags "*) printf -- '-I$D/usr/include/cjson ' ;; esac
	case " \$* " in *" --libs "*) printf -- '-L$D/usr/lib/$ML -lcjson ' ;; esac
	echo; exit 0 ;;
esac
for p in /usr/bin/pkg-config /usr/local/bin/pkg-config; do [ -x "\$p" ] && exec "\$p" "\$@"; done
exit 1
EOF
	chmod +x .gpu-deps/bin/pkg-config
	export PATH=$ROOT/.gpu-deps/bin:$PATH
}

build() {
	say "build (engine, CLI, CUDA module with $(command -v nvcc || echo /usr/local/cuda/bin/nvcc))"
	local extra=()
	[ "$MODULE" = build/genrec_cuda_emu.so ] && extra+=(cuda-emu)
	if ! make NO_PGXS=1 GR_CUDA=yes -j"$NPROC" all cuda-module gpu-tests build/genrec "${extra[@]}" \
		> "$R/build.log" 2>&1; then
		tail -30 "$R/build.log"
		echo "run.sh: the build failed (log: $R/build.log)" >&2
		exit 2
	fi
	grep -E "warning:" "$R/build.log" | grep -E "cuda/|gr_device|test/gpu|bench/" | head -20
	echo "built: build/genrec, $MODULE, build/gpu/test_cuda_ops, build/gpu/gpu_bench"
}

probe() {
	local msg
	if ! msg=$(build/gpu/test_cuda_ops --probe --module "$MODULE" 2>&1); then
		echo "run.sh: no usable GPU here: $msg" >&2
		echo "run.sh: the GPU suite needs a CUDA device; nothing was tested" >&2
		exit 2
	fi
	echo "device: $msg"
	export GENREC_CUDA_MODULE=$ROOT/$MODULE
}

ops() {
	say "ops: every op CPU vs CUDA, gradient / optimiser / scoring parity (fp32, tf32, bf16)"
	local rc=0
	build/gpu/test_cuda_ops --math all --module "$MODULE" > "$R/ops.log" 2>&1 || rc=$?
	grep -E "^FAIL|^     " "$R/ops.log" | head -40
	sed -n '/^op  /,$p' "$R/ops.log"
	$CMP note "ops: CPU vs CUDA (test_cuda_ops)" "$([ $rc = 0 ] && echo PASS || echo FAIL)" \
		"$(tail -1 "$R/ops.log") (log: $R/ops.log)"
	local hrc=0
	build/gpu/test_cuda_hstu --module "$MODULE" > "$R/hstu.log" 2>&1 || hrc=$?
	grep -E "^FAIL|^     " "$R/hstu.log" | head -40
	tail -1 "$R/hstu.log"
	$CMP note "ops: HSTU attention CPU vs CUDA (test_cuda_hstu)" \
		"$([ $hrc = 0 ] && echo PASS || echo FAIL)" "$(tail -1 "$R/hstu.log") (log: $R/hstu.log)"
}

# CLI runs; $1 = label, the rest = arguments
cli() {
	local label=$1
	shift
	if ! $CLI "$@" > "$R/$label.out" 2> "$R/$label.err"; then
		echo "run.sh: genrec $* failed:" >&2
		tail -5 "$R/$label.err" >&2
		return 1
	fi
}

cli_parity() {
	say "cli: training, scoring and retrieval on $DATA, --device cpu vs --device cuda"
	if [ ! -f "$DATA" ]; then
		$CMP note "cli parity" FAIL "data file $DATA not found (set GR_GPU_DATA)"
		return
	fi
	local arch=() cands user=1
	[ "$QUICK" = 1 ] && arch=(--d 32 --layers 1 --heads 2 --max-len 20 --eval-users 100)
	cands=$(seq -s, 1 1000)
	for L in item int lac pc; do
		local common=(train --data "$DATA" --layout "$L" --epochs "$EPOCHS" --patience 100000
			--seed 7 --quiet "${arch[@]}")
		cli "train_cpu_$L" "${common[@]}" --device cpu --threads "$NPROC" \
			--save "$R/cpu_$L.safetensors" --json "$R/train_cpu_$L.json" || {
			$CMP note "cli $L" FAIL "CPU training failed: $(tail -1 "$R/train_cpu_$L.err")"; continue; }
		if ! GENREC_CUDA_MATH=fp32 $CLI "${common[@]}" --device cuda \
			--save "$R/gpu32_$L.safetensors" --json "$R/train_gpu32_$L.json" \
			> "$R/train_gpu32_$L.out" 2> "$R/train_gpu32_$L.err"; then
			if grep -q "CUDA backend not built" "$R/train_gpu32_$L.err"; then
				$CMP note "cli parity" SKIP "the CLI has no CUDA device selection yet" \
					"(src/cli/genrec_main.c select_device must call gr_device_open)"
				return
			fi
			$CMP note "cli $L" FAIL "CUDA fp32 training failed: $(tail -1 "$R/train_gpu32_$L.err")"
			continue
		fi
		$CMP train "cli $L cpu vs cuda-fp32" "$R/train_gpu32_$L.json" "$R/train_cpu_$L.json" \
			--tol-loss 5e-3 --tol-metric 0.05
		if GENREC_CUDA_MATH=tf32 cli "train_gpu_$L" "${common[@]}" --device cuda \
			--save "$R/gpu_$L.safetensors" --json "$R/train_gpu_$L.json"; then
			$CMP train "cli $L cpu vs cuda-tf32" "$R/train_gpu_$L.json" "$R/train_cpu_$L.json" \
				--tol-loss 5e-2 --tol-metric 0.05
		fi
		# the CPU-trained model scored and queried on both devices (fp32: tight)
		local serve=(--model "$R/cpu_$L.safetensors" --user $user --data "$DATA" --quiet)
		if cli "score_cc_$L" score "${serve[@]}" --candidates "$cands" --device cpu --json "$R/score_cc_$L.json" &&
			GENREC_CUDA_MATH=fp32 cli "score_cg_$L" score "${serve[@]}" --candidates "$cands" \
				--device cuda --json "$R/score_cg_$L.json"; then
			$CMP score "cli $L score: cpu model on cpu vs cuda" "$R/score_cg_$L.json" \
				"$R/score_cc_$L.json" --tol 1e-4
		fi
		if cli "rec_cc_$L" recommend "${serve[@]}" --k 100 --device cpu --json "$R/rec_cc_$L.json" &&
			GENREC_CUDA_MATH=fp32 cli "rec_cg_$L" recommend "${serve[@]}" --k 100 --device cuda \
				--json "$R/rec_cg_$L.json"; then
			$CMP recommend "cli $L recommend: cpu vs cuda" "$R/rec_cg_$L.json" "$R/rec_cc_$L.json" \
				--min-overlap 0.98
		fi
		# the GPU-trained model evaluated on the CPU and on the GPU
		if [ -f "$R/gpu_$L.safetensors" ] &&
			cli "eval_gc_$L" eval --model "$R/gpu_$L.safetensors" --data "$DATA" --device cpu \
				--threads "$NPROC" --quiet --json "$R/eval_gc_$L.json" &&
			GENREC_CUDA_MATH=fp32 cli "eval_gg_$L" eval --model "$R/gpu_$L.safetensors" \
				--data "$DATA" --device cuda --quiet --json "$R/eval_gg_$L.json"; then
			$CMP eval "cli $L eval: cuda model on cpu vs cuda" "$R/eval_gg_$L.json" \
				"$R/eval_gc_$L.json" --tol-metric 0.005
		fi
	done
}

bench() {
	say "bench: engine (build/gpu/gpu_bench) and PyTorch (bench/gpu_bench.py)"
	local sizes=small,large
	[ "$QUICK" = 1 ] && sizes=tiny
	local eargs=(--sizes "$sizes" --json "$R/bench_engine.json" --module "$MODULE")
	[ "$QUICK" = 1 ] && eargs+=(--steps 2 --skip-serving --peak-n 512)
	if ! build/gpu/gpu_bench "${eargs[@]}" 2>&1 | tee "$R/bench_engine.log"; then
		$CMP note "bench engine" FAIL "gpu_bench failed (log: $R/bench_engine.log)"
	fi
	if [ "$QUICK" = 1 ]; then
		$CMP note "bench torch" SKIP "GR_GPU_QUICK=1"
	elif python3 -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)" 2>/dev/null; then
		PYTHONUNBUFFERED=1 python3 bench/gpu_bench.py --sizes "$sizes" --json "$R/bench_torch.json" \
			2>&1 | tee "$R/bench_torch.log" | grep -vE "^\s*$" | tail -20
	else
		$CMP note "bench torch" SKIP "no PyTorch with CUDA here"
	fi
}

setup_deps
if want build || want ops || want cli || want bench; then
	want build || [ -x build/gpu/test_cuda_ops ] || STAGES="$STAGES build"
	want build && { : > "$R/summary.tsv"; build; }
	probe
fi
want ops && ops
want cli && cli_parity
want bench && bench
say "summary"
$CMP table --engine "$R/bench_engine.json" --torch "$R/bench_torch.json"
