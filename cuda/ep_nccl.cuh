// ep_nccl.cuh — expert-parallel MoE over NCCL: the communicator that ref/moe/expert_parallel.h's
// ep_moe_forward drives, so the GPU version shares the dispatch plan, the replica rule and the combine
// with the MPI twin (tests/ep/test_ep_mpi.cpp) line for line.
//
// The exchanges are NCCL collectives on the GPU: the counts with ncclAllGather, the per-rank counts and
// the token rows with ncclSend/ncclRecv pairs inside one ncclGroupStart/End (NCCL's all-to-all-v
// pattern: every rank posts one send and one receive per peer, NCCL schedules them). Rows travel as
// bytes. Until the MoE kernels exist, the buffers are staged through the host around each exchange and
// the local experts are the CPU twin: what this checks on a GPU is the NCCL dispatch and combine.
#pragma once
#include <cuda_runtime.h>
#include <nccl.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <vector>

#include "common.cuh"

#define NCCL_CHECK(call)                                                                                    \
    do {                                                                                                    \
        const ncclResult_t r_ = (call);                                                                     \
        if (r_ != ncclSuccess) {                                                                            \
            std::fprintf(stderr, "NCCL error %s at %s:%d in %s\n", ncclGetErrorString(r_), __FILE__, __LINE__, \
                         #call);                                                                            \
            std::exit(1);                                                                                   \
        }                                                                                                   \
    } while (0)

namespace dsref {
namespace gpu {

// All-to-all-v of rows: rank r sends send_rows[q] rows of row_bytes to each rank q (from `send`, grouped
// by destination in rank order) and receives recv_rows[q] rows from each q (into `recv`, in source order).
// send, recv: device pointers; the counts are host arrays [P].
void ep_alltoallv_nccl(const void* send, const int64_t* send_rows, void* recv, const int64_t* recv_rows,
                       int64_t row_bytes, int P, ncclComm_t comm, cudaStream_t st);

// The communicator of ep_moe_forward (expert_parallel.h) over NCCL, host buffers in and out.
struct NcclEpComm {
    ncclComm_t comm;
    int P;
    cudaStream_t st;

    void allgather(const int64_t* mine, int64_t* all, int64_t n) {
        DevBuf d_mine(n * 8), d_all(P * n * 8);
        upload(d_mine, mine, n * 8);
        NCCL_CHECK(ncclAllGather(d_mine.p, d_all.p, (size_t)n, ncclInt64, comm, st));
        CUDA_CHECK(cudaStreamSynchronize(st));
        download(all, d_all, P * n * 8);
    }
    void alltoall(const int64_t* send, int64_t* recv) {
        const std::vector<int64_t> ones(P, 1);
        bytes_alltoallv(send, ones.data(), recv, ones.data(), 8);
    }
    void alltoallv(const float* s, const int64_t* sc, float* r, const int64_t* rc, int64_t elems) {
        bytes_alltoallv(s, sc, r, rc, elems * (int64_t)sizeof(float));
    }
    void alltoallv_i32(const int32_t* s, const int64_t* sc, int32_t* r, const int64_t* rc) {
        bytes_alltoallv(s, sc, r, rc, 4);
    }
    void bytes_alltoallv(const void* send, const int64_t* sc, void* recv, const int64_t* rc, int64_t row_bytes) {
        int64_t ns = 0, nr = 0;
        for (int q = 0; q < P; q++) {
            ns += sc[q];
            nr += rc[q];
        }
        DevBuf ds(ns * row_bytes), dr(nr * row_bytes);
        upload(ds, send, ns * row_bytes);
        ep_alltoallv_nccl(ds.p, sc, dr.p, rc, row_bytes, P, comm, st);
        CUDA_CHECK(cudaStreamSynchronize(st));
        download(recv, dr, nr * row_bytes);
    }
};

}  // namespace gpu
}  // namespace dsref
