#!/usr/bin/env bash
# Fuzzes meshplug's input parsers with libFuzzer, ASan and UBSan (docs/security.md).
#   tools/fuzz.sh                    lists the targets
#   tools/fuzz.sh TARGET[,TARGET…] [MINUTES]   fuzzes those targets (default 10 minutes)
#   tools/fuzz.sh all [MINUTES]      fuzzes every target at once, sharing the cores
# Inputs that reach new code are merged into fuzz/corpus/TARGET; inputs that crash, leak,
# hang or exhaust memory are copied to fuzz/regressions/TARGET, where TARGET_replay_test
# runs them in the normal suite: commit both. Builds in its own output base (clang-14),
# so stop other Bazel builds of this tree first.
set -euo pipefail
cd "$(dirname "$0")/.."
tools/install-deps.sh fuzz

output_base=${MESHPLUG_FUZZ_OUTPUT_BASE:-$HOME/.cache/meshplug-fuzz-base}
bazel_fuzz() { bazel --output_base="$output_base" "$@"; }
targets=$(bazel_fuzz query --noshow_progress 'kind(cc_binary, //fuzz:*)' 2>/dev/null | sed 's|//fuzz:||')

if [ $# -eq 0 ]; then
  echo "fuzz targets:" $targets
  exit 0
fi
if [ "$1" = all ]; then
  selected=$targets
else
  selected=${1//,/ }
  for t in $selected; do
    echo "$targets" | grep -qx "$t" || { echo "fuzz.sh: no fuzz target '$t' (have: $(echo $targets))" >&2; exit 2; }
  done
fi
minutes=${2:-10}
[[ "$minutes" =~ ^[0-9]+$ ]] && [ "$minutes" -gt 0 ] || { echo "fuzz.sh: MINUTES must be a positive integer, got '$minutes'" >&2; exit 2; }

labels=()
for t in $selected; do labels+=("//fuzz:$t"); done
bazel_fuzz build --config=fuzz --symlink_prefix=/ "${labels[@]}"
bin=$(bazel_fuzz info --config=fuzz bazel-bin 2>/dev/null)
bazel_fuzz shutdown  # its memory is the fuzzer's now

# One target: fuzz, merge what reached new code into the corpus, keep what failed.
fuzz_one() {
  local t=$1 work status=0 before after found=0 runs speed coverage
  work=$(mktemp -d)
  mkdir -p "$work/new" "fuzz/corpus/$t"
  local dict=()
  [ -f "fuzz/dicts/$t.dict" ] && dict=(-dict="fuzz/dicts/$t.dict")
  # Leak checking is off: LeakSanitizer's scan of a 2 GB heap at an out-of-memory report
  # took over an hour; memory is bounded by -rss_limit_mb and -malloc_limit_mb instead.
  ASAN_OPTIONS=detect_leaks=0 "$bin/fuzz/$t" -max_total_time=$((minutes * 60)) -timeout=25 \
    -rss_limit_mb=2048 -malloc_limit_mb=1024 -print_final_stats=1 -artifact_prefix="$work/" \
    "${dict[@]}" "$work/new" "fuzz/corpus/$t" >"$work/log" 2>&1 || status=$?
  before=$(ls "fuzz/corpus/$t" | wc -l)
  ASAN_OPTIONS=detect_leaks=0 "$bin/fuzz/$t" -merge=1 "fuzz/corpus/$t" "$work/new" >>"$work/log" 2>&1 || true
  after=$(ls "fuzz/corpus/$t" | wc -l)
  for artifact in "$work"/crash-* "$work"/leak-* "$work"/timeout-* "$work"/oom-*; do
    [ -e "$artifact" ] || continue
    mkdir -p "fuzz/regressions/$t"
    cp "$artifact" "fuzz/regressions/$t/"
    echo "   $t finding: fuzz/regressions/$t/$(basename "$artifact")"
    found=$((found + 1))
  done
  runs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$work/log" | head -1 | grep -o '[0-9]*$' || echo "?")
  speed=$(grep -o 'stat::average_exec_per_sec: *[0-9]*' "$work/log" | head -1 | grep -o '[0-9]*$' || echo "?")
  coverage=$(grep -E '^#[0-9]+' "$work/log" | grep -o 'cov: [0-9]* ft: [0-9]*' | tail -1)
  echo "   $t: $minutes min, $runs runs, $speed exec/s, $coverage, corpus $before -> $after, findings $found (exit $status, log $work/log)"
  [ "$found" -eq 0 ]
}

# Targets run side by side, sharing the machine's cores.
echo "fuzzing $(echo $selected) for $minutes min"
pids=()
for t in $selected; do
  fuzz_one "$t" &
  pids+=($!)
done
failed=0
for pid in "${pids[@]}"; do wait "$pid" || failed=1; done
[ "$failed" -eq 0 ]
