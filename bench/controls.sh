#!/usr/bin/env bash
# What each artist control adds to a step (docs/PRESETS.md, "Cost"): the
# deepdream command on one photo at SIZE x SIZE, one octave, no tiling,
# with STEPS steps and with none, for the plain objective and with each
# control; a step's cost is (time(STEPS) - time(0)) / STEPS, so reading,
# planning, a guide's one forward pass and writing cancel out. Runs are
# interleaved over ROUNDS rounds and the median is kept, so the machine's
# drift hits every variant alike.
set -euo pipefail

prog=controls.sh
repo=$(cd "$(dirname "$0")/.." && pwd)
usage="usage: bench/controls.sh [--size 512] [--steps 10] [--rounds 3] [--threads N]
Needs build/deepdream and ImageMagick's convert. Prints a Markdown table."
size=512
steps=10
rounds=3
threads=0
while [ $# -gt 0 ]; do
  case "$1" in
    --size) size=$2; shift 2 ;;
    --steps) steps=$2; shift 2 ;;
    --rounds) rounds=$2; shift 2 ;;
    --threads) threads=$2; shift 2 ;;
    -h|--help) echo "$usage"; exit 0 ;;
    *) echo "$prog: unknown argument '$1'" >&2; echo "$usage" >&2; exit 2 ;;
  esac
done
dd=$repo/build/deepdream
[ -x "$dd" ] || { echo "$prog: $dd not built (cmake --build build)" >&2; exit 1; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
convert "$repo/samples/astronaut.png" -resize "${size}x${size}!" "$work/photo.png"
convert "$repo/samples/coffee.png" "$work/guide.png"
convert -size "${size}x${size}" gradient:white-black "$work/mask.png"

variants=(
  "plain (mixed3,mixed4)|-l mixed3,mixed4"
  "--guide (mixed3,mixed4)|-l mixed3,mixed4 --guide $work/guide.png"
  "--guide mixed2|-l mixed2 --guide $work/guide.png"
  "--guide mixed4|-l mixed4 --guide $work/guide.png"
  "plain mixed2|-l mixed2"
  "plain mixed4|-l mixed4"
  "--mask|-l mixed3,mixed4 --mask $work/mask.png"
  "--preserve-colors|-l mixed3,mixed4 --preserve-colors"
)
seconds() { # ARGS...: wall seconds of one run
  local t0 t1
  t0=$(date +%s.%N)
  "$dd" --quiet --threads "$threads" --octaves 1 --exact "$@" "$work/photo.png" "$work/out.png"
  t1=$(date +%s.%N)
  echo "$t1 - $t0" | bc -l
}
declare -A cost
for ((r = 0; r < rounds; r++)); do
  for v in "${variants[@]}"; do
    name=${v%%|*}
    read -r -a args <<<"${v#*|}"
    full=$(seconds "${args[@]}" --steps "$steps")
    none=$(seconds "${args[@]}" --steps 0)
    cost[$name]+="$(echo "($full - $none) / $steps" | bc -l) "
    echo "$prog: round $((r + 1)) $name" >&2
  done
done
median() { tr ' ' '\n' | grep . | sort -g | awk '{a[NR] = $1} END {print a[int((NR + 1) / 2)]}'; }
base=$(echo "${cost["plain (mixed3,mixed4)"]}" | median)
echo "| at ${size}x${size}, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //') | s / step | vs plain mixed3,mixed4 |"
echo "|---|---|---|"
for v in "${variants[@]}"; do
  name=${v%%|*}
  m=$(echo "${cost[$name]}" | median)
  printf '| %s | %.3f | %.2fx |\n' "$name" "$m" "$(echo "$m / $base" | bc -l)"
done
