# dsref — DeepSeek from scratch in C++.  `make help` lists the targets.
#
#   make            static library build/libdsref.a and the CLI build/dsref
#   make test       build and run every CPU test (alias: make check)
#   make demo       info / forward / generate / diff on the shipped tiny model
#   make bench      the performance table (never run by the tests)
#   make walkthrough  build and run every walkthrough chapter
#   DEBUG=1         -O0 -g into build-debug/      SAN=1  ASan+UBSan into build-san/
#   PORTABLE=1      no -march=native
#   make lab-kit OUT=DIR   the student tree; make lab-test [LAB=name] grades the labs (walkthrough/LABS.md)
#   make cuda       nvcc build of cuda/ + PTX check (test-cuda / bench-cuda / gpu-check: see the CUDA section)
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
# what makes results bit-identical at any thread count (see ref/core/linear.h).
# -Wno-maybe-uninitialized: GCC 12 reports a false positive inside its own AVX-512 intrinsics
# (avx512fintrin.h, _mm512_extractf64x4_pd) when Eigen's kernels are inlined at -O3 -march=native.
CXXFLAGS := -std=c++17 $(OPT) -Wall -Wextra -Werror -Wno-maybe-uninitialized -fopenmp -DEIGEN_DONT_PARALLELIZE \
            -isystem /usr/include/eigen3 -Iref
LDFLAGS  := -fopenmp $(LDSAN)
LIBS     := -lm

