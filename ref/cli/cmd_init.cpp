// cmd_init.cpp — `dsref init`: a random-weight checkpoint with the exact HF names and shapes.
#include <iostream>

#include "cli.h"
#include "io/config.h"
#include "core/error.h"
#include "io/config_v4.h"
#include "tools/init.h"
#include "tools/init_v4.h"

namespace dsref::cli {

void add_init(CLI::App& app) {
    struct Opts {
        std::string config, out, dtype = "f32";
        std::string seed;
        int shards = 1;
        double bias_offset = 0.0;
    };
    auto o = std::make_shared<Opts>();
    CLI::App* cmd = app.add_subcommand("init", "write a random-weight HF checkpoint for a config");
    cmd->add_option("--config", o->config, "HF config.json (or a directory holding one)")->required();
    cmd->add_option("--seed", o->seed, "random seed")->required();
    cmd->add_option("--out", o->out, "output directory (created)")->required();
    cmd->add_option("--dtype", o->dtype, "storage of the weights: f32 (default) or bf16");
    cmd->add_option("--shards", o->shards, "split into this many shards with an index (default 1)")
        ->check(positive());
    cmd->add_option("--bias-offset", o->bias_offset,
                    "add this to every e_score_correction_bias value (drawn 0.1·N(0,1)); e.g. -1 makes a "
                    "negative-bias V3 model where -inf and 0.0 group masking differ (default 0)");
    cmd->footer(
        "\nWrites config.json and every tensor of the config's HF layout (names and shapes), including the\n"
        "num_nextn_predict_layers MTP layers. With a quantization_config (quant_method fp8) every\n"
        "projection is stored F8_E4M3 with <name>_scale_inv F32 [ceil(R/br), ceil(C/bc)]\n"
        "(weight_block_size, default 128x128; s = amax/448 per block over its real elements);\n"
        "embedding, head, norms, router gate, eh_proj and shared_head use --dtype; the router bias is F32.\n"
        "With --shards N > 1 tensors are dealt round-robin in name order, so a weight and its\n"
        "weight_scale_inv land in different shards.");
    cmd->callback([o]() {
        DType t;
        if (o->dtype == "f32") t = DType::F32;
        else if (o->dtype == "bf16") t = DType::BF16;
        else usage_fail("--dtype must be f32 or bf16, got '", o->dtype, "'");
        InitOptions io;
        io.seed = parse_seed(o->seed);
        if (path_is_v4_config(o->config)) {  // DeepSeek-V4: the official layout (tools/init_v4.h)
            io.dtype = t, io.shards = o->shards, io.bias_offset = o->bias_offset;
            init_v4_checkpoint(o->config, io, o->out);
            std::cerr << "dsref init: wrote a random deepseek_v4 checkpoint to " << o->out << "\n";
            return;
        }
        const ModelConfig c = load_config(o->config);
        io.dtype = t;
        io.shards = o->shards;
        io.bias_offset = o->bias_offset;
        init_checkpoint(c, io, o->out);
        std::cerr << "dsref init: wrote a random " << arch_name(c.arch) << " checkpoint to " << o->out << "\n";
    });
}

}  // namespace dsref::cli
