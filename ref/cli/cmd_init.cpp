// cmd_init.cpp — `dsref init`: a random-weight checkpoint with the exact HF names and shapes.
#include <iostream>

#include "cli.h"
#include "config.h"
#include "error.h"
#include "init.h"

namespace dsref::cli {

void add_init(CLI::App& app) {
    struct Opts {
        std::string config, out, dtype = "f32";
        uint64_t seed = 0;
        int shards = 1;
    };
    auto o = std::make_shared<Opts>();
    CLI::App* cmd = app.add_subcommand("init", "write a random-weight HF checkpoint for a config");
    cmd->add_option("--config", o->config, "HF config.json (or a directory holding one)")->required();
    cmd->add_option("--seed", o->seed, "random seed")->required();
    cmd->add_option("--out", o->out, "output directory (created)")->required();
    cmd->add_option("--dtype", o->dtype, "storage of the weights: f32 (default) or bf16");
    cmd->add_option("--shards", o->shards, "split into this many shards with an index (default 1)")
        ->check(CLI::PositiveNumber);
    cmd->callback([o]() {
        DType t;
        if (o->dtype == "f32") t = DType::F32;
        else if (o->dtype == "bf16") t = DType::BF16;
        else usage_fail("--dtype must be f32 or bf16, got '", o->dtype, "'");
        const ModelConfig c = load_config(o->config);
        init_checkpoint(c, InitOptions{o->seed, t, o->shards}, o->out);
        std::cerr << "dsref init: wrote a random " << arch_name(c.arch) << " checkpoint to " << o->out << "\n";
    });
}

}  // namespace dsref::cli
