#!/usr/bin/env bash
# Regenerates the pictures of docs/PRESETS.md and README.md: every preset
# (and the default look) on the same two photos, dreamed at the size given below and saved
# as small JPEGs in docs/presets/. The photos' sources and licences are in
# docs/presets/README.md.
# usage: docs/make_pictures.sh [path/to/deepdream]
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
    "$bin" "${args[@]}" "$src" "ppm:/tmp/make_pictures.$$.ppm"
    convert "/tmp/make_pictures.$$.ppm" "${small[@]}" "$out/${photo}_$preset.jpg"
    printf '%s %s: %.1f s\n' "$photo" "$preset" "$(echo "$(date +%s.%N) - $start" | bc)"
  done
done

# The controls shown in README.md: a guide (cups), a mask (the astronaut's
# background only: a blurred ellipse, black over her), colours kept.
convert "$here/../samples/chelsea.png" "${small[@]}" "$out/chelsea_photo.jpg"
convert "$out/cups.jpg" -quality 85 -resize 128x -strip "$out/cups_small.jpg"
"$bin" --quiet --guide "$out/cups.jpg" "$here/../samples/chelsea.png" "ppm:/tmp/make_pictures.$$.ppm"
convert "/tmp/make_pictures.$$.ppm" "${small[@]}" "$out/chelsea_guided.jpg"
"$bin" --quiet --preserve-colors "$here/../samples/chelsea.png" "ppm:/tmp/make_pictures.$$.ppm"
convert "/tmp/make_pictures.$$.ppm" "${small[@]}" "$out/chelsea_colors.jpg"
convert -size 512x512 xc:white -fill black -draw "ellipse 185,300 165,260 0,360" -blur 0x20 "/tmp/make_pictures.$$.mask.png"
convert "/tmp/make_pictures.$$.mask.png" -quality 85 -resize 128x -strip "$out/astronaut_mask.jpg"
"$bin" --quiet --mask "/tmp/make_pictures.$$.mask.png" "$here/../samples/astronaut.png" "ppm:/tmp/make_pictures.$$.ppm"
convert "/tmp/make_pictures.$$.ppm" "${small[@]}" "$out/astronaut_masked.jpg"
rm -f "/tmp/make_pictures.$$.ppm" "/tmp/make_pictures.$$.mask.png"
