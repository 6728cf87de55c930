// test_ep_nccl.cu — expert-parallel MoE over NCCL (ep_nccl.cuh) against the single-process moe_forward,
// bit for bit, on the layer of tests/ep_fixture.h (the MPI twin, tests/ep/test_ep_mpi.cpp, checks the same
// layer the same way on the CPU).
//
//   build/cuda/test_ep_nccl                         one rank on GPU 0 (what cuda/gpu_validate.sh runs)
//   mpirun -np 8 build/cuda/test_ep_nccl            8 ranks, one GPU each (rank r on GPU r mod devices)
//
// No MPI library is linked (the GPU machine may have none): rank and size come from mpirun's environment
// (OMPI_COMM_WORLD_RANK/SIZE, or PMI_RANK/PMI_SIZE), and rank 0 hands NCCL's unique id to the others
// through the file $DSREF_NCCL_ID_FILE (default /tmp/dsref_nccl_id; all ranks on one host, or a shared
// file system). Without a CUDA device it prints one SKIP line and exits 0 (DSREF_REQUIRE_GPU=1: exit 1).
#include <unistd.h>

#include <cstring>
#include <fstream>
#include <string>

#include "ep_fixture.h"
#include "ep_nccl.cuh"
#include "moe/expert_parallel.h"

namespace {

int env_int(const char* a, const char* b, int dflt) {
    for (const char* n : {a, b}) {
        const char* v = std::getenv(n);
        if (v && *v) return std::atoi(v);
    }
    return dflt;
}

ncclUniqueId share_id(int rank, int P) {
    ncclUniqueId id;
    if (P == 1) {
        NCCL_CHECK(ncclGetUniqueId(&id));
        return id;
    }
    const char* f = std::getenv("DSREF_NCCL_ID_FILE");
    const std::string path = f && *f ? f : "/tmp/dsref_nccl_id";
    if (rank == 0) {
        NCCL_CHECK(ncclGetUniqueId(&id));
        const std::string tmp = path + ".tmp";
        std::ofstream(tmp, std::ios::binary).write(reinterpret_cast<const char*>(&id), sizeof id);
        std::rename(tmp.c_str(), path.c_str());  // atomic: readers never see half an id
    } else {
        for (int i = 0; i < 600; i++) {  // up to 60 s
            std::ifstream in(path, std::ios::binary);
            if (in.read(reinterpret_cast<char*>(&id), sizeof id)) return id;
            usleep(100000);
        }
        std::fprintf(stderr, "test_ep_nccl rank %d: no NCCL id in %s after 60 s\n", rank, path.c_str());
        std::exit(1);
    }
    return id;
}

}  // namespace

int main() {
    const int rank = env_int("OMPI_COMM_WORLD_RANK", "PMI_RANK", 0), P = env_int("OMPI_COMM_WORLD_SIZE", "PMI_SIZE", 1);
    const dsref::gpu::DeviceInfo dev = dsref::gpu::detect_device();
    if (!dev.ok) {
        const char* req = std::getenv("DSREF_REQUIRE_GPU");
        const bool require = req && *req && std::strcmp(req, "0") != 0;
        std::printf("test-ep-nccl: %s — no CUDA device (%s); nothing ran\n", require ? "FAIL (DSREF_REQUIRE_GPU)" : "SKIP",
                    dev.why.c_str());
        return require ? 1 : 0;
    }
    int ndev = 1;
    CUDA_CHECK(cudaGetDeviceCount(&ndev));
    CUDA_CHECK(cudaSetDevice(rank % ndev));
    const ncclUniqueId id = share_id(rank, P);
    ncclComm_t comm;
    NCCL_CHECK(ncclCommInitRank(&comm, P, id, rank));
    cudaStream_t st;
    CUDA_CHECK(cudaStreamCreate(&st));
    dsref::gpu::NcclEpComm c{comm, P, st};

    int failed = 0, cases = 0;
    dsref_test::ep_run_cases(rank, P, c, [&](int64_t T, bool redundant, bool same, int64_t) {
        cases++;
        failed += !same;
        std::printf("%s ep-nccl rank %d/%d T=%lld %s: %s\n", same ? "ok  " : "FAIL", rank, P, (long long)T,
                    redundant ? "EPLB 24 slots" : "16 slots", same ? "bit-identical to moe_forward" : "DIFFERS");
        std::fflush(stdout);
    });
    NCCL_CHECK(ncclCommDestroy(comm));
    std::printf("test-ep-nccl rank %d/%d: %d cases, %d failed\n", rank, P, cases, failed);
    return failed ? 1 : 0;
}
