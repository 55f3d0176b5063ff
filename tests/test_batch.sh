#!/usr/bin/env bash
# End-to-end tests of deepdream's batch mode (-o OUTDIR INPUT..., --in-place):
# mixed good and bad files, -r, --format, sorted order, --skip-existing,
# collisions, in-place, SIGINT/SIGTERM and resuming, --shard (sequential,
# xargs -P, GNU parallel), a full disk, unwritable and unreadable paths,
# hostile inputs, progress and --quiet. Tiny images and one step, so the
# whole file runs in well under a minute. Helpers and style as in test_cli.sh.
#
# usage: test_batch.sh DEEPDREAM [GROUP...]
#   GROUP: setup is always run; then mixed recursive format order skip
#   collisions inplace signals shards diskfull unwritable hostile progress
#   (all when none is named).
# Exits 77 (skipped) without ImageMagick.
set -u
if [ $# -lt 1 ]; then
  echo "usage: test_batch.sh DEEPDREAM [GROUP...]" >&2
  exit 2
fi
dd=$(cd "$(dirname "$1")" && pwd)/$(basename "$1")
shift
groups=" $* "
top=$(cd "$(dirname "$0")/.." && pwd)
for tool in convert identify; do
  command -v "$tool" >/dev/null || { echo "skip: ImageMagick's $tool is not installed"; exit 77; }
done
export LC_ALL=C # bytes, not characters: sort order, grep on names that are not UTF-8

work=$(mktemp -d)
chmod 755 "$work" # some cases run the CLI as nobody
trap 'chmod -R u+w "$work" 2>/dev/null; rm -rf "$work"' EXIT
cd "$work" || exit 1
umask 022
start=$SECONDS

. "$top/tests/harness.sh"

. "$top/tests/cli_helpers.sh"

one=(--octaves 1 --steps 1)

# ---- setup: small pictures from the photos in samples/ ----------------------
s=$top/samples
mkdir good
convert "$s/chelsea.png" -resize '64x48!' -strip PNG24:good/a.png
convert "$s/coffee.png" -resize '96x80!' -strip -quality 90 good/b.jpg
convert "$s/astronaut.png" -resize '80x64!' -strip ppm:good/c.ppm
convert "$s/coffee.png" -resize '72x56!' -strip pam:good/d.pam
convert "$s/astronaut.png" -resize '64x64!' -strip -colorspace Gray -define png:color-type=0 good/e.png
for f in a.png b.jpg c.ppm d.pam e.png; do
  check "setup: good/$f decodes" test -n "$(dims "good/$f" | grep -E '^[0-9]+x[0-9]+$')"
done
# Reference dreams, one file at a time (the single-image mode).
mkdir ref1
for f in a.png b.jpg c.ppm d.pam e.png; do
  "$dd" "${one[@]}" "good/$f" "ref1/$f" 2>/dev/null
  check "setup: single-image dream of good/$f" test -s "ref1/$f"
done

# ---- a directory of good and bad files ---------------------------------------
if wanted mixed; then
  begin mixed
  mkdir mixed
  cp good/* mixed/
  head -c 300 good/a.png >mixed/trunc.png
  { head -c 200 good/a.png; printf 'X'; tail -c +202 good/a.png; } >mixed/badcrc.png
  head -c 1000 good/b.jpg >mixed/trunc.jpg
  printf 'P6\n2 2\n0\n123456789012' >mixed/maxval0.ppm
  : >mixed/zero.png               # not an image by content: a note, not a failure
  echo 'some notes' >mixed/notes.txt
  mkdir mixed/sub && cp good/a.png mixed/sub/ # without -r: a note
  cp good/a.png mixed/.hidden.png # dotfiles are not inputs
  run "${one[@]}" -o mixout mixed
  want_status 1 "mixed directory"
  want_no_stdout "mixed directory"
  for f in a.png b.jpg c.ppm d.pam e.png; do same_bytes ref1/$f mixout/$f "mixed: good $f done as alone"; done
  for f in trunc.png badcrc.png trunc.jpg maxval0.ppm; do
    want_error "mixed/$f" "mixed: $f reported"
    absent "mixout/$f" "mixed: no output for $f"
  done
  want_stderr_has "deepdream: mixed/zero.png: not an image, skipped" "mixed: zero-byte file noted"
  want_stderr_has "deepdream: mixed/notes.txt: not an image, skipped" "mixed: text file noted"
  want_stderr_has "deepdream: mixed/sub: a directory, skipped (use -r)" "mixed: subdirectory noted"
  want_stderr_lacks ".hidden" "mixed: dotfiles are not looked at"
  want_summary 5 0 4 "mixed directory"
  check "mixed: only the good outputs ($(ls -A mixout | tr '\n' ' '))" test "$(ls -A mixout | tr '\n' ' ')" = "a.png b.jpg c.ppm d.pam e.png "
  no_leftovers mixout mixed "mixed"
  # Errors only with --quiet: the same lines, no notes, no summary.
  run "${one[@]}" --quiet -o mixquiet mixed
  want_status 1 "mixed, --quiet"
  check "mixed, --quiet: only the 4 error lines ($(stderr_text))" test "$(wc -l <stderr)" = 4
  want_stderr_lacks "skipped" "mixed, --quiet: no notes, no summary"
  # Files on the command line: a bad one is an error even without an image
  # signature (it was asked for by name).
  run "${one[@]}" -o mixfiles good/a.png mixed/zero.png mixed/notes.txt missing.png
  want_status 1 "named bad files"
  for f in mixed/zero.png mixed/notes.txt missing.png; do want_error "$f" "named bad file $f"; done
  want_summary 1 0 3 "named bad files"
  # A directory with no image at all: nothing to do, no error.
  mkdir emptydir
  run "${one[@]}" -o emptyout emptydir
  want_status 0 "an empty directory"
  want_summary 0 0 0 "an empty directory"
  # A named pipe is read once, not opened first to look at its bytes.
  mkfifo mixfifo.png
  cat good/a.png >mixfifo.png &
  writer=$!
  run "${one[@]}" -o mixfifo mixfifo.png
  want_status 0 "a named pipe as INPUT"
  same_bytes ref1/a.png mixfifo/mixfifo.png "a named pipe as INPUT"
  kill "$writer" 2>/dev/null # only if it still waits for a reader
  wait "$writer"
  end
fi

# ---- -r mirrors the tree -------------------------------------------------------
if wanted recursive; then
  begin recursive
  mkdir -p tree/sub/deeper tree/empty tree/other
  cp good/a.png tree/
  cp good/b.jpg tree/sub/
  cp good/c.ppm tree/sub/deeper/
  cp good/d.pam tree/other/
  run "${one[@]}" -r -o treeout tree
  want_status 0 "-r"
  want_summary 4 0 0 "-r"
  same_bytes ref1/a.png treeout/a.png "-r: top level"
  same_bytes ref1/b.jpg treeout/sub/b.jpg "-r: sub/"
  same_bytes ref1/c.ppm treeout/sub/deeper/c.ppm "-r: sub/deeper/"
  same_bytes ref1/d.pam treeout/other/d.pam "-r: other/"
  check "-r: exactly the mirrored files" test "$(files_of treeout | tr '\n' ' ')" = "a.png other/d.pam sub/b.jpg sub/deeper/c.ppm "
  run "${one[@]}" -r -o treeout2/nested/deeper tree/sub
  want_status 0 "-r into a new nested OUTDIR"
  same_bytes ref1/c.ppm treeout2/nested/deeper/deeper/c.ppm "-r: OUTDIR made with its parents"
  # Links to directories are followed, but a link back up is a loop, noted
  # and not followed (once it dreamed the tree again at every depth).
  mkdir -p loop/sub
  cp good/a.png loop/ && cp good/b.jpg loop/sub/
  ln -s . loop/self && ln -s .. loop/sub/up && ln -s sub loop/alias
  run "${one[@]}" -r -o loopout loop
  want_status 0 "-r with links back up"
  want_stderr_has "deepdream: loop/self: a link back to a directory above it, skipped" "-r: a link to itself"
  want_stderr_has "deepdream: loop/sub/up: a link back to a directory above it, skipped" "-r: a link to the parent"
  check "-r with links back up: each image once per path ($(files_of loopout | tr '\n' ' '))" \
    test "$(files_of loopout | tr '\n' ' ')" = "a.png alias/b.jpg sub/b.jpg "
  run "${one[@]}" -o treeflat tree
  want_status 0 "no -r"
  check "no -r: only the top level" test "$(files_of treeflat)" = "a.png"
  want_stderr_has "deepdream: tree/sub: a directory, skipped (use -r)" "no -r: subdirectories noted"
  end
fi

# ---- --format ------------------------------------------------------------------
if wanted format; then
  begin format
  mkdir fmt
  cp good/a.png good/b.jpg good/c.ppm fmt/
  cp good/a.png fmt/noext
  cp good/b.jpg fmt/two.dots.JPG
  for pair in png:png jpg:jpeg ppm:ppm pam:pam; do
    ext=${pair%%:*} kind=${pair##*:}
    run "${one[@]}" --format "$ext" -o "fmt_$ext" fmt
    want_status 0 "--format $ext"
    want_summary 5 0 0 "--format $ext"
    # A file already in the format keeps its name; the others get the
    # format's extension in place of theirs.
    names=(a.$ext b.$ext c.$ext noext.$ext two.dots.$ext)
    [ "$ext" = png ] && names[3]=noext
    [ "$ext" = jpg ] && names[4]=two.dots.JPG
    for name in "${names[@]}"; do
      present "fmt_$ext/$name" "--format $ext: $name"
      want_magic "fmt_$ext/$name" "$kind" "--format $ext: $name"
    done
    check "--format $ext: nothing else" test "$(ls -A "fmt_$ext" | wc -l)" = 5
  done
  check "--format jpg: size kept" test "$(dims fmt_jpg/c.jpg)" = 80x64
  # The same dream, only encoded otherwise: PNG and PAM hold the same pixels.
  check "--format png and pam: the same pixels" cmp -s <(convert fmt_png/b.png rgb:-) <(convert fmt_pam/b.pam rgb:-)
  # The input's own format keeps the name as it is.
  same_bytes ref1/b.jpg fmt_jpg/b.jpg "--format jpg on a JPEG: as without --format"
  run "${one[@]}" --format gif -o fmt_gif fmt
  want_status 2 "--format gif"
  absent fmt_gif "--format gif: nothing written"
  run "${one[@]}" --format png good/a.png fmt_single.png
  want_status 2 "--format without -o"
  end
fi

# ---- a stable, sorted order ------------------------------------------------------
if wanted order; then
  begin order
  mkdir order order/m
  # Created out of order, given out of order.
  for f in c.ppm a.png e.png b.jpg; do cp "good/$f" order/; done
  cp good/d.pam order/m/d.pam
  cp good/a.png order/m.png # "order/m.png" < "order/m/d.pam": '.' sorts before '/'
  run "${one[@]}" --progress -r -o orderout order/e.png order/m order/c.ppm order/b.jpg order/a.png order/m.png
  want_status 0 "order"
  progress_names stderr >order1.txt
  printf '%s\n' order/e.png order/m/d.pam order/c.ppm order/b.jpg order/a.png order/m.png | sort >order_want.txt
  check "inputs in byte order: $(tr '\n' ' ' <order1.txt)" cmp -s order1.txt order_want.txt
  run "${one[@]}" --progress -r -o orderout2 order
  progress_names stderr >order2.txt
  check "a directory in byte order: $(tr '\n' ' ' <order2.txt)" \
    test "$(tr '\n' ' ' <order2.txt)" = "order/a.png order/b.jpg order/c.ppm order/e.png order/m.png order/m/d.pam "
  end
fi

# ---- --skip-existing -------------------------------------------------------------
if wanted skip; then
  begin skip
  mkdir skipin
  cp good/* skipin/
  cp good/a.png skipin/.stray-x.png.deepdream-Ab12Cd # a temporary name: not an input
  mkdir skipout
  cp good/a.png skipout/a.png                 # complete (another picture): left alone
  head -c 500 ref1/b.jpg >skipout/b.jpg       # truncated: redone
  : >skipout/c.ppm                            # empty: redone
  printf 'not an image' >skipout/d.pam        # corrupt: redone
  cp ref1/a.png skipout/.stray-e.png.deepdream-Zz99Yy # an interrupted run's leftover
  run "${one[@]}" --skip-existing -o skipout skipin
  want_status 0 "--skip-existing"
  want_summary 4 1 0 "--skip-existing"
  same_bytes good/a.png skipout/a.png "--skip-existing: a complete output is left as it is"
  for f in b.jpg c.ppm d.pam e.png; do same_bytes "ref1/$f" "skipout/$f" "--skip-existing: $f redone"; done
  want_stderr_lacks "stray" "--skip-existing: the temporary names are not looked at"
  check "--skip-existing: the stray temporary file is left alone" test -f skipout/.stray-e.png.deepdream-Zz99Yy
  no_leftovers skipout "--skip-existing"
  run "${one[@]}" --skip-existing -o skipout skipin
  want_status 0 "--skip-existing again"
  want_summary 0 5 0 "--skip-existing again: all skipped"
  # An output name that is a directory is not complete: an error, the rest goes on.
  rm -f skipout/e.png && mkdir skipout/e.png
  run "${one[@]}" --skip-existing -o skipout skipin
  want_status 1 "--skip-existing, output is a directory"
  want_error skipout/e.png "--skip-existing, output is a directory"
  want_summary 0 4 1 "--skip-existing, output is a directory"
  end
fi

# ---- collisions and outputs that are inputs: exit 2, nothing written --------------
if wanted collisions; then
  begin collisions
  mkdir col
  cp good/b.jpg good/c.ppm col/
  cp good/a.png col/a.png
  cp good/b.jpg col/a.jpg
  run "${one[@]}" --format png -o colout col
  want_status 2 "a.png and a.jpg onto a.png"
  want_stderr_has "deepdream: col/a.jpg and col/a.png would both be written to colout/a.png" "collision named"
  absent colout "collision: nothing written, not even OUTDIR"
  mkdir -p col1 col2
  cp good/a.png col1/x.png && cp good/e.png col2/x.png
  run "${one[@]}" -o colout col1 col2
  want_status 2 "two directories with the same name inside"
  want_stderr_has "would both be written to colout/x.png" "two directories: collision named"
  absent colout "two directories: nothing written"
  # OUTDIR = an input directory, by any path: refused, nothing touched.
  mkdir same && cp good/a.png good/b.jpg same/
  sum_before=$(cd same && md5sum * | tr '\n' ' ')
  ln -s same samelink
  for out in same ./same/ samelink "$work/same"; do
    run "${one[@]}" -o "$out" same
    want_status 2 "-o $out over its own input"
    want_stderr_has "would overwrite the input same/a.png (use --in-place)" "-o $out over its own input: named"
    check "-o $out: inputs untouched" test "$(cd same && md5sum * | tr '\n' ' ')" = "$sum_before"
    no_leftovers same "-o $out"
  done
  run "${one[@]}" -o samelink same/b.jpg
  want_status 2 "a named file and OUTDIR through a symlinked directory"
  # A hard link is the same file too.
  mkdir hl hlout && cp good/a.png hl/a.png && ln hl/a.png hlout/a.png
  run "${one[@]}" -o hlout hl
  want_status 2 "an output that is a hard link of an input"
  same_bytes good/a.png hl/a.png "hard link: input untouched"
  # Writing new names into an input directory is no overwrite.
  mkdir samefmt && cp good/b.jpg samefmt/
  run "${one[@]}" --format png -o samefmt samefmt
  want_status 0 "--format png into the JPEGs' own directory"
  present samefmt/b.png "--format png into the input directory"
  # Usage errors, before any work.
  run "${one[@]}" -o colout --in-place good
  want_status 2 "-o with --in-place"
  run "${one[@]}" --in-place --format png good
  want_status 2 "--in-place with --format"
  run "${one[@]}" -o colout
  want_status 2 "-o without INPUT"
  run "${one[@]}" -o colout - <good/a.png
  want_status 2 "a batch from standard input"
  absent colout "usage errors: nothing written"
  end
fi

# ---- --in-place ------------------------------------------------------------------
if wanted inplace; then
  begin inplace
  mkdir ip
  cp good/* ip/
  head -c 300 good/a.png >ip/bad.png
  run "${one[@]}" --in-place ip
  want_status 1 "--in-place with one bad file"
  want_error ip/bad.png "--in-place: the bad file reported"
  want_summary 5 0 1 "--in-place"
  for f in a.png b.jpg c.ppm d.pam e.png; do same_bytes "ref1/$f" "ip/$f" "--in-place: $f replaced by its dream, same format"; done
  check "--in-place: the bad file is untouched" cmp -s <(head -c 300 good/a.png) ip/bad.png
  check "--in-place: no other file ($(ls -A ip | tr '\n' ' '))" test "$(ls -A ip | tr '\n' ' ')" = "a.png b.jpg bad.png c.ppm d.pam e.png "
  no_leftovers ip "--in-place"
  check "--in-place: mode 644 kept under umask 022" test "$(stat -c %a ip/a.png)" = 644
  cp good/a.png ipfile.png && chmod 600 ipfile.png
  run "${one[@]}" --in-place ipfile.png
  want_status 0 "--in-place on a named file"
  same_bytes ref1/a.png ipfile.png "--in-place on a named file"
  check "--in-place: a private file stays private (mode $(stat -c %a ipfile.png), want 600)" test "$(stat -c %a ipfile.png)" = 600
  end
fi

# ---- SIGINT and SIGTERM mid-dream, then --skip-existing ------------------------------
if wanted signals; then
  begin signals
  sig=(--octaves 1 --steps 10)
  mkdir sigin
  convert "$s/chelsea.png" -resize '64x48!' -strip sigin/a_small.png
  convert "$s/coffee.png" -resize '256x192!' -strip sigin/b_big.png
  convert "$s/astronaut.png" -resize '72x56!' -strip -quality 90 sigin/c_small.jpg
  convert "$s/astronaut.png" -resize '256x192!' -strip ppm:sigin/d_big.ppm
  convert "$s/chelsea.png" -resize '80x64!' -strip sigin/e_small.png
  # dream_until TEXT SIGNAL ARGS...: run in the background, send SIGNAL once
  # a --progress line has TEXT (or, TEXT empty, once signals are caught),
  # wait; status in $rc.
  dream_until() {
    local text=$1 signal=$2 pid i
    shift 2
    : >"$work/stderr"
    # A background job starts with SIGINT ignored; give it the default back.
    (trap - INT; exec "$dd" "$@" >"$work/stdout" 2>"$work/stderr") &
    pid=$!
    if { [ -n "$text" ] && wait_for "$work/stderr" "$text" "$pid"; } || { [ -z "$text" ] && wait_caught "$pid"; }; then
      kill -"$signal" "$pid"
    else
      fail "$signal: the dream of $text never started: $(stderr_text)"
      kill -KILL "$pid" 2>/dev/null
    fi
    # Bounded: a process that does not stop is killed, and fails the case.
    for ((i = 0; i < 1200; i++)); do kill -0 "$pid" 2>/dev/null || break; sleep 0.05; done
    kill -0 "$pid" 2>/dev/null && { fail "$signal: still running 60 s after the signal"; kill -KILL "$pid"; }
    wait "$pid"
    rc=$?
  }
  dream_until "] sigin/b_big.png: octave" INT "${sig[@]}" --progress -o sigout sigin
  want_status 130 "SIGINT mid-dream"
  want_summary 1 0 0 "SIGINT" ", interrupted"
  check "SIGINT: only the finished output ($(ls -A sigout | tr '\n' ' '))" test "$(ls -A sigout)" = a_small.png
  no_leftovers sigin sigout "SIGINT"
  dream_until "] sigin/d_big.ppm: octave" TERM "${sig[@]}" --progress --skip-existing -o sigout sigin
  want_status 143 "SIGTERM mid-dream, resumed run"
  want_summary 2 1 0 "SIGTERM" ", interrupted"
  check "SIGTERM: only the finished outputs ($(ls -A sigout | tr '\n' ' '))" \
    test "$(ls -A sigout | tr '\n' ' ')" = "a_small.png b_big.png c_small.jpg "
  no_leftovers sigin sigout "SIGTERM"
  run "${sig[@]}" --skip-existing -o sigout sigin
  want_status 0 "--skip-existing after the signals"
  want_summary 2 3 0 "--skip-existing after the signals"
  # Waiting for a named pipe's writer, before any dream.
  mkfifo sigfifo.png
  dream_until "" TERM "${sig[@]}" -o sigfifo sigfifo.png
  want_status 143 "SIGTERM while waiting on a named pipe"
  check "SIGTERM on a pipe: the summary only ($(stderr_text))" \
    test "$(cat stderr)" = "deepdream: 0 done, 0 skipped, 0 failed, interrupted"
  run "${sig[@]}" -o sigref sigin
  want_status 0 "the same batch uninterrupted"
  same_tree sigout sigref "interrupted twice and resumed = uninterrupted"
  no_leftovers sigin sigout sigref "after resuming"
  end
fi

# ---- --shard K/N -------------------------------------------------------------------
if wanted shards; then
  begin shards
  mkdir -p shin/sub/deeper
  cp good/a.png good/b.jpg good/c.ppm shin/
  cp good/d.pam good/e.png shin/sub/
  convert "$s/coffee.png" -resize '64x48!' -strip shin/sub/deeper/f.png
  convert "$s/chelsea.png" -resize '88x72!' -strip -quality 90 shin/sub/deeper/g.jpg
  total=7
  run "${one[@]}" --progress -r -o shsingle shin
  want_status 0 "single run"
  want_summary $total 0 0 "single run"
  progress_names stderr >sh_order.txt
  # shard_check WHAT DIR LOG...: from the runs' standard errors, the 'done'
  # summed and the files dreamed, each exactly once; DIR = the single run.
  shard_check() {
    local what=$1 out=$2 sum
    shift 2
    sum=$(cat "$@" | sed -nE 's/^deepdream: ([0-9]+) done, 0 skipped, 0 failed$/\1/p' | awk '{s += $1} END {print s + 0}')
    check "$what: the shards' 'done' add up to $total (got $sum)" test "$sum" = $total
    check "$what: each input dreamed by exactly one shard" \
      test "$(cat "$@" | progress_names /dev/stdin | sort | uniq -c | awk '$1 == 1' | wc -l)" = $total
    same_tree "$out" shsingle "$what: the shards together = the single run"
  }
  for n in 1 2 3 4; do
    logs=()
    for ((k = 0; k < n; k++)); do
      run "${one[@]}" --progress --shard "$k/$n" -r -o "shseq$n" shin
      want_status 0 "--shard $k/$n"
      cp stderr "shseq$n.$k.err"
      logs+=("shseq$n.$k.err")
      # Shard k is the inputs at sorted positions k, k+n, ...
      check "--shard $k/$n takes the sorted positions $k mod $n" \
        cmp -s <(progress_names stderr) <(awk -v k=$k -v n=$n '(NR - 1) % n == k' sh_order.txt)
    done
    shard_check "$n sequential shards" "shseq$n" "${logs[@]}"
  done
  run "${one[@]}" --shard 8/9 -r -o shempty shin
  want_status 0 "a shard with no inputs"
  want_summary 0 0 0 "a shard with no inputs"
  for bad in 3/3 1/0 -1/2 2 a/b 1/2/3; do
    run "${one[@]}" --shard "$bad" -r -o shbad shin
    want_status 2 "--shard $bad"
  done
  run "${one[@]}" --shard 0/2 good/a.png shbad.png
  want_status 2 "--shard without -o"
  absent shbad "bad --shard: nothing written"
  # Concurrently, as docs/BATCH.md shows: xargs -P and GNU parallel.
  n=3
  # (Each line on standard error is one write: lines of the shards do not mix.)
  seq 0 $((n - 1)) | xargs -P 2 -I{} "$dd" "${one[@]}" --progress --shard {}/$n -r -o shxargs shin 2>shx.err
  rc=$?
  cp shx.err "$work/stderr" # what a failure reports: the shards' own messages
  want_status 0 "xargs -P 2, $n shards"
  shard_check "xargs -P 2, $n shards" shxargs shx.err
  no_leftovers shxargs "xargs -P 2"
  if command -v parallel >/dev/null && parallel --version 2>/dev/null | grep -q 'GNU parallel'; then
    n=4
    parallel -j2 --will-cite "$dd" "${one[@]}" --progress --shard {}/$n -r -o shpar shin ::: $(seq 0 $((n - 1))) 2>shp.err
    rc=$?
    cp shp.err "$work/stderr"
    want_status 0 "GNU parallel -j2, $n shards"
    shard_check "GNU parallel -j2, $n shards" shpar shp.err
    no_leftovers shpar "GNU parallel"
  else
    skip "GNU parallel is not installed"
  fi
  end
fi

# ---- a full disk -----------------------------------------------------------------------
# A 256 KiB tmpfs in a mount namespace of its own (gone when the test is),
# filled to 32 KiB free: the small PNG fits, the 160x120 PPM (57 KB) does not.
if wanted diskfull; then
  begin diskfull
  mkdir full dfin
  cp good/a.png dfin/a.png
  convert "$s/coffee.png" -resize '160x120!' -strip ppm:dfin/z.ppm
  "$dd" "${one[@]}" dfin/a.png dfref_a.png 2>/dev/null
  cat >full.sh <<'EOF'
mount -t tmpfs -o size=256k tmpfs full || exit 99
head -c $((224 * 1024)) /dev/zero >full/fill || exit 98
"$@" >stdout 2>stderr
echo $? >full.rc
(cd full && find . ! -name fill ! -name . | sort) >full.files
cp full/out/a.png full_a.png 2>/dev/null
exit 0
EOF
  if unshare -m sh full.sh "$dd" "${one[@]}" -o full/out dfin 2>full.err && [ -f full.rc ]; then
    rc=$(cat full.rc)
    want_status 1 "disk full"
    want_error full/out/z.ppm "disk full"
    want_stderr_has "No space left on device" "disk full: the reason"
    want_summary 1 0 1 "disk full"
    check "disk full: only the complete output ($(tr '\n' ' ' <full.files))" test "$(tr '\n' ' ' <full.files)" = "./out ./out/a.png "
    same_bytes dfref_a.png full_a.png "disk full: the output that fitted is complete"
  else
    skip "cannot mount a small tmpfs (need root and unshare -m): $(head -c 200 full.err)"
  fi
  end
fi

# ---- an unwritable output directory (as nobody) ------------------------------------------
if wanted unwritable; then
  begin unwritable
  if [ "$(id -u)" != 0 ] || [ "$can_drop" = 1 ]; then
    mkdir rodir
    drop=run
    [ "$(id -u)" = 0 ] && drop=as_nobody || chmod 555 rodir
    $drop "${one[@]}" -o rodir good
    want_status 1 "unwritable OUTDIR"
    for f in a.png b.jpg c.ppm d.pam e.png; do want_error "rodir/$f" "unwritable OUTDIR: $f"; done
    want_stderr_has "Permission denied" "unwritable OUTDIR: the reason"
    want_summary 0 0 5 "unwritable OUTDIR"
    $drop "${one[@]}" -r -o rodir/new good
    want_status 1 "OUTDIR to be made under an unwritable directory"
    want_stderr_has "deepdream: rodir/new: Permission denied" "unmakeable OUTDIR: named"
    check "unwritable: nothing left in it" test -z "$(ls -A rodir)"
    chmod 755 rodir
  else
    skip "running as root without setpriv: no unwritable directory to test"
  fi
  end
fi

# ---- hostile inputs (issue 5, point 5) through a batch ---------------------------------
if wanted hostile; then
  begin hostile
  mkdir hostile
  h=hostile
  : >$h/zero.png
  printf 'GIF89a\001\000\001\000' >$h/wrongmagic.png
  printf 'P9\n2 2\n255\n' >$h/wrongmagic.ppm
  # Truncated PNG, JPEG and PNM at several bytes (inside the signature, the
  # header and the data).
  for n in 4 8 16 33 100 1000; do head -c $n good/a.png >$h/trunc$n.png; done
  for n in 2 3 20 200 1500; do head -c $n good/b.jpg >$h/trunc$n.jpg; done
  for n in 2 7 13 20 5000; do head -c $n good/c.ppm >$h/trunc$n.ppm; done
  # 100000x100000 and 50000x50000 in valid PNG headers (the IDAT is tiny).
  python3 - <<'EOF' 2>/dev/null || skip "python3: no 100000x100000 PNG header"
import struct, zlib
def chunk(t, d): return struct.pack('>I', len(d)) + t + d + struct.pack('>I', zlib.crc32(t + d) & 0xffffffff)
for side in (100000, 50000):
    with open('hostile/huge%d.png' % side, 'wb') as f:
        f.write(b'\x89PNG\r\n\x1a\n' + chunk(b'IHDR', struct.pack('>IIBBBBB', side, side, 8, 2, 0, 0, 0))
                + chunk(b'IDAT', zlib.compress(b'\0' * 64)) + chunk(b'IEND', b''))
EOF
  printf 'P6\n100000 100000\n255\n' >$h/huge.ppm
  printf 'P6\n2 2\n0\n123456789012' >$h/maxval0.ppm
  printf 'P6\n2 2\n70000\n123456789012345678901234' >$h/maxval70000.ppm
  printf 'P6\n2\n255\n123456789012' >$h/nofield.ppm
  printf 'P7\nWIDTH 2\nHEIGHT 2\nDEPTH 3\nMAXVAL 255\nTUPLTYPE RGB\n' >$h/noendhdr.pam
  # PNG with a bad CRC; JPEG with a Huffman table of 16 x 255 codes.
  idat=$(grep -obUaP 'IDAT' good/a.png | head -1 | cut -d: -f1)
  { head -c $((idat + 50)) good/a.png; printf 'X'; tail -c +$((idat + 52)) good/a.png; } >$h/badcrc.png
  dht=$(grep -obUaP '\xff\xc4' good/b.jpg | head -1 | cut -d: -f1)
  { head -c $((dht + 5)) good/b.jpg; head -c 16 /dev/zero | tr '\0' '\377'; tail -c +$((dht + 22)) good/b.jpg; } >$h/badhuffman.jpg
  bad=(zero.png wrongmagic.png wrongmagic.ppm trunc4.png trunc8.png trunc16.png trunc33.png trunc100.png trunc1000.png
       trunc2.jpg trunc3.jpg trunc20.jpg trunc200.jpg trunc1500.jpg trunc2.ppm trunc7.ppm trunc13.ppm trunc20.ppm
       trunc5000.ppm huge.ppm maxval0.ppm maxval70000.ppm nofield.ppm noendhdr.pam badcrc.png badhuffman.jpg)
  [ -f $h/huge100000.png ] && bad+=(huge100000.png huge50000.png)
  # The good and the harmless: CMYK JPEG (converted), 1x1 and 2x3 (passed
  # through with a note), a name that is not UTF-8.
  convert good/a.png -colorspace CMYK -quality 90 $h/cmyk.jpg
  convert good/a.png -resize '1x1!' $h/pixel1x1.png
  convert good/a.png -resize '2x3!' ppm:$h/pixel2x3.ppm
  cp good/a.png $h/$'\xff\xfe.png'
  head -c 100 good/a.png >$h/$'\xfe\xff-bad.png'
  bad+=($'\xfe\xff-bad.png')
  args=()
  for f in "${bad[@]}"; do args+=("$h/$f"); done
  run "${one[@]}" -o hostout "${args[@]}" $h/cmyk.jpg $h/pixel1x1.png $h/pixel2x3.ppm $h/$'\xff\xfe.png'
  want_status 1 "hostile inputs"
  want_no_stdout "hostile inputs"
  for f in "${bad[@]}"; do
    want_error "$h/$f" "hostile: $f"
    absent "hostout/$f" "hostile: no output for $f"
  done
  want_summary 4 0 ${#bad[@]} "hostile inputs"
  check "hostile: no other lines ($(wc -l <stderr) lines)" test "$(wc -l <stderr)" = $((${#bad[@]} + 3))
  check "hostile: nothing over 1 line per file, no crash text" test -z "$(grep -aiE 'sanitizer|assert|abort|core dumped|warning' stderr)"
  [ -f $h/huge100000.png ] && {
    grep -aF "$h/huge100000.png: " stderr | grep -q limit
    check "100000x100000: the error names the limit ($(grep -aF "$h/huge100000.png: " stderr))" test $? = 0
    grep -aF "$h/huge50000.png: " stderr | grep -q 'limit of 100000000 pixels'
    check "50000x50000: the error names --max-pixels' default ($(grep -aF "$h/huge50000.png: " stderr))" test $? = 0
  }
  want_stderr_has "deepdream: $h/pixel1x1.png: image 1x1 is too small" "1x1: a note"
  want_stderr_has "deepdream: $h/pixel2x3.ppm: image 2x3 is too small" "2x3: a note"
  want_stderr_has "passed through unchanged" "too small: passed through"
  check "1x1 passed through" cmp -s <(convert $h/pixel1x1.png rgba:-) <(convert hostout/pixel1x1.png rgba:-)
  check "2x3 passed through" cmp -s <(convert $h/pixel2x3.ppm rgb:-) <(convert hostout/pixel2x3.ppm rgb:-)
  check "CMYK JPEG: dreamed into a JPEG of the same size" test "$(dims hostout/cmyk.jpg)" = 64x48
  same_bytes ref1/a.png hostout/$'\xff\xfe.png' "a name that is not UTF-8: dreamed"
  no_leftovers hostout hostile "hostile inputs"
  # --max-pixels names its value.
  run "${one[@]}" --max-pixels 1000 -o hostmax good/a.png
  want_status 1 "--max-pixels 1000"
  want_stderr_has "deepdream: good/a.png: image of 64x48 pixels is over the limit of 1000 pixels" "--max-pixels 1000"
  # The same files found in a directory: what is not an image by content is
  # noted and skipped; what claims to be one and is broken fails.
  run "${one[@]}" -o hostdir $h
  want_status 1 "hostile directory"
  want_stderr_has "deepdream: $h/zero.png: not an image, skipped" "hostile directory: zero bytes noted"
  want_stderr_has "deepdream: $h/trunc4.png: not an image, skipped" "hostile directory: 4 bytes of PNG noted"
  want_error "$h/trunc8.png" "hostile directory: 8 bytes of PNG fail"
  want_error "$h/badhuffman.jpg" "hostile directory: corrupt Huffman table fails"
  # A directory named like an image: noted without -r, descended with it.
  mkdir hostdir2 hostdir2/x.png && cp good/a.png hostdir2/x.png/in.png
  run "${one[@]}" -o hostdir2out hostdir2
  want_status 0 "a directory named x.png, no -r"
  want_stderr_has "deepdream: hostdir2/x.png: a directory, skipped (use -r)" "a directory named x.png: noted"
  run "${one[@]}" -r -o hostdir2out hostdir2
  same_bytes ref1/a.png hostdir2out/x.png/in.png "a directory named x.png, -r: descended"
  # Unreadable files, as nobody: named, and found in a directory.
  if [ "$can_drop" = 1 ]; then
    mkdir unr unrout && chmod 777 unrout
    cp good/a.png good/b.jpg unr/
    cp good/c.ppm unr/secret.ppm && chmod 600 unr/secret.ppm
    mkdir unr/locked && cp good/a.png unr/locked/ && chmod 700 unr/locked
    as_nobody "${one[@]}" -r -o unrout unr
    want_status 1 "unreadable file and directory (as nobody)"
    want_error unr/secret.ppm "unreadable file in a directory"
    want_error unr/locked "unreadable directory"
    want_stderr_has "Permission denied" "unreadable: the reason"
    want_summary 2 0 2 "unreadable (as nobody)"
    check "unreadable: the readable ones done" test "$(files_of unrout | tr '\n' ' ')" = "a.png b.jpg "
    mkdir unrout2 && chmod 777 unrout2
    as_nobody "${one[@]}" -o unrout2 unr/secret.ppm good/a.png
    want_status 1 "a named unreadable file (as nobody)"
    want_error unr/secret.ppm "a named unreadable file"
  else
    skip "cannot run as nobody: unreadable files not tested"
  fi
  end
fi

# ---- progress on standard error only; --quiet ------------------------------------------
if wanted progress; then
  begin progress
  run "${one[@]}" --progress -o progout good
  want_status 0 "--progress"
  want_no_stdout "--progress"
  check "--progress: one line per file, then the summary ($(stderr_text))" test "$(wc -l <stderr)" = 6
  check "--progress: [i/5] file: octave 1/1, ... left" \
    test "$(progress_names stderr | tr '\n' ' ')" = "good/a.png good/b.jpg good/c.ppm good/d.pam good/e.png "
  check "--progress: files counted 1..5 of 5" test "$(grep -c '^deepdream: \[[1-5]/5\] ' stderr)" = 5
  want_summary 5 0 0 "--progress"
  run --octaves 2 --steps 1 --progress -o progout2 good/b.jpg
  check "--progress: a line per octave" test "$(grep -c '^deepdream: \[1/1\] good/b.jpg: octave [12]/2, .* left$' stderr)" = 2
  run "${one[@]}" -o progout3 good
  want_status 0 "no --progress, no terminal"
  check "no terminal: the summary only ($(stderr_text))" test "$(cat stderr)" = "deepdream: 5 done, 0 skipped, 0 failed"
  want_no_stdout "no --progress"
  for q in "--quiet" "--quiet --progress"; do
    run "${one[@]}" $q -o "progq${q// /}" good
    want_status 0 "$q"
    want_quiet "$q"
    want_no_stdout "$q"
  done
  convert good/a.png -resize '1x1!' pixel.png
  run "${one[@]}" --quiet -o progq2 good/a.png pixel.png
  want_quiet "--quiet: no note for a passed-through image"
  # On a terminal: one line that updates in place, nothing on standard output.
  if command -v script >/dev/null && script -qec true /dev/null </dev/null >/dev/null 2>&1; then
    script -qec "$(printf '%q ' "$dd" --octaves 1 --steps 2 -o progtty good) >progtty.out" /dev/null </dev/null >progtty.txt 2>&1
    rc=$?
    want_status 0 "on a terminal"
    check "terminal: the line is redrawn (\\r, erase)" grep -qaF $'\r\033[K' progtty.txt
    for i in 1 2 3 4 5; do check "terminal: [$i/5] shown" grep -qaF "[$i/5] good/" progtty.txt; done
    check "terminal: octave, step and time left" grep -qaE 'octave 1/1, step 2/2, [0-9?][0-9hms]* left' progtty.txt
    check "terminal: no newline before the summary" test "$(grep -ca 'deepdream: \[' progtty.txt)" = 1
    check "terminal: summary" grep -qaF "deepdream: 5 done, 0 skipped, 0 failed" progtty.txt
    check "terminal: nothing on standard output" test ! -s progtty.out
    script -qec "$(printf '%q ' "$dd" --octaves 1 --steps 2 --quiet -o progttyq good)" /dev/null </dev/null >progtty.txt 2>&1
    check "terminal, --quiet: nothing at all" test ! -s progtty.txt
  else
    skip "script(1) cannot open a pseudo-terminal: terminal progress not tested"
  fi
  end
fi

echo "test_batch: $passed passed, $failed failed, $skipped skipped ($((SECONDS - start)) s)"
[ "$failed" = 0 ]
