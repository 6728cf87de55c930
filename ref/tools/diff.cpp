// diff.cpp — element-wise comparison of two tensor sets.
#include "tools/diff.h"

#include <algorithm>
#include <cmath>
#include <set>

namespace dsref {

static bool is_logits(const std::string& n) { return n.rfind("logits", 0) == 0 || n.rfind("mtp_logits", 0) == 0; }

static int64_t row_argmax(const std::vector<double>& x, int64_t r, int64_t V) {
    int64_t best = r * V;
    for (int64_t i = r * V; i < (r + 1) * V; i++)
        if (x[i] > x[best]) best = i;
    return best - r * V;
}

std::vector<TensorDiff> diff_tensors(const TensorMap& a, const TensorMap& b, double atol, double rtol) {
    std::set<std::string> names;
    for (const auto& kv : a) names.insert(kv.first);
    for (const auto& kv : b) names.insert(kv.first);
    std::vector<TensorDiff> out;
    for (const std::string& n : names) {
        TensorDiff d;
        d.name = n;
        auto ia = a.find(n), ib = b.find(n);
        if (ia == a.end() || ib == b.end()) {
            d.problem = ia == a.end() ? "only in B" : "only in A";
            out.push_back(d);
            continue;
        }
        if (ia->second.shape != ib->second.shape) {
            d.problem = "shape " + shape_str(ia->second.shape) + " vs " + shape_str(ib->second.shape);
            out.push_back(d);
            continue;
        }
        d.shape = ia->second.shape;
        const std::vector<double> x = ia->second.to_f64(), y = ib->second.to_f64();
        double ymax = 0;
        for (size_t i = 0; i < x.size(); i++) {
            const bool nx = std::isnan(x[i]), ny = std::isnan(y[i]);
            if (nx || ny) {
                if (nx != ny) d.n_bad++, d.max_abs = INFINITY;
                continue;
            }
            if (std::isinf(x[i]) || std::isinf(y[i])) {
                if (x[i] != y[i]) d.n_bad++, d.max_abs = INFINITY;
                continue;
            }
            const double e = std::fabs(x[i] - y[i]);
            d.max_abs = std::max(d.max_abs, e);
            ymax = std::max(ymax, std::fabs(y[i]));
            if (!(e <= atol + rtol * std::fabs(y[i]))) d.n_bad++;
        }
        d.max_rel = ymax > 0 ? d.max_abs / ymax : (d.max_abs > 0 ? INFINITY : 0.0);
        if (is_logits(n) && !d.shape.empty() && d.shape.back() > 0) {
            const int64_t V = d.shape.back();
            d.rows = (int64_t)x.size() / V;
            d.argmax_agree = 0;
            for (int64_t r = 0; r < d.rows; r++) d.argmax_agree += row_argmax(x, r, V) == row_argmax(y, r, V);
        }
        d.ok = d.n_bad == 0;
        out.push_back(d);
    }
    return out;
}

}  // namespace dsref
