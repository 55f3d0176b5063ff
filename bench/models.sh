#!/usr/bin/env bash
# The step each network costs (docs/MODELS.md): for the built-in model and each
# torchvision architecture tools/convert_torchvision.py converts, dd_bench's
# gradient step (its default layers, exact and fast) and PyTorch's on the same
# torchvision module up to the same layer (bench/torchvision_step.py), side by
# side in one run. The torchvision weights are random (torch seed 0, batch norm
# statistics randomised): a step's time does not depend on the values, and
# nothing is downloaded.
set -euo pipefail

prog=models.sh
repo=$(cd "$(dirname "$0")/.." && pwd)
usage="usage: bench/models.sh [--sizes 512] [--threads N] [--reps 3] [--archs LIST] [--out DIR]
  --sizes LIST    square sides, comma separated (default 512)
  --threads N     threads for deepdream and PyTorch (default: online cores)
  --reps N        timed steps per size and program (default 3)
  --archs LIST    built-in,googlenet,inception_v3,vgg16,vgg19,resnet50 (default: all)
  --out DIR       models, raw.jsonl and table.md (default bench/out/models)
Needs build/dd_bench and a python3 with torch and torchvision (Debian's
python3-torchvision). Prints the table on stdout, progress on stderr."

sizes=512
threads=$(nproc)
reps=3
archs=built-in,googlenet,inception_v3,vgg16,vgg19,resnet50
out=$repo/bench/out/models
while [ $# -gt 0 ]; do
  case "$1" in
    --sizes) sizes=$2; shift 2 ;;
    --threads) threads=$2; shift 2 ;;
    --reps) reps=$2; shift 2 ;;
    --archs) archs=$2; shift 2 ;;
    --out) out=$2; shift 2 ;;
    -h|--help) echo "$usage"; exit 0 ;;
    *) echo "$prog: unknown argument '$1'" >&2; echo "$usage" >&2; exit 2 ;;
  esac
done

dd_bench=$repo/build/dd_bench
[ -x "$dd_bench" ] || { echo "$prog: $dd_bench not built (cmake --build build)" >&2; exit 1; }
py=""
for cand in python3 /usr/bin/python3; do
  if command -v "$cand" >/dev/null && "$cand" -c 'import torch, torchvision' 2>/dev/null; then py=$cand; break; fi
done
[ -n "$py" ] || { echo "$prog: no python3 with torch and torchvision (apt-get install python3-torchvision)" >&2; exit 1; }
mkdir -p "$out"
raw=$out/raw.jsonl
: > "$raw"

# The random-weight state dict of an architecture, saved where the converter reads it.
make_weights() {
  "$py" - "$1" "$2" <<'EOF'
import sys, torch, torchvision
arch, path = sys.argv[1], sys.argv[2]
torch.manual_seed(0)
kw = {"weights": None}
if arch in ("googlenet", "inception_v3"):
    kw.update(aux_logits=True, init_weights=True, transform_input=True)
m = getattr(torchvision.models, arch)(**kw).eval()
for mod in m.modules():
    if isinstance(mod, torch.nn.BatchNorm2d):
        mod.running_mean.uniform_(-0.5, 0.5); mod.running_var.uniform_(0.5, 2.0)
torch.save(m.state_dict(), path)
EOF
}

# A converted file's own default layers (the objective its dream takes).
file_default_layers() {
  "$py" -c 'import json, struct, sys
f = open(sys.argv[1], "rb"); n = struct.unpack("<Q", f.read(8))[0]
print(json.loads(f.read(n))["__metadata__"]["default_layers"])' "$1"
}

IFS=, read -r -a arch_list <<< "$archs"
for arch in "${arch_list[@]}"; do
  if [ "$arch" = built-in ]; then
    model_opt=() layers=mixed2,mixed4
  else
    model=$out/$arch.safetensors
    if [ ! -s "$model" ]; then
      echo "$prog: $arch: random weights, converted" >&2
      make_weights "$arch" "$out/$arch.pth"
      "$py" "$repo/tools/convert_torchvision.py" --arch "$arch" --weights "$out/$arch.pth" --out "$model" >&2
      rm -f "$out/$arch.pth"
    fi
    model_opt=(--model "$model") layers=$(file_default_layers "$model")
  fi
  echo "$prog: $arch: dd_bench, $layers" >&2
  "$dd_bench" "${model_opt[@]}" --layers "$layers" --sizes "$sizes" --threads "$threads" --reps "$reps" \
    --mode exact,fast | sed "s/^{/{\"arch\":\"$arch\",/" >> "$raw"
  if [ "$arch" != built-in ]; then
    echo "$prog: $arch: PyTorch, $layers" >&2
    "$py" "$repo/bench/torchvision_step.py" --arch "$arch" --layer "$layers" --sizes "$sizes" \
      --threads "$threads" --steps "$reps" >> "$raw"
  fi
done

"$py" - "$raw" <<'EOF' | tee "$out/table.md"
import json, sys
rows, header, peer = {}, {}, {}
for line in open(sys.argv[1]):
    r = json.loads(line)
    if r.get("bench") == "dd_bench":
        header[r["arch"]] = r
    elif r.get("peer") == "torchvision":
        peer[(r["arch"], r["size"])] = r
    elif "mode" in r:
        rows.setdefault((r["arch"], r["size"]), {})[r["mode"]] = r
print("| network | objective | size | GFLOP / pass | exact step s | fast step s | PyTorch step s | PyTorch / exact | peak RSS MiB |")
print("|---|---|---|---|---|---|---|---|---|")
for (arch, size), m in rows.items():
    e, f, p = m["exact"], m["fast"], peer.get((arch, size))
    torch_s = f"{p['step_s']:.3f}" if p else "-"
    ratio = f"{p['step_s'] / e['step_s']:.2f}" if p else "-"
    print(f"| {arch} | {header[arch]['objective']} | {size} | {e['flops_forward'] / 1e9:.1f} | {e['step_s']:.3f} | "
          f"{f['step_s']:.3f} ({f['fast_kernel']}) | {torch_s} | {ratio} | {e['peak_rss_kib'] / 1024:.0f} |")
EOF
