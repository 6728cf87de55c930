#!/usr/bin/env python3
"""transformers_prefill.py — the PyTorch baseline of `make bench-speed` (data/bench/bench_speed.sh):
transformers' own DeepseekV3ForCausalLM (or LlamaForCausalLM), loaded from the SAME checkpoint dsref reads,
timed on a causal prefill of T tokens in float32 with the weights in memory.

    python transformers_prefill.py --model DIR --T 256 --threads 1 --repeat 5 [--compare DSREF_OUT.safetensors]

Prints one line `transformers prefill median X ms over N runs (load Y ms) attn=... experts=...`. The
tokens are (t * 7919 + 13) mod vocab, the ones bench_speed.sh gives `dsref forward`; --compare prints the
largest difference of the last row of logits against dsref's, so the bench shows both ran the same model. Not part of any test.
"""
import argparse
import json
import os
import statistics
import time


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", required=True)
    ap.add_argument("--T", type=int, required=True)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--experts", default=None, help="transformers experts_implementation (default: its own choice)")
    ap.add_argument("--compare", default=None, help="a `dsref forward --last-only` output: print the largest logit difference")
    a = ap.parse_args()

    import torch  # imported after the thread count is known
    torch.set_num_threads(a.threads)
    torch.set_num_interop_threads(1)
    import transformers

    cfg = json.load(open(os.path.join(a.model, "config.json")))
    V = cfg["vocab_size"]
    kw = {"dtype": torch.float32}
    if a.experts:
        kw["experts_implementation"] = a.experts
    t0 = time.perf_counter()
    model = transformers.AutoModelForCausalLM.from_pretrained(a.model, **kw)
    model.eval()
    load_ms = (time.perf_counter() - t0) * 1e3
    ids = torch.tensor([[(t * 7919 + 13) % V for t in range(a.T)]])
    times = []
    with torch.inference_mode():
        out = model(input_ids=ids, use_cache=False, logits_to_keep=1)  # warm-up
        for _ in range(a.repeat):
            t0 = time.perf_counter()
            out = model(input_ids=ids, use_cache=False, logits_to_keep=1)
            times.append((time.perf_counter() - t0) * 1e3)
    diff = ""
    if a.compare:
        import numpy as np
        from safetensors.numpy import load_file
        ref = load_file(a.compare)["logits"][-1]
        diff = f" max_abs_diff={float(np.abs(ref - out.logits[0, -1].float().numpy()).max()):.1e}"
    attn = getattr(model.config, "_attn_implementation", "?")
    experts = getattr(model.config, "_experts_implementation", "-")
    print(f"transformers prefill median {statistics.median(times):.3f} ms over {a.repeat} runs (load {load_ms:.3f} ms) "
          f"attn={attn} experts={experts} torch={torch.__version__} transformers={transformers.__version__}{diff}")


if __name__ == "__main__":
    main()
