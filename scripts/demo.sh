#!/usr/bin/env bash
# make demo: generate sample VODs, serve them, run a one-process farm
# (montage-coordinator -dev), submit examples/demo.yaml, download the montage
# to out/montage.mp4 and print what ffprobe sees in it.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-out}
ADDR=${DEMO_LISTEN:-127.0.0.1:7400}
SAMPLES=${DEMO_SAMPLES:-127.0.0.1:7480}
mkdir -p "$OUT"
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT

ready() { # addr log: wait until the coordinator serves current state (no curl needed)
  for _ in $(seq 1 150); do bin/montagectl --addr "http://$1" list >/dev/null 2>&1 && return 0; sleep 0.2; done
  echo "coordinator did not come up; its log:" >&2; tail -n 30 "$2" >&2; exit 1
}

echo "== generating and serving sample VODs on $SAMPLES"
bin/montage-samples -dir "$OUT/samples" -listen "$SAMPLES" -seconds 30 >"$OUT/samples.log" 2>&1 &
pids+=($!)
for _ in $(seq 1 600); do grep -q "serving samples" "$OUT/samples.log" && break; sleep 0.2; done
grep -q "serving samples" "$OUT/samples.log" || { echo "sample server failed:" >&2; cat "$OUT/samples.log" >&2; exit 1; }

echo "== starting montage-coordinator -dev on $ADDR (log: $OUT/coordinator.log)"
bin/montage-coordinator -dev -listen "$ADDR" >"$OUT/coordinator.log" 2>&1 &
pids+=($!)
ready "$ADDR" "$OUT/coordinator.log"
kill -0 "${pids[-1]}" 2>/dev/null || { echo "montage-coordinator exited (is $ADDR already in use?):" >&2; tail -n 5 "$OUT/coordinator.log" >&2; exit 1; }

export MONTAGE_ADDR="http://$ADDR"
echo "== submitting examples/demo.yaml"
start=$(date +%s%N)
if ! bin/montagectl submit examples/demo.yaml --wait | tee "$OUT/submit.txt"; then
  echo "demo job did not succeed; coordinator log: $OUT/coordinator.log" >&2
  exit 1
fi
end=$(date +%s%N)
job=$(awk 'NR==1 {print $2}' "$OUT/submit.txt")
echo "== job $job finished in $(( (end - start) / 1000000 )) ms"
bin/montagectl download "$job" -o "$OUT/montage.mp4"
echo "== $OUT/montage.mp4"
ffprobe -v error -show_entries format=duration:stream=index,codec_type,codec_name,width,height,r_frame_rate,sample_rate,channels \
  -of compact=p=0:nk=0 "$OUT/montage.mp4"
ffprobe -v error -show_entries chapter=start_time,end_time:chapter_tags=title -of compact=p=0 "$OUT/montage.mp4"

# Check what the demo promises: one H.264 and one AAC stream at the profile's
# size and rate, lasting the sum of the highlights (± 0.1 s each).
want_dur=21; n=4
streams=$(ffprobe -v error -show_entries stream=codec_type,codec_name,width,height,r_frame_rate -of csv=p=0 "$OUT/montage.mp4")
video=$(grep -c '^h264,video,1280,720,30/1$' <<<"$streams" || true)
audio=$(grep -c '^aac,audio' <<<"$streams" || true)
others=$(grep -cE ',(video|audio)' <<<"$streams" || true)
dur=$(ffprobe -v error -show_entries format=duration -of csv=p=0 "$OUT/montage.mp4")
if [ "$video" = 1 ] && [ "$audio" = 1 ] && [ "$others" = 2 ] &&
   awk -v d="$dur" -v w="$want_dur" -v n="$n" 'BEGIN {exit !(d >= w - 0.1*n && d <= w + 0.1*n)}'; then
  echo "== OK: one H.264 1280x720@30 stream, one AAC stream, ${dur} s (asked ${want_dur} s)"
else
  echo "== montage does not match the spec:" >&2; echo "$streams" >&2; echo "duration $dur, want $want_dur" >&2
  exit 1
fi
