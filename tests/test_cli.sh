#!/usr/bin/env bash
# End-to-end tests of the deepdream command: the built-in model, real files,
# real ImageMagick (convert, identify) on both sides of the pipes. Each case
# asserts the exit status, the standard error text and the output bytes or
# pixels; pixels are decoded by ImageMagick, not by the code under test.
#
# usage: test_cli.sh DEEPDREAM TEST_CLI_GRAD [GROUP...]
#   GROUP: setup is always run; then determinism formats identity channels metadata guide-replay
#   pipes tty options help input-errors output-errors tiny dry-run signals
#   gradient mask large (all when none is named).
# Exits 77 (skipped) without ImageMagick.
set -u
if [ $# -lt 2 ]; then
  echo "usage: test_cli.sh DEEPDREAM TEST_CLI_GRAD [GROUP...]" >&2
  exit 2
fi
dd=$(cd "$(dirname "$1")" && pwd)/$(basename "$1")
grad=$(cd "$(dirname "$2")" && pwd)/$(basename "$2")
shift 2
groups=" $* "
top=$(cd "$(dirname "$0")/.." && pwd)
version=$(sed -nE 's/^#define DD_VERSION_STRING "(.*)"/\1/p' "$top/include/deepdream.h")
for tool in convert identify; do
  command -v "$tool" >/dev/null || { echo "skip: ImageMagick's $tool is not installed"; exit 77; }
done
export LC_ALL=C # bytes, not characters, for grep on binary files

work=$(mktemp -d)
chmod 755 "$work" # the unwritable-directory case runs the CLI as another user
trap 'chmod -R u+w "$work" 2>/dev/null; rm -rf "$work"' EXIT
cd "$work" || exit 1
umask 022

. "$top/tests/harness.sh"

# run ARGS...: the CLI; status in $rc, standard output in $work/stdout,
# standard error in $work/stderr. Standard input is the caller's.
run() { "$dd" "$@" >"$work/stdout" 2>"$work/stderr"; rc=$?; }
stderr_text() { head -c 400 "$work/stderr" | tr '\r' ' '; }

want_status() { # N WHAT
  if [ "$rc" = "$1" ]; then pass; else fail "$2: exit $rc, want $1; stderr: $(stderr_text)"; fi
}
want_quiet() { # WHAT: nothing on standard error
  if [ ! -s "$work/stderr" ]; then pass; else fail "$1: unexpected standard error: $(stderr_text)"; fi
}
# want_error_line PREFIX WHAT: standard error is one line starting with PREFIX.
want_error_line() {
  local text lines
  text=$(cat "$work/stderr")
  lines=$(wc -l <"$work/stderr")
  if [ "$lines" = 1 ] && [ "$(tail -c 1 "$work/stderr" | od -An -c | tr -d ' ')" = '\n' ] &&
     [[ "$text" == "$1"* ]]; then
    pass
  else
    fail "$2: want one line starting '$1', got $lines line(s): $(stderr_text)"
  fi
}
want_stderr_has() { # TEXT WHAT
  if grep -qF -- "$1" "$work/stderr"; then pass; else fail "$2: standard error lacks '$1': $(stderr_text)"; fi
}
same_bytes() { # A B WHAT
  if cmp -s "$1" "$2"; then pass; else fail "$3: $1 and $2 differ ($(cmp "$1" "$2" 2>&1 | head -1))"; fi
}
differ_bytes() { # A B WHAT
  if [ -f "$1" ] && [ -f "$2" ] && ! cmp -s "$1" "$2"; then pass; else fail "$3: $1 and $2 are the same (or missing)"; fi
}
absent() { # PATH WHAT
  if [ ! -e "$1" ]; then pass; else fail "$2: $1 exists"; fi
}
no_leftovers() { # DIR WHAT: no temporary file of ours
  local left
  left=$(find "$1" -maxdepth 1 -name '*.deepdream-*' | head -3)
  if [ -z "$left" ]; then pass; else fail "$2: temporary file left: $left"; fi
}

# Decoding by ImageMagick. rgba: every channel, 16 bits (8-bit samples x 257).
pixels() { convert "$1" -depth 16 rgba:-; }
colour() { convert "$1" -alpha off -depth 16 rgb:-; }
alpha() { convert "$1" -alpha extract -depth 16 gray:-; }
same_pixels() { # A B WHAT
  if [ -f "$1" ] && [ -f "$2" ] && cmp -s <(pixels "$1") <(pixels "$2"); then pass; else fail "$3: pixels of $1 and $2 differ"; fi
}
differ_pixels() { # A B WHAT: both decode to the same size, with other colours
  colour "$1" >"$work/colour_a" 2>/dev/null
  colour "$2" >"$work/colour_b" 2>/dev/null
  if [ -s "$work/colour_a" ] && [ "$(stat -c %s "$work/colour_a")" = "$(stat -c %s "$work/colour_b")" ] &&
     ! cmp -s "$work/colour_a" "$work/colour_b"; then
    pass
  else
    fail "$3: colours of $1 and $2 are the same (or one does not decode)"
  fi
}
dims() { identify -format '%wx%h' "$1" 2>&1; }
want_dims() { # FILE WxH WHAT
  local got
  got=$(dims "$1")
  if [ "$got" = "$2" ]; then pass; else fail "$3: $1 is '$got', want $2"; fi
}
magic() { head -c 4 "$1" | od -An -tx1 | tr -d ' \n'; }
want_magic() { # FILE png|jpeg|ppm|pgm|pam WHAT
  local m want
  m=$(magic "$1")
  case $2 in
    png) want=89504e47 ;; jpeg) want=ffd8ff ;; ppm) want=5036 ;; pgm) want=5035 ;; pam) want=5037 ;;
  esac
  if [[ "$m" == "$want"* ]]; then pass; else fail "$3: $1 starts with $m, want $2 ($want)"; fi
}
# PNG bit depth and colour type, from IHDR: "8 2" RGB, "8 6" RGBA, "8 0" grey...
ihdr() { od -An -tu1 -j24 -N2 "$1" | awk '{print $1, $2}'; }
want_ihdr() { # FILE "DEPTH TYPE" WHAT
  local got
  got=$(ihdr "$1")
  if [ "$got" = "$2" ]; then pass; else fail "$3: $1 has PNG depth/colour type '$got', want '$2'"; fi
}
# PNM/PAM header lines without comments.
pnm_header() { head -c 512 "$1" | tr -d '\000' | grep -av '^#' | head -"${2:-3}"; }

fast=(--octaves 2 --steps 2)
one=(--octaves 1 --steps 1)

# ---- setup: the test pictures, from a photo in samples/ --------------------
src=$top/samples/chelsea.png
size=160x120
convert "$src" -resize "$size!" -strip PNG24:rgb.png
convert rgb.png -quality 90 rgb.jpg
convert rgb.png ppm:rgb.ppm
convert rgb.png pam:rgb.pam
convert rgb.png -colorspace Gray -define png:color-type=0 grey.png
convert grey.png pgm:grey.pgm
convert grey.png -quality 90 grey.jpg
convert rgb.png -depth 16 PNG48:rgb16.png
convert rgb16.png -depth 16 ppm:rgb16.ppm
convert -size "$size" gradient:white-black -alpha off mask.png
convert rgb.png mask.png -alpha off -compose CopyOpacity -composite PNG32:rgba.png
convert rgba.png -depth 16 PNG64:rgba16.png
convert grey.png mask.png -alpha off -compose CopyOpacity -composite -define png:color-type=4 greya.png
convert rgba.png pam:rgba.pam
convert rgb.png PNG8:palette.png
convert rgb.png -interlace PNG PNG24:interlaced.png
convert rgb.png -interlace JPEG -quality 90 progressive.jpg
convert rgb.png -resize '96x80!' small.png
convert rgb.png -resize '8x8!' tiny.png
convert rgb.png -resize '1x1!' pixel.ppm
check "setup: rgb.png is 8-bit RGB" test "$(ihdr rgb.png)" = "8 2"
check "setup: grey.png is 8-bit grey" test "$(ihdr grey.png)" = "8 0"
check "setup: rgb16.png is 16-bit RGB" test "$(ihdr rgb16.png)" = "16 2"
check "setup: rgba.png is 8-bit RGBA" test "$(ihdr rgba.png)" = "8 6"
check "setup: rgba16.png is 16-bit RGBA" test "$(ihdr rgba16.png)" = "16 6"
check "setup: greya.png is 8-bit grey+alpha" test "$(ihdr greya.png)" = "8 4"
check "setup: palette.png is a palette PNG" test "$(ihdr palette.png)" = "8 3"
check "setup: grey.pgm is P5" test "$(magic grey.pgm | head -c 4)" = 5035
check "setup: rgb.pam is P7 RGB" grep -qa '^TUPLTYPE RGB$' <(head -c 200 rgb.pam)
check "setup: rgba.pam is P7 RGB_ALPHA" grep -qa '^TUPLTYPE RGB_ALPHA$' <(head -c 200 rgba.pam)
check "setup: grey.jpg is one-channel" test "$(identify -format '%[channels]' grey.jpg)" = gray
check "setup: rgb16.ppm has maxval 65535" test "$(pnm_header rgb16.ppm | sed -n 3p)" = 65535

