#!/usr/bin/env bash
# The options, one list in four places: the getopt_long table in
# src/cli/main.c is the truth; `deepdream --help`, the man page's OPTIONS
# and README's option table must each list every option once, with the
# same short option, and an argument exactly when getopt takes one, named
# as --help names it. Each difference is one FAIL line naming the place
# and the option. Then the same comparison on copies broken on purpose
# (an entry removed, one listed twice, ...) must fail with the message
# expected, so that a parser that silently reads nothing cannot pass.
#
# usage: test_options.sh DEEPDREAM
set -u
if [ $# -ne 1 ]; then
  echo "usage: test_options.sh DEEPDREAM" >&2
  exit 2
fi
dd=$1
top=$(cd "$(dirname "$0")/.." && pwd)
main_c=$top/src/cli/main.c man=$top/docs/deepdream.1 readme=$top/README.md
export LC_ALL=C
work=$(mktemp -d)
# KEEP=1 leaves the extracted lists (l.src, l.help, l.man, l.readme) for a look.
trap '[ -n "${KEEP:-}" ] || rm -rf "$work"' EXIT
groups="  "
. "$top/tests/harness.sh"

# Each extractor prints one line per option entry: NAME:SHORT:ARG, with
# SHORT and ARG "-" when there are none (for main.c, ARG is "ARG" or "-").

# One entry of the form '-x, --name ARG' or '--name ARG' per line of
# standard input, as it stands in a man page's tag or a README cell.
# Arguments start with a capital (SPEC, N|auto, K/N): that tells
# '--shard K/N' from '`--fast` / `--exact`'.
entries() {
  grep -oE -- '(-[A-Za-z0-9], )?--[a-z0-9][a-z0-9-]*( [A-Z][^ ,;]*)?' |
    sed -E 's/^(-(.), )?--([a-z0-9-]+)( (.*))?$/\3:\2:\5/' | awk -F: '{ print $1 ":" ($2 == "" ? "-" : $2) ":" ($3 == "" ? "-" : $3) }'
}

# The struct option array in main.c.
source_block() { sed -n '/struct option longs\[\] = {/,/{0, 0, 0, 0}/p' "$1"; }
from_source() { # MAIN_C
  source_block "$1" | grep -oE '\{"[a-z0-9-]+", *(no|required)_argument, *0, *[^}]+\}' |
    sed -E "s/^\{\"([a-z0-9-]+)\", *(no|required)_argument, *0, *('(.)'|[A-Z_]+)\}$/\1:\4:\2/" |
    awk -F: '{ print $1 ":" ($2 == "" ? "-" : $2) ":" ($3 == "required" ? "ARG" : "-") }'
}

# The getopt short string must agree with the table: each letter there,
# with ':' exactly when the long form takes an argument.
check_shorts() { # MAIN_C SOURCE_LIST
  local shorts letter colon name arg
  shorts=$(sed -nE 's/.*static const char shorts\[\] = "([^"]*)".*/\1/p' "$1")
  shorts=${shorts#:} # a leading ':' only asks getopt to report a missing argument as ':'
  [ -n "$shorts" ] || { echo "main.c: no shorts[] string found"; return; }
  while IFS=: read -r name letter arg; do
    [ "$letter" = - ] && continue
    case "$shorts" in
      *"$letter:"*) colon=ARG ;;
      *"$letter"*) colon=- ;;
      *) echo "main.c: --$name has -$letter in the table but not in shorts[] \"$shorts\""; continue ;;
    esac
    [ "$colon" = "$arg" ] || echo "main.c: -$letter takes an argument in one of shorts[] and the table, not in the other"
  done <"$2"
  for ((i = 0; i < ${#shorts}; i++)); do
    letter=${shorts:i:1}
    [ "$letter" = : ] && continue
    cut -d: -f2 "$2" | grep -qxF -- "$letter" || echo "main.c: -$letter is in shorts[] but no long option has it"
  done
}

# --help: option lines are indented two spaces ('  -l, --layers SPEC') or
# six ('      --tile PX'); continuation lines are indented further.
from_help() { # HELP_TEXT
  sed -nE 's/^(  -([A-Za-z0-9]), |      )--([a-z0-9][a-z0-9-]*)( ([A-Z][^ ]*))?( {2,}.*)?$/\3:\2:\5/p' "$1" |
    awk -F: '{ print $1 ":" ($2 == "" ? "-" : $2) ":" ($3 == "" ? "-" : $3) }'
}

# The man page: the tag line after each .TP in the OPTIONS section, with
# the fonts and escaped hyphens taken out. A tag may name several options
# ('--zoom F, --rotate DEG, --frames N').
from_man() { # MAN_PAGE
  awk '/^\.SH OPTIONS/ { on = 1; next } /^\.SH/ { on = 0 } on && tp { print; tp = 0 } on && /^\.TP/ { tp = 1 }' "$1" |
    sed -E 's/\\f[BIRP]//g; s/\\-/-/g' | entries
}

# README: the first cell of each row of the table headed '| option |'.
# '\|' inside a cell is a '|' of the text (`--octaves N\|auto`).
from_readme() { # README
  awk 'index($0, "| option |") == 1 { on = 1; next }
       on && !/^\|/ { exit }
       on && !/^\|-/ { gsub(/\\\|/, "\001"); split($0, cell, "|"); c = cell[2]; gsub(/\001/, "|", c); gsub(/`/, "", c); print c }' "$1" |
    entries
}

# Prints one line per difference between PLACE's list and the source's.
compare() { # PLACE LIST SOURCE_LIST HELP_LIST
  local place=$1 list=$2 src=$3 help=$4 name short arg s_short s_arg h_arg
  [ -s "$list" ] || { echo "$place: no options found (has its format changed?)"; return; }
  cut -d: -f1 "$list" | sort | uniq -c | awk -v p="$place" '$1 > 1 { print p ": --" $2 " is listed " $1 " times" }'
  cut -d: -f1 "$src" | sort -u >"$work/src.names"
  cut -d: -f1 "$list" | sort -u >"$work/list.names"
  comm -23 "$work/src.names" "$work/list.names" | sed "s/^/$place: missing --/"
  comm -13 "$work/src.names" "$work/list.names" | sed "s/^\(.*\)$/$place: --\1 is not an option (not in main.c's getopt table)/"
  while IFS=: read -r name short arg; do
    IFS=: read -r _ s_short s_arg < <(grep -m1 "^$name:" "$src") || continue
    if [ "$short" != "$s_short" ]; then
      if [ "$s_short" = - ]; then echo "$place: --$name is given a short option -$short, getopt has none"
      elif [ "$short" = - ]; then echo "$place: --$name lacks its short option -$s_short"
      else echo "$place: --$name is given the short option -$short, getopt has -$s_short"; fi
    fi
    if [ "$s_arg" = - ] && [ "$arg" != - ]; then echo "$place: --$name takes no argument, listed with $arg"
    elif [ "$s_arg" != - ] && [ "$arg" = - ]; then echo "$place: --$name takes an argument, listed without one"
    elif [ "$arg" != - ] && [ "$list" != "$help" ]; then
      h_arg=$(grep -m1 "^$name:" "$help" | cut -d: -f3)
      [ -z "$h_arg" ] || [ "$h_arg" = - ] || [ "$arg" = "$h_arg" ] ||
        echo "$place: --$name $arg, where --help says --$name $h_arg"
    fi
  done <"$list"
}

# All the differences among the four, one a line.
differences() { # MAIN_C HELP_TEXT MAN_PAGE README
  from_source "$1" >"$work/l.src"
  from_help "$2" >"$work/l.help"
  from_man "$3" >"$work/l.man"
  from_readme "$4" >"$work/l.readme"
  [ -s "$work/l.src" ] || { echo "main.c: no options found in the getopt table"; return; }
  # Entries are counted by their opening '{"' too: one the pattern cannot
  # read (optional_argument, a flag pointer) is an error, not an option
  # silently left out of the comparison.
  local n_seen n_read
  n_seen=$(source_block "$1" | grep -o '{"' | wc -l)
  n_read=$(wc -l <"$work/l.src")
  [ "$n_seen" = "$n_read" ] || echo "main.c: read $n_read of the $n_seen entries in longs[] (a new form of entry?)"
  check_shorts "$1" "$work/l.src"
  compare "--help" "$work/l.help" "$work/l.src" "$work/l.help"
  compare "man page" "$work/l.man" "$work/l.src" "$work/l.help"
  compare "README" "$work/l.readme" "$work/l.src" "$work/l.help"
}

begin options
if ! "$dd" --help >"$work/help.txt" 2>"$work/help.err"; then
  fail "deepdream --help failed: $(head -c 300 "$work/help.err")"
fi
differences "$main_c" "$work/help.txt" "$man" "$readme" >"$work/found"
while IFS= read -r line; do fail "$line"; done <"$work/found"
[ -s "$work/found" ] || pass
n=$(wc -l <"$work/l.src")
echo "options: $n in main.c's getopt table"

# ---- the comparison on copies broken on purpose must fail ----------------
begin self-check
# On documents that already differ the broken copies' messages would be
# mixed with those differences: fix those first.
if [ -s "$work/found" ]; then
  echo "self-check skipped: the documents differ (above)"
  echo "test_options: $passed passed, $failed failed"
  exit 1
fi
# expect WHAT MESSAGE MAIN_C HELP MAN README: the differences include MESSAGE.
expect() {
  local what=$1 message=$2
  shift 2
  if differences "$@" | grep -qxF -- "$message"; then pass; else
    fail "$what: no line '$message' among: $(differences "$@" | head -5 | tr '\n' '|')"
  fi
}
h=$work/help.txt
# The man page without --blend's entry (its .TP and tag line).
awk 'held { held = 0; if (/^\\fB\\-\\-blend\\fR/) next; print ".TP" } /^\.TP$/ { held = 1; next } { print }' \
  "$man" >"$work/no_blend.1"
expect "an entry removed from the man page" "man page: missing --blend" "$main_c" "$h" "$work/no_blend.1" "$readme"
# The man page with --max-size's entry twice (issue 19's find).
awk '{ print } /^\\fB\\-\\-max\\-size\\fR/ { print; print "Again."; print ".TP"; print }' "$man" >"$work/twice.1"
expect "an entry twice in the man page" "man page: --max-size is listed 2 times" "$main_c" "$h" "$work/twice.1" "$readme"
# README without -s, and with --tile's argument renamed.
sed -e 's/`-s, --steps N`/`--steps N`/' -e 's/`--tile PX`/`--tile SIDE`/' "$readme" >"$work/README.md"
expect "a short option dropped from README" "README: --steps lacks its short option -s" "$main_c" "$h" "$man" "$work/README.md"
expect "an argument renamed in README" "README: --tile SIDE, where --help says --tile PX" "$main_c" "$h" "$man" "$work/README.md"
# --help with a misspelled option and a flag given an argument.
sed -e 's/^      --octaves /      --octave /' -e 's/^      --quiet   /      --quiet N /' "$h" >"$work/help_bad.txt"
expect "an option misspelled in --help" "--help: missing --octaves" "$main_c" "$work/help_bad.txt" "$man" "$readme"
expect "an option misspelled in --help" "--help: --octave is not an option (not in main.c's getopt table)" "$main_c" "$work/help_bad.txt" "$man" "$readme"
expect "a flag given an argument in --help" "--help: --quiet takes no argument, listed with N" "$main_c" "$work/help_bad.txt" "$man" "$readme"
# A new option in the table that no document mentions.
sed 's/{"frames", required_argument, 0, OPT_FRAMES},/&{"sparkle", no_argument, 0, OPT_FRAMES},/' "$main_c" >"$work/main.c"
expect "a new option undocumented" "README: missing --sparkle" "$work/main.c" "$h" "$man" "$readme"
expect "a new option undocumented" "man page: missing --sparkle" "$work/main.c" "$h" "$man" "$readme"
# An entry of a form the parser does not read.
sed 's/{"frames", required_argument, 0, OPT_FRAMES},/&{"sparkle", optional_argument, 0, OPT_FRAMES},/' "$main_c" >"$work/main.c"
expect "an entry the parser cannot read" "main.c: read $n of the $((n + 1)) entries in longs[] (a new form of entry?)" "$work/main.c" "$h" "$man" "$readme"
# The short-option string out of step with the table.
sed 's/static const char shorts\[\] = ":l:s:j:q:m:t:o:rhV";/static const char shorts[] = ":l:s:j:q:m:t:o:r:hVx";/' "$main_c" >"$work/main.c"
expect "shorts[] gives -r an argument" "main.c: -r takes an argument in one of shorts[] and the table, not in the other" "$work/main.c" "$h" "$man" "$readme"
expect "shorts[] has a letter of no option" "main.c: -x is in shorts[] but no long option has it" "$work/main.c" "$h" "$man" "$readme"

echo "test_options: $passed passed, $failed failed"
[ "$failed" = 0 ]
