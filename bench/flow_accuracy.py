#!/usr/bin/python3
"""Our optical flow against OpenCV's on synthetic pairs: mean endpoint error and time per pair.

usage: /usr/bin/python3 bench/flow_accuracy.py BENCH_FLOW [--methods farneback]
           [--image samples/coffee.png] [--size 640x360] [--threads 1,2] [--runs 5]

BENCH_FLOW is the built bench_flow (build/bench_flow). Each pair is a photo's luma at the given
size (a centre crop to the aspect, then cv2.INTER_AREA), and the same warped by a known motion
with bilinear sampling: b(T(p)) = a(p), so the true flow at p is T(p) - p. Both frames are
rounded to 8 bits, as video frames are, and every method sees the same bytes. The mean and median
EPE are taken over the interior: a border of the largest true motion plus 4 pixels is left out. Times
are the best of --runs, per thread count (cv2.setNumThreads for OpenCV). Needs numpy and cv2
(Debian: python3-opencv); prints a Markdown table on stdout.
"""
import argparse
import math
import os
import subprocess
import sys
import tempfile
import time

import cv2
import numpy as np

# (name, kind, parameters): translation (dx, dy), rotation (degrees about the centre), zoom (factor).
MOTIONS = [
    ("translate 2,0", "t", (2.0, 0.0)),
    ("translate 0,-3", "t", (0.0, -3.0)),
    ("translate 5,4", "t", (5.0, 4.0)),
    ("translate 1.5,-0.75", "t", (1.5, -0.75)),
    ("translate 0.3,0.2", "t", (0.3, 0.2)),
    ("translate 12,-7", "t", (12.0, -7.0)),
    ("rotate 0.5 deg", "r", 0.5),
    ("rotate 2 deg", "r", 2.0),
    ("zoom 1.02", "z", 1.02),
    ("zero", "t", (0.0, 0.0)),
]


