#!/usr/bin/env bash
# End-to-end tests of what a careless or hostile user tries: outputs that are
# not regular files, one file under two names in place, resuming in place,
# decompression bombs, sizes refused before the bytes are read, thread teams
# smaller than asked, signals mid-step, the output directory inside the
# inputs, long names, unusable output places found before the dream,
# pass-through, names and formats, Netpbm headers, messages. Real files,
# real ImageMagick; tiny images and few steps.
#
# usage: test_hostile.sh DEEPDREAM [GROUP...]
#   GROUP: setup is always run; then outputs inplace bombs limits threads
#   outdir names early passthrough lastsignal formats netpbm messages memory
#   (all when none is named).
# Exits 77 (skipped) without ImageMagick.
set -u
if [ $# -lt 1 ]; then
  echo "usage: test_hostile.sh DEEPDREAM [GROUP...]" >&2
  exit 2
fi
dd=$(cd "$(dirname "$1")" && pwd)/$(basename "$1")
shift
groups=" $* "
top=$(cd "$(dirname "$0")/.." && pwd)
for tool in convert identify; do
  command -v "$tool" >/dev/null || { echo "skip: ImageMagick's $tool is not installed"; exit 77; }
done
# python3 makes the files ImageMagick cannot (bombs, a 65520-pixel-wide
# PNG, a socket); without it those cases are skipped.
have_python=0
command -v python3 >/dev/null && have_python=1
export LC_ALL=C

work=$(mktemp -d)
chmod 755 "$work"
trap 'chmod -R u+w "$work" 2>/dev/null; rm -rf "$work"' EXIT
cd "$work" || exit 1
umask 022

. "$top/tests/harness.sh"
. "$top/tests/cli_helpers.sh"

one=(--octaves 1 --steps 1)
# want_one_line PREFIX WHAT: standard error is exactly one line, starting so.
want_one_line() {
  local lines
  lines=$(wc -l <"$work/stderr")
  if [ "$lines" = 1 ] && [[ "$(cat "$work/stderr")" == "$1"* ]]; then pass; else
    fail "$2: want one line starting '$1', got $lines: $(stderr_text)"
  fi
}
now_ms() { date +%s%3N; }
# same_pixels A B WHAT: decoded by ImageMagick, every channel at 16 bits.
# Dreams of inputs with other bytes differ in their mark (a hash of the
# input's bytes) even when their pixels are the same.
same_pixels() {
  if [ -f "$1" ] && [ -f "$2" ] && cmp -s <(convert "$1" -depth 16 rgba:-) <(convert "$2" -depth 16 rgba:-); then pass; else
    fail "$3: pixels of $1 and $2 differ"
  fi
}
peak_kb() { tail -1 "$1"; } # /usr/bin/time -f %M output
# peak_run RSS_FILE ARGS...: the CLI under /usr/bin/time; AddressSanitizer
# (the sanitizer run) told to keep no freed memory, which it would count.
peak_run() {
  local out=$1
  shift
  ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}quarantine_size_mb=0" /usr/bin/time -f %M -o "$out" "$dd" "$@"
}

# ---- setup ---------------------------------------------------------------------
s=$top/samples
convert "$s/chelsea.png" -resize '96x80!' -strip PNG24:a.png
convert "$s/coffee.png" -resize '96x80!' -strip -quality 90 b.jpg
convert "$s/astronaut.png" -resize '96x80!' -strip ppm:c.ppm
convert a.png -colorspace Gray -define png:color-type=0 grey.png
convert "$s/coffee.png" -resize '30x30!' -strip -quality 85 small.jpg
convert "$s/coffee.png" -resize '30x30!' -strip PNG24:small.png
convert "$s/coffee.png" -resize '30x30!' -strip ppm:small.ppm
"$dd" "${one[@]}" a.png ref_a.png 2>/dev/null
check "setup: reference dream of a.png" test -s ref_a.png

