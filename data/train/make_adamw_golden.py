#!/usr/bin/env python3
"""make_adamw_golden.py -- torch.optim.AdamW and torch.nn.utils.clip_grad_norm_ on a few tensors, in
float64, written as the golden file that tests/test_adamw.cpp checks ref/train/adamw.cpp against.

Independence: the update comes from PyTorch's own optimizer and clipping utility (not from a formula
written here), with weight decay on the rank >= 2 tensors only (two parameter groups, as a trainer
builds them) and a learning rate that changes every step (set in the param groups before each step, as
a scheduler does).

Run (needs PyTorch):
    python3 data/train/make_adamw_golden.py          # from the repository root
It rewrites data/train/adamw_golden.json (deterministic: fixed seed). The C++ build and tests never run
this script.
"""
import json

import torch

torch.manual_seed(0)
shapes = {"w": (3, 4), "emb": (5, 2), "norm": (4,), "bias": (3,)}
params = {k: torch.randn(*s, dtype=torch.float64) for k, s in shapes.items()}
init = {k: v.flatten().tolist() for k, v in params.items()}
ps = {k: torch.nn.Parameter(v.clone()) for k, v in params.items()}
decay = [ps[k] for k in shapes if len(shapes[k]) >= 2]
no_decay = [ps[k] for k in shapes if len(shapes[k]) < 2]
cfg = dict(betas=(0.9, 0.95), eps=1e-8)
wd = 0.1
clip = 1.5
opt = torch.optim.AdamW([{"params": decay, "weight_decay": wd}, {"params": no_decay, "weight_decay": 0.0}],
                        lr=1e-2, **cfg)
lrs = [1e-2, 2e-2, 3e-2, 3e-2, 1.5e-2, 5e-3]
steps = []
for k, lr in enumerate(lrs):
    for g in opt.param_groups:
        g["lr"] = lr
    grads = {n: torch.randn(*shapes[n], dtype=torch.float64) * (3.0 if k % 2 == 0 else 0.2) for n in shapes}
    for n in shapes:
        ps[n].grad = grads[n].clone()
    norm = torch.nn.utils.clip_grad_norm_(list(ps.values()), clip)
    opt.step()
    steps.append({"lr": lr, "grads": {n: grads[n].flatten().tolist() for n in shapes},
                  "grad_norm": float(norm),
                  "params": {n: ps[n].detach().flatten().tolist() for n in shapes}})

out = {"shapes": {k: list(s) for k, s in shapes.items()}, "beta1": 0.9, "beta2": 0.95, "eps": 1e-8,
       "weight_decay": wd, "clip": clip, "init": init, "steps": steps, "torch": torch.__version__}
with open("data/train/adamw_golden.json", "w") as f:
    json.dump(out, f, indent=1)
print("wrote data/train/adamw_golden.json:", len(steps), "steps, torch", torch.__version__)
