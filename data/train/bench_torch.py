#!/usr/bin/env python3
"""bench_torch.py -- the PyTorch side of `make bench`'s training row (ref/bench/bench_train.cpp): the same
training step as `dsref train` (transformers' DeepseekV3ForCausalLM in float32, eager attention and
experts, autograd, clip_grad_norm_, torch.optim.AdamW) on the same init checkpoint and batches, at 1 and
2 threads; prints tokens/s (median of the steps after two warm-up steps) and dsref's ratio.

    python3 data/train/bench_torch.py INIT_DIR IDS.bin STEPS B S DSREF_TPS_1_THREAD DSREF_TPS_2_THREADS
"""
import sys
import time

import numpy as np
import torch
from transformers import DeepseekV3ForCausalLM
from transformers.utils import logging


def main():
    logging.disable_progress_bar()
    init, ids_path = sys.argv[1], sys.argv[2]
    steps, B, S = map(int, sys.argv[3:6])
    dsref_tps = {1: float(sys.argv[6]), 2: float(sys.argv[7])}
    ids = torch.from_numpy(np.fromfile(ids_path, dtype="<u4").astype(np.int64))
    N = len(ids)
    for threads in (1, 2):
        torch.set_num_threads(threads)
        model = DeepseekV3ForCausalLM.from_pretrained(init, dtype=torch.float32, attn_implementation="eager",
                                                      experts_implementation="eager")
        model.train()
        params = list(model.parameters())
        opt = torch.optim.AdamW([{"params": [p for p in params if p.dim() >= 2], "weight_decay": 0.1},
                                 {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0}],
                                lr=3e-3, betas=(0.9, 0.95), eps=1e-8)
        tps = []
        for k in range(steps):
            t0 = time.perf_counter()
            rows = [((k * B + b) * S) % (N - S - 1) for b in range(B)]
            x = torch.stack([ids[o:o + S] for o in rows])
            y = torch.stack([ids[o + 1:o + S + 1] for o in rows])
            logits = model(x).logits
            loss = torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1))
            opt.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, 1.0)
            opt.step()
            tps.append(B * S / (time.perf_counter() - t0))
        med = sorted(tps[2:])[len(tps[2:]) // 2]
        ratio = f", dsref / this = {dsref_tps[threads] / med:.2f}x (target >= 1.5x)"
        print(f"  PyTorch eager       {med:8.0f} tokens/s ({threads} thread{'s' if threads > 1 else ''}){ratio}")


if __name__ == "__main__":
    main()