# ---- outputs that are not regular files -------------------------------------------
if wanted outputs; then
  begin outputs
  # A FIFO: its reader gets the whole image; it stays a FIFO.
  mkfifo pipe.png
  cat pipe.png >from_fifo.png &
  reader=$!
  run "${one[@]}" a.png pipe.png
  wait "$reader"
  want_status 0 "output is a FIFO"
  check "output is a FIFO: still a FIFO" test -p pipe.png
  same_bytes ref_a.png from_fifo.png "output is a FIFO: the reader got the dream"
  # A symbolic link to a FIFO, with a format prefix.
  ln -s pipe.png pipe_link
  cat pipe.png >from_fifo_link.png &
  reader=$!
  run "${one[@]}" a.png png:pipe_link
  wait "$reader"
  want_status 0 "output is a link to a FIFO"
  check "link to a FIFO: still a link to a FIFO" test -L pipe_link -a -p pipe.png
  same_bytes ref_a.png from_fifo_link.png "link to a FIFO: the reader got the dream"
  # A character device: written into, never replaced.
  run "${one[@]}" a.png png:/dev/null
  want_status 0 "png:/dev/null"
  check "/dev/null is still a character device" test -c /dev/null
  # /dev/stdout and a process substitution: the descriptor, not a file
  # renamed over the path.
  "$dd" "${one[@]}" a.png png:/dev/stdout 2>stderr | cat >via_stdout.png
  same_bytes ref_a.png via_stdout.png "png:/dev/stdout into a pipe"
  "$dd" "${one[@]}" a.png png:/dev/stdout >via_stdout_file.png 2>stderr
  same_bytes ref_a.png via_stdout_file.png "png:/dev/stdout redirected to a file"
  "$dd" "${one[@]}" a.png png:>(cat >via_subst.png) 2>stderr
  sleep 0.5
  same_bytes ref_a.png via_subst.png "a >(...) path"
  # A link to a regular file is written through: the link stays, its target
  # gets the dream.
  cp b.jpg target.png
  ln -s target.png link.png
  run "${one[@]}" a.png link.png
  want_status 0 "output is a link to a file"
  check "link to a file: still a link" test -L link.png
  same_bytes ref_a.png target.png "link to a file: the target holds the dream"
  # A dangling link: its target is made, as with >.
  ln -s made.png dangling.png
  run "${one[@]}" a.png dangling.png
  want_status 0 "output is a dangling link"
  check "dangling link: still a link" test -L dangling.png
  same_bytes ref_a.png made.png "dangling link: the target made"
  # A directory, a socket: no place for an image (exit 2, before any work).
  mkdir adir.png
  run --steps 100000 a.png adir.png
  want_status 2 "output is a directory"
  want_one_line "deepdream: adir.png: a directory" "output is a directory"
  if [ "$have_python" = 1 ]; then
    python3 -c 'import socket,sys; s=socket.socket(socket.AF_UNIX); s.bind(sys.argv[1])' sock.png
    run --steps 100000 a.png sock.png
    want_status 2 "output is a socket"
    check "socket: still a socket" test -S sock.png
  else
    skip "no python3: no socket to write to"
  fi
  if mknod blockdev.png b 7 250 2>/dev/null; then # a loop device number no one has
    run --steps 100000 a.png blockdev.png
    want_status 2 "output is a block device"
    want_stderr_has "a block device" "output is a block device"
    check "block device: still one" test -b blockdev.png
  else
    skip "mknod is not allowed here: no block device case"
  fi
  # A full device: the error, and /dev/full stays what it is.
  if [ -w /dev/full ]; then
    run "${one[@]}" a.png png:/dev/full
    want_status 1 "png:/dev/full"
    want_one_line "deepdream: /dev/full: No space left on device" "png:/dev/full"
    check "/dev/full is still a character device" test -c /dev/full
  fi
  # A FIFO nobody reads: a signal ends the wait at once.
  mkfifo lonely.png
  (trap - INT; exec "$dd" "${one[@]}" a.png lonely.png 2>lonely.log) &
  pid=$!
  for ((i = 0; i < 200; i++)); do [ -s lonely.log ] && break; ls -l /proc/$pid/fd 2>/dev/null | grep -q lonely && break; sleep 0.05; done
  sleep 1
  t0=$(now_ms)
  kill -TERM "$pid"
  wait "$pid"
  rc=$?
  t1=$(now_ms)
  check "SIGTERM while a FIFO has no reader: exit $rc, want 143" test "$rc" = 143
  check "SIGTERM while a FIFO has no reader: ended in $((t1 - t0)) ms (<= 1000)" test $((t1 - t0)) -le 1000
  check "the unread FIFO is still a FIFO" test -p lonely.png
  # In place needs a file to replace.
  mkfifo inplace_fifo.png
  (cat a.png >inplace_fifo.png &)
  run "${one[@]}" --in-place inplace_fifo.png
  want_status 1 "--in-place on a FIFO"
  want_stderr_has "not a regular file" "--in-place on a FIFO"
  check "--in-place on a FIFO: still a FIFO" test -p inplace_fifo.png
  cat inplace_fifo.png >/dev/null 2>&1 & # the writer, if it still waits
  # The batch writes into a FIFO in OUTDIR too.
  mkdir -p fifo_out
  mkfifo fifo_out/a.png
  cat fifo_out/a.png >batch_fifo.png &
  reader=$!
  run "${one[@]}" -o fifo_out a.png
  wait "$reader"
  want_status 0 "batch output is a FIFO"
  same_bytes ref_a.png batch_fifo.png "batch output is a FIFO"
  check "batch output FIFO: still a FIFO" test -p fifo_out/a.png
  no_leftovers . fifo_out "outputs"
  end
fi

