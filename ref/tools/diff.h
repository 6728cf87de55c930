// diff.h — compares two sets of named tensors, as `dsref diff A.safetensors B.safetensors` does.
//
// For each name in either set: the max absolute difference max|a − b|, the relative difference
// max|a − b| / max|b| (normalized by the largest magnitude of B, so it is stable near zeros), and for
// logits (names starting with "logits" or "mtp_logits") the fraction of rows whose argmax agrees.
// A tensor is within tolerance when every element has |a − b| ≤ atol + rtol·|b| (numpy's allclose);
// NaN matches only NaN. A name missing on one side, or a shape mismatch, is a failure.
#pragma once
#include <string>
#include <vector>

#include "core/tensor.h"

namespace dsref {

struct TensorDiff {
    std::string name;
    std::string problem;         // "" when comparable; else "only in A", "shape [..] vs [..]"
    Shape shape;
    double max_abs = 0, max_rel = 0;
    int64_t n_bad = 0;           // elements outside atol + rtol·|b|
    int64_t rows = 0, argmax_agree = -1;  // for logits; -1 when not applicable
    bool ok = false;
};

std::vector<TensorDiff> diff_tensors(const TensorMap& a, const TensorMap& b, double atol, double rtol);

}  // namespace dsref
