// ep_nccl.cu — the NCCL all-to-all-v of expert parallelism (ep_nccl.cuh; the algorithm:
// ref/moe/expert_parallel.h).
#include "ep_nccl.cuh"

namespace dsref {
namespace gpu {

void ep_alltoallv_nccl(const void* send, const int64_t* send_rows, void* recv, const int64_t* recv_rows,
                       int64_t row_bytes, int P, ncclComm_t comm, cudaStream_t st) {
    const uint8_t* s = static_cast<const uint8_t*>(send);
    uint8_t* r = static_cast<uint8_t*>(recv);
    int64_t so = 0, ro = 0;
    NCCL_CHECK(ncclGroupStart());
    for (int q = 0; q < P; q++) {  // one send and one receive per peer (zero-size ones are skipped)
        if (send_rows[q] > 0)
            NCCL_CHECK(ncclSend(s + so * row_bytes, (size_t)(send_rows[q] * row_bytes), ncclUint8, q, comm, st));
        if (recv_rows[q] > 0)
            NCCL_CHECK(ncclRecv(r + ro * row_bytes, (size_t)(recv_rows[q] * row_bytes), ncclUint8, q, comm, st));
        so += send_rows[q];
        ro += recv_rows[q];
    }
    NCCL_CHECK(ncclGroupEnd());
}

}  // namespace gpu
}  // namespace dsref
