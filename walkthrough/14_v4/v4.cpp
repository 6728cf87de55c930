// v4.cpp — walkthrough chapter 14: DeepSeek-V4 (README.md next to this file).
//   1. cost per query and KV-cache bytes against T up to 1M: V3's MLA against V4-Flash's window, CSA and HCA
//      layers (`--svg DIR` writes DIR/v4_cost.svg and DIR/v4_cache.svg);
//   2. mHC: why Sinkhorn — 60 layers of residual mixing with and without the doubly-stochastic projection;
//   3. the tiny V4 checkpoint of data/golden/deepseek_v4_model: layer types, hash vs learned routing, the CSA
//      selection of the last token, cached decode against prefill;
//   4. FP4 experts: the 16 E2M1 codes and one UE8M0 scale per 32 values.
// Run from the repository root:
//   make build/walkthrough/14_v4/v4 && build/walkthrough/14_v4/v4 [--svg walkthrough/14_v4]
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <random>
#include <string>
#include <vector>

#include "core/fp4_format.h"
#include "core/hyper_connection.h"
#include "fp8/fp4_dequant.h"
#include "io/config_v4.h"
#include "model/v4_model.h"

using namespace dsref;

namespace {

// A log-log plot of a few curves against T = 2^10 .. 2^20 (plain SVG).
void plot(const std::string& path, const char* title, const char* ylabel, const std::vector<double>& Ts,
          const std::vector<std::vector<double>>& ys, const std::vector<const char*>& names) {
    std::ofstream f(path);
    const int W = 600, Hh = 340, L = 70, R = 20, Tp = 30, B = 50;
    auto X = [&](double T) { return L + (std::log2(T) - 10) / 10.0 * (W - L - R); };
    double lo = 1e300, hi = 0;
    for (const auto& y : ys)
        for (double v : y) lo = std::min(lo, v), hi = std::max(hi, v);
    lo = std::floor(std::log10(lo)), hi = std::ceil(std::log10(hi));
    auto Y = [&](double v) { return Tp + (hi - std::log10(v)) / (hi - lo) * (Hh - Tp - B); };
    const char* colors[] = {"#c03030", "#3060c0", "#30a050", "#a060c0", "#c08020"};
    f << "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"" << W << "\" height=\"" << Hh
      << "\" font-family=\"sans-serif\" font-size=\"12\">\n<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n";
    f << "<text x=\"" << W / 2 << "\" y=\"18\" text-anchor=\"middle\">" << title << "</text>\n";
    for (int e = 10; e <= 20; e += 2)
        f << "<text x=\"" << X(std::ldexp(1.0, e)) << "\" y=\"" << Hh - B + 16 << "\" text-anchor=\"middle\">"
          << (e < 20 ? std::to_string(1 << (e - 10)) + "K" : std::string("1M")) << "</text>\n";
    f << "<text x=\"" << W / 2 << "\" y=\"" << Hh - 10 << "\" text-anchor=\"middle\">T (tokens)</text>\n";
    f << "<text x=\"14\" y=\"" << Hh / 2 << "\" transform=\"rotate(-90 14 " << Hh / 2 << ")\" text-anchor=\"middle\">"
      << ylabel << "</text>\n";
    for (int e = (int)lo; e <= (int)hi; e++)
        f << "<text x=\"" << L - 6 << "\" y=\"" << Y(std::pow(10, e)) + 4 << "\" text-anchor=\"end\">1e" << e << "</text>\n";
    for (size_t c = 0; c < ys.size(); c++) {
        f << "<polyline fill=\"none\" stroke=\"" << colors[c % 5] << "\" stroke-width=\"2\" points=\"";
        for (size_t i = 0; i < Ts.size(); i++) f << X(Ts[i]) << "," << Y(ys[c][i]) << " ";
        f << "\"/>\n<text x=\"" << L + 10 << "\" y=\"" << Tp + 16 * (c + 1) << "\" fill=\"" << colors[c % 5] << "\">"
          << names[c] << "</text>\n";
    }
    f << "<line x1=\"" << L << "\" y1=\"" << Hh - B << "\" x2=\"" << W - R << "\" y2=\"" << Hh - B << "\" stroke=\"black\"/>\n";
    f << "<line x1=\"" << L << "\" y1=\"" << Tp << "\" x2=\"" << L << "\" y2=\"" << Hh - B << "\" stroke=\"black\"/>\n</svg>\n";
    std::printf("   wrote %s\n", path.c_str());
}

void section_cost(const std::string& dir) {
    const V4Config c = load_v4_config("data/configs/deepseek_v4_flash.json");
    const double H = (double)c.num_attention_heads, dh = (double)c.head_dim, win = (double)c.sliding_window;
    const double k = (double)c.index_topk, nI = (double)c.index_n_heads, dI = (double)c.index_head_dim;
    // V3 (671B): MLA absorbed decode reads the 512 + 64 latent per position for each of 128 heads
    const double v3_H = 128, v3_qk = 576, v3_v = 512, v3_L = 61;
    std::printf("1. Cost per query at position T, one layer, in multiply-adds (q·k and p·v; V4-Flash shape: H = %.0f,\n"
                "   d_h = %.0f, window %.0f, index_topk %.0f, indexer %.0f x %.0f; V3: 128 heads over the 576-dim latent)\n",
                H, dh, win, k, nI, dI);
    std::printf("   %8s %12s %12s %12s %12s\n", "T", "V3 MLA", "V4 window", "V4 CSA", "V4 HCA");
    std::vector<double> Ts, mla, sw, csa, hca, c3, c4;
    for (int e = 10; e <= 20; ++e) {
        const double T = std::ldexp(1.0, e), w = std::min(win, T);
        const double a = v3_H * (v3_qk + v3_v) * T, b = H * 2 * dh * w;
        const double cs = H * 2 * dh * (w + std::min(k, T / 4)) + nI * dI * T / 4;  // + the indexer's scores
        const double hc = H * 2 * dh * (w + T / 128);
        if (e % 2 == 0) std::printf("   %8.0f %12.3e %12.3e %12.3e %12.3e\n", T, a, b, cs, hc);
        Ts.push_back(T), mla.push_back(a), sw.push_back(b), csa.push_back(cs), hca.push_back(hc);
        // cache bytes of the whole model at T tokens, bf16 (V3: 61 layers x 576 values per token)
        c3.push_back(2 * v3_L * v3_qk * T);
        double v4 = 0;
        for (int64_t i = 0; i < c.num_hidden_layers; ++i) {
            const int64_t m = c.compress_ratio[(size_t)i];
            v4 += 2 * dh * w;  // every layer's window
            if (m == 4) v4 += 2 * (dh + dI) * std::floor(T / 4);
            else if (m > 0) v4 += 2 * dh * std::floor(T / m);
        }
        c4.push_back(v4);
    }
    std::printf("   At 1M tokens a CSA layer costs %.1f%% of an MLA layer per query, an HCA layer %.2f%%; the CSA\n"
                "   indexer (%.0f per entry, every 4th token) is most of it past T ~ 100K.\n",
                100 * csa.back() / mla.back(), 100 * hca.back() / mla.back(), nI * dI);
    std::printf("   KV cache of the whole model, bf16: V3 %.1f GB at 1M tokens, V4-Flash %.2f GB (%.1f%%)\n\n",
                c3.back() / 1e9, c4.back() / 1e9, 100 * c4.back() / c3.back());
    if (dir.empty()) return;
    plot(dir + "/v4_cost.svg", "attention multiply-adds per query, one layer", "multiply-adds", Ts, {mla, csa, hca, sw},
         {"V3 MLA (dense)", "V4 CSA (window + top-k + indexer)", "V4 HCA (window + T/128)", "V4 window only"});
    plot(dir + "/v4_cache.svg", "KV-cache bytes of the whole model (bf16)", "bytes", Ts, {c3, c4},
         {"V3 (61 MLA layers, 576 values/token)", "V4-Flash (2 window, 21 CSA, 20 HCA layers)"});
    std::printf("\n");
}

// Column sums of a product of many per-layer mixing matrices: how much of each stream survives.
void section_mhc() {
    std::printf("2. mHC: 60 layers of residual mixing C_60 ... C_1 over n = 4 streams\n");
    const int n = 4, M = (2 + n) * n, layers = 60;
    std::mt19937 g(7);
    std::normal_distribution<float> N(0.0f, 1.5f);
    for (int iters : {0, 1, 20}) {
        std::vector<double> P(n * n, 0.0);
        for (int i = 0; i < n; ++i) P[i * n + i] = 1;
        double worst_row = 0;
        for (int l = 0; l < layers; ++l) {
            std::vector<float> mixes(M), scale = {1, 1, 1}, base(M, 0.0f), pre(n), post(n), comb(n * n);
            for (float& v : mixes) v = N(g);
            HcParams p;
            p.n = n, p.iters = std::max(iters, 1);
            hc_split_sinkhorn(pre.data(), post.data(), comb.data(), mixes.data(), scale.data(), base.data(), 1, p);
            if (iters == 0)  // no projection at all: exp of the raw logits (an unconstrained positive mix)
                for (int j = 0; j < n * n; ++j) comb[j] = std::exp(mixes[2 * n + j]);
            for (int r = 0; r < n; ++r) {
                double s = 0;
                for (int cc = 0; cc < n; ++cc) s += comb[r * n + cc];
                worst_row = std::max(worst_row, std::fabs(s - 1));
            }
            std::vector<double> Q(n * n, 0.0);  // X'_k = Σ_j C_jk X_j: the new map is Cᵀ · P
            for (int kk = 0; kk < n; ++kk)
                for (int j = 0; j < n; ++j)
                    for (int m = 0; m < n; ++m) Q[kk * n + m] += comb[j * n + kk] * P[j * n + m];
            P = Q;
        }
        double mx = 0, mn = 1e300;
        for (int m = 0; m < n; ++m) {
            double s = 0;
            for (int kk = 0; kk < n; ++kk) s += P[kk * n + m];
            mx = std::max(mx, s), mn = std::min(mn, s);
        }
        std::printf("   %-38s max |row sum - 1| %.1e, total weight of each input after 60 layers %.3g .. %.3g\n",
                    iters == 0 ? "no projection (exp of the logits)"
                               : (iters == 1 ? "1 Sinkhorn step (hc_sinkhorn_iters 1)" : "20 Sinkhorn steps (V4)"),
                    worst_row, mn, mx);
    }
    std::printf("   Doubly stochastic mixes keep every input's total weight at 1 however deep the stack; one step\n"
                "   (columns only) lets inputs drift apart; without the projection the residual path explodes.\n\n");
}

void section_model() {
    const std::string dir = "data/golden/deepseek_v4_model";
    V4Model m(dir);
    const V4Config& c = m.config();
    std::printf("3. The tiny V4 of %s: d = %ld, hc_mult = %ld, window %ld, index_topk %ld\n", dir.c_str(),
                (long)c.hidden_size, (long)c.hc_mult, (long)c.sliding_window, (long)c.index_topk);
    for (int64_t i = 0; i < c.num_hidden_layers; ++i)
        std::printf("   layer %ld: %-30s %s\n", (long)i, v4_layer_type_name(c.layer_type(i)),
                    c.hash_layer[(size_t)i] ? "hash MoE (tid2eid)" : "learned routing (sqrtsoftplus + bias)");
    std::vector<int32_t> toks;
    for (int t = 0; t < 29; ++t) toks.push_back((t * 7 + 3) % (int)c.vocab_size);
    Trace tr;
    V4Cache cache;
    const std::vector<float> pre = m.forward(toks, cache, &tr);
    const TensorMap& d = tr.tensors();
    const Tensor& it = d.at("index_topk.0");
    const int64_t T = (int64_t)toks.size(), kk = it.shape[1];
    std::vector<int32_t> sel(kk);
    std::memcpy(sel.data(), it.bytes.data() + (T - 1) * kk * 4, kk * 4);
    std::printf("   layer 0, the last token (position %ld) sees %ld compressed entries; the indexer keeps", (long)(T - 1),
                (long)(T / 4));
    for (int32_t s : sel) std::printf(" %d (tokens %d..%d)", s, 4 * s, 4 * s + 3);
    std::printf("\n   the window adds tokens %ld..%ld\n", (long)(T - c.sliding_window), (long)(T - 1));
    const Tensor& h0 = d.at("topk_idx.0");
    std::vector<int32_t> e0(2);
    std::memcpy(e0.data(), h0.bytes.data(), 8);
    std::printf("   token %d in hash layer 0 goes to experts %d, %d, whatever its hidden state (tid2eid row)\n", toks[0],
                e0[0], e0[1]);
    V4Cache dc;
    double worst = 0;
    std::vector<float> dec = m.forward({toks[0]}, dc);
    for (int64_t t = 1; t < T; ++t) {
        const std::vector<float> l = m.forward({toks[(size_t)t]}, dc);
        dec.insert(dec.end(), l.begin(), l.end());
    }
    for (size_t i = 0; i < dec.size(); ++i) worst = std::max(worst, (double)std::fabs(dec[i] - pre[i]));
    std::printf("   decode one token at a time (window, compressor and indexer state in the cache) vs prefill:\n"
                "   max |dlogit| = %.2e over %ld positions; cache %zu bytes\n\n", worst, (long)T, dc.bytes());
}

void section_fp4() {
    std::printf("4. FP4 experts: E2M1 codes (sign, 2 exponent bits, 1 mantissa bit) and a UE8M0 scale per 32 values\n   ");
    for (int code = 0; code < 16; ++code) std::printf("%g%s", e2m1_decode((uint8_t)code), code < 15 ? " " : "\n");
    std::mt19937 g(3);
    std::normal_distribution<float> N(0.0f, 0.02f);
    std::vector<float> w(64);
    for (float& v : w) v = N(g);
    std::vector<uint8_t> packed(32), scale(2);
    fp4_quantize(w.data(), 1, 64, packed.data(), scale.data());
    const std::vector<float> back = fp4_dequantize(packed.data(), scale.data(), 1, 64, "demo");
    double err = 0, amax = 0;
    for (int i = 0; i < 64; ++i) err = std::max(err, (double)std::fabs(back[i] - w[i])), amax = std::max(amax, (double)std::fabs(w[i]));
    std::printf("   a row of 64 weights ~ N(0, 0.02): scales 2^%d, 2^%d; max error %.2e = %.0f%% of max |w|\n\n",
                (int)scale[0] - 127, (int)scale[1] - 127, err, 100 * err / amax);
}

}  // namespace

int main(int argc, char** argv) {
    std::string dir;
    for (int i = 1; i < argc; i++) {
        if (std::strcmp(argv[i], "--svg") == 0 && i + 1 < argc) {
            dir = argv[++i];
        } else {
            std::fprintf(stderr, "usage: %s [--svg DIR]\n", argv[0]);
            return 2;
        }
    }
    section_cost(dir);
    section_mhc();
    section_model();
    section_fp4();
    return 0;
}