def load_luma(path, w, h):
    bgr = cv2.imread(path, cv2.IMREAD_COLOR)
    if bgr is None:
        sys.exit(f"flow_accuracy.py: cannot read {path}")
    ih, iw = bgr.shape[:2]
    if iw * h > ih * w:  # too wide: crop the sides
        cw = ih * w // h
        bgr = bgr[:, (iw - cw) // 2:(iw - cw) // 2 + cw]
    else:
        ch = iw * h // w
        bgr = bgr[(ih - ch) // 2:(ih - ch) // 2 + ch]
    rgb = cv2.resize(bgr, (w, h), interpolation=cv2.INTER_AREA)[:, :, ::-1].astype(np.float64)
    return 0.299 * rgb[:, :, 0] + 0.587 * rgb[:, :, 1] + 0.114 * rgb[:, :, 2]


def true_flow(kind, param, h, w):
    """The flow at each pixel of a, and the inverse map: where b's pixel q comes from in a."""
    y, x = np.mgrid[0:h, 0:w].astype(np.float64)
    cx, cy = (w - 1) / 2, (h - 1) / 2
    if kind == "t":
        dx, dy = param
        return np.full((h, w), dx), np.full((h, w), dy), x - dx, y - dy
    if kind == "r":
        t = math.radians(param)
        c, s = math.cos(t), math.sin(t)
        fx = cx + c * (x - cx) - s * (y - cy)
        fy = cy + s * (x - cx) + c * (y - cy)
        sx = cx + c * (x - cx) + s * (y - cy)
        sy = cy - s * (x - cx) + c * (y - cy)
        return fx - x, fy - y, sx, sy
    z = param
    fx, fy = cx + z * (x - cx), cy + z * (y - cy)
    return fx - x, fy - y, cx + (x - cx) / z, cy + (y - cy) / z


def bilinear(img, sx, sy):
    """img sampled at (sx, sy), the coordinates clamped to the image (edge pixels repeat)."""
    h, w = img.shape
    sx = np.clip(sx, 0, w - 1)
    sy = np.clip(sy, 0, h - 1)
    x0 = np.minimum(np.floor(sx).astype(int), w - 2)
    y0 = np.minimum(np.floor(sy).astype(int), h - 2)
    ax, ay = sx - x0, sy - y0
    return ((1 - ax) * (1 - ay) * img[y0, x0] + ax * (1 - ay) * img[y0, x0 + 1] +
            (1 - ax) * ay * img[y0 + 1, x0] + ax * ay * img[y0 + 1, x0 + 1])


def interior_epe(u, v, gu, gv):
    """Mean and median endpoint error over the interior."""
    m = int(math.ceil(max(np.abs(gu).max(), np.abs(gv).max()))) + 4
    e = np.hypot(u - gu, v - gv)[m:-m, m:-m]
    return float(e.mean()), float(np.median(e))


def run_ours(exe, method, a, b, threads, runs, tmp):
    h, w = a.shape
    pa, pb, pf = (os.path.join(tmp, n) for n in ("a.f32", "b.f32", "flow.f32"))
    a.astype(np.float32).tofile(pa)
    b.astype(np.float32).tofile(pb)
    out = subprocess.run([exe, method, str(w), str(h), pa, pb, pf, str(threads), str(runs)],
                         capture_output=True, text=True)
    if out.returncode:
        sys.exit(f"flow_accuracy.py: {exe} {method}: {out.stderr.strip()}")
    f = np.fromfile(pf, dtype=np.float32).reshape(2, h, w)
    return f[0], f[1], float(out.stdout.strip())


def opencv_methods():
    def farneback(a, b):
        # OpenCV's own example settings, with enough levels for 640x360 (coarsest 22 px).
        return cv2.calcOpticalFlowFarneback(a, b, None, 0.5, 5, 15, 3, 5, 1.2, 0)

    def dis(preset):
        d = cv2.DISOpticalFlow_create(preset)
        return lambda a, b: d.calc(a, b, None)

    return [("cv2 Farneback", farneback), ("cv2 DIS fast", dis(cv2.DISOPTICAL_FLOW_PRESET_FAST)),
            ("cv2 DIS medium", dis(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM))]


def run_cv(fn, a8, b8, threads, runs):
    cv2.setNumThreads(threads)
    best = math.inf
    for _ in range(runs):
        t0 = time.perf_counter()
        f = fn(a8, b8)
        best = min(best, time.perf_counter() - t0)
    return f[:, :, 0], f[:, :, 1], 1e3 * best


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("bench_flow")
    ap.add_argument("--methods", default="farneback")
    ap.add_argument("--image", default=os.path.join(os.path.dirname(__file__), "..", "samples", "coffee.png"))
    ap.add_argument("--size", default="640x360")
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--runs", type=int, default=5)
    args = ap.parse_args()
    w, h = (int(s) for s in args.size.split("x"))
    threads = [int(t) for t in args.threads.split(",")]
    ours = args.methods.split(",")
    a = np.round(load_luma(args.image, w, h)).clip(0, 255)
    a8 = a.astype(np.uint8)

    names = ours + [n for n, _ in opencv_methods()]
    epe = {n: [] for n in names}
    med = {n: [] for n in names}
    ms = {(n, t): [] for n in names for t in threads}
    with tempfile.TemporaryDirectory() as tmp:
        for _, kind, param in MOTIONS:
            gu, gv, sx, sy = true_flow(kind, param, h, w)
            b8 = np.round(bilinear(a, sx, sy)).clip(0, 255).astype(np.uint8)
            b = b8.astype(np.float64)
            for m in ours:
                for i, t in enumerate(threads):
                    u, v, t_ms = run_ours(args.bench_flow, m, a, b, t, args.runs, tmp)
                    ms[(m, t)].append(t_ms)
                    if i == 0:
                        e = interior_epe(u, v, gu, gv)
                        epe[m].append(e[0]), med[m].append(e[1])
            for n, fn in opencv_methods():
                for i, t in enumerate(threads):
                    u, v, t_ms = run_cv(fn, a8, b8, t, args.runs)
                    ms[(n, t)].append(t_ms)
                    if i == 0:
                        e = interior_epe(u, v, gu, gv)
                        epe[n].append(e[0]), med[n].append(e[1])

    cpu = "unknown CPU"
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            cpu = next(l.split(":", 1)[1].strip() for l in f if l.startswith("model name"))
    except (OSError, StopIteration):
        pass
    print(f"{w}x{h}, {os.path.basename(args.image)}, {cpu}, OpenCV {cv2.__version__}\n")
    print("Mean EPE in pixels (median in brackets: OpenCV's Farneback leaves flat areas at 0)\n")
    print("| motion | " + " | ".join(names) + " |")
    print("|---|" + "---:|" * len(names))
    for i, (label, _, _) in enumerate(MOTIONS):
        print(f"| {label} | " + " | ".join(f"{epe[n][i]:.3f} ({med[n][i]:.3f})" for n in names) + " |")
    print("| **mean EPE** | " + " | ".join(f"**{np.mean(epe[n]):.3f}**" for n in names) + " |")
    for t in threads:
        print(f"| ms per pair, {t} thread{'s' if t > 1 else ''} | " +
              " | ".join(f"{np.median(ms[(n, t)]):.1f}" for n in names) + " |")


if __name__ == "__main__":
    main()
