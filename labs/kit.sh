#!/usr/bin/env bash
# labs/kit.sh — the lab kit: the student tree made from this repository (walkthrough/LABS.md).
#
#   labs/kit.sh make OUT           write the kit into OUT (new or empty): the tracked files minus .git,
#                                  every "// LAB(name): begin" ... "// LAB(name): end" body replaced by
#                                  a stub that throws dsref::NotImplemented("lab name")
#   labs/kit.sh stub FILE [KEEP]   print FILE with its lab bodies stubbed, except the labs in the
#                                  comma list KEEP (how the checks put one reference body back)
#   labs/kit.sh files              the source files that hold lab bodies
#   labs/kit.sh bodies LAB         the reference lines of LAB's bodies (what must not leak)
#   labs/kit.sh leaks DIR          every distinctive reference body line found in DIR; exit 1 if any
#
# Plain bash + awk: no Python, nothing to install. Run from anywhere inside the repository.
set -euo pipefail
cd "$(dirname "$0")/.."

lab_files() { grep -rlE '^ *// LAB\([a-z0-9_]+\): begin$' ref | sort; }

# stub_file FILE KEEP: the stub keeps both markers, so a student writes between them and a grader can
# put a body back. The pragmas silence what a stub leaves unused (parameters, locals computed before the
# begin marker, static helpers of the body); they go in just before the first namespace line.
stub_file() {
    awk -v keep=",$2," '
        function flush_pragmas() {
            if (done_pragmas) return
            print "#include \"core/error.h\"  // lab kit: dsref::NotImplemented"
            print "#pragma GCC diagnostic ignored \"-Wunused-parameter\"  // lab kit: stubs leave these unused"
            print "#pragma GCC diagnostic ignored \"-Wunused-variable\""
            print "#pragma GCC diagnostic ignored \"-Wunused-but-set-variable\""
            print "#pragma GCC diagnostic ignored \"-Wunused-function\""
            done_pragmas = 1
        }
        /^namespace / { flush_pragmas() }
        match($0, /^ *\/\/ LAB\([a-z0-9_]+\): begin$/) {
            if (inside) { print FILENAME ": nested LAB begin at line " NR > "/dev/stderr"; exit 3 }
            name = $0; sub(/^ *\/\/ LAB\(/, "", name); sub(/\): begin$/, "", name)
            indent = $0; sub(/\/\/.*/, "", indent)
            inside = 1; cut = index(keep, "," name ",") == 0
            print
            if (cut) print indent "throw dsref::NotImplemented(\"lab " name "\");"
            next
        }
        match($0, /^ *\/\/ LAB\([a-z0-9_]+\): end$/) {
            e = $0; sub(/^ *\/\/ LAB\(/, "", e); sub(/\): end$/, "", e)
            if (!inside || e != name) { print FILENAME ": LAB end without its begin at line " NR > "/dev/stderr"; exit 3 }
            inside = 0; print; next
        }
        { if (!(inside && cut)) print }
        END { if (inside) { print FILENAME ": LAB " name " has no end" > "/dev/stderr"; exit 3 } }
    ' "$1"
}

# The reference lines between LAB's markers, whitespace-trimmed, in every file.
bodies() {
    for f in $(lab_files); do
        awk -v lab="$1" '
            $0 ~ "^ *// LAB\\(" lab "\\): end$" { inside = 0 }
            inside { sub(/^[ \t]+/, ""); sub(/[ \t]+$/, ""); print }
            $0 ~ "^ *// LAB\\(" lab "\\): begin$" { inside = 1 }
        ' "$f"
    done
}

labs() { grep -v '^#' labs/labs.tsv | cut -f1; }

# A line is distinctive when it is at least 24 characters long, is not a plain counting loop header or an
# OpenMP pragma (every file has those), and is not listed in labs/leak_allow.txt (lines that also occur,
# rightly, outside the body: a common declaration, a shared helper call).
distinctive() {
    bodies "$1" | awk 'length($0) >= 24' |
        grep -vE '^for \(int64_t [a-z0-9_]+ = [a-z0-9_]+; [a-z0-9_ +]+ < [A-Za-z0-9_]+; [a-z0-9_]+\+\+\)( \{)?$|^#pragma omp ' |
        grep -vxF -f <(grep -v '^#' labs/leak_allow.txt) || true
}

case "${1:-}" in
    make)
        out=${2:?usage: labs/kit.sh make OUT}
        if [ -e "$out" ] && [ -n "$(ls -A "$out")" ]; then echo "lab-kit: $out exists and is not empty" >&2; exit 1; fi
        mkdir -p "$out"
        command -v git >/dev/null && git rev-parse --git-dir >/dev/null 2>&1 ||
            { echo "lab-kit: needs the git repository (this is not one: a kit cannot make a kit)" >&2; exit 1; }
        # tracked files and new ones not ignored (so build outputs, which hold compiled bodies, stay out)
        git ls-files -co --exclude-standard -z | while IFS= read -r -d '' f; do [ -f "$f" ] && printf '%s\0' "$f"; done |
            tar --null -T - -cf - | tar -xf - -C "$out"
        for f in $(lab_files); do stub_file "$f" "" > "$out/$f"; done
        ver=$(grep -m1 -oE '^### Lab kit [0-9]+' CHANGELOG.md | grep -oE '[0-9]+$' || echo '?')
        printf 'lab kit %s made from dsref %s\n' "$ver" "$(git describe --always --dirty 2>/dev/null || echo unknown)" > "$out/labs/KIT"
        n=$(labs | wc -l)
        echo "lab-kit: $out: lab kit $ver, $n labs stubbed in $(lab_files | wc -l) files; build with: make -C $out lab-test"
        ;;
    stub) stub_file "${2:?usage: labs/kit.sh stub FILE [KEEP]}" "${3:-}" ;;
    files) lab_files ;;
    bodies) bodies "${2:?usage: labs/kit.sh bodies LAB}" ;;
    leaks)
        dir=${2:?usage: labs/kit.sh leaks DIR}
        lines=$(for lab in $(labs); do distinctive "$lab"; done | sort -u)
        # one pass over DIR for all the lines; then name the lab of each line found
        if found=$(grep -rhoIF --exclude-dir=.git -f <(printf '%s\n' "$lines") "$dir" | sort -u) && [ -n "$found" ]; then
            while IFS= read -r line; do
                echo "leak: \"$line\" in: $(grep -rlF --exclude-dir=.git -e "$line" "$dir" | tr '\n' ' ')"
            done <<<"$found"
            exit 1
        fi
        echo "leaks: none ($(labs | wc -l) labs, $(grep -c . <<<"$lines") distinctive lines)"
        ;;
    *) sed -n '2,13p' "$0"; exit 2 ;;
esac
