#!/usr/bin/env python3
"""tools/convert_torchvision.py and the engine against torchvision itself.

usage: test_torchvision.py TV_PROBE DEEPDREAM_CLI CONVERTER [ARCH ...]

For each architecture (default: all five), a torchvision model with random
weights and randomised batch-norm statistics (fixed seeds, nothing
downloaded) is saved as a state_dict and converted with --dtype f32. Then:
- the file's own graph, run by the small torch interpreter below, gives
  torchvision's layer outputs (the converter's tables are right);
- tests/tv_probe (the library) gives every layer's per-channel mean and max
  within 1e-4 of the layer's largest |activation| of torchvision's, at 224x224
  and 301x227 (W x H);
- d mean(layer) / d pixel for a shallow layer, the default one and the
  deepest against torch autograd: the shallow one to float32 rounding, the
  deeper ones by measures that ReLU and max-pool kinks cannot upset (see
  GRAD_STRICT and GRAD_DEEP below for why and how much);
- the deepdream command dreams a small PNG with the file and lists its
  layers with torchvision's channel counts.
Also: --dtype f16 (the gradient against torch with the same f16-rounded
kernels, and the error against the f32 model printed and loosely bounded),
--transform-input no, --upto, the
same bytes from two runs, and the converter's refusals (wrong architecture,
missing, extra, misshapen and non-float keys, a pickle that would run code,
a file that is no pickle, an unknown --upto layer, an f16 overflow): exit 1,
one line on stderr naming the culprit, no output and no temporary left.

Needs a python3 with torch, torchvision and numpy (tries python3, then
/usr/bin/python3); exits 77 (skipped) when there is none.
"""
import os
import subprocess
import sys

INTERPRETERS = ("python3", "/usr/bin/python3")
SKIP = 77


def reexec_with_torch():
    try:
        import numpy  # noqa: F401
        import torch  # noqa: F401
        import torchvision  # noqa: F401
        return
    except ImportError:
        pass
    if os.environ.get("DD_TV_REEXEC"):
        print("skip: no python3 with torch, torchvision and numpy")
        sys.exit(SKIP)
    for exe in INTERPRETERS:
        try:
            ok = subprocess.run([exe, "-c", "import numpy, torch, torchvision"], stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL).returncode == 0
        except OSError:
            ok = False
        if ok:
            env = dict(os.environ, DD_TV_REEXEC="1")
            sys.stdout.flush()
            os.execvpe(exe, [exe, os.path.abspath(__file__)] + sys.argv[1:], env)
    print("skip: no python3 with torch, torchvision and numpy (tried %s)" % ", ".join(INTERPRETERS))
    sys.exit(SKIP)


reexec_with_torch()

import json  # noqa: E402
import shutil  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
import torchvision  # noqa: E402

ARCHS = ("googlenet", "inception_v3", "vgg16", "vgg19", "resnet50")
SIZES = ((224, 224), (227, 301))  # (H, W)
TOL = 1e-4          # layer statistics, relative to the layer's largest |activation|
GRAPH_TOL = 1e-5    # the file's graph run by torch against torchvision
# Gradients. A ReLU network's input gradient is discontinuous: a pre-activation
# within rounding of 0, or two max-pool inputs within rounding of each other,
# send a different path into the gradient. float32 sums in another order
# (Winograd, GEMM blocking) flip a few of those, each moving the gradient over
# its receptive field by up to ~10% of max|grad| (torch itself, float32 against
# float64: 1.4e-2 at VGG16's pool5; float64 with each convolution's output
# perturbed by 1e-7 of its largest value: 0.11). So max|diff| <= 1e-4 max|grad|
# holds only where nothing flips. The checks: most pixels agree to float32
# rounding (median, p99), the whole agrees in energy (l2 = |g - ref| / |ref|)
# and in scale (slope of g on ref, minus 1), every row and column of the image
# agrees in energy (a border bug is a whole row or column off), and pixels no
# output sees get nothing ("dead"). The shallow layer, with few kinks behind
# it, is held to float32 rounding but for a handful of pixels. Limits are 2-3
# times the worst seen at every DD_CPU level; an average pool's backward that
# ignored count_padding at the edges broke the slope, a max pool's that dropped
# the windows past the edge broke the columns.
GRAD_STRICT = {"median": 1e-5, "p99": 1e-4, "l2": 1e-2, "slope": 1e-4, "row": 0.05, "col": 0.05,
               "dead": 1e-6, "max": 0.1}
