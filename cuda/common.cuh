// common.cuh — the small shared toolbox of the CUDA workbench (llm.c dev/cuda/common.h in spirit):
//   - CUDA_CHECK on every runtime call, CUDA_CHECK_LAUNCH after every kernel launch (cudaGetLastError;
//     with DSREF_CUDA_SYNC=1 in the environment it also synchronizes, so an asynchronous fault is
//     reported at the launch that caused it);
//   - device detection that never aborts (no driver / no device → a reason string for the skip line);
//   - datasheet peaks for the physical floor of the benchmark table;
//   - timing with CUDA events (median of N runs, L2 flushed before each run);
//   - N(0,1) fills on the device (host_math.h randn_at), output poisoning, tiny device buffers.
// Host-side index math lives in host_math.h (pure C++, unit-tested by `make test`).
#pragma once
#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "host_math.h"

namespace dsref {
namespace gpu {

// ---- errors ---------------------------------------------------------------------------------------------
inline void cuda_check(cudaError_t e, const char* what, const char* file, int line) {
    if (e == cudaSuccess) return;
    std::fprintf(stderr, "CUDA error %s (%s) at %s:%d in %s\n", cudaGetErrorName(e), cudaGetErrorString(e), file,
                 line, what);
    std::exit(1);
}
inline bool sync_after_launch() {
    static const bool on = [] {
        const char* v = std::getenv("DSREF_CUDA_SYNC");
        return v && *v && std::strcmp(v, "0") != 0;
    }();
    return on;
}
}  // namespace gpu
}  // namespace dsref

#define CUDA_CHECK(call) ::dsref::gpu::cuda_check((call), #call, __FILE__, __LINE__)
#define CUDA_CHECK_LAUNCH()                                                                       \
    do {                                                                                          \
        ::dsref::gpu::cuda_check(cudaGetLastError(), "kernel launch", __FILE__, __LINE__);        \
        if (::dsref::gpu::sync_after_launch())                                                    \
            ::dsref::gpu::cuda_check(cudaDeviceSynchronize(), "kernel run", __FILE__, __LINE__);  \
    } while (0)

