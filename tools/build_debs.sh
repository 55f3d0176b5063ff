#!/usr/bin/env bash
# Build the Debian packages (debian/) and collect them in OUTDIR:
#   tools/build_debs.sh OUTDIR [dpkg-buildpackage options]
# dpkg-buildpackage writes into the source tree's parent directory, so the
# build runs in a scratch copy of the tree (the files git tracks, and new
# ones it does not ignore; no build directories): the clone is left as it
# was, wherever it sits. DEB_BUILD_OPTIONS passes through, e.g.
#   DEB_BUILD_OPTIONS="nocheck parallel=$(nproc)" tools/build_debs.sh debs
set -euo pipefail
[ $# -ge 1 ] || { echo "usage: $0 OUTDIR [dpkg-buildpackage options]" >&2; exit 2; }
out=$1; shift
src=$(cd "$(dirname "$0")/.." && pwd)
mkdir -p "$out"
out=$(cd "$out" && pwd)

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
version=$(dpkg-parsechangelog -l "$src/debian/changelog" -S Version)
copy="$work/deepdream-$version"
mkdir "$copy"
# Tracked files deleted in the working tree are skipped, not an error.
git -C "$src" ls-files -z --cached --others --exclude-standard |
  while IFS= read -r -d '' f; do if [ -e "$src/$f" ]; then printf '%s\0' "$f"; fi; done |
  tar -C "$src" --null -T - -cf - | tar -C "$copy" -xf -

(cd "$copy" && dpkg-buildpackage -us -uc -b "$@")
find "$work" -maxdepth 1 -type f \( -name '*.deb' -o -name '*.changes' -o -name '*.buildinfo' \) \
  -exec cp {} "$out/" \;
ls "$out"
