#!/usr/bin/env bash
# check_ptx.sh — checks that the kernels contain the instructions they were written for, from the PTX
# (nvcc -ptx; no GPU needed). Called by `make cuda`; usage: cuda/check_ptx.sh NVCC OUTDIR [NVCC FLAGS...]
#
#   fp8_gemm.cu (compute_90a): v3 has wgmma.mma_async with e4m3 operands (m64n128k32 and m64n64k32),
#     TMA loads (cp.async.bulk.tensor) completing on mbarriers, setmaxnreg; v2 has mma.sync m16n8k32 e4m3,
#     ldmatrix and cp.async.
#   fp8_quant.cu (compute_90): the E4M3 conversion is cvt.rn.satfinite.e4m3x2.f32, every float division is
#     div.rn.f32 (IEEE), and there is no approximate division (div.approx / div.full): the quantizers must be
#     bit-exact with their CPU twins.
#   moe.cu (compute_90): the combine accumulates in double (add.rn.f64 / mul.rn.f64, as its twin moe_combine).
#   mla_decode.cu (compute_90): the block reductions use warp shuffles (shfl.sync.bfly).
# With cuobjdump on the PATH (the GPU machine's image has it; this toolkit may not), it also checks the SASS
# of the compiled object for QGMMA (Hopper FP8 wgmma) and UTMALDG (TMA load).
set -euo pipefail
nvcc=$1
out=$2
shift 2
dir=$(cd "$(dirname "$0")" && pwd)
mkdir -p "$out"
"$nvcc" "$@" -ptx -arch=compute_90a "$dir/fp8_gemm.cu" -o "$out/fp8_gemm.ptx"
"$nvcc" "$@" -ptx -arch=compute_90 "$dir/fp8_quant.cu" -o "$out/fp8_quant.ptx"
"$nvcc" "$@" -ptx -arch=compute_90 "$dir/moe.cu" -o "$out/moe.ptx"
"$nvcc" "$@" -ptx -arch=compute_90 "$dir/mla_decode.cu" -o "$out/mla_decode.ptx"

fail=0
need() {  # need FILE REGEX WHAT
    local n
    n=$(grep -cE "$2" "$1" || true)
    if [ "$n" -gt 0 ]; then
        printf '  ok    %-58s %4d in %s\n' "$3" "$n" "$(basename "$1")"
    else
        printf '  FAIL  %-58s missing from %s\n' "$3" "$(basename "$1")"
        fail=1
    fi
}
absent() {  # absent FILE REGEX WHAT
    local n
    n=$(grep -cE "$2" "$1" || true)
    if [ "$n" -eq 0 ]; then
        printf '  ok    %-58s none in %s\n' "$3" "$(basename "$1")"
    else
        printf '  FAIL  %-58s %4d in %s\n' "$3" "$n" "$(basename "$1")"
        fail=1
    fi
}
echo "check_ptx: instructions in the PTX"
g=$out/fp8_gemm.ptx
q=$out/fp8_quant.ptx
need "$g" 'wgmma\.mma_async\.sync\.aligned\.m64n128k32\.f32\.e4m3\.e4m3' "v3 wgmma m64n128k32 f32.e4m3.e4m3"
need "$g" 'wgmma\.mma_async\.sync\.aligned\.m64n64k32\.f32\.e4m3\.e4m3' "v3 wgmma m64n64k32 f32.e4m3.e4m3"
need "$g" 'wgmma\.(fence|commit_group|wait_group)' "v3 wgmma fence / commit / wait"
need "$g" 'cp\.async\.bulk\.tensor\.2d\.shared::cluster\.global\.mbarrier::complete_tx::bytes' "v3 TMA cp.async.bulk.tensor.2d"
need "$g" 'mbarrier\.try_wait\.parity' "v3 mbarrier try_wait.parity"
need "$g" 'mbarrier\.arrive\.expect_tx' "v3 mbarrier arrive.expect_tx"
need "$g" 'setmaxnreg\.(inc|dec)' "v3 setmaxnreg"
need "$g" 'mma\.sync\.aligned\.m16n8k32\.row\.col\.f32\.e4m3\.e4m3\.f32' "v2 mma.sync m16n8k32 e4m3"
need "$g" 'ldmatrix\.sync\.aligned\.m8n8\.x4' "v2 ldmatrix x4"
need "$g" 'cp\.async\.cg\.shared\.global' "v2 cp.async 16-byte"
need "$q" 'cvt\.rn\.satfinite\.e4m3x2\.f32' "quantizers cvt.rn.satfinite.e4m3x2.f32"
need "$q" 'div\.rn\.f32' "quantizers IEEE division div.rn.f32"
absent "$q" 'div\.(approx|full)\.f32' "quantizers approximate float division"
need "$out/moe.ptx" 'add\.rn\.f64' "moe combine double add.rn.f64"
need "$out/moe.ptx" 'mul\.rn\.f64' "moe combine double mul.rn.f64"
need "$out/mla_decode.ptx" 'shfl\.sync\.bfly' "mla_decode warp-shuffle reductions"

if command -v cuobjdump >/dev/null 2>&1 && [ -f "$out/fp8_gemm.o" ]; then
    echo "check_ptx: SASS of $out/fp8_gemm.o (cuobjdump)"
    cuobjdump --dump-sass "$out/fp8_gemm.o" > "$out/fp8_gemm.sass"
    need "$out/fp8_gemm.sass" 'QGMMA' "v3 QGMMA (FP8 wgmma) in SASS"
    need "$out/fp8_gemm.sass" 'UTMALDG' "v3 UTMALDG (TMA load) in SASS"
    # v2's mma.sync e4m3 is lowered on sm_90 to an fp16 conversion + HMMA (cuda/README.md): informational
    echo "  info  v2 lowering: $(grep -c 'F2FP.F16.E4M3' "$out/fp8_gemm.sass" || true) F2FP.F16.E4M3, $(grep -c 'HMMA' "$out/fp8_gemm.sass" || true) HMMA in SASS"
else
    echo "check_ptx: no cuobjdump here, SASS not checked"
fi
if [ "$fail" -ne 0 ]; then
    echo "check_ptx: FAILED"
    exit 1
fi
echo "check_ptx: all instructions present"
