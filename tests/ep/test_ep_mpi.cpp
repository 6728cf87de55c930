// test_ep_mpi.cpp — the MPI twin of expert-parallel MoE on the CPU (ref/moe/expert_parallel.h): each MPI
// rank holds a shard of the tokens and the experts of its slots; dispatch and combine are MPI_Alltoallv.
// Every rank also runs the single-process moe_forward on the whole batch and compares its shard of the
// output bit for bit, with one expert per slot and with EPLB's redundant experts, for several batch
// sizes (including shards with no token). `make test-ep` runs it with 1, 2 and 4 ranks.
//
//   mpirun -np P build/tests/ep/test_ep_mpi        exit 0 when every case matched on every rank
#include <mpi.h>

#include <climits>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "core/error.h"
#include "ep_fixture.h"
#include "moe/expert_parallel.h"

namespace {

// MPI counts are int: refuse what does not fit instead of wrapping.
int to_int(int64_t v, const char* what) {
    if (v < 0 || v > INT_MAX) dsref::fail("test_ep_mpi: ", what, " ", v, " does not fit MPI's int counts");
    return (int)v;
}

struct MpiComm {
    MPI_Comm comm;
    int P;
    void allgather(const int64_t* mine, int64_t* all, int64_t n) {
        MPI_Allgather(mine, to_int(n, "count"), MPI_INT64_T, all, to_int(n, "count"), MPI_INT64_T, comm);
    }
    void alltoall(const int64_t* send, int64_t* recv) { MPI_Alltoall(send, 1, MPI_INT64_T, recv, 1, MPI_INT64_T, comm); }
    template <typename T>
    void alltoallv_t(const T* send, const int64_t* send_rows, T* recv, const int64_t* recv_rows, int64_t elems,
                     MPI_Datatype type) {
        std::vector<int> sc(P), sd(P), rc(P), rd(P);
        int64_t so = 0, ro = 0;
        for (int r = 0; r < P; r++) {
            sc[r] = to_int(send_rows[r] * elems, "send count");
            rc[r] = to_int(recv_rows[r] * elems, "receive count");
            sd[r] = to_int(so, "send offset");
            rd[r] = to_int(ro, "receive offset");
            so += send_rows[r] * elems;
            ro += recv_rows[r] * elems;
        }
        MPI_Alltoallv(send, sc.data(), sd.data(), type, recv, rc.data(), rd.data(), type, comm);
    }
    void alltoallv(const float* s, const int64_t* sc, float* r, const int64_t* rc, int64_t elems) {
        alltoallv_t(s, sc, r, rc, elems, MPI_FLOAT);
    }
    void alltoallv_i32(const int32_t* s, const int64_t* sc, int32_t* r, const int64_t* rc) {
        alltoallv_t(s, sc, r, rc, 1, MPI_INT32_T);
    }
};

}  // namespace

int main(int argc, char** argv) {
    MPI_Init(&argc, &argv);
    int rank = 0, P = 1;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &P);
    int failed = 0, cases = 0;
    try {
        MpiComm comm{MPI_COMM_WORLD, P};
        dsref_test::ep_run_cases(rank, P, comm, [&](int64_t T, bool redundant, bool same, int64_t Tr) {
            int all_same = 0, mine = same ? 1 : 0;
            MPI_Allreduce(&mine, &all_same, 1, MPI_INT, MPI_MIN, MPI_COMM_WORLD);
            cases++;
            if (!all_same) failed++;
            if (rank == 0)
                std::printf("%s ep ranks=%d T=%lld %s: %s\n", all_same ? "ok  " : "FAIL", P, (long long)T,
                            redundant ? "EPLB 24 slots (redundant experts)" : "16 slots (one per expert)",
                            all_same ? "every token bit-identical to moe_forward"
                                     : "SOME RANK'S TOKENS DIFFER from moe_forward");
            if (!same) std::printf("FAIL   rank %d: its %lld tokens differ\n", rank, (long long)Tr);
            std::fflush(stdout);
        });
    } catch (const std::exception& e) {
        std::fprintf(stderr, "test_ep_mpi rank %d: %s\n", rank, e.what());
        MPI_Abort(MPI_COMM_WORLD, 1);
    }
    if (rank == 0) std::printf("test-ep ranks=%d: %d cases, %d failed\n", P, cases, failed);
    MPI_Finalize();
    return failed ? 1 : 0;
}
