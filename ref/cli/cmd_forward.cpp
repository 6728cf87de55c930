// cmd_forward.cpp — `dsref forward`: a full causal prefill at positions 0..T-1, writing logits and,
// with --dump, the named intermediates; with --mtp also the V3 multi-token-prediction logits.
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <iostream>
#include <sstream>

#include "cli.h"
#include "core/error.h"
#include "model/model.h"
#include "model/mtp.h"
#include "io/config_v4.h"
#include "io/safetensors.h"
#include "text/tokenizer.h"

namespace dsref::cli {

// DeepSeek-V4: its dumps, and where transformers' deepseek_v4 differs from the official inference/model.py
// (dsref follows the official code; --compat hf follows transformers).
static const char* kV4Differences = R"(
DeepSeek-V4 (deepseek_v4, model/v4_model.h): a float32 forward of the official layout (io/checkpoint_layout_v4.h)
or of the layout transformers 5 saves; F32/BF16 weights, FP8 E4M3 with UE8M0 .scale per 128x128 block, FP4
experts (I8, two E2M1 per byte) with F8_E8M0 .scale per 32, dequantized once (activations not quantized).
--mtp runs MTP block 0 (row r predicts t_{r+2}). Dumps, per layer i
(n = hc_mult, H heads, d_h = head_dim, n_c compressed entries, K = num_experts_per_tok):
  hidden.{i}        [T, n, d]    the hc_mult residual streams after block i
  attn.{i}          [T, d]       the attention output (before hc_post)
  hc_pre.{i}, hc_post.{i} [T, n], hc_comb.{i} [T, n, n]   the attention sub-layer's mHC mixes (after Sinkhorn);
  hc_ffn_pre.{i}, hc_ffn_post.{i}, hc_ffn_comb.{i}        the MoE sub-layer's
  window_attn.{i}   [T, H, d_h]  o before the inverse RoPE (window + compressed keys)
  compressed_kv.{i} [n_c, d_h]   the compressor's entries (CSA / HCA layers)
  index_topk.{i}    I32 [T, kk]  CSA: the selected compressed entries, best first, -1 = none,
                                 kk = min(index_topk, T / 4); ties to the lower entry
  index_scores.{i}  [T, n_c]     CSA: sum_h w * ReLU(q_I . K_I), -inf where not visible
  index_margin.{i}  [T]          CSA: score of the kk-th minus the next visible entry
  topk_idx.{i}      I32 [T, K]   the experts (hash layers: tid2eid[token], in table order)
  topk_weight.{i}   [T, K]       their weights (sqrtsoftplus, normalized, x routed_scaling_factor)
Where transformers' DeepseekV4ForCausalLM (modeling_deepseek_v4.py) differs from the official inference/model.py,
dsref follows the official code; --compat hf (forward, generate, info) follows transformers:
  1. routing weights: transformers divides by (sum + 1e-20), official by the sum (hf: a zero sum gives
     weights 0, official refuses it);
  2. routed experts: transformers scales each expert's output by its weight, official scales the SwiGLU
     activation before w2 (equal in exact arithmetic; hf does the former);
  3. the compressed layers' (CSA / HCA) cos/sin: transformers multiplies them by its YaRN attention_factor,
     official never does. A nested rope_parameters.compress (yarn) without attention_factor gets
     0.1*ln(factor)+1 (1.277 at factor 16); the flat rope_scaling gets 1.0 (its config injects it). hf scales
     every rotation of those layers (q, kv, the inverse rotation of o, the compressed entries, the indexer's q
     and keys) by it; without --compat hf such a config, or an attention_factor other than 1, is refused;
  4. swiglu_limit 0: transformers still clamps (gate <= 0, up in [0, 0]), so every expert outputs 0;
     official clamps only when swiglu_limit > 0 (hf: the MoE sub-layer outputs 0);
  5. scoring_func softmax: official does not normalize softmax weights (norm_topk_prob must be false or
     absent); transformers cannot build a softmax router (ACT2FN has none): refused with --compat hf;
  6. MTP: transformers has no MTP block (it drops mtp.*): --mtp with --compat hf is refused;
  7. norm_topk_prob is read by neither (official: normalize iff not softmax; transformers: always); a nested
     partial_rotary_factor sets transformers' rope dims and must agree with qk_rope_head_dim.
Not modelled (rounding only, below float32 resolution; both modes are float32): transformers' mHC
normalizes the streams before the hc_*_fn projection (official projects, then scales by 1/rms), and it
rounds to float32 inside its float64 run (every RMSNorm, the mHC mixes, the compressor softmax, the indexer
scores, cos/sin).
Neither dsref mode, nor transformers, has the official FP8 / FP4 simulation: the window KV's non-rope dims
(FP8, 64-wide blocks), the indexer's q and compressed keys (FP4, after a Hadamard rotation, which without
the FP4 step cancels in q.k).
Measured: on data/golden/deepseek_v4_hf_compat (where difference 3 moves the logits by 3.2) --compat hf is
8.1e-6 from transformers' float64 logits; on the golden model the default is 1.2e-5 from the official float64
model and --compat hf 8.3e-6 from transformers.
)";

