#!/usr/bin/env bash
# Regenerates the sample dreams shown in README.md with the current build's
# default options: samples/NAME_dream.jpg from samples/NAME.png.
# usage: samples/make_dreams.sh [path/to/deepdream]
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
bin=${1:-$here/../build/deepdream}
for name in astronaut chelsea coffee; do
  start=$(date +%s.%N)
  "$bin" --quiet "$here/$name.png" "$here/${name}_dream.jpg"
  printf '%s: %.1f s\n' "$name" "$(echo "$(date +%s.%N) - $start" | bc)"
done
