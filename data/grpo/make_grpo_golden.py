#!/usr/bin/env python3
"""make_grpo_golden.py -- an independent implementation of the GRPO / DPO formulas (DeepSeekMath §4.1.1
eqs 3-4 and §4.1.2; TRL trl/trainer/grpo_trainer.py, GRPOTrainer._compute_loss and
_generate_and_score_completions; verl verl/trainer/ppo/core_algos.py, agg_loss; DPO paper eq. 7), plus
Python-`re` reference rewards (open-r1 src/open_r1/rewards.py, TRL trl/rewards/format_rewards.py), used
to write the golden files that tests/test_grpo_golden.cpp and tests/test_rewards.cpp check the C++ ops
against.

Independence: the losses are written here in PyTorch (float64) from those formulas and the
gradients come from torch autograd, not from the hand-derived backward of ref/rl/grpo.cpp. The rewards use
Python's `re` with the very patterns open-r1 and TRL use, str.count, fractions.Fraction and
unicodedata, not a port of ref/rl/rewards.cpp.

Run (needs PyTorch; tested with torch 1.13, numpy 1.24):
    python3 data/grpo/make_grpo_golden.py            # from the repository root
It rewrites data/grpo/grpo_cases.txt, grpo_golden.safetensors and reward_cases.safetensors. The output is
deterministic (fixed seeds). The C++ build and tests never run this script.
"""
import json
import math
import os
import random
import re
import struct
import unicodedata
from fractions import Fraction

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
torch.set_default_dtype(torch.float64)


# ---- safetensors writer (8-byte LE header length, JSON header, contiguous little-endian data) ----------
DTYPES = {np.dtype("float32"): "F32", np.dtype("float64"): "F64", np.dtype("int32"): "I32",
          np.dtype("uint8"): "U8", np.dtype("bool"): "BOOL"}


def write_safetensors(path, tensors):
    header, blobs, offset = {}, [], 0
    for name in sorted(tensors):
        a = np.array(tensors[name], order="C")  # (np.ascontiguousarray would turn rank 0 into rank 1)
        b = a.astype(a.dtype.newbyteorder("<")).tobytes()
        header[name] = {"dtype": DTYPES[a.dtype], "shape": list(a.shape), "data_offsets": [offset, offset + len(b)]}
        blobs.append(b)
        offset += len(b)
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for b in blobs:
            f.write(b)


# ---- GRPO (advantages, per-token loss, aggregation, metrics: TRL and verl) ----------------------------------
def nan_std(x, unbiased=True):
    """std of the non-NaN entries along the last dim; NaN when fewer than 2."""
    ok = ~torch.isnan(x)
    n = ok.sum(-1)
    mean = torch.where(ok, x, torch.zeros_like(x)).sum(-1) / n.clamp(min=1)
    dev = torch.where(ok, x - mean.unsqueeze(-1), torch.zeros_like(x))
    var = (dev ** 2).sum(-1) / (n - 1 if unbiased else n).clamp(min=1)
    return torch.where(n >= 2, var.sqrt(), torch.full_like(var, float("nan")))


def advantages(rewards, G, scale, eps):
    r = rewards.view(-1, G)
    ok = ~torch.isnan(r)
    mean = torch.where(ok, r, torch.zeros_like(r)).sum(1) / ok.sum(1)  # NaN for an all-NaN group
    A = r - mean.unsqueeze(1)
    if scale == "group":
        A = A / (nan_std(r).unsqueeze(1) + eps)
    elif scale == "batch":
        A = A / (nan_std(rewards.view(1, -1))[0] + eps)
    return torch.nan_to_num(A.reshape(-1), nan=0.0)