# ---- determinism -----------------------------------------------------------
if wanted determinism; then
  begin determinism
  run "${fast[@]}" --seed 5 rgb.png det_a.png
  want_status 0 "seed 5"
  want_quiet "a run writing a file prints nothing when standard error is not a terminal"
  run "${fast[@]}" --seed 5 rgb.png det_b.png
  same_bytes det_a.png det_b.png "same input, options and seed twice"
  run "${fast[@]}" --seed 6 rgb.png det_c.png
  want_status 0 "seed 6"
  differ_bytes det_a.png det_c.png "another seed gives another dream"
  differ_pixels rgb.png det_a.png "the dream changes the picture"
  want_dims det_a.png "$size" "output size"
  run "${fast[@]}" --seed 5 --threads 1 rgb.png det_t1.png
  run "${fast[@]}" --seed 5 --threads 2 rgb.png det_t2.png
  same_bytes det_t1.png det_t2.png "--threads 1 and --threads 2"
  same_bytes det_a.png det_t1.png "--threads 0 (all cores) and --threads 1"
  # Several tiles (64 px on 160x120: 3 x 2) with their random grid shift.
  run "${fast[@]}" --seed 5 --tile 64 --threads 1 rgb.png det_tile1.png
  want_status 0 "--tile 64"
  run "${fast[@]}" --seed 5 --tile 64 --threads 2 rgb.png det_tile2.png
  same_bytes det_tile1.png det_tile2.png "tiled: --threads 1 and --threads 2"
  run "${fast[@]}" --seed 5 --tile 64 --threads 2 rgb.png det_tile3.png
  same_bytes det_tile2.png det_tile3.png "tiled: same seed twice"
  differ_bytes det_a.png det_tile1.png "a different tile size is a different computation"

  # DD_CPU caps the kernels. At every level the CPU has: 1, 2 and 3 threads
  # give the same bytes, in fast and exact mode, and the output's comment
  # names the level. AVX2 and AVX-512 run the same arithmetic in float32.
  flags=$(grep -m1 '^flags' /proc/cpuinfo 2>/dev/null)
  levels=plain
  if [[ " $flags " == *" avx2 "* && " $flags " == *" fma "* ]]; then levels="$levels avx2"; fi
  if [[ " $flags " == *" avx512f "* ]]; then levels="$levels avx512"; fi
  if [[ " $flags " == *" avx512bw "* && " $flags " == *" avx512_bf16 "* ]]; then levels="$levels avx512bf16"; fi
  for level in $levels; do
    for mode in fast exact; do
      for t in 1 2 3; do
        DD_CPU=$level run "${fast[@]}" --$mode --seed 5 --tile 64 --threads $t rgb.png "det_${level}_${mode}_$t.png"
        want_status 0 "DD_CPU=$level --$mode --threads $t"
      done
      same_bytes "det_${level}_${mode}_1.png" "det_${level}_${mode}_2.png" "DD_CPU=$level --$mode: --threads 1 and 2"
      same_bytes "det_${level}_${mode}_1.png" "det_${level}_${mode}_3.png" "DD_CPU=$level --$mode: --threads 1 and 3"
    done
    want_dims "det_${level}_exact_1.png" "$size" "DD_CPU=$level: the output decodes"
    comment=$(identify -format '%c' "det_${level}_exact_1.png" 2>&1)
    check "DD_CPU=$level: the comment names the kernels ($comment)" grep -q " kernels=$level " <<<"$comment"
  done
  # The library finds the level /proc/cpuinfo gives; DD_CPU only lowers it,
  # and an empty DD_CPU is no cap.
  own=${levels##* }
  env -u DD_CPU "$dd" "${one[@]}" rgb.png det_own.png >"$work/stdout" 2>"$work/stderr"
  rc=$?
  want_status 0 "DD_CPU unset"
  comment=$(identify -format '%c' det_own.png 2>&1)
  check "DD_CPU unset: kernels=$own, as /proc/cpuinfo says ($comment)" grep -q " kernels=$own " <<<"$comment"
  for cap in avx512bf16 ""; do
    DD_CPU=$cap run "${one[@]}" rgb.png det_cap.png
    want_status 0 "DD_CPU='$cap'"
    comment=$(identify -format '%c' det_cap.png 2>&1)
    check "DD_CPU='$cap' on a $own CPU: kernels=$own ($comment)" grep -q " kernels=$own " <<<"$comment"
    rm -f det_cap.png
  done
  if [[ " $levels " == *" avx512 "* ]]; then
    same_pixels det_avx2_exact_1.png det_avx512_exact_1.png "--exact: AVX2 and AVX-512 give the same pixels"
  fi
  for bad in bogus AVX2 "avx2 " sse4; do
    DD_CPU=$bad run "${one[@]}" rgb.png det_bad.png
    want_status 2 "DD_CPU='$bad'"
    want_error_line "deepdream: DD_CPU=$bad: not one of plain, avx2, avx512, avx512bf16" "DD_CPU='$bad'"
    absent det_bad.png "DD_CPU='$bad': no output"
  done
  DD_CPU=bogus run --list-layers
  want_status 2 "DD_CPU=bogus --list-layers"
  end
fi

# ---- formats in and out ----------------------------------------------------
if wanted formats; then
  begin formats
  for in in rgb.png rgb.jpg rgb.ppm grey.pgm rgb.pam; do
    for ext in png jpg ppm pgm pnm pam; do
      out=fmt_${in%.*}_${in##*.}.$ext
      run "${one[@]}" "$in" "$out"
      want_status 0 "$in -> .$ext"
      want_quiet "$in -> .$ext"
      # .ppm is colour and .pgm grey, as the names say; .pnm is either.
      case $ext in jpg) kind=jpeg ;; pnm) kind=ppm ;; *) kind=$ext ;; esac
      [ "$in" = grey.pgm ] && [ "$ext" = pnm ] && kind=pgm
      want_magic "$out" "$kind" "$in -> .$ext"
      want_dims "$out" "$size" "$in -> .$ext"
    done
  done
  differ_pixels rgb.ppm fmt_rgb_ppm.ppm "PPM in -> PPM out: dreamed"
  # Upper-case and alternative extensions.
  for pair in OUT.PNG:png OUT.JPG:jpeg out.jpeg:jpeg out.pnm:ppm out.PAM:pam; do
    run "${one[@]}" rgb.png "${pair%%:*}"
    want_status 0 "extension ${pair%%:*}"
    want_magic "${pair%%:*}" "${pair##*:}" "extension ${pair%%:*}"
  done
  # FMT: prefixes, to files without an extension and to standard output.
  for pair in png:png jpg:jpeg jpeg:jpeg ppm:ppm pam:pam PNG:png; do
    fmt=${pair%%:*}
    run "${one[@]}" rgb.png "$fmt:noext_$fmt"
    want_status 0 "$fmt:FILE"
    want_magic "noext_$fmt" "${pair##*:}" "$fmt:FILE"
    absent "$fmt:noext_$fmt" "$fmt:FILE must not create a file named with the prefix"
    run "${one[@]}" rgb.png "$fmt:-"
    want_status 0 "$fmt:-"
    want_magic stdout "${pair##*:}" "$fmt:- writes to standard output"
    cp stdout "stdout_$fmt"
    want_dims "stdout_$fmt" "$size" "$fmt:-"
    want_quiet "$fmt:-"
  done
  # '-' alone: the input's own format.
  run "${one[@]}" rgb.jpg -
  want_status 0 "JPEG in, - out"
  want_magic stdout jpeg "JPEG in, '-' out is JPEG"
  # The format comes from the content, not the name.
  cp rgb.png png_named.jpg
  cp rgb.jpg jpeg_named.png
  cp rgb.ppm ppm_named.png
  run "${one[@]}" rgb.png by_name.png
  run "${one[@]}" png_named.jpg by_content.png
  want_status 0 "a PNG named .jpg"
  same_bytes by_name.png by_content.png "a PNG named .jpg dreams as the PNG"
  run "${one[@]}" png_named.jpg -
  want_magic stdout png "a PNG named .jpg, '-' out: PNG (the decoded format)"
  run "${one[@]}" rgb.jpg jpeg_by_name.png
  run "${one[@]}" jpeg_named.png jpeg_by_content.png
  want_status 0 "a JPEG named .png"
  same_bytes jpeg_by_name.png jpeg_by_content.png "a JPEG named .png dreams as the JPEG"
  run "${one[@]}" ppm_named.png ppm_by_content.png
  want_status 0 "a PPM named .png"
  same_bytes fmt_rgb_ppm.png ppm_by_content.png "a PPM named .png dreams as the PPM"
  # Variants of the formats.
  run "${one[@]}" interlaced.png interlaced_out.png
  want_status 0 "interlaced PNG"
  same_pixels by_name.png interlaced_out.png "interlaced PNG: same pixels, same dream"
  run "${one[@]}" progressive.jpg progressive_out.png
  want_status 0 "progressive JPEG"
  want_dims progressive_out.png "$size" "progressive JPEG"
  run "${one[@]}" palette.png palette_out.png
  want_status 0 "palette PNG"
  want_ihdr palette_out.png "8 2" "palette PNG in -> RGB PNG out"
  run "${one[@]}" rgb16.ppm rgb16_out.ppm
  want_status 0 "16-bit PPM"
  check "16-bit PPM in -> maxval 65535 out" test "$(pnm_header rgb16_out.ppm | sed -n 3p)" = 65535
  # JPEG quality.
  run "${one[@]}" --quality 20 rgb.png q20.jpg
  want_status 0 "--quality 20"
  check "--quality 20 is written as quality 20" test "$(identify -format '%Q' q20.jpg)" = 20
  check "default quality is 92" test "$(identify -format '%Q' fmt_rgb_png.jpg)" = 92
  end
