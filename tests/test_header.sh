#!/usr/bin/env bash
# The public header's promises that a compiler cannot check: every function
# declared in include/deepdream.h says which calls may overlap (a
# "Threads:" sentence in the comment just above it, or above the group of
# declarations it belongs to). Then a copy with one such sentence removed
# must fail, so that a reader that finds nothing cannot pass.
#
# usage: test_header.sh [HEADER]
set -u
top=$(cd "$(dirname "$0")/.." && pwd)
header=${1:-$top/include/deepdream.h}
export LC_ALL=C

# Prints each declared function lacking a "Threads:" in its comment. A
# group is the declarations (with their continuation lines) that follow
# one comment with no blank line between; a blank line ends a group.
unstated() {
  awk '
    /^\/\*/            { comment = ""; incomment = 1 }
    incomment          { comment = comment $0 "\n"; if ($0 ~ /\*\//) { incomment = 0; group = comment } ; next }
    /^$/               { group = ""; next }
    /^(typedef|#|}|[ \t])/ { if ($0 !~ /^[ \t]+[a-z].*\);$/) group = group; next }
    /^(static inline |const |unsigned |void |int |size_t |double |dd_[a-z_]+ )[^;{]*dd_[a-z0-9_]+\(/ {
      name = $0; sub(/\(.*/, "", name); sub(/.*[ *]/, "", name)
      if (group !~ /Threads:/) print name
      count++
    }
    END { if (count < 40) print "only " count + 0 " declarations found: the parser is broken" }
  ' "$1"
}

fail=0
missing=$(unstated "$header")
if [ -n "$missing" ]; then
  for f in $missing; do echo "FAIL $header: $f does not say which calls may overlap (Threads:)"; done
  fail=1
fi

# The check must see a sentence go missing.
copy=$(mktemp)
trap 'rm -f "$copy"' EXIT
awk '/Threads: one thread at a time per net; any number of nets at once\./ && !done { sub(/Threads: one thread at a time per net; any number of nets at once\./, ""); done = 1 } { print }' \
  "$header" >"$copy"
broken=$(unstated "$copy")
if [ "$broken" != "dd_net_forward" ]; then
  echo "FAIL the check did not notice dd_net_forward's Threads: removed (it reported: '${broken}')"
  fail=1
fi
[ $fail = 0 ] && echo "test_header: every declaration states its threads"
exit $fail
