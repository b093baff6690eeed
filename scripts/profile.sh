#!/usr/bin/env bash
# Where the engine's time goes (docs/performance.md, "Profile"):
#   scripts/profile.sh                 # callgrind: no-op plan of 10,000, plan of 100,000
#   scripts/profile.sh perf            # perf record/report instead (sampled wall time)
#   scripts/profile.sh callgrind plan  # only one of the two (noop, plan)
#   NOOP=1000 PLAN=10000 scripts/profile.sh   # other sizes
# Builds the bench with the `profiling` cargo profile (release code with
# debug symbols; no AWS SDK) and profiles its `noop` and `plan` modes.
# callgrind counts instructions only inside the measured function
# (`noop_plan`, `plan_empty`), so its figures do not depend on the machine's
# load; perf samples the whole run (including the apply that sets up the
# no-op plan) and shows time, cache misses and page faults included.
set -euo pipefail
cd "$(dirname "$0")/.."
tool="${1:-callgrind}"
only="${2:-}"
noop="${NOOP:-10000}"
plan="${PLAN:-100000}"
target="${CARGO_TARGET_DIR:-target}"
cargo build --profile profiling -p skyplan-bench --quiet
bin="$target/profiling/skyplan-bench"
out="$target/profile"
mkdir -p "$out"

# "file:function [object]" -> "function", each function once (callgrind
# lists inlined parts of a function under their source files separately;
# the first line, the largest, is the function's own).
tidy() {
    sed -E 's#  [^ ]*\.(rs|c|h|S|inc):#  #; s#  \?\?\?:#  #; s# \[[^]]*\]$##' |
        awk '{ line = $0; sub(/^ *[0-9,]+ \( *[0-9.]+%\) +/, "", line); if (!seen[line]++) print }' | cut -c1-160
}

callgrind() {
    local name="$1" fn="$2"; shift 2
    local file="$out/callgrind.$name.out"
    echo "== $name: $bin $* (callgrind, counting inside $fn)"
    valgrind --tool=callgrind --callgrind-out-file="$file" --toggle-collect="*$fn*" "$bin" "$@" 2>&1 |
        grep -E 'refs|runs' || true
    echo "-- inclusive, skyplan functions and the parsers they call (instructions, % of $fn):"
    # (`|| true`: `head` closing the pipe early is not a failure.)
    callgrind_annotate --auto=no --inclusive=yes "$file" 2>/dev/null |
        grep -E 'skyplan_(engine|state|sim)::[a-z_]+::[A-Za-z_<]|toml::de::from_str|serde_json::de::from_trait \[' |
        grep -vE 'closure|drop_in_place|impl serde|=>' | tidy | head -16 || true
    echo "-- exclusive (self), top 15:"
    callgrind_annotate --auto=no "$file" 2>/dev/null | sed -n '/^Ir/,$p' | grep -E '^ *[0-9,]+ \(' |
        grep -v 'PROGRAM TOTALS' | head -15 | tidy || true
    echo "   (full profile: callgrind_annotate --inclusive=yes $file)"
    echo
}

perf_run() {
    local name="$1"; shift
    local file="$out/perf.$name.data"
    echo "== $name: $bin $* (perf, whole run)"
    perf record -F 499 --call-graph dwarf,16384 -o "$file" "$bin" "$@" 2>&1 | grep -E 'runs' || true
    echo "-- self time, top 25:"
    perf report -i "$file" --no-children --comm skyplan-bench --percent-limit 0.8 --stdio -g none 2>/dev/null |
        grep -E '^ +[0-9]' | head -25 | cut -c1-160 || true
    echo "-- including callees, skyplan functions:"
    perf report -i "$file" --children --comm skyplan-bench --percent-limit 2 --stdio -g none 2>/dev/null |
        grep -E 'skyplan_(engine|state|sim)::[a-z_]+::[A-Za-z_<]|toml::de::from_str|serde_json::de::from_trait' |
        grep -vE 'closure|drop_in_place|impl serde' | head -20 | cut -c1-160 || true
    echo "   (full profile: perf report -i $file)"
    echo
}

case "$tool" in
    callgrind)
        [ "$only" = plan ] || callgrind noop noop_plan noop "$noop" 1
        [ "$only" = noop ] || callgrind plan plan_empty plan "$plan" 1
        ;;
    perf)
        [ "$only" = plan ] || perf_run noop noop "$noop" 20
        [ "$only" = noop ] || perf_run plan plan "$plan" 3
        ;;
    *) echo "usage: scripts/profile.sh [callgrind|perf]" >&2; exit 2 ;;
esac
