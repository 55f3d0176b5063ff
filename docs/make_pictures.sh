#!/usr/bin/env bash
# Regenerates the pictures of docs/PRESETS.md: every preset (and the default
# look) on the same two photos, dreamed at the size given below and saved
# as small JPEGs in docs/presets/. The photos' sources and licences are in
# docs/presets/README.md.
# usage: docs/make_presets.sh [path/to/deepdream]
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
bin=${1:-$here/../build/deepdream}
out=$here/presets
small=(-quality 85 -resize 384x -strip)
for photo in astronaut landscape; do
  src=$out/$photo.jpg
  [ "$photo" = astronaut ] && src=$here/../samples/astronaut.png
  convert "$src" "${small[@]}" "$out/${photo}_photo.jpg"
  for preset in default $("$bin" --list-presets | awk '/^[a-z]/ {print $1}'); do
    args=(--quiet)
    [ "$preset" = default ] || args+=(--preset "$preset")
    start=$(date +%s.%N)
    "$bin" "${args[@]}" "$src" "ppm:/tmp/make_presets.$$.ppm"
    convert "/tmp/make_presets.$$.ppm" "${small[@]}" "$out/${photo}_$preset.jpg"
    printf '%s %s: %.1f s\n' "$photo" "$preset" "$(echo "$(date +%s.%N) - $start" | bc)"
  done
done
rm -f "/tmp/make_presets.$$.ppm"
