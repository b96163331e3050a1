# genrec — PGXS build of the extension, plus the pure-C engine, its unit tests and the
# command-line program (which need no PostgreSQL).
#
#   make              build genrec.so (and the engine library and the CLI)
#   make unit         build and run the engine's unit tests
#   make cli          build build/genrec, the engine's command-line program
#   make installcheck run the pg_regress suite against an installed extension
#   make sanitize     the unit tests and the CLI tests built with ASan + UBSan (build/sanitize)
#   make fuzz         the libFuzzer targets of test/fuzz (clang)
#
# Variables:
#   GR_BLAS=openblas|none   GEMM through OpenBLAS (default, opened at run time) or plain C
#   NATIVE=1                build for this machine's CPU only (-march=native, no dispatch):
#                           the module may die with SIGILL on an older CPU
#   GR_ARCH=...             CPU flags for the engine (default: -march=x86-64 -mtune=generic on
#                           x86-64, so the module runs on any x86-64 CPU; the hot kernels
#                           carry AVX2/FMA and AVX-512 clones picked at load time, GR_HOT in
#                           src/engine/gr_ops_cpu.h)
#   GR_CLONES=no            no runtime-dispatched clones (NATIVE=1 implies it)
#   make portable-check     no instruction beyond x86-64 outside the clones, and the clones'
#                           results against baseline builds (test/portable/run.sh)
#   NO_PGXS=1               build only the engine, tests and CLI (no pg_config needed)

.DEFAULT_GOAL := all

