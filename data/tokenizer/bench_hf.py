#!/usr/bin/env python3
"""`make bench` (ref/bench/bench_tokenizer.cpp): HF tokenizers' encode MB/s on the same corpus and
tokenizer.json, single-threaded (RAYON_NUM_THREADS=1, one encode call), best of 3; checks its ids equal
dsref's. Arguments: TOKENIZER_JSON CORPUS_TXT DSREF_IDS_TXT DSREF_MBPS."""
import os
import sys
import time

os.environ["RAYON_NUM_THREADS"] = "1"
os.environ["TOKENIZERS_PARALLELISM"] = "false"
from tokenizers import Tokenizer  # noqa: E402

tok_path, corpus_path, ids_path, dsref_mbps = sys.argv[1], sys.argv[2], sys.argv[3], float(sys.argv[4])
docs = open(corpus_path, encoding="utf-8", newline="").read().split("\n")[:-1]  # one document a line
mb = sum(len(d.encode("utf-8")) for d in docs) / 1e6
best = 1e30
for _ in range(3):
    tok = Tokenizer.from_file(tok_path)
    t0 = time.perf_counter()
    ids = [i for d in docs for i in tok.encode(d, add_special_tokens=False).ids]
    best = min(best, time.perf_counter() - t0)
hf = mb / best
want = open(ids_path).read().strip()
same = ",".join(map(str, ids)) == want
print(f"  HF tokenizers       {hf:8.2f} MB/s (1 thread, best of 3); dsref / HF = {dsref_mbps / hf:.2f}x; ids {'equal' if same else 'DIFFER'}")
sys.exit(0 if same else 1)
