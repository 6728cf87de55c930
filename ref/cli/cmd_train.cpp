// cmd_train.cpp — `dsref train`: train a DeepSeek-V3- or V2-shaped checkpoint on the CPU with the
// hand-written backward passes of ref/train/ (tiny_v3_step), AdamW (train/adamw.h) and the V3 recipe's
// aux-loss-free bias update (moe/moe_balance.h, aux_free_bias_update; V3 report §2.1.2) and
// sequence-wise balance loss (--aux-alpha).
//
// deepseek_v2 configs (V2 report §2.1–2.2: MLA, with q_proj when q_lora_rank is null as in V2-Lite, and
// DeepSeekMoE with softmax gating, greedy or group_limited_greedy routing and no selection bias) train
// with V2's balance losses (V2 report §2.2.3; train/moe_backward.h): --aux-alpha is the expert-level α1
// (the sequence-wise loss on softmax affinities), --aux-device-alpha α2 the device-level and
// --aux-comm-alpha α3 the communication loss, over D = n_group devices with the device limit
// M = topk_group. The two V2 losses need softmax scoring and n_group >= 2; --bias-gamma and
// --mtp-lambda are refused on V2 (no e_score_correction_bias, no MTP module), and the checkpoint keeps
// the V2 layout and model_type.
//
// Batching is deterministic: step k (0-based), row b starts at o = ((k·B + b)·S) mod (N − S − 1);
// inputs ids[o .. o+S−1], targets ids[o+1 .. o+S]. Loss = mean cross-entropy over the B·S targets
// + λ · the MTP loss + the weighted balance losses (mean over the B sequences; the CSV's aux). The log
// has one row per step k with the loss computed before step k's update (and max_load_ratio: the largest
// max/mean expert load of the step's batch over the MoE layers, 1 = balanced). With --mtp-lambda λ > 0 (a config with
// num_nextn_predict_layers = 1) the loss adds λ · the MTP module's cross-entropy (V3 report §2.2,
// eq. 25; train/mtp_backward.h), logged as mtp (unweighted), and the MTP layer's router gets the bias
// update and the balance loss like every MoE layer. The B rows of a step run in parallel, each into its
// own gradient buffer, summed in row order (train/tiny_v3.h: tiny_v3_batch), so the result is
// bit-identical at any --threads. The output directory is an HF checkpoint (config.json +
// model.safetensors, float32) that `dsref forward` loads; tensors the trainer does not model (the MTP
// layer) are copied through unchanged. With --tokenizer the data is text, encoded as `dsref tokenize`
// does, and the tokenizer.json is copied into the checkpoint (so `dsref generate --text` finds it).
// --eval-data: the mean cross-entropy over the eval file's non-overlapping windows of S tokens, at
// steps 0, K, 2K, ... (--eval-every K, before that step's update) and after the last step, in
// LOG.eval.csv (step,eval_loss) and on LOG.svg. --resume continues a run bit-identically: the
// checkpoint also holds trainer_state.json (steps done, the log so far, the options that decide the
// result, which must match) and optimizer.safetensors (the AdamW moments). SIGINT stops after the
// current step and saves such a checkpoint to OUT_DIR.
//
// --dtype bf16 is mixed-precision training as bf16 trainers hold it: the optimizer keeps float32 master
// weights (and float32 moments); every step's forward and backward use the weights rounded to bf16
// (round to nearest even; the router bias e_score_correction_bias stays float32, as in V3's
// checkpoints), and the gradient with respect to those is applied to the master weights. Activations and
// gradients stay float32: it is the rounding of the weights that is modelled, not bf16 arithmetic. The
// checkpoint's model.safetensors then holds the bf16 weights (torch_dtype bfloat16), exactly the ones the
// run computed with, and optimizer.safetensors the master weights too (master.NAME), so --resume stays
// bit-identical.
#include <sys/stat.h>

#include <chrono>
#include <csignal>
#include <memory>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "cli.h"
#include "core/error.h"
#include "core/tensor.h"
#include "io/config.h"
#include "io/safetensors.h"
#include "model/mla.h"
#include "moe/moe_balance.h"
#include "text/tokenizer.h"
#include "train/adamw.h"
#include "train/tiny_v3.h"

