#!/usr/bin/env python3
"""PyTorch's time for the step deepdream takes on a torchvision network.

One step: forward to a layer, the mean of its activations, backward to the
input, as dd_bench times it. The network is torchvision's own module with
random weights (only the time matters), run up to the layer and no further.
One JSON line per size on stdout.

usage: torchvision_step.py --arch ARCH --layer NAME [--sizes 512] [--threads N] [--steps 5]
"""
import argparse
import json
import os
import statistics
import sys
import time


def build(arch):
    import torch
    import torchvision

    ctor = getattr(torchvision.models, arch)
    kwargs = {"weights": None}
    if arch in ("googlenet", "inception_v3"):
        kwargs.update(aux_logits=False, init_weights=False, transform_input=True)
    torch.manual_seed(0)
    return ctor(**kwargs).eval()


# neural-style's VGG names -> torchvision's features index.
def vgg_index(arch, name):
    blocks = [2, 2, 3, 3, 3] if arch == "vgg16" else [2, 2, 4, 4, 4]
    i = 0
    for b, convs in enumerate(blocks, 1):
        for c in range(1, convs + 1):
            if name == f"conv{b}_{c}":
                return str(i)
            if name == f"relu{b}_{c}":
                return str(i + 1)
            i += 2
        if name == f"pool{b}":
            return str(i)
        i += 1
    raise SystemExit(f"torchvision_step: {arch}: no layer {name}")


class Reached(Exception):
    pass


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--arch", required=True)
    ap.add_argument("--layer", required=True)
    ap.add_argument("--sizes", default="512")
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--steps", type=int, default=5)
    a = ap.parse_args()
    import torch

    torch.set_num_threads(a.threads)
    model = build(a.arch)
    module_name = a.layer
    if a.arch.startswith("vgg"):
        module_name = "features." + vgg_index(a.arch, a.layer)
    elif a.arch == "resnet50" and a.layer.startswith("layer") and "." not in a.layer:
        module_name = a.layer  # the stage: its last block's output
    target = model.get_submodule(module_name)
    mean_std = (torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1), torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1))
    box = {}

    def hook(_m, _inp, out):
        box["out"] = out
        raise Reached  # nothing after the layer runs, as in deepdream

    target.register_forward_hook(hook)

    def step(x):
        x = x.detach().requires_grad_(True)
        try:
            model((x / 255 - mean_std[0]) / mean_std[1])
        except Reached:
            pass
        loss = box["out"].mean()
        loss.backward()
        return x.grad

    for side in [int(s) for s in a.sizes.split(",")]:
        g = torch.Generator().manual_seed(1)
        x = torch.rand(1, 3, side, side, generator=g) * 255
        for _ in range(2):
            step(x)  # warm-up
        times = []
        for _ in range(a.steps):
            t0 = time.perf_counter()
            step(x)
            times.append(time.perf_counter() - t0)
        print(json.dumps({"peer": "torchvision", "arch": a.arch, "layer": a.layer, "size": side,
                          "threads": a.threads, "torch": torch.__version__, "steps": a.steps,
                          "step_s": statistics.median(times), "step_min_s": min(times)}), flush=True)
        print(f"torchvision_step: {a.arch} {a.layer} {side}x{side}: step {statistics.median(times):.3f} s",
              file=sys.stderr)


if __name__ == "__main__":
    main()