static const char* kForwardHelp = R"(
Writes to OUT (safetensors, F32 unless marked):
  logits      [T, vocab]   (with --last-only: [1, vocab], the last row)
  mtp_logits  [T-1, vocab] with --mtp only (V3 multi-token prediction, V3 report §2.2): row i predicts t_{i+2}.
              h_i = the main model's final hidden state AFTER model.norm (the V3 report leaves
              before/after open; this follows vLLM), then, with L = num_hidden_layers:
                x_i = eh_proj · [enorm(Emb(t_{i+1})) ; hnorm(h_i)]   (embedding first, as vLLM)
                decoder layer L (MLA + MoE when the model has routed experts) over
                x_0..x_{T-2}, causal, positions 0..T-2
                mtp_logits = shared_head.head · RMSNorm(.; shared_head.norm)
              Emb / head are layer L's embed_tokens / shared_head.* when stored, else the main
              ones. vLLM also zeroes Emb at position 0; dsref does not. Only the first MTP module
              runs (all T-1 rows, also with --last-only). Without --mtp layer L is never read
              (it may be absent from the checkpoint).
With --dump (no value), for every decoder layer i (0-based):
  hidden.{i}  [T, hidden]  the residual stream after decoder layer i
  attn.{i}    [T, hidden]  the attention block output, before the residual add
and for DeepSeek-V2/V3 (MLA), with H heads, d_n = qk_nope_head_dim, d_r = qk_rope_head_dim,
d_c = kv_lora_rank (the same values on both --attn paths):
  q_nope.{i}     [T, H, d_n]  query, no-RoPE part
  q_pe.{i}       [T, H, d_r]  query rope part, after RoPE
  kv_latent.{i}  [T, d_c]     latent after kv_a_layernorm (what --attn absorb caches)
  k_pe.{i}       [T, d_r]     rope key shared by all heads, after RoPE (cached too)
q_pe and k_pe are in checkpoint order: RoPE pairs adjacent dims (2j, 2j+1), as the official code
does. HF transformers de-interleaves them first ([x0,x2,..,x1,x3,..], rotate_half), so its q_pe/k_pe
dumps are a permutation of these; attention scores and outputs are identical (ref/core/rope.h).
and for DeepSeek-V3.2 (DSA), with n_I = index_n_heads, d_I = index_head_dim, S = T (a prefill),
kk = min(index_topk, S) (ref/model/dsa_indexer.h):
  index_q.{i}        [T, n_I, d_I]  indexer query, [rope | nope] per head, after half-split RoPE
  index_k.{i}        [T, d_I]       indexer key after k_norm (LayerNorm) and half-split RoPE (cached)
  index_weights.{i}  [T, n_I]       weights_proj(x) · n_I^-1/2
  index_scores.{i}   [T, S]         I[t, s] = sum_h w·ReLU(q·k)·d_I^-1/2, -inf above the diagonal
  index_topk.{i}     I32 [T, kk]    the positions MLA attends to, by score, ties to the lower
                                    position, -1 where fewer than kk are visible
  index_margin.{i}   [T]            I of the kk-th minus I of the next candidate (+inf: none left out)
--indexer exact (default) is that math in float32; --indexer fp8 adds the official deployment
path's rounding points: index_q/index_k rotated by the Walsh-Hadamard transform (scale d_I^-1/2),
then quantized to E4M3 in 1x128 groups (act_quant, the config's scale_fmt) and dequantized; the
key cache holds the quantized keys; scores from those values in fp32 with a double head sum.
and for each DeepSeekMoE layer i (i >= first_k_dense_replace, i % moe_layer_freq == 0):
  topk_idx.{i}     I32 [T, k]  the chosen experts (k = num_experts_per_tok), sorted descending by
                               the selection score after group masking (s + e_score_correction_bias
                               for noaux_tc, s otherwise), ties to the lower expert id
  topk_weight.{i}  [T, k]      the combine weights in the same order, after normalization/scaling
With --mtp, the MTP layer's intermediates appear under i = L (T-1 rows): attn.{L}, hidden.{L}
(its residual stream before shared_head.norm), topk_idx.{L}, topk_weight.{L}, q_nope.{L}, ...
--dump-only NAME,... keeps only the named intermediates (implies --dump).
)";

