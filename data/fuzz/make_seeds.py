#!/usr/bin/env python3
"""Writes the libFuzzer seed corpora data/fuzz/<target>/ (small, committed; `make fuzz` reads them).

Run from the repository root: python3 data/fuzz/make_seeds.py. Standard library only.
  safetensors/  valid files of several dtypes and shapes, plus empty and metadata-only headers
  index/        model.safetensors.index.json texts for a directory holding s1.safetensors (tensors a, b)
  config/       the real configs of data/configs/ and the configs of the golden models
  op/           byte 0 = op number, attribute lines, NUL, then a safetensors image of common input names
  tokens/       --tokens strings
"""
import json, os, shutil, struct, glob

def st(tensors, meta=None):
    """tensors: list of (name, dtype, shape, raw bytes) -> safetensors bytes."""
    h, off, buf = {}, 0, b""
    if meta: h["__metadata__"] = meta
    for name, dt, shape, raw in tensors:
        h[name] = {"dtype": dt, "shape": shape, "data_offsets": [off, off + len(raw)]}
        off += len(raw); buf += raw
    hs = json.dumps(h, separators=(",", ":")).encode()
    hs += b" " * (-len(hs) % 8)
    return struct.pack("<Q", len(hs)) + hs + buf

def f32(*v): return struct.pack("<%df" % len(v), *v)

def put(target, name, data):
    os.makedirs(f"data/fuzz/{target}", exist_ok=True)
    with open(f"data/fuzz/{target}/{name}", "wb") as f: f.write(data)

# safetensors
put("safetensors", "f32", st([("a", "F32", [2, 2], f32(1, 2, 3, 4))]))
put("safetensors", "mixed", st([("b", "BF16", [3], b"\x80\x3f" * 3), ("c", "I32", [1], b"\x01\0\0\0"),
                                 ("d", "F8_E4M3", [2, 2], b"\x38\x40\x48\x50"), ("e", "F16", [0, 4], b"")],
                                {"format": "pt"}))
put("safetensors", "empty", st([]))
put("safetensors", "u8_i64", st([("u", "U8", [4], b"\x01\x02\x03\x04"), ("i", "I64", [1], b"\x07" + b"\0" * 7),
                                  ("f", "F64", [1], struct.pack("<d", 1.5)), ("g", "F8_E5M2", [1], b"\x3c"),
                                  ("h", "BOOL", [1], b"\x01"), ("j", "I8", [1], b"\xff"), ("k", "I16", [1], b"\x01\x00")]))
# index
put("index", "two", json.dumps({"metadata": {"total_size": 12}, "weight_map": {"a": "s1.safetensors", "b": "s1.safetensors"}}).encode())
put("index", "one", json.dumps({"weight_map": {"a": "s1.safetensors"}}).encode())
put("index", "missing", json.dumps({"weight_map": {"a": "s2.safetensors"}}).encode())
# config
for p in sorted(glob.glob("data/configs/*.json")) + sorted(glob.glob("data/golden/*/*/config.json")):
    put("config", p.replace("data/", "").replace("/", "_"), open(p, "rb").read())
# op: generic inputs with the names the ops use
inputs = st([("x", "F32", [2, 8], f32(*range(16))), ("weight", "F32", [8], f32(*[1] * 8)),
             ("gate", "F32", [2, 8], f32(*range(16))), ("up", "F32", [2, 8], f32(*range(16))),
             ("q", "F32", [2, 2, 8], f32(*range(32))), ("k", "F32", [2, 2, 8], f32(*range(32))),
             ("v", "F32", [2, 2, 8], f32(*range(32))), ("positions", "I32", [2], b"\0\0\0\0\x01\0\0\0"),
             ("w", "F32", [8, 8], f32(*range(64)))])
for i in range(32):
    put("op", "op%02d" % i, bytes([i]) + b"eps=1e-6\n\0" + inputs)
# tokens
for i, s in enumerate(["1,2,3", " 4 , 5 ", "0", "2147483647", "1,,2", "-1", "x"]):
    put("tokens", "t%d" % i, s.encode())
# tokenizer: byte 0 even = a tokenizer.json (the committed small ones, and a minimal one), odd = a text
for p in sorted(glob.glob("data/tokenizer/small_*.json")):
    put("tokenizer", "json_" + os.path.basename(p), b"\0" + open(p, "rb").read())
mini = {"version": "1.0", "added_tokens": [{"id": 4, "content": "<s>", "single_word": False, "lstrip": False,
        "rstrip": False, "normalized": False, "special": True}], "normalizer": None,
        "pre_tokenizer": {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": True},
        "post_processor": None, "decoder": {"type": "ByteLevel"},
        "model": {"type": "BPE", "vocab": {"a": 0, "b": 1, "ab": 2, "\u0120": 3}, "merges": ["a b"]}}
put("tokenizer", "json_mini", b"\0" + json.dumps(mini).encode())
for i, s in enumerate(["Hello, world! 12345", "深度求索 cat 42", "<｜begin▁of▁sentence｜>hi", "\xff\xfe bad utf8", ""]):
    put("tokenizer", "text%d" % i, b"\x01" + (s.encode("latin-1") if i == 3 else s.encode()))
