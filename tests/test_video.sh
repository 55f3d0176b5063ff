#!/usr/bin/env bash
# deepdream --video end to end with real ffmpeg: clips in each pixel format
# through the colour conversion (--steps 0) checked by ffmpeg's own reader
# and PSNR, a real dream through ffmpeg pipes, a truncated clip, signals
# mid-clip, messages, memory over a long clip, a pan dreamed with carried
# detail (options, thread counts, progress), the infinite zoom.
#
# usage: test_video.sh DEEPDREAM [GROUP...]
#   GROUP: formats pipe truncated signal messages memory clip frames zoom (all
#   when none).
# Exits 77 (skipped) without ffmpeg and ffprobe.
set -u
if [ $# -lt 1 ]; then
  echo "usage: test_video.sh DEEPDREAM [GROUP...]" >&2
  exit 2
fi
dd=$(cd "$(dirname "$1")" && pwd)/$(basename "$1")
shift
groups=" $* "
top=$(cd "$(dirname "$0")/.." && pwd)
for tool in ffmpeg ffprobe; do
  command -v "$tool" >/dev/null || { echo "skip: $tool is not installed"; exit 77; }
done
export LC_ALL=C

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$work" || exit 1

. "$top/tests/harness.sh"
. "$top/tests/cli_helpers.sh"

# clip NAME PIX_FMT FRAMES [SIZE]: ffmpeg's test pattern as y4m.
clip() {
  ffmpeg -nostdin -v error -y -f lavfi -i "testsrc=size=${4:-96x64}:rate=5" -frames:v "$3" -pix_fmt "$2" \
    -f yuv4mpegpipe "$1"
}
# probe FILE: "width,height,rate,frames" as ffprobe reads them (strictly).
probe() {
  ffprobe -v error -f yuv4mpegpipe -count_frames -select_streams v:0 \
    -show_entries stream=width,height,r_frame_rate,nb_read_frames -of csv=p=0 "$1"
}
# decodes FILE: ffmpeg reads every frame without an error.
decodes() { [ -z "$(ffmpeg -nostdin -v error -f yuv4mpegpipe -i "$1" -f null - 2>&1)" ]; }
# psnr A B: ffmpeg's average PSNR over all planes and frames ("inf" when equal).
psnr() {
  ffmpeg -nostdin -f yuv4mpegpipe -i "$1" -f yuv4mpegpipe -i "$2" -lavfi psnr -f null - 2>&1 |
    sed -n 's/.*PSNR.* average:\([^ ]*\).*/\1/p'
}
# at_least VALUE MIN: VALUE (a number or inf) >= MIN.
at_least() { [ "$1" = inf ] || awk -v v="$1" -v m="$2" 'BEGIN { exit !(v + 0 >= m + 0) }'; }

if wanted formats; then
  begin formats
  # Measured on testsrc 96x64 (hard coloured edges: the worst case for
  # subsampled chroma, averaged down and bilinear up): yuv420p 33.0 dB,
  # yuv422p 32.5, yuv444p 75.2, gray inf (exact). Smooth content comes back
  # within 2 levels (tests/test_y4m.c).
  for case in yuv420p:C420jpeg:31 yuv422p:C422:31 yuv444p:C444:45 gray:Cmono:99; do
    IFS=: read -r pf tag min <<<"$case"
    clip "in-$pf.y4m" "$pf" 4
    run --video --steps 0 "in-$pf.y4m" "out-$pf.y4m"
    want_status 0 "$pf: --steps 0"
    want_quiet "$pf: --steps 0"
    check "$pf: ffmpeg decodes the output" decodes "out-$pf.y4m"
    want=$(probe "in-$pf.y4m") got=$(probe "out-$pf.y4m")
    check "$pf: size, rate and frames '$got', want '$want'" test "$got" = "$want" -a -n "$want"
    check "$pf: header kept ($(head -1 "out-$pf.y4m"))" test "$(head -1 "out-$pf.y4m")" = "$(head -1 "in-$pf.y4m")"
    check "$pf: chroma tag $tag" grep -q " $tag" <(head -1 "out-$pf.y4m")
    p=$(psnr "in-$pf.y4m" "out-$pf.y4m")
    echo "$pf: PSNR $p dB"
    if [ "$min" = 99 ]; then check "$pf: PSNR $p, want inf (exact)" test "$p" = inf
    else check "$pf: PSNR $p dB, want >= $min" at_least "$p" "$min"; fi
  done
  # The same through pipes, and the full-range flag ffmpeg writes for yuvj444p.
  ffmpeg -nostdin -v error -f lavfi -i testsrc=size=96x64:rate=5 -frames:v 3 -pix_fmt yuvj444p -strict -1 \
    -f yuv4mpegpipe - | "$dd" --video --steps 0 - - >full.y4m 2>"$work/stderr"
  rc=$?
  want_status 0 "yuvj444p through pipes"
  check "yuvj444p: XCOLORRANGE=FULL kept" grep -q "XCOLORRANGE=FULL" <(head -1 full.y4m)
  check "yuvj444p: 3 frames" test "$(probe full.y4m | cut -d, -f4)" = 3
  ffmpeg -nostdin -v error -f lavfi -i testsrc=size=96x64:rate=5 -frames:v 3 -pix_fmt yuvj444p -strict -1 \
    -f yuv4mpegpipe full-in.y4m
  p=$(psnr full-in.y4m full.y4m)
  echo "yuvj444p (full range): PSNR $p dB"
  check "yuvj444p: PSNR $p dB, want >= 45" at_least "$p" 45
  end
fi

if wanted pipe; then
  begin pipe
  # One real dream of a 2-frame clip, ffmpeg on both sides.
  ffmpeg -nostdin -v error -f lavfi -i testsrc=size=128x96:rate=5 -frames:v 2 -pix_fmt yuv420p \
    -f yuv4mpegpipe - | "$dd" --video --octaves 1 --steps 1 - - 2>"$work/stderr" |
    ffmpeg -v error -y -f yuv4mpegpipe -i - -f yuv4mpegpipe dream.y4m
  codes=("${PIPESTATUS[@]}")
  check "pipe: exit statuses ${codes[*]}, want 0 0 0" test "${codes[*]}" = "0 0 0"
  check "pipe: nothing on standard error: $(stderr_text)" test ! -s "$work/stderr"
  check "pipe: 2 frames of 128x96 at 5/1 ($(probe dream.y4m))" test "$(probe dream.y4m)" = "128,96,5/1,2"
  clip plain.y4m yuv420p 2 128x96
  p=$(psnr plain.y4m dream.y4m)
  echo "dream against its input: PSNR $p dB"
  check "pipe: the dream changed the frames (PSNR $p)" test "$p" != inf
  check "pipe: ... and is still the clip (PSNR $p >= 15)" at_least "$p" 15
  # The issue's own line: mp4 in, ffmpeg decoding, deepdream, ffmpeg
  # encoding H.264, mp4 out (when this ffmpeg has libx264).
  if ffmpeg -hide_banner -encoders 2>/dev/null | grep -q libx264; then
    ffmpeg -nostdin -v error -y -f lavfi -i testsrc=size=128x96:rate=5 -frames:v 3 -c:v libx264 -pix_fmt yuv420p in.mp4
    ffmpeg -nostdin -v error -i in.mp4 -f yuv4mpegpipe - | "$dd" --video --octaves 1 --steps 1 - - 2>"$work/stderr" |
      ffmpeg -v error -y -f yuv4mpegpipe -i - -c:v libx264 out.mp4
    codes=("${PIPESTATUS[@]}")
    check "mp4 to mp4: exit statuses ${codes[*]}, want 0 0 0" test "${codes[*]}" = "0 0 0"
    got=$(ffprobe -v error -count_frames -select_streams v:0 -show_entries stream=codec_name,width,height,nb_read_frames \
      -of csv=p=0 out.mp4)
    check "mp4 to mp4: H.264, 128x96, 3 frames ($got)" test "$got" = "h264,128,96,3"
  else
    echo "mp4 to mp4: skipped, this ffmpeg has no libx264"
  fi
  end
fi

if wanted truncated; then
  begin truncated
  clip four.y4m yuv420p 4
  header=$(head -1 four.y4m | wc -c)
  frame=$((6 + 96 * 64 * 3 / 2))
  head -c $((header + 2 * frame + 3000)) four.y4m >cut.y4m
  run --video --steps 0 cut.y4m cut-out.y4m
  want_status 1 "truncated clip"
  want_error cut.y4m "truncated clip"
  want_stderr_has "frame 3: truncated after 2994 of 9216 bytes" "truncated clip"
  check "truncated: the output decodes" decodes cut-out.y4m
  check "truncated: 2 good frames ($(probe cut-out.y4m))" test "$(probe cut-out.y4m)" = "96,64,5/1,2"
  no_leftovers . "truncated"
  # A malformed header: nothing written.
  printf 'YUV4MPEG2 W96 H64 C420p10\n' >bad.y4m
  run --video --steps 0 bad.y4m bad-out.y4m
  want_status 1 "bad header"
  want_error bad.y4m "bad header"
  want_stderr_has "C420p10: chroma format not supported" "bad header"
  absent bad-out.y4m "bad header"
  no_leftovers . "bad header"
  end
fi

if wanted signal; then
  begin signal
  # SIGTERM mid-dream: the frames written so far are a valid clip.
  clip long.y4m yuv420p 40 128x96
  "$dd" --video --progress --octaves 1 --steps 4 long.y4m sig.y4m 2>sig.err &
  pid=$!
  for _ in $(seq 300); do grep -q "frame 3" sig.err 2>/dev/null && break; sleep 0.1; done
  kill -TERM $pid
  wait $pid
  rc=$?
  check "SIGTERM mid-dream: exit $rc, want 143" test $rc = 143
  n=$(probe sig.y4m | cut -d, -f4)
  check "SIGTERM mid-dream: the output decodes" decodes sig.y4m
  echo "SIGTERM mid-dream: $n frames written"
  check "SIGTERM mid-dream: $n whole frames, want 2..39" test "${n:-0}" -ge 2 -a "${n:-0}" -lt 40
  no_leftovers . "SIGTERM mid-dream"
  # SIGTERM while waiting on a pipe between frames.
  mkfifo slow.fifo
  ( head -c $(($(head -1 long.y4m | wc -c) + 2 * (6 + 128 * 96 * 3 / 2) + 100)) long.y4m; sleep 20 ) >slow.fifo &
  feeder=$!
  "$dd" --video --steps 0 slow.fifo slow.y4m 2>slow.err &
  pid=$!
  sleep 1
  kill -TERM $pid
  wait $pid
  rc=$?
  kill $feeder 2>/dev/null
  wait $feeder 2>/dev/null
  check "SIGTERM while reading: exit $rc, want 143" test $rc = 143
  check "SIGTERM while reading: 2 frames ($(probe slow.y4m))" test "$(probe slow.y4m)" = "128,96,5/1,2"
  check "SIGTERM while reading: nothing on standard error: $(head -c 300 slow.err)" test ! -s slow.err
  end
fi

if wanted messages; then
  begin messages
  clip m.y4m yuv420p 1
  run --video -o outdir m.y4m
  want_status 2 "--video -o with a stream"
  want_stderr_has "m.y4m: a y4m stream: --video -o OUTDIR dreams image frames; stream it with --video INPUT OUTPUT" \
    "--video -o with a stream"
  absent outdir "--video -o with a stream"
  run --video --dry-run m.y4m m-out.y4m
  want_status 2 "--video --dry-run"
  want_stderr_has "--video streams one INPUT into one OUTPUT, or frames into -o OUTDIR" "--video --dry-run"
  run --video --steps 0 missing.y4m m-out.y4m
  want_status 1 "missing input"
  want_error missing.y4m "missing input"
  absent m-out.y4m "missing input"
  printf 'P6\n1 1\n255\nabc' >not.y4m
  run --video --steps 0 not.y4m m-out.y4m
  want_status 1 "not a y4m"
  want_stderr_has "not.y4m: not a YUV4MPEG2 stream" "not a y4m"
  run --video --steps 0 --max-pixels 1000 m.y4m m-out.y4m
  want_status 1 "over --max-pixels"
  want_error m.y4m "over --max-pixels"
  absent m-out.y4m "over --max-pixels"
  run --video --steps 0 m.y4m m-out.mp4
  want_status 2 "--video into .mp4"
  want_stderr_has "m-out.mp4: --video writes YUV4MPEG2: name it .y4m" "--video into .mp4"
  absent m-out.mp4 "--video into .mp4"
  run --video --steps 0 m.y4m m-out.Y4M
  want_status 0 "--video into .Y4M"
  run --video --steps 0 --quiet m.y4m m.y4m
  want_status 2 "output is the input"
  run --video --steps 0 --progress m.y4m m-out.y4m
  want_status 0 "--progress"
  want_stderr_has "m.y4m: frame 1" "--progress"
  end
fi

if wanted clip; then
  begin clip
  # A pan over a real photo: a 160x96 window moving 4 px a frame (even:
  # 4:2:0 chroma moves with it).
  ffmpeg -nostdin -v error -y -loop 1 -i "$top/samples/coffee.png" -vf "crop=160:96:'40+4*n':150" -frames:v 4 \
    -r 10 -pix_fmt yuv420p -f yuv4mpegpipe pan.y4m
  look=(--layers mixed3 --octaves 2 --steps 4)
  run --video "${look[@]}" --threads 1 pan.y4m pan1.y4m
  want_status 0 "clip, 1 thread"
  run --video "${look[@]}" --threads 2 --progress pan.y4m pan2.y4m
  want_status 0 "clip, 2 threads"
  check "clip: the same bytes for 1 and 2 threads" cmp -s pan1.y4m pan2.y4m
  check "clip: 4 frames of 160x96 ($(probe pan2.y4m))" test "$(probe pan2.y4m)" = "160,96,10/1,4"
  # Progress: the count from the file's size, then the rate and time left.
  want_stderr_has "pan.y4m: frame 1/4" "clip progress"
  check "clip progress: rate and time left ($(sed -n 3p "$work/stderr"))" \
    grep -Eq "pan.y4m: frame 3/4, [0-9.e+-]+ frames/s, [0-9hms]+ left" "$work/stderr"
  # Through a pipe the count is unknown: no total, no time left.
  "$dd" --video "${look[@]}" --progress - pipe.y4m <pan.y4m 2>"$work/stderr"
  check "clip through a pipe: progress without a count ($(sed -n 2p "$work/stderr"))" \
    grep -Eq "standard input: frame 2, [0-9.e+-]+ frames/s$" "$work/stderr"
  check "clip: a pipe gives the file's bytes" cmp -s pan1.y4m pipe.y4m
  # --blend 0 with every step: each frame is the still dream of that frame.
  run --video "${look[@]}" --blend 0 --frame-steps 4 pan.y4m alone.y4m
  want_status 0 "--blend 0"
  ffmpeg -nostdin -v error -y -f yuv4mpegpipe -i pan.y4m -vf "select=eq(n\,2)" -frames:v 1 -f yuv4mpegpipe third.y4m
  run --video "${look[@]}" third.y4m third-dream.y4m
  ffmpeg -nostdin -v error -y -f yuv4mpegpipe -i alone.y4m -vf "select=eq(n\,2)" -frames:v 1 -f yuv4mpegpipe third-alone.y4m
  p=$(psnr third-dream.y4m third-alone.y4m)
  check "--blend 0 --frame-steps 4: frame 3 is frame 3 dreamed alone (PSNR $p)" test "$p" = inf
  p=$(psnr pan1.y4m alone.y4m)
  check "the carried detail changed the clip (PSNR $p against --blend 0)" test "$p" != inf
  run --video --blend 1.5 pan.y4m x.y4m
  want_status 2 "--blend 1.5"
  want_stderr_has "--blend: '1.5' is not a number in 0..1" "--blend 1.5"
  run --video --frame-steps x pan.y4m x.y4m
  want_status 2 "--frame-steps x"
  want_stderr_has "--frame-steps: 'x' is not a number in 0..100000" "--frame-steps x"
  run --blend 0.5 "$top/samples/coffee.png" x.png
  want_status 2 "--blend without --video"
  want_stderr_has "--blend is for --video" "--blend without --video"
  absent x.png "--blend without --video"
  end
fi

if wanted frames; then
  begin frames
  # A directory of numbered frames: dreamed in the order of their numbers,
  # padded or not, as one clip; --skip-existing goes on from the last one
  # written with the same bytes.
  mkdir -p seq padded
  ffmpeg -nostdin -v error -y -loop 1 -i "$top/samples/coffee.png" -vf "crop=128:96:'40+4*n':150" -frames:v 11 \
    -f image2 seq/frame%d.png
  for i in $(seq 11); do cp "seq/frame$i.png" "padded/frame$(printf %02d "$i").png"; done
  look=(--layers mixed3 --octaves 2 --steps 3)
  run --video "${look[@]}" -o seq-out seq
  want_status 0 "frames"
  want_stderr_has "11 done, 0 skipped, 0 failed" "frames"
  run --video "${look[@]}" -o padded-out padded
  want_status 0 "padded frames"
  same=0
  for i in $(seq 11); do cmp -s "seq-out/frame$i.png" "padded-out/frame$(printf %02d "$i").png" && same=$((same + 1)); done
  check "frames: frame1..frame11 dreamed in number order, as frame01..frame11 ($same of 11 the same)" test $same = 11
  # In name order frame10 would follow frame1 and carry its detail.
  cp -r seq-out resumed
  rm resumed/frame8.png resumed/frame9.png resumed/frame10.png resumed/frame11.png
  run --video "${look[@]}" --skip-existing -o resumed seq
  want_status 0 "frames resumed"
  want_stderr_has "4 done, 7 skipped, 0 failed" "frames resumed"
  check "frames resumed: the same bytes as in one run" diff -r seq-out resumed
  # A frame of another size is another shot: a new clip starts there, and
  # again at the next size change; the first frame of each is its still
  # dream. A size change where a resume would go on is a new clip too.
  mkdir -p odd
  cp seq/frame1.png seq/frame2.png seq/frame3.png odd/
  ffmpeg -nostdin -v error -y -i seq/frame2.png -vf scale=120:90 odd/frame2.png
  run --video "${look[@]}" -o odd-out odd
  want_status 0 "frames of two sizes"
  want_stderr_has "odd/frame2.png: 120x90 after frames of 128x96: a new clip starts here" "frames of two sizes"
  want_stderr_has "odd/frame3.png: 128x96 after frames of 120x90: a new clip starts here" "frames of two sizes"
  want_stderr_has "3 done, 0 skipped, 0 failed" "frames of two sizes"
  "$dd" "${look[@]}" odd/frame3.png still3.png
  check "frames of two sizes: frame 3 is its still dream" \
    test "$(compare -metric AE still3.png odd-out/frame3.png null: 2>&1)" = 0
  # A resume from a written frame that does not fit its photo (another
  # size) starts afresh: the next frame is its still dream.
  cp -r seq-out broken
  rm broken/frame9.png broken/frame10.png broken/frame11.png
  ffmpeg -nostdin -v error -y -i seq/frame8.png -vf scale=64:48 broken/frame8.png
  run --video "${look[@]}" --skip-existing -o broken seq
  want_status 0 "resume from a broken frame"
  want_stderr_has "broken/frame8.png: cannot go on from it (photo 128x96 and dream 64x48 in a clip of 128x96)" \
    "resume from a broken frame"
  want_stderr_has "3 done, 8 skipped, 0 failed" "resume from a broken frame"
  "$dd" "${look[@]}" seq/frame9.png still9.png
  check "resume from a broken frame: frame 9 dreamed again as a still" \
    test "$(compare -metric AE still9.png broken/frame9.png null: 2>&1)" = 0
  run --video --shard 0/2 -o x seq
  want_status 2 "--video --shard"
  run --video --in-place seq/frame1.png
  want_status 2 "--video --in-place"
  run --zoom 1.1 seq/frame1.png a.y4m b.y4m
  want_status 2 "--zoom with three files"
  want_stderr_has "--zoom takes one PHOTO and one OUTPUT" "--zoom with three files"
  end
fi

if wanted zoom; then
  begin zoom
  ffmpeg -nostdin -v error -y -i "$top/samples/chelsea.png" -vf scale=150:100 small.png
  zoomed=(--layers mixed3 --octaves 1 --steps 2 --frame-steps 1)
  run --zoom 1.05 --rotate 2 --frames 5 "${zoomed[@]}" small.png zoom.y4m
  want_status 0 "--zoom"
  want_quiet "--zoom"
  check "--zoom: ffmpeg decodes it" decodes zoom.y4m
  check "--zoom: 5 frames of 150x100 at 25/s ($(probe zoom.y4m))" test "$(probe zoom.y4m)" = "150,100,25/1,5"
  # Into ffmpeg through a pipe, as the docs show.
  "$dd" --zoom 1.05 --frames 3 "${zoomed[@]}" small.png - 2>"$work/stderr" |
    ffmpeg -v error -y -f yuv4mpegpipe -i - -f yuv4mpegpipe zoom-pipe.y4m
  codes=("${PIPESTATUS[@]}")
  check "--zoom into a pipe: exit statuses ${codes[*]}, want 0 0" test "${codes[*]}" = "0 0"
  check "--zoom into a pipe: 3 frames ($(probe zoom-pipe.y4m))" test "$(probe zoom-pipe.y4m)" = "150,100,25/1,3"
  # The first frame is the photo's dream; the zoom then moves in.
  "$dd" --layers mixed3 --octaves 1 --steps 2 small.png still.png
  ffmpeg -nostdin -v error -y -i still.png -pix_fmt yuv420p -f yuv4mpegpipe still.y4m
  ffmpeg -nostdin -v error -y -f yuv4mpegpipe -i zoom.y4m -frames:v 1 -f yuv4mpegpipe first.y4m
  p=$(psnr still.y4m first.y4m)
  check "--zoom: frame 1 is the photo's dream (PSNR $p >= 40)" at_least "$p" 40
  for bad in "--zoom 0:--zoom: '0' is not a number in 0.1..10" "--zoom x:--zoom: 'x' is not a number" \
    "--rotate 500:--rotate: '500' is not a number of degrees" "--frames 0:--frames: '0' is not a number in 1..1000000" \
    "--zoom 1.1 --video:no --video" "--zoom 1.1 --blend 0.5:--blend is for --video"; do
    opts=${bad%%:*} msg=${bad#*:}
    # shellcheck disable=SC2086
    run $opts small.png zbad.y4m
    want_status 2 "$opts"
    want_stderr_has "$msg" "$opts"
    absent zbad.y4m "$opts"
  done
  run --zoom 1.1 small.png zoom.mp4
  want_status 2 "--zoom into .mp4"
  want_stderr_has "zoom.mp4: --zoom writes YUV4MPEG2" "--zoom into .mp4"
  absent zoom.mp4 "--zoom into .mp4"
  run --zoom 1.1 missing.png zm.y4m
  want_status 1 "--zoom of a missing photo"
  want_error missing.png "--zoom of a missing photo"
  absent zm.y4m "--zoom of a missing photo"
  # SIGTERM mid-zoom: the frames so far are a valid clip.
  "$dd" --zoom 1.02 --frames 200 --progress "${zoomed[@]}" small.png zsig.y4m 2>zsig.err &
  pid=$!
  for _ in $(seq 300); do grep -q "frame 3/200" zsig.err 2>/dev/null && break; sleep 0.1; done
  kill -TERM $pid
  wait $pid
  rc=$?
  n=$(probe zsig.y4m | cut -d, -f4)
  check "SIGTERM mid-zoom: exit $rc, want 143" test $rc = 143
  check "SIGTERM mid-zoom: it decodes" decodes zsig.y4m
  check "SIGTERM mid-zoom: $n whole frames, want 2..199" test "${n:-0}" -ge 2 -a "${n:-0}" -lt 200
  no_leftovers . "SIGTERM mid-zoom"
  end
fi

if wanted memory; then
  begin memory
  if [ -x /usr/bin/time ]; then
    clip short.y4m yuv420p 4 320x240
    clip longer.y4m yuv420p 80 320x240
    # Under AddressSanitizer freed frames wait in its quarantine (up to 256
    # MiB): with none, what stays is what the program holds.
    export ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}quarantine_size_mb=0"
    /usr/bin/time -f %M -o short.rss "$dd" --video --steps 0 short.y4m s.y4m
    /usr/bin/time -f %M -o longer.rss "$dd" --video --steps 0 longer.y4m l.y4m
    s=$(tail -1 short.rss) l=$(tail -1 longer.rss)
    echo "peak RSS: 4 frames $s KiB, 80 frames $l KiB"
    check "80 frames: peak $l KiB within 2 MiB of 4 frames' $s KiB" test "$l" -le $((s + 2048))
    # Dreamed through the clip (the flow's buffers, every octave's net):
    # made by the first frame, the same for the 40th (measured +56 KiB).
    clip few.y4m yuv420p 4 160x96
    clip many.y4m yuv420p 40 160x96
    /usr/bin/time -f %M -o few.rss "$dd" --video --octaves 2 --steps 1 --threads 1 few.y4m f.y4m
    /usr/bin/time -f %M -o many.rss "$dd" --video --octaves 2 --steps 1 --threads 1 many.y4m m.y4m
    s=$(tail -1 few.rss) l=$(tail -1 many.rss)
    echo "peak RSS dreaming: 4 frames $s KiB, 40 frames $l KiB"
    check "40 dreamed frames: peak $l KiB within 2 MiB of 4 frames' $s KiB" test "$l" -le $((s + 2048))
  else
    skip "no /usr/bin/time"
  fi
  end
fi

echo "test_video: $passed passed, $failed failed, $skipped skipped"
[ "$failed" = 0 ]
