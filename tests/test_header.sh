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
    /^[A-Za-z_][A-Za-z0-9_ *]*[ *]dd_[a-z0-9_]+\(/ && !/^typedef/ {
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
# The header compiles alone, warning-free, in every language a user may
# include it from: C89 (no inline keyword), C99, C11 and C++.
cc=${CC:-cc}
if command -v "$cc" >/dev/null; then
  for std in c89 c99 c11; do
    if ! printf '#include "deepdream.h"\nint main(void) { dd_params p = dd_params_default(); return p.steps != 10; }\n' |
         "$cc" -std=$std -pedantic -Wall -Wextra -Werror -I"$(dirname "$header")" -x c -c -o /dev/null -; then
      echo "FAIL the header does not compile as $std"
      fail=1
    fi
  done
fi
if command -v c++ >/dev/null; then
  if ! printf '#include "deepdream.h"\nint main() { dd_params p = dd_params_default(); return p.steps != 10; }\n' |
       c++ -std=c++11 -pedantic -Wall -Wextra -Werror -I"$(dirname "$header")" -x c++ -c -o /dev/null -; then
    echo "FAIL the header does not compile as C++11"
    fail=1
  fi
fi
[ $fail = 0 ] && echo "test_header: every declaration states its threads; the header compiles as C89, C99, C11 and C++11"
exit $fail