namespace dsref {
namespace gpu {

// ---- element types ----------------------------------------------------------------------------------------
enum class ElemType { F32, BF16 };
inline const char* elem_str(ElemType t) {
    return t == ElemType::F32 ? "f32" : "bf16";
}
inline size_t elem_bytes(ElemType t) {
    return t == ElemType::F32 ? 4 : 2;
}
__device__ __forceinline__ float to_f32(float v) {
    return v;
}
__device__ __forceinline__ float to_f32(__nv_bfloat16 v) {
    return __bfloat162float(v);
}
template <typename T>
__device__ __forceinline__ T from_f32(float v);
template <>
__device__ __forceinline__ float from_f32<float>(float v) {
    return v;
}
template <>
__device__ __forceinline__ __nv_bfloat16 from_f32<__nv_bfloat16>(float v) {
    return __float2bfloat16_rn(v);  // round to nearest even, as ref/core/tensor.h f32_to_bf16
}

// VEC consecutive elements moved as one access (16 bytes when VEC·sizeof(T) = 16).
template <typename T, int VEC>
struct alignas(sizeof(T) * VEC) Pack {
    T v[VEC];
};

// ---- the device -------------------------------------------------------------------------------------------
struct DeviceInfo {
    bool ok = false;
    std::string why;  // when !ok: why there is no usable device
    int id = 0;
    std::string name;
    int cc_major = 0, cc_minor = 0;
    int sms = 0;
    int l2_bytes = 0;
    int smem_optin = 0;     // max dynamic shared memory per block after cudaFuncSetAttribute
    double hbm_gbs = 0;     // datasheet HBM bandwidth, GB/s (0: unknown)
    double fp8_tflops = 0;  // datasheet dense FP8 tensor rate (0: unknown)
};

// Never aborts: a machine without a driver answers cudaErrorInsufficientDriver / cudaErrorNoDevice.
inline DeviceInfo detect_device() {
    DeviceInfo d;
    int n = 0;
    const cudaError_t e = cudaGetDeviceCount(&n);
    if (e != cudaSuccess) {
        // without a driver the runtime answers cudaErrorInsufficientDriver, which reads like a version problem
        d.why = e == cudaErrorInsufficientDriver ? std::string("no CUDA driver: cudaGetDeviceCount returned ") +
                                                        cudaGetErrorName(e)
                : e == cudaErrorNoDevice ? std::string("cudaGetDeviceCount returned cudaErrorNoDevice")
                                         : std::string("cudaGetDeviceCount: ") + cudaGetErrorName(e) + ", " +
                                               cudaGetErrorString(e);
        cudaGetLastError();  // reset the runtime's last-error slot
        return d;
    }
    if (n == 0) {
        d.why = "cudaGetDeviceCount found 0 devices";
        return d;
    }
    cudaDeviceProp p;
    CUDA_CHECK(cudaGetDeviceProperties(&p, 0));
    CUDA_CHECK(cudaSetDevice(0));
    d.ok = true;
    d.name = p.name;
    d.cc_major = p.major;
    d.cc_minor = p.minor;
    d.sms = p.multiProcessorCount;
    d.l2_bytes = p.l2CacheSize;
    d.smem_optin = (int)p.sharedMemPerBlockOptin;
    // NVIDIA datasheet peaks (cuda/README.md): H200 SXM 4.8 TB/s, H100 SXM 3.35 TB/s; both 1979 TFLOP/s FP8.
    if (d.name.find("H200") != std::string::npos) {
        d.hbm_gbs = 4800;
        d.fp8_tflops = 1979;
    } else if (d.name.find("H100") != std::string::npos && d.name.find("PCIe") == std::string::npos) {
        d.hbm_gbs = 3350;
        d.fp8_tflops = 1979;
    }
    return d;
}

inline bool is_hopper(const DeviceInfo& d) {
    return d.cc_major == 9;
}

// SM count and compute capability of the current device, read once (launchers size persistent grids).
inline int device_sms() {
    static const int sms = [] {
        int dev = 0, n = 0;
        CUDA_CHECK(cudaGetDevice(&dev));
        CUDA_CHECK(cudaDeviceGetAttribute(&n, cudaDevAttrMultiProcessorCount, dev));
        return n;
    }();
    return sms;
}
inline int device_cc() {  // 10·major + minor
    static const int cc = [] {
        int dev = 0, ma = 0, mi = 0;
        CUDA_CHECK(cudaGetDevice(&dev));
        CUDA_CHECK(cudaDeviceGetAttribute(&ma, cudaDevAttrComputeCapabilityMajor, dev));
        CUDA_CHECK(cudaDeviceGetAttribute(&mi, cudaDevAttrComputeCapabilityMinor, dev));
        return 10 * ma + mi;
    }();
    return cc;
}

// ---- buffers ------------------------------------------------------------------------------------------------
// A device buffer that frees itself. Every allocation carries kGuardBytes more after its `bytes`: poison()
// fills them with 0xFF too, and guard_intact() checks that no kernel wrote past the end of its output
// (cudaMalloc rounds allocations up, so such a write would otherwise land silently in padding).
constexpr size_t kGuardBytes = 256;
struct DevBuf {
    void* p = nullptr;
    size_t bytes = 0;
    bool guarded = false;  // the guard was poisoned (by poison) and can be checked
    DevBuf() = default;
    explicit DevBuf(size_t n) : bytes(n) { CUDA_CHECK(cudaMalloc(&p, n + kGuardBytes)); }
    DevBuf(const DevBuf&) = delete;
    DevBuf& operator=(const DevBuf&) = delete;
    DevBuf(DevBuf&& o) noexcept : p(o.p), bytes(o.bytes), guarded(o.guarded) {
        o.p = nullptr;
        o.bytes = 0;
    }
    ~DevBuf() {
        if (p) cudaFree(p);
    }
    template <typename T>
    T* as() const {
        return static_cast<T*>(p);
    }
};

inline void upload(DevBuf& d, const void* host, size_t bytes) {
    CUDA_CHECK(cudaMemcpy(d.p, host, bytes, cudaMemcpyHostToDevice));
}
inline void download(void* host, const DevBuf& d, size_t bytes) {
    CUDA_CHECK(cudaMemcpy(host, d.p, bytes, cudaMemcpyDeviceToHost));
}
// 0xFF bytes: NaN as float32 and as bf16, the NaN code 0xFF as E4M3. An element a kernel forgets to write
// stays NaN and fails every check. The guard after the buffer is poisoned as well.
inline void poison(DevBuf& d) {
    CUDA_CHECK(cudaMemset(d.p, 0xFF, d.bytes + kGuardBytes));
    d.guarded = true;
}
// True when the kGuardBytes after the buffer still hold 0xFF (or the guard was never poisoned).
inline bool guard_intact(const DevBuf& d) {
    if (!d.guarded) return true;
    std::vector<uint8_t> g(kGuardBytes);
    CUDA_CHECK(cudaMemcpy(g.data(), static_cast<const uint8_t*>(d.p) + d.bytes, kGuardBytes, cudaMemcpyDeviceToHost));
    for (uint8_t b : g)
        if (b != 0xFF) return false;
    return true;
}

// ---- N(0,1) on the device ----------------------------------------------------------------------------------
// A template so that the header can be included by several translation units (vague linkage).
template <int kUnused = 0>
__global__ void randn_f32_kernel(float* x, int64_t n, uint64_t seed, float scale) {
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x)
        x[i] = scale * randn_at(seed, (uint64_t)i);
}
inline void fill_randn(float* x, int64_t n, uint64_t seed, float scale = 1.0f, cudaStream_t st = 0) {
    randn_f32_kernel<0><<<1024, 256, 0, st>>>(x, n, seed, scale);
    CUDA_CHECK_LAUNCH();
}

// ---- timing -----------------------------------------------------------------------------------------------------
// Flushes L2 by READING a clean buffer twice its size. A write flush (cudaMemsetAsync) would go through the
// write-back L2 and leave it full of dirty lines, which the timed kernel then pays to write back as it
// evicts them (biasing TB/s low, by up to ~2x for a 15 MB kernel). The buffer is written once, at
// construction, and synchronized, so its lines are clean when each flush reads them; the reads are summed
// into one word so that the compiler cannot drop them.
template <int kUnused = 0>
__global__ void l2_flush_read_kernel(const uint4* __restrict__ buf, size_t n, unsigned* sink) {
    unsigned acc = 0;
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x) {
        const uint4 v = __ldcg(buf + i);  // cache in L2 only (the point is to evict L2's contents)
        acc ^= v.x ^ v.y ^ v.z ^ v.w;
    }
    if (acc == 0x9e3779b9u) *sink = acc;  // practically never true; keeps the loads alive
}
struct L2Flusher {
    DevBuf buf, sink;
    explicit L2Flusher(const DeviceInfo& d) : buf((size_t)std::max(2 * d.l2_bytes, 64 << 20)), sink(16) {
        CUDA_CHECK(cudaMemset(buf.p, 1, buf.bytes));
        CUDA_CHECK(cudaDeviceSynchronize());
    }
    void flush(cudaStream_t st = 0) {
        l2_flush_read_kernel<0><<<1024, 256, 0, st>>>(buf.as<const uint4>(), buf.bytes / sizeof(uint4),
                                                      sink.as<unsigned>());
        CUDA_CHECK_LAUNCH();
    }
};

// Median time in ms of `reps` runs of launch(), each after an L2 flush, with `warmup` untimed runs
// first. Events bracket only the launch, so the flush is not counted.
template <typename F>
float time_median_ms(F launch, int reps, int warmup, L2Flusher* flusher, cudaStream_t st = 0) {
    cudaEvent_t a, b;
    CUDA_CHECK(cudaEventCreate(&a));
    CUDA_CHECK(cudaEventCreate(&b));
    for (int i = 0; i < warmup; i++) launch();
    CUDA_CHECK(cudaStreamSynchronize(st));
    std::vector<float> ms(reps);
    for (int i = 0; i < reps; i++) {
        if (flusher) flusher->flush(st);
        CUDA_CHECK(cudaEventRecord(a, st));
        launch();
        CUDA_CHECK(cudaEventRecord(b, st));
        CUDA_CHECK(cudaEventSynchronize(b));
        CUDA_CHECK(cudaEventElapsedTime(&ms[i], a, b));
    }
    CUDA_CHECK(cudaEventDestroy(a));
    CUDA_CHECK(cudaEventDestroy(b));
    std::sort(ms.begin(), ms.end());
    return ms[reps / 2];
}

}  // namespace gpu
}  // namespace dsref