# ---- in place: once per file, and a real resume ------------------------------------
if wanted inplace; then
  begin inplace
  mkdir ip && cp a.png ip/q.png
  run "${one[@]}" --in-place ip/q.png ./ip/q.png "$work/ip/q.png" ip//q.png
  want_status 0 "--in-place under four names"
  same_bytes ref_a.png ip/q.png "--in-place under four names: dreamed once"
  want_stderr_has "dreamed once" "--in-place under four names: a note"
  # A symbolic link to a directory under -r, a hard link.
  mkdir -p tree/real && cp a.png tree/real/p.png && ln -s real tree/alias && ln tree/real/p.png tree/hard.png
  run "${one[@]}" -r --in-place tree
  want_status 0 "-r --in-place through a linked directory and a hard link"
  same_bytes ref_a.png tree/real/p.png "linked directory and hard link: dreamed once"
  want_summary 1 0 0 "linked directory and hard link"
  # A link given in place is written through: it stays a link.
  cp a.png ip_target.png && ln -s ip_target.png ip_link.png
  run "${one[@]}" --in-place ip_link.png
  want_status 0 "--in-place on a link"
  check "--in-place on a link: still a link" test -L ip_link.png
  same_bytes ref_a.png ip_target.png "--in-place on a link: its target dreamed"
  # Shards in place with a hard link: every other file still dreamed once.
  mkdir -p hl && for n in a c d; do cp a.png hl/$n.png; done && ln hl/a.png hl/b.png
  run "${one[@]}" --shard 0/2 --in-place hl
  run "${one[@]}" --shard 1/2 --in-place hl
  for n in c d; do
    check "--in-place shards with a hard link: hl/$n.png dreamed once" cmp -s ref_a.png hl/$n.png
  done
  # A Netpbm stream of two images in place would lose the second.
  cat c.ppm c.ppm >multi.ppm && cp multi.ppm multi_before.ppm
  run "${one[@]}" --in-place multi.ppm
  want_status 1 "--in-place on a PPM holding two images"
  want_error multi.ppm "--in-place on two images"
  want_stderr_has "holds more than one image" "--in-place on two images"
  same_bytes multi_before.ppm multi.ppm "--in-place on two images: untouched"
  # Resume: dreams carry a mark; --skip-existing leaves them.
  mkdir res && cp a.png res/1.png && cp b.jpg res/2.jpg
  run "${one[@]}" --in-place res/1.png res/2.jpg
  want_status 0 "--in-place, first run"
  cp res/1.png res1_after.png && cp res/2.jpg res2_after.jpg
  cp c.ppm res/3.ppm
  run "${one[@]}" --in-place --skip-existing res/1.png res/2.jpg res/3.ppm
  want_status 0 "--in-place --skip-existing"
  want_summary 1 2 0 "--in-place --skip-existing"
  same_bytes res1_after.png res/1.png "--in-place --skip-existing: a dream is not dreamed again (PNG)"
  same_bytes res2_after.jpg res/2.jpg "--in-place --skip-existing: a dream is not dreamed again (JPEG)"
  check "--in-place --skip-existing: the new file is dreamed" grep -qa "deepdream " res/3.ppm
  run "${one[@]}" --in-place --skip-existing res/3.ppm
  want_summary 0 1 0 "--in-place --skip-existing: the PPM's mark"
  end
fi

# ---- decompression bombs -------------------------------------------------------------
if wanted bombs; then
  begin bombs
  if [ -x /usr/bin/time ] && [ "$have_python" = 1 ]; then
    # 400 zTXt chunks, each inflating to 7.9 MB, in a 96x80 PNG.
    python3 - a.png bomb.png <<'EOF'
import struct, sys, zlib
data = open(sys.argv[1], 'rb').read()
def chunk(kind, body):
    return struct.pack('>I', len(body)) + kind + body + struct.pack('>I', zlib.crc32(kind + body) & 0xffffffff)
payload = zlib.compress(b'A' * 7900000, 9)
bombs = b''.join(chunk(b'zTXt', b'k%d\0\0' % i + payload) for i in range(400))
at = 8 + 25  # after the signature and IHDR
open(sys.argv[2], 'wb').write(data[:at] + bombs + data[at:])
EOF
    peak_run plain.rss "${one[@]}" a.png bomb_ref.png 2>/dev/null
    peak_run bomb.rss "${one[@]}" bomb.png bomb_out.png 2>stderr
    rc=$?
    want_status 0 "a PNG with 400 zTXt bombs decodes"
    same_pixels bomb_ref.png bomb_out.png "zTXt bombs: the same dream as without them"
    check "zTXt bombs: peak RSS $(peak_kb bomb.rss) KiB within 32 MiB of the plain file's $(peak_kb plain.rss) KiB" \
      test "$(peak_kb bomb.rss)" -le $(($(peak_kb plain.rss) + 32768))
    # 1000 APP2 and other APPn markers in a JPEG (60 MB): kept by libjpeg
    # they would cost the file's size again.
    python3 - b.jpg bomb.jpg <<'EOF'
import struct, sys
data = open(sys.argv[1], 'rb').read()
seg = b''.join(struct.pack('>BBH', 0xff, 0xe2 + (i % 3) * 5, 60002) + b'ICC_PROFILE\0' + bytes([i % 250 + 1, 255]) + b'\0' * 59986
               for i in range(1000))
