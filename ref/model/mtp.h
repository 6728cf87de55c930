// mtp.h — DeepSeek-V3's multi-token prediction module at depth 1 (V3 report §2.2, eqs 21–23), run on
// a full prefill. The module is stored as decoder layer L = num_hidden_layers of the checkpoint.
//
// For tokens t_0..t_{T-1} (T ≥ 2) and the main model's final hidden state h [T, d]:
//   x_i = eh_proj · [enorm(Emb(t_{i+1})) ; hnorm(h_i)]      i = 0..T-2, embedding first (checkpoint order)
//   h'  = DecoderLayer_L(x_0..x_{T-2})                       causal, positions 0..T-2, its own cache
//   mtp_logits = shared_head.head · RMSNorm(h'; shared_head.norm)       row i predicts t_{i+2}
//
// Pinned choice: h_i is taken AFTER the main model's final `model.norm` (the lm_head input). The V3
// report leaves before/after open; vLLM's DeepSeek MTP takes it after, and so does dsref. vLLM also
// zeroes Emb at position 0; dsref does not. Emb and the head are layer L's own `embed_tokens` /
// `shared_head.head` (and `shared_head.norm`) when the checkpoint stores them, else the main model's.
// The layer's FFN is MoE whenever the model has routed experts. Its intermediates go to the trace
// under index L (attn.{L}, hidden.{L}, topk_idx.{L}, ...).
#pragma once
#include <string>
#include <vector>

#include "core/trace.h"
#include "model/model.h"

namespace dsref {

class Mtp {
public:
    // Checks the MTP module's config and tensors up front (num_nextn_predict_layers ≥ 1, every tensor
    // of layer L with its shape; the copies of Emb and of the head may be absent).
    explicit Mtp(Model& model);

    struct Output {
        std::vector<float> logits;      // [T, V] (or [1, V] with last_only): the main model's
        std::vector<float> mtp_logits;  // [T-1, V]: row i predicts t_{i+2}
    };
    // The main model's prefill at positions 0..T-1, then the MTP module on its final hidden state.
    Output forward(const std::vector<int32_t>& tokens, Trace* trace = nullptr, bool last_only = false);

    // mtp_logits [T-1, V] from the main model's final hidden state. final_hidden: [T, d]
    std::vector<float> forward_from_hidden(const std::vector<int32_t>& tokens, const std::vector<float>& final_hidden,
                                           Trace* trace = nullptr) const;

private:
    Model& model_;
    std::string embed_, head_norm_, head_;  // layer L's own tensors, or the main model's
};

}  // namespace dsref
