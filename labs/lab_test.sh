#!/usr/bin/env bash
# labs/lab_test.sh BUILD [LAB] — grade the labs of labs/labs.tsv with the repository's own Catch2 tests.
# With LAB: one line "lab NAME: N passed, N failed". Without: every lab and a grade table (points are
# the lab's points times the fraction of its test cases that pass). Exit 0 only when every graded test
# passes. A stub throws dsref::NotImplemented, which Catch2 reports as a failed test case; a crash or a
# hang (timeout) fails every test case of the lab. With LAB, a failing lab is explained for the student:
# the first failed check (test case, file:line, got vs expected, the message naming the first mismatching
# index), whether the body is still a stub or runs through another unwritten lab, the task's equation (the
# LAB comments above the function) and the walkthrough chapter to read.
set -u
cd "$(dirname "$0")/.."
build=${1:?usage: labs/lab_test.sh BUILD [LAB] | --first-failure < catch2-output}; only=${2:-}
# first_failure: the first failed check of a Catch2 console report: its test case (and section), where,
# the check, its expansion (got vs expected) and its messages (the index, the values).
first_failure() {
    awk '
        length($0) == 79 && /^-+$/ { if (hdr) { hdr = 0 } else { hdr = 1; name = "" }; next }
        hdr { sub(/^ +/, ""); name = (name == "" ? $0 : name " " $0); next }
        !grab && /: FAILED:$/ { grab = 1; where = $0; sub(/: FAILED:$/, "", where)
                               print "  first failure: \"" name "\" at " where; next }
        !grab { next }
        /^$/ { blank = 1; next }
        blank && !/^(with |due to |  )/ { exit }
        { blank = 0 }
        /Unknown expression after the reported line/ { next }
        /^(with |due to ).*:$/ { label = $0; shown = 0; next }  # printed with its first line
        { sub(/^ +/, "") }
        label == "with expansion:" && $0 == "false" { next }  # CHECK(ok): the message says it all
        !shown { if (label != "") print "    " label; shown = 1 }
        label == "with expansion:" && match($0, / == Approx\( .* \)$/) {  # a == Approx( b ): got a, expected b
            e = substr($0, RSTART + 12); sub(/ \)$/, "", e)
            print "      got " substr($0, 1, RSTART - 1) ", expected " e; next
        }
        { print "      " $0 }
    ' <<<"$1" | head -n 24
}

# explain LAB CHAPTER NEEDS OUT RC CRASHED: what a student needs when LAB fails: the first failure, then the task
# (the equation to check, from the LAB comments above the function) and the chapter to read.
explain() {
    local lab=$1 chapter=$2 needs=$3 out=$4 rc=$5 crashed=$6
    if [ "$crashed" = 1 ]; then
        echo "  the tests crashed or hung (exit $rc): the last lines were"; tail -n 5 <<<"$out" | sed 's/^/    /'
    else
        first_failure "$out"
    fi
    local other; other=$(grep -oE '^  lab [a-z0-9_]+$' <<<"$out" | sed 's/^  lab //' | grep -vx "$lab" | sort -u | tr '\n' ' ')
    if grep -qxE "  lab $lab" <<<"$out"; then
        echo "  not written yet: write the body between // LAB($lab): begin and // LAB($lab): end in:" \
            "$(grep -rlE "^ *// LAB\($lab\): begin$" ref | tr '\n' ' ')"
    fi
    [ -z "$other" ] || echo "  these tests also run through lab(s) not written yet: $other(this lab needs: $( [ "$needs" = - ] && echo none || echo "${needs//,/, }"))"
    echo "  check the equation (the task above the function):"
    grep -rhE "^ *// LAB\($lab\) " ref | grep -v "extension (not graded)" |
        sed -E "s|^ *// LAB\($lab\) task: |    - |; s|^ *// LAB\($lab\) hint: ?|      hint: |; s|^ *// LAB\($lab\) |      |"
    echo "  read: walkthrough/$chapter/README.md"
}

# labs/lab_test.sh --first-failure: the first failure of the Catch2 report on stdin (tests/test_lab_kit.cpp)
if [ "$build" = --first-failure ]; then first_failure "$(cat)"; exit 0; fi

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
    n=$("$build/tests/$bin" --list-test-names-only "$spec" 2>/dev/null </dev/null | grep -c .)
    crashed=0
    out=$(timeout 600 "$build/tests/$bin" --use-colour no "$spec" 2>&1 </dev/null); rc=$?  # stdin: not the rows
    summary=$(grep -E '^(All tests passed|test cases:)' <<<"$out" | tail -n 1)
    if [[ $summary =~ All\ tests\ passed ]]; then p=$n
    elif [[ $summary =~ \|\ +([0-9]+)\ passed ]]; then p=${BASH_REMATCH[1]}
    else p=0; fi
    # no summary line: it crashed or was killed (Catch2's own exit code counts failed checks, so it is no
    # crash signal); nothing counts
    [ -n "$summary" ] || { p=0; crashed=1; }
    f=$((n - p)); [ "$n" -gt 0 ] || { f=1; echo "lab $lab: the spec $spec selects no test of $bin" >&2; }
    [ $f = 0 ] || all_ok=0
    echo "lab $lab: $p passed, $f failed"
    if [ $f != 0 ] && [ -n "$only" ]; then explain "$lab" "$chapter" "$needs" "$out" "$rc" "$crashed"; fi
    pts=$(( n > 0 ? points * p / n : 0 )); total_pts=$((total_pts + points)); got_pts=$((got_pts + pts))
    table+=$(printf '%-18s %-16s %5s / %-5s %4s / %s' "$lab" "$chapter" "$p" "$n" "$pts" "$points")$'\n'
done <<<"$rows"
if [ -z "$only" ]; then
    printf '\n%-18s %-16s %13s %11s\n' lab chapter "tests passed" points
    printf '%s' "$table"
    printf '%-18s %-16s %13s %4s / %s\n' total "" "" "$got_pts" "$total_pts"
fi
[ $all_ok = 1 ]
