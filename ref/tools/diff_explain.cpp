// diff_explain.cpp — the first diverging tensor of two dumps, in forward order (tools/diff_explain.h).
#include "tools/diff_explain.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <set>
#include <sstream>

namespace dsref {

namespace {

// The place of a name in the forward: tokens first, then per layer the order a decoder layer computes its
// intermediates, then the heads; unknown names last.
const std::vector<std::string> kLayerOrder = {"q_nope", "q_pe", "kv_latent", "k_pe", "attn",
                                              "topk_idx", "topk_weight", "hidden"};
struct Key {
    int64_t group, layer, pos;
    std::string name;
    bool operator<(const Key& o) const {
        return std::tie(group, layer, pos, name) < std::tie(o.group, o.layer, o.pos, o.name);
    }
};
Key key_of(const std::string& n) {
    if (n == "tokens") return {0, 0, 0, n};
    if (n.rfind("logits", 0) == 0) return {2, 0, 0, n};
    if (n.rfind("mtp_logits", 0) == 0) return {2, 1, 0, n};
    const size_t dot = n.rfind('.');
    if (dot != std::string::npos && dot + 1 < n.size() &&
        n.find_first_not_of("0123456789", dot + 1) == std::string::npos) {
        const auto it = std::find(kLayerOrder.begin(), kLayerOrder.end(), n.substr(0, dot));
        if (it != kLayerOrder.end()) return {1, std::stoll(n.substr(dot + 1)), it - kLayerOrder.begin(), n};
    }
    return {3, 0, 0, n};
}
std::string base_of(const std::string& n) { return n.substr(0, n.rfind('.')); }
int64_t layer_of(const std::string& n) { return key_of(n).layer; }

std::string index_str(int64_t i, const Shape& s) {
    std::vector<int64_t> idx(s.size());
    for (int64_t d = (int64_t)s.size() - 1; d >= 0; d--) {
        idx[d] = s[d] ? i % s[d] : 0;
        i = s[d] ? i / s[d] : 0;
    }
    std::string out = "[";
    for (size_t d = 0; d < idx.size(); d++) out += (d ? ", " : "") + std::to_string(idx[d]);
    return out + "]";
}

// max |a − b| and the first element outside atol + rtol·|b| (-1 when none); NaN matches only NaN.
struct Compare {
    double max_abs = 0;
    int64_t first_bad = -1;
};
Compare compare(const std::vector<double>& a, const std::vector<double>& b, double atol, double rtol) {
    Compare c;
    for (size_t i = 0; i < a.size(); i++) {
        const bool na = std::isnan(a[i]), nb = std::isnan(b[i]);
        double e = (na || nb) ? (na == nb ? 0.0 : INFINITY) : std::fabs(a[i] - b[i]);
        if (std::isinf(a[i]) || std::isinf(b[i])) e = a[i] == b[i] ? 0.0 : INFINITY;
        c.max_abs = std::max(c.max_abs, e);
        if (c.first_bad < 0 && !(e <= atol + rtol * (nb ? 0.0 : std::fabs(b[i])))) c.first_bad = (int64_t)i;
    }
    return c;
}

// transformers' de-interleave of each d_r vector: position j holds the checkpoint's element from(j).
std::vector<double> deinterleave(const std::vector<double>& x, int64_t d_r) {
    std::vector<double> y(x.size());
    const int64_t P = d_r / 2;
    for (size_t v = 0; v < x.size() / d_r; v++)
        for (int64_t j = 0; j < d_r; j++) y[v * d_r + j] = x[v * d_r + (j < P ? 2 * j : 2 * (j - P) + 1)];
    return y;
}

std::string fmt(double v) {
    std::ostringstream s;
    s.precision(3);
    s << std::scientific << v;
    return s.str();
}

std::string set_str(const std::vector<int64_t>& v) {
    std::string s = "{";
    for (size_t i = 0; i < v.size(); i++) s += (i ? ", " : "") + std::to_string(v[i]);
    return s + "}";
}

// What the first diverging tensor says about where the computations part.
std::string blame(const std::string& name, const std::set<std::string>& agreed) {
    const std::string b = base_of(name);
    const int64_t i = layer_of(name);
    const std::string L = "layer " + std::to_string(i);
    const std::string prev = "hidden." + std::to_string(i - 1);
    const std::string in_ok = i > 0 && agreed.count(prev) ? " (its input, " + prev + ", agrees)" : "";
    if (name == "tokens") return "the two dumps ran different token ids";
    if (name.rfind("mtp_logits", 0) == 0) return "the MTP module (enorm, hnorm, eh_proj, its decoder layer, shared_head)";
    if (name.rfind("logits", 0) == 0) return "after the last decoder layer: model.norm or lm_head";
    if (b == "q_nope") return L + ", attention: the query path (q_a_proj, q_a_layernorm, q_b_proj or q_proj)" + in_ok;
    if (b == "q_pe") return L + ", attention: the rope part of the query (its projection rows, or RoPE)" + in_ok;
    if (b == "kv_latent") return L + ", attention: the latent (kv_a_proj_with_mqa or kv_a_layernorm)" + in_ok;
    if (b == "k_pe") return L + ", attention: the rope key (the last d_r rows of kv_a_proj_with_mqa, or RoPE)" + in_ok;
    if (b == "attn") return L + ": the attention block (projections, RoPE, softmax scale, cache or o_proj)" + in_ok;
    if (b == "topk_idx")
        return L + ", MoE router: tokens route to other experts (gate.weight, e_score_correction_bias, scores, "
                   "group selection)";
    if (b == "topk_weight") return L + ", MoE router: the same experts with other combine weights (normalization, "
                                       "routed_scaling_factor)";
    if (b == "hidden") {
        if (agreed.count("attn." + std::to_string(i)))
            return L + ": the feed-forward block (dense MLP or MoE experts, shared expert, combine) or a residual add "
                       "(attn." + std::to_string(i) + " agrees)";
        return L + " (attn." + std::to_string(i) + " is not in both dumps: attention or feed-forward)";
    }
    return "tensor " + name;
}

}  // namespace

std::vector<std::string> forward_order(const TensorMap& a, const TensorMap& b) {
    std::set<Key> keys;
    for (const auto& kv : a) keys.insert(key_of(kv.first));
    for (const auto& kv : b) keys.insert(key_of(kv.first));
    std::vector<std::string> out;
    for (const Key& k : keys) out.push_back(k.name);
    return out;
}

DiffExplanation explain_diff(const TensorMap& a, const TensorMap& b, double atol, double rtol) {
    DiffExplanation e;
    std::set<std::string> agreed;
    for (const std::string& n : forward_order(a, b)) {
        const auto ia = a.find(n), ib = b.find(n);
        ExplainStep s{n, "", ""};
        if (ia == a.end() || ib == b.end()) {
            s.status = ia == a.end() ? "only in B" : "only in A";
            if (e.first < 0) e.steps.push_back(s);
            continue;
        }
        const Tensor &ta = ia->second, &tb = ib->second;
        if (ta.shape != tb.shape) {
            s.status = "DIVERGES";
            s.detail = "shape " + shape_str(ta.shape) + " vs " + shape_str(tb.shape);
        } else if (base_of(n) == "topk_idx" && !ta.shape.empty()) {
            const int64_t K = ta.shape.back(), T = K ? ta.numel() / K : 0;
            std::vector<int64_t> x = ta.to_i64(), y = tb.to_i64();
            const bool same_order = x == y;
            int64_t moved = 0, first = -1;
            std::vector<int64_t> fa, fb;
            for (int64_t t = 0; t < T; t++) {
                std::vector<int64_t> ra(x.begin() + t * K, x.begin() + (t + 1) * K), rb(y.begin() + t * K, y.begin() + (t + 1) * K);
                std::sort(ra.begin(), ra.end());
                std::sort(rb.begin(), rb.end());
                if (ra != rb) {
                    if (first < 0) first = t, fa = ra, fb = rb;
                    moved++;
                }
            }
            if (moved) {
                s.status = "DIVERGES";
                s.detail = std::to_string(moved) + " of " + std::to_string(T) + " tokens route to other experts (first: token " +
                           std::to_string(first) + ", A " + set_str(fa) + " vs B " + set_str(fb) + ")";
            } else {
                s.status = same_order ? "ok" : "ok (reordered)";
                s.detail = same_order ? "same experts" : "same experts for every token, in another order (top-k order "
                                                         "is unspecified; transformers' is unsorted)";
            }
        } else {
            std::vector<double> x = ta.to_f64(), y = tb.to_f64();
            const std::string base = base_of(n);
            if (base == "topk_weight" && !ta.shape.empty()) {  // align both by expert id, as topk_idx is compared
                const std::string idx = "topk_idx." + std::to_string(layer_of(n));
                if (a.count(idx) && b.count(idx) && a.at(idx).shape == ta.shape && b.at(idx).shape == tb.shape) {
                    const int64_t K = ta.shape.back();
                    const std::vector<int64_t> xa = a.at(idx).to_i64(), xb = b.at(idx).to_i64();
                    auto align = [K](std::vector<double>& w, const std::vector<int64_t>& id) {
                        for (size_t t = 0; t * K < w.size(); t++) {
                            std::vector<std::pair<int64_t, double>> r;
                            for (int64_t k = 0; k < K; k++) r.push_back({id[t * K + k], w[t * K + k]});
                            std::sort(r.begin(), r.end());
                            for (int64_t k = 0; k < K; k++) w[t * K + k] = r[k].second;
                        }
                    };
                    align(x, xa);
                    align(y, xb);
                }
            }
            const Compare c = compare(x, y, atol, rtol);
            s.detail = "max |Δ| " + fmt(c.max_abs);
            if (c.first_bad < 0) {
                s.status = "ok";
            } else if ((base == "q_pe" || base == "k_pe") && !ta.shape.empty() && ta.shape.back() % 2 == 0) {
                const int64_t d_r = ta.shape.back();
                const Compare p1 = compare(deinterleave(x, d_r), y, atol, rtol), p2 = compare(x, deinterleave(y, d_r), atol, rtol);
                if (p1.first_bad < 0 || p2.first_bad < 0) {
                    s.status = "ok (permuted)";
                    s.detail = std::string("equal (max |Δ| ") + fmt(std::min(p1.max_abs, p2.max_abs)) +
                               ") after transformers' de-interleave of " + (p1.first_bad < 0 ? "A" : "B") +
                               " ([x0, x2, .., x1, x3, ..]): the same pairs rotated, the same scores";
                }
            }
            if (s.status.empty()) {
                s.status = "DIVERGES";
                s.detail += ", first out of tolerance at " + index_str(c.first_bad, ta.shape) + ": A " +
                            fmt(x[c.first_bad]) + " vs B " + fmt(y[c.first_bad]);
                if ((base == "q_pe" || base == "k_pe") && !ta.shape.empty() && ta.shape.back() % 2 == 0) {
                    const int64_t d_r = ta.shape.back();
                    s.detail += "; after transformers' de-interleave still max |Δ| " +
                                fmt(std::min(compare(deinterleave(x, d_r), y, atol, rtol).max_abs,
                                             compare(x, deinterleave(y, d_r), atol, rtol).max_abs));
                }
            }
        }
        if (s.status.rfind("ok", 0) == 0) {
            agreed.insert(n);
            if (e.first < 0) e.steps.push_back(s);
            continue;
        }
        if (e.first >= 0) {
            e.later++;
            continue;
        }
        e.first = (int64_t)e.steps.size();
        e.steps.push_back(s);
        e.conclusion = "first divergence: " + n + ", " + blame(n, agreed) + ".";
    }
    if (e.first < 0) e.conclusion = "no divergence: every tensor in both dumps is within tolerance (known layout "
                                    "differences accounted for).";
    else if (e.later)
        e.conclusion += " " + std::to_string(e.later) + " later tensor" + (e.later > 1 ? "s differ" : " differs") +
                        " as well (inherited).";
    return e;
}

}  // namespace dsref