open(sys.argv[2], 'wb').write(data[:2] + seg + data[2:])
EOF
    convert b.jpg b_ref_pixels.ppm
    peak_run jbomb.rss "${one[@]}" bomb.jpg bomb_out.ppm 2>stderr
    rc=$?
    want_status 0 "a JPEG with 1000 metadata markers decodes"
    "$dd" "${one[@]}" b.jpg bomb_ref.ppm 2>/dev/null
    same_pixels bomb_ref.ppm bomb_out.ppm "JPEG markers: the same dream as without them"
    size_kb=$(($(stat -c %s bomb.jpg) / 1024))
    # The file's bytes once (and an eighth more: AddressSanitizer's shadow)
    # plus 8 MiB; markers kept by libjpeg would add the file's size again.
    check "JPEG markers: peak RSS $(peak_kb jbomb.rss) KiB within the file's ${size_kb} KiB x 9/8 + 8 MiB of the plain run's $(peak_kb plain.rss) KiB" \
      test "$(peak_kb jbomb.rss)" -le $(($(peak_kb plain.rss) + size_kb * 9 / 8 + 8192))
  else
    skip "no /usr/bin/time or python3: the bombs are not measured"
  fi
  end
fi

# ---- sizes refused before the bytes are read -------------------------------------------
if wanted limits; then
  begin limits
  printf 'P6\n20000 20000\n255\n' >huge.ppm
  truncate -s 1200000000 huge.ppm # sparse: 1.2 GB that cost no disk
  peak_run refuse.rss --max-pixels 10 "${one[@]}" a.png refused.png 2>/dev/null
  peak_run huge.rss "${one[@]}" huge.ppm huge_out.png >stdout 2>stderr
  rc=$?
  want_status 1 "a 20000x20000 PPM header in a 1.2 GB file"
  want_one_line "deepdream: huge.ppm: image of 20000x20000 pixels is over the limit of 100000000 pixels" "20000x20000 file"
  check "20000x20000 file: refused with $(peak_kb huge.rss) KiB peak, within 16 MiB of refusing a 96x80 PNG ($(peak_kb refuse.rss) KiB)" \
    test "$(peak_kb huge.rss)" -le $(($(peak_kb refuse.rss) + 16384))
  absent huge_out.png "20000x20000 file"
  # The same header on a pipe followed by endless zeros.
  { printf 'P6\n20000 20000\n255\n'; cat /dev/zero; } | timeout 20 "$dd" "${one[@]}" - zero_out.png 2>stderr
  rc=${PIPESTATUS[1]}
  want_status 1 "20000x20000 header then /dev/zero on standard input"
  want_one_line "deepdream: standard input: image of 20000x20000" "header then /dev/zero"
  # A small PNG's header followed by endless bytes: read no more than such
  # an image can take.
  { head -c 33 a.png; cat /dev/zero; } | timeout 60 "$dd" "${one[@]}" - zero_png.png 2>stderr
  rc=${PIPESTATUS[1]}
  want_status 1 "a 96x80 PNG header then /dev/zero"
  want_stderr_has "bytes a 96x80 image can take" "a 96x80 PNG header then /dev/zero"
  # A PPM with more bytes than its pixels: a Netpbm stream may hold more
  # images; the first is the one.
  { cat c.ppm; cat c.ppm; } | "$dd" "${one[@]}" - two.ppm 2>stderr
  "$dd" "${one[@]}" c.ppm one.ppm 2>/dev/null
  same_bytes one.ppm two.ppm "two PPMs on standard input: the first is dreamed"
  # The model: -m /dev/zero fails at once.
  t0=$(now_ms)
  run -m /dev/zero "${one[@]}" a.png zero_model.png
  t1=$(now_ms)
  want_status 1 "-m /dev/zero"
  want_one_line "deepdream: /dev/zero: " "-m /dev/zero"
  check "-m /dev/zero: refused in $((t1 - t0)) ms (< 5000)" test $((t1 - t0)) -lt 5000
  end
fi

