# dsref — DeepSeek from scratch in C++.  `make help` lists the targets.
#
#   make            static library build/libdsref.a and the CLI build/dsref
#   make test       build and run every CPU test (alias: make check)
#   make demo       info / forward / generate / diff on the shipped tiny model
#   make bench      the performance table (never run by the tests)
#   make walkthrough  build and run every walkthrough chapter
#   DEBUG=1         -O0 -g into build-debug/      SAN=1  ASan+UBSan into build-san/
#   PORTABLE=1      no -march=native
#
# A flags stamp rebuilds everything when the flags change; build/dsref is always the optimized binary.

SHELL := /bin/bash
CXX   ?= g++
ifeq ($(origin CXX),default)
CXX := g++
endif

DEPS_PKGS := libeigen3-dev catch2 nlohmann-json3-dev libcli11-dev

ifeq ($(SAN),1)
BUILD := build-san
# -Wno-uninitialized: at -O1 GCC 12 turns the AVX-512 intrinsics false positive noted at CXXFLAGS
# from "maybe-uninitialized" into "uninitialized".
OPT   := -O1 -g -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined -Wno-uninitialized
LDSAN := -fsanitize=address,undefined
else ifeq ($(DEBUG),1)
BUILD := build-debug
OPT   := -O0 -g
else
BUILD := build
OPT   := -O3
endif
ifneq ($(PORTABLE),1)
OPT += -march=native
endif

# EIGEN_DONT_PARALLELIZE: all threading is ours (OpenMP on outer loops over fixed tiles), which is
# what makes results bit-identical at any thread count (see ref/linear.h).
# -Wno-maybe-uninitialized: GCC 12 reports a false positive inside its own AVX-512 intrinsics
# (avx512fintrin.h, _mm512_extractf64x4_pd) when Eigen's kernels are inlined at -O3 -march=native.
CXXFLAGS := -std=c++17 $(OPT) -Wall -Wextra -Werror -Wno-maybe-uninitialized -fopenmp -DEIGEN_DONT_PARALLELIZE \
            -isystem /usr/include/eigen3 -Iref
LDFLAGS  := -fopenmp $(LDSAN)
LIBS     := -lm