def grpo_reference(x, x_old, x_ref, A, mask, cfg):
    """Loss (autograd-able), per-token loss [B, T] and metrics, as TRL's _compute_loss and verl's agg_loss."""
    B, T = x.shape
    lr = x - (x_old if x_old is not None else x.detach())
    if cfg["importance_sampling_level"] == "sequence":
        lr = ((lr * mask).sum(-1) / mask.sum(-1).clamp(min=1.0)).unsqueeze(-1)
    coef_1 = torch.exp(lr)
    eps_low = cfg["epsilon"]
    eps_high = cfg["epsilon_high"] if cfg["epsilon_high"] is not None else eps_low
    coef_2 = torch.clamp(coef_1, 1 - eps_low, 1 + eps_high)
    if cfg["delta"] is not None:
        coef_1 = torch.clamp(coef_1, max=cfg["delta"])
    a = A.unsqueeze(1)
    ptl = -torch.min(coef_1 * a, coef_2 * a)
    ptl = ptl.expand(B, T)
    kl = None
    if x_ref is not None:
        kl = torch.exp(x_ref - x) - (x_ref - x) - 1
    if cfg["beta"] != 0.0:
        ptl = ptl + cfg["beta"] * kl
    n = mask.sum(-1)
    N = mask.sum()
    lt = cfg["loss_type"]
    L_max = cfg["max_completion_length"]
    if lt == "grpo":
        loss = ((ptl * mask).sum(-1) / n.clamp(min=1.0)).mean()
    elif lt in ("bnpo", "dapo"):  # one process, one micro-batch: num_items_in_batch = N
        loss = (ptl * mask).sum() / N.clamp(min=1.0)
    elif lt == "dr_grpo":
        loss = (ptl * mask).sum() / (B * L_max)
    elif lt == "seq-mean-token-sum":
        loss = (ptl * mask).sum(-1).sum() / max(int((n > 0).sum()), 1)
    elif lt == "seq-mean-token-sum-norm":
        loss = (ptl * mask).sum() / cfg["loss_scale_factor"]
    else:
        raise ValueError(lt)
    c1 = coef_1.expand(B, T).detach()
    low = ((c1 < 1 - eps_low) & (a < 0)).double()
    high = ((c1 > 1 + eps_high) & (a > 0)).double()
    region = ((low + high) > 0).double()
    mm = lambda v: float((v * mask).sum() / N.clamp(min=1.0))
    metrics = {"clip_ratio_low": mm(low), "clip_ratio_high": mm(high), "clip_ratio_region": mm(region),
               "kl": mm(kl.detach()) if kl is not None else 0.0}
    return loss, (ptl * mask).detach(), metrics


def near_kink(lr, mask, cfg):
    """True if an active ratio lies within 1e-6 of a clip boundary (torch and C++ could pick different sides)."""
    r = np.exp(lr)
    eh = cfg["epsilon_high"] if cfg["epsilon_high"] is not None else cfg["epsilon"]
    kinks = [1 - cfg["epsilon"], 1 + eh] + ([cfg["delta"]] if cfg["delta"] is not None else [])
    return any(abs(v - k) < 1e-6 for v, m in zip(r.ravel(), mask.ravel()) if m for k in kinks)


def make_grpo_case(rng, cfg, use_logits):
    G = rng.choice([2, 3, 4])
    B = G * rng.choice([1, 2])
    T = rng.choice([3, 4, 5, 6])
    V = 6
    while True:
        mask = np.zeros((B, T), np.float64)
        for i in range(B):
            length = rng.choice([0] + list(range(1, T + 1)) * 3)  # empty rows now and then
            mask[i, :length] = 1.0
        rewards = np.array([rng.choice([0.0, 0.25, 0.5, 1.0]) for _ in range(B)])
        if rng.random() < 0.15:
            rewards[:G] = rewards[0]  # a group of equal rewards
        if rng.random() < 0.15:
            rewards[rng.randrange(B)] = float("nan")  # an unscorable completion
        f32 = lambda a: a.astype(np.float32)
        logits = f32(np.array([[[rng.gauss(0, 1.5) for _ in range(V)] for _ in range(T)] for _ in range(B)]))
        tokens = np.array([[rng.randrange(V) for _ in range(T)] for _ in range(B)], np.int32)
        tokens[mask == 0] = -100  # padding ids are never read
        if use_logits:
            z = torch.tensor(logits.astype(np.float64)) / cfg["temperature"]
            x0 = torch.log_softmax(z, -1).gather(-1, torch.tensor(np.maximum(tokens, 0).astype(np.int64)).unsqueeze(-1))
            x = x0.squeeze(-1).numpy() * mask
        else:
            x = f32(np.array([[-0.1 - 2.5 * rng.random() for _ in range(T)] for _ in range(B)]))
            x[mask == 0] = -7.0  # junk in padding
        x_old = f32(x + np.array([[rng.gauss(0, 0.25) for _ in range(T)] for _ in range(B)]))
        x_ref = f32(x + np.array([[rng.gauss(0, 0.25) for _ in range(T)] for _ in range(B)]))
        lr = x.astype(np.float32).astype(np.float64) - x_old.astype(np.float64)
        if cfg["importance_sampling_level"] == "sequence":
            lr = (lr * mask).sum(1) / np.maximum(mask.sum(1), 1)
            if near_kink(lr, mask.sum(1) > 0, cfg):
                continue
        elif near_kink(lr, mask, cfg):
            continue
        return dict(B=B, T=T, V=V, G=G, mask=mask, rewards=rewards, logits=logits, tokens=tokens,
                    x=f32(x), x_old=x_old, x_ref=x_ref)