fi

# ---- no steps: every decoder and encoder, pixel for pixel --------------------
# With --steps 0 nothing is dreamed: the output must hold the very pixels
# ImageMagick decodes from the input (JPEG too: same libjpeg, same IDCT).
if wanted identity; then
  begin identity
  for in in rgb.png rgb.jpg rgb.ppm rgb.pam grey.png grey.pgm grey.jpg rgb16.png rgb16.ppm rgba.png \
            rgba16.png greya.png rgba.pam palette.png interlaced.png progressive.jpg; do
    for ext in png pam; do
      run --steps 0 --octaves 3 "$in" "id_${in%.*}_${in##*.}.$ext"
      want_status 0 "--steps 0: $in -> .$ext"
      same_pixels "$in" "id_${in%.*}_${in##*.}.$ext" "--steps 0: $in -> .$ext keeps every pixel"
    done
  done
  run --steps 0 rgb.png id_rgb.ppm
  same_pixels rgb.png id_rgb.ppm "--steps 0: PNG -> PPM keeps every pixel"
  run --steps 0 rgb16.png id_rgb16.ppm
  same_pixels rgb16.png id_rgb16.ppm "--steps 0: 16-bit PNG -> 16-bit PPM keeps every pixel"
  end
fi

# ---- channels and depth ----------------------------------------------------
if wanted channels; then
  begin channels
  run "${one[@]}" rgba.png rgba_out.png
  want_status 0 "RGBA PNG"
  want_ihdr rgba_out.png "8 6" "RGBA PNG in -> RGBA PNG out"
  check "RGBA: alpha identical" cmp -s <(alpha rgba.png) <(alpha rgba_out.png)
  differ_pixels rgba.png rgba_out.png "RGBA: colour dreamed"
  run "${one[@]}" rgba16.png rgba16_out.png
  want_status 0 "16-bit RGBA PNG"
  want_ihdr rgba16_out.png "16 6" "16-bit RGBA in -> 16-bit RGBA out"
  check "16-bit RGBA: alpha identical" cmp -s <(alpha rgba16.png) <(alpha rgba16_out.png)
  run "${one[@]}" greya.png greya_out.png
  want_status 0 "grey+alpha PNG"
  want_ihdr greya_out.png "8 4" "grey+alpha in -> grey+alpha out"
  check "grey+alpha: alpha identical" cmp -s <(alpha greya.png) <(alpha greya_out.png)
  differ_pixels greya.png greya_out.png "grey+alpha: grey dreamed"
  run "${one[@]}" rgba.pam rgba_out.pam
  want_status 0 "RGB_ALPHA PAM"
  check "RGB_ALPHA PAM in -> RGB_ALPHA PAM out" grep -qa '^TUPLTYPE RGB_ALPHA$' <(head -c 512 rgba_out.pam)
  check "RGB_ALPHA PAM: alpha identical" cmp -s <(alpha rgba.pam) <(alpha rgba_out.pam)
  run "${one[@]}" rgba.png rgba_out.jpg
  want_status 0 "RGBA PNG -> JPEG (no alpha there)"
  want_magic rgba_out.jpg jpeg "RGBA PNG -> JPEG"
  run "${one[@]}" rgb16.png rgb16_out.png
  want_status 0 "16-bit PNG"
  want_ihdr rgb16_out.png "16 2" "16-bit RGB in -> 16-bit RGB out"
  # The input is 8-bit data in 16 bits (every sample a multiple of 257); a
  # real 16-bit dream leaves most samples off that grid.
  n16=$(convert rgb16_out.png -depth 16 -endian MSB rgb:- | od -An -v -tu1 -w2 | awk '$1 != $2 {n++} END {print n + 0}')
  check "16-bit out carries 16-bit precision ($n16 of 57600 samples off the 8-bit grid)" test "$n16" -gt 28800
  run "${one[@]}" grey.png grey_out.png
  want_status 0 "grey PNG"
  want_ihdr grey_out.png "8 0" "grey PNG in -> grey PNG out"
  differ_pixels grey.png grey_out.png "grey PNG dreamed"
  run "${one[@]}" grey.pgm grey_out.pgm
  want_magic grey_out.pgm pgm "PGM in -> P5 out"
  differ_pixels grey.pgm grey_out.pgm "PGM dreamed"
  run "${one[@]}" grey.pgm grey_out.pam
  check "PGM in -> GRAYSCALE PAM out" grep -qa '^TUPLTYPE GRAYSCALE$' <(head -c 512 grey_out.pam)
  run "${one[@]}" grey.jpg grey_out.jpg
  want_status 0 "grey JPEG"
  check "grey JPEG in -> one-channel JPEG out" test "$(identify -format '%[channels]' grey_out.jpg)" = gray
  run "${one[@]}" grey.png grey_out.jpg
  check "grey PNG in -> one-channel JPEG out" test "$(identify -format '%[channels]' grey_out.jpg)" = gray
  end
fi

# ---- metadata --------------------------------------------------------------
if wanted metadata; then
  begin metadata
  for ext in png jpg ppm pam; do
    run "${one[@]}" --layers mixed2 --seed 7 rgb.png "meta.$ext"
    want_status 0 "metadata .$ext"
    comment=$(identify -format '%c' "meta.$ext" 2>&1)
    for word in "deepdream $version" "layers=mixed2" "seed=7" "octaves=1" "steps=1"; do
      check "$ext comment has '$word' (comment: $comment)" grep -qF -- "$word" <<<"$comment"
    done
  done
  check "PNG: a tEXt chunk with keyword Comment" grep -qa 'tEXtComment' meta.png
  check "JPEG: a COM marker" grep -qaP '\xff\xfe..deepdream' meta.jpg
  check "PPM: a header comment" test "$(head -c 512 meta.ppm | sed -n 2p | head -c 11)" = "# deepdream"
  end
fi

# ---- pipelines -------------------------------------------------------------
if wanted pipes; then
  begin pipes
  convert rgb.png ppm:- >from_im.ppm
  run "${fast[@]}" from_im.ppm pipe_file.png
  want_status 0 "file to file"
  convert rgb.png ppm:- | "$dd" "${fast[@]}" - png:- 2>pipe.err | convert - pipe_im.png
  st=("${PIPESTATUS[@]}")
  check "convert | deepdream - png:- | convert: statuses ${st[*]}" test "${st[*]}" = "0 0 0"
  check "pipeline: nothing on standard error" test ! -s pipe.err
  same_pixels pipe_file.png pipe_im.png "pipeline through ImageMagick = file to file"
  convert rgb.png ppm:- | "$dd" "${fast[@]}" - png:- >pipe_direct.png 2>pipe.err
  same_bytes pipe_file.png pipe_direct.png "convert | deepdream - png:- writes the same bytes as to a file"
  convert rgb.png jpg:- | "$dd" "${one[@]}" - jpg:- 2>pipe.err | convert - pipe_jpeg.png
  st=("${PIPESTATUS[@]}")
  check "JPEG through pipes: statuses ${st[*]}" test "${st[*]}" = "0 0 0"
  want_dims pipe_jpeg.png "$size" "JPEG through pipes"
  run "${one[@]}" - - <rgb.ppm
  want_status 0 "'- -' with PPM in"
  cp stdout pipe_dash.out
  want_magic pipe_dash.out ppm "'- -' keeps the input's format"
  # Input arriving in pieces, split inside the header and in the data.
  for f in rgb.png rgb.jpg rgb.ppm; do
    run "${fast[@]}" "$f" "chunk_ref_${f%.*}_${f##*.}.png"
    run "${fast[@]}" - chunk.png < <(head -c 5 "$f"; sleep 0.1; head -c 100 "$f" | tail -c +6; sleep 0.1
                                      tail -c +101 "$f" | head -c 3000; sleep 0.1; tail -c +3101 "$f")
    want_status 0 "$f in pieces through a pipe"
    same_bytes "chunk_ref_${f%.*}_${f##*.}.png" chunk.png "$f in pieces = from the file"
  done
  run "${one[@]}" - empty_stdin.png </dev/null
  want_status 1 "empty standard input"
  want_error_line "deepdream: standard input: " "empty standard input"
  absent empty_stdin.png "empty standard input"
  end
fi

# ---- a terminal on standard output ------------------------------------------
if wanted tty; then
  begin tty
  if command -v script >/dev/null && script -qec true /dev/null </dev/null >/dev/null 2>&1; then
    # The terminal also by its names: /dev/tty, /dev/stdout, /dev/fd/1.
    for out in - png:- jpg:- png:/dev/tty png:/dev/stdout png:/dev/fd/1; do
      script -qec "$(printf '%q ' "$dd" "${one[@]}" rgb.png "$out")" /dev/null </dev/null >tty.txt 2>&1
      rc=$?
      check "$out to a terminal: exit $rc, want 2" test "$rc" = 2
      check "$out to a terminal: message" grep -qa '^deepdream: .*terminal' tty.txt
      check "$out to a terminal: no image bytes written" test "$(grep -ca -e IHDR -e JFIF tty.txt)" = 0
    done
    # Standard input on a terminal: refused at once, not waited on.
    script -qec "$(printf '%q ' timeout 20 "$dd" "${one[@]}" - tty_in.png)" /dev/null </dev/null >tty.txt 2>&1
    rc=$?
    check "a terminal on standard input: exit $rc, want 2" test "$rc" = 2
    check "a terminal on standard input: message" grep -qa '^deepdream: standard input: a terminal' tty.txt
    script -qec "$(printf '%q ' "$dd" "${one[@]}" rgb.png tty_file.png)" /dev/null </dev/null >tty.txt 2>&1
    rc=$?
    check "terminal on stdout, file output: exit $rc, want 0" test "$rc" = 0
    want_magic tty_file.png png "terminal on stdout, file output"
    check "progress shown on a terminal" grep -qa 'octave 1/1, step 1/1' tty.txt
    script -qec "$(printf '%q ' "$dd" "${one[@]}" --quiet rgb.png tty_file.png)" /dev/null </dev/null >tty.txt 2>&1
    check "--quiet: no progress on a terminal" test ! -s tty.txt
  else
    skip "script(1) is missing or cannot open a pseudo-terminal: the terminal cases are not run"
  fi
  end
