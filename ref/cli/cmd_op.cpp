// cmd_op.cpp — `dsref op`: the generic op runner over the registry (ref/ops/op_registry.h).
//   dsref op --list
//   dsref op NAME --help
//   dsref op NAME --in IN.safetensors --out OUT.safetensors [--set key=value]...
#include <chrono>
#include <cstdio>
#include <iostream>

#include "cli.h"
#include "core/error.h"
#include "ops/op_registry.h"
#include "io/safetensors.h"

namespace dsref::cli {

void add_op(CLI::App& app) {
    struct Opts {
        std::string name, in, out;
        std::vector<std::string> sets;
        bool list = false, help = false;
        int threads = 0;
    };
    auto o = std::make_shared<Opts>();
    CLI::App* cmd = app.add_subcommand("op", "run one reference op on named tensors");
    cmd->set_help_flag();  // --help is ours: with an op name it prints that op's documentation
    cmd->add_flag("-h,--help", o->help, "this help, or an op's inputs/attributes/outputs with NAME");
    cmd->add_option("NAME", o->name, "op name (see --list)");
    cmd->add_flag("--list", o->list, "list the ops");
    cmd->add_option("--in", o->in, "input safetensors file with the op's named tensors");
    cmd->add_option("--out", o->out, "output safetensors file");
    cmd->add_option("--set", o->sets, "attribute key=value (repeatable; int, float, true/false or a string)");
    add_threads_option(cmd, &o->threads);
    cmd->footer("\nExample: dsref op rmsnorm --in x.safetensors --out y.safetensors --set eps=1e-5");
    cmd->callback([o, cmd]() {
        if (o->list) {
            for (const OpSpec* s : list_ops()) std::printf("%-20s %s\n", s->name.c_str(), s->summary.c_str());
            return;
        }
        if (o->help) {
            if (o->name.empty()) {
                std::cout << cmd->help();
                return;
            }
            const OpSpec* s = find_op(o->name);
            if (!s) usage_fail("unknown op '", o->name, "' (dsref op --list shows them)");
            std::cout << "dsref op " << s->name << " — " << s->summary << "\n\n" << s->help;
            return;
        }
        if (o->name.empty()) usage_fail("op: give an op NAME, or --list");
        if (!find_op(o->name)) usage_fail("unknown op '", o->name, "' (dsref op --list shows them)");
        if (o->in.empty() || o->out.empty()) usage_fail("op ", o->name, ": --in and --out are required");
        apply_threads(o->threads);
        check_output_path(o->out, "--out");
        OpAttrs attrs;
        for (const std::string& kv : o->sets) {
            const size_t eq = kv.find('=');
            if (eq == std::string::npos || eq == 0) usage_fail("--set '", kv, "': expected key=value");
            attrs.set(kv.substr(0, eq), kv.substr(eq + 1));
        }
        const TensorMap inputs = read_safetensors(o->in);
        const TensorMap outputs = run_op(o->name, inputs, attrs);
        write_safetensors(o->out, outputs);
    });
}

}  // namespace dsref::cli
