// diff_explain.h — where two `--dump` files part (`dsref diff A B --explain`).
//
// A dump holds the named intermediates of one forward (core/trace.h; `dsref forward --help`). Walking
// them in forward order — per decoder layer i: q_nope.i, q_pe.i, kv_latent.i, k_pe.i, attn.i,
// topk_idx.i, topk_weight.i, hidden.i; then logits, mtp_logits — the first tensor beyond tolerance is
// where the two computations part; everything after it inherits the difference. Two known
// differences of layout are recognized and not counted as divergences:
//   - q_pe / k_pe of transformers are de-interleaved ([x0, x2, .., x1, x3, ..], its rope_interleave)
//     while dsref keeps the checkpoint's adjacent pairs: the same values, the same attention scores;
//   - topk_idx rows in another order (transformers' top-k is unsorted): compared as sets per token, and
//     topk_weight compared in expert-id order; differing sets are reported with the number of tokens.
// Names present in only one file are listed and skipped.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "core/tensor.h"

namespace dsref {

struct ExplainStep {
    std::string name;
    std::string status;  // "ok", "ok (permuted)", "ok (reordered)", "DIVERGES", "only in A", "only in B", "shape"
    std::string detail;  // max |Δ|, the first element out of tolerance, the tokens routed elsewhere, ...
};

struct DiffExplanation {
    std::vector<ExplainStep> steps;  // in forward order, up to and including the first divergence
    int64_t first = -1;              // index of the first divergence in `steps`, -1 when there is none
    int64_t later = 0;               // tensors after it that differ too (inherited)
    std::string conclusion;          // one paragraph: which layer and block, or "no divergence"
};

// The dump names of a and b in forward order (names it does not know go last, sorted).
std::vector<std::string> forward_order(const TensorMap& a, const TensorMap& b);

// a: the file under test, b: the reference (rtol is relative to |b|, as in diff_tensors).
DiffExplanation explain_diff(const TensorMap& a, const TensorMap& b, double atol, double rtol);

}  // namespace dsref