# ---- OpenMP settings that are not the library's; signals mid-step ----------------------------------
if wanted threads; then
  begin threads
  "$dd" --octaves 2 --steps 2 --threads 1 a.png t1.png 2>/dev/null
  for env in OMP_THREAD_LIMIT=1 OMP_THREAD_LIMIT=2 OMP_DYNAMIC=true OMP_NUM_THREADS=1 OMP_MAX_ACTIVE_LEVELS=0; do
    for t in 2 3; do
      env "$env" timeout 120 "$dd" --octaves 2 --steps 2 --threads "$t" a.png "t_$t.png" 2>stderr
      rc=$?
      want_status 0 "$env --threads $t"
      same_bytes t1.png "t_$t.png" "$env --threads $t: the bytes of --threads 1"
    done
  done
  # The library's threads are its own (src/util/team.c): the CLI no longer
  # starts itself again to give libgomp a short spin. An OpenMP runtime in
  # the process (only a threaded OpenBLAS brings one) shows its settings
  # once per start.
  starts=$(env -u OMP_WAIT_POLICY -u GOMP_SPINCOUNT OMP_DISPLAY_ENV=true "$dd" --version 2>&1 |
           grep -c 'OPENMP DISPLAY ENVIRONMENT BEGIN')
  check "started $starts times' OpenMP settings shown, want at most 1 (no re-exec)" test "$starts" -le 1
  # SIGTERM and SIGINT in the middle of a long step end the program within
  # a second.
  convert "$s/coffee.png" -resize '1600x1200!' big.ppm
  for sig in TERM:143 INT:130; do
    rm -rf sigdir && mkdir sigdir
    (trap - INT; exec "$dd" --octaves 1 --steps 3 --tile 1600 --progress big.ppm sigdir/out.png 2>sig.log) &
    pid=$!
    if wait_for sig.log "octave 1/1" "$pid"; then
      sleep 1.5 # inside the first step (several seconds on a 1600x1200 tile)
      t0=$(now_ms)
      kill -"${sig%%:*}" "$pid"
      wait "$pid"
      rc=$?
      t1=$(now_ms)
      check "SIG${sig%%:*} mid-step: exit $rc, want ${sig##*:}" test "$rc" = "${sig##*:}"
      check "SIG${sig%%:*} mid-step: ended in $((t1 - t0)) ms (<= 1000, + 300 for the test)" test $((t1 - t0)) -le 1300
      check "SIG${sig%%:*} mid-step: nothing written" test -z "$(ls -A sigdir)"
    else
      fail "SIG${sig%%:*}: the dream did not start"
    fi
  done
  # A second signal quits at once, with the first one's status.
  rm -rf sigdir && mkdir sigdir
  (trap - INT; exec "$dd" --octaves 1 --steps 3 --tile 1600 --progress big.ppm sigdir/out.png 2>sig.log) &
  pid=$!
  if wait_for sig.log "octave 1/1" "$pid"; then
    sleep 1
    kill -INT "$pid"
    kill -TERM "$pid"
    wait "$pid"
    rc=$?
    check "SIGINT then SIGTERM: exit $rc, want 130" test "$rc" = 130
    check "SIGINT then SIGTERM: nothing written" test -z "$(ls -A sigdir)"
  fi
  # Far more threads than cores: capped, with a note.
  run --threads 1024 "${one[@]}" a.png many.png
  want_status 0 "--threads 1024"
  want_stderr_has "online cores" "--threads 1024: the note"
  same_bytes ref_a.png many.png "--threads 1024: the same dream"
  end
fi

# ---- the output directory inside the inputs -----------------------------------------------
if wanted outdir; then
  begin outdir
  mkdir -p photos/sub && cp a.png photos/ && cp b.jpg photos/sub/
  run "${one[@]}" -r -o photos/dreams photos
  want_status 0 "-r -o photos/dreams photos"
  want_summary 2 0 0 "-r -o photos/dreams photos"
  run "${one[@]}" -r --skip-existing -o photos/dreams photos
  want_status 0 "-r -o photos/dreams photos, rerun with --skip-existing"
  want_summary 0 2 0 "rerun with --skip-existing"
  run "${one[@]}" -r -o photos/dreams photos
  want_status 0 "-r -o photos/dreams photos, rerun without --skip-existing"
  want_summary 2 0 0 "rerun: the outputs are not inputs"
  # Shards: one shard's outputs do not change the other's share.
  mkdir -p sh && cp a.png sh/1.png && cp b.jpg sh/2.jpg && cp c.ppm sh/3.ppm && cp grey.png sh/4.png
  run "${one[@]}" -r --shard 0/2 -o sh/out sh
  want_summary 2 0 0 "shard 0/2"
  run "${one[@]}" -r --shard 1/2 -o sh/out sh
  want_status 0 "shard 1/2 after shard 0/2 wrote into sh/out"
  want_summary 2 0 0 "shard 1/2"
  check "shards: four outputs" test "$(find sh/out -type f | wc -l)" = 4
  # --format png into the JPEGs' own directory, then a rerun.
  mkdir -p jp && cp b.jpg jp/x.jpg && cp small.jpg jp/y.jpg
  run "${one[@]}" --format png -o jp jp
  want_status 0 "--format png -o jp jp"
  run "${one[@]}" --skip-existing --format png -o jp jp
  want_status 0 "--format png -o jp jp, rerun"
  want_summary 0 2 0 "--format png into the JPEGs' directory, rerun"
  # A PNG of the user's own (no dream's mark) where an output would go is
  # still an input that would be overwritten; so is a dream of another
  # file (an in-place dream of x.png itself, a dream of y.jpg named x.png).
  mkdir -p own && cp b.jpg own/x.jpg && cp a.png own/x.png
  run "${one[@]}" --format png -o own own
  want_status 2 "--format png over the user's own x.png"
  same_bytes a.png own/x.png "the user's own x.png is untouched"
  run "${one[@]}" --in-place own/x.png
  cp own/x.png own_x_dreamed.png
  run "${one[@]}" --format png -o own own
  want_status 2 "--format png over x.png dreamed in place"
  same_bytes own_x_dreamed.png own/x.png "x.png dreamed in place is untouched"
  mkdir -p other && cp b.jpg other/x.jpg
  "$dd" "${one[@]}" small.jpg other/x.png 2>/dev/null
  cp other/x.png other_x.png
  run "${one[@]}" --format png -o other other
  want_status 2 "--format png over a dream of another file named x.png"
  same_bytes other_x.png other/x.png "a dream of another file is untouched"
  # A tiny image passed through into another name: a byte-for-byte copy,
  # which a rerun knows for the output it is.
  mkdir -p tinyp && cp small.ppm tinyp/t.pnm
  run "${one[@]}" --format ppm -o tinyp tinyp
  want_status 0 "--format ppm on a tiny .pnm"
  run "${one[@]}" --skip-existing --format ppm -o tinyp tinyp
  want_status 0 "--format ppm on a tiny .pnm, rerun"
  want_summary 0 1 0 "--format ppm on a tiny .pnm, rerun"
  # A FIFO among the inputs is never opened to plan.
  mkdir -p fifoin && cp b.jpg fifoin/x.jpg && mkfifo fifoin/x.png
  run "${one[@]}" --format png -o fifoin fifoin/x.jpg fifoin/x.png
  want_status 2 "a FIFO input where another input's output goes: refused, not waited on"
  end
