// walkthrough/05_fp8 — the two FP8 experiments of the chapter (DeepSeek-V3 report §3.3).
//
// What this program shows (run: make walkthrough, or build/walkthrough/05_fp8/fp8_experiments [OUT_DIR]):
//   1. what ONE outlier does to FP8 quantization: relative RMS error, mean per-element relative error and
//      the share flushed to zero of the other elements, for one scale per tensor against DeepSeek's 1x128
//      groups, in E4M3 and E5M2;
//   2. the accumulation-precision experiment: a GEMM on N(0,1) inputs, accumulated by the emulated Hopper
//      tensor core (13 explicit mantissa bits) with promotion to FP32 never / every 512 / 256 / 128
//      elements of K, truncating or rounding to nearest, for K = 512 .. 16384; error against `exact`.
// It prints both tables and writes them, with an SVG plot of the second, to OUT_DIR (default
// build/walkthrough/05_fp8, created if needed): fp8_outliers.md, fp8_accumulation.md, fp8_accumulation.svg.
// Timings do not matter here; the whole run takes a few seconds.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "core/fp8_format.h"
#include "fp8/fp8_gemm.h"
#include "fp8/fp8_quant.h"

using namespace dsref;

namespace {

std::vector<float> randn(size_t n, uint64_t seed) {
    std::mt19937_64 g(seed);
    std::normal_distribution<float> d(0.0f, 1.0f);
    std::vector<float> v(n);
    for (float& x : v) x = d(g);
    return v;
}

// ---- 1. outliers -----------------------------------------------------------------------------------------
// Quantize-dequantize x [M, K] in `fmt` with one scale per `group` consecutive elements of a row (group = K
// means per row; group = M·K with M rows means per tensor): s = amax / max(fmt), y = round(x / s) · s.
std::vector<float> fake_quant(const std::vector<float>& x, int64_t group, const FloatFormat& fmt) {
    const float fmax = (float)float_format_max(fmt);
    std::vector<float> y(x.size());
    for (size_t g0 = 0; g0 < x.size(); g0 += group) {
        const size_t g1 = std::min(x.size(), g0 + (size_t)group);
        float amax = 0;
        for (size_t i = g0; i < g1; i++) amax = std::max(amax, std::fabs(x[i]));
        const float s = std::max(amax, 1e-4f) / fmax;
        for (size_t i = g0; i < g1; i++) y[i] = float_round(x[i] / s, fmt, Fp8Overflow::Saturate) * s;
    }
    return y;
}

struct QuantError {
    double rel_rms;   // sqrt(Σ (x - y)² / Σ x²) over every element but the outlier
    double mean_rel;  // mean over those elements of |x - y| / |x| (small elements count as much as big ones)
    double flushed_pct;  // % of those elements (all nonzero) that became 0
};

QuantError quant_error(const std::vector<float>& x, const std::vector<float>& y, size_t outlier) {
    double num = 0, den = 0, rel = 0, flushed = 0;
    for (size_t i = 0; i < x.size(); i++) {
        if (i == outlier) continue;
        const double d = (double)x[i] - y[i];
        num += d * d;
        den += (double)x[i] * x[i];
        rel += std::fabs(d) / std::fabs((double)x[i]);
        flushed += (y[i] == 0.0f);
    }
    const double n = (double)(x.size() - 1);
    return {std::sqrt(num / den), rel / n, 100.0 * flushed / n};
}

// One table row: the four quantizers on x, errors over every element but `skip`.
std::string outlier_row(const std::string& label, const std::vector<float>& x, int64_t M, int64_t K,
                        size_t skip) {
    std::ostringstream t;
    t << "| " << label << " |";
    for (const FloatFormat* f : {&kFormatE4M3, &kFormatE5M2})
        for (int64_t group : {M * K, kFp8Block}) {  // per tensor, then 1x128
            const QuantError e = quant_error(x, fake_quant(x, group, *f), skip);
            char cell[64];
            std::snprintf(cell, sizeof cell, " %.1f %% / %.1f %% / %.1f %% |", 100 * e.rel_rms,
                          100 * e.mean_rel, e.flushed_pct);
            t << cell;
        }
    t << "\n";
    return t.str();
}

std::string outlier_table() {
    const int64_t M = 64, K = 4096;  // a [tokens, channels] activation
    const size_t outlier = 17 * K + 1000, none = (size_t)-1;
    std::ostringstream t;
    t << "| input | E4M3 per tensor | E4M3 1x128 | E5M2 per tensor | E5M2 1x128 |\n";
    t << "|---|---:|---:|---:|---:|\n";
    for (float big : {0.0f, 10.0f, 100.0f, 1000.0f, 10000.0f, 100000.0f}) {
        std::vector<float> x = randn(M * K, 7);
        if (big > 0) x[outlier] = big;
        char label[64];
        if (big > 0)
            std::snprintf(label, sizeof label, "one outlier of %g", big);
        else
            std::snprintf(label, sizeof label, "N(0,1), no outlier");
        t << outlier_row(label, x, M, K, big > 0 ? outlier : none);
    }
    // No outlier, but token rows whose magnitudes spread over `spread` (row m scaled by spread^(-m/(M-1))),
    // as activation gradients do: one per-tensor scale must cover all of them.
    for (float spread : {1e2f, 1e4f, 1e6f}) {
        std::vector<float> x = randn(M * K, 7);
        for (int64_t m = 0; m < M; m++) {
            const float f = std::pow(spread, -(float)m / (float)(M - 1));
            for (int64_t k = 0; k < K; k++) x[m * K + k] *= f;
        }
        char label[64];
        std::snprintf(label, sizeof label, "rows spread over %g", spread);
        t << outlier_row(label, x, M, K, none);
    }
    return t.str();
}

// ---- 2. accumulation ------------------------------------------------------------------------------------
struct Series {
    std::string name;  // legend text
    int bits;          // acc_mantissa_bits
    AccRounding rounding;
    int64_t promote;  // 0 = never
    const char* color;
    bool dashed;
    std::vector<double> max_rel, mean_rel;  // one per K
};

// max|C - C_exact| / max|C_exact| and mean|C - C_exact| / mean|C_exact|.
void errors(const std::vector<float>& c, const std::vector<float>& exact, double* max_rel, double* mean_rel) {
    double max_d = 0, max_e = 0, sum_d = 0, sum_e = 0;
    for (size_t i = 0; i < c.size(); i++) {
        const double d = std::fabs((double)c[i] - exact[i]), e = std::fabs((double)exact[i]);
        max_d = std::max(max_d, d);
        max_e = std::max(max_e, e);
        sum_d += d;
        sum_e += e;
    }
    *max_rel = max_d / max_e;
    *mean_rel = sum_d / sum_e;
}

std::string fmt_err(double v) {
    char b[32];
    std::snprintf(b, sizeof b, "%.2e", v);
    return b;
}

std::string accumulation_table(const std::vector<int64_t>& Ks, const std::vector<Series>& series,
                               bool max_not_mean) {
    std::ostringstream t;
    t << "| K |";
    for (const Series& s : series) t << " " << s.name << " |";
    t << "\n|---:|";
    for (size_t i = 0; i < series.size(); i++) t << "---:|";
    t << "\n";
    for (size_t k = 0; k < Ks.size(); k++) {
        t << "| " << Ks[k] << " |";
        for (const Series& s : series)
            t << " " << fmt_err(max_not_mean ? s.max_rel[k] : s.mean_rel[k]) << " |";
        t << "\n";
    }
    return t.str();
}

// Log-log plot of max relative error against K: one polyline per series, solid = truncate, dashed = rne.
std::string accumulation_svg(const std::vector<int64_t>& Ks, const std::vector<Series>& series) {
    const double W = 760, H = 460, left = 80, right = 230, top = 40, bottom = 60;
    double lo = 1e300, hi = 0;
    for (const Series& s : series)
        for (double v : s.max_rel) lo = std::min(lo, v), hi = std::max(hi, v);
    const double y0 = std::floor(std::log10(lo)), y1 = std::ceil(std::log10(hi));  // decades shown
    const double x0 = std::log2((double)Ks.front()), x1 = std::log2((double)Ks.back());
    auto px = [&](double K) { return left + (std::log2(K) - x0) / (x1 - x0) * (W - left - right); };
    auto py = [&](double v) { return top + (y1 - std::log10(v)) / (y1 - y0) * (H - top - bottom); };
    std::ostringstream s;
    s << "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"" << W << "\" height=\"" << H
      << "\" font-family=\"sans-serif\" font-size=\"12\">\n";
    s << "<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n";
    s << "<text x=\"" << left
      << "\" y=\"22\" font-size=\"14\">FP8 GEMM, N(0,1) inputs, 13-bit tensor-core accumulator: "
         "max |C - C_exact| / max |C_exact|</text>\n";
    for (double d = y0; d <= y1; d += 1) {  // horizontal grid, one line per decade
        const double y = py(std::pow(10.0, d));
        s << "<line x1=\"" << left << "\" x2=\"" << W - right << "\" y1=\"" << y << "\" y2=\"" << y
          << "\" stroke=\"#ddd\"/>\n";
        s << "<text x=\"" << left - 8 << "\" y=\"" << y + 4 << "\" text-anchor=\"end\">1e" << (int)d
          << "</text>\n";
    }
    for (int64_t K : Ks) {  // vertical grid at each K
        const double x = px((double)K);
        s << "<line x1=\"" << x << "\" x2=\"" << x << "\" y1=\"" << top << "\" y2=\"" << H - bottom
          << "\" stroke=\"#eee\"/>\n";
        s << "<text x=\"" << x << "\" y=\"" << H - bottom + 18 << "\" text-anchor=\"middle\">" << K
          << "</text>\n";
    }
    s << "<text x=\"" << (left + W - right) / 2 << "\" y=\"" << H - 18
      << "\" text-anchor=\"middle\">K (inner dimension)</text>\n";
    s << "<rect x=\"" << left << "\" y=\"" << top << "\" width=\"" << W - left - right << "\" height=\""
      << H - top - bottom << "\" fill=\"none\" stroke=\"#444\"/>\n";
    // The report's data point: nearly 2 % at K = 4096 without promotion.
    s << "<circle cx=\"" << px(4096) << "\" cy=\"" << py(0.02)
      << "\" r=\"5\" fill=\"none\" stroke=\"black\"/>\n";
    s << "<text x=\"" << px(4096) + 8 << "\" y=\"" << py(0.02) - 8 << "\">V3 report: ~2 %</text>\n";
    for (size_t i = 0; i < series.size(); i++) {
        const Series& sr = series[i];
        s << "<polyline fill=\"none\" stroke=\"" << sr.color << "\" stroke-width=\"2\""
          << (sr.dashed ? " stroke-dasharray=\"6,4\"" : "") << " points=\"";
        for (size_t k = 0; k < Ks.size(); k++) s << px((double)Ks[k]) << "," << py(sr.max_rel[k]) << " ";
        s << "\"/>\n";
        for (size_t k = 0; k < Ks.size(); k++)  // a dot on each measured point
            s << "<circle cx=\"" << px((double)Ks[k]) << "\" cy=\"" << py(sr.max_rel[k])
              << "\" r=\"2.5\" fill=\"" << sr.color << "\"/>\n";
        const double ly = top + 10 + 20 * (double)i;  // legend entry
        s << "<line x1=\"" << W - right + 12 << "\" x2=\"" << W - right + 42 << "\" y1=\"" << ly << "\" y2=\""
          << ly << "\" stroke=\"" << sr.color << "\" stroke-width=\"2\""
          << (sr.dashed ? " stroke-dasharray=\"6,4\"" : "") << "/>\n";
        s << "<text x=\"" << W - right + 48 << "\" y=\"" << ly + 4 << "\">" << sr.name << "</text>\n";
    }
    s << "</svg>\n";
    return s.str();
}

void write_file(const std::string& path, const std::string& text) {
    std::ofstream f(path);
    f << text;
    if (!f) {
        std::fprintf(stderr, "cannot write %s\n", path.c_str());
        std::exit(1);
    }
}

}  // namespace

