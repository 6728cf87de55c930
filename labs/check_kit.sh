#!/usr/bin/env bash
# labs/check_kit.sh quick | full BUILD — checks of the lab kit (walkthrough/LABS.md, "How the kit is checked").
#
# quick (tests/test_lab_kit.cpp, in make test, a few seconds): makes a kit in a temporary folder and checks
#   that every lab of labs/labs.tsv has marked bodies and every marked lab a row; that no distinctive line
#   of a removed body is left anywhere in the kit (labs/kit.sh leaks); that the kit differs from the
#   repository only in the stubbed files; and that two stubbed files compile (-fsyntax-only). The rest of
#   the kit is byte-identical to a tree that builds, and a stub keeps its function's signature, so the
#   kit builds if its stubbed files compile; full checks all of them by building.
# full (make lab-check, CI): builds the kit (reusing this tree's objects of the files the kit does not
#   change), checks that every lab fails and names its stub and that no graded test case passes on the
#   stubs, then for each lab puts its reference bodies back (with the labs it needs, and what they need)
#   and checks that exactly those labs pass.
set -euo pipefail
cd "$(dirname "$0")/.."
mode=${1:-quick}
[ -f labs/KIT ] && { echo "check_kit: SKIP (this is a lab kit; the checks run in the repository)"; exit 0; }
tmp=$(mktemp -d "${TMPDIR:-/tmp}/dsref-lab-kit.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
kit=$tmp/kit
labs/kit.sh make "$kit" >/dev/null

# every lab has a row and marked bodies
rows=$(grep -v '^#' labs/labs.tsv | cut -f1 | sort)
marked=$(grep -rhoE '^ *// LAB\([a-z0-9_]+\): begin$' ref | sed -E 's/^ *\/\/ LAB\(([a-z0-9_]+)\).*/\1/' | sort -u)
[ "$rows" = "$marked" ] || { echo "check_kit: labs/labs.tsv rows and LAB markers differ:"; diff <(echo "$rows") <(echo "$marked"); exit 1; }

# every row: its chapter exists, what it needs are labs, its test binary has a source, its body has a task
while IFS=$'\t' read -r lab chapter hours points needs bin spec; do
    [ -f "walkthrough/$chapter/README.md" ] || { echo "check_kit: lab $lab: no chapter walkthrough/$chapter/README.md"; exit 1; }
    [ -f "tests/$bin.cpp" ] || { echo "check_kit: lab $lab: no test source tests/$bin.cpp"; exit 1; }
    [ -n "$spec" ] || { echo "check_kit: lab $lab: no test spec"; exit 1; }
    for n in $(tr ',' ' ' <<<"${needs/#-/}"); do
        grep -qx "$n" <<<"$rows" || { echo "check_kit: lab $lab needs '$n', which is not a lab"; exit 1; }
    done
    grep -rqE "^ *// LAB\($lab\) task: " ref || { echo "check_kit: lab $lab has no '// LAB($lab) task:' line"; exit 1; }
    grep -qF "| $lab | $chapter | $hours | $points |" walkthrough/LABS.md ||
        { echo "check_kit: walkthrough/LABS.md has no row '| $lab | $chapter | $hours | $points |'"; exit 1; }
done < <(grep -v '^#' labs/labs.tsv)

labs/kit.sh leaks "$kit"
# and the same check finds the bodies in the reference itself, ref/core (it can fail)
if labs/kit.sh leaks ref/core >/dev/null; then echo "check_kit: the leak check finds nothing even in ref/core"; exit 1; fi

# the kit = the repository, except the stubbed files and labs/KIT
changed=$(diff -rq --exclude=.git --exclude='build*' --exclude=KIT . "$kit" 2>&1 | sed -E 's/^Files \.\/([^ ]+) and .*/\1/' | sort || true)
[ "$changed" = "$(labs/kit.sh files)" ] || { echo "check_kit: the kit differs from the repository in:"; echo "$changed"; exit 1; }
grep -q 'throw dsref::NotImplemented("lab rmsnorm");' "$kit/ref/core/rmsnorm.cpp"

if [ "$mode" = quick ]; then
    for f in ref/core/rmsnorm.cpp ref/core/rope.cpp; do
        ${CXX:-g++} -std=c++17 -fsyntax-only -Wall -Wextra -Werror -fopenmp -isystem /usr/include/eigen3 \
            -I"$kit/ref" "$kit/$f"
    done
    echo "check_kit quick: OK ($(echo "$rows" | wc -l) labs; kit = repository + $(echo "$changed" | wc -l) stubbed files; no leaks; stubs compile)"
    exit 0
fi

build=${2:?usage: labs/check_kit.sh full BUILD}
if [ -d "$build" ]; then  # seed: objects of unchanged sources are what the kit would compile anyway
    mkdir -p "$kit/$build" && cp -a "$build/." "$kit/$build/"
    for f in $(labs/kit.sh files); do rm -f "$kit/$build/${f%.cpp}.o"; done
    rm -f "$kit/$build/libdsref.a" "$kit/$build"/tests/test_*[!o] 2>/dev/null || true
fi
# put FILE KEEP: FILE with the labs in KEEP restored; rewritten only when it changes (make rebuilds less)
put() { labs/kit.sh stub "$1" "$2" > "$tmp/put"; cmp -s "$tmp/put" "$kit/$1" || cp "$tmp/put" "$kit/$1"; }
grade() { make --no-print-directory -C "$kit" lab-test BUILD="$build" 2>&1 | grep -E '^lab [a-z0-9_]+: ' || true; }
passing() { { grep -E ': [0-9]+ passed, 0 failed$' <<<"$1" || true; } | sed -E 's/^lab ([a-z0-9_]+):.*/\1/' | sort | tr '\n' ' '; }

out=$(grade)
echo "$out"
[ "$(grep -c . <<<"$out")" = "$(echo "$rows" | wc -l)" ] || { echo "check_kit: not every lab reported"; exit 1; }
[ -z "$(passing "$out")" ] || { echo "check_kit: labs pass in a fresh kit: $(passing "$out")"; exit 1; }
# and no graded test case passes on the stubs: one that does grades none of the student's code
partial=$(grep -E ': [1-9][0-9]* passed, ' <<<"$out" || true)
[ -z "$partial" ] || { echo "check_kit: test cases pass on the stubs (take them out of the lab's spec):"; echo "$partial"; exit 1; }
for lab in $rows; do
    grep -q "lab $lab" <(make --no-print-directory -C "$kit" lab-test BUILD="$build" LAB="$lab" 2>&1) ||
        { echo "check_kit: lab $lab fails without naming its stub"; exit 1; }
done
# closure LAB: LAB and every lab it needs, directly or through another lab's needs (comma list, sorted)
closure() {
    local have="$1," prev=""
    while [ "$have" != "$prev" ]; do
        prev=$have
        for l in $(tr ',' ' ' <<<"$have"); do
            n=$(awk -F'\t' -v l="$l" '$1 == l { print $5 }' labs/labs.tsv); [ "$n" = - ] && n=""
            have+="$n,"
        done
        have=$(tr ',' '\n' <<<"$have" | grep . | sort -u | tr '\n' ',')
    done
    echo "$have"
}
bad=0
for lab in $rows; do
    keep=$(closure "$lab")
    for f in $(labs/kit.sh files); do put "$f" "$keep"; done
    res=$(grade); got=$(passing "$res"); want=$(echo "$keep" | tr ',' '\n' | grep . | sort | tr '\n' ' ')
    # a lab outside the restored ones with some test cases passing: those grade another lab's code
    for l in $(grep -E ': [1-9][0-9]* passed, [1-9]' <<<"$res" | sed -E 's/^lab ([a-z0-9_]+):.*/\1/'); do
        grep -qx "$l" <(tr ',' '\n' <<<"$keep") ||
            { echo "check_kit: with $lab restored, $(grep "^lab $l:" <<<"$res") (test cases that grade $lab's code)"; bad=1; }
    done
    if [ "$got" = "$want" ]; then echo "lab $lab restored: passing = $got"; else echo "check_kit: lab $lab restored: passing = '$got', expected '$want'"; bad=1; fi
done
for f in $(labs/kit.sh files); do put "$f" ""; done
[ $bad = 0 ] && echo "check_kit full: OK"
exit $bad
