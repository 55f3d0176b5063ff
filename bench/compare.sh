#!/usr/bin/env bash
# One command for the side-by-side benchmark (docs/PERFORMANCE.md): for each round and each
# size, dd_bench (exact, and fast when this build has --mode) and then the PyTorch peer, so a
# slow phase of a shared machine hits both; then the table of medians over rounds and a PNG
# of step time against image size.
set -euo pipefail

prog=compare.sh
repo=$(cd "$(dirname "$0")/.." && pwd)

usage="usage: bench/compare.sh [OPTIONS]
  --sizes LIST      square sides, comma separated (default 256,384,512,768,1024)
  --threads N       threads for deepdream, OpenBLAS and PyTorch (default: online cores)
  --reps N          dd_bench timed repetitions per size (default 3)
  --rounds N        rounds over all sizes; the table gives medians over them (default 2)
  --peer-steps N    PyTorch timed steps per size, after 2 warm-up steps (default 10)
  --out DIR         raw.jsonl, stderr.log, table.md, step_time.gp/.png (default bench/out)
  --dd-bench PATH   the dd_bench binary (default build/dd_bench)
  --peer PATH       the peer's step_time.py (default \$PEER_DIR/step_time.py,
                    PEER_DIR defaulting to /work/shared/peer)
DD_CPU=avx2 (or plain) in the environment runs deepdream's AVX2 (plain) kernels, and caps the
peer to the same instruction set (ATEN_CPU_CAPABILITY, ONEDNN_MAX_CPU_ISA), so that an AVX-512
machine measures both programs as an AVX2-only one would run them.
Prints the table on stdout, progress on stderr. Exit 0; 1 when something needed is missing
or a run fails; 2 on a usage error; 3 when the table was made but gnuplot is missing."

sizes=256,384,512,768,1024
threads=$(nproc)
reps=3
rounds=2
peer_steps=10
out=$repo/bench/out
dd_bench=$repo/build/dd_bench
peer=${PEER_DIR:-/work/shared/peer}/step_time.py

die() {
  echo "$prog: $*" >&2
  exit 1
}
usage_error() {
  echo "$prog: $*; see --help" >&2
  exit 2
}
positive() { # option value
  [[ $2 =~ ^[1-9][0-9]*$ ]] || usage_error "$1: '$2' is not a positive integer"
}

while [ $# -gt 0 ]; do
  case $1 in
    -h | --help)
      echo "$usage"
      exit 0
      ;;
    --sizes | --threads | --reps | --rounds | --peer-steps | --out | --dd-bench | --peer)
      [ $# -ge 2 ] || usage_error "$1: missing value"
      case $1 in
        --sizes) sizes=$2 ;;
        --threads) threads=$2 ;;
        --reps) reps=$2 ;;
        --rounds) rounds=$2 ;;
        --peer-steps) peer_steps=$2 ;;
        --out) out=$2 ;;
        --dd-bench) dd_bench=$2 ;;
        --peer) peer=$2 ;;
      esac
      shift 2
      ;;
    *) usage_error "$1: unknown argument" ;;
  esac
done
[[ $sizes =~ ^[1-9][0-9]*(,[1-9][0-9]*)*$ ]] || usage_error "--sizes: '$sizes' is not a list like 256,512"
positive --threads "$threads"
positive --reps "$reps"
positive --rounds "$rounds"
positive --peer-steps "$peer_steps"

# Everything needed is checked before the first run, which may be minutes away from the end.
command -v python3 >/dev/null || die "python3 not found (apt-get install python3)"
[ -x "$dd_bench" ] || die "$dd_bench not found: build it (cmake -S . -B build && cmake --build build -j2) or pass --dd-bench"
[ -f "$peer" ] || die "PyTorch peer $peer not found: set PEER_DIR or pass --peer (docs/PERFORMANCE.md)"
# The peer re-runs itself under /usr/bin/python3 when the python3 on PATH lacks torch.
has_torch='import importlib.util, sys; sys.exit(importlib.util.find_spec("torch") is None)'
python3 -c "$has_torch" 2>/dev/null || { [ -x /usr/bin/python3 ] && /usr/bin/python3 -c "$has_torch"; } ||
  die "PyTorch not found for the peer (apt-get install python3-torch python3-numpy python3-pil nodejs npm)"
has_gnuplot=1
if ! command -v gnuplot >/dev/null; then
  has_gnuplot=0
  echo "$prog: gnuplot not found (apt-get install gnuplot-nox): the table will be made, the plot skipped" >&2
fi

# dd_bench gained --mode exact|fast with the bf16 kernels; an older build measures exact only
# and the table shows fast as n/a.
fast_mode=0
mode_args=()
case $("$dd_bench" --help 2>&1 || true) in
  *--mode*)
    fast_mode=1
    mode_args=(--mode "exact,fast")
    ;;
esac

mkdir -p "$out"
raw=$out/raw.jsonl
log=$out/stderr.log
scratch=$out/.last_run
: >"$raw"
: >"$log"

