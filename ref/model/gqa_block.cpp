// gqa_block.cpp — the llama attention block: q/k/v projections, half-split RoPE on q and k, causal GQA
// against the KV cache, o_proj. (DeepSeek LLM 7B is MHA, 67B is GQA with 8 KV heads: DeepSeek LLM
// §2.2, Table 2.)
#include <cmath>

#include "core/attention.h"
#include "model/blocks.h"
#include "core/linear.h"
#include "core/rope.h"
#include "io/checkpoint_layout.h"

namespace dsref {

namespace {
class GqaBlock : public AttentionBlock {
public:
    GqaBlock(const ModelConfig& c, const WeightLoader& w, const std::string& p)
        : d_(c.hidden_size), H_(c.num_attention_heads), Hkv_(c.num_key_value_heads), hd_(c.head_dim) {
        const GqaTensors t = gqa_tensors(c, p);
        wq_ = w.load(t.q);
        wk_ = w.load(t.k);
        wv_ = w.load(t.v);
        wo_ = w.load(t.o);
        inv_freq_ = rope_inv_freq(hd_, c.rope_theta, c.rope_scaling);
    }

    void forward(float* out, const float* x, int64_t T, int64_t pos0, LayerCache& cache, Trace* trace,
                 int64_t layer) const override {
        (void)trace, (void)layer;
        const int64_t kv_w = Hkv_ * hd_;  // width of one cached K (or V) row
        std::vector<float> q(T * H_ * hd_);                                   // [T, H, hd]
        linear_forward(q.data(), x, wq_.data(), T, d_, H_ * hd_);
        cache.a.resize((pos0 + T) * kv_w);                                    // K: [S, H_kv, hd]
        cache.b.resize((pos0 + T) * kv_w);                                    // V: [S, H_kv, hd]
        float* k_new = cache.a.data() + pos0 * kv_w;
        float* v_new = cache.b.data() + pos0 * kv_w;
        linear_forward(k_new, x, wk_.data(), T, d_, kv_w);
        linear_forward(v_new, x, wv_.data(), T, d_, kv_w);
        std::vector<int64_t> pos(T);
        for (int64_t t = 0; t < T; t++) pos[t] = pos0 + t;
        rope_forward(q.data(), T, H_, hd_, H_ * hd_, hd_, pos.data(), inv_freq_, RopeLayout::Half);
        rope_forward(k_new, T, Hkv_, hd_, kv_w, hd_, pos.data(), inv_freq_, RopeLayout::Half);
        std::vector<float> o(T * H_ * hd_);                                   // [T, H, hd]
        attention_forward(o.data(), q.data(), cache.a.data(), cache.b.data(), T, pos0 + T, H_, Hkv_, hd_, hd_,
                          (float)(1.0 / std::sqrt((double)hd_)), true, pos0);
        linear_forward(out, o.data(), wo_.data(), T, H_ * hd_, d_);
    }

private:
    int64_t d_, H_, Hkv_, hd_;
    std::vector<float> wq_, wk_, wv_, wo_;  // [H·hd, d], [H_kv·hd, d] ×2, [d, H·hd]
    std::vector<double> inv_freq_;          // [hd/2]
};

}  // namespace

std::unique_ptr<AttentionBlock> make_gqa_block(const ModelConfig& c, const WeightLoader& w, const std::string& p) {
    return std::make_unique<GqaBlock>(c, w, p);
}

}  // namespace dsref