int main(int argc, char** argv) {
    const std::string out_dir = argc > 1 ? argv[1] : "build/walkthrough/05_fp8";
    std::filesystem::create_directories(out_dir);

    std::printf("== 1. Outliers and per-tensor scaling ==\n");
    std::printf(
        "x [64, 4096] ~ N(0,1), with one element replaced by an outlier, or with token rows scaled\n"
        "from 1 down to 1/spread; s = amax / max per group (one group = the tensor, or 1x128).\n");
    std::printf(
        "Each cell, over every element but the outlier: relative RMS error / mean of |x - y| / |x| /\n"
        "share flushed to zero.\n\n");
    const std::string outliers = outlier_table();
    std::printf("%s\n", outliers.c_str());

    std::printf(
        "== 2. Accumulation precision: max |C - C_exact| / max |C_exact|, M = N = 64, N(0,1) inputs ==\n");
    std::printf("One scale per tensor (constant along K), so every promotion interval is allowed.\n\n");
    const std::vector<int64_t> Ks = {512, 1024, 2048, 4096, 8192, 16384};
    std::vector<Series> series = {
        {"never, trunc", 13, AccRounding::Truncate, 0, "#d62728", false, {}, {}},
        {"512, trunc", 13, AccRounding::Truncate, 512, "#ff7f0e", false, {}, {}},
        {"256, trunc", 13, AccRounding::Truncate, 256, "#2ca02c", false, {}, {}},
        {"128, trunc", 13, AccRounding::Truncate, 128, "#1f77b4", false, {}, {}},
        {"never, rne", 13, AccRounding::Rne, 0, "#d62728", true, {}, {}},
        {"512, rne", 13, AccRounding::Rne, 512, "#ff7f0e", true, {}, {}},
        {"256, rne", 13, AccRounding::Rne, 256, "#2ca02c", true, {}, {}},
        {"128, rne", 13, AccRounding::Rne, 128, "#1f77b4", true, {}, {}},
        {"fp32 acc, never", 23, AccRounding::Rne, 0, "#7f7f7f", true, {}, {}},
    };
    const int64_t M = 64, N = 64;
    for (int64_t K : Ks) {
        const int64_t KB = K / kFp8Block;
        const std::vector<float> x = randn(M * K, 100 + K), w = randn(N * K, 200 + K);  // [M, K], [N, K]
        std::vector<uint8_t> a(M * K), b(N * K);
        const std::vector<float> a_s(M * KB,
                                     fp8_quant_per_tensor(a.data(), x.data(), M * K, Fp8ScaleFmt::Fp32));
        const std::vector<float> b_s(KB, fp8_quant_per_tensor(b.data(), w.data(), N * K, Fp8ScaleFmt::Fp32));
        std::vector<float> exact(M * N), c(M * N);
        fp8_gemm(exact.data(), a.data(), a_s.data(), b.data(), b_s.data(), M, N, K, Fp8GemmConfig());
        for (Series& s : series) {
            Fp8GemmConfig cfg;
            cfg.accum = Fp8Accum::TensorCore;
            cfg.acc_mantissa_bits = s.bits;
            cfg.acc_rounding = s.rounding;
            cfg.promote_interval = s.promote;
            fp8_gemm(c.data(), a.data(), a_s.data(), b.data(), b_s.data(), M, N, K, cfg);
            double mx, mean;
            errors(c, exact, &mx, &mean);
            s.max_rel.push_back(mx);
            s.mean_rel.push_back(mean);
        }
    }
    const std::string max_table = accumulation_table(Ks, series, true);
    const std::string mean_table = accumulation_table(Ks, series, false);
    std::printf("max |C - C_exact| / max |C_exact|  (columns: promotion interval, rounding)\n\n%s\n",
                max_table.c_str());
    std::printf("mean |C - C_exact| / mean |C_exact|\n\n%s\n", mean_table.c_str());

    write_file(out_dir + "/fp8_outliers.md", outliers);
    write_file(out_dir + "/fp8_accumulation.md", "max |C - C_exact| / max |C_exact|\n\n" + max_table +
                                                     "\nmean |C - C_exact| / mean |C_exact|\n\n" +
                                                     mean_table);
    write_file(out_dir + "/fp8_accumulation.svg", accumulation_svg(Ks, series));
    std::printf("wrote %s/fp8_outliers.md, fp8_accumulation.md, fp8_accumulation.svg\n", out_dir.c_str());
    return 0;
}
