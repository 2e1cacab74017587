#!/usr/bin/env bash
# The whole suite (`make test`, as CI runs it) from a fresh clone of HEAD, RUNS times in a row,
# each beside a CPU hog: one busy loop per core, started before the run and stopped after it.
#
#   tests/stress.sh            3 runs under load
#   tests/stress.sh 5 --idle   5 runs without the hog
#
# Stops at the first red run (its log is kept); prints one line per run and a summary.
set -uo pipefail

runs=${1:-3}
load=1
[ "${2:-}" = "--idle" ] && load=0
repo=$(git -C "$(dirname "$0")/.." rev-parse --show-toplevel)
commit=$(git -C "$repo" rev-parse --short HEAD)
work=$(mktemp -d /tmp/dashcache-stress.XXXXXX)
hogs=()

stop_hogs() {
  ((${#hogs[@]})) && kill "${hogs[@]}" 2>/dev/null
  wait "${hogs[@]}" 2>/dev/null
  hogs=()
}
trap stop_hogs EXIT

start_hogs() {
  for _ in $(seq "$(nproc)"); do
    python3 -c 'while True: pass' &
    hogs+=($!)
  done
}

echo "stress: $runs run(s) of make test on $commit, $([ $load = 1 ] && echo "beside $(nproc) busy loops" || echo "no load"); logs in $work"
passed=0
for run in $(seq "$runs"); do
  clone="$work/run$run"
  git clone -q "$repo" "$clone"
  [ $load = 1 ] && start_hogs
  started=$(date +%s)
  (cd "$clone" && CI=true make test) >"$clone.log" 2>&1
  status=$?
  seconds=$(($(date +%s) - started))
  stop_hogs
  summary=$(grep -E '^=+ .*(passed|failed|error).* =+$' "$clone.log" | tail -1)
  echo "run $run: exit $status in ${seconds} s: ${summary:-no pytest summary}"
  if [ $status -ne 0 ]; then
    grep -E '^(FAILED|ERROR) ' "$clone.log"
    echo "stress: red on run $run of $runs; log: $clone.log"
    exit 1
  fi
  passed=$((passed + 1))
  rm -rf "$clone"
done
echo "stress: $passed of $runs green in a row on $commit"
