# The command-line tests' helpers (test_batch.sh, test_hostile.sh): run the
# CLI, assert statuses, messages, files. Sourced after harness.sh, with $dd
# (the CLI) and $work (the scratch directory, the current one) set.

# run ARGS...: the CLI; status in $rc, standard output in $work/stdout,
# standard error in $work/stderr. A run that hangs is stopped after 120 s
# (status 124), so one case fails rather than the whole file timing out.
limit=()
command -v timeout >/dev/null && limit=(timeout -k 10 120)
run() { "${limit[@]}" "$dd" "$@" >"$work/stdout" 2>"$work/stderr"; rc=$?; }
# as_nobody ARGS...: the same, as user nobody (as root no mode bit stops us).
can_drop=0
if [ "$(id -u)" = 0 ] && command -v setpriv >/dev/null &&
   setpriv --reuid=65534 --regid=65534 --clear-groups "$dd" --version >/dev/null 2>&1; then
  can_drop=1
fi
as_nobody() {
  "${limit[@]}" setpriv --reuid=65534 --regid=65534 --clear-groups "$dd" "$@" >"$work/stdout" 2>"$work/stderr"
  rc=$?
}
stderr_text() { head -c 600 "$work/stderr" | tr '\r\n' ' |'; }

want_status() { # N WHAT
  if [ "$rc" = "$1" ]; then pass; else fail "$2: exit $rc, want $1; stderr: $(stderr_text)"; fi
}
want_quiet() { # WHAT: nothing on standard error
  if [ ! -s "$work/stderr" ]; then pass; else fail "$1: unexpected standard error: $(stderr_text)"; fi
}
want_no_stdout() { # WHAT
  if [ ! -s "$work/stdout" ]; then pass; else fail "$1: standard output is not empty ($(wc -c <"$work/stdout") bytes)"; fi
}
want_stderr_has() { # TEXT WHAT
  if grep -qF -- "$1" "$work/stderr"; then pass; else fail "$2: standard error lacks '$1': $(stderr_text)"; fi
}
want_stderr_lacks() { # TEXT WHAT
  if ! grep -qF -- "$1" "$work/stderr"; then pass; else fail "$2: standard error has '$1': $(stderr_text)"; fi
}
# want_error PATH WHAT: exactly one line "deepdream: PATH: problem".
want_error() {
  local n
  n=$(grep -cF -- "deepdream: $1: " "$work/stderr")
  if [ "$n" = 1 ]; then pass; else fail "$2: want one line 'deepdream: $1: ...', got $n: $(stderr_text)"; fi
}
# want_summary D S F WHAT [SUFFIX]: the last line of standard error.
want_summary() {
  local want="deepdream: $1 done, $2 skipped, $3 failed${5:-}" got
  got=$(tail -n 1 "$work/stderr")
  if [ "$got" = "$want" ]; then pass; else fail "$4: summary '$got', want '$want'"; fi
}
same_bytes() { # A B WHAT
  if cmp -s "$1" "$2"; then pass; else fail "$3: $1 and $2 differ ($(cmp "$1" "$2" 2>&1 | head -1))"; fi
}
absent() { # PATH WHAT
  if [ ! -e "$1" ]; then pass; else fail "$2: $1 exists"; fi
}
present() { # PATH WHAT
  if [ -f "$1" ] && [ -s "$1" ]; then pass; else fail "$2: $1 is missing or empty"; fi
}
# no_leftovers DIR... WHAT: no temporary file of ours anywhere under DIRs
# (planted strays are named .stray-*).
no_leftovers() {
  local what=${!#} left
  left=$(find "${@:1:$#-1}" -name '*.deepdream-*' ! -name '*stray*' 2>/dev/null | head -3)
  if [ -z "$left" ]; then pass; else fail "$what: temporary file left: $left"; fi
}
files_of() { (cd "$1" && find . -type f ! -name '*stray*' | sed 's|^\./||' | sort); }
# same_tree A B WHAT: the same files, byte for byte.
same_tree() {
  local f bad=""
  if [ "$(files_of "$1")" != "$(files_of "$2")" ]; then
    fail "$3: $1 and $2 hold other files: $(diff <(files_of "$1") <(files_of "$2") | grep '^[<>]' | head -4 | tr '\n' ' ')"
    return
  fi
  while IFS= read -r f; do cmp -s "$1/$f" "$2/$f" || bad="$bad $f"; done < <(files_of "$1")
  if [ -z "$bad" ]; then pass; else fail "$3: files differ:$bad"; fi
}
magic() { head -c 4 "$1" | od -An -tx1 | tr -d ' \n'; }
want_magic() { # FILE png|jpeg|ppm|pam WHAT
  local m want
  m=$(magic "$1")
  case $2 in png) want=89504e47 ;; jpeg) want=ffd8ff ;; ppm) want=5036 ;; pgm) want=5035 ;; pam) want=5037 ;; esac
  if [[ "$m" == "$want"* ]]; then pass; else fail "$3: $1 starts with '$m', want $2"; fi
}
dims() { identify -format '%wx%h' "$1" 2>&1; }
# The files named in --progress lines, in order.
progress_names() { sed -nE 's/^deepdream: \[[0-9]+\/[0-9]+\] (.*): octave 1\/1, .* left$/\1/p' "$1"; }
# wait_for FILE TEXT PID: until FILE has TEXT (the process is dreaming),
# false if the process ends first or 60 s pass.
wait_for() {
  local i
  for ((i = 0; i < 1200; i++)); do
    grep -qF -- "$2" "$1" 2>/dev/null && return 0
    kill -0 "$3" 2>/dev/null || return 1
    sleep 0.05
  done
  return 1
}
# wait_caught PID: until the process takes SIGTERM itself: a handler
# (SigCgt) or, as deepdream does, blocked for a thread's sigwait (SigBlk of
# the main thread).
wait_caught() {
  local i mask
  for ((i = 0; i < 1200; i++)); do
    for mask in $(sed -n 's/^Sig\(Cgt\|Blk\):[[:space:]]*//p' "/proc/$1/status" 2>/dev/null); do
      (((0x$mask >> 14) & 1)) && return 0
    done
    kill -0 "$1" 2>/dev/null || return 1
    sleep 0.05
  done
  return 1
}
