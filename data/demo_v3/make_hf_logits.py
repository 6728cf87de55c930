#!/usr/bin/env python3
"""make_hf_logits.py -- transformers' logits of the shipped demo model, the golden that shows the
checkpoint `dsref train` wrote is a real HF checkpoint: DeepseekV3ForCausalLM.from_pretrained loads
data/demo_v3/model as it is (float64, eager attention and experts) and its logits on a fixed token
sequence (BOS, text tokens, digits, the <think> / </think> ids, EOS) are written to
data/demo_v3/hf_logits.safetensors (tokens I32 [T], logits F32 [T, 512]).
tests/test_train_cli.cpp compares `dsref forward` with them (1e-4 absolute).

Run from the repository root (needs torch and transformers 5): python3 data/demo_v3/make_hf_logits.py
"""
import os

import torch
from safetensors.torch import save_file
from transformers import DeepseekV3ForCausalLM

HERE = os.path.dirname(os.path.abspath(__file__))
TOKENS = [0, 46, 200, 300, 17, 18, 19, 508, 509, 100, 250, 400, 12, 1]

torch.set_num_threads(1)
m = DeepseekV3ForCausalLM.from_pretrained(os.path.join(HERE, "model"), dtype=torch.float64,
                                          attn_implementation="eager", experts_implementation="eager")
m.eval()
with torch.no_grad():
    logits = m(torch.tensor([TOKENS])).logits[0]
save_file({"tokens": torch.tensor(TOKENS, dtype=torch.int32), "logits": logits.float().contiguous()},
          os.path.join(HERE, "hf_logits.safetensors"))