fi

# ---- names the file system allows ------------------------------------------------------------
if wanted names; then
  begin names
  long=$(printf 'n%.0s' $(seq 1 251)).png # 255 bytes
  run "${one[@]}" a.png "$long"
  want_status 0 "a 255-byte output name"
  same_bytes ref_a.png "$long" "a 255-byte output name"
  long2=$(printf 'm%.0s' $(seq 1 236)).png
  cp a.png "$long2"
  run "${one[@]}" --in-place "$long2"
  want_status 0 "--in-place on a 240-byte name"
  same_bytes ref_a.png "$long2" "--in-place on a 240-byte name"
  mkdir -p longdir && cp a.png "longdir/$long"
  run "${one[@]}" -o longout longdir
  want_status 0 "-o with a 255-byte name"
  same_bytes ref_a.png "longout/$long" "-o with a 255-byte name"
  no_leftovers . longdir longout "long names"
  # A link whose target is named "-" is that file, not standard output.
  echo old >./-
  ln -s - dash_link.png
  run "${one[@]}" a.png dash_link.png
  want_status 0 "a link to a file named -"
  same_bytes ref_a.png ./- "a link to a file named -: the file holds the dream"
  want_no_stdout "a link to a file named -"
  # Colons: only a format name is a prefix.
  run "${one[@]}" a.png 12:30.png
  want_status 0 "output 12:30.png"
  want_magic 12:30.png png "output 12:30.png"
  run "${one[@]}" a.png ./x:y.png
  want_status 0 "output ./x:y.png"
  want_magic x:y.png png "output ./x:y.png"
  run "${one[@]}" a.png PNG:upper.out
  want_status 0 "output PNG:upper.out"
  want_magic upper.out png "a prefix in capitals"
  end
fi

# ---- unusable output places found before the dream ---------------------------------------------
if wanted early; then
  begin early
  : >afile
  ln -sf nowhere dangling_dir
  for case in afile:2 dangling_dir:2; do
    t0=$(now_ms)
    run --steps 100000 -o "${case%%:*}" a.png
    t1=$(now_ms)
    want_status "${case##*:}" "OUTDIR ${case%%:*}"
    want_one_line "deepdream: ${case%%:*}: " "OUTDIR ${case%%:*}"
    check "OUTDIR ${case%%:*}: found in $((t1 - t0)) ms, before any dream" test $((t1 - t0)) -lt 10000
  done
  run --steps 100000 a.png missing_dir/out.png
  want_status 1 "OUTPUT's directory is missing"
  want_one_line "deepdream: missing_dir/out.png: " "OUTPUT's directory is missing"
  if [ "$(id -u)" = 0 ] && [ "$can_drop" = 1 ]; then
    mkdir -p ro && chmod 755 ro
    as_nobody --steps 100000 a.png ro/out.png
    want_status 1 "OUTPUT's directory not writable (as nobody)"
    want_one_line "deepdream: ro/out.png: Permission denied" "OUTPUT's directory not writable"
  elif [ "$(id -u)" != 0 ]; then
    mkdir -p ro && chmod 555 ro
    run --steps 100000 a.png ro/out.png
    want_status 1 "OUTPUT's directory not writable"
    chmod 755 ro
  fi
  # A JPEG is at most 65500 pixels a side.
  [ "$have_python" = 1 ] && python3 - wide.png <<'EOF'
import struct, sys, zlib
def chunk(kind, body):
    return struct.pack('>I', len(body)) + kind + body + struct.pack('>I', zlib.crc32(kind + body) & 0xffffffff)