namespace dsref::cli {

namespace {

struct TrainOpts {
    std::string model, data, out, log, schedule = "constant", tokenizer, eval_data, resume, dump_grads;
    std::string dtype = "f32";  // f32 | bf16 (the weights the forward and backward see)
    int64_t steps = 100, batch = 4, seq_len = 64, warmup = 0, eval_every = 0, save_every = 0;
    double lr = 1e-3, min_lr_frac = 0.1, weight_decay = 0.1, beta1 = 0.9, beta2 = 0.95, eps = 1e-8, clip = 1.0;
    double mtp_lambda = 0.0, bias_gamma = 0.0, aux_alpha = 0.0, aux_device_alpha = 0.0, aux_comm_alpha = 0.0;
    int threads = 0;
};

TinyV3Config tiny_config_from(const ModelConfig& c) {
    if (c.arch != Arch::DeepseekV3 && c.arch != Arch::DeepseekV2)
        fail(c.source, ": dsref train supports model_type deepseek_v3 and deepseek_v2 only");
    if (c.arch == Arch::DeepseekV2 && c.num_nextn_predict_layers != 0)
        fail(c.source, ": num_nextn_predict_layers = ", c.num_nextn_predict_layers,
             " on a deepseek_v2 config: DeepSeek-V2 has no MTP module (it is V3's, V3 report §2.2)");
    if (!c.has_moe()) fail(c.source, ": dsref train needs a MoE config (n_routed_experts > 0)");
    if (c.moe_layer_freq != 1) fail(c.source, ": moe_layer_freq = ", c.moe_layer_freq, " is not supported by dsref train");
    TinyV3Config t;
    t.V = c.vocab_size;
    t.d = c.hidden_size;
    t.L = c.num_hidden_layers;
    t.first_dense = c.first_k_dense_replace;
    t.I_dense = c.intermediate_size;
    t.I_moe = c.moe_intermediate_size;
    t.n_shared = c.n_shared_experts;
    t.eps = c.rms_norm_eps;
    t.tie = c.tie_word_embeddings;
    t.n_mtp = c.num_nextn_predict_layers;
    const MlaDims m = mla_dims(c);
    t.mla.d = m.d;
    t.mla.H = m.H;
    t.mla.d_q = m.d_q;
    t.mla.d_c = m.d_c;
    t.mla.d_n = m.d_n;
    t.mla.d_r = m.d_r;
    t.mla.d_v = m.d_v;
    t.mla.scale = mla_softmax_scale(m);
    t.mla.inv_freq = rope_inv_freq(m.d_r, m.rope_theta, m.rope_scaling);
    t.mla.layout = RopeLayout::Interleaved;
    t.gate.E = c.n_routed_experts;
    t.gate.K = c.num_experts_per_tok;
    t.gate.n_group = c.n_group;
    t.gate.topk_group = c.topk_group;
    t.gate.scoring = c.scoring_func;
    t.gate.topk_method = c.topk_method;
    t.gate.norm_topk_prob = c.norm_topk_prob;
    t.gate.routed_scaling_factor = c.routed_scaling_factor;
    return t;
}

std::vector<int32_t> check_ids(std::vector<int32_t> ids, const std::string& path, int64_t V, int64_t S) {
    const int64_t N = (int64_t)ids.size();
    if (N < S + 2) fail(path, ": ", N, " tokens, need at least --seq-len + 2 = ", S + 2);
    for (int64_t i = 0; i < N; i++)
        if (ids[i] < 0 || (int64_t)ids[i] >= V) fail(path, ": token id ", ids[i], " at offset ", i, " is >= vocab_size ", V);
    return ids;
}

// --data / --eval-data: little-endian uint32 ids, or UTF-8 text through the tokenizer when one is given
std::vector<int32_t> read_ids(const std::string& path, text::Tokenizer* tok, int64_t V, int64_t S) {
    if (tok) {
        std::vector<int32_t> ids;
        try {
            ids = tok->encode(read_text_file(path));
        } catch (const Error& e) {
            fail(path, ": ", e.what());
        }
        return check_ids(std::move(ids), path, V, S);
    }
    std::ifstream f(path, std::ios::binary);
    if (!f) fail(path, ": cannot open the training data");
    std::vector<char> buf((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
    if (buf.size() % 4) fail(path, ": ", buf.size(), " bytes is not a whole number of uint32 token ids");
    const int64_t N = (int64_t)buf.size() / 4;
    std::vector<int32_t> ids(N);
    for (int64_t i = 0; i < N; i++) {
        const auto* b = reinterpret_cast<const unsigned char*>(buf.data() + 4 * i);
        const uint32_t v = (uint32_t)b[0] | ((uint32_t)b[1] << 8) | ((uint32_t)b[2] << 16) | ((uint32_t)b[3] << 24);
        if ((int64_t)v >= V) fail(path, ": token id ", v, " at offset ", i, " is >= vocab_size ", V);
        ids[i] = (int32_t)v;
    }
    if (N < S + 2) fail(path, ": ", N, " tokens, need at least --seq-len + 2 = ", S + 2);
    return ids;
}

std::string strip_csv(const std::string& log) {
    if (log.size() > 4 && log.substr(log.size() - 4) == ".csv") return log.substr(0, log.size() - 4);
    return log;
}

// LOG.svg: the train loss (and the eval loss, when there is one) against the step, plain SVG polylines
// with their axis labels.
void write_svg(const std::string& path, const std::vector<double>& loss,
               const std::vector<std::pair<int64_t, double>>& eval) {
    std::ofstream f(path);
    if (!f) fail(path, ": cannot write the loss plot");
    const double W = 640, H = 400, m = 50;
    double lo = loss[0], hi = loss[0];
    for (double v : loss) lo = std::min(lo, v), hi = std::max(hi, v);
    for (const auto& e : eval) lo = std::min(lo, e.second), hi = std::max(hi, e.second);
    if (hi - lo < 1e-12) hi = lo + 1;
    const double n = (double)std::max<size_t>(1, loss.size() - 1);
    auto X = [&](double step) { return m + (W - 2 * m) * step / n; };
    auto Y = [&](double v) { return (H - m) - (H - 2 * m) * (v - lo) / (hi - lo); };
    f << "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"" << W << "\" height=\"" << H << "\">\n"
      << "<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n"
      << "<line x1=\"" << m << "\" y1=\"" << H - m << "\" x2=\"" << W - m << "\" y2=\"" << H - m << "\" stroke=\"black\"/>\n"
      << "<line x1=\"" << m << "\" y1=\"" << m << "\" x2=\"" << m << "\" y2=\"" << H - m << "\" stroke=\"black\"/>\n"
      << "<text x=\"" << W / 2 << "\" y=\"" << H - 10 << "\" text-anchor=\"middle\">step (0 .. " << loss.size() - 1
      << ")</text>\n<text x=\"" << m << "\" y=\"" << m - 10 << "\">loss (" << lo << " .. " << hi
      << "): train (blue)" << (eval.empty() ? "" : ", eval (orange)") << "</text>\n"
      << "<polyline fill=\"none\" stroke=\"steelblue\" stroke-width=\"1.5\" points=\"";
    for (size_t i = 0; i < loss.size(); i++) f << X((double)i) << "," << Y(loss[i]) << " ";
    f << "\"/>\n";
    if (!eval.empty()) {
        f << "<polyline fill=\"none\" stroke=\"darkorange\" stroke-width=\"2\" points=\"";
        for (const auto& e : eval) f << X((double)e.first) << "," << Y(e.second) << " ";
        f << "\"/>\n";
    }
    f << "</svg>\n";
}

// Everything a resumed run needs besides the weights: the step reached, the AdamW moments, the log so
// far, and the options that decide the result (a resume with other values would not continue the run).
struct TrainState {
    int64_t step = 0;                                  // steps done
    std::map<std::string, AdamWState<float>> adam;     // per parameter
    std::vector<std::string> log_rows;                 // the CSV rows of the steps done
    std::vector<double> losses;                        // train loss per step done
    std::vector<std::pair<int64_t, double>> eval;      // (step, eval loss)
};

nlohmann::json run_options(const TrainOpts& o, int64_t n_tokens) {
    nlohmann::json j;
    j["steps"] = o.steps;
    j["batch"] = o.batch;
    j["seq_len"] = o.seq_len;
    j["warmup"] = o.warmup;
    j["schedule"] = o.schedule;
    j["lr"] = o.lr;
    j["min_lr_frac"] = o.min_lr_frac;
    j["weight_decay"] = o.weight_decay;
    j["beta1"] = o.beta1;
    j["beta2"] = o.beta2;
    j["eps"] = o.eps;
    j["clip"] = o.clip;
    j["mtp_lambda"] = o.mtp_lambda;
    j["bias_gamma"] = o.bias_gamma;
    j["aux_alpha"] = o.aux_alpha;
    j["aux_device_alpha"] = o.aux_device_alpha;
    j["aux_comm_alpha"] = o.aux_comm_alpha;
    j["dtype"] = o.dtype;
    j["data_tokens"] = n_tokens;
    return j;
}

// Parameters that stay float32 under --dtype bf16: the router bias (selection only; F32 in V3's checkpoints)
bool keeps_f32(const std::string& name) {
    const std::string tail = "e_score_correction_bias";
    return name.size() >= tail.size() && name.compare(name.size() - tail.size(), tail.size(), tail) == 0;
}

// The weights the forward and backward use: the master weights themselves, or (--dtype bf16) their bf16
// rounding, written into pw.
const ParamMap<float>& compute_weights(ParamMap<float>& pw, const ParamMap<float>& p, bool bf16) {
    if (!bf16) return p;
    for (const auto& [name, v] : p) {
        std::vector<float>& w = pw[name];
        w = v;
        if (!keeps_f32(name))
            for (float& x : w) x = bf16_round(x);
    }
    return pw;
}

// OUT_DIR: config.json + model.safetensors (the HF layout; float32, or bf16 with --dtype bf16), the
// tokenizer.json when training on text, and trainer_state.json + optimizer.safetensors (adam.m.NAME,
// adam.v.NAME, and master.NAME with --dtype bf16) for --resume.
void save_run(const std::string& dir, const Checkpoint& ck, const ModelConfig& mc,
              const std::map<std::string, std::vector<int64_t>>& shapes, const ParamMap<float>& p,
              const TrainState& st, const nlohmann::json& options, const std::string& tokenizer_json, bool bf16) {
    ::mkdir(dir.c_str(), 0755);
    struct stat sb;
    if (::stat(dir.c_str(), &sb) != 0 || !S_ISDIR(sb.st_mode)) fail(dir, ": cannot create the output directory");
    TensorMap outt, opt;
    for (const auto& name : ck.names()) {
        auto it = p.find(name);
        const DType t = (bf16 && !keeps_f32(name)) ? DType::BF16 : DType::F32;
        if (it != p.end()) outt[name] = Tensor::encode_f32(shapes.at(name), it->second, t);
        else outt[name] = Tensor::encode_f32(ck.get(name).shape, ck.load_f32(name, ck.get(name).shape), t);
        if (it != p.end() && bf16) opt["master." + name] = Tensor::from_f32({(int64_t)it->second.size()}, it->second);
    }
    for (const auto& [name, s] : st.adam) {
        opt["adam.m." + name] = Tensor::from_f32({(int64_t)s.m.size()}, s.m);
        opt["adam.v." + name] = Tensor::from_f32({(int64_t)s.v.size()}, s.v);
    }
    nlohmann::json cfg = mc.raw;
    cfg["torch_dtype"] = bf16 ? "bfloat16" : "float32";
    {
        std::ofstream f(dir + "/config.json");
        f << cfg.dump(2) << "\n";
        if (!f) fail(dir, "/config.json: write failed");
    }
    if (!tokenizer_json.empty()) {
        std::ofstream f(dir + "/tokenizer.json", std::ios::binary);
        f << tokenizer_json;
        if (!f) fail(dir, "/tokenizer.json: write failed");
    }
    write_checkpoint(dir, outt, 1);
    write_safetensors(dir + "/optimizer.safetensors", opt);
    nlohmann::json js;
    js["step"] = st.step;
    js["options"] = options;
    js["log_rows"] = st.log_rows;
    js["losses"] = st.losses;
    js["eval"] = st.eval;
    std::ofstream f(dir + "/trainer_state.json");
    f << js.dump(1) << "\n";
    if (!f) fail(dir, "/trainer_state.json: write failed");
}

TrainState load_run(const std::string& dir, const nlohmann::json& options, ParamMap<float>& p, bool bf16) {
    std::ifstream in(dir + "/trainer_state.json");
    if (!in) fail(dir, ": no trainer_state.json (not a checkpoint written by dsref train)");
    nlohmann::json js;
    try {
        in >> js;
    } catch (const std::exception& e) {
        fail(dir, "/trainer_state.json: ", e.what());
    }
    nlohmann::json saved = js["options"];
    for (const char* key : {"aux_device_alpha", "aux_comm_alpha"})  // runs saved before these options had them 0
        if (saved.is_object() && !saved.contains(key)) saved[key] = 0.0;
    if (saved.is_object() && !saved.contains("dtype")) saved["dtype"] = "f32";  // and trained in float32
    for (const auto& [key, v] : options.items())
        if (!saved.contains(key) || saved[key] != v)
            fail(dir, ": --resume of a run with ", key, " = ", saved.value(key, nlohmann::json()).dump(),
                 ", this run has ", v.dump());
    TrainState st;
    st.step = js.at("step").get<int64_t>();
    st.log_rows = js.at("log_rows").get<std::vector<std::string>>();
    st.losses = js.at("losses").get<std::vector<double>>();
    st.eval = js.at("eval").get<std::vector<std::pair<int64_t, double>>>();
    const SafetensorsFile opt(dir + "/optimizer.safetensors");
    for (const auto& t : opt.tensors()) {
        if (t.name.rfind("adam.m.", 0) != 0) continue;
        const std::string name = t.name.substr(7);
        auto it = p.find(name);
        if (it == p.end()) fail(dir, "/optimizer.safetensors: moments of ", name, ", which the model does not have");
        auto& s = st.adam[name];
        s.m = t.to_f32();
        s.v = opt.get("adam.v." + name).to_f32();
        if (s.m.size() != it->second.size() || s.v.size() != it->second.size())
            fail(dir, "/optimizer.safetensors: the moments of ", name, " do not have its ", it->second.size(), " elements");
    }
    if (bf16)  // the master weights (model.safetensors holds their bf16 rounding)
        for (auto& [name, v] : p) {
            if (keeps_f32(name)) continue;
            std::vector<float> m = opt.get("master." + name).to_f32();  // throws, naming the file and tensor
            if (m.size() != v.size()) fail(dir, "/optimizer.safetensors: master.", name, " does not have ", v.size(), " elements");
            v = std::move(m);
        }
    return st;
}

volatile std::sig_atomic_t g_interrupted = 0;
extern "C" void on_sigint(int) { g_interrupted = 1; }

void run_train(const TrainOpts& o) {
    if (o.mtp_lambda < 0) usage_fail("--mtp-lambda must be >= 0");
    if (o.steps < 1 || o.batch < 1 || o.seq_len < 1) usage_fail("--steps, --batch and --seq-len must be >= 1");
    if (o.model.empty() && o.resume.empty()) usage_fail("--model INIT_DIR or --resume OUT_DIR is required");
    if (o.eval_every < 0 || o.save_every < 0) usage_fail("--eval-every and --save-every must be >= 0");
    if (o.dtype != "f32" && o.dtype != "bf16") usage_fail("--dtype must be f32 or bf16, not '" + o.dtype + "'");
    const bool bf16 = o.dtype == "bf16";
    const LrSchedule sched = parse_lr_schedule(o.schedule);
    const std::string from = o.resume.empty() ? o.model : o.resume;
    const ModelConfig mc = load_config(from);
    if (!o.model.empty() && !o.resume.empty()) {
        nlohmann::json a = load_config(o.model).raw, b = mc.raw;
        a.erase("torch_dtype"), b.erase("torch_dtype"), a.erase("dtype"), b.erase("dtype");
        if (a != b) fail(o.resume, ": --resume directory has another config than --model ", o.model);
    }
    const TinyV3Config tc = tiny_config_from(mc);
    const bool v2 = mc.arch == Arch::DeepseekV2;
    if (v2 && o.mtp_lambda > 0)
        fail(from, ": --mtp-lambda ", o.mtp_lambda, ": deepseek_v2 has no MTP module (multi-token prediction is V3's, "
             "V3 report §2.2)");
    if (o.mtp_lambda > 0 && tc.n_mtp != 1)
        fail(from, ": --mtp-lambda ", o.mtp_lambda, " needs an MTP module (num_nextn_predict_layers = 1), the config has ",
             tc.n_mtp);
    if (o.bias_gamma != 0.0 && (v2 || !has_bias(tc)))
        fail(from, ": --bias-gamma ", o.bias_gamma, ": ", v2 ? "deepseek_v2" : "this config",
             " has no e_score_correction_bias (the aux-loss-free bias is V3's noaux_tc rule, V3 report §2.1.2); "
             "balance a V2 model with --aux-alpha, --aux-device-alpha and --aux-comm-alpha");
    BalanceLossWeights bw(o.aux_alpha);
    bw.alpha_device = o.aux_device_alpha;
    bw.alpha_comm = o.aux_comm_alpha;
    bw.D = tc.gate.n_group;
    bw.M = tc.gate.topk_group;
    for (const auto& [opt, a] : {std::pair<const char*, double>{"--aux-device-alpha", o.aux_device_alpha},
                                 {"--aux-comm-alpha", o.aux_comm_alpha}}) {
        if (a < 0) usage_fail(opt, " must be >= 0, got ", a);
        if (a == 0) continue;
        if (tc.gate.scoring != MoeScoring::Softmax)
            fail(from, ": ", opt, " ", a, ": V2's device-level and communication balance losses are defined on "
                 "softmax affinities (V2 report §2.2.3), this config's scoring_func is not softmax");
        if (tc.gate.n_group < 2)
            fail(from, ": ", opt, " ", a, " needs n_group >= 2 (the D devices of V2 report §2.2.3, D = n_group), "
                 "this config has n_group = ", tc.gate.n_group);
    }
    const auto shapes = tiny_v3_shapes(tc);
    const Checkpoint ck(from);
    ParamMap<float> p;
    for (const auto& [name, shape] : shapes) p[name] = ck.load_f32(name, shape);
    std::unique_ptr<text::Tokenizer> tok;
    std::string tokenizer_json;
    if (!o.tokenizer.empty()) {
        tok = text::Tokenizer::load(o.tokenizer);
        tokenizer_json = read_text_file(tok->file());
    }
    const std::vector<int32_t> ids = read_ids(o.data, tok.get(), tc.V, o.seq_len);
    std::vector<int32_t> eval_ids;
    if (!o.eval_data.empty()) eval_ids = read_ids(o.eval_data, tok.get(), tc.V, o.seq_len);
    const int64_t N = (int64_t)ids.size(), S = o.seq_len, B = o.batch;
    const nlohmann::json options = run_options(o, N);
    ::mkdir(o.out.c_str(), 0755);
    struct stat sb;
    if (::stat(o.out.c_str(), &sb) != 0 || !S_ISDIR(sb.st_mode)) fail(o.out, ": cannot create the output directory");
    {
        std::ofstream probe(o.out + "/.write_test");
        if (!probe) fail(o.out, ": output directory is not writable");
    }
    std::remove((o.out + "/.write_test").c_str());
    TrainState st = o.resume.empty() ? TrainState{} : load_run(o.resume, options, p, bf16);
    ParamMap<float> pw;  // the bf16-rounded weights with --dtype bf16 (compute_weights of p, every step)
    if (st.step > o.steps) fail(o.resume, ": has ", st.step, " steps done, more than --steps ", o.steps);
    std::ofstream log, elog;
    if (!o.log.empty()) {
        log.open(o.log);
        if (!log) fail(o.log, ": cannot write the log");
        log << "step,loss,ce,mtp,aux,lr,grad_norm,tokens_per_s,max_load_ratio\n";
        for (const auto& r : st.log_rows) log << r << "\n";
        log.precision(9);
        if (!eval_ids.empty()) {
            elog.open(strip_csv(o.log) + ".eval.csv");
            if (!elog) fail(strip_csv(o.log), ".eval.csv: cannot write the eval log");
            elog << "step,eval_loss\n";
            elog.precision(9);
            for (const auto& [k, v] : st.eval) elog << k << "," << v << "\n";
        }
    }
    // the eval loss: mean cross-entropy over the non-overlapping windows of the eval data
    auto eval_loss = [&]() {
        const int64_t n = ((int64_t)eval_ids.size() - 1) / S;
        std::vector<const int32_t*> rows_in(n), rows_tgt(n);
        for (int64_t j = 0; j < n; j++) rows_in[j] = eval_ids.data() + j * S, rows_tgt[j] = eval_ids.data() + j * S + 1;
        double sum = 0;
        const ParamMap<float>& w = compute_weights(pw, p, bf16);
        for (const TinyV3Losses& l : tiny_v3_batch<float>(tc, w, nullptr, rows_in, rows_tgt, S, 0.0)) sum += l.ce;
        return sum / (double)n;
    };
    auto record_eval = [&](int64_t k) {
        if (eval_ids.empty()) return;
        if (!st.eval.empty() && st.eval.back().first == k) return;
        const double e = eval_loss();
        st.eval.push_back({k, e});
        if (elog) elog << k << "," << e << "\n" << std::flush;
    };
    AdamWConfig ac;
    ac.beta1 = o.beta1;
    ac.beta2 = o.beta2;
    ac.eps = o.eps;
    g_interrupted = 0;
    auto old_handler = std::signal(SIGINT, on_sigint);
    const auto t_start = std::chrono::steady_clock::now();
    const int64_t k_start = st.step;
    for (int64_t k = st.step; k < o.steps; k++) {
        if (o.eval_every > 0 && k % o.eval_every == 0) record_eval(k);
        const auto t0 = std::chrono::steady_clock::now();
        ParamMap<float> g;
        double ce = 0, aux = 0, mtp = 0;
        std::vector<std::vector<int64_t>> load;
        std::vector<const int32_t*> rows_in(B), rows_tgt(B);
        for (int64_t b = 0; b < B; b++) {
            const int64_t off = ((k * B + b) * S) % (N - S - 1);
            rows_in[b] = ids.data() + off, rows_tgt[b] = ids.data() + off + 1;
        }
        const ParamMap<float>& w = compute_weights(pw, p, bf16);
        for (const TinyV3Losses& l : tiny_v3_batch(tc, w, &g, rows_in, rows_tgt, S, bw, o.mtp_lambda)) {
            ce += l.ce / (double)B;
            aux += l.aux / (double)B;
            mtp += l.mtp / (double)B;
            if (load.empty()) load = l.load;
            else
                for (size_t i = 0; i < load.size(); i++)
                    for (size_t e = 0; e < load[i].size(); e++) load[i][e] += l.load[i][e];
        }
        const double loss = ce + o.mtp_lambda * mtp + aux;
        if (!std::isfinite(loss))
            fail("step ", k, ": the loss is ", loss, " (ce ", ce, ", mtp ", mtp, ", aux ", aux, "); nothing saved");
        std::vector<float*> gp;
        std::vector<int64_t> sizes;
        for (auto& [name, gv] : g) {
            for (auto& x : gv) x /= (float)B;  // each row's gradient is of its own mean: the batch mean
            for (size_t i = 0; i < gv.size(); i++)
                if (!std::isfinite(gv[i]))
                    fail("step ", k, ": gradient of ", name, " is ", gv[i], " at element ", i, "; nothing saved");
            gp.push_back(gv.data());
            sizes.push_back((int64_t)gv.size());
        }
        if (k == 0 && !o.dump_grads.empty()) {
            TensorMap gt;
            for (const auto& [name, gv] : g) gt["grad." + name] = Tensor::from_f32(shapes.at(name), gv);
            write_safetensors(o.dump_grads, gt);
        }
        const double norm = clip_grad_norm(gp, sizes, o.clip);
        const double lr = lr_at(sched, o.lr, k, o.steps, o.warmup, o.min_lr_frac);
        for (auto& [name, gv] : g)
            adamw_step(p[name].data(), gv.data(), st.adam[name], (int64_t)gv.size(), k + 1, lr,
                       adamw_decays(shapes.at(name)) ? o.weight_decay : 0.0, ac);
        // aux-loss-free bias update over this step's batch, one MoE layer at a time (the MTP layer L
        // last, when it ran); max/mean load
        double max_ratio = 0;
        int64_t li = 0;
        for (int64_t i = 0; i <= tc.L; i++) {
            if (i < tc.first_dense || li >= (int64_t)load.size()) continue;
            int64_t mx = 0, sum = 0;
            for (int64_t e = 0; e < tc.gate.E; e++) mx = std::max(mx, load[li][e]), sum += load[li][e];
            if (sum > 0) max_ratio = std::max(max_ratio, (double)mx * (double)tc.gate.E / (double)sum);
            if (o.bias_gamma != 0.0) {
                auto& bias = p["model.layers." + std::to_string(i) + ".mlp.gate.e_score_correction_bias"];
                aux_free_bias_update(bias.data(), load[li].data(), tc.gate.E, o.bias_gamma);
            }
            li++;
        }
        const double dt = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
        const double tps = (double)(B * S) / std::max(dt, 1e-9);
        std::ostringstream row;
        row.precision(9);
        row << k << "," << loss << "," << ce << "," << mtp << "," << aux << "," << lr << "," << norm << "," << tps << ","
            << max_ratio;
        st.log_rows.push_back(row.str());
        st.losses.push_back(loss);
        st.step = k + 1;
        if (log) log << row.str() << "\n" << std::flush;
        const double el = std::chrono::duration<double>(std::chrono::steady_clock::now() - t_start).count();
        const double eta = el / (double)(k + 1 - k_start) * (double)(o.steps - k - 1);
        std::fprintf(stderr, "\rdsref train: step %lld/%lld  loss %.4f  %.0f tok/s  ETA %.0f s   ", (long long)k + 1,
                     (long long)o.steps, loss, tps, eta);
        if (g_interrupted) {
            std::signal(SIGINT, old_handler);
            save_run(o.out, ck, mc, shapes, p, st, options, tokenizer_json, bf16);
            std::fprintf(stderr, "\ndsref train: interrupted after step %lld; resumable checkpoint in %s "
                                 "(continue with --resume %s)\n", (long long)st.step, o.out.c_str(), o.out.c_str());
            std::exit(130);
        }
        if (o.save_every > 0 && st.step % o.save_every == 0 && st.step < o.steps) {
            char name[32];
            std::snprintf(name, sizeof name, "/step-%06lld", (long long)st.step);
            save_run(o.out + name, ck, mc, shapes, p, st, options, tokenizer_json, bf16);
        }
    }
    std::signal(SIGINT, old_handler);
    record_eval(o.steps);
    std::fprintf(stderr, "\n");
    if (!o.log.empty() && !st.losses.empty()) write_svg(strip_csv(o.log) + ".svg", st.losses, st.eval);
    save_run(o.out, ck, mc, shapes, p, st, options, tokenizer_json, bf16);
    if (!st.losses.empty())
        std::cerr << "dsref train: " << o.steps << " steps, loss " << st.losses.front() << " -> " << st.losses.back()
                  << (st.eval.empty() ? "" : ", eval loss " + std::to_string(st.eval.back().second))
                  << ", checkpoint in " << o.out << "\n";
}

}  // namespace

void add_train(CLI::App& app) {
    auto o = std::make_shared<TrainOpts>();
    CLI::App* cmd = app.add_subcommand("train", "train a DeepSeek-V3- or V2-shaped checkpoint on the CPU (hand-written backward)");
    cmd->add_option("--model", o->model, "initial HF checkpoint directory (e.g. from dsref init)");
    cmd->add_option("--data", o->data, "training tokens: little-endian uint32 ids (.bin), or text with --tokenizer")
        ->required();
    cmd->add_option("--tokenizer", o->tokenizer, "tokenizer.json (or a directory holding one): --data is UTF-8 text");
    cmd->add_option("--eval-data", o->eval_data, "held-out tokens (as --data): eval loss in LOG.eval.csv and LOG.svg");
    cmd->add_option("--eval-every", o->eval_every, "eval every K steps (before step k's update) and at the end");
    cmd->add_option("--save-every", o->save_every, "also write a resumable checkpoint OUT_DIR/step-NNNNNN every K steps");
    cmd->add_option("--resume", o->resume, "continue the run saved in this directory (bit-identical, optimizer included)");
    cmd->add_option("--out", o->out, "output checkpoint directory (created)")->required();
    cmd->add_option("--steps", o->steps, "optimizer steps (default 100)");
    cmd->add_option("--batch", o->batch, "sequences per step B (default 4)");
    cmd->add_option("--seq-len", o->seq_len, "tokens per sequence S (default 64)");
    cmd->add_option("--lr", o->lr, "peak learning rate (default 1e-3)");
    cmd->add_option("--warmup", o->warmup, "linear warmup steps W: lr·(k+1)/W for k < W (default 0)");
    cmd->add_option("--schedule", o->schedule, "constant | cosine | deepseek (default constant)");
    cmd->add_option("--min-lr-frac", o->min_lr_frac, "cosine floor as a fraction of --lr (default 0.1)");
    cmd->add_option("--weight-decay", o->weight_decay, "AdamW decoupled decay on rank >= 2 tensors (default 0.1)");
    cmd->add_option("--beta1", o->beta1, "AdamW beta1 (default 0.9)");
    cmd->add_option("--beta2", o->beta2, "AdamW beta2 (default 0.95)");
    cmd->add_option("--eps", o->eps, "AdamW eps (default 1e-8)");
    cmd->add_option("--clip", o->clip, "global gradient-norm clip C, <= 0 for none (default 1.0)");
    cmd->add_option("--mtp-lambda", o->mtp_lambda, "MTP loss weight lambda (V3: 0.3, then 0.1); needs num_nextn_predict_layers = 1 (default 0)");
    cmd->add_option("--bias-gamma", o->bias_gamma, "aux-loss-free bias update speed gamma; V3 (noaux_tc) only (default 0)");
    cmd->add_option("--aux-alpha", o->aux_alpha,
                    "sequence-wise balance loss weight alpha (V2: the expert-level alpha1) (default 0)");
    cmd->add_option("--aux-device-alpha", o->aux_device_alpha,
                    "V2 device-level balance loss weight alpha2 over D = n_group devices; softmax scoring, "
                    "n_group >= 2 (default 0)");
    cmd->add_option("--aux-comm-alpha", o->aux_comm_alpha,
                    "V2 communication balance loss weight alpha3, D = n_group, M = topk_group; softmax scoring, "
                    "n_group >= 2 (default 0)");
    cmd->add_option("--log", o->log, "CSV log step,loss,ce,mtp,aux,lr,grad_norm,tokens_per_s,max_load_ratio (+ LOG.svg)");
    cmd->add_option("--dtype", o->dtype,
                    "f32 | bf16: bf16 trains float32 master weights through their bf16 rounding and saves bf16 "
                    "(default f32)");
    cmd->add_option("--dump-grads", o->dump_grads,
                    "write step 0's gradients (of the batch-mean loss, before clipping) as grad.NAME F32 safetensors");
    add_threads_option(cmd, &o->threads);
    cmd->callback([o]() {
        apply_threads(o->threads);
        run_train(*o);
    });
}

}  // namespace dsref::cli
