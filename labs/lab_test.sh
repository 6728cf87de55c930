#!/usr/bin/env bash
# labs/lab_test.sh BUILD [LAB] — grade the labs of labs/labs.tsv with the repository's own Catch2 tests.
# With LAB: one line "lab NAME: N passed, N failed". Without: every lab and a grade table (points are
# the lab's points times the fraction of its test cases that pass). Exit 0 only when every graded test
# passes. A stub throws dsref::NotImplemented, which Catch2 reports as a failed test case; a crash or a
# hang (timeout) fails every test case of the lab.
set -u
cd "$(dirname "$0")/.."
build=${1:?usage: labs/lab_test.sh BUILD [LAB]}; only=${2:-}
rows=$(grep -v '^#' labs/labs.tsv)
if [ -n "$only" ] && ! cut -f1 <<<"$rows" | grep -qx "$only"; then
    echo "lab-test: no lab '$only'; the labs are: $(cut -f1 <<<"$rows" | tr '\n' ' ')" >&2; exit 2
fi
export OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-passive}
bins=$(awk -F'\t' -v l="$only" 'l == "" || $1 == l { print $6 }' <<<"$rows" | sort -u | sed "s|^|$build/tests/|")
make --no-print-directory -s -j"$(nproc 2>/dev/null || echo 2)" $bins || { echo "lab-test: build failed" >&2; exit 1; }
all_ok=1; table=""; total_pts=0; got_pts=0
while IFS=$'\t' read -r lab chapter hours points needs bin spec; do
    [ -z "$only" ] || [ "$lab" = "$only" ] || continue
    n=$("$build/tests/$bin" --list-test-names-only "$spec" 2>/dev/null | grep -c .)
    out=$(timeout 600 "$build/tests/$bin" --use-colour no "$spec" 2>&1); rc=$?
    summary=$(grep -E '^(All tests passed|test cases:)' <<<"$out" | tail -n 1)
    if [[ $summary =~ All\ tests\ passed ]]; then p=$n
    elif [[ $summary =~ \|\ +([0-9]+)\ passed ]]; then p=${BASH_REMATCH[1]}
    else p=0; fi
    [ $rc -ge 128 ] && p=0  # crashed or killed: nothing counts
    f=$((n - p)); [ "$n" -gt 0 ] || { f=1; echo "lab $lab: the spec $spec selects no test of $bin" >&2; }
    [ $f = 0 ] || all_ok=0
    echo "lab $lab: $p passed, $f failed"
    if [ $f != 0 ] && [ -n "$only" ]; then
        grep -E 'NotImplemented|lab '"$lab"'|FAILED|with expansion|REQUIRE|CHECK' <<<"$out" | head -n 40
    fi
    pts=$(( n > 0 ? points * p / n : 0 )); total_pts=$((total_pts + points)); got_pts=$((got_pts + pts))
    table+=$(printf '%-18s %-16s %5s / %-5s %4s / %s' "$lab" "$chapter" "$p" "$n" "$pts" "$points")$'\n'
done <<<"$rows"
if [ -z "$only" ]; then
    printf '\n%-18s %-16s %13s %11s\n' lab chapter "tests passed" points
    printf '%s' "$table"
    printf '%-18s %-16s %13s %4s / %s\n' total "" "" "$got_pts" "$total_pts"
fi
[ $all_ok = 1 ]