fi

# ---- option errors -----------------------------------------------------------
# usage_case WANT_IN_MESSAGE ARGS...: exit 2, one line "deepdream: ...", the
# text named, and no output written.
usage_case() {
  local want=$1; shift
  rm -f usage_out.png
  run "$@"
  want_status 2 "usage error: $*"
  want_error_line "deepdream: " "usage error: $*"
  want_stderr_has "$want" "usage error: $*"
  absent usage_out.png "usage error: $*"
}
if wanted options; then
  begin options
  usage_case "'--bogus'" --bogus rgb.png usage_out.png
  usage_case "'-Z'" -Z rgb.png usage_out.png
  usage_case "'-Z'" -Zs 3 rgb.png usage_out.png
  usage_case "--steps" rgb.png usage_out.png --steps
  usage_case "'-s'" rgb.png usage_out.png -s
  usage_case "--steps" --steps -1 rgb.png usage_out.png
  usage_case "--steps" --steps=-1 rgb.png usage_out.png
  usage_case "--steps" --steps 1.5 rgb.png usage_out.png
  usage_case "--steps" --steps 99999999999999999999 rgb.png usage_out.png
  usage_case "--octaves" --octaves 0 rgb.png usage_out.png
  usage_case "--octaves" --octaves 33 rgb.png usage_out.png
  usage_case "--octave-scale" --octave-scale 0.5 rgb.png usage_out.png
  usage_case "--quality" --quality 101 rgb.png usage_out.png
  usage_case "--quality" --quality 0 rgb.png usage_out.png
  usage_case "--step-size" --step-size abc rgb.png usage_out.png
  usage_case "--step-size" --step-size -0.1 rgb.png usage_out.png
  usage_case "--step-size" --step-size nan rgb.png usage_out.png
  usage_case "--jitter" --jitter -1 rgb.png usage_out.png
  usage_case "--tile" --tile 10 rgb.png usage_out.png
  usage_case "--threads" --threads x rgb.png usage_out.png
  usage_case "--seed" --seed -3 rgb.png usage_out.png
  usage_case "--seed" --seed abc rgb.png usage_out.png
  usage_case "--max-pixels" --max-pixels abc rgb.png usage_out.png
  usage_case "out.xyz" rgb.png out.xyz
  # Only a format's name is a prefix: foo:usage_out is a name without a
  # format (foo:usage_out.png would be a PNG of that name).
  usage_case "foo:usage_out" rgb.png foo:usage_out
  usage_case "--seed" --seed ' 3' rgb.png usage_out.png
  usage_case "--octaves" --octaves ' 2' rgb.png usage_out.png
  usage_case "png:" rgb.png png:
  usage_case "INPUT and OUTPUT"
  usage_case "INPUT and OUTPUT" rgb.png
  usage_case "too many" rgb.png usage_out.png extra.png
  # Found before any work: a usage error wins over a missing input.
  usage_case "--steps" --steps -1 missing.png usage_out.png
  usage_case "out.xyz" missing.png out.xyz
  # Layers.
  usage_case "mixed9" --layers mixed9 rgb.png usage_out.png
  for layer in mixed0 mixed1 mixed2 mixed3 mixed4 mixed5 conv2d_1 activation_1; do
    check "unknown layer: the message lists $layer" grep -qw -- "$layer" "$work/stderr"
  done
  usage_case "mixed9" --layers mixed9 missing.png usage_out.png
  usage_case "9999" --layers mixed4:9999 rgb.png usage_out.png
  usage_case "abc" --layers mixed3=abc rgb.png usage_out.png
  # Valid layer specs work.
  run "${one[@]}" --layers mixed2=0.5,mixed4:97 rgb.png layers_ok.png
  want_status 0 "--layers mixed2=0.5,mixed4:97"
  end
fi

# ---- help, version, list of layers -------------------------------------------
if wanted help; then
  begin help
  run --help
  want_status 0 "--help"
  want_quiet "--help"
  cp stdout help.txt
  run -h
  same_bytes help.txt stdout "-h = --help"
  for opt in layers list-layers octaves octave-scale steps step-size jitter tile seed quality max-pixels \
             model threads mask invert-mask preserve-colors guide replay preset list-presets dry-run quiet help \
             version video blend frame-steps zoom rotate frames fast exact; do
    check "--help lists --$opt" grep -qE -- "--$opt\b" help.txt
  done
  check "--help marks --fast as the default" grep -qE -- "--fast +\(the default\)" help.txt
  # Every option with a value has its default, except --model (built in).
  for opt in layers octaves octave-scale steps step-size jitter tile seed quality max-pixels threads; do
    check "--help gives the default of --$opt" grep -qE -- "--$opt .*\(default [^)]+\)" help.txt
  done
  # The defaults printed are the real ones: the options spelled out with
  # the values --help gives dream the same bytes as no options.
  explicit=()
  for opt in layers octaves octave-scale steps step-size jitter tile seed quality threads; do
    value=$(grep -E -- "--$opt " help.txt | sed -nE 's/.*\(default ([^)]+)\).*/\1/p' | head -1)
    explicit+=("--$opt" "$value")
  done
  run small.png defaults_implicit.jpg
  want_status 0 "no options"
  run "${explicit[@]}" small.png defaults_explicit.jpg
  want_status 0 "the defaults from --help: ${explicit[*]}"
  same_bytes defaults_implicit.jpg defaults_explicit.jpg "the defaults --help prints are the defaults (${explicit[*]})"
  run --version
  want_status 0 "--version"
  want_quiet "--version"
  check "--version prints 'deepdream $version' (got '$(head -c 100 stdout)')" test "$(cat stdout)" = "deepdream $version"
  run -V
  check "-V = --version" test "$(cat stdout)" = "deepdream $version"
  run --list-layers
  want_status 0 "--list-layers"
  for pair in mixed0:256 mixed1:288 mixed2:288 mixed3:768 mixed4:768 mixed5:768; do
    check "--list-layers: ${pair%%:*} with ${pair##*:} channels" grep -qE "^${pair%%:*} +${pair##*:}$" stdout
  done
  end
fi

# ---- input that cannot be read -------------------------------------------------
# input_case PATH: exit 1, "deepdream: PATH: ...", nothing in outdir, and
# an existing output untouched.
input_case() {
  local path=$1; shift
  rm -rf outdir && mkdir outdir && cp rgb.png outdir/keep.png
  run "${one[@]}" "$@" "$path" outdir/new.png
  want_status 1 "unreadable input $path"
  want_error_line "deepdream: $path: " "unreadable input $path"
  absent outdir/new.png "unreadable input $path"
  no_leftovers outdir "unreadable input $path"
  run "${one[@]}" "$@" "$path" outdir/keep.png
  same_bytes rgb.png outdir/keep.png "unreadable input $path: an existing output is left as it was"
}
if wanted input-errors; then
  begin input-errors
  mkdir -p adir
  : >empty.png
  head -c 3000 /dev/urandom >random.bin
  size_png=$(stat -c %s rgb.png)
  head -c $((size_png / 2)) rgb.png >truncated.png
  # One byte of the image data changed: the chunk's CRC no longer matches.
  idat=$(grep -obUaP 'IDAT' rgb.png | head -1 | cut -d: -f1)
  { head -c $((idat + 100)) rgb.png; printf 'X'; tail -c +$((idat + 102)) rgb.png; } >badcrc.png
  size_jpg=$(stat -c %s rgb.jpg)
  head -c $((size_jpg / 2)) rgb.jpg >truncated.jpg
  # A marker in the middle of the scan; and the image ended early by EOI.
  { head -c $((size_jpg * 3 / 4)) rgb.jpg; printf '\xff\xd5'; tail -c +$((size_jpg * 3 / 4 + 3)) rgb.jpg; } >badmarker.jpg
  { head -c $((size_jpg * 3 / 4)) rgb.jpg; printf '\xff\xd9'; } >early_eoi.jpg
  head -c $(($(stat -c %s rgb.ppm) - 10)) rgb.ppm >truncated.ppm
  printf 'P6\n-5 3\n255\n' >badheader.ppm
  printf 'P6\n2 2\n0\n123456789012' >maxval0.ppm
  printf 'P7\nWIDTH 2\nHEIGHT 2\nDEPTH 3\nMAXVAL 255\nTUPLTYPE RGB\n' >noendhdr.pam
  for path in missing.png adir random.bin empty.png truncated.png badcrc.png truncated.jpg badmarker.jpg \
              early_eoi.jpg truncated.ppm badheader.ppm maxval0.ppm noendhdr.pam; do
    input_case "$path"
  done
  input_case rgb.png --max-pixels 1000
  want_stderr_has "1000" "--max-pixels 1000: the limit is named"
  run "${one[@]}" --max-pixels 19200 rgb.png maxpix_ok.png
  want_status 0 "--max-pixels equal to the image's pixels"
  run "${one[@]}" --model "$work/missing.safetensors" rgb.png model_missing.png
  want_status 1 "--model missing"
  want_error_line "deepdream: $work/missing.safetensors: " "--model missing"
  absent model_missing.png "--model missing"
  end