void add_forward(CLI::App& app) {
    struct Opts {
        std::string model, tokens, out, dump_only, attn, emulate = "none", indexer, text, prompt_file,
            tokenizer, compat;
        bool dump = false, last_only = false, mtp = false, progress = false, allow_nonfinite = false;
        int threads = 0;
        int64_t repeat = 1;
    };
    auto o = std::make_shared<Opts>();
    CLI::App* cmd = app.add_subcommand("forward", "full causal prefill: logits and named intermediates");
    cmd->footer(std::string(kForwardHelp) + emulation_help() + kV4Differences);
    cmd->add_option("--model", o->model, "model directory: config.json + safetensors")->required();
    auto* tk = cmd->add_option("--tokens", o->tokens, "token ids, comma-separated");
    auto* tx = cmd->add_option("--text", o->text, "the input as text (tokenized with the tokenizer.json)");
    auto* pf = cmd->add_option("--prompt-file", o->prompt_file, "the input as a UTF-8 text file");
    tk->excludes(tx)->excludes(pf);
    tx->excludes(pf);
    cmd->add_option("--tokenizer", o->tokenizer, "tokenizer.json or a directory holding one (default: the model directory)");
    cmd->add_option("--out", o->out, "output safetensors file")->required();
    cmd->add_flag("--dump", o->dump, "also write the named intermediates");
    cmd->add_option("--dump-only", o->dump_only, "comma-separated names of the intermediates to write");
    cmd->add_flag("--last-only", o->last_only, "write only the last row of logits");
    cmd->add_option("--attn", o->attn, "MLA path for V2/V3: naive | absorb (default absorb)");
    cmd->add_option("--indexer", o->indexer, "DSA indexer precision for V3.2: exact | fp8 (default exact; see below)");
    cmd->add_flag("--mtp", o->mtp,
                  "also write mtp_logits [T-1, vocab] from the MTP layer (V3; needs num_nextn_predict_layers >= 1 "
                  "and T >= 2)");
    cmd->add_option("--emulate", o->emulate,
                    "reproduce a reference's rounding: none (default, float32) | hf-bf16 | official-bf16 | "
                    "official-fp8 (see below)");
    cmd->add_option("--compat", o->compat,
                    "DeepSeek-V4: where the official code and transformers differ, follow official (default) | hf "
                    "(transformers' DeepseekV4ForCausalLM; the list is below)");
    cmd->add_flag("--progress", o->progress,
                  "a progress line on stderr (layer i/L, experts loaded, GB read, elapsed, ETA); on by default "
                  "when stderr is a terminal");
    cmd->add_flag("--allow-nonfinite", o->allow_nonfinite,
                  "a NaN/Inf activation is a warning, not an error (the first trace point holding one is named)");
    cmd->add_option("--repeat", o->repeat,
                    "time the prefill N times with the weights loaded once and kept in memory; prints "
                    "'prefill median X ms over N runs (load Y ms)' on stderr (the logits of the last run are written)")
        ->check(CLI::PositiveNumber);
    add_threads_option(cmd, &o->threads);
    cmd->callback([o]() {
        apply_threads(o->threads);
        check_output_path(o->out, "--out");
        std::vector<int32_t> tokens;
        if (!o->text.empty() || !o->prompt_file.empty()) {
            auto tok = text::Tokenizer::load(o->tokenizer.empty() ? o->model : o->tokenizer);
            const std::string t = o->prompt_file.empty() ? o->text : read_text_file(o->prompt_file);
            try {
                tokens = tok->encode(t);
            } catch (const Error& e) {
                fail(o->prompt_file.empty() ? std::string("--text") : o->prompt_file, ": ", e.what());
            }
            if (tokens.empty()) usage_fail("forward: the text has no tokens");
        } else {
            if (o->tokens.empty()) usage_fail("forward: give --tokens, --text or --prompt-file");
            tokens = parse_tokens(o->tokens);
        }
        const bool v4 = path_is_v4_config(o->model);
        check_compat(o->compat, v4);
        if (v4) {  // DeepSeek-V4: model/v4_model.h (cmd_v4.cpp)
            if (o->emulate != "none") usage_fail("--emulate ", o->emulate, ": not modelled for deepseek_v4 (float32 only)");
            if (!o->indexer.empty() && o->indexer != "exact")
                usage_fail("--indexer ", o->indexer, ": deepseek_v4's CSA indexer is exact only");
            if (!o->attn.empty()) usage_fail("--attn ", o->attn, ": deepseek_v4 has no MLA paths");
            if (o->mtp && tokens.size() < 2) usage_fail("--mtp: multi-token prediction needs at least 2 tokens");
            if (o->repeat > 1) usage_fail("--repeat: the prefill timing runs the V2/V3 model only");
            v4_forward(o->model, tokens, o->out, o->dump, o->dump_only, o->last_only, o->mtp, o->compat);
            return;
        }
        ModelOptions mo;
        mo.fwd.attn = mla_path_from_name(o->attn.empty() ? "absorb" : o->attn);
        mo.fwd.finite = std::make_shared<FiniteGuard>(o->allow_nonfinite);
        mo.fwd.indexer = indexer_mode_from_name(o->indexer.empty() ? "exact" : o->indexer);
        mo.progress = o->progress || ::isatty(2);
        mo.fwd.precision.mode = emulation_from_name(o->emulate);
        if (o->mtp && !mo.fwd.precision.none())
            usage_fail("--mtp with --emulate: neither emulated reference runs the MTP module");
        if (o->mtp && tokens.size() < 2)
            usage_fail("--mtp: multi-token prediction needs at least 2 tokens (row i predicts t_{i+2}), got ",
                       tokens.size());
        if (o->repeat > 1 && (o->mtp || o->dump || !o->dump_only.empty()))
            usage_fail("--repeat times the plain prefill: it does not combine with --mtp, --dump or --dump-only");
        if (o->repeat > 1) {
            mo.keep_weights = true;  // the load is timed apart from the prefills
            mo.progress = o->progress;
        }
        const auto t_load = std::chrono::steady_clock::now();
        Model model(o->model, mo);
        // An option that does not apply to this architecture is refused, not ignored.
        if (!o->attn.empty() && !model.config().is_mla())
            usage_fail("--attn: ", arch_name(model.config().arch), " has no MLA (only DeepSeek-V2/V3 have the naive/absorb paths)");
        if (!o->indexer.empty() && !model.config().has_indexer())
            usage_fail("--indexer: ", arch_name(model.config().arch), " has no DSA indexer (DeepSeek-V3.2 only)");
        const double load_ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t_load).count();
        std::unique_ptr<Mtp> mtp;  // checks the MTP module's tensors before any compute
        if (o->mtp) mtp = std::make_unique<Mtp>(model);
        std::set<std::string> only;
        if (!o->dump_only.empty()) {
            std::stringstream ss(o->dump_only);
            for (std::string n; std::getline(ss, n, ',');)
                if (!n.empty()) only.insert(n);
        }
        const bool dumping = o->dump || !only.empty();
        Trace trace(only);
        Trace* tr = dumping ? &trace : nullptr;
        std::vector<float> logits, mtp_logits;
        if (mtp) {
            Mtp::Output r = mtp->forward(tokens, tr, o->last_only);
            logits = std::move(r.logits);
            mtp_logits = std::move(r.mtp_logits);
        } else if (o->repeat > 1) {
            std::vector<double> ms;  // each run's wall time
            for (int64_t r = 0; r < o->repeat; r++) {
                const auto t0 = std::chrono::steady_clock::now();
                logits = model.prefill(tokens, nullptr, o->last_only);
                ms.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
            }
            std::sort(ms.begin(), ms.end());
            const size_t n = ms.size();
            const double median = n % 2 ? ms[n / 2] : 0.5 * (ms[n / 2 - 1] + ms[n / 2]);
            std::fprintf(stderr, "prefill median %.3f ms over %lld runs (load %.3f ms)\n", median, (long long)n, load_ms);
        } else {
            logits = model.prefill(tokens, tr, o->last_only);
        }
        TensorMap out = dumping ? trace.tensors() : TensorMap{};
        for (const std::string& n : only)
            if (!out.count(n)) usage_fail("--dump-only: this model has no intermediate named '", n, "'");
        const int64_t rows = o->last_only ? 1 : (int64_t)tokens.size();
        out["logits"] = Tensor::from_f32({rows, model.config().vocab_size}, logits);
        if (o->mtp)
            out["mtp_logits"] = Tensor::from_f32({(int64_t)tokens.size() - 1, model.config().vocab_size}, mtp_logits);
        write_safetensors(o->out, out);
        std::cerr << "dsref forward: " << tokens.size() << " tokens, wrote " << out.size() << " tensors to " << o->out
                  << "\n";
    });
}

}  // namespace dsref::cli
