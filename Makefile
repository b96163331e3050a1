# genrec — PGXS build of the extension, plus the pure-C engine, its unit tests and the
# command-line program (which need no PostgreSQL).
#
#   make              build genrec.so (and the engine library and the CLI)
#   make unit         build and run the engine's unit tests
#   make cli          build build/genrec, the engine's command-line program
#   make installcheck run the pg_regress suite against an installed extension
#
# Variables:
#   GR_BLAS=openblas|none   GEMM through OpenBLAS (default) or the plain-C fallback
#   GR_ARCH=-march=native   CPU flags for the engine
#   NO_PGXS=1               build only the engine, tests and CLI (no pg_config needed)

EXTENSION   = genrec
EXTVERSION  = 0.1.0
MODULE_big  = genrec
DATA        = $(wildcard sql/genrec--*.sql)
PGFILEDESC  = "genrec - generative recommendation inside PostgreSQL"

GLUE_SRCS   = $(wildcard src/pg_*.c)
OBJS        = $(GLUE_SRCS:.c=.o)

REGRESS      = $(patsubst test/sql/%.sql,%,$(wildcard test/sql/*.sql))
REGRESS_OPTS = --inputdir=test --outputdir=build/regress

BUILD       := build
ENGINE_SRCS := $(wildcard src/engine/*.c)
ENGINE_OBJS := $(patsubst src/engine/%.c,$(BUILD)/engine/%.o,$(ENGINE_SRCS))
ENGINE_LIB  := $(BUILD)/libgrengine.a

GR_BLAS     ?= openblas
GR_ARCH     ?= -march=native
GR_CC       ?= gcc
GR_WARN     := -Wall -Wextra -Wno-unused-parameter -Wmissing-prototypes -Wvla-larger-than=131072
GR_CFLAGS   := -std=c11 -D_GNU_SOURCE -O3 $(GR_ARCH) -fopenmp -fPIC -g $(GR_WARN) \
               -fno-math-errno $(shell pkg-config --cflags libcjson)
GR_LIBS     := $(shell pkg-config --libs libcjson) -lgomp -lm -ldl -lpthread

ifeq ($(GR_BLAS),openblas)
GR_CFLAGS   += $(shell pkg-config --cflags openblas)
GR_LIBS     := $(shell pkg-config --libs openblas) $(GR_LIBS)
else
GR_CFLAGS   += -DGR_NO_BLAS
endif

PG_CPPFLAGS = -Isrc/engine $(shell pkg-config --cflags libcjson)
SHLIB_LINK  = $(ENGINE_LIB) $(GR_LIBS)
EXTRA_CLEAN = $(BUILD)

UNIT_SRCS   := $(wildcard test/unit/test_*.c)
UNIT_BINS   := $(patsubst test/unit/%.c,$(BUILD)/unit/%,$(UNIT_SRCS))
CLI_SRCS    := $(wildcard src/cli/*.c)
CLI_BIN     := $(BUILD)/genrec

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

$(BUILD)/engine/%.o: src/engine/%.c $(wildcard src/engine/*.h) | $(BUILD)/engine
	$(GR_CC) $(GR_CFLAGS) -c $< -o $@

$(ENGINE_LIB): $(ENGINE_OBJS)
	rm -f $@
	ar rcs $@ $^

$(BUILD)/engine $(BUILD)/unit $(BUILD)/cli:
	mkdir -p $@

$(BUILD)/unit/%: test/unit/%.c test/unit/unit.h $(ENGINE_LIB) | $(BUILD)/unit
	$(GR_CC) $(GR_CFLAGS) -Isrc/engine -Itest/unit $< -o $@ $(ENGINE_LIB) $(GR_LIBS)

$(CLI_BIN): $(CLI_SRCS) $(wildcard src/cli/*.h) $(ENGINE_LIB) | $(BUILD)/cli
	$(GR_CC) $(GR_CFLAGS) -Isrc/engine $(CLI_SRCS) -o $@ $(ENGINE_LIB) $(GR_LIBS) -lz

cli: $(CLI_BIN)

unit: $(UNIT_BINS)
	@set -e; for t in $(UNIT_BINS); do echo "== $$t"; $$t; done

.PHONY: unit cli

# --- reference parity (PyTorch): C drivers in test/ref/*.c, compared by test/ref/parity.py ---
REF_SRCS    := $(wildcard test/ref/*.c)
REF_BINS    := $(patsubst test/ref/%.c,$(BUILD)/ref/%,$(REF_SRCS))

$(BUILD)/ref:
	mkdir -p $@

$(BUILD)/ref/%: test/ref/%.c $(ENGINE_LIB) | $(BUILD)/ref
	$(GR_CC) $(GR_CFLAGS) -Isrc/engine $< -o $@ $(ENGINE_LIB) $(GR_LIBS)

parity: $(REF_BINS)
	python3 test/ref/parity.py --bin-dir $(BUILD)/ref

# --- fuzz targets (clang libFuzzer): test/fuzz/fuzz_*.c ---
FUZZ_SRCS   := $(wildcard test/fuzz/fuzz_*.c)
FUZZ_BINS   := $(patsubst test/fuzz/%.c,$(BUILD)/fuzz/%,$(FUZZ_SRCS))

$(BUILD)/fuzz:
	mkdir -p $@

$(BUILD)/fuzz/%: test/fuzz/%.c $(ENGINE_SRCS) | $(BUILD)/fuzz
	clang -g -O1 -fsanitize=fuzzer,address,undefined -std=c11 -D_GNU_SOURCE -fopenmp \
		-Isrc/engine $(shell pkg-config --cflags libcjson openblas) $< $(ENGINE_SRCS) -o $@ \
		$(GR_LIBS)

fuzz: $(FUZZ_BINS)

.PHONY: parity fuzz