fi

# ---- output that cannot be written -------------------------------------------
if wanted output-errors; then
  begin output-errors
  run "${one[@]}" rgb.png nodir/out.png
  want_status 1 "output into a missing directory"
  want_error_line "deepdream: nodir/out.png: " "output into a missing directory"
  absent nodir "output into a missing directory"
  rm -rf isdir.png && mkdir isdir.png
  run "${one[@]}" rgb.png isdir.png
  want_status 2 "output is a directory"
  want_error_line "deepdream: isdir.png: " "output is a directory"
  want_stderr_has "a directory" "output is a directory: the reason"
  check "output is a directory: it is still an empty directory" test -d isdir.png -a -z "$(ls -A isdir.png)"
  no_leftovers . "output is a directory"
  run "${one[@]}" rgb.png rgb.png/out.png
  want_status 1 "output under a regular file"
  want_error_line "deepdream: rgb.png/out.png: " "output under a regular file"
  # A directory the user may not write to.
  rm -rf rodir && mkdir rodir
  if [ "$(id -u)" != 0 ]; then
    chmod 555 rodir
    run "${one[@]}" rgb.png rodir/out.png
    chmod 755 rodir
    want_status 1 "unwritable directory"
    want_error_line "deepdream: rodir/out.png: " "unwritable directory"
    check "unwritable directory: nothing left" test -z "$(ls -A rodir)"
  elif command -v setpriv >/dev/null && setpriv --reuid=65534 --regid=65534 --clear-groups "$dd" --version >/dev/null 2>&1; then
    # As root no mode bit stops a write: run the CLI as nobody instead.
    setpriv --reuid=65534 --regid=65534 --clear-groups "$dd" "${one[@]}" rgb.png rodir/out.png >stdout 2>stderr
    rc=$?
    want_status 1 "unwritable directory (as nobody)"
    want_error_line "deepdream: rodir/out.png: " "unwritable directory (as nobody)"
    want_stderr_has "Permission denied" "unwritable directory (as nobody)"
    check "unwritable directory: nothing left" test -z "$(ls -A rodir)"
  else
    skip "running as root without setpriv: no unwritable directory to test"
  fi
  # Standard output closed, or a full device.
  "$dd" "${one[@]}" rgb.png png:- >&- 2>stderr
  rc=$?
  want_status 1 "standard output closed"
  want_error_line "deepdream: standard output: " "standard output closed"
  if [ -w /dev/full ]; then
    "$dd" "${one[@]}" rgb.png png:- >/dev/full 2>stderr
    rc=$?
    want_status 1 "standard output on /dev/full"
    want_error_line "deepdream: standard output: " "standard output on /dev/full"
  else
    skip "no /dev/full"
  fi
  # The input is never overwritten unless asked (--in-place), also through
  # another path or a link; over another existing file the new file gets
  # the usual mode.
  cp rgb.png inplace.png
  ln -sf inplace.png inplace_link.png
  for out in inplace.png ./inplace.png inplace_link.png; do
    run "${one[@]}" inplace.png "$out"
    want_status 2 "input = output ($out)"
    want_error_line "deepdream: $out: would overwrite the input inplace.png" "input = output ($out)"
    same_bytes rgb.png inplace.png "input = output ($out): input untouched"
  done
  run "${one[@]}" --in-place inplace.png
  want_status 0 "--in-place"
  differ_pixels rgb.png inplace.png "--in-place: dreamed in place"
  no_leftovers . "--in-place"
  cp rgb.png existing.png && chmod 600 existing.png
  run "${one[@]}" rgb.png existing.png
  check "an existing output is replaced" test "$(magic existing.png)" = 89504e47 -a "$(stat -c %s existing.png)" != "$(stat -c %s rgb.png)"
  run "${one[@]}" rgb.png newfile.png
  check "a new output has mode 644 under umask 022 (got $(stat -c %a newfile.png))" test "$(stat -c %a newfile.png)" = 644
  end
fi

# ---- images too small for the network -----------------------------------------
if wanted tiny; then
  begin tiny
  run "${fast[@]}" tiny.png tiny_out.png
  want_status 0 "8x8 PNG"
  want_error_line "deepdream: tiny.png: " "8x8 PNG: one note"
  want_stderr_has "unchanged" "8x8 PNG: the note says it passed through"
  same_pixels tiny.png tiny_out.png "8x8 PNG passes through unchanged"
  run "${fast[@]}" --quiet tiny.png tiny_quiet.png
  want_status 0 "8x8 PNG, --quiet"
  want_quiet "8x8 PNG, --quiet"
  run "${fast[@]}" pixel.ppm pixel_out.ppm
  want_status 0 "1x1 PPM"
  same_pixels pixel.ppm pixel_out.ppm "1x1 PPM passes through unchanged"
  # Big enough at full size, too small at the smaller octaves: those are
  # left out and the full size still dreams.
  run --octaves 6 --octave-scale 2 --steps 1 small.png small_out.png
  want_status 0 "96x80 with 6 octaves of scale 2"
  want_quiet "96x80 with 6 octaves of scale 2"
  differ_pixels small.png small_out.png "96x80 with 6 octaves of scale 2: dreamed"
  end
fi