def run_grpo_case(case, cfg, has_old, has_ref, use_logits):
    mask = torch.tensor(case["mask"])
    A = advantages(torch.tensor(case["rewards"]), case["G"], cfg["scale_rewards"], cfg["adv_epsilon"])
    out = {}
    if use_logits:
        z = torch.tensor(case["logits"].astype(np.float64), requires_grad=True)
        tok = torch.tensor(np.maximum(case["tokens"], 0).astype(np.int64))
        x = torch.log_softmax(z / cfg["temperature"], -1).gather(-1, tok.unsqueeze(-1)).squeeze(-1)
        x.retain_grad()
    else:
        x = torch.tensor(case["x"].astype(np.float64), requires_grad=True)
    x_old = torch.tensor(case["x_old"].astype(np.float64)) if has_old else None
    x_ref = torch.tensor(case["x_ref"].astype(np.float64)) if has_ref else None
    loss, ptl, metrics = grpo_reference(x, x_old, x_ref, A, mask, cfg)
    loss.backward()
    out["loss"] = np.array(float(loss))
    out["advantages"] = A.numpy()
    out["per_token_loss"] = ptl.numpy()
    out["grad_logps"] = (x.grad * mask).numpy()
    for k, v in metrics.items():
        out[k] = np.array(v)
    if use_logits:
        out["grad_logits"] = z.grad.numpy()
        out["logps"] = (x.detach() * mask).numpy()
    return out


def grpo_cases(rng):
    """Every loss_type x scale_rewards x importance_sampling_level x {beta, epsilon_high, delta} on/off
    (288 cases on logps), and the 36 loss_type x scale x level combinations once more on logits."""
    cases = []
    for lt in ["grpo", "bnpo", "dr_grpo", "dapo", "seq-mean-token-sum", "seq-mean-token-sum-norm"]:
        for scale in ["group", "batch", "none"]:
            for level in ["token", "sequence"]:
                flags = [(b, e, d) for b in (0, 1) for e in (0, 1) for d in (0, 1)]
                for k, (b, e, d) in enumerate(flags + [(rng.randrange(2), rng.randrange(2), rng.randrange(2))]):
                    use_logits = k == len(flags)
                    cfg = {"loss_type": lt, "scale_rewards": scale, "importance_sampling_level": level,
                           "beta": 0.04 if b else 0.0, "epsilon": rng.choice([0.2, 0.1]),
                           "epsilon_high": 0.28 if e else None, "delta": 1.5 if d else None,
                           "adv_epsilon": rng.choice([1e-4, 1e-4, 1e-6]),
                           "temperature": rng.choice([0.6, 0.7, 1.3]) if use_logits else 1.0}
                    cases.append((cfg, use_logits))
    return cases


