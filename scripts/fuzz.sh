#!/usr/bin/env bash
# Runs the fuzz targets (fuzz/fuzz_targets/) one after another under nice, SECONDS each:
#   scripts/fuzz.sh [SECONDS] [TARGET...]      (default 60 s; every target when none is named)
# libFuzzer through cargo-fuzz on the nightly toolchain, with AddressSanitizer and leak
# detection. Each target starts from its grown corpus (fuzz/corpus/TARGET, kept between runs,
# not in git) and from the seeds the test `write_seeds` of tests/fuzz_mirrors.rs writes: the
# corpus rows, the rules files, templates, approval records and MCP messages. Prints, per
# target, the seconds run, executions, coverage (libFuzzer's cov and ft), the corpus size and
# the peak memory, and exits 1 if any target crashed, hung, leaked or ran out of memory
# (libFuzzer failed or wrote an artifact to fuzz/artifacts/TARGET/; its log is in
# fuzz/target/logs/TARGET.log).
set -euo pipefail
seconds=${1:-60}
shift || true
cd "$(dirname "$0")/.."
case $seconds in '' | *[!0-9]*) echo "usage: $0 [SECONDS] [TARGET...]" >&2; exit 2 ;; esac

if ! rustup toolchain list | grep -q '^nightly'; then
  echo "fuzzing needs the nightly toolchain (rustup toolchain install nightly)" >&2
  exit 2
fi
if ! command -v cargo-fuzz >/dev/null 2>&1; then
  nice -n 19 cargo install cargo-fuzz --locked
fi

targets=("$@")
if [ "${#targets[@]}" -eq 0 ]; then
  mapfile -t targets < <(cargo +nightly fuzz list)
fi
nice -n 19 cargo +nightly fuzz build

seeds=$PWD/fuzz/target/seeds
logs=$PWD/fuzz/target/logs
rm -rf "$seeds"
mkdir -p "$logs"
AGENT_GATE_FUZZ_SEEDS=$seeds nice -n 19 cargo test --quiet --locked --test fuzz_mirrors \
  -- --ignored --exact write_seeds >/dev/null

artifacts() { find "fuzz/artifacts/$1" -type f | wc -l; }
# The value of `NAME: N` (libFuzzer's status lines) or `stat::NAME: N` (its final stats).
field() { grep -oE "(^| |::)$1:? +[0-9]+" | tail -n 1 | grep -oE '[0-9]+$' || echo '?'; }

failed=()
printf '%-16s %8s %12s %9s %7s %7s %7s %7s  %s\n' \
  target seconds executions execs/s cov ft corpus rss_mb result
for target in "${targets[@]}"; do
  mkdir -p "fuzz/corpus/$target" "fuzz/artifacts/$target"
  log=$logs/$target.log
  before=$(artifacts "$target")
  start=$(date +%s)
  status=0
  # Longer inputs are refused at the first check (a command is at most 4096 bytes, a
  # template 1024); a rules file may be as long as the seeds are.
  case $target in rules) max_len=() ;; *) max_len=(-max_len=8192) ;; esac
  # -timeout: one input taking longer is a hang; -rss_limit_mb and -malloc_limit_mb: memory;
  # -detect_leaks=1 (libFuzzer's default with ASan) reports a leak as a failure.
  nice -n 19 cargo +nightly fuzz run "$target" "fuzz/corpus/$target" "$seeds/$target" -- \
    -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -malloc_limit_mb=2048 \
    -detect_leaks=1 -print_final_stats=1 "${max_len[@]}" >"$log" 2>&1 || status=$?
  elapsed=$(($(date +%s) - start))
  found=$(($(artifacts "$target") - before))
  last=$(grep -E '^#[0-9]+' "$log" | grep ' cov: ' | tail -n 1 || true)
  result=ok
  if [ "$status" -ne 0 ] || [ "$found" -gt 0 ]; then
    result="FAILED (exit $status, $found new artifacts in fuzz/artifacts/$target; log $log)"
    failed+=("$target")
  fi
  printf '%-16s %8s %12s %9s %7s %7s %7s %7s  %s\n' "$target" "$elapsed" \
    "$(field number_of_executed_units <"$log")" "$(field average_exec_per_sec <"$log")" \
    "$(field cov <<<"$last")" "$(field ft <<<"$last")" "$(field corp <<<"$last")" \
    "$(field peak_rss_mb <"$log")" "$result"
done

if [ "${#failed[@]}" -gt 0 ]; then
  echo "fuzzing found problems in: ${failed[*]}" >&2
  for target in "${failed[@]}"; do
    echo "--- $target: end of $logs/$target.log" >&2
    tail -n 30 "$logs/$target.log" >&2
  done
  exit 1
fi
