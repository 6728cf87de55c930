// cmd_v4.cpp — `dsref forward` and `dsref generate` on a DeepSeek-V4 model directory (model/v4_model.h);
// cmd_forward.cpp and cmd_generate.cpp hand a deepseek_v4 config over to these.
#include <iostream>
#include <set>
#include <sstream>

#include "cli.h"
#include "core/error.h"
#include "io/safetensors.h"
#include "model/v4_model.h"

namespace dsref::cli {

void check_compat(const std::string& compat, bool is_v4) {
    if (!compat.empty() && compat != "official" && compat != "hf")
        usage_fail("--compat '", compat, "': expected official or hf");
    if (!is_v4 && compat == "hf")
        usage_fail("--compat hf: only deepseek_v4 has it (DeepSeek-V2/V3 reproduce transformers' bf16 run with "
                   "--emulate hf-bf16)");
}

static V4Compat compat_of(const std::string& s) { return s == "hf" ? V4Compat::Hf : V4Compat::Official; }

void v4_forward(const std::string& model, const std::vector<int32_t>& tokens, const std::string& out, bool dump,
                const std::string& dump_only, bool last_only, bool mtp, const std::string& compat) {
    if (mtp && compat == "hf")
        usage_fail("--mtp with --compat hf: transformers' DeepseekV4ForCausalLM has no MTP block (it drops the "
                   "mtp.* tensors)");
    V4Model m(model, compat_of(compat));
    const V4Config& c = m.config();
    if (mtp && c.num_nextn_predict_layers < 1)
        fail(c.source, ": field 'num_nextn_predict_layers' is 0; --mtp needs an MTP block");
    std::set<std::string> only;
    std::stringstream ss(dump_only);
    for (std::string n; std::getline(ss, n, ',');)
        if (!n.empty()) only.insert(n);
    const bool dumping = dump || !only.empty();
    Trace trace(only);
    Trace* tr = dumping ? &trace : nullptr;
    V4Cache cache;
    std::vector<float> hidden;
    std::vector<float> logits = m.forward(tokens, cache, tr, &hidden);
    std::vector<float> mtp_logits;
    if (mtp) mtp_logits = m.mtp_forward(hidden, tokens, 0, tr);
    TensorMap o = dumping ? trace.tensors() : TensorMap{};
    for (const std::string& n : only)
        if (!o.count(n)) usage_fail("--dump-only: this model has no intermediate named '", n, "'");
    const int64_t T = (int64_t)tokens.size(), V = c.vocab_size;
    if (last_only) logits.erase(logits.begin(), logits.end() - V);
    o["logits"] = Tensor::from_f32({last_only ? 1 : T, V}, logits);
    if (mtp) o["mtp_logits"] = Tensor::from_f32({T - 1, V}, mtp_logits);
    write_safetensors(out, o);
    std::cerr << "dsref forward: deepseek_v4 (--compat " << v4_compat_name(c.compat) << "), " << T
              << " tokens, wrote " << o.size() << " tensors to " << out << " (cache " << cache.bytes() << " bytes)\n";
}

std::vector<float> v4_generate_cmd(const std::string& model, const std::vector<int32_t>& prompt, int64_t max_new,
                                   double temperature, double top_p, uint64_t seed, bool stop_at_eos,
                                   std::vector<int32_t>& tokens_out, int64_t& vocab, const std::string& compat) {
    V4Model m(model, compat_of(compat));
    vocab = m.config().vocab_size;
    for (size_t i = 0; i < prompt.size(); i++)
        if (prompt[i] < 0 || prompt[i] >= vocab)
            fail("prompt token ", prompt[i], " at position ", i, " is outside the model's vocab_size ", vocab);
    SamplingParams sp{temperature, top_p, seed};
    GenerateResult r = v4_generate(m, prompt, max_new, sp, stop_at_eos);
    tokens_out = r.tokens;
    return r.logits;
}

}  // namespace dsref::cli
