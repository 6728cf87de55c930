#!/usr/bin/env bash
# Runs every Catch2 test binary given on the command line from the repository root and prints one
# closing line "tests: N passed, N failed" that counts test cases over all binaries.
# A binary that crashes or prints no summary counts as one failed case. Lines a test prints starting with
# "report: " (measured figures people want to see, e.g. the emulation targets) are shown under its line.
set -u
cd "$(dirname "$0")/.."
# Idle OpenMP threads sleep instead of spinning: on a loaded 2-core machine spinning at barriers
# slows the small test workloads by 100x. Results do not depend on it.
export OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-passive}
passed=0; failed=0; bad_bins=()
for bin in "$@"; do
  # A hanging test must not stall the run: each binary gets $DSREF_TEST_TIMEOUT seconds (default 600).
  out=$(timeout -k 10 "${DSREF_TEST_TIMEOUT:-600}" "$bin" --use-colour no 2>&1); rc=$?
  if [ $rc -eq 124 ] || [ $rc -eq 137 ]; then out="$out
TIMEOUT: $bin ran longer than ${DSREF_TEST_TIMEOUT:-600} s"; fi
  summary=$(printf '%s\n' "$out" | grep -E '^(All tests passed|test cases:)' | tail -n 1)
  if [[ $summary =~ All\ tests\ passed.*\ ([0-9]+)\ test\ case ]]; then
    p=${BASH_REMATCH[1]}; f=0
  elif [[ $summary =~ test\ cases:\ +([0-9]+)\ \|\ +([0-9]+)\ passed\ \|\ +([0-9]+)\ failed ]]; then
    p=${BASH_REMATCH[2]}; f=${BASH_REMATCH[3]}
  elif [[ $summary =~ test\ cases:\ +([0-9]+)\ \|\ +([0-9]+)\ failed ]]; then
    p=0; f=${BASH_REMATCH[2]}
  else
    p=0; f=1
  fi
  if [ $rc -ne 0 ] && [ "$f" = 0 ]; then f=1; fi
  passed=$((passed + p)); failed=$((failed + f))
  printf '%-40s %4d passed %4d failed\n' "$(basename "$bin")" "$p" "$f"
  printf '%s\n' "$out" | grep -E '^report: ' | sed 's/^report: /    /'  # figures a test prints for people
  if [ "$f" != 0 ]; then bad_bins+=("$bin"); printf '%s\n' "$out" | tail -n 60; fi
done
[ ${#bad_bins[@]} -eq 0 ] || echo "failing binaries: ${bad_bins[*]}"
echo "tests: $passed passed, $failed failed"
[ "$failed" = 0 ]
