// gqa_block.cpp — the llama / qwen2 attention block: q/k/v projections (qwen2: plus biases), half-split
// RoPE on q and k, causal GQA against the KV cache, o_proj (no bias). DeepSeek LLM 7B is MHA, 67B GQA
// with 8 KV heads (DeepSeek LLM §2.2, Table 2); R1-Distill-Qwen and R1-Distill-Llama are GQA
// (transformers modeling_qwen2.py Qwen2Attention, modeling_llama.py LlamaAttention).
#include <cmath>

#include "core/rope.h"
#include "io/checkpoint_layout.h"
#include "model/blocks.h"
#include "model/held_weight.h"

namespace dsref {

namespace {
class GqaBlock : public AttentionBlock {
public:
    GqaBlock(const ModelConfig& c, const WeightLoader& w, const std::string& p, const PrecisionPolicy& prec,
             bool hold_bf16)
        : d_(c.hidden_size), H_(c.num_attention_heads), Hkv_(c.num_key_value_heads), hd_(c.head_dim), prec_(prec) {
        const GqaTensors t = gqa_tensors(c, p);
        wq_ = hold_weight(w, t.q, prec_, hold_bf16);
        wk_ = hold_weight(w, t.k, prec_, hold_bf16);
        wv_ = hold_weight(w, t.v, prec_, hold_bf16);
        wo_ = hold_weight(w, t.o, prec_, hold_bf16);
        if (t.q_bias) {
            bq_ = prec_.load(w, *t.q_bias);
            bk_ = prec_.load(w, *t.k_bias);
            bv_ = prec_.load(w, *t.v_bias);
        }
        inv_freq_ = rope_inv_freq(hd_, c.rope_theta, c.rope_scaling);
    }

    void forward(float* out, const float* x, int64_t T, int64_t pos0, LayerCache& cache, Trace* trace,
                 int64_t layer) const override {
        (void)trace, (void)layer;
        const int64_t kv_w = Hkv_ * hd_;  // width of one cached K (or V) row
        std::vector<float> q(T * H_ * hd_);                                   // [T, H, hd]
        cache.a.resize((pos0 + T) * kv_w);                                    // K: [S, H_kv, hd]
        cache.b.resize((pos0 + T) * kv_w);                                    // V: [S, H_kv, hd]
        float* k_new = cache.a.data() + pos0 * kv_w;
        float* v_new = cache.b.data() + pos0 * kv_w;
        // y = x Wᵀ (+ b: qwen2), before RoPE
        held_linear(q.data(), x, wq_, T, d_, H_ * hd_, prec_, bq_.empty() ? nullptr : bq_.data());
        held_linear(k_new, x, wk_, T, d_, kv_w, prec_, bk_.empty() ? nullptr : bk_.data());
        held_linear(v_new, x, wv_, T, d_, kv_w, prec_, bv_.empty() ? nullptr : bv_.data());
        std::vector<int64_t> pos(T);
        for (int64_t t = 0; t < T; t++) pos[t] = pos0 + t;
        prec_.rope(q.data(), T, H_, hd_, H_ * hd_, hd_, pos.data(), inv_freq_, RopeLayout::Half);
        prec_.rope(k_new, T, Hkv_, hd_, kv_w, hd_, pos.data(), inv_freq_, RopeLayout::Half);
        std::vector<float> o(T * H_ * hd_);                                   // [T, H, hd]
        prec_.attention(o.data(), q.data(), cache.a.data(), cache.b.data(), T, pos0 + T, H_, Hkv_, hd_, hd_,
                        (float)(1.0 / std::sqrt((double)hd_)), pos0);
        held_linear(out, o.data(), wo_, T, H_ * hd_, d_, prec_);
    }

private:
    int64_t d_, H_, Hkv_, hd_;
    PrecisionPolicy prec_;
    HeldWeight wq_, wk_, wv_, wo_;          // [H·hd, d], [H_kv·hd, d] ×2, [d, H·hd]
    std::vector<float> bq_, bk_, bv_;       // [H·hd], [H_kv·hd] ×2, or empty (no biases)
    std::vector<double> inv_freq_;          // [hd/2]
};

}  // namespace

std::unique_ptr<AttentionBlock> make_gqa_block(const ModelConfig& c, const WeightLoader& w, const std::string& p,
                                               const PrecisionPolicy& prec, bool hold_bf16) {
    return std::make_unique<GqaBlock>(c, w, p, prec, hold_bf16);
}

}  // namespace dsref