GRAD_DEEP = {"median": 1e-3, "p99": 3e-2, "l2": 0.1, "slope": 2e-3, "row": 0.25, "col": 0.25,
             "dead": 1e-4, "max": 0.5}
F16_L2 = 0.5        # f16 kernels against the f32 model: a bound that only a broken f16 path breaks
MEAN, STD = [0.485, 0.456, 0.406], [0.229, 0.224, 0.225]
DEFAULTS = {"googlenet": "inception4c", "inception_v3": "Mixed_5d", "vgg16": "relu4_3", "vgg19": "relu4_3",
            "resnet50": "layer3"}
# Gradients: a shallow layer (held to GRAD_STRICT), then the default, the deepest (GRAD_DEEP).
GRAD_LAYERS = {"googlenet": ["maxpool2", "inception4c", "inception5b"],
               "inception_v3": ["maxpool1", "Mixed_5d", "Mixed_7c"],
               "vgg16": ["conv1_2", "relu4_3", "pool5"], "vgg19": ["conv1_2", "relu4_3", "pool5"],
               "resnet50": ["maxpool", "layer1", "layer3", "layer4"]}

failures = []


def check(cond, msg):
    if not cond:
        failures.append(msg)
        print("FAIL " + msg, flush=True)
    return cond


# ---- models -------------------------------------------------------------------

