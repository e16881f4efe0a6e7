#!/usr/bin/env bash
# Installs ffmpeg/ffprobe when missing (as root on Debian/Ubuntu), or says
# exactly what to run.
set -euo pipefail
if command -v ffmpeg >/dev/null && command -v ffprobe >/dev/null; then
  exit 0
fi
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  echo "installing ffmpeg (apt-get)…" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq ffmpeg >/dev/null
  exit 0
fi
echo "ffmpeg and ffprobe are required. Install them with:" >&2
echo "  sudo apt-get update && sudo apt-get install -y ffmpeg" >&2
exit 1
