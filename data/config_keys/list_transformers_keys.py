#!/usr/bin/env python3
"""Lists every key transformers' config classes write to config.json, for the model types dsref runs.

Writes data/config_keys/transformers_keys.json: {model_type: {key: default value as to_dict() writes it}}
for LlamaConfig, Qwen2Config, DeepseekV2Config and DeepseekV3Config (the classes of llama, qwen2,
deepseek_v2 and deepseek_v3), plus the transformers version. tests/test_config_keys.cpp reads it and
proves every key is read by io/config.cpp, allow-listed as harmless (io/config_keys.cpp) or refused
with an error naming it. Run from the repository root with a Python that has transformers:
    python data/config_keys/list_transformers_keys.py
"""
import json

import transformers
from transformers import DeepseekV2Config, DeepseekV3Config, LlamaConfig, Qwen2Config


def plain(v):
    """A JSON value for a default (tensors/dtypes/objects become their string form)."""
    try:
        json.dumps(v)
        return v
    except TypeError:
        return str(v)


out = {"transformers_version": transformers.__version__, "model_types": {}}
for cls in (LlamaConfig, Qwen2Config, DeepseekV2Config, DeepseekV3Config):
    d = cls().to_dict()  # what save_pretrained writes (to_json_string uses the same dict)
    out["model_types"][cls.model_type] = {k: plain(d[k]) for k in sorted(d)}

with open("data/config_keys/transformers_keys.json", "w") as f:
    json.dump(out, f, indent=1, sort_keys=True, ensure_ascii=False)
    f.write("\n")
for mt, keys in out["model_types"].items():
    print(mt, len(keys), "keys")
