// cmd_diff.cpp — `dsref diff A B`: per-tensor max abs / rel difference and logits argmax agreement.
// Exit 0 when every tensor is within tolerance, 1 otherwise.
#include <cmath>
#include <cstdio>
#include <cstdlib>

#include "cli.h"
#include "io/safetensors.h"
#include "tools/diff.h"
#include "tools/diff_explain.h"

namespace dsref::cli {

void add_diff(CLI::App& app) {
    struct Opts {
        std::string a, b;
        double atol = 1e-4, rtol = 0.0;
        bool explain = false, require_argmax = false;
    };
    auto o = std::make_shared<Opts>();
    CLI::App* cmd = app.add_subcommand("diff", "compare two safetensors files tensor by tensor");
    cmd->footer(
        "\nA tensor passes when every element has |a - b| <= atol + rtol*|b| (NaN matches only NaN).\n"
        "rel = max|a - b| / max|b|. For tensors named logits* the argmax of each row is compared and\n"
        "reported; with --require-argmax a logits tensor whose rows do not all agree fails too.\n"
        "Exit 0 when all tensors pass, 1 otherwise.\n"
        "\n"
        "--explain walks the --dump names in forward order (per layer i: q_nope.i, q_pe.i, kv_latent.i,\n"
        "k_pe.i, attn.i, topk_idx.i, topk_weight.i, hidden.i; then logits) and names the first tensor beyond\n"
        "tolerance, the layer and the block it points to. q_pe/k_pe that differ only by transformers'\n"
        "de-interleave ([x0, x2, .., x1, x3, ..]) and topk_idx rows in another order are recognized and not\n"
        "divergences; topk_idx reports how many tokens route to other experts. Exit 0 when nothing diverges,\n"
        "1 otherwise. An engine's hooks map onto the names as README.md (\"diff --explain\") lists: for\n"
        "transformers, model.layers.{i} output -> hidden.{i}, model.layers.{i}.self_attn output[0] -> attn.{i},\n"
        "model.layers.{i}.mlp.gate output[2] / [1] -> topk_idx.{i} / topk_weight.{i},\n"
        "model.layers.{i}.self_attn.kv_a_layernorm output -> kv_latent.{i}, lm_head output -> logits.");
    cmd->add_option("A", o->a, "first file")->required();
    cmd->add_option("B", o->b, "second file (the reference for rtol)")->required();
    cmd->add_option("--atol", o->atol, "absolute tolerance (default 1e-4)")->check(non_negative());
    cmd->add_option("--rtol", o->rtol, "relative tolerance (default 0)")->check(non_negative());
    cmd->add_flag("--require-argmax", o->require_argmax, "logits tensors also fail when any row's argmax differs");
    cmd->add_flag("--explain", o->explain, "name the first tensor, in forward order, where A and B part");
    cmd->callback([o]() {
        if (o->explain) {
            const DiffExplanation e = explain_diff(read_safetensors(o->a), read_safetensors(o->b), o->atol, o->rtol);
            std::printf("%-20s %-16s %s\n", "tensor", "status", "detail");
            for (const ExplainStep& s : e.steps)
                std::printf("%-20s %-16s %s\n", s.name.c_str(), s.status.c_str(), s.detail.c_str());
            std::printf("%s (atol %g, rtol %g)\n", e.conclusion.c_str(), o->atol, o->rtol);
            std::fflush(stdout);
            if (e.first >= 0) std::exit(1);
            return;
        }
        const std::vector<TensorDiff> diffs = diff_tensors(read_safetensors(o->a), read_safetensors(o->b), o->atol, o->rtol);
        bool all_ok = true;
        std::printf("%-24s %-16s %12s %12s %10s  %s\n", "tensor", "shape", "max_abs", "max_rel", "argmax", "status");
        for (TensorDiff d : diffs) {
            if (o->require_argmax && d.argmax_agree >= 0 && d.argmax_agree != d.rows) d.ok = false;
            all_ok = all_ok && d.ok;
            if (!d.problem.empty()) {
                std::printf("%-24s %-16s %12s %12s %10s  FAIL (%s)\n", d.name.c_str(), "", "", "", "", d.problem.c_str());
                continue;
            }
            char am[32] = "-";
            if (d.argmax_agree >= 0) std::snprintf(am, sizeof am, "%lld/%lld", (long long)d.argmax_agree, (long long)d.rows);
            std::printf("%-24s %-16s %12.3e %12.3e %10s  %s\n", d.name.c_str(), shape_str(d.shape).c_str(), d.max_abs,
                        d.max_rel, am, d.ok ? "ok" : "FAIL");
        }
        std::printf("%s (atol %g, rtol %g)\n", all_ok ? "all tensors within tolerance" : "DIFFERENT", o->atol, o->rtol);
        std::fflush(stdout);
        if (!all_ok) std::exit(1);
    });
}

}  // namespace dsref::cli