# ---- --dry-run: the plan, printed; nothing dreamed or written -------------------
# The octave sizes against the rule the dream follows, round(side /
# scale^(octaves-1-k)) of the size dreamed at (the long side at most
# --max-size), those too small for the objective left out; the octave count
# against the real dream's progress lines; tiles against the cut the dream
# makes; the peak memory against the peak RSS of the real dream.
if wanted dry-run; then
  begin dry-run
  # octave_sizes W H OCTAVES SCALE MIN: the sizes "WxH WxH ..." the rule gives,
  # leaving out those with a side under MIN (43 for mixed4).
  octave_sizes() {
    awk -v w="$1" -v h="$2" -v n="$3" -v s="$4" -v m="$5" 'BEGIN {
      for (k = 0; k < n; k++) {
        f = s ^ (n - 1 - k); ow = int(w / f + 0.5); oh = int(h / f + 0.5)
        if (ow >= m && oh >= m) out = out (out ? " " : "") ow "x" oh
      }
      print out }'
  }
  printed_sizes() { sed -n 's/^  octave [0-9]*: \([0-9]*x[0-9]*\),.*/\1/p' "$work/stdout" | tr '\n' ' ' | sed 's/ $//'; }
  mkdir -p drydir
  run --dry-run --octaves 4 rgb.png drydir/out.png
  want_status 0 "--dry-run rgb.png"
  want_quiet "--dry-run rgb.png"
  check "--dry-run: no output file" test -z "$(ls -A drydir)"
  check "--dry-run: first line names the input and its size" test "$(head -1 stdout)" = "rgb.png: 160x120, 4 octaves of 10 steps"
  check "--dry-run: 4 octaves $(octave_sizes 160 120 4 1.4 43), printed $(printed_sizes)" \
    test "$(printed_sizes)" = "$(octave_sizes 160 120 4 1.4 43)"
  check "--dry-run: one tile an octave" test "$(grep -c '1x1 tile of' stdout)" = 4
  check "--dry-run: a peak memory line" grep -qE '^  peak memory: [0-9]+\.[0-9] MiB \(the dream [0-9.]+ MiB' stdout
  check "--dry-run: a time line" grep -qE '^  time: [0-9]+\.[0-9] s \(40 passes of [0-9.]+ ms and [0-9.]+ GFLOP at [0-9.]+ GFLOP/s, measured\)$' stdout
  check "--dry-run: 7 lines in all" test "$(wc -l <stdout)" = 7

  run --dry-run --octaves 5 --octave-scale 1.3 rgb.png dry.png
  check "--dry-run, 5 octaves of 1.3: $(octave_sizes 160 120 5 1.3 43), printed $(printed_sizes)" \
    test "$(printed_sizes)" = "$(octave_sizes 160 120 5 1.3 43)"
  # The default, auto: as many octaves as bring the long side to <= 200.
  for auto in 1024x768:6 2000x1500:8 200x150:1 201x150:2 150x201:2; do
    convert rgb.png -resize "${auto%%:*}!" auto.ppm
    run --dry-run auto.ppm dry.png
    n=${auto#*:} wh=${auto%%:*} # not $size: the later groups' picture size
    check "--dry-run, auto octaves for $wh: $(octave_sizes "${wh%x*}" "${wh#*x}" "$n" 1.4 43), printed $(printed_sizes)" \
      test "$(printed_sizes)" = "$(octave_sizes "${wh%x*}" "${wh#*x}" "$n" 1.4 43)"
  done
  # --max-size 100: dreamed at 100x75, the two smallest octaves too small.
  run --dry-run --octaves 4 --max-size 100 rgb.png dry.png
  check "--dry-run --max-size 100: $(octave_sizes 100 75 4 1.4 43), printed $(printed_sizes)" \
    test "$(printed_sizes)" = "$(octave_sizes 100 75 4 1.4 43)"
  check "--dry-run --max-size 100: two octaves" test "$(printed_sizes)" = "71x54 100x75"
  # A mask the image cannot have: the dream's own error.
  run --dry-run --mask alpha rgb.png dry.png
  want_status 1 "--dry-run --mask alpha on RGB"
  want_error_line "deepdream: rgb.png: the image has no alpha channel to use as its mask" "--dry-run --mask alpha on RGB"
  # The octaves the dream runs: 6 of scale 2 on 96x80 leave one.
  run --dry-run --octaves 6 --octave-scale 2 small.png dry.png
  check "--dry-run, 96x80 with 6 octaves of 2: one octave, 96x80 (printed $(printed_sizes))" test "$(printed_sizes)" = 96x80
  run --progress --octaves 6 --octave-scale 2 --steps 1 small.png dry_real.png
  check "the real dream of 96x80 runs one octave too" grep -q 'octave 1/1' stderr

  # Wider and taller than the tile: tiles of tile - 2 margins kept (margin
  # tile/8, at most 32), the side cut evenly: 160 = 3 x 54 - 2, 120 = 2 x 60.
  run --dry-run --octaves 1 --tile 100 rgb.png dry.png
  check "--dry-run --tile 100 on 160x120: 3x2 tiles of 78x84 ($(sed -n 2p stdout))" \
    test "$(sed -n 2p stdout)" = "  octave 1: 160x120, 3x2 tiles of 78x84"

  # Too small: the real dream's note, word for word; it would pass through.
  run --octaves 2 --steps 1 tiny.png tiny_real.png
  cp stderr tiny_real.err
  run --dry-run --octaves 2 --steps 1 tiny.png tiny_dry.png
  want_status 0 "--dry-run, 8x8"
  same_bytes tiny_real.err stderr "--dry-run, 8x8: the dream's message"
  absent tiny_dry.png "--dry-run, 8x8"
  check "--dry-run, 8x8: the report says it would pass through" grep -q '^tiny.png: 8x8, too small' stdout
  run --max-size 20 --octaves 1 --steps 1 rgb.png small_real.png
  cp stderr small_real.err
  run --dry-run --max-size 20 --octaves 1 --steps 1 rgb.png small_dry.png
  same_bytes small_real.err stderr "--dry-run --max-size 20: the dream's message"
  check "--max-size 20: the message names the size dreamed at" grep -q 'dreamed at 20x15' stderr

  # Standard output as OUTPUT: the report, no image.
  run --dry-run rgb.png -
  want_status 0 "--dry-run to -"
  check "--dry-run to -: the report on standard output" test "$(head -1 stdout)" = "rgb.png: 160x120, 1 octave of 10 steps"

  run --dry-run - dry.png <rgb.png
  want_status 0 "--dry-run from standard input"
  check "--dry-run from standard input: named so" test "$(head -1 stdout)" = "standard input: 160x120, 1 octave of 10 steps"
  absent dry.png "--dry-run from standard input"

  # A batch: the same plan per input, no OUTDIR made, no summary; a missing
  # input fails as in a real batch.
  run --dry-run -o drybatch/sub rgb.png small.png
  want_status 0 "--dry-run -o"
  absent drybatch "--dry-run -o: the output directory"
  want_quiet "--dry-run -o"
  check "--dry-run -o: both inputs, in order" test "$(grep -v '^ ' stdout | cut -d: -f1 | tr '\n' ' ')" = "rgb.png small.png "
  run --dry-run -o drybatch rgb.png missing.png
  want_status 1 "--dry-run -o with a missing input"
  want_error_line "deepdream: missing.png: " "--dry-run -o with a missing input"
  absent drybatch "--dry-run -o with a missing input: the output directory"

  # Peak memory: the plan plus what the program held before the first image
  # (code, libraries, model), against the real dream's peak RSS, within 15 %.
  # One tile of four octaves; one 600x400 tile, whose net's arena is a
  # third of the peak; 2x2 tiles with --max-size (the carry-up to the full
  # size). Not under AddressSanitizer (shadow memory, redzones).
  if [ -x /usr/bin/time ] && ! ldd "$dd" 2>/dev/null | grep -q libasan; then
    convert "$top/samples/coffee.png" -resize '600x400!' coffee.ppm
    for args in "--steps 2 rgb.png" "--octaves 1 --steps 1 coffee.ppm" \
                "--octaves 2 --steps 1 --tile 256 --max-size 400 coffee.ppm"; do
      # shellcheck disable=SC2086
      run --dry-run $args dry_mem.ppm
      mib=$(sed -n 's/^  peak memory: \([0-9.]*\) MiB.*/\1/p' stdout)
      # shellcheck disable=SC2086
      /usr/bin/time -f %M -o mem.rss "$dd" $args mem_out.ppm 2>/dev/null
      kib=$(tail -1 mem.rss)
      echo "  peak memory, $args: planned $mib MiB, real $((kib / 1024)) MiB"
      check "--dry-run $args: planned $mib MiB within 15 % of the real peak RSS $kib KiB" \
        awk -v p="$mib" -v r="$kib" 'BEGIN { d = p * 1024 / r - 1; exit !(d > -0.15 && d < 0.15) }'
    done
  else
    skip "peak memory against RSS: no /usr/bin/time, or AddressSanitizer"
  fi
  end
fi

# ---- signals -------------------------------------------------------------------
if wanted signals; then
  begin signals
  for sig in INT:130 TERM:143; do
    rm -rf sigdir && mkdir sigdir
    # A background job starts with SIGINT ignored; give it the default back.
    (trap - INT; exec "$dd" --octaves 1 --steps 100000 rgb.png sigdir/out.png 2>/dev/null) &
    pid=$!
    sleep 1
    kill -"${sig%%:*}" "$pid"
    wait "$pid"
    rc=$?
    check "SIG${sig%%:*} during the dream: exit $rc, want ${sig##*:}" test "$rc" = "${sig##*:}"
    check "SIG${sig%%:*}: nothing written" test -z "$(ls -A sigdir)"
  done
  end
fi

# ---- guide and replay --------------------------------------------------------------
if wanted guide-replay; then
  begin guide-replay
  # --guide: refusals before any work, with no output.
  run --guide rgb16.png -l mixed4:3 rgb.png g_out.png
  want_status 2 "--guide with a channel"
  want_error_line "deepdream: --guide matches whole layers: 'mixed4:3' names a channel" "--guide with a channel"
  for bad in missing.png:"No such file" small.png.trunc:"truncated" tiny.png:"is too small for mixed4"; do
    [ "${bad%%:*}" = small.png.trunc ] && head -c 300 small.png >small.png.trunc
    run --guide "${bad%%:*}" rgb.png g_out.png
    want_status 1 "--guide ${bad%%:*}"
    want_error_line "deepdream: ${bad%%:*}: " "--guide ${bad%%:*}"
    want_stderr_has "${bad#*:}" "--guide ${bad%%:*}"
    absent g_out.png "--guide ${bad%%:*}: no output"
  done
  run --guide - rgb.png g_out.png </dev/null
  want_status 2 "--guide from standard input"
  # A guided dream, recorded and replayed to the same bytes in each format;
  # paths with a space are kept whole; options beside --replay win.
  cp rgb16.png "my guide.png"
  cp mask.png "my mask.png"
  mkdir -p "model dir" && cp "$top/weights/inception_v3_mixed5.safetensors" "model dir/m.safetensors"
  for out in png jpg ppm pam; do
    run -m "model dir/m.safetensors" --guide "my guide.png" --mask "my mask.png" --invert-mask --preserve-colors \
      -l mixed3,mixed4=0.5 "${fast[@]}" --seed 9 \
      --step-size 0.0123456789 --octave-scale 1.33 --jitter 5 rgb.png "g_dream.$out"
    want_status 0 "a guided dream to $out"
    run --replay "g_dream.$out" rgb.png "g_again.$out"
    want_status 0 "--replay g_dream.$out"
    want_quiet "--replay g_dream.$out on the same build and CPU"
    same_bytes "g_dream.$out" "g_again.$out" "--replay of a $out dream gives the same bytes"
  done
  check "the mark records the paths encoded, and the mask's options" grep -qaF \
    'guide=my%20guide.png mask=my%20mask.png invert-mask=1 preserve-colors=1 quality=92 model=model%20dir/m.safetensors' g_dream.png
  check "the mark records step-size as the float it was" grep -qaF 'step-size=0.012345679 ' g_dream.png
  run rgb.png plain.png
  run --replay g_dream.png --steps 3 --guide none.png rgb.png g_more.png
  want_status 1 "a --guide beside --replay wins (and is read)"
  run --replay g_dream.png --steps 3 rgb.png g_more.png
  want_status 0 "--replay with --steps"
  check "--steps beside --replay wins" grep -qaF ' steps=3 ' g_more.png
  check "the rest is the replayed dream's" grep -qaF 'octave-scale=1.33 steps=3 step-size=0.012345679 jitter=5' g_more.png
  run --steps 3 --replay g_dream.png rgb.png g_more2.png
  same_bytes g_more.png g_more2.png "an option before --replay wins too"
  # Refusals: no output written.
  run --replay rgb.png rgb.png g_none.png
  want_status 1 "--replay of a photo"
  want_error_line "deepdream: rgb.png: no parameters recorded: not a deepdream output" "--replay of a photo"
  run --replay missing.png rgb.png g_none.png
  want_status 1 "--replay of a missing file"
  run tiny.png g_tiny.ppm # converted, so marked as passed through
  run --replay g_tiny.ppm rgb.png g_none.png
  want_status 1 "--replay of a passed-through image"
  want_error_line "deepdream: g_tiny.ppm: passed through unchanged, never dreamed" "--replay of a passed-through image"
  printf 'P6\n# deepdream %s: from=00 layers=mixed3 steps=abc model=built-in\n1 1\n255\nabc' "$version" >bad_steps.ppm
  run --replay bad_steps.ppm rgb.png g_none.png
  want_status 1 "--replay of a bad recorded value"
  want_error_line "deepdream: bad_steps.ppm: recorded steps: 'abc' is not a number in 0..100000" "--replay of a bad value"
  printf 'P6\n# deepdream %s: from=00 layers=mixed3 colour=blue model=built-in\n1 1\n255\nabc' "$version" >bad_key.ppm
  run --replay bad_key.ppm rgb.png g_none.png
  want_status 1 "--replay of an unknown recorded key"
  want_error_line "deepdream: bad_key.ppm: recorded colour: no such parameter" "--replay of an unknown key"
  printf 'P6\n# deepdream %s: from=00 layers=mixed3 steps=2\n1 1\n255\nabc' "$version" >cut.ppm
  run --replay cut.ppm rgb.png g_none.png
  want_status 1 "--replay of a cut record"
  want_error_line "deepdream: cut.ppm: its recorded parameters are cut short" "--replay of a cut record"
  absent g_none.png "refused replays write nothing"
  # What the review found: JPEG quality is part of the look; a mask given
  # over a replay drops the recorded --invert-mask; none turns a recorded
  # mask or guide off; help before reading; standard input once.
  run "${one[@]}" -q 40 rgb.png q40.jpg
  run --replay q40.jpg rgb.png q40_again.jpg
  same_bytes q40.jpg q40_again.jpg "--replay keeps the JPEG quality"
  run --replay g_dream.png --mask mask.png rgb.png g_remask.png
  check "a --mask over a replay drops its --invert-mask" grep -qaF 'mask=mask.png invert-mask=0 ' g_remask.png
  run --replay g_dream.png --mask none --guide none -m none.safetensors rgb.png g_off.png
  want_status 1 "-m beside --replay wins"
  run --replay g_dream.png --mask none --guide none -m "$top/weights/inception_v3_mixed5.safetensors" rgb.png g_off.png
  want_status 0 "--mask none --guide none over a replay"
  check "--mask none and --guide none turn them off" grep -qaF 'guide=none mask=none invert-mask=0 ' g_off.png
  run --replay missing.png --help
  want_status 0 "--help beside --replay of a missing file"
  run --replay - - g_none.png <g_dream.png
  want_status 2 "--replay - with INPUT -"
  want_error_line "deepdream: --replay -: standard input is taken by another file" "--replay - with INPUT -"
  long=$(printf 'mixed3=0.5%.0s,' $(seq 1 40))mixed4
  run -l "$long" --steps 0 --octaves 1 rgb.png long.png
  run --replay long.png rgb.png g_none.png
  want_status 0 "a layer list of 40 terms replays"
  same_bytes long.png g_none.png "a layer list of 40 terms replays to the same bytes"
  e=$(printf 'é%.0s' $(seq 1 100))
  mkdir -p "$e/$e/$e" && cp mask.png "$e/$e/$e/m.png"
  run "${one[@]}" --mask "$e/$e/$e/m.png" rgb.png deep_mask.png
  run --replay deep_mask.png rgb.png deep_again.png
  want_status 0 "a 600-byte non-ASCII mask path replays"
  same_bytes deep_mask.png deep_again.png "a 600-byte non-ASCII mask path replays to the same bytes"

  # Presets: a preset is the options it lists; options beside it win.
  run --list-presets
  want_status 0 "--list-presets"
  check "--list-presets: six or more presets, 'subtle' among them" test "$(grep -c '^[a-z]' stdout)" -ge 6 -a \
    "$(grep -c '^subtle ' stdout)" = 1
  cp stdout presets.txt
  for preset in $(awk '/^[a-z]/ {print $1}' presets.txt); do
    read -r -a opts <<<"$(grep -A1 "^$preset " presets.txt | tail -1 | sed 's/ (for the .* model)$//')"
    run --preset "$preset" --steps 1 small.png "p_$preset.png"
    want_status 0 "--preset $preset"
    run "${opts[@]}" --steps 1 small.png "p_${preset}_spelled.png"
    same_bytes "p_$preset.png" "p_${preset}_spelled.png" "--preset $preset = ${opts[*]}"
  done
  run --steps 2 --preset deep small.png p_a.png
  run --preset deep --steps 2 small.png p_b.png
  same_bytes p_a.png p_b.png "--steps beside --preset wins, before or after it"
  check "--preset deep --steps 2 dreams 2 steps of deep's" grep -qaF 'layers=mixed5 octaves=auto octave-scale=1.4 steps=2 step-size=0.015' p_a.png
  run --preset psychedelic small.png p_none.png
  want_status 2 "an unknown preset"
  want_error_line "deepdream: --preset: psychedelic: no such preset" "an unknown preset"
  run --preset eyes -m "model dir/m.safetensors" small.png p_none.png
  want_status 2 "a built-in preset with -m"
  run --preset eyes --replay g_dream.png small.png p_none.png
  want_status 2 "--preset with --replay"
  want_error_line "deepdream: --preset and --replay do not go together" "--preset with --replay"
  absent p_none.png "refused presets write nothing"
  end
fi

# ---- the dream moves along the engine's own gradient ----------------------------
if wanted gradient; then
  begin gradient
  # Each arithmetic against the library's gradient in the same arithmetic.
  for mode in exact fast; do
    for in in rgb16.png rgb.png; do
      run --$mode --octaves 1 --steps 1 --jitter 0 --step-size 0.1 "$in" "grad_${in%.*}.png"
      want_status 0 "one step, no jitter, --$mode: $in"
      "$grad" "$in" "grad_${in%.*}.png" 0.1 $mode >grad.txt 2>&1
      rc=$?
      sed 's/^/  /' grad.txt
      check "the CLI's --$mode change to $in is the library's gradient step (test_cli_grad)" test "$rc" = 0
    done
  done
  # The same with a guide: its objective's gradient, as the library gives it.
  run --guide rgb16.png -l mixed3,mixed4=0.5 --exact --octaves 1 --steps 1 --jitter 0 --step-size 0.1 rgb.png grad_guided.png
  want_status 0 "one guided step, no jitter"
  "$grad" rgb.png grad_guided.png 0.1 exact rgb16.png mixed3,mixed4=0.5 >grad.txt 2>&1
  rc=$?
  sed 's/^/  /' grad.txt
  check "the CLI's guided change is the library's guided gradient step (test_cli_grad)" test "$rc" = 0
  differ_pixels grad_guided.png grad_rgb.png "a guided step differs from the plain one"
  end
fi

# ---- masks and --preserve-colors ------------------------------------------------
if wanted mask; then
  begin mask
  mw=${size%x*} mh=${size#*x}
  # half.png: black on the left, white on the right (a grey+alpha PNG8 would
  # do too; ImageMagick writes a palette one). lhalf/rhalf: the pixels of
  # each half, every channel at 16 bits, as ImageMagick decodes them.
  convert -size "$size" xc:black -fill white -draw "rectangle $((mw / 2)),0 $((mw - 1)),$((mh - 1))" PNG8:half.png
  lhalf() { convert "$1" -crop "$((mw / 2))x$mh+0+0" +repage -depth 16 rgba:-; }
  rhalf() { convert "$1" -crop "$((mw / 2))x$mh+$((mw / 2))+0" +repage -depth 16 rgba:-; }
  same_half() { # l|r A B WHAT
    if cmp -s <("${1}half" "$2") <("${1}half" "$3"); then pass; else fail "$4: the $1 halves of $2 and $3 differ"; fi
  }
  other_half() { # l|r A B WHAT
    if ! cmp -s <("${1}half" "$2") <("${1}half" "$3"); then pass; else fail "$4: the $1 halves of $2 and $3 are the same"; fi
  }
  for f in rgb.ppm rgb.pam rgb16.ppm grey.pgm; do
    out="mask_${f%.*}_out.${f##*.}"
    run "${fast[@]}" --mask half.png "$f" "$out"
    want_status 0 "--mask half.png $f"
    same_half l "$f" "$out" "--mask: under black, $out keeps $f's samples"
    other_half r "$f" "$out" "--mask: under white, $out is dreamed"
  done
  comment=$(identify -format '%c' mask_rgb_out.ppm 2>&1)
  check "--mask: the mark records it ($comment)" grep -qF " mask=half.png invert-mask=0 preserve-colors=0 quality=92 model=" <<<"$comment"
  run "${fast[@]}" --mask half.png --invert-mask rgb.pam mask_inv_out.pam
  want_status 0 "--mask half.png --invert-mask"
  same_half r rgb.pam mask_inv_out.pam "--invert-mask: the white half keeps the input's samples"
  other_half l rgb.pam mask_inv_out.pam "--invert-mask: the black half is dreamed"

  # The input's own alpha: transparent on the left.
  convert rgb.png half.png -alpha off -compose CopyOpacity -composite PNG32:half_rgba.png
  run "${fast[@]}" --mask alpha half_rgba.png mask_alpha_out.png
  want_status 0 "--mask alpha on RGBA"
  same_half l half_rgba.png mask_alpha_out.png "--mask alpha: transparent pixels keep their samples"
  other_half r half_rgba.png mask_alpha_out.png "--mask alpha: opaque pixels are dreamed"
  comment=$(identify -format '%c' mask_alpha_out.png 2>&1)
  check "--mask alpha: the mark says mask=alpha ($comment)" grep -qF " mask=alpha invert-mask=0 " <<<"$comment"
  run "${fast[@]}" --mask alpha rgb.png mask_noalpha.png
  want_status 1 "--mask alpha on an RGB input"
  want_error_line "deepdream: rgb.png: the image has no alpha channel" "--mask alpha on an RGB input"
  absent mask_noalpha.png "--mask alpha on an RGB input"
  mkdir -p mask_batch_in && cp rgb.png half_rgba.png mask_batch_in/
  run "${fast[@]}" --mask alpha -o mask_batch_out mask_batch_in
  want_status 1 "batch --mask alpha, one input without alpha"
  want_stderr_has "deepdream: mask_batch_in/rgb.png: the image has no alpha channel" "batch --mask alpha"
  check "batch --mask alpha: the RGBA input is written" test -s mask_batch_out/half_rgba.png
  absent mask_batch_out/rgb.png "batch --mask alpha: the RGB input"

  # A path with a space and a '%' in the mark, percent-encoded.
  cp half.png 'my mask%.png'
  run "${one[@]}" --mask 'my mask%.png' rgb.png mask_name_out.png
  want_status 0 "--mask with a space and % in its name"
  comment=$(identify -format '%c' mask_name_out.png 2>&1)
  check "the mark encodes the mask's path ($comment)" grep -qF " mask=my%20mask%25.png invert-mask=0 " <<<"$comment"

  # Usage and unreadable masks: nothing dreamed, nothing written.
  run --invert-mask rgb.png mask_usage.png
  want_status 2 "--invert-mask without --mask"
  want_error_line "deepdream: --invert-mask needs --mask" "--invert-mask without --mask"
  absent mask_usage.png "--invert-mask without --mask"
  run --mask no_such_mask.png rgb.png mask_missing.png
  want_status 1 "--mask of a missing file"
  want_error_line "deepdream: no_such_mask.png: " "--mask of a missing file"
  absent mask_missing.png "--mask of a missing file"
  head -c 100 half.png >broken_mask.png
  run --mask broken_mask.png rgb.png mask_broken.png
  want_status 1 "--mask of a truncated PNG"
  want_error_line "deepdream: broken_mask.png: " "--mask of a truncated PNG"
  absent mask_broken.png "--mask of a truncated PNG"
  run --mask broken_mask.png -o mask_broken_dir rgb.png grey.png
  want_status 1 "batch --mask of a truncated PNG"
  want_error_line "deepdream: broken_mask.png: " "batch --mask of a truncated PNG (no summary: nothing ran)"
  absent mask_broken_dir "batch --mask of a truncated PNG"

  # --preserve-colors: BT.601 chroma within 1 level of the input's, by awk
  # on ImageMagick's decoding; the luma does change; without it the chroma
  # moves by more.
  chroma_change() { # A B: "largest |chroma change| mean |luma change|", 8-bit levels
    paste <(convert "$1" -depth 8 rgb:- | od -An -tu1 -v -w3) <(convert "$2" -depth 8 rgb:- | od -An -tu1 -v -w3) |
      awk 'function abs(v) { return v < 0 ? -v : v }
           { dr = $4 - $1; dg = $5 - $2; db = $6 - $3
             cb = abs(-0.168736 * dr - 0.331264 * dg + 0.5 * db); cr = abs(0.5 * dr - 0.418688 * dg - 0.081312 * db)
             if (cb > m) m = cb; if (cr > m) m = cr; y += abs(0.299 * dr + 0.587 * dg + 0.114 * db); n++ }
           END { printf "%.3f %.3f\n", m, y / n }'
  }
  run "${fast[@]}" --preserve-colors rgb.png mask_keep.png
  want_status 0 "--preserve-colors"
  read -r kept_chroma kept_luma <<<"$(chroma_change rgb.png mask_keep.png)"
  run "${fast[@]}" rgb.png mask_plain.png
  read -r plain_chroma _ <<<"$(chroma_change rgb.png mask_plain.png)"
  check "--preserve-colors: chroma moved at most $kept_chroma levels, want <= 1" awk "BEGIN { exit !($kept_chroma <= 1) }"
  check "--preserve-colors: luma moved $kept_luma levels on average, want > 0.5" awk "BEGIN { exit !($kept_luma > 0.5) }"
  check "without --preserve-colors the chroma moves ($plain_chroma levels)" awk "BEGIN { exit !($plain_chroma > 2) }"
  comment=$(identify -format '%c' mask_keep.png 2>&1)
  check "--preserve-colors: the mark says so ($comment)" grep -qF " mask=none invert-mask=0 preserve-colors=1 " <<<"$comment"
  end
fi

# ---- a large image in bounded memory --------------------------------------------
# Peak RSS (/usr/bin/time). While it dreams, the process holds the image's
# samples (3 B/px here) and two float32 RGB planes of it (the dream and its
# gradient, 24 B/px); all else is set by the tile size: one octave's net (the
# others are planned but not yet touched, or already freed), the tile
# buffers, the model, a few rows of resize scratch. The encoded input is
# freed once decoded; the output is encoded after the planes are freed. So a
# run on P pixels, against the same options on a 512x512 image (one tile of
# the largest side a 512 tile can have, so the largest net; the runs use
# --tile 512 to keep the steps short), peaks at most at
#   peak(P) <= peak(512x512) + 27 B x (P - 512 x 512) + 16 MiB
# (16 MiB: allocator rounding, thread stacks, scratch rows). The five float
# planes kept before were 60 B/px; a net planned for the whole image would
# need gigabytes. Under AddressSanitizer shadow memory adds 1/8 to what grows,
# and the runs set quarantine_size_mb=0 so that a freed net leaves RSS as
# without ASan.
if wanted large; then
  begin large
  if [ -x /usr/bin/time ]; then
    asan=0
    if ldd "$dd" 2>/dev/null | grep -q libasan; then asan=1; fi
    # rss_run NAME ARGS...: the CLI under /usr/bin/time; status in $rc, peak
    # RSS in KiB in $kb.
    rss_run() {
      local name=$1
      shift
      ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}quarantine_size_mb=0" \
        /usr/bin/time -f %M -o "$name.rss" "$dd" "$@" 2>stderr
      rc=$?
      kb=$(tail -1 "$name.rss")
    }
    # rss_bound WHAT KB REF_KB PIXELS: KB against the formula above.
    rss_bound() {
      local grow_kb=$(((27 * ($4 - 512 * 512) + 16 * 1024 * 1024) / 1024))
      if [ "$asan" = 1 ]; then grow_kb=$((grow_kb * 9 / 8)); fi
      echo "  peak RSS, $1: ${2} KiB; 512x512 ${3} KiB; bound $(($3 + grow_kb)) KiB"
      check "$1: peak RSS ${2} KiB <= ${3} + ${grow_kb} KiB" test "$2" -le "$(($3 + grow_kb))"
    }
    small_tiles=(--tile 512)
    convert "$top/samples/coffee.png" -resize '512x512!' tile.ppm
    convert "$top/samples/coffee.png" -resize '3000x2000!' large.ppm

    # Steps on a tiled image: 35 tiles of the 3000x2000 image, one net.
    rss_run tile "${small_tiles[@]}" "${one[@]}" tile.ppm tile_out.ppm
    want_status 0 "512x512, one octave"
    tile_kb=$kb
    rss_run large "${small_tiles[@]}" "${one[@]}" large.ppm large_out.ppm
    want_status 0 "3000x2000"
    check "3000x2000: header of the output" test "$(pnm_header large_out.ppm 2 | tr '\n' ' ')" = "P6 3000 2000 "
    differ_bytes large.ppm large_out.ppm "3000x2000 dreamed"
    rss_bound "3000x2000, one octave, one step" "$kb" "$tile_kb" $((3000 * 2000))

    # Four octaves of one 512-side tile each (scale 1.01): four nets of the
    # largest size, of which only the current one may be resident.
    rss_run octaves "${small_tiles[@]}" --octaves 4 --octave-scale 1.01 --steps 1 tile.ppm octaves_out.ppm
    want_status 0 "512x512, four octaves"
    rss_bound "512x512, four nets" "$kb" "$tile_kb" $((512 * 512))

    # The issue's 6000x4000 with 0.1's four octaves and no step: every
    # image-sized buffer (the photo at each octave, the detail carried up,
    # the dream and its gradient) is made, without the minutes of steps.
    convert "$top/samples/coffee.png" -scale '6000x4000!' huge.ppm
    rss_run tile0 "${small_tiles[@]}" --octaves 4 --steps 0 tile.ppm tile0_out.ppm
    want_status 0 "512x512, no step"
    rss_run huge "${small_tiles[@]}" --octaves 4 --steps 0 huge.ppm huge_out.ppm
    want_status 0 "6000x4000, no step"
    check "6000x4000: header of the output" test "$(pnm_header huge_out.ppm 2 | tr '\n' ' ')" = "P6 6000 4000 "
    rss_bound "6000x4000, four octaves, no step" "$kb" "$(tail -1 tile0.rss)" $((6000 * 4000))
    rm -f huge.ppm huge_out.ppm
  else
    skip "no /usr/bin/time: peak RSS of large images not measured"
  fi
  end
fi

echo "test_cli: $passed passed, $failed failed, $skipped skipped"
[ "$failed" = 0 ]