def write_grpo(rng):
    tensors, lines = {}, []
    for idx, (cfg, use_logits) in enumerate(grpo_cases(rng)):
        case = make_grpo_case(rng, cfg, use_logits)
        cfg["max_completion_length"] = rng.choice([case["T"], case["T"] + 3])
        cfg["loss_scale_factor"] = rng.choice([float(cfg["max_completion_length"]), 2.5])
        has_old = rng.random() > 0.15
        has_ref = cfg["beta"] > 0 or rng.random() > 0.3
        out = run_grpo_case(case, cfg, has_old, has_ref, use_logits)
        p = "g%03d." % idx
        if use_logits:
            tensors[p + "logits"] = case["logits"]
            tensors[p + "tokens"] = case["tokens"]
        else:
            tensors[p + "logps"] = case["x"]
        if has_old:
            tensors[p + "old_logps"] = case["x_old"]
        if has_ref:
            tensors[p + "ref_logps"] = case["x_ref"]
        tensors[p + "rewards"] = case["rewards"].astype(np.float32)
        mask_kind = rng.choice(["F32", "U8", "BOOL", "I32"])
        m = case["mask"]
        tensors[p + "mask"] = {"F32": m.astype(np.float32), "U8": m.astype(np.uint8), "BOOL": m.astype(bool),
                               "I32": m.astype(np.int32)}[mask_kind]
        for k, v in out.items():
            tensors[p + "expect." + k] = np.asarray(v, np.float64)
        attrs = {"group_size": case["G"], "loss_type": cfg["loss_type"], "epsilon": cfg["epsilon"],
                 "beta": cfg["beta"], "scale_rewards": cfg["scale_rewards"], "adv_epsilon": cfg["adv_epsilon"],
                 "max_completion_length": cfg["max_completion_length"], "loss_scale_factor": cfg["loss_scale_factor"],
                 "importance_sampling_level": cfg["importance_sampling_level"], "temperature": cfg["temperature"]}
        if cfg["epsilon_high"] is not None:
            attrs["epsilon_high"] = cfg["epsilon_high"]
        if cfg["delta"] is not None:
            attrs["delta"] = cfg["delta"]
        text = lambda v: v if isinstance(v, str) else repr(v)
        lines.append("grpo_loss %s %s" % (p[:-1], " ".join("%s=%s" % (k, text(v)) for k, v in attrs.items())))
    return tensors, lines


# ---- DPO (DPO paper eq. 7, cDPO label smoothing) ------------------------------------------------------------
def write_dpo(rng):
    tensors, lines = {}, []
    for idx in range(12):
        N = rng.choice([1, 2, 4, 6])
        beta = rng.choice([0.05, 0.1, 0.5])
        ls = rng.choice([0.0, 0.1, 0.25])
        v = {k: np.array([rng.uniform(-60, -5) for _ in range(N)], np.float32)
             for k in ["policy_chosen_logps", "policy_rejected_logps", "ref_chosen_logps", "ref_rejected_logps"]}
        pc = torch.tensor(v["policy_chosen_logps"].astype(np.float64), requires_grad=True)
        pr = torch.tensor(v["policy_rejected_logps"].astype(np.float64), requires_grad=True)
        rc = torch.tensor(v["ref_chosen_logps"].astype(np.float64))
        rr = torch.tensor(v["ref_rejected_logps"].astype(np.float64))
        d = (pc - rc) - (pr - rr)
        F = torch.nn.functional
        loss = (-(1 - ls) * F.logsigmoid(beta * d) - ls * F.logsigmoid(-beta * d)).mean()
        loss.backward()
        chosen, rejected = beta * (pc - rc).detach(), beta * (pr - rr).detach()
        p = "d%03d." % idx
        for k, a in v.items():
            tensors[p + k] = a
        expect = {"loss": np.array(float(loss)), "grad_policy_chosen_logps": pc.grad.numpy(),
                  "grad_policy_rejected_logps": pr.grad.numpy(), "chosen_rewards": chosen.numpy(),
                  "rejected_rewards": rejected.numpy(),
                  "reward_accuracy": np.array(float((chosen > rejected).double().mean())),
                  "reward_margin": np.array(float((chosen - rejected).mean()))}
        for k, a in expect.items():
            tensors[p + "expect." + k] = np.asarray(a, np.float64)
        lines.append("dpo_loss %s beta=%r label_smoothing=%r" % (p[:-1], beta, ls))
    return tensors, lines