def make_model(arch, seed):
    """torchvision's architecture, random weights, batch norm statistics set from
    one training-mode pass (so activations keep a sensible scale through the
    depth) and then randomised, with random affine parameters: eval mode."""
    torch.manual_seed(seed)
    kw = {"weights": None}
    if arch in ("googlenet", "inception_v3"):
        kw.update(aux_logits=True, transform_input=True, init_weights=True)
    model = getattr(torchvision.models, arch)(**kw)
    for m in model.modules():
        if isinstance(m, torch.nn.ReLU):
            m.inplace = False
    bns = [m for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    if bns:
        for m in bns:
            m.momentum = None  # running stats = this pass's statistics
            m.reset_running_stats()
        model.train()
        with torch.no_grad():
            model(normalise(torch.rand(2, 3, 299, 299) * 255))
        with torch.no_grad():
            for m in bns:
                c = m.num_features
                sd = m.running_var.sqrt()
                m.running_mean += 0.2 * sd * torch.randn(c)
                m.running_var *= torch.empty(c).uniform_(0.5, 2.0)
                m.weight.copy_(torch.empty(c).uniform_(0.5, 1.5) * torch.where(torch.rand(c) < 0.1, -1.0, 1.0))
                m.bias.copy_(0.2 * torch.randn(c))
    return model.eval()


def normalise(pixels):
    mean = torch.tensor(MEAN).view(1, 3, 1, 1)
    std = torch.tensor(STD).view(1, 3, 1, 1)
    return (pixels / 255 - mean) / std


def vgg_names(model):
    """features.N -> conv1_1, relu1_1, pool1, ..."""
    names, block, i = {}, 1, 1
    for idx, m in enumerate(model.features):
        if isinstance(m, torch.nn.Conv2d):
            names["conv%d_%d" % (block, i)] = "features.%d" % idx
        elif isinstance(m, torch.nn.ReLU):
            names["relu%d_%d" % (block, i)] = "features.%d" % idx
            i += 1
        elif isinstance(m, torch.nn.MaxPool2d):
            names["pool%d" % block] = "features.%d" % idx
            block, i = block + 1, 1
    return names


def modules_for(arch, model, layer):
    """The torchvision modules whose outputs, concatenated, are the layer."""
    mods = dict(model.named_modules())
    if arch.startswith("vgg"):
        return [vgg_names(model)[layer]]
    if layer in mods:
        return [layer]
    if arch == "inception_v3" and (layer.endswith(".branch3x3") or layer.endswith(".branch3x3dbl")):
        base = layer + ("_2" if layer.endswith("3x3") else "_3")
        return [base + "a", base + "b"]
    raise KeyError(layer)


def torch_forward(arch, model, pixels, layers, grad_layers=()):
    """Outputs of the layers (float64 numpy) and d mean(layer) / d pixels."""
    mods = dict(model.named_modules())
    wanted = {layer: modules_for(arch, model, layer) for layer in layers}
    captured = {}
    hooks = []
    for path in sorted({p for ps in wanted.values() for p in ps}):
        def hook(_m, _in, out, path=path):
            captured[path] = out.clone()
        hooks.append(mods[path].register_forward_hook(hook))
    x = pixels.clone().requires_grad_(bool(grad_layers))
    try:
        with torch.set_grad_enabled(bool(grad_layers)):
            model(normalise(x))
    finally:
        for h in hooks:
            h.remove()
    outs = {layer: torch.cat([captured[p] for p in ps], 1) for layer, ps in wanted.items()}
    grads = {}
    for layer in grad_layers:
        (g,) = torch.autograd.grad(outs[layer].mean(), x, retain_graph=True)
        grads[layer] = g[0].double().numpy()
    return {k: v.detach()[0].double().numpy() for k, v in outs.items()}, grads


# ---- the converted file, read here ----------------------------------------------

def read_safetensors(path):
    with open(path, "rb") as f:
        data = f.read()
    n = int.from_bytes(data[:8], "little")
    header = json.loads(data[8:8 + n])
    meta = header.pop("__metadata__")
    base = 8 + n
    tensors, end = {}, base
    for name, e in sorted(header.items(), key=lambda kv: kv[1]["data_offsets"][0]):
        a, b = e["data_offsets"]
        check(base + a == end, "%s: tensor %s does not follow the previous one" % (path, name))
        dt = {"F32": "<f4", "F16": "<f2"}[e["dtype"]]
        tensors[name] = torch.from_numpy(
            np.frombuffer(data, dtype=dt, count=(b - a) // np.dtype(dt).itemsize, offset=base + a)
            .astype(np.float32).reshape(e["shape"]))
        end = base + b
    check(end == len(data), "%s: %d bytes after the last tensor" % (path, len(data) - end))
    return meta, header, tensors


def run_graph(meta, tensors, x):
    """The file's graph run with torch's own ops: every node's output."""
    graph = json.loads(meta["graph"])
    vals = {graph["input"]["name"]: x}
    for n in graph["nodes"]:
        ins = [vals[i] for i in n["inputs"]]
        op = n["op"]
        if op == "conv2d":
            assert n["kernel_layout"] == "OIHW"
            t, b, l, r = n["padding"]
            y = F.conv2d(F.pad(ins[0], (l, r, t, b)), tensors[n["tensors"]["kernel"]],
                         tensors[n["tensors"]["bias"]] if n["use_bias"] else None, stride=n["strides"])
        elif op == "batch_norm":
            tn = n["tensors"]
            y = F.batch_norm(ins[0], tensors[tn["moving_mean"]], tensors[tn["moving_variance"]],
                             tensors[tn["gamma"]], tensors[tn["beta"]], False, 0.0, n["epsilon"])
        elif op == "relu":
            y = F.relu(ins[0])
        elif op == "pool":
            t, b, l, r = n["padding"]
            assert t == b and l == r
            if n["pool"] == "max":
                y = F.max_pool2d(ins[0], n["size"], n["strides"], (t, l), ceil_mode=n["ceil_mode"])
            else:
                y = F.avg_pool2d(ins[0], n["size"], n["strides"], (t, l), ceil_mode=n["ceil_mode"],
                                 count_include_pad=n["count_padding"])
        elif op == "concat":
            y = torch.cat(ins, 1)
        elif op == "add":
            y = sum(ins[1:], ins[0])
        else:
            raise ValueError(op)
        vals[n["name"]] = y
    return vals


def network_input(meta, pixels):
    pre = json.loads(meta["preprocess"])
    x = normalise(pixels)
    if pre["transform_input"]:  # torchvision's own, in googlenet and inception_v3
        s = torch.tensor(STD).view(1, 3, 1, 1)
        m = torch.tensor(MEAN).view(1, 3, 1, 1)
        x = x * (s / 0.5) + (m - 0.5) / 0.5
    return x


# ---- running things ---------------------------------------------------------------

def run(cmd, **kw):
    return subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, universal_newlines=True, **kw)


def convert(conv, arch, weights, out, *extra):
    return run([sys.executable, conv, "--arch", arch, "--weights", weights, "--out", out] + list(extra))


def random_pixels(h, w, seed):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(1, 3, h, w, generator=g, dtype=torch.float32) * 255


def probe(tv_probe, model_file, pixels, outdir, grad_layers):
    os.makedirs(outdir, exist_ok=True)
    h, w = pixels.shape[2:]
    pix_path = os.path.join(outdir, "pixels.f32")
    pixels[0].numpy().astype("<f4").tofile(pix_path)
    r = run([tv_probe, model_file, pix_path, str(h), str(w), outdir] + list(grad_layers))
    if not check(r.returncode == 0, "tv_probe %s %dx%d: exit %d: %s" % (model_file, w, h, r.returncode,
                                                                        r.stderr.strip())):
        return None, None
    stats = {}
    with open(os.path.join(outdir, "stats.txt")) as f:
        for line in f:
            name, c, mean, mx = line.split()
            stats.setdefault(name, []).append((int(c), float(mean), float(mx)))
    grads = {layer: np.fromfile(os.path.join(outdir, "grad_%s.f32" % layer), dtype="<f4")
             .astype(np.float64).reshape(3, h, w) for layer in grad_layers}
    return stats, grads


def compare_stats(tag, stats, ref):
    """Worst |diff| / max|activation| over the layers; fails past TOL."""
    worst, where = 0.0, ""
    check(set(stats) == set(ref), "%s: layers %s in the probe, %s in torch" % (
        tag, sorted(set(stats) ^ set(ref))[:5], "(the difference)"))
    for layer, rows in stats.items():
        if layer not in ref:
            continue
        act = ref[layer]
        scale = float(np.abs(act).max())
        if not check(len(rows) == act.shape[0], "%s %s: %d channels, torch has %d" % (
                tag, layer, len(rows), act.shape[0])):
            continue
        flat = act.reshape(act.shape[0], -1)
        want_mean, want_max = flat.mean(1), flat.max(1)
        bad = 0
        for c, mean, mx in rows:
            err = max(abs(mean - want_mean[c]), abs(mx - want_max[c])) / (scale or 1.0)
            if err > worst:
                worst, where = err, "%s:%d" % (layer, c)
            if err > TOL:
                if bad < 3:
                    check(False, "%s %s:%d: mean %.9g max %.9g, torch %.9g %.9g (|act| up to %.6g)" % (
                        tag, layer, c, mean, mx, want_mean[c], want_max[c], scale))
                bad += 1
        if bad > 3:
            check(False, "%s %s: %d of %d channels off" % (tag, layer, bad, len(rows)))
    return worst, where


def grad_metrics(got, want):
    scale = float(np.abs(want).max()) or 1.0
    d = np.abs(got - want)
    e2 = ((got - want) ** 2)
    w2 = want ** 2
    live = w2.sum((0, 2)) > 0, w2.sum((0, 1)) > 0
    rows = np.sqrt(e2.sum((0, 2))[live[0]] / w2.sum((0, 2))[live[0]])
    cols = np.sqrt(e2.sum((0, 1))[live[1]] / w2.sum((0, 1))[live[1]])
    return {"max": float(d.max()) / scale, "median": float(np.median(d)) / scale,
            "p99": float(np.quantile(d, 0.99)) / scale,
            "l2": float(np.sqrt(e2.sum() / w2.sum())), "slope": float((got * want).sum() / w2.sum()) - 1,
            "row": float(rows.max()), "col": float(cols.max()),
            "dead": float(np.abs(got[want == 0]).max(initial=0)) / scale}


def compare_grad(tag, got, want, limits):
    """The metrics of grad_metrics against limits; returns the metrics."""
    m = grad_metrics(got, want)
    over = ["%s %.3g > %g" % (k, abs(m[k]), limits[k]) for k in limits if not abs(m[k]) <= limits[k]]
    check(not over, "%s: %s (all: %s)" % (tag, ", ".join(over), " ".join("%s %.2g" % kv for kv in m.items())))
    return m


def worse(a, b):
    """The larger of two metric dicts, key by key."""
    return {k: max(abs(a.get(k, 0)), abs(b[k])) for k in b}


# ---- per architecture ------------------------------------------------------------------

def test_arch(arch, args, work, summary):
    t0 = time.time()
    model = make_model(arch, seed=ARCHS.index(arch) + 1)
    weights = os.path.join(work, arch + ".pth")
    sd = model.state_dict()
    if arch == "vgg19":  # a trunk-only file (the classifier is optional): 80 MB rather than 550
        sd = {k: v for k, v in sd.items() if k.startswith("features.")}
    torch.save(sd, weights)
    out = os.path.join(work, arch + ".safetensors")
    r = convert(args.conv, arch, weights, out, "--dtype", "f32")
    if not check(r.returncode == 0 and os.path.exists(out), "%s: convert: %s" % (arch, r.stderr.strip())):
        return
    check(r.stdout.count("\n") == 1 and arch in r.stdout and r.stderr == "", "%s: converter said %r %r" % (
        arch, r.stdout, r.stderr))
    meta, header, tensors = read_safetensors(out)
    layers = json.loads(meta["layers"])
    graph = json.loads(meta["graph"])
    node_names = {n["name"] for n in graph["nodes"]}
    check(meta["format"] == "deepdream-graph-1", "%s: format %s" % (arch, meta["format"]))
    check(meta["default_layers"] == DEFAULTS[arch], "%s: default_layers %s" % (arch, meta["default_layers"]))
    check(all(l in node_names for l in layers), "%s: a layer that is no node" % arch)
    check(all(h["dtype"] == "F32" for h in header.values()), "%s: --dtype f32 wrote another dtype" % arch)
    pre = json.loads(meta["preprocess"])
    check(pre["transform_input"] == (arch in ("googlenet", "inception_v3")), "%s: transform_input" % arch)
    for l in GRAD_LAYERS[arch]:
        check(l in layers, "%s: no layer %s" % (arch, l))

    # The file's graph under torch: the converter's tables against torchvision's modules.
    h, w = SIZES[1]
    pixels = random_pixels(h, w, 99)
    ref, _ = torch_forward(arch, model, pixels, layers)
    with torch.no_grad():
        vals = run_graph(meta, tensors, network_input(meta, pixels))
    graph_err = 0.0
    for l in layers:
        got = vals[l][0].double().numpy()
        if not check(got.shape == ref[l].shape, "%s graph %s: shape %s, torchvision %s" % (
                arch, l, got.shape, ref[l].shape)):
            continue
        e = float(np.abs(got - ref[l]).max()) / (float(np.abs(ref[l]).max()) or 1.0)
        graph_err = max(graph_err, e)
        check(e <= GRAPH_TOL, "%s graph %s: max|diff| %.3g of max|act|" % (arch, l, e))

    res = {"graph": graph_err, "stats": (0.0, ""), "strict": {}, "deep": {}}
    for h, w in SIZES:
        pixels = random_pixels(h, w, h * 1000 + w)
        tag = "%s %dx%d" % (arch, w, h)
        stats, grads = probe(args.tv_probe, out, pixels, os.path.join(work, "%s-%dx%d" % (arch, w, h)),
                             GRAD_LAYERS[arch])
        if stats is None:
            continue
        ref, ref_grads = torch_forward(arch, model, pixels, layers, GRAD_LAYERS[arch])
        worst = compare_stats(tag, stats, ref)
        if worst[0] >= res["stats"][0]:
            res["stats"] = (worst[0], "%s at %dx%d" % (worst[1], w, h))
        for i, l in enumerate(GRAD_LAYERS[arch]):
            tier = "strict" if i == 0 else "deep"
            m = compare_grad("%s d mean(%s)/d pixel" % (tag, l), grads[l], ref_grads[l],
                             GRAD_STRICT if i == 0 else GRAD_DEEP)
            res[tier] = worse(res[tier], m)
    if arch == "googlenet":
        check_transform_input_no(args, work, model, weights)
    res["seconds"] = time.time() - t0
    summary[arch] = res
    print("%s: graph %.2g, stats %.2g (%s), gradient: %s max %.2g l2 %.2g, deeper max %.2g l2 %.2g median %.2g; "
          "%.0f s" % (arch, res["graph"], res["stats"][0], res["stats"][1], GRAD_LAYERS[arch][0],
                      res["strict"].get("max", -1), res["strict"].get("l2", -1), res["deep"].get("max", -1),
                      res["deep"].get("l2", -1), res["deep"].get("median", -1), res["seconds"]), flush=True)
    cli_dream(arch, args, out, {l: ref[l].shape[0] for l in layers}, work)


def check_transform_input_no(args, work, model, weights):
    """--transform-input no: the same weights read as a model built without it."""
    out = os.path.join(work, "googlenet-plain.safetensors")
    r = convert(args.conv, "googlenet", weights, out, "--dtype", "f32", "--upto", "inception3b",
                "--transform-input", "no")
    if not check(r.returncode == 0, "--transform-input no: %s" % r.stderr.strip()):
        return
    check(json.loads(read_safetensors(out)[0]["preprocess"])["transform_input"] is False,
          "--transform-input no: the file says otherwise")
    model.transform_input = False
    try:
        pixels = random_pixels(64, 80, 6480)
        stats, _ = probe(args.tv_probe, out, pixels, os.path.join(work, "googlenet-plain"), [])
        ref, _ = torch_forward("googlenet", model, pixels, ["conv1", "inception3b"])
    finally:
        model.transform_input = True
    if stats is not None:
        compare_stats("googlenet --transform-input no", {l: stats[l] for l in ref}, ref)


def cli_dream(arch, args, model_file, channels, work):
    """A dream with the file through the command, and its --list-layers."""
    from PIL import Image
    rng = np.random.RandomState(7)
    img = (rng.rand(80, 96, 3) * 255).astype(np.uint8)
    src, dst = os.path.join(work, "in.png"), os.path.join(work, arch + "-dream.png")
    Image.fromarray(img).save(src)
    r = run([args.cli, "-m", model_file, "--octaves", "1", "--steps", "2", "--step-size", "0.2", "--quiet",
             src, dst])
    if check(r.returncode == 0, "%s: deepdream exit %d: %s" % (arch, r.returncode, r.stderr.strip())):
        out = np.asarray(Image.open(dst).convert("RGB"))
        check(out.shape == img.shape, "%s: dream is %s, input %s" % (arch, out.shape, img.shape))
        check(out.shape == img.shape and np.abs(out.astype(int) - img).max() > 0, "%s: dream == input" % arch)
    r = run([args.cli, "-m", model_file, "--list-layers"])
    if check(r.returncode == 0, "%s: --list-layers exit %d: %s" % (arch, r.returncode, r.stderr.strip())):
        listed = {}
        for line in r.stdout.splitlines():
            f = line.split()
            if len(f) == 2 and f[1].isdigit():
                listed[f[0]] = int(f[1])
        check(listed == channels, "%s: --list-layers differs from torchvision's layers and channels: %s" % (
            arch, sorted(set(listed.items()) ^ set(channels.items()))[:6]))


def test_f16(arch, args, work):
    """f16 kernels: the gradient of the default layer against torch with the
    same kernels rounded to f16 (the engine's part), and against the f32 model
    (what f16 costs)."""
    weights = os.path.join(work, arch + ".pth")
    if not os.path.exists(weights):
        return None
    model = make_model(arch, seed=ARCHS.index(arch) + 1)
    out = os.path.join(work, arch + "-f16.safetensors")
    r = convert(args.conv, arch, weights, out, "--dtype", "f16")
    if not check(r.returncode == 0, "%s f16: convert: %s" % (arch, r.stderr.strip())):
        return None
    _, header, _ = read_safetensors(out)
    check({h["dtype"] for h in header.values() if len(h["shape"]) == 4} == {"F16"} and
          {h["dtype"] for h in header.values() if len(h["shape"]) == 1} == {"F32"},
          "%s f16: kernels F16 and vectors F32 expected" % arch)
    h, w = SIZES[0]
    pixels = random_pixels(h, w, h * 1000 + w)
    layer = DEFAULTS[arch]
    _, grads = probe(args.tv_probe, out, pixels, os.path.join(work, arch + "-f16"), [layer])
    if grads is None:
        return None
    _, ref = torch_forward(arch, model, pixels, [layer], [layer])
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.Conv2d):
                m.weight.copy_(m.weight.half().float())
    _, ref16 = torch_forward(arch, model, pixels, [layer], [layer])
    rounded = compare_grad("%s f16 d mean(%s)/d pixel, against f16-rounded kernels" % (arch, layer),
                           grads[layer], ref16[layer], GRAD_DEEP)
    full = compare_grad("%s f16 d mean(%s)/d pixel, against the f32 model" % (arch, layer),
                        grads[layer], ref[layer], {"l2": F16_L2})
    return rounded, full