# Appends a "compare" record to raw.jsonl: NAME=TEXT gives a string, NAME:=JSON a number or
# boolean (as in httpie).
record_facts() {
  python3 -c '
import json, sys
facts = {}
for arg in sys.argv[1:]:
    name, value = arg.split("=", 1)
    if name.endswith(":"):
        facts[name[:-1]] = json.loads(value)
    else:
        facts[name] = value
print(json.dumps({"round": 0, "tool": "compare", "data": facts}))' "$@" >>"$raw"
}

# Appends each non-empty line of a tool's stdout (a JSON object) to raw.jsonl, tagged.
record_lines() { # round tool file
  local line
  while IFS= read -r line; do
    if [ -n "$line" ]; then printf '{"round":%d,"tool":"%s","data":%s}\n' "$1" "$2" "$line"; fi
  done <"$3" >>"$raw"
}

# The step seconds in a run's JSON lines, for the progress line only.
step_summary() { # file
  python3 -c '
import json, sys
parts = []
for line in open(sys.argv[1]):
    d = json.loads(line) if line.strip() else {}
    if "step_s" in d:
        parts.append("deepdream %s %.3f s" % (d.get("mode", "exact"), d["step_s"]))
    elif "median_s" in d:
        parts.append("PyTorch %.3f s" % d["median_s"])
print(", ".join(parts))' "$1"
}

run_tool() { # round tool size command...
  local round=$1 tool=$2 size=$3 rc=0
  shift 3
  echo "== round $round, size $size: $*" >>"$log"
  "$@" >"$scratch" 2>>"$log" || rc=$?
  if [ "$rc" != 0 ]; then
    die "$tool failed at size $size, round $round (exit $rc): $(tail -n 1 "$log"); log in $log"
  fi
  record_lines "$round" "$tool" "$scratch"
  echo "$prog: round $round/$rounds, ${size}x$size: $(step_summary "$scratch")" >&2
}

cpu_model=$(sed -n 's/^model name[[:space:]]*:[[:space:]]*//p' /proc/cpuinfo | head -n 1)
git_rev=$(git -C "$repo" describe --always --dirty 2>/dev/null || echo unknown)
record_facts cpu_model="${cpu_model:-unknown}" git="$git_rev" date="$(date -u +%Y-%m-%dT%H:%M:%SZ)" \
  threads:="$threads" reps:="$reps" rounds:="$rounds" sizes="$sizes" peer_steps:="$peer_steps" \
  fast_mode:="$([ $fast_mode = 1 ] && echo true || echo false)" loadavg_start="$(cut -d' ' -f1-3 /proc/loadavg)"
echo "$prog: sizes $sizes, $rounds round(s), $threads thread(s), fast mode $([ $fast_mode = 1 ] && echo yes || echo n/a)" >&2

# The peer on the instruction set deepdream is capped to.
peer_env=()
case ${DD_CPU:-} in
  avx2) peer_env=(ATEN_CPU_CAPABILITY=avx2 ONEDNN_MAX_CPU_ISA=AVX2 DNNL_MAX_CPU_ISA=AVX2) ;;
  plain) peer_env=(ATEN_CPU_CAPABILITY=default ONEDNN_MAX_CPU_ISA=SSE41 DNNL_MAX_CPU_ISA=SSE41) ;;
  avx512) peer_env=(ONEDNN_MAX_CPU_ISA=AVX512_CORE DNNL_MAX_CPU_ISA=AVX512_CORE) ;;
esac
kernels=$("$dd_bench" --sizes 64 --reps 1 2>/dev/null | sed -n 's/.*"kernels":"\([a-z0-9]*\)".*/\1/p' | head -n 1)
record_facts kernels="${kernels:-unknown}" peer_env="${peer_env[*]:-}"
echo "$prog: deepdream's kernels: ${kernels:-unknown}; peer environment: ${peer_env[*]:-as is}" >&2

start_s=$SECONDS
IFS=, read -r -a size_list <<<"$sizes"
for ((round = 1; round <= rounds; round++)); do
  for size in "${size_list[@]}"; do
    run_tool "$round" dd_bench "$size" \
      "$dd_bench" --sizes "$size" --threads "$threads" --reps "$reps" "${mode_args[@]}"
    run_tool "$round" peer "$size" \
      env "${peer_env[@]}" python3 "$peer" --size "$size" --threads "$threads" --steps "$peer_steps"
  done
done
rm -f "$scratch"
record_facts wall_s:="$((SECONDS - start_s))" loadavg_end="$(cut -d' ' -f1-3 /proc/loadavg)"

python3 "$repo/bench/compare_table.py" "$out" || die "compare_table.py failed on $raw"
if [ "$has_gnuplot" = 0 ]; then
  echo "$prog: plot skipped, gnuplot not found (apt-get install gnuplot-nox); table in $out/table.md" >&2
  exit 3
fi
(cd "$out" && gnuplot step_time.gp) 2>>"$log" || die "gnuplot failed on $out/step_time.gp; log in $log"
echo "$prog: table in $out/table.md, plot in $out/step_time.png, raw lines in $raw" >&2
