// bench_train.cpp — `make bench`, training part: `dsref train` tokens/s on the demo model's shape
// (data/demo_v3/init.config.json: 0.92 M parameters, MLA + DeepSeekMoE, vocab 512) with batches of
// 8 × 128 tokens, at 1 and 2 threads; then, in the same run, the same step in PyTorch eager
// (transformers' DeepseekV3ForCausalLM, float32, autograd + torch.optim.AdamW on the same init and
// batches: data/train/bench_torch.py) when Python can import torch and transformers (never needed).
// Target: dsref ≥ 1.5× PyTorch. Each figure is the median tokens_per_s of the timed steps (the first
// two are warm-up); a shared 2-core machine is noisy, so only ratios within one run mean much.
#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

static double median_tps(const std::string& csv) {
    std::ifstream f(csv);
    std::string line;
    std::getline(f, line);
    std::vector<double> v;
    for (int k = 0; std::getline(f, line); k++) {
        if (k < 2) continue;  // warm-up
        std::stringstream ss(line);
        std::string x;
        for (int i = 0; i <= 7; i++) std::getline(ss, x, ',');
        v.push_back(std::stod(x));
    }
    if (v.empty()) return 0;
    std::sort(v.begin(), v.end());
    return v[v.size() / 2];
}

int main() {
    const std::string cfg = "data/demo_v3/init.config.json", text = "data/demo_v3/train.txt";
    if (!std::filesystem::exists(cfg) || !std::filesystem::exists("build/dsref")) {
        std::printf("bench_train: SKIP, run from the repository root after building build/dsref\n");
        return 0;
    }
    const std::string dir = "build/bench_train";
    std::filesystem::remove_all(dir);  // init writes only into a new or empty folder (a rerun of make bench)
    std::filesystem::create_directories(dir);
    if (std::system(("build/dsref init --config " + cfg + " --seed 3 --out " + dir + "/init >/dev/null").c_str()) != 0)
        return 1;
    if (std::system(("build/dsref tokenize --tokenizer data/demo_v3/tokenizer.json --file " + text + " | tr ',' '\\n' > " +
                     dir + "/ids.txt").c_str()) != 0)
        return 1;
    // the ids as the .bin the trainer and the PyTorch script both read
    {
        std::ifstream in(dir + "/ids.txt");
        std::ofstream out(dir + "/ids.bin", std::ios::binary);
        for (long v; in >> v;) {
            const unsigned char b[4] = {(unsigned char)(v & 255), (unsigned char)((v >> 8) & 255),
                                        (unsigned char)((v >> 16) & 255), (unsigned char)(v >> 24)};
            out.write((const char*)b, 4);
        }
    }
    const int steps = 12, B = 8, S = 128;
    std::printf("training: demo V3 shape (data/demo_v3/init.config.json), batch %d x %d tokens, AdamW\n", B, S);
    double tps_at[3] = {0, 0, 0};
    for (int th : {1, 2}) {
        const std::string csv = dir + "/t" + std::to_string(th) + ".csv";
        const std::string cmd = "build/dsref train --model " + dir + "/init --data " + dir + "/ids.bin --out " + dir +
                                "/out --steps " + std::to_string(steps) + " --batch " + std::to_string(B) +
                                " --seq-len " + std::to_string(S) + " --lr 3e-3 --log " + csv + " --threads " +
                                std::to_string(th) + " 2>/dev/null";
        if (std::system(cmd.c_str()) != 0) return 1;
        const double tps = median_tps(csv);
        tps_at[th] = tps;
        std::printf("  dsref train         %8.0f tokens/s (%d thread%s, median of %d steps)\n", tps, th,
                    th == 1 ? "" : "s", steps - 2);
    }
    std::fflush(stdout);
    const char* py = std::getenv("PYTHON");
    const std::string python = py && *py ? py : "python3";
    if (std::system((python + " -c 'import torch, transformers' >/dev/null 2>&1").c_str()) != 0) {
        std::printf("  PyTorch eager       torch + transformers not importable by %s (PYTHON=... to choose one): "
                    "not measured\n", python.c_str());
        return 0;
    }
    const std::string cmd = python + " data/train/bench_torch.py " + dir + "/init " + dir + "/ids.bin " +
                            std::to_string(steps) + " " + std::to_string(B) + " " + std::to_string(S) + " " +
                            std::to_string(tps_at[1]) + " " + std::to_string(tps_at[2]);
    return std::system(cmd.c_str()) == 0 ? 0 : 1;
}
