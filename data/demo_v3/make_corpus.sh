#!/usr/bin/env bash
# make_corpus.sh — rebuild data/demo_v3/train.txt and eval.txt, the demo model's text: the prose of this
# repository's own documentation (README.md, ref/README.md, the walkthrough essays, the data/ and cuda/ READMEs), with code blocks,
# table rows, headings, indented code, HTML, link targets
# and lines that are not prose (less than 92 % letters, spaces and punctuation) dropped, runs of blank lines squeezed; the last 5 % of the lines are
# held out as eval.txt. The committed files are a snapshot: the shipped model was trained on them, so
# rebuild only to train a new model.
set -euo pipefail
cd "$(dirname "$0")/../.."
files="README.md ref/README.md $(ls walkthrough/*/README.md walkthrough/LABS.md cuda/README.md data/*/README.md | sort)"
for f in $files; do
    awk '
        /^```/ { code = !code; next }
        code { next }
        /^[ \t]*\|/ { next }
        /^[ \t]*</ { next }
        /^#/ { next }
        /^    / { next }
        {
            gsub(/\]\([^)]*\)/, "]"); gsub(/[`*]/, "")
            line = $0; sub(/^[ \t]+/, "", line); n = length(line)
            if (n == 0) { print ""; next }
            prose = line; k = gsub(/[A-Za-z ,.;:\047()-]/, "", prose)
            if (k >= 0.92 * n) print    # prose: at least 92 % letters, spaces and punctuation
        }
    ' "$f"
    echo
done | cat -s > data/demo_v3/corpus.tmp
n=$(wc -l < data/demo_v3/corpus.tmp)
head -n $((n * 95 / 100)) data/demo_v3/corpus.tmp > data/demo_v3/train.txt
tail -n +$((n * 95 / 100 + 1)) data/demo_v3/corpus.tmp > data/demo_v3/eval.txt
rm data/demo_v3/corpus.tmp
wc -c data/demo_v3/train.txt data/demo_v3/eval.txt