# ---- rewards (TRL trl/rewards, open-r1 rewards.py) ---------------------------------------------------------
FORMAT_R1 = re.compile(r"^<think>\n.*?\n</think>\n<answer>\n.*?\n</answer>$", re.DOTALL | re.MULTILINE)
THINK_FORMAT = re.compile(r"^<think>(?!.*<think>)(.*?)</think>.*$", re.DOTALL | re.MULTILINE)


def tag_count(s):
    return sum(0.25 for t in ["<think>\n", "\n</think>\n", "\n<answer>\n", "\n</answer>"] if s.count(t) == 1)


def first_boxed(s):
    for m in re.finditer(r"\\boxed[ \t\n]*\{", s):
        depth, i = 1, m.end()
        while i < len(s):
            if s[i] == "\\":
                i += 2
                continue
            depth += {"{": 1, "}": -1}.get(s[i], 0)
            if depth == 0:
                return s[m.end():i]
            i += 1
    return None


def normalize(s):
    for sp in ["\\,", "\\;", "\\:", "\\!", "\\ "]:
        s = s.replace(sp, "")
    s = re.sub(r"[ \t\n\r\f\v]", "", s)  # ASCII whitespace only, like C's isspace
    if len(s) >= 2 and s[0] == "$" and s[-1] == "$":
        s = s[1:-1]
    return s.replace("\\dfrac", "\\frac").replace("\\tfrac", "\\frac")


DEC = r"([+-]?)((?:[0-9]{1,3}(?:,[0-9]{3})+|[0-9]*))(?:\.([0-9]*))?"


def to_fraction(s):
    def dec(t):
        m = re.fullmatch(DEC, t)
        if not m or not re.search(r"[0-9]", t):
            return None
        whole, frac = m.group(2).replace(",", ""), m.group(3) or ""
        f = Fraction(int(whole or "0")) + Fraction(int(frac or "0"), 10 ** len(frac))
        return -f if m.group(1) == "-" else f
    if dec(s) is not None:
        return dec(s)
    parts = s.split("/")
    if len(parts) == 2:
        a, b = dec(parts[0]), dec(parts[1])
        return a / b if a is not None and b not in (None, 0) else None
    m = re.fullmatch(r"([+-]?)\\frac\{(.*?)\}\{(.*)\}", s)
    if m and dec(m.group(2)) is not None and dec(m.group(3)) not in (None, 0):
        f = dec(m.group(2)) / dec(m.group(3))
        return -f if m.group(1) == "-" else f
    return None


def accuracy(text, truth):
    ans = first_boxed(text)
    if ans is None:
        m = re.search(r"<answer>(.*?)</answer>", text, re.DOTALL)
        ans = m.group(1) if m else None
    if ans is None:
        return 0.0
    a, b = normalize(ans), normalize(truth)
    if not a or not b:
        return 0.0
    fa, fb = to_fraction(a), to_fraction(b)
    if fa is not None and fb is not None:
        return float(fa == fb)
    return float(a == b)


SCRIPT_OF_NAME = {"LATIN": "latin", "CJK": "han", "HIRAGANA": "kana", "KATAKANA": "kana", "HANGUL": "hangul",
                  "CYRILLIC": "cyrillic", "GREEK": "greek"}


def language(text, target):
    i, j = text.find("<think>"), -1
    if i >= 0:
        j = text.find("</think>", i + 7)
        cot = text[i + 7:] if j < 0 else text[i + 7:j]
    else:
        j = text.find("</think>")
        cot = text[:j] if j >= 0 else text
    total = hits = 0
    prev = None  # script of the current word, None outside a word
    for c in cot:
        cat = unicodedata.category(c)
        if cat.startswith("M") and prev is not None:
            continue
        if not cat.startswith("L"):
            prev = None
            continue
        sc = SCRIPT_OF_NAME.get(unicodedata.name(c).split()[0], "other")
        if prev is None or sc != prev or sc == "han":
            total += 1
            hits += sc == target
        prev = sc
    return hits / total if total else 0.0


