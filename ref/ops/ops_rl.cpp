// ops_rl.cpp — the RL ops of the oracle interface: grpo_loss, dpo_loss, reward (the math is in
// rl/grpo.h, rl/advantages.h, rl/logprob.h, rl/dpo.h and rl/rewards.h).
//
// Inputs may be any float dtype (float32 expected) and are computed in double; outputs are F32, and
// scalars are rank-0 F32. Every listed input and attribute is accepted in every case and ignored where
// it does not apply (e.g. temperature without logits, script for kind=accuracy).
#include <cmath>
#include <limits>

#include "rl/advantages.h"
#include "rl/dpo.h"
#include "core/error.h"
#include "rl/grpo.h"
#include "rl/logprob.h"
#include "ops/op_registry.h"
#include "rl/rewards.h"

namespace dsref {
namespace {

std::vector<double> float_input(const TensorMap& in, const std::string& op, const std::string& name,
                                const Shape& shape) {
    const Tensor& t = op_input(in, op, name);
    if (!dtype_is_float(t.dtype))
        fail("op ", op, ": input '", name, "' must be a float tensor, got ", dtype_name(t.dtype));
    if (t.shape != shape)
        fail("op ", op, ": input '", name, "' must have shape ", shape_str(shape), ", got ", shape_str(t.shape));
    return t.to_f64();
}

// mask: F32 (or any float) 0/1, U8, BOOL, I32 (any integer dtype); absent = all ones.
std::vector<double> mask_input(const TensorMap& in, const std::string& op, int64_t B, int64_t T) {
    const Tensor* t = op_optional(in, "mask");
    if (!t) return std::vector<double>(B * T, 1.0);
    if (t->shape != Shape{B, T})
        fail("op ", op, ": input 'mask' must have shape ", shape_str({B, T}), ", got ", shape_str(t->shape));
    std::vector<double> m = t->to_f64();
    for (int64_t k = 0; k < B * T; k++)
        if (m[k] != 0.0 && m[k] != 1.0)
            fail("op ", op, ": input 'mask' has value ", m[k], " at [", k / T, ", ", k % T, "]; it must be 0 or 1");
    return m;
}

double finite_attr(const OpAttrs& a, const std::string& k, double def) {
    const double v = a.f64(k, def);
    if (!std::isfinite(v)) usage_fail("attribute ", k, "=", v, " must be finite");
    return v;
}

// "none" (or absent) means unset.
std::optional<double> optional_attr(const OpAttrs& a, const std::string& k) {
    if (!a.has(k) || a.str(k, "") == "none") return std::nullopt;
    return finite_attr(a, k, 0.0);
}

Tensor f32_tensor(const Shape& shape, const std::vector<double>& v) {
    std::vector<float> f(v.begin(), v.end());
    return Tensor::from_f32(shape, f);
}

Tensor f32_scalar(double v) { return Tensor::scalar((float)v); }

const char* const kGrpoHelp =
    "inputs:\n"
    "  logps       F32 [B, T]     policy log-probs of the sampled tokens, or instead:\n"
    "  logits      F32 [B, T, V]  with tokens I32 [B, T]: logps = log_softmax(logits / temperature)[tokens]\n"
    "  old_logps   F32 [B, T]     optional; absent = on-policy (ratio 1, the gradient still flows)\n"
    "  ref_logps   F32 [B, T]     reference log-probs; required when beta > 0\n"
    "  rewards     F32 [B]        one per completion, groups of group_size consecutive rows; NaN = unscorable\n"
    "  mask        [B, T]         F32 0/1 (U8, BOOL, I32 accepted); absent = all ones\n"
    "attributes:\n"
    "  group_size (B)  loss_type (grpo|bnpo|dr_grpo|dapo|seq-mean-token-sum|seq-mean-token-sum-norm)\n"
    "  epsilon (0.2)  epsilon_high (= epsilon)  delta (none)  beta (0.04)  scale_rewards (group|batch|none)\n"
    "  adv_epsilon (1e-4)  max_completion_length (T)  loss_scale_factor (max_completion_length)\n"
    "  importance_sampling_level (token|sequence)  temperature (1.0, logits only)\n"
    "outputs:\n"
    "  loss []  advantages [B]  per_token_loss [B, T]  grad_logps [B, T]  grad_logits [B, T, V] (with logits)\n"
    "  logps [B, T] (with logits)  clip_ratio_low []  clip_ratio_high []  clip_ratio_region []  kl []\n"
    "One micro-batch, one process, no gradient accumulation: dapo then equals bnpo.\n";

TensorMap run_grpo_loss(const TensorMap& in, const OpAttrs& a) {
    const std::string op = "grpo_loss";
    const Tensor* logps_t = op_optional(in, "logps");
    const Tensor* logits_t = op_optional(in, "logits");
    if ((logps_t != nullptr) == (logits_t != nullptr))
        fail("op grpo_loss: give exactly one of the inputs 'logps' [B, T] or 'logits' [B, T, V] (with 'tokens')");
    const Tensor& shape_src = logps_t ? *logps_t : *logits_t;
    if (shape_src.rank() != (logps_t ? 2 : 3))
        fail("op grpo_loss: input '", logps_t ? "logps" : "logits", "' must have rank ", logps_t ? 2 : 3, ", got shape ",
             shape_str(shape_src.shape));
    const int64_t B = shape_src.shape[0], T = shape_src.shape[1];
    if (B < 1 || T < 1) fail("op grpo_loss: need B >= 1 and T >= 1, got shape ", shape_str(shape_src.shape));

    // ---- attributes ----
    GrpoConfig cfg;
    cfg.loss_type = loss_type_from_name(a.str("loss_type", "grpo"));
    cfg.epsilon = finite_attr(a, "epsilon", 0.2);
    cfg.epsilon_high = optional_attr(a, "epsilon_high");
    cfg.delta = optional_attr(a, "delta");
    cfg.beta = finite_attr(a, "beta", 0.04);
    cfg.is_level = a.choice("importance_sampling_level", "token", {"token", "sequence"}) == "token"
                       ? IsLevel::Token : IsLevel::Sequence;
    cfg.max_completion_length = a.i64("max_completion_length", T);
    if (cfg.max_completion_length < 1)
        usage_fail("attribute max_completion_length=", cfg.max_completion_length, " must be >= 1");
    cfg.loss_scale_factor = finite_attr(a, "loss_scale_factor", (double)cfg.max_completion_length);
    if (cfg.loss_scale_factor <= 0.0) usage_fail("attribute loss_scale_factor=", cfg.loss_scale_factor, " must be > 0");
    grpo_check_config(cfg);
    AdvantageConfig acfg;
    acfg.group_size = a.i64("group_size", B);
    if (acfg.group_size < 1) usage_fail("attribute group_size=", acfg.group_size, " must be >= 1");
    const std::string scale = a.choice("scale_rewards", "group", {"group", "batch", "none", "true", "false"});
    acfg.scale = (scale == "group" || scale == "true") ? RewardScale::Group
               : scale == "batch"                      ? RewardScale::Batch : RewardScale::None;
    acfg.epsilon = finite_attr(a, "adv_epsilon", 1e-4);
    const double temperature = finite_attr(a, "temperature", 1.0);
    if (temperature <= 0.0) usage_fail("attribute temperature=", temperature, " must be > 0");

    // ---- inputs ----
    const std::vector<double> mask = mask_input(in, op, B, T);
    std::vector<double> logps;
    std::vector<float> logits;
    std::vector<int32_t> tokens;
    int64_t V = 0;
    if (logps_t) {
        logps = float_input(in, op, "logps", {B, T});
    } else {
        if (!dtype_is_float(logits_t->dtype))
            fail("op grpo_loss: input 'logits' must be a float tensor, got ", dtype_name(logits_t->dtype));
        V = logits_t->shape[2];
        logits = logits_t->to_f32();
        const Tensor& tok = op_input(in, op, "tokens");
        if (dtype_is_float(tok.dtype) || tok.dtype == DType::BOOL)
            fail("op grpo_loss: input 'tokens' must be an integer tensor (I32), got ", dtype_name(tok.dtype));
        if (tok.shape != Shape{B, T})
            fail("op grpo_loss: input 'tokens' must have shape ", shape_str({B, T}), ", got ", shape_str(tok.shape));
        for (int64_t id : tok.to_i64())  // ids outside int32 become -1, refused later if the position is active
            tokens.push_back(id >= 0 && id <= std::numeric_limits<int32_t>::max() ? (int32_t)id : -1);
        logprobs_forward(logps, logits.data(), tokens.data(), mask, B, T, V, temperature);
    }
    const std::vector<double> old_logps =
        op_optional(in, "old_logps") ? float_input(in, op, "old_logps", {B, T}) : std::vector<double>();
    const std::vector<double> ref_logps =
        op_optional(in, "ref_logps") ? float_input(in, op, "ref_logps", {B, T}) : std::vector<double>();
    if (cfg.beta > 0.0 && ref_logps.empty())
        fail("op grpo_loss: beta=", cfg.beta, " > 0 needs the input 'ref_logps' (or set beta=0)");
    const std::vector<double> rewards = float_input(in, op, "rewards", {B});

    // ---- advantages, loss, backward ----
    const std::vector<double> adv = group_advantages(rewards, acfg);  // [B]
    std::vector<double> adv_tokens(B * T);                           // [B, T] A_i broadcast over its row
    for (int64_t i = 0; i < B; i++)
        for (int64_t t = 0; t < T; t++) adv_tokens[i * T + t] = adv[i];
    const GrpoResult res = grpo_loss(logps, old_logps, ref_logps, adv_tokens, mask, B, T, cfg);

    TensorMap out;
    out["loss"] = f32_scalar(res.loss);
    out["advantages"] = f32_tensor({B}, adv);
    out["per_token_loss"] = f32_tensor({B, T}, res.per_token_loss);
    out["grad_logps"] = f32_tensor({B, T}, res.grad_logps);
    out["clip_ratio_low"] = f32_scalar(res.clip_ratio_low);
    out["clip_ratio_high"] = f32_scalar(res.clip_ratio_high);
    out["clip_ratio_region"] = f32_scalar(res.clip_ratio_region);
    out["kl"] = f32_scalar(res.kl);
    if (logits_t) {
        std::vector<double> grad_logits;
        logprobs_backward(grad_logits, res.grad_logps, logits.data(), tokens.data(), mask, B, T, V, temperature);
        out["grad_logits"] = f32_tensor({B, T, V}, grad_logits);
        out["logps"] = f32_tensor({B, T}, logps);
    }
    return out;
}

TensorMap run_dpo_loss(const TensorMap& in, const OpAttrs& a) {
    const std::string op = "dpo_loss";
    const Tensor& pc = op_input(in, op, "policy_chosen_logps");
    if (pc.rank() != 1) fail("op dpo_loss: input 'policy_chosen_logps' must have shape [N], got ", shape_str(pc.shape));
    const Shape shape = pc.shape;
    const double beta = finite_attr(a, "beta", 0.1);
    const double label_smoothing = finite_attr(a, "label_smoothing", 0.0);
    const DpoResult r = dpo_loss(float_input(in, op, "policy_chosen_logps", shape),
                                 float_input(in, op, "policy_rejected_logps", shape),
                                 float_input(in, op, "ref_chosen_logps", shape),
                                 float_input(in, op, "ref_rejected_logps", shape), beta, label_smoothing);
    TensorMap out;
    out["loss"] = f32_scalar(r.loss);
    out["grad_policy_chosen_logps"] = f32_tensor(shape, r.grad_chosen);
    out["grad_policy_rejected_logps"] = f32_tensor(shape, r.grad_rejected);
    out["chosen_rewards"] = f32_tensor(shape, r.chosen_rewards);
    out["rejected_rewards"] = f32_tensor(shape, r.rejected_rewards);
    out["reward_accuracy"] = f32_scalar(r.reward_accuracy);
    out["reward_margin"] = f32_scalar(r.reward_margin);
    return out;
}

std::string text_input(const TensorMap& in, const std::string& name) {
    const Tensor& t = op_input(in, "reward", name);
    if (t.dtype != DType::U8) fail("op reward: input '", name, "' must be a U8 tensor of UTF-8 bytes, got ", dtype_name(t.dtype));
    return std::string(t.bytes.begin(), t.bytes.end());
}

TensorMap run_reward(const TensorMap& in, const OpAttrs& a) {
    const std::string kind = a.choice("kind", "accuracy", {"accuracy", "format_r1", "think_format", "tag_count", "language"});
    const Script script = script_from_name(a.str("script", "latin"));
    const std::string text = text_input(in, "text");
    double r = 0.0;
    if (kind == "accuracy") r = accuracy_reward(text, text_input(in, "truth"));
    else if (kind == "format_r1") r = format_r1_reward(text);
    else if (kind == "think_format") r = think_format_reward(text);
    else if (kind == "tag_count") r = tag_count_reward(text);
    else r = language_reward(text, script);
    return TensorMap{{"reward", f32_scalar(r)}};
}

const bool registered_grpo = register_op({
    "grpo_loss", "GRPO loss, advantages, metrics and analytic gradients (TRL/verl/DeepSeekMath variants)",
    kGrpoHelp,
    {"group_size", "loss_type", "epsilon", "epsilon_high", "delta", "beta", "scale_rewards", "adv_epsilon",
     "max_completion_length", "loss_scale_factor", "importance_sampling_level", "temperature"},
    run_grpo_loss});

const bool registered_dpo = register_op({
    "dpo_loss", "DPO sigmoid loss (cDPO label smoothing), gradients and implicit rewards",
    "inputs:  policy_chosen_logps, policy_rejected_logps, ref_chosen_logps, ref_rejected_logps  F32 [N]\n"
    "         (sequence log-probs: sums over completion tokens)\n"
    "attributes: beta (0.1)  label_smoothing (0)\n"
    "outputs: loss [] (mean over pairs)  grad_policy_chosen_logps [N]  grad_policy_rejected_logps [N]\n"
    "         chosen_rewards [N]  rejected_rewards [N]  reward_accuracy []  reward_margin []\n",
    {"beta", "label_smoothing"},
    run_dpo_loss});

const bool registered_reward = register_op({
    "reward", "R1 rule-based rewards: accuracy, format_r1, think_format, tag_count, language",
    "inputs:  text U8 [n] (UTF-8 bytes)  truth U8 [m] (kind=accuracy)\n"
    "attributes: kind (accuracy|format_r1|think_format|tag_count|language)\n"
    "            script (latin|greek|cyrillic|hebrew|arabic|devanagari|thai|hangul|kana|han; kind=language)\n"
    "outputs: reward [] F32\n",
    {"kind", "script"},
    run_reward});

}  // namespace
}  // namespace dsref
