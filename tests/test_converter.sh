#!/usr/bin/env bash
# Rebuilds weights/ from its source (npm nsfwjs@4.3.0) twice and checks both
# runs give the committed file byte for byte; checks that a package whose
# bytes differ is refused. Skipped (77) when node or the npm registry is not
# reachable.
set -u
top=$(cd "$(dirname "$0")/.." && pwd)
committed="$top/weights/inception_v3_mixed5.safetensors"
command -v node >/dev/null && command -v npm >/dev/null || { echo "skip: no node/npm"; exit 77; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
if ! (cd "$work" && timeout 300 npm pack nsfwjs@4.3.0 --silent >/dev/null 2>&1); then
  echo "skip: npm registry not reachable"
  exit 77
fi
tgz="$work/nsfwjs-4.3.0.tgz"
fail=0
node "$top/tools/convert_nsfwjs.js" --tgz "$tgz" --out "$work/a.safetensors" >/dev/null || fail=1
node "$top/tools/convert_nsfwjs.js" --tgz "$tgz" --out "$work/b.safetensors" >/dev/null || fail=1
cmp -s "$work/a.safetensors" "$work/b.safetensors" || { echo "FAIL: two runs differ"; fail=1; }
want=$(sha256sum < "$committed" | cut -d' ' -f1)
got=$(sha256sum < "$work/a.safetensors" | cut -d' ' -f1)
[ "$want" = "$got" ] || { echo "FAIL: converter writes sha256 $got, committed file is $want"; fail=1; }
# A package that is not the pinned one is refused before it is read.
cp "$tgz" "$work/bad.tgz" && printf 'x' >> "$work/bad.tgz"
if msg=$(node "$top/tools/convert_nsfwjs.js" --tgz "$work/bad.tgz" --out "$work/c.safetensors" 2>&1); then
  echo "FAIL: a tampered package was accepted"; fail=1
fi
case "$msg" in *"does not match the pinned"*) ;; *) echo "FAIL: unexpected message: $msg"; fail=1 ;; esac
[ ! -e "$work/c.safetensors" ] || { echo "FAIL: output written for a refused package"; fail=1; }
[ "$fail" = 0 ] && echo "converter: reproducible, sha256 $got"
exit "$fail"