EXTENSION   = genrec
EXTVERSION  = 0.2.0
MODULE_big  = genrec
# The install script of the current version is assembled from sql/parts/*.sql (in name
# order, one part per concern); upgrade scripts sql/genrec--A--B.sql are written by hand.
SQL_PARTS   = $(sort $(wildcard sql/parts/*.sql))
DATA_built  = genrec--$(EXTVERSION).sql
DATA        = $(wildcard sql/genrec--*--*.sql) sql/genrec--0.1.0.sql
PGFILEDESC  = "genrec - generative recommendation inside PostgreSQL"

GLUE_SRCS   = $(wildcard src/pg_*.c)
OBJS        = $(GLUE_SRCS:.c=.o)

REGRESS      = $(patsubst test/sql/%.sql,%,$(wildcard test/sql/*.sql))
REGRESS_OPTS = --inputdir=test --outputdir=. --load-extension=genrec

BUILD       := build
ENGINE_SRCS := $(wildcard src/engine/*.c)
ENGINE_OBJS := $(patsubst src/engine/%.c,$(BUILD)/engine/%.o,$(ENGINE_SRCS))
ENGINE_LIB  := $(BUILD)/libgrengine.a

GR_BLAS     ?= openblas
GR_CC       ?= gcc
# Portable by default: baseline x86-64 code with runtime-dispatched hot kernels; NATIVE=1 is
# one -march=native build without clones (what a single-machine install may prefer).
# GR_CLONES=no builds the hot kernels once, for GR_ARCH only (test/portable/run.sh builds the
# clones' equivalents that way to compare their results).
ifeq ($(NATIVE),1)
GR_ARCH     ?= -march=native
GR_CLONES   ?= no
else ifneq ($(findstring x86_64,$(shell $(GR_CC) -dumpmachine)),)
GR_ARCH     ?= -march=x86-64 -mtune=generic
else
GR_ARCH     ?=
endif
GR_CLONES   ?= yes
GR_ARCH_DEFS := $(if $(filter no,$(GR_CLONES)),-DGR_NO_CLONES)
GR_WARN     := -Wall -Wextra -Wno-unused-parameter -Wmissing-prototypes -Wvla-larger-than=131072
GR_OPT      ?= -O3
# GR_SANITIZE: extra compile-and-link flags (the sanitize target sets ASan + UBSan)
GR_SANITIZE ?=
GR_CFLAGS   := -std=c11 -D_GNU_SOURCE $(GR_OPT) $(GR_ARCH) $(GR_ARCH_DEFS) -fopenmp -fPIC -g $(GR_WARN) $(GR_SANITIZE) \
               -fno-math-errno $(shell pkg-config --cflags libcjson) \
               -DGR_MULTIARCH='"$(shell $(GR_CC) -print-multiarch)"'
GR_LIBS     := $(shell pkg-config --libs libcjson) -lgomp -lm -ldl -lpthread

# OpenBLAS is opened with dlopen at first use (see src/engine/gr_blas.c); none = plain C.
ifneq ($(GR_BLAS),openblas)
GR_CFLAGS   += -DGR_NO_BLAS
endif

PG_CPPFLAGS = -Isrc/engine $(shell pkg-config --cflags libcjson)
SHLIB_LINK  = $(ENGINE_LIB) $(GR_LIBS)
EXTRA_CLEAN = $(BUILD)

genrec--$(EXTVERSION).sql: $(SQL_PARTS)
	cat $^ > $@

UNIT_SRCS   := $(wildcard test/unit/test_*.c)
UNIT_BINS   := $(patsubst test/unit/%.c,$(BUILD)/unit/%,$(UNIT_SRCS))
CLI_SRCS    := $(wildcard src/cli/*.c)
CLI_BIN     := $(BUILD)/genrec

# PGXS does not track header dependencies of the glue objects
$(OBJS): $(wildcard src/*.h src/engine/*.h)

ifndef NO_PGXS
# Debian's PGXS would emit LLVM bitcode for every object; the engine is not JIT material.
override with_llvm := no
PG_CONFIG ?= pg_config
PGXS := $(shell $(PG_CONFIG) --pgxs)
include $(PGXS)
all: $(ENGINE_LIB) $(CLI_BIN)
$(shlib): $(ENGINE_LIB)
else
all: $(ENGINE_LIB) $(CLI_BIN)
clean:
	rm -rf $(BUILD)
endif

# The compiler and flags the engine was last built with: a change (NATIVE=1, GR_ARCH, GR_OPT)
# rebuilds it instead of mixing objects of two builds.
GR_FLAGS_NOW := $(GR_CC) $(GR_CFLAGS)
ifneq ($(GR_FLAGS_NOW),$(file <$(BUILD)/cflags))
$(shell mkdir -p $(BUILD))
$(file >$(BUILD)/cflags,$(GR_FLAGS_NOW))
endif

$(BUILD)/engine/%.o: src/engine/%.c $(wildcard src/engine/*.h) Makefile $(BUILD)/cflags \
		| $(BUILD)/engine
	$(GR_CC) $(GR_CFLAGS) $(GR_KERNEL_FLAGS) -c $< -o $@

# The CPU kernels may reassociate sums so reductions vectorise (NaN and Inf keep their
# meaning: no -ffinite-math-only); the rest of the engine keeps strict IEEE semantics.
$(BUILD)/engine/gr_ops_cpu.o $(BUILD)/engine/gr_ops_cpu_attn.o $(BUILD)/engine/gr_ops_cpu_hstu.o \
$(BUILD)/engine/gr_ops_cpu_loss.o $(BUILD)/engine/gr_gemm_ref.o: \
	GR_KERNEL_FLAGS = -fno-trapping-math -fassociative-math -fno-signed-zeros

# The synthetic generator's doubles are evaluated exactly as written (no reassociation, no FMA
# contraction), so genrec_synthetic and `genrec synth` give the same rows in every build.
$(BUILD)/engine/gr_synth.o: GR_CFLAGS += -fno-associative-math -ffp-contract=off -fsigned-zeros \
	-ftrapping-math

$(ENGINE_LIB): $(ENGINE_OBJS)
	rm -f $@
	ar rcs $@ $^

$(BUILD)/engine $(BUILD)/unit $(BUILD)/cli:
	mkdir -p $@

$(BUILD)/unit/%: test/unit/%.c test/unit/unit.h $(ENGINE_LIB) | $(BUILD)/unit
	$(GR_CC) $(GR_CFLAGS) -Isrc/engine -Itest/unit $< -o $@ $(ENGINE_LIB) $(GR_LIBS) $(UNIT_LDFLAGS)

# test_ops makes malloc fail on demand to exercise the ops' no-scratch paths
$(BUILD)/unit/test_ops: UNIT_LDFLAGS = -Wl,--wrap=malloc

$(CLI_BIN): $(CLI_SRCS) $(wildcard src/cli/*.h) $(ENGINE_LIB) | $(BUILD)/cli
	$(GR_CC) $(GR_CFLAGS) -Isrc/engine $(CLI_SRCS) -o $@ $(ENGINE_LIB) $(GR_LIBS) -lz

cli: $(CLI_BIN)

# The portable build's checks: an objdump scan of the module, the CLI and the engine for
# instructions beyond baseline x86-64 outside the dispatched clones, then the op tests and a
# short training run in builds equivalent to each clone, compared with the dispatching build.
portable-check: $(CLI_BIN) unit-bins
	test/portable/run.sh $(BUILD)

.PHONY: portable-check

unit: $(UNIT_BINS)
	@set -e; for t in $(UNIT_BINS); do echo "== $$t"; $$t; done

unit-bins: $(UNIT_BINS)

.PHONY: unit unit-bins cli

# --- AddressSanitizer + UndefinedBehaviorSanitizer: the engine's unit tests and the CLI built
# again under build/sanitize (-O1, no CUDA) and run by test/sanitize/run.sh, which makes every
# report fatal (no suppressions).
SAN_FLAGS   := -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all

sanitize:
	$(MAKE) -s NO_PGXS=1 GR_CUDA=no BUILD=$(BUILD)/sanitize GR_OPT=-O1 \
		GR_SANITIZE="$(SAN_FLAGS)" unit-bins cli
	test/sanitize/run.sh $(BUILD)/sanitize

.PHONY: sanitize

# --- reference parity (PyTorch): C drivers in test/ref/*.c, compared by test/ref/parity.py ---
REF_SRCS    := $(wildcard test/ref/*.c)
REF_BINS    := $(patsubst test/ref/%.c,$(BUILD)/ref/%,$(REF_SRCS))

$(BUILD)/ref:
	mkdir -p $@

$(BUILD)/ref/%: test/ref/%.c $(ENGINE_LIB) | $(BUILD)/ref
	$(GR_CC) $(GR_CFLAGS) -Isrc/engine $< -o $@ $(ENGINE_LIB) $(GR_LIBS)

parity: $(REF_BINS)
	python3 test/ref/parity.py --bin-dir $(BUILD)/ref

# --- CPU benchmarks: bench/cpu_*.c ---
BENCH_BINS  := $(patsubst bench/%.c,$(BUILD)/bench/%,$(wildcard bench/cpu_*.c))

$(BUILD)/bench:
	mkdir -p $@

$(BUILD)/bench/%: bench/%.c $(ENGINE_LIB) | $(BUILD)/bench
	$(GR_CC) $(GR_CFLAGS) -Isrc/engine $< -o $@ $(ENGINE_LIB) $(GR_LIBS)

bench-bins: $(BENCH_BINS) $(CLI_BIN)

.PHONY: bench-bins

# --- fuzz targets (clang libFuzzer): test/fuzz/fuzz_*.c ---
# The engine is compiled once for fuzzing (coverage, ASan, UBSan) under build/fuzz/engine;
# test/fuzz/smoke.sh runs every target for a few seconds (CI).
FUZZ_SRCS   := $(wildcard test/fuzz/fuzz_*.c)
FUZZ_BINS   := $(patsubst test/fuzz/%.c,$(BUILD)/fuzz/%,$(FUZZ_SRCS))
FUZZ_CFLAGS := -g -O1 -fsanitize=fuzzer-no-link,address,undefined -std=c11 -D_GNU_SOURCE \
               -fopenmp -Isrc/engine $(shell pkg-config --cflags libcjson)
FUZZ_OBJS   := $(patsubst src/engine/%.c,$(BUILD)/fuzz/engine/%.o,$(ENGINE_SRCS))

$(BUILD)/fuzz $(BUILD)/fuzz/engine:
	mkdir -p $@

$(BUILD)/fuzz/engine/%.o: src/engine/%.c $(wildcard src/engine/*.h) | $(BUILD)/fuzz/engine
	clang $(FUZZ_CFLAGS) -c $< -o $@

$(BUILD)/fuzz/%: test/fuzz/%.c test/fuzz/fuzz_common.h $(FUZZ_OBJS) | $(BUILD)/fuzz
	clang $(FUZZ_CFLAGS) -fsanitize=fuzzer $< $(FUZZ_OBJS) -o $@ $(GR_LIBS)

fuzz: $(FUZZ_BINS)

.PHONY: parity fuzz

# --- CUDA module ---
# build/genrec_cuda.so holds the CUDA ops (cuda/*.cu); the engine loads it with dlopen on first
# GPU use (src/engine/gr_device.c), so genrec.so and the CLI never link against CUDA. It is
# linked by its own rule: PGXS never sees these objects (Debian's PGXS would emit LLVM bitcode
# for every object in OBJS).
#   GR_CUDA=auto|yes|no   build it when nvcc is found (default) / always / never
#   NVCC=/path/to/nvcc    default: nvcc on PATH, else /usr/local/cuda/bin/nvcc
#   GR_CUDA_GENCODE=...   default: sm_90 machine code plus compute_90 PTX
#   make cuda-emu         build/genrec_cuda_emu.so: the same sources compiled for the CPU
#                         against cuda/gr_cuda_emu.h, to test the kernels without a GPU
#   make gpu-tests        build/gpu/test_cuda_ops (test/gpu/) and build/gpu/gpu_bench (bench/)
#   make cuda-emu-check   the op suite on the emulation (blocks in parallel), every kernel's
#                         grid-stride path; make cuda-emu-race repeats the inter-block groups
GR_CUDA         ?= auto
NVCC            ?= $(firstword $(shell command -v nvcc 2>/dev/null) \
                   $(wildcard /usr/local/cuda/bin/nvcc))
GR_CUDA_GENCODE ?= -gencode arch=compute_90,code=[sm_90,compute_90]
GR_CXX          ?= g++
CUDA_HOME       := $(patsubst %/bin/nvcc,%,$(NVCC))
CUDA_LIBDIR     := $(firstword $(wildcard $(CUDA_HOME)/lib64 $(CUDA_HOME)/lib))
CUDA_SRCS       := $(wildcard cuda/*.cu)
CUDA_HDRS       := $(wildcard cuda/*.h) src/engine/gr_ops.h src/engine/gr_common.h \
                   src/engine/gr_device.h src/engine/gr_rng.h src/engine/gr_tokens.h \
                   src/engine/gr_hstu.h
CUDA_OBJS       := $(patsubst cuda/%.cu,$(BUILD)/cuda/%.o,$(CUDA_SRCS))
CUDA_MODULE     := $(BUILD)/genrec_cuda.so
CUDA_EMU_OBJS   := $(patsubst cuda/%.cu,$(BUILD)/cuda-emu/%.o,$(CUDA_SRCS)) \
                   $(BUILD)/cuda-emu/gr_cuda_emu.o
CUDA_EMU_MODULE := $(BUILD)/genrec_cuda_emu.so
NVCC_FLAGS      := -std=c++17 -O3 $(GR_CUDA_GENCODE) -Xcompiler -fPIC,-fvisibility=hidden \
                   -Isrc/engine -Icuda -lineinfo
NVCC_LIBS       := $(if $(CUDA_LIBDIR),-L$(CUDA_LIBDIR) -Xlinker -rpath=$(CUDA_LIBDIR)) \
                   -lcublas -lcudart

ifeq ($(GR_CUDA),no)
CUDA_BUILD :=
else ifneq ($(NVCC),)
CUDA_BUILD := $(CUDA_MODULE)
else ifeq ($(GR_CUDA),yes)
$(error GR_CUDA=yes but nvcc was not found; set NVCC=/path/to/nvcc)
else
CUDA_BUILD :=
endif

$(BUILD)/cuda $(BUILD)/cuda-emu $(BUILD)/gpu:
	mkdir -p $@

$(BUILD)/cuda/%.o: cuda/%.cu $(CUDA_HDRS) | $(BUILD)/cuda
	$(NVCC) $(NVCC_FLAGS) -c $< -o $@

$(CUDA_MODULE): $(CUDA_OBJS)
	$(NVCC) -shared $(GR_CUDA_GENCODE) -o $@ $^ $(NVCC_LIBS)

cuda-module: $(CUDA_BUILD)
	@$(if $(CUDA_BUILD),true,echo "genrec: CUDA module not built (GR_CUDA=$(GR_CUDA), nvcc '$(NVCC)')")

$(BUILD)/cuda-emu/%.o: cuda/%.cu $(CUDA_HDRS) | $(BUILD)/cuda-emu
	$(GR_CXX) -x c++ -std=c++17 -DGR_CUDA_EMU -O2 -g -fopenmp -fPIC -Wall -Wno-unused-function \
		-Wno-unknown-pragmas -Isrc/engine -Icuda -c $< -o $@

$(BUILD)/cuda-emu/gr_cuda_emu.o: cuda/gr_cuda_emu.cc $(CUDA_HDRS) | $(BUILD)/cuda-emu
	$(GR_CXX) -std=c++17 -O2 -g -fopenmp -fPIC -Wall -Isrc/engine -Icuda -c $< -o $@

$(CUDA_EMU_MODULE): $(CUDA_EMU_OBJS) $(BUILD)/engine/gr_gemm_ref.o
	$(GR_CXX) -shared -fopenmp -o $@ $^

cuda-emu: $(CUDA_EMU_MODULE)

$(BUILD)/gpu/%: test/gpu/%.c test/unit/unit.h $(ENGINE_LIB) | $(BUILD)/gpu
	$(GR_CC) $(GR_CFLAGS) -Isrc/engine -Itest/unit $< -o $@ $(ENGINE_LIB) $(GR_LIBS)

$(BUILD)/gpu/gpu_bench: bench/gpu_bench.c $(ENGINE_LIB) | $(BUILD)/gpu
	$(GR_CC) $(GR_CFLAGS) -Isrc/engine $< -o $@ $(ENGINE_LIB) $(GR_LIBS)

gpu-tests: $(patsubst test/gpu/%.c,$(BUILD)/gpu/%,$(wildcard test/gpu/*.c)) $(BUILD)/gpu/gpu_bench

# The op suite on the CPU emulation with a grid cap of 3 blocks, so every kernel's grid-stride
# and multi-pass path runs (scripts/test.sh runs it; no GPU or nvcc needed). Blocks run in
# parallel on GR_EMU_THREADS OpenMP threads (default 4, more than this machine's cores, so the
# OS interleaves them too): inter-block atomics really contend, and the contention group checks
# exact sums of many blocks adding into a few addresses.
GR_EMU_THREADS ?= 4
cuda-emu-check: cuda-emu gpu-tests
	OMP_NUM_THREADS=$(GR_EMU_THREADS) GENREC_CUDA_GRID_CAP=3 $(BUILD)/gpu/test_cuda_ops \
		--module $(CUDA_EMU_MODULE) --math fp32
	OMP_NUM_THREADS=$(GR_EMU_THREADS) GENREC_CUDA_GRID_CAP=3 $(BUILD)/gpu/test_cuda_hstu \
		--module $(CUDA_EMU_MODULE)

# Stress of the inter-block paths: the contention and whole-model groups and the HSTU op (its
# bias gradients add block sums into one table) ten times each with blocks in parallel
# (issue 13: a lost update in the emulation's float atomicAdd made the lac/pc action_emb
# gradients differ in about half the runs; every run must pass).
cuda-emu-race: cuda-emu gpu-tests
	@f=0; for i in 1 2 3 4 5 6 7 8 9 10; do for g in contention model; do \
		OMP_NUM_THREADS=$(GR_EMU_THREADS) GENREC_CUDA_GRID_CAP=3 $(BUILD)/gpu/test_cuda_ops \
		--module $(CUDA_EMU_MODULE) --math fp32 --only $$g >/dev/null 2>&1 || f=$$((f + 1)); \
		done; OMP_NUM_THREADS=$(GR_EMU_THREADS) GENREC_CUDA_GRID_CAP=3 $(BUILD)/gpu/test_cuda_hstu \
		--module $(CUDA_EMU_MODULE) >/dev/null 2>&1 || f=$$((f + 1)); \
		done; echo "cuda-emu-race: $$f of 30 runs with parallel blocks failed"; [ $$f -eq 0 ]

all: cuda-module
unit: cuda-module cuda-emu

ifndef NO_PGXS
install: install-cuda
endif
install-cuda: cuda-module
	@if [ -f $(CUDA_MODULE) ]; then \
		echo "$(INSTALL_SHLIB) $(CUDA_MODULE) '$(DESTDIR)$(pkglibdir)/'"; \
		$(INSTALL_SHLIB) $(CUDA_MODULE) '$(DESTDIR)$(pkglibdir)/'; fi

.PHONY: cuda-module cuda-emu cuda-emu-check cuda-emu-race gpu-tests install-cuda