def write_rewards(rng):
    answers = ["42", "0.5", "1/2", "\\frac{1}{2}", "\\dfrac{3}{4}", "0.75", "-3", "- 3", "1,000", "1000", "3.0",
               "x=5", "x = 5", "\\{1,2\\}", "π", "2/4", "-\\frac{3}{4}", ".5", "12", "1 2", "$42$", "{a}{b}"]
    filler = ["reason", "我们", "计算", "need to", "Привет", "café", "e\u0301", "カナ", "한글", "αβ", "123",
              " ", "\n", "!", "😀", "x2y", "don't"]
    pieces = ["<think>", "</think>", "<answer>", "</answer>", "\n", "\\boxed{", "}", "{", "<think>\n",
              "\n</think>\n", "\n<answer>\n", "\n</answer>"]
    texts, truths = [], []
    for k in range(160):
        kind = k % 4
        body = "".join(rng.choice(filler) for _ in range(rng.randrange(1, 8)))
        ans = rng.choice(answers)
        if kind == 0:  # well-formed R1 output, sometimes with trailing lines or text
            t = "<think>\n%s\n</think>\n<answer>\n%s\n</answer>" % (body, rng.choice(["\\boxed{%s}" % ans, ans]))
            t += rng.choice(["", "\n", "\nmore", " tail", "\n</answer>"])
        elif kind == 1:  # TRL think format, possibly broken
            t = rng.choice(["<think>", " <think>", ""]) + body + rng.choice(["</think>", "", "<think></think>"]) + \
                rng.choice(["\\boxed{%s}" % ans, "<answer>%s</answer>" % ans, ans])
        elif kind == 2:  # random tag soup
            t = "".join(rng.choice(pieces + filler + [ans]) for _ in range(rng.randrange(3, 14)))
        else:  # boxes: several, nested, unbalanced
            t = body + "".join(rng.choice(["\\boxed{%s}" % rng.choice(answers), "\\boxed{", "}", " and ",
                                           "<answer>%s</answer>" % rng.choice(answers)])
                               for _ in range(rng.randrange(1, 5)))
        texts.append(t)
        truths.append(rng.choice([ans, rng.choice(answers)]))
    tensors = {}
    cols = {"format_r1": [], "think_format": [], "tag_count": [], "accuracy": [], "language_latin": [],
            "language_han": []}
    for k, (t, tr) in enumerate(zip(texts, truths)):
        tensors["text_%03d" % k] = np.frombuffer(t.encode("utf-8"), np.uint8)
        tensors["truth_%03d" % k] = np.frombuffer(tr.encode("utf-8"), np.uint8)
        cols["format_r1"].append(1.0 if FORMAT_R1.match(t) else 0.0)
        cols["think_format"].append(1.0 if THINK_FORMAT.match(t) else 0.0)
        cols["tag_count"].append(tag_count(t))
        cols["accuracy"].append(accuracy(t, tr))
        cols["language_latin"].append(language(t, "latin"))
        cols["language_han"].append(language(t, "han"))
    for k, v in cols.items():
        tensors[k] = np.array(v, np.float32)
    return tensors


def main():
    rng = random.Random(20250601)
    g_tensors, g_lines = write_grpo(rng)
    d_tensors, d_lines = write_dpo(rng)
    g_tensors.update(d_tensors)
    write_safetensors(os.path.join(HERE, "grpo_golden.safetensors"), g_tensors)
    with open(os.path.join(HERE, "grpo_cases.txt"), "w") as f:
        f.write("# op prefix attributes -- written by make_grpo_golden.py; tensors in grpo_golden.safetensors\n")
        f.write("\n".join(g_lines + d_lines) + "\n")
    write_safetensors(os.path.join(HERE, "reward_cases.safetensors"), write_rewards(random.Random(7)))
    print("wrote %d grpo_loss cases, %d dpo_loss cases, 160 reward cases" % (len(g_lines), len(d_lines)))


if __name__ == "__main__":
    main()
