// cmd_train.cpp — `dsref train`: train a DeepSeek-V3-shaped checkpoint on the CPU with the hand-written
// backward passes of ref/train/ (tiny_v3_step), AdamW (train/adamw.h) and the V3 recipe's
// aux-loss-free bias update (moe/moe_balance.h, aux_free_bias_update; V3 report §2.1.2) and
// sequence-wise balance loss (--aux-alpha).
//
// Batching is deterministic: step k (0-based), row b starts at o = ((k·B + b)·S) mod (N − S − 1);
// inputs ids[o .. o+S−1], targets ids[o+1 .. o+S]. Loss = mean cross-entropy over the B·S targets
// + α · the balance loss (mean over the B sequences). The log has one row per step k with the loss
// computed before step k's update. Everything runs serially in a fixed order, so the result is
// bit-identical at any --threads. The output directory is an HF checkpoint (config.json +
// model.safetensors, float32) that `dsref forward` loads; tensors the trainer does not model (the MTP
// layer) are copied through unchanged.
#include <sys/stat.h>

#include <chrono>
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
#include "train/adamw.h"
#include "train/tiny_v3.h"

namespace dsref::cli {

namespace {

struct TrainOpts {
    std::string model, data, out, log, schedule = "constant";
    int64_t steps = 100, batch = 4, seq_len = 64, warmup = 0;
    double lr = 1e-3, min_lr_frac = 0.1, weight_decay = 0.1, beta1 = 0.9, beta2 = 0.95, eps = 1e-8, clip = 1.0;
    double mtp_lambda = 0.0, bias_gamma = 0.0, aux_alpha = 0.0;
    int threads = 0;
};

TinyV3Config tiny_config_from(const ModelConfig& c) {
    if (c.arch != Arch::DeepseekV3) fail(c.source, ": dsref train supports model_type deepseek_v3 only");
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

std::vector<int32_t> read_ids(const std::string& path, int64_t V, int64_t S) {
    std::ifstream f(path, std::ios::binary);
    if (!f) fail(path, ": cannot open the training data");
    std::vector<char> buf((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
    if (buf.size() % 4) fail(path, ": ", buf.size(), " bytes is not a whole number of uint32 token ids");
    const int64_t N = (int64_t)buf.size() / 4;
    if (N < S + 2) fail(path, ": ", N, " tokens, need at least --seq-len + 2 = ", S + 2);
    std::vector<int32_t> ids(N);
    for (int64_t i = 0; i < N; i++) {
        const auto* b = reinterpret_cast<const unsigned char*>(buf.data() + 4 * i);
        const uint32_t v = (uint32_t)b[0] | ((uint32_t)b[1] << 8) | ((uint32_t)b[2] << 16) | ((uint32_t)b[3] << 24);
        if ((int64_t)v >= V) fail(path, ": token id ", v, " at offset ", i, " is >= vocab_size ", V);
        ids[i] = (int32_t)v;
    }
    return ids;
}

// LOG.svg: the loss against the step, a plain SVG polyline with its axis labels.
void write_svg(const std::string& path, const std::vector<double>& loss) {
    std::ofstream f(path);
    if (!f) fail(path, ": cannot write the loss plot");
    const double W = 640, H = 400, m = 50;
    double lo = loss[0], hi = loss[0];
    for (double v : loss) lo = std::min(lo, v), hi = std::max(hi, v);
    if (hi - lo < 1e-12) hi = lo + 1;
    const double n = (double)std::max<size_t>(1, loss.size() - 1);
    f << "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"" << W << "\" height=\"" << H << "\">\n"
      << "<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n"
      << "<line x1=\"" << m << "\" y1=\"" << H - m << "\" x2=\"" << W - m << "\" y2=\"" << H - m << "\" stroke=\"black\"/>\n"
      << "<line x1=\"" << m << "\" y1=\"" << m << "\" x2=\"" << m << "\" y2=\"" << H - m << "\" stroke=\"black\"/>\n"
      << "<text x=\"" << W / 2 << "\" y=\"" << H - 10 << "\" text-anchor=\"middle\">step (0 .. " << loss.size() - 1
      << ")</text>\n<text x=\"" << m << "\" y=\"" << m - 10 << "\">train loss (" << lo << " .. " << hi << ")</text>\n"
      << "<polyline fill=\"none\" stroke=\"steelblue\" stroke-width=\"1.5\" points=\"";
    for (size_t i = 0; i < loss.size(); i++)
        f << m + (W - 2 * m) * (double)i / n << "," << (H - m) - (H - 2 * m) * (loss[i] - lo) / (hi - lo) << " ";
    f << "\"/>\n</svg>\n";
}

void run_train(const TrainOpts& o) {
    if (o.mtp_lambda != 0.0)
        usage_fail("--mtp-lambda: the MTP loss is not implemented by dsref train yet (use 0)");
    if (o.steps < 1 || o.batch < 1 || o.seq_len < 1) usage_fail("--steps, --batch and --seq-len must be >= 1");
    const LrSchedule sched = parse_lr_schedule(o.schedule);
    const ModelConfig mc = load_config(o.model);
    const TinyV3Config tc = tiny_config_from(mc);
    const auto shapes = tiny_v3_shapes(tc);
    const Checkpoint ck(o.model);
    ParamMap<float> p;
    for (const auto& [name, shape] : shapes) p[name] = ck.load_f32(name, shape);
    const std::vector<int32_t> ids = read_ids(o.data, tc.V, o.seq_len);
    const int64_t N = (int64_t)ids.size(), S = o.seq_len, B = o.batch;
    ::mkdir(o.out.c_str(), 0755);
    struct stat st;
    if (::stat(o.out.c_str(), &st) != 0 || !S_ISDIR(st.st_mode)) fail(o.out, ": cannot create the output directory");
    {
        std::ofstream probe(o.out + "/.write_test");
        if (!probe) fail(o.out, ": output directory is not writable");
    }
    std::remove((o.out + "/.write_test").c_str());
    std::ofstream log;
    if (!o.log.empty()) {
        log.open(o.log);
        if (!log) fail(o.log, ": cannot write the log");
        log << "step,loss,ce,mtp,aux,lr,grad_norm,tokens_per_s\n";
        log.precision(9);
    }
    AdamWConfig ac;
    ac.beta1 = o.beta1;
    ac.beta2 = o.beta2;
    ac.eps = o.eps;
    std::map<std::string, AdamWState<float>> state;
    std::vector<double> losses;
    std::vector<int64_t> total_load;
    const auto t_start = std::chrono::steady_clock::now();
    for (int64_t k = 0; k < o.steps; k++) {
        const auto t0 = std::chrono::steady_clock::now();
        ParamMap<float> g;
        double ce = 0, aux = 0;
        std::vector<std::vector<int64_t>> load;
        for (int64_t b = 0; b < B; b++) {
            const int64_t off = ((k * B + b) * S) % (N - S - 1);
            const TinyV3Losses l = tiny_v3_step(tc, p, &g, ids.data() + off, ids.data() + off + 1, S, o.aux_alpha);
            ce += l.ce / (double)B;
            aux += l.aux / (double)B;
            if (load.empty()) load = l.load;
            else
                for (size_t i = 0; i < load.size(); i++)
                    for (size_t e = 0; e < load[i].size(); e++) load[i][e] += l.load[i][e];
        }
        const double loss = ce + aux;
        if (!std::isfinite(loss)) fail("step ", k, ": the loss is ", loss, " (ce ", ce, ", aux ", aux, "); nothing saved");
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
        const double norm = clip_grad_norm(gp, sizes, o.clip);
        const double lr = lr_at(sched, o.lr, k, o.steps, o.warmup, o.min_lr_frac);
        for (auto& [name, gv] : g)
            adamw_step(p[name].data(), gv.data(), state[name], (int64_t)gv.size(), k + 1, lr,
                       adamw_decays(shapes.at(name)) ? o.weight_decay : 0.0, ac);
        // aux-loss-free bias update over this step's batch, one MoE layer at a time
        int64_t li = 0;
        for (int64_t i = 0; i < tc.L; i++) {
            if (i < tc.first_dense) continue;
            if (o.bias_gamma != 0.0) {
                auto& bias = p["model.layers." + std::to_string(i) + ".mlp.gate.e_score_correction_bias"];
                aux_free_bias_update(bias.data(), load[li].data(), tc.gate.E, o.bias_gamma);
            }
            li++;
        }
        const double dt = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
        const double tps = (double)(B * S) / std::max(dt, 1e-9);
        losses.push_back(loss);
        if (log) log << k << "," << loss << "," << ce << ",0," << aux << "," << lr << "," << norm << "," << tps << "\n";
        const double el = std::chrono::duration<double>(std::chrono::steady_clock::now() - t_start).count();
        const double eta = el / (double)(k + 1) * (double)(o.steps - k - 1);
        std::fprintf(stderr, "\rdsref train: step %lld/%lld  loss %.4f  %.0f tok/s  ETA %.0f s   ", (long long)k + 1,
                     (long long)o.steps, loss, tps, eta);
    }
    std::fprintf(stderr, "\n");
    if (!o.log.empty()) {
        std::string svg = o.log;
        if (svg.size() > 4 && svg.substr(svg.size() - 4) == ".csv") svg = svg.substr(0, svg.size() - 4);
        write_svg(svg + ".svg", losses);
    }
    // the checkpoint: every trained tensor, plus whatever else the input had (the MTP layer), float32
    TensorMap outt;
    for (const auto& name : ck.names()) {
        auto it = p.find(name);
        if (it != p.end()) outt[name] = Tensor::from_f32(shapes.at(name), it->second);
        else outt[name] = Tensor::from_f32(ck.get(name).shape, ck.load_f32(name, ck.get(name).shape));
    }
    nlohmann::json cfg = mc.raw;
    cfg["torch_dtype"] = "float32";
    std::ofstream f(o.out + "/config.json");
    f << cfg.dump(2) << "\n";
    if (!f) fail(o.out, "/config.json: write failed");
    f.close();
    write_checkpoint(o.out, outt, 1);
    std::cerr << "dsref train: " << o.steps << " steps, loss " << losses.front() << " -> " << losses.back()
              << ", checkpoint in " << o.out << "\n";
}

}  // namespace

void add_train(CLI::App& app) {
    auto o = std::make_shared<TrainOpts>();
    CLI::App* cmd = app.add_subcommand("train", "train a DeepSeek-V3-shaped checkpoint on the CPU (hand-written backward)");
    cmd->add_option("--model", o->model, "initial HF checkpoint directory (e.g. from dsref init)")->required();
    cmd->add_option("--data", o->data, "training tokens: little-endian uint32 ids (.bin)")->required();
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
    cmd->add_option("--mtp-lambda", o->mtp_lambda, "MTP loss weight (only 0 is supported yet)");
    cmd->add_option("--bias-gamma", o->bias_gamma, "aux-loss-free bias update speed gamma (default 0)");
    cmd->add_option("--aux-alpha", o->aux_alpha, "sequence-wise balance loss weight alpha (default 0)");
    cmd->add_option("--log", o->log, "CSV log step,loss,ce,mtp,aux,lr,grad_norm,tokens_per_s (+ LOG.svg)");
    add_threads_option(cmd, &o->threads);
    cmd->callback([o]() {
        apply_threads(o->threads);
        run_train(*o);
    });
}

}  // namespace dsref::cli
