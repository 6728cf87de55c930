"""ref_common.py — the pieces llama_ref.py and deepseek_ref.py share: the error type, config.json and
token checks, shape-checked weight lookup, and the float64 building blocks RMSNorm and SiLU (Zhang &
Sennrich 2019; Shazeer 2020). Written from the math, independent of dsref's C++."""
import json
import os

import torch


class RefError(Exception):
    """Bad input (config, checkpoint, tokens); the message names the field or tensor."""


def read_config_json(model_dir):
    """(path, raw dict, need) for model_dir/config.json; need(key) returns a required field or raises."""
    path = os.path.join(model_dir, "config.json")
    if not os.path.isfile(path):
        raise RefError(f"{path}: not found")
    with open(path) as f:
        raw = json.load(f)

    def need(key):
        if key not in raw or raw[key] is None:
            raise RefError(f"{path}: missing required field '{key}'")
        return raw[key]

    return path, raw, need


def check_tokens(tokens, V):
    """tokens: a non-empty list of ints in [0, V)."""
    if len(tokens) == 0:
        raise RefError("tokens: empty")
    for t, tok in enumerate(tokens):
        if not (0 <= tok < V):
            raise RefError(f"tokens[{t}] = {tok} is outside [0, vocab_size={V})")


def parse_tokens(parser, text):
    """'1,2,3' -> [1, 2, 3]; an argparse usage error otherwise."""
    try:
        return [int(s) for s in text.split(",") if s.strip() != ""]
    except ValueError:
        parser.error(f"--tokens: not a comma-separated list of integers: {text!r}")


def get(weights, name, shape):
    """weights[name] after checking its shape; the message names the tensor."""
    if name not in weights:
        raise RefError(f"checkpoint has no tensor {name}")
    w = weights[name]
    if tuple(w.shape) != tuple(shape):
        raise RefError(f"tensor {name}: shape {list(w.shape)}, expected {list(shape)}")
    return w


def rms_norm(x, w, eps):
    """x [T, n], w [n] -> [T, n];  w * x / sqrt(mean(x^2) + eps)."""
    return w * (x / torch.sqrt((x * x).mean(dim=-1, keepdim=True) + eps))


def silu(z):
    return z / (1.0 + torch.exp(-z))
