"""make_tokenizer.py — train the demo model's byte-level BPE (data/demo_v3/tokenizer.json) on train.txt.

Run from the repository root: python3 data/demo_v3/make_tokenizer.py (needs the `tokenizers` package).
The layout is DeepSeek's: a Split pre-tokenizer (here every digit alone, so that arithmetic is digit by
digit), then ByteLevel with GPT-2's word regex, a BPE over the 256 byte characters, and added tokens for
BOS/EOS and the R1 answer format (<think>, </think>, <answer>, </answer>). Vocabulary: 512 ids.
"""
import json
import pathlib

from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, trainers

HERE = pathlib.Path(__file__).resolve().parent
SPECIAL = ["<｜begin▁of▁sentence｜>", "<｜end▁of▁sentence｜>"]
ADDED = ["<think>", "</think>", "<answer>", "</answer>"]

tok = Tokenizer(models.BPE())
tok.pre_tokenizer = pre_tokenizers.Sequence([
    pre_tokenizers.Split(Regex(r"\p{N}"), behavior="isolated"),
    pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True),
])
tok.decoder = decoders.ByteLevel()
trainer = trainers.BpeTrainer(vocab_size=512 - len(ADDED), special_tokens=SPECIAL,
                              initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
tok.train([str(HERE / "train.txt")], trainer)
tok.add_tokens(ADDED)
out = json.loads(tok.to_str())
(HERE / "tokenizer.json").write_text(json.dumps(out, ensure_ascii=False, indent=1) + "\n")
ids = tok.encode((HERE / "train.txt").read_text()).ids
print("vocab", tok.get_vocab_size(), "train tokens", len(ids))