w, h = 65520, 1 # grey, 8 bits: wider than ImageMagick's default policy allows it to make
raw = b''.join(b'\0' + bytes((x * 7) & 255 for x in range(w)) for _ in range(h))
png = b'\x89PNG\r\n\x1a\n' + chunk(b'IHDR', struct.pack('>IIBBBBB', w, h, 8, 0, 0, 0, 0))
open(sys.argv[1], 'wb').write(png + chunk(b'IDAT', zlib.compress(raw)) + chunk(b'IEND', b''))
EOF
  if [ -f wide.png ]; then
    run --steps 100000 wide.png wide.jpg
    want_status 1 "a 65520-pixel-wide JPEG"
    want_one_line "deepdream: wide.jpg: a JPEG is at most 65500 pixels a side" "a 65520-pixel-wide JPEG"
    absent wide.jpg "a 65520-pixel-wide JPEG"
  else
    skip "no python3: no 65520-pixel-wide PNG"
  fi
  end
fi

# ---- passed through unchanged means the same bytes ------------------------------------------------
if wanted passthrough; then
  begin passthrough
  for f in small.jpg small.png small.ppm; do
    run "${one[@]}" "$f" "out_$f"
    want_status 0 "30x30 $f"
    want_stderr_has "passed through unchanged" "30x30 $f: the note"
    same_bytes "$f" "out_$f" "30x30 $f: the same bytes"
  done
  cp small.jpg inplace_small.jpg
  run "${one[@]}" --in-place inplace_small.jpg
  want_status 0 "30x30 JPEG in place"
  same_bytes small.jpg inplace_small.jpg "30x30 JPEG in place: the same bytes"
  # Another format: converted, the pixels kept, marked as passed through.
  run "${one[@]}" small.ppm small_conv.png
  want_status 0 "30x30 PPM into PNG"
  check "30x30 PPM into PNG: the same pixels" cmp -s <(convert small.ppm rgb:-) <(convert small_conv.png rgb:-)
  check "30x30 PPM into PNG: marked as passed through, not dreamed" grep -qa "passed through unchanged, too small" small_conv.png
  # Standard input, a pipe, a FIFO: read once, the bytes kept.
  run "${one[@]}" - out_stdin.jpg <small.jpg
  same_bytes small.jpg out_stdin.jpg "30x30 JPEG from standard input: the same bytes"
  run "${one[@]}" <(cat small.ppm) out_subst.ppm
  same_bytes small.ppm out_subst.ppm "30x30 PPM from a <(...) pipe: the same bytes"
  cat small.ppm | "$dd" "${one[@]}" /dev/stdin out_devstdin.ppm 2>stderr
  same_bytes small.ppm out_devstdin.ppm "30x30 PPM from /dev/stdin on a pipe: the same bytes"
  mkfifo tiny_fifo.ppm
  (cat small.ppm >tiny_fifo.ppm &)
  run "${one[@]}" tiny_fifo.ppm out_fifo.ppm
  want_status 0 "30x30 PPM from a FIFO"
  same_bytes small.ppm out_fifo.ppm "30x30 PPM from a FIFO: the same bytes, no second read"
  end
fi

# ---- a signal at the end of an image: written and counted, or neither ----------------------------
if wanted lastsignal; then
  begin lastsignal
  bad=0
  for delay in 0.05 0.1 0.15 0.2 0.25 0.3 0.35 0.4 0.5 0.6; do
    rm -rf ls_out && mkdir ls_out
    (trap - INT; exec "$dd" "${one[@]}" -o ls_out a.png b.jpg c.ppm grey.png 2>ls.log) &
    pid=$!
    sleep "$delay"
    kill -TERM "$pid" 2>/dev/null
    wait "$pid"
    written=$(find ls_out -type f ! -name '.*' | wc -l)
    counted=$(sed -nE 's/^deepdream: ([0-9]+) done, .*/\1/p' ls.log | tail -1)
    [ -z "$counted" ] && counted=$written # finished before the signal: no summary line to read
    if [ "$written" != "$counted" ]; then
      bad=$((bad + 1))
      echo "  after ${delay} s: $written written, summary says $counted"
    fi
    leftover=$(find ls_out -name '.*deepdream-*' | head -1)
    [ -n "$leftover" ] && bad=$((bad + 1)) && echo "  after ${delay} s: $leftover left"
  done
  check "a signal at any moment: the summary counts what was written, nothing half-written" test "$bad" = 0
  end
fi

# ---- the output's format follows its name -----------------------------------------------------------
if wanted formats; then
  begin formats
  run "${one[@]}" a.png out.pgm
  want_status 0 "colour into out.pgm"
  want_magic out.pgm pgm "colour into out.pgm is P5"
  run "${one[@]}" grey.png out.ppm
  want_status 0 "grey into out.ppm"
  want_magic out.ppm ppm "grey into out.ppm is P6"
  run "${one[@]}" a.png pgm:-
  want_magic stdout pgm "pgm:- is P5"
  run "${one[@]}" grey.png out.pnm
  want_magic out.pnm pgm "grey into out.pnm stays P5"
  mkdir -p fmt && cp a.png fmt/ && cp grey.png fmt/
  run "${one[@]}" --format pgm -o fmt_out fmt
  want_status 0 "--format pgm"
  want_magic fmt_out/a.pgm pgm "--format pgm: colour into P5"
  want_magic fmt_out/grey.pgm pgm "--format pgm: grey into P5"
  end