LIB_SRCS  := $(sort $(wildcard ref/*.cpp))
CLI_SRCS  := $(sort $(wildcard ref/cli/*.cpp))
TEST_SRCS := $(sort $(wildcard tests/test_*.cpp))
WALK_SRCS := $(sort $(wildcard walkthrough/*/*.cpp))
BENCH_SRCS:= $(sort $(wildcard ref/bench/*.cpp))

LIB_OBJS  := $(LIB_SRCS:%.cpp=$(BUILD)/%.o)
CLI_OBJS  := $(CLI_SRCS:%.cpp=$(BUILD)/%.o)
TEST_BINS := $(TEST_SRCS:tests/%.cpp=$(BUILD)/tests/%)
WALK_BINS := $(foreach s,$(WALK_SRCS),$(BUILD)/$(basename $(s)))
LIB       := $(BUILD)/libdsref.a
# Ops register themselves from static objects, so the archive is linked whole.
LINK_LIB  := -Wl,--whole-archive $(LIB) -Wl,--no-whole-archive

# Keep the objects of pattern-built binaries (make would delete them as intermediates).
.SECONDARY:

.PHONY: all lib test check demo bench walkthrough deps clean help golden cuda test-cuda bench-cuda gpu-check
all: $(BUILD)/dsref $(if $(filter build,$(BUILD)),,build/dsref)

help:
	@sed -n '1,12p' Makefile

# ---- flags stamp: any change of flags rebuilds every object ----------------------------------------
FLAGS_NOW := $(CXX) $(CXXFLAGS) $(LDFLAGS)
$(BUILD)/.flags: FORCE
	@mkdir -p $(BUILD)
	@if [ "$$(cat $@ 2>/dev/null)" != "$(FLAGS_NOW)" ]; then echo "$(FLAGS_NOW)" > $@; fi
FORCE:

$(BUILD)/%.o: %.cpp $(BUILD)/.flags
	@mkdir -p $(dir $@)
	$(CXX) $(CXXFLAGS) -MMD -MP -c $< -o $@

$(LIB): $(LIB_OBJS)
	@rm -f $@
	ar rcs $@ $^

$(BUILD)/dsref: $(CLI_OBJS) $(LIB)
	$(CXX) $(CXXFLAGS) $(CLI_OBJS) $(LINK_LIB) $(LDFLAGS) $(LIBS) -o $@

ifneq ($(BUILD),build)
build/dsref: FORCE
	@$(MAKE) --no-print-directory build/dsref SAN= DEBUG=
endif

lib: $(LIB)

# ---- tests: Catch2 v2, one main compiled once, one binary per test file ----------------------------
$(BUILD)/tests/catch_main.o: tests/catch_main.cc $(BUILD)/.flags
	@mkdir -p $(dir $@)
	$(CXX) $(CXXFLAGS) -c $< -o $@

$(BUILD)/tests/test_%: $(BUILD)/tests/test_%.o $(BUILD)/tests/catch_main.o $(LIB)
	$(CXX) $(CXXFLAGS) $< $(BUILD)/tests/catch_main.o $(LINK_LIB) $(LDFLAGS) $(LIBS) -o $@

NPROC := $(shell nproc 2>/dev/null || echo 2)

test check: deps
	@$(MAKE) --no-print-directory -j$(NPROC) $(TEST_BINS) $(BUILD)/dsref build/dsref
	@DSREF_BIN=$(abspath $(BUILD)/dsref) tests/run_tests.sh $(TEST_BINS)

# ---- demo ------------------------------------------------------------------------------------------
demo: deps
	@$(MAKE) --no-print-directory -j$(NPROC) build/dsref
	@data/demo.sh build/dsref

# ---- walkthrough -------------------------------------------------------------------------------------
$(BUILD)/walkthrough/%: $(BUILD)/walkthrough/%.o $(LIB)
	$(CXX) $(CXXFLAGS) $< $(LINK_LIB) $(LDFLAGS) $(LIBS) -o $@

walkthrough: deps
	@$(MAKE) --no-print-directory -j$(NPROC) $(WALK_BINS)
	@set -e; for b in $(WALK_BINS); do echo "=== $$b"; $$b; done

# ---- bench -------------------------------------------------------------------------------------------
$(BUILD)/bench/%: $(BUILD)/ref/bench/%.o $(LIB)
	@mkdir -p $(dir $@)
	$(CXX) $(CXXFLAGS) $< $(LINK_LIB) $(LDFLAGS) $(LIBS) -o $@

bench: deps
	@$(MAKE) --no-print-directory -j$(NPROC) $(BENCH_SRCS:ref/bench/%.cpp=$(BUILD)/bench/%) build/dsref
	@set -e; for b in $(BENCH_SRCS:ref/bench/%.cpp=$(BUILD)/bench/%); do $$b; done

# ---- golden data (needs Python + PyTorch; never needed to build or test) -----------------------------
golden:
	data/make_golden.sh

# ---- dependencies ----------------------------------------------------------------------------------
deps:
	@missing=""; for p in $(DEPS_PKGS); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  echo "make deps: installing$$missing"; \
	  if [ "$$(id -u)" = 0 ]; then SUDO=""; elif sudo -n true 2>/dev/null; then SUDO="sudo -n"; else SUDO=none; fi; \
	  if [ "$$SUDO" = none ] || ! { $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq$$missing; } </dev/null; then \
	    echo "make deps: could not install the packages. Run, as root:"; \
	    echo "    apt-get update && apt-get install -y$$missing"; exit 1; fi; \
	fi

clean:
	rm -rf build build-debug build-san

-include $(LIB_OBJS:.o=.d) $(CLI_OBJS:.o=.d) $(TEST_BINS:=.d) $(WALK_BINS:=.d)