# ---- the converter's refusals and options ----------------------------------------------

def refuse(args, work, tag, arch, weights, wants, *extra):
    d = os.path.join(work, "refuse-" + tag)
    os.makedirs(d)
    out = os.path.join(d, "out.safetensors")
    r = convert(args.conv, arch, weights, out, *extra)
    lines = r.stderr.splitlines()
    ok = check(r.returncode == 1, "refuse %s: exit %d (stderr %r)" % (tag, r.returncode, r.stderr))
    ok &= check(len(lines) == 1 and r.stderr.endswith("\n"), "refuse %s: not one line: %r" % (tag, r.stderr))
    for want in wants:
        ok &= check(want in r.stderr, "refuse %s: %r does not name %s" % (tag, r.stderr.strip(), want))
    ok &= check(os.listdir(d) == [], "refuse %s: left %s" % (tag, os.listdir(d)))
    if ok:
        print("refused %s: %s" % (tag, r.stderr.strip()))


class Touch:
    """Unpickled, it would run a shell command that creates a file."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, ("touch '%s'" % self.marker,))


class Opener:
    """Unpickled, it would create a file through open()."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))


def test_refusals(args, work):
    torch.manual_seed(5)
    res = torchvision.models.resnet50(weights=None).state_dict()
    vgg = {k: v for k, v in torchvision.models.vgg16(weights=None).state_dict().items()
           if k.startswith("features.")}  # the classifier is optional: 60 MB, not 550
    goog = torchvision.models.googlenet(weights=None, aux_logits=False, init_weights=False).state_dict()

    def save(name, sd):
        p = os.path.join(work, name)
        torch.save(sd, p)
        return p

    vgg_p = save("r-vgg16.pth", vgg)
    refuse(args, work, "wrong-arch", "resnet50", vgg_p, ["resnet50", "vgg16"])
    sd = dict(res)
    del sd["layer3.2.bn1.running_var"]
    refuse(args, work, "missing", "resnet50", save("r-missing.pth", sd), ["layer3.2.bn1.running_var"])
    sd = dict(res)
    sd["layer5.0.conv1.weight"] = torch.zeros(1)
    refuse(args, work, "extra", "resnet50", save("r-extra.pth", sd), ["layer5.0.conv1.weight"])
    sd = dict(res)
    sd["layer2.0.conv2.weight"] = torch.zeros(128, 128, 1, 3)
    refuse(args, work, "shape", "resnet50", save("r-shape.pth", sd), ["layer2.0.conv2.weight"])
    sd = dict(res)
    sd["layer1.0.bn2.running_mean"] = torch.zeros(64, dtype=torch.int32)
    refuse(args, work, "dtype", "resnet50", save("r-dtype.pth", sd), ["layer1.0.bn2.running_mean"])
    sd = dict(goog)
    sd["inception4a.branch1.bn.bias"] = "192 zeros"  # (torch 1.13's weights_only takes no float lists)
    refuse(args, work, "not-a-tensor", "googlenet", save("r-list.pth", sd), ["inception4a.branch1.bn.bias"])
    sd = dict(goog)
    sd["inception3b.branch2.1.conv.weight"] = sd["inception3b.branch2.1.conv.weight"].clone()
    sd["inception3b.branch2.1.conv.weight"][0, 0, 0, 0] = 1e5
    refuse(args, work, "f16-range", "googlenet", save("r-big.pth", sd), ["inception3b.branch2.1.conv.weight"])
    for cls in (Touch, Opener):
        marker = os.path.join(work, "pwned-" + cls.__name__)
        sd = dict(goog)
        sd["conv1.conv.weight"] = cls(marker)
        p = save("r-evil-%s.pth" % cls.__name__, sd)
        check(not os.path.exists(marker), "the pickle ran while it was saved")
        refuse(args, work, "pickle-" + cls.__name__, "googlenet", p, [p])
        check(not os.path.exists(marker), "the converter ran code from the pickle %s (%s exists)" % (p, marker))
    junk = os.path.join(work, "r-junk.pth")
    with open(junk, "wb") as f:
        f.write(b"\x80\x02not a pickle at all" * 10)
    refuse(args, work, "no-pickle", "googlenet", junk, [junk])
    refuse(args, work, "missing-file", "googlenet", os.path.join(work, "nonexistent.pth"), ["nonexistent.pth"])
    goog_p = save("r-goog.pth", goog)
    refuse(args, work, "upto", "googlenet", goog_p, ["inception9z"], "--upto", "inception9z")
    return goog_p