fi

# ---- Netpbm headers as Netpbm reads them ---------------------------------------------------------------
if wanted netpbm; then
  begin netpbm
  convert a.png -depth 8 rgb:a.rgb
  { printf 'P6\n96#width\n80# height\n255#max\n'; cat a.rgb; } >comments.ppm
  { printf 'P6 96 80 255\n'; cat a.rgb; } >plain.ppm
  "$dd" "${one[@]}" plain.ppm plain_out.png 2>/dev/null
  run "${one[@]}" comments.ppm comments_out.png
  want_status 0 "comments right after numbers"
  same_pixels plain_out.png comments_out.png "comments right after numbers: the same dream"
  { printf 'P7\nWIDTH 96\nHEIGHT 80\nDEPTH 3\nMAXVAL 255\nENDHDR\n'; cat a.rgb; } >notype.pam
  run "${one[@]}" notype.pam notype_out.png
  want_status 0 "PAM without TUPLTYPE, DEPTH 3"
  same_pixels plain_out.png notype_out.png "PAM without TUPLTYPE: RGB from DEPTH"
  convert a.png -colorspace Gray -depth 8 gray:a.gray
  { printf 'P7\nWIDTH 96\nHEIGHT 80\nDEPTH 1\nMAXVAL 255\nENDHDR\n'; cat a.gray; } >notype1.pam
  run "${one[@]}" notype1.pam notype1_out.pgm
  want_status 0 "PAM without TUPLTYPE, DEPTH 1"
  want_magic notype1_out.pgm pgm "PAM without TUPLTYPE, DEPTH 1: grey"
  end
fi

# ---- messages name the real thing ---------------------------------------------------------------------
if wanted messages; then
  begin messages
  run "${one[@]}" --max-size 1 a.png maxsize1.png
  want_status 0 "--max-size 1"
  want_stderr_has "96x80" "--max-size 1: the image's own size"
  convert -size 1x5000 gradient: tall.png
  run "${one[@]}" tall.png tall_out.png
  want_stderr_has "1x5000" "a 1x5000 image: its own size"
  want_stderr_lacks "898" "a 1x5000 image: not a tile's side"
  nl=$'new\nline.png'
  cp a.png "$nl"
  run "${one[@]}" --max-pixels 10 "$nl" nl_out.png
  want_status 1 "a newline in a file name"
  want_one_line 'deepdream: new\nline.png: ' "a newline in a file name"
  run --octaves $'1\n2' a.png x.png
  want_status 2 "a newline in an option's value"
  want_one_line "deepdream: --octaves: '1\\n2'" "a newline in an option's value"
  run $'--fo\no' a.png x.png
  want_one_line "deepdream: unknown option '--fo\\no'" "a newline in an unknown option"
  for seed in ' -1' ' 5' '+5' '-1' ''; do
    run --seed "$seed" "${one[@]}" a.png seed.png
    want_status 2 "--seed '$seed'"
  done
  for opt in --help --version; do
    "$dd" $opt >/dev/full 2>stderr
    rc=$?
    want_status 1 "$opt into /dev/full"
    "$dd" $opt >&- 2>stderr
    rc=$?
    want_status 1 "$opt with standard output closed"
  done
  "$dd" --list-layers >/dev/full 2>stderr
  rc=$?
  want_status 1 "--list-layers into /dev/full"
  want_one_line "deepdream: standard output: " "--list-layers into /dev/full"
  # An output that exists but cannot be read is dreamed again without a
  # spurious message.
  if [ "$(id -u)" = 0 ] && [ "$can_drop" = 1 ]; then
    mkdir -p unread_out && cp a.png unread_out/a.png && chmod 200 unread_out/a.png
    chown -R 65534:65534 unread_out
    as_nobody "${one[@]}" --skip-existing -o unread_out a.png
    want_status 0 "--skip-existing over an unreadable output (as nobody)"
    want_stderr_lacks "Permission denied" "--skip-existing over an unreadable output"
    want_summary 1 0 0 "--skip-existing over an unreadable output"
  else
    skip "not root with setpriv: the unreadable-output case"
  fi
  end
fi

# ---- memory does not grow with --octaves ---------------------------------------------------------------
if wanted memory; then
  begin memory
  if [ -x /usr/bin/time ]; then
    convert "$s/chelsea.png" -resize '256x256!' sq.png
    peak_run oct4.rss --octaves 4 --octave-scale 1.01 --steps 0 sq.png oct4.png 2>/dev/null
    peak_run oct32.rss --octaves 32 --octave-scale 1.01 --steps 0 sq.png oct32.png 2>/dev/null
    check "32 octaves: peak $(peak_kb oct32.rss) KiB within 16 MiB of 4 octaves' $(peak_kb oct4.rss) KiB" \
      test "$(peak_kb oct32.rss)" -le $(($(peak_kb oct4.rss) + 16384))
  else
    skip "no /usr/bin/time"
  fi
  end
fi

echo "test_hostile: $passed passed, $failed failed, $skipped skipped"
[ "$failed" = 0 ]
