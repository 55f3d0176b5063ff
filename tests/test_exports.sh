#!/usr/bin/env bash
# What the shared library exports, three ways that must agree: the
# functions include/deepdream.h declares (but its static inline ones), the
# dd_* symbols libdeepdream.so exports (and nothing else), and the Debian
# symbols file (a symbol missing there fails the package build, one
# gone from the library breaks programs linked against it).
#
# usage: test_exports.sh LIBDEEPDREAM_SO HEADER SYMBOLS_FILE
set -u
if [ $# -ne 3 ]; then
  echo "usage: test_exports.sh LIBDEEPDREAM_SO HEADER SYMBOLS_FILE" >&2
  exit 2
fi
so=$1 header=$2 symbols=$3
export LC_ALL=C
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

nm -D --defined-only "$so" | awk '{ print $NF }' | sed 's/@.*//' | sort -u >"$work/exported"
awk '/^[A-Za-z_][A-Za-z0-9_ *]*[ *]dd_[a-z0-9_]+\(/ && !/^(typedef|static|DD_INLINE)/ {
       name = $0; sub(/\(.*/, "", name); sub(/.*[ *]/, "", name); print name }' "$header" | sort -u >"$work/declared"
sed -n 's/^ \(dd_[a-z0-9_]*\)@Base .*/\1/p' "$symbols" | sort -u >"$work/listed"

fail=0
report() { # what, file of names
  while read -r name; do echo "FAIL $name: $1"; fail=1; done <"$2"
}
grep -v '^dd_' "$work/exported" >"$work/foreign" || true
report "exported, but not part of the dd_ API" "$work/foreign"
comm -23 "$work/declared" "$work/exported" >"$work/x"; report "declared in the header, not exported" "$work/x"
comm -13 "$work/declared" <(grep '^dd_' "$work/exported") >"$work/x"; report "exported, not declared in the header" "$work/x"
comm -13 "$work/listed" "$work/exported" >"$work/x"; report "exported, missing from $symbols" "$work/x"
comm -23 "$work/listed" "$work/exported" >"$work/x"; report "in $symbols, not exported" "$work/x"
n=$(wc -l <"$work/exported")
if [ "$n" -lt 40 ]; then echo "FAIL only $n exports read from $so"; fail=1; fi
[ $fail = 0 ] && echo "test_exports: $n functions, the same in the header, the library and $symbols"
exit $fail
