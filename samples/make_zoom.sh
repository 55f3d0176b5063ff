#!/usr/bin/env bash
# Regenerates samples/zoom.webp, the infinite zoom shown in README.md: the
# KDE "EveningGlow" landscape of docs/presets/ at 384x240, 75 frames (3 s at
# 25 frames a second), each the last dream 3 % closer and turned 0.3 degrees,
# dreamed again with every step; an animated WebP through ffmpeg.
# usage: samples/make_zoom.sh [path/to/deepdream]  (needs ffmpeg, convert)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
bin=${1:-$here/../build/deepdream}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
convert "$here/../docs/presets/landscape.jpg" -resize 384x240 "$work/landscape.png"
start=$(date +%s.%N)
"$bin" --quiet --zoom 1.03 --rotate 0.3 --frames 75 --frame-steps 10 "$work/landscape.png" - |
  ffmpeg -v error -y -f yuv4mpegpipe -i - -loop 0 -c:v libwebp_anim -quality 60 "$here/zoom.webp"
printf 'zoom.webp: %.0f s, %s bytes\n' "$(echo "$(date +%s.%N) - $start" | bc)" "$(stat -c %s "$here/zoom.webp")"