def test_upto(args, work, goog_p):
    full = os.path.join(work, "goog-full.safetensors")
    r = convert(args.conv, "googlenet", goog_p, full)
    if not check(r.returncode == 0, "googlenet (aux_logits=False) convert: %s" % r.stderr.strip()):
        return
    all_layers = json.loads(read_safetensors(full)[0]["layers"])
    for upto, default in (("inception4c", "inception4c"), ("inception3b", "inception3b"),
                          ("inception5b", "inception4c")):
        out = os.path.join(work, "goog-%s.safetensors" % upto)
        r = convert(args.conv, "googlenet", goog_p, out, "--upto", upto)
        if not check(r.returncode == 0, "--upto %s: %s" % (upto, r.stderr.strip())):
            continue
        meta, header, _ = read_safetensors(out)
        layers = json.loads(meta["layers"])
        check(layers == all_layers[:all_layers.index(upto) + 1], "--upto %s: layers %s" % (upto, layers[-3:]))
        check(meta["default_layers"] == default, "--upto %s: default_layers %s" % (upto, meta["default_layers"]))
        used = {t for n in json.loads(meta["graph"])["nodes"] for t in n.get("tensors", {}).values()}
        check(used == set(header), "--upto %s: tensors the graph does not use" % upto)
        if upto == "inception4c":
            r = run([args.cli, "-m", out, "--list-layers"])
            check(r.returncode == 0 and "inception4c" in r.stdout + r.stderr and
                  "inception4d" not in r.stdout + r.stderr, "--upto inception4c: --list-layers: %s %s" % (
                      r.stdout[-200:], r.stderr.strip()))
    again = os.path.join(work, "goog-again.safetensors")
    r = convert(args.conv, "googlenet", goog_p, again)
    with open(full, "rb") as a, open(again, "rb") as b:
        check(r.returncode == 0 and a.read() == b.read(), "two conversions differ")