LIB_DIRS  := core io fp8 moe rl model ops tools
LIB_SRCS  := $(sort $(foreach d,$(LIB_DIRS),$(wildcard ref/$(d)/*.cpp)))
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
	@sed -n '1,14p' Makefile

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

# =====================================================================================================
# CUDA — the kernel workbench in cuda/ (see cuda/README.md). This section is self-contained.
#   make cuda        nvcc build of the kernels, the golden tests and the benchmark (warnings are errors),
#                    the PTX check (cuda/check_ptx.sh) and a CPU-only dry run of the golden-test harness
#   make test-cuda   golden tests of every kernel version against its CPU twin; one SKIP line and exit 0
#                    without a CUDA device (or without nvcc)
#   make bench-cuda  one line per kernel and shape (one SKIP line without a device)
#   make gpu-deps    copies the header-only dependencies (Eigen, nlohmann/json) into build/gpu-deps/ for a
#                    machine without a package manager (carry it: the device tool's `carry`)
#   make gpu-check   one command for a lent GPU: build, test, bench, logs under $OUT (else build/gpu-check);
#                    never calls `make deps`; uses build/gpu-deps when present
# Hopper code (fp8_gemm.cu) is built with -gencode=arch=compute_90a,code=sm_90a (the -arch=sm_90a shorthand
# of nvcc 13.0 also runs a plain sm_90 pass that rejects wgmma); the other kernels for sm_80 and sm_90.
# =====================================================================================================
ifeq ($(origin NVCC),undefined)
NVCC       := $(shell command -v nvcc 2>/dev/null || { test -x /usr/local/cuda/bin/nvcc && echo /usr/local/cuda/bin/nvcc; })
endif
CUDA_LIBDIR = $(abspath $(dir $(NVCC))../lib64)
GPU_DEPS   ?=
ifneq ($(GPU_DEPS),)
CXXFLAGS   += -isystem $(GPU_DEPS)/eigen3 -isystem $(GPU_DEPS)
endif
# GPU_RELAXED=1 (set by gpu-check): another machine's g++ may warn where ours does not; there the warnings
# are printed but do not stop the run (CI keeps warnings as errors).
ifeq ($(GPU_RELAXED),1)
CXXFLAGS   += -Wno-error
CUDA_HOST_WARN := -Wall,-Wextra
else
CUDA_HOST_WARN := -Wall,-Wextra,-Werror
endif
CUDA_BUILD := $(BUILD)/cuda
CUDA_GENCODE_PORTABLE := -gencode=arch=compute_80,code=sm_80 -gencode=arch=compute_90,code=sm_90
CUDA_GENCODE_fp8_gemm := -gencode=arch=compute_90a,code=sm_90a
NVCCFLAGS  := -std=c++17 -O3 -lineinfo -Werror all-warnings -Xcompiler $(CUDA_HOST_WARN),-fopenmp -Iref -Icuda \
              $(if $(GPU_DEPS),-isystem $(GPU_DEPS))
CUDA_KERNEL_OBJS := $(patsubst %,$(CUDA_BUILD)/%.o,rmsnorm rope swiglu fp8_quant fp8_gemm)
CUDA_BINS  := $(CUDA_BUILD)/test_cuda $(CUDA_BUILD)/bench_cuda
CUDA_LINK  := -Xlinker --whole-archive,$(LIB),--no-whole-archive -Xcompiler -fopenmp \
              -Xlinker -rpath -Xlinker $(CUDA_LIBDIR)
GPU_COMMIT ?= $(shell git rev-parse --short HEAD 2>/dev/null || echo unknown)

$(CUDA_BUILD)/%.o: cuda/%.cu $(BUILD)/.flags
	@mkdir -p $(dir $@)
	$(NVCC) $(NVCCFLAGS) $(or $(CUDA_GENCODE_$*),$(CUDA_GENCODE_PORTABLE)) -MMD -MP -c $< -o $@

$(CUDA_BUILD)/test_cuda: $(CUDA_BUILD)/test_cuda.o $(CUDA_KERNEL_OBJS) $(LIB)
	$(NVCC) -o $@ $(CUDA_BUILD)/test_cuda.o $(CUDA_KERNEL_OBJS) $(CUDA_LINK)

$(CUDA_BUILD)/bench_cuda: $(CUDA_BUILD)/bench_cuda.o $(CUDA_KERNEL_OBJS) $(LIB)
	$(NVCC) -o $@ $(CUDA_BUILD)/bench_cuda.o $(CUDA_KERNEL_OBJS) $(CUDA_LINK) -lcublasLt

$(CUDA_BUILD)/ptx.ok: cuda/check_ptx.sh $(CUDA_BUILD)/fp8_gemm.o $(CUDA_BUILD)/fp8_quant.o
	bash cuda/check_ptx.sh $(NVCC) $(CUDA_BUILD) $(NVCCFLAGS)
	@touch $@

.PHONY: gpu-deps
cuda: $(CUDA_BINS) $(CUDA_BUILD)/ptx.ok
	@out=$$($(CUDA_BUILD)/test_cuda --dry-run --quick 2>&1) || { echo "$$out"; exit 1; }; echo "$$out" | tail -n 1

test-cuda:
	@if [ -z "$(NVCC)" ]; then echo "test-cuda: SKIP — nvcc not found, nothing built or run"; exit 0; fi; \
	$(MAKE) --no-print-directory -j$(NPROC) cuda && $(CUDA_BUILD)/test_cuda

bench-cuda:
	@if [ -z "$(NVCC)" ]; then echo "bench-cuda: SKIP — nvcc not found, nothing built or run"; exit 0; fi; \
	$(MAKE) --no-print-directory -j$(NPROC) cuda && $(CUDA_BUILD)/bench_cuda

gpu-deps:
	rm -rf build/gpu-deps && mkdir -p build/gpu-deps/eigen3
	cp -r /usr/include/eigen3/Eigen build/gpu-deps/eigen3/Eigen
	cp -r /usr/include/nlohmann build/gpu-deps/nlohmann
	@du -sh build/gpu-deps

gpu-check:
	@set -o pipefail; log=$${OUT:-$(BUILD)/gpu-check}; mkdir -p $$log; start=$$(date +%s); \
	deps=""; if [ -d build/gpu-deps ]; then deps="GPU_DEPS=build/gpu-deps"; fi; \
	{ echo "gpu-check: $$(date -u '+%Y-%m-%d %H:%M UTC'), commit $(GPU_COMMIT), nvcc $(NVCC), $$deps"; \
	  nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.mem,temperature.gpu --format=csv 2>&1 || true; \
	  $(NVCC) --version 2>&1 | tail -n 2; } | tee $$log/gpu_info.txt; \
	$(MAKE) --no-print-directory -j$(NPROC) cuda $$deps GPU_RELAXED=1 2>&1 | tee $$log/build.log || { echo "gpu-check: BUILD FAILED"; exit 1; }; \
	echo "gpu-check: built in $$(( $$(date +%s) - start )) s"; \
	timeout 180 $(CUDA_BUILD)/test_cuda 2>&1 | tee $$log/test_cuda.log; t=$$?; \
	timeout 90 $(CUDA_BUILD)/bench_cuda --commit $(GPU_COMMIT) --table $$log/bench_table.md 2>&1 | tee $$log/bench_cuda.log; b=$$?; \
	echo "gpu-check: tests exit $$t ($$(grep -E '^test-cuda: [0-9]+ passed' $$log/test_cuda.log)), bench exit $$b, $$(( $$(date +%s) - start )) s in all; logs in $$log"; \
	[ $$t -eq 0 ] && [ $$b -eq 0 ]

-include $(CUDA_KERNEL_OBJS:.o=.d) $(CUDA_BUILD)/test_cuda.d $(CUDA_BUILD)/bench_cuda.d
# ==== end of the CUDA section ===========================================================================

# ---- labs: the lab kit and its grading (walkthrough/LABS.md) -------------------------------------------
.PHONY: lab-kit lab-test lab-check
lab-kit:
	@test -n "$(OUT)" || { echo "usage: make lab-kit OUT=DIR"; exit 2; }
	@labs/kit.sh make $(OUT)

lab-test: deps
	@labs/lab_test.sh $(BUILD) $(LAB)

# The whole kit check (CI): make a kit, build it, every lab fails cleanly, and putting one lab's reference
# body back (with the labs it needs) makes exactly those labs pass. Reuses this tree's objects.
lab-check: deps
	@$(MAKE) --no-print-directory -j$(NPROC) $(LIB)
	@labs/check_kit.sh full $(BUILD)
