#!/usr/bin/env bash
# Time per frame and steadiness of --video at 640x360 (docs/VIDEO.md): a pan
# over docs/presets/landscape.jpg (4 px a frame), dreamed with the defaults
# (detail carried along the flow, half the steps after the first frame) and
# with each frame dreamed alone (--blend 0, every step). The first frame's
# time is timed apart (one frame), the later ones from the rest.
# usage: bench/video.sh [path/to/deepdream] [FRAMES]   (needs ffmpeg, numpy)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
bin=${1:-$here/../build/deepdream}
frames=${2:-12}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
ffmpeg -nostdin -v error -y -loop 1 -i "$here/../docs/presets/landscape.jpg" \
  -vf "crop=640:360:'40+4*n':60" -frames:v "$frames" -r 25 -pix_fmt yuv420p -f yuv4mpegpipe "$work/pan.y4m"
ffmpeg -nostdin -v error -y -f yuv4mpegpipe -i "$work/pan.y4m" -frames:v 1 -f yuv4mpegpipe "$work/one.y4m"
seconds() { /usr/bin/time -f "%e %M" -o "$work/time" "$@" && cat "$work/time"; }
best=$(for f in avx512_bf16 avx512f avx2; do grep -qw "$f" /proc/cpuinfo && { echo "$f"; break; }; done)
echo "CPU: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //'), $(nproc) cores, ${best:-no avx2}"
echo
echo "| 640x360, $frames frames | first frame | each later frame | unsteadiness | dreamed | peak RSS |"
echo "|---|---:|---:|---:|---:|---:|"
for mode in "carried (defaults)|" "each frame alone|--blend 0 --frame-steps 10"; do
  name=${mode%%|*} opts=${mode#*|}
  # shellcheck disable=SC2086
  read -r one _ < <(seconds "$bin" --quiet --video $opts "$work/one.y4m" "$work/out1.y4m")
  # shellcheck disable=SC2086
  read -r all rss < <(seconds "$bin" --quiet --video $opts "$work/pan.y4m" "$work/out.y4m")
  read -r unsteady dreamed < <(/usr/bin/python3 "$here/video_steadiness.py" "$work/out.y4m" "$work/pan.y4m" 4)
  later=$(echo "($all - $one) / ($frames - 1)" | bc -l)
  printf '| %s | %.2f s | %.2f s | %s | %s | %d MiB |\n' "$name" "$one" "$later" "$unsteady" "$dreamed" $((rss / 1024))
done
read -r photo _ < <(/usr/bin/python3 "$here/video_steadiness.py" "$work/pan.y4m" "$work/pan.y4m" 4)
echo
echo "unsteadiness: mean |Y_t - Y_t-1 moved with the picture| in levels (the photo's own: $photo);"
echo "dreamed: mean |dream Y - photo Y|."