class Args:
    pass


def main():
    if len(sys.argv) < 4:
        print("usage: test_torchvision.py TV_PROBE DEEPDREAM_CLI CONVERTER [ARCH ...]", file=sys.stderr)
        return 2
    args = Args()
    args.tv_probe, args.cli, args.conv = (os.path.abspath(a) for a in sys.argv[1:4])
    archs = sys.argv[4:] or list(ARCHS)
    torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))
    t0 = time.time()
    work = tempfile.mkdtemp(prefix="dd-tv-")
    summary = {}
    try:
        goog_p = test_refusals(args, work)
        test_upto(args, work, goog_p)
        for arch in archs:
            test_arch(arch, args, work, summary)
        f16 = {a: test_f16(a, args, work) for a in archs}
        print("summary: stats |diff| / max|activation| (limit %g); gradients |diff| / max|grad| (max), "
              "|diff|_2 / |grad|_2 (l2), at %s (W x H)" % (TOL, ", ".join("%dx%d" % (w, h) for h, w in SIZES)))
        print("  %-12s %-8s %-8s | %-17s | %-26s | %-17s | %s" % (
            "", "graph", "stats", "f32 shallow", "f32 deeper", "f16 vs f16-rounded", "f16 vs f32"))
        print("  %-12s %-8s %-8s | %-8s %-8s | %-8s %-8s %-8s | %-8s %-8s | %-8s %-8s" % (
            "", "", "", "max", "l2", "max", "l2", "median", "max", "l2", "max", "l2"))
        for a in archs:
            s = summary.get(a)
            if not s:
                continue
            r16, f16f = f16.get(a) or ({}, {})
            print("  %-12s %-8.2g %-8.2g | %-8.2g %-8.2g | %-8.2g %-8.2g %-8.2g | %-8.2g %-8.2g | %-8.2g %-8.2g" % (
                a, s["graph"], s["stats"][0], s["strict"].get("max", -1), s["strict"].get("l2", -1),
                s["deep"].get("max", -1), s["deep"].get("l2", -1), s["deep"].get("median", -1),
                r16.get("max", -1), r16.get("l2", -1), f16f.get("max", -1), f16f.get("l2", -1)))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print("%d failure(s), %.0f s" % (len(failures), time.time() - t0))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
