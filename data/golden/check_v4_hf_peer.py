#!/usr/bin/env python3
"""check_v4_hf_peer.py — transformers' deepseek_v4 as a second peer for the mHC golden: runs
DeepseekV4HyperConnection and DeepseekV4HyperHead (transformers 5, modeling_deepseek_v4.py) in float64 on
the inputs of data/golden/deepseek_v4/mhc.safetensors and checks that they give the outputs the float64
implementation of the official code (data/golden/v4_ref.py) wrote there. Writes nothing; exits 1 on a
mismatch. Run from the repository root:  python3 data/golden/check_v4_hf_peer.py
"""
import os
import sys

import torch
from transformers import DeepseekV4Config
from transformers.models.deepseek_v4.modeling_deepseek_v4 import DeepseekV4HyperConnection, DeepseekV4HyperHead

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from safetensors_io import read_safetensors  # noqa: E402

g, _ = read_safetensors(os.path.join(os.path.dirname(os.path.abspath(__file__)), "deepseek_v4", "mhc.safetensors"))
worst = 0.0
for tag in ("n4", "n3"):
    T, n, d, iters = (int(v) for v in g[f"{tag}.dims"][1])
    cfg = DeepseekV4Config(hidden_size=d, hc_mult=n, hc_sinkhorn_iters=iters, hc_eps=1e-6, rms_norm_eps=1e-6,
                           num_hidden_layers=1)
    hc, head = DeepseekV4HyperConnection(cfg).double(), DeepseekV4HyperHead(cfg).double()
    t = lambda k: torch.tensor(g[f"{tag}.in.{k}"][1], dtype=torch.float64)  # noqa: E731
    with torch.no_grad():
        hc.fn.copy_(t("fn")), hc.base.copy_(t("base")), hc.scale.copy_(t("scale"))
        head.hc_fn.copy_(t("head_fn")), head.hc_base.copy_(t("head_base")), head.hc_scale.copy_(t("head_scale"))
        x = t("x").unsqueeze(0)
        post, comb, y = hc(x)
        h = head(x)
    for name, ours in (("post", post[0]), ("comb", comb[0]), ("y", y[0]), ("head", h[0])):
        ref = torch.tensor(g[f"{tag}.out.{name}"][1])
        diff = (ours - ref).abs().max().item()
        worst = max(worst, diff)
        print(f"{tag}.{name}: max |transformers - official float64| = {diff:.3g}")
# transformers casts the streams and hc_fn with .float(), so its mixes are float32 even on a float64 module:
# its error is float32 rounding of O(1) values through the Sinkhorn steps (measured <= 2.3e-7). 2e-6 catches a
# different layout, scale or formula (errors of 1e-2 and more) but not effects of the size of hc_eps (1e-6).
sys.exit(0 if worst < 2e-6 else 1)
