#!/usr/bin/env bash
# The farm's overhead: the demo montage through montage-coordinator -dev
# (submit → lease → agent → ffmpeg → object store → download) against the
# same ffprobe/ffmpeg commands run by bench/direct in a plain sequential loop. Runs alternate,
# RUNS of each (default 5); prints each time, the medians and their ratio.
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${RUNS:-5}
OUT=${OUT:-out/bench}
ADDR=${BENCH_LISTEN:-127.0.0.1:7400}
SAMPLES=${DEMO_SAMPLES:-127.0.0.1:7480}
rm -rf "$OUT"; mkdir -p "$OUT"
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT
ready() { # addr log: wait until the coordinator serves current state (no curl needed)
  for _ in $(seq 1 150); do bin/montagectl --addr "http://$1" list >/dev/null 2>&1 && return 0; sleep 0.2; done
  echo "coordinator did not come up; its log:" >&2; tail -n 30 "$2" >&2; exit 1
}

bin/montage-samples -dir out/samples -listen "$SAMPLES" -seconds 30 >"$OUT/samples.log" 2>&1 &
pids+=($!)
for _ in $(seq 1 600); do grep -q "serving samples" "$OUT/samples.log" && break; sleep 0.2; done
grep -q "serving samples" "$OUT/samples.log" || { echo "sample server failed:" >&2; cat "$OUT/samples.log" >&2; exit 1; }
# No segment cache: every run must render, as the loop does.
bin/montage-coordinator -dev -listen "$ADDR" -cache-budget -1 >"$OUT/coordinator.log" 2>&1 &
pids+=($!)
ready "$ADDR" "$OUT/coordinator.log"
kill -0 "${pids[-1]}" 2>/dev/null || { echo "montage-coordinator exited (is $ADDR already in use?):" >&2; tail -n 5 "$OUT/coordinator.log" >&2; exit 1; }
export MONTAGE_ADDR="http://$ADDR"
go build -o "$OUT/direct" ./bench/direct

ms() { echo $(( $(date +%s%N) / 1000000 )); }
farm=(); direct=()
for i in $(seq 1 "$RUNS"); do
  t=$(ms)
  job=$(bin/montagectl submit examples/demo.yaml --wait -q)
  bin/montagectl download "$job" -o "$OUT/farm.mp4" >/dev/null
  farm+=($(( $(ms) - t )))
  t=$(ms)
  rm -rf "$OUT/work"; "$OUT/direct" examples/demo.yaml "$OUT/work"
  direct+=($(( $(ms) - t )))
  echo "run $i: farm ${farm[-1]} ms, direct ${direct[-1]} ms"
done
median() { printf '%s\n' "$@" | sort -n | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }
mf=$(median "${farm[@]}"); md=$(median "${direct[@]}")
echo "median farm ${mf} ms, median direct ${md} ms, overhead ratio $(awk -v f="$mf" -v d="$md" 'BEGIN {printf "%.3f", f/d}')"
