#!/usr/bin/env bash
# The farm of one agent against the plain loop the system it replaces ran:
# one ffmpeg per highlight (-ss before -i, the job's scale/pad/fps, the same
# encoder and settings, AAC) and a concat-demuxer copy. Same spec, same
# sample server, runs alternating, RUNS of each (default 5). Six 20-s
# highlights of three sources (720p30 MP4, 1080p60 MP4, 480p25 HLS) into
# 1280x720 at 30 fps, x264 veryfast CRF 23, loudness and fades off.
# The last line is: seedloop: runs=N farm_s=X loop_s=Y ratio=R (medians).
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${RUNS:-5}
OUT=${OUT:-out/seedloop}
ADDR=${BENCH_LISTEN:-127.0.0.1:7410}
SAMPLES=${SEEDLOOP_SAMPLES:-127.0.0.1:7481}
rm -rf "$OUT"; mkdir -p "$OUT/samples"
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT
make -s build

# A 1080p60 H.264 source with 2-s GOPs, as streaming platforms make them.
ffmpeg -nostdin -v error -y -f lavfi -i testsrc2=size=1920x1080:rate=60:duration=60 -f lavfi -i sine=frequency=330:sample_rate=48000:duration=60 \
  -c:v libx264 -preset ultrafast -g 120 -keyint_min 120 -sc_threshold 0 -pix_fmt yuv420p -c:a aac -b:a 128k -movflags +faststart "$OUT/samples/vod-1080.mp4"
bin/montage-samples -dir "$OUT/samples" -listen "$SAMPLES" -seconds 60 >"$OUT/samples.log" 2>&1 &
pids+=($!)
for _ in $(seq 1 900); do grep -q "serving samples" "$OUT/samples.log" && break; sleep 0.2; done
grep -q "serving samples" "$OUT/samples.log" || { echo "sample server failed:" >&2; cat "$OUT/samples.log" >&2; exit 1; }
S="http://$SAMPLES"
# url at
highlights=("$S/vod-a.mp4 2" "$S/vod-1080.mp4 5" "$S/vod-b.m3u8 8" "$S/vod-a.mp4 30" "$S/vod-1080.mp4 33" "$S/vod-b.m3u8 36")
{
  echo "name: seedloop"
  echo "profile: {resolution: 1280x720, fps: 30, quality: 23, preset: veryfast, loudness: \"off\", fade: \"0\", video_codec: h264, hwaccel: none}"
  echo "highlights:"
  for h in "${highlights[@]}"; do set -- $h; echo "  - {url: \"$1\", at: $2, duration: 20}"; done
} >"$OUT/spec.yaml"

# No segment cache: every run renders, as the loop does.
bin/montage-coordinator -dev -listen "$ADDR" -cache-budget -1 >"$OUT/coordinator.log" 2>&1 &
pids+=($!)
for _ in $(seq 1 150); do bin/montagectl --addr "http://$ADDR" list >/dev/null 2>&1 && break; sleep 0.2; done
export MONTAGE_ADDR="http://$ADDR"

vf="fps=30,scale=1280:720:force_original_aspect_ratio=decrease:force_divisible_by=2,pad=1280:720:(ow-iw)/2:(oh-ih)/2:color=black,setsar=1,format=yuv420p"
loop() {
  local dir="$OUT/loop" i=0
  rm -rf "$dir"; mkdir -p "$dir"
  : >"$dir/list.txt"
  for h in "${highlights[@]}"; do
    set -- $h
    ffmpeg -nostdin -v error -y -ss "$2" -i "$1" -t 20 -vf "$vf" -c:v libx264 -preset veryfast -crf 23 -g 60 -keyint_min 60 -sc_threshold 0 \
      -pix_fmt yuv420p -c:a aac -b:a 160k -ar 48000 -ac 2 "$dir/seg$i.mp4"
    echo "file 'seg$i.mp4'" >>"$dir/list.txt"
    i=$((i + 1))
  done
  ffmpeg -nostdin -v error -y -f concat -safe 0 -i "$dir/list.txt" -c copy -movflags +faststart "$dir/montage.mp4"
}

ms() { echo $(( $(date +%s%N) / 1000000 )); }
farm=(); plain=()
for i in $(seq 1 "$RUNS"); do
  t=$(ms)
  job=$(bin/montagectl submit "$OUT/spec.yaml" --wait -q)
  bin/montagectl download "$job" -o "$OUT/farm.mp4" >/dev/null
  farm+=($(( $(ms) - t )))
  t=$(ms)
  loop
  plain+=($(( $(ms) - t )))
  echo "run $i: farm ${farm[-1]} ms, loop ${plain[-1]} ms"
done
median() { printf '%s\n' "$@" | sort -n | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }
mf=$(median "${farm[@]}"); ml=$(median "${plain[@]}")
# Each pair ran back to back: their ratio sees less of the machine's drift.
pairs=(); for k in "${!farm[@]}"; do pairs+=("$(awk -v f="${farm[$k]}" -v l="${plain[$k]}" 'BEGIN {printf "%.3f", f/l}')"); done
echo "per-pair ratios: ${pairs[*]} (median $(median "${pairs[@]}"))"
awk -v n="$RUNS" -v f="$mf" -v l="$ml" 'BEGIN {printf "seedloop: runs=%d farm_s=%.2f loop_s=%.2f ratio=%.3f\n", n, f/1000, l/1000, f/l}'
