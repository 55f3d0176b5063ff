#!/usr/bin/python3
"""bindings/python/deepdream.py against the library and the command line.

usage: test_python.py CLI [VERSION]

CLI is the deepdream command (its dream must be the module's, byte for
byte); VERSION the project's version (default: include/deepdream.h's
DD_VERSION_STRING). The module and library come from the environment:
PYTHONPATH and DEEPDREAM_LIBRARY in the build tree, or the installed files.
Plain asserts, no pytest: each check prints what failed; exit 1 if any did.
"""

import os
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
import traceback

import numpy as np

import deepdream

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
CLI = sys.argv[1] if len(sys.argv) > 1 else os.path.join(ROOT, "build", "deepdream")
if len(sys.argv) > 2:
    VERSION = sys.argv[2]
else:
    with open(os.path.join(ROOT, "include", "deepdream.h")) as f:
        VERSION = re.search(r'#define DD_VERSION_STRING "([^"]*)"', f.read()).group(1)

# Tiny dreams keep this a unit test: 64x48, two octaves (mixed2 is shallow
# enough for both at that size), two steps each, one thread.
SMALL = dict(layers="mixed2", octaves=2, steps=2, seed=5, threads=1)
PHOTO = deepdream.load(os.path.join(ROOT, "samples", "chelsea.png"))[::4, ::4][:48, :64]
PHOTO = np.ascontiguousarray(PHOTO)  # (48, 64, 3) uint8
TMP = tempfile.mkdtemp(prefix="test_python.")

failures = []
checks = []


def check(fn):
    checks.append(fn)
    return fn


def expect(cond, what):
    if not cond:
        raise AssertionError(what)


def raises(exc_type, fn, *args, **kwargs):
    """The exception fn raised, which must be an exc_type."""
    try:
        fn(*args, **kwargs)
    except exc_type as e:
        return e
    except Exception as e:
        raise AssertionError("%s raised %r, not %s" % (getattr(fn, "__name__", fn), e, exc_type.__name__))
    raise AssertionError("%s raised nothing, expected %s" % (getattr(fn, "__name__", fn), exc_type.__name__))


def variants(depth):
    """Every shape an image may have, at depth 8 or 16: name -> array."""
    rgb = PHOTO.astype(np.uint16) * 257 + (np.arange(PHOTO.size, dtype=np.uint16) % 251).reshape(PHOTO.shape) \
        if depth == 16 else PHOTO.copy()
    grey = rgb[:, :, 1].copy()
    alpha = (np.arange(grey.size) * 37 % (65536 if depth == 16 else 256)).astype(rgb.dtype).reshape(grey.shape)
    return {
        "grey (H, W)": grey,
        "grey (H, W, 1)": grey[:, :, None].copy(),
        "grey+alpha": np.dstack([grey, alpha]),
        "RGB": rgb,
        "RGBA": np.dstack([rgb, alpha]),
    }


@check
def version_is_the_projects():
    expect(deepdream.version() == VERSION, "version() %r, the project's %r" % (deepdream.version(), VERSION))


@check
def dream_equals_the_cli():
    src = os.path.join(TMP, "cli_in.png")
    out = os.path.join(TMP, "cli_out.png")
    deepdream.save(PHOTO, src)
    settings = dict(layers="mixed3,mixed2:7=0.5", octaves=2, octave_scale=1.3, steps=3, step_size=0.03,
                    jitter=5, seed=11, threads=1)
    argv = [CLI, "--quiet"]
    for k, v in settings.items():
        argv += ["--" + k.replace("_", "-"), str(v)]
    subprocess.run(argv + [src, out], check=True)
    cli = deepdream.load(out)
    mine = deepdream.dream(deepdream.load(src), **settings)
    expect(cli.shape == mine.shape and cli.dtype == mine.dtype,
           "CLI %s %s, module %s %s" % (cli.shape, cli.dtype, mine.shape, mine.dtype))
    expect(not np.array_equal(mine, PHOTO), "the dream changed nothing")
    expect(np.array_equal(cli, mine), "%d of %d samples differ from the CLI's dream"
           % (np.count_nonzero(cli != mine), cli.size))


@check
def shapes_and_depths():
    for depth in (8, 16):
        for name, a in variants(depth).items():
            before = a.copy()
            out = deepdream.dream(a, **SMALL)
            what = "%d-bit %s" % (depth, name)
            expect(np.array_equal(a, before), what + ": the input array was written")
            expect(out.shape == a.shape and out.dtype == a.dtype,
                   "%s: out %s %s" % (what, out.shape, out.dtype))
            expect(out is not a and not np.shares_memory(out, a), what + ": the output is the input's memory")
            colour = out[..., :-1] if name in ("grey+alpha", "RGBA") else out
            before_colour = a[..., :-1] if name in ("grey+alpha", "RGBA") else a
            expect(not np.array_equal(colour, before_colour), what + ": colour unchanged by the dream")
            if name in ("grey+alpha", "RGBA"):
                expect(np.array_equal(out[..., -1], a[..., -1]), what + ": alpha changed")
        # (H, W) and (H, W, 1) are the same image to the library.
        v = variants(depth)
        expect(np.array_equal(deepdream.dream(v["grey (H, W)"], **SMALL),
                              deepdream.dream(v["grey (H, W, 1)"], **SMALL)[:, :, 0]),
               "%d-bit: (H, W) and (H, W, 1) dream differently" % depth)


@check
def layouts_normalised():
    # A non-contiguous view and a big-endian array are the same pixels.
    flipped = PHOTO[:, ::-1]
    expect(np.array_equal(deepdream.dream(flipped, **SMALL),
                          deepdream.dream(np.ascontiguousarray(flipped), **SMALL)), "a strided view dreams differently")
    native = variants(16)["RGB"]
    big = native.astype(">u2")
    out = deepdream.dream(big, **SMALL)
    expect(out.dtype == big.dtype, "big-endian in, %s out" % out.dtype)
    expect(np.array_equal(out, deepdream.dream(native, **SMALL)), "a big-endian array dreams differently")


@check
def png_round_trip():
    for depth in (8, 16):
        for name, a in variants(depth).items():
            path = os.path.join(TMP, "rt.png")
            deepdream.save(a, path)
            back = deepdream.load(path)
            expect(back.dtype == a.dtype, "%d-bit %s: loaded as %s" % (depth, name, back.dtype))
            expect(np.array_equal(back.reshape(a.shape), a), "%d-bit %s: PNG round trip changed it" % (depth, name))
            expect(back.ndim == (2 if a.ndim == 2 or a.shape[2] == 1 else 3), "%s: loaded as %s" % (name, back.shape))
    # Format given beside the name, and the other writers.
    path = os.path.join(TMP, "named.dat")
    deepdream.save(PHOTO, path, format="pam")
    expect(np.array_equal(deepdream.load(path), PHOTO), "format='pam' round trip")
    with open(path, "rb") as f:
        expect(f.read(3) == b"P7\n", "format='pam' did not write a PAM")
    expect(deepdream.load(os.path.join(TMP, "rt.png")).shape == (48, 64, 4), "the last round trip's RGBA")


@check
def save_failures_leave_nothing():
    before = sorted(os.listdir(TMP))
    e = raises(OSError, deepdream.save, PHOTO, os.path.join(TMP, "no", "such", "dir", "x.png"))
    expect(isinstance(e, FileNotFoundError), "missing directory: %r" % e)
    os.mkdir(os.path.join(TMP, "adir"))
    raises(OSError, deepdream.save, PHOTO, os.path.join(TMP, "adir"), format="png")  # a directory in the way
    raises(ValueError, deepdream.save, PHOTO, os.path.join(TMP, "x.tiff"))  # no such writer
    after = sorted(os.listdir(TMP))
    expect(after == sorted(before + ["adir"]), "files left behind: %s" % sorted(set(after) - set(before)))
    expect(os.listdir(os.path.join(TMP, "adir")) == [], "the directory got files")
    # Replacing a file is all or nothing: a failed save keeps the old one.
    path = os.path.join(TMP, "keep.png")
    deepdream.save(PHOTO, path)
    raises(ValueError, deepdream.save, PHOTO.astype(np.float32), path)
    expect(np.array_equal(deepdream.load(path), PHOTO), "a failed save touched the existing file")


@check
def errors():
    e = raises(deepdream.Error, deepdream.dream, PHOTO, layers="mixed9")
    expect("mixed9" in str(e) and e.status == deepdream.ERR_INVALID_ARG, "unknown layer: %s (%s)" % (e, e.status))
    e = raises(deepdream.Error, deepdream.dream, PHOTO, steps=-1)
    expect("steps" in str(e) and "-1" in str(e), "steps=-1: %s" % e)
    e = raises(deepdream.Error, deepdream.dream, PHOTO, octaves="lots")
    expect("octaves" in str(e), "octaves='lots': %s" % e)
    e = raises(deepdream.Error, deepdream.dream, PHOTO, preset="no-such-look")
    expect("no-such-look" in str(e), "unknown preset: %s" % e)
    raises(TypeError, deepdream.dream, PHOTO, stpes=3)
    for bad, word in ((PHOTO.astype(np.float32), "float32"), (PHOTO.astype(np.int64), "int64"),
                      (PHOTO[None], "4-dimensional"), (PHOTO[:0], "empty"),
                      (np.dstack([PHOTO, PHOTO]), "6 channels"), (PHOTO > 9, "bool")):
        e = raises(ValueError, deepdream.dream, bad)
        expect(word in str(e), "ValueError %r does not name %r" % (str(e), word))
    e = raises(deepdream.Error, deepdream.dream, PHOTO[:8, :8], layers="mixed4")
    expect(e.status == deepdream.ERR_TOO_SMALL and "8x8" in str(e), "too small: %s" % e)
    missing = os.path.join(TMP, "missing.png")
    e = raises(deepdream.Error, deepdream.load, missing)
    expect(e.status == deepdream.ERR_IO and missing in str(e), "load of a missing file: %s" % e)
    e = raises(deepdream.Error, deepdream.Model, missing)
    expect(missing in str(e), "Model of a missing file: %s" % e)


@check
def progress_and_cancel():
    calls = []
    deepdream.dream(PHOTO, progress=lambda *a: calls.append(a), **SMALL)
    expect(calls == [(0, 2, 0, 2), (0, 2, 1, 2), (1, 2, 0, 2), (1, 2, 1, 2)], "progress calls %s" % calls)
    before = PHOTO.copy()
    calls = []
    e = raises(deepdream.Cancelled, deepdream.dream, PHOTO,
               progress=lambda *a: calls.append(a) or a[2] == 1, **SMALL)
    expect(isinstance(e, deepdream.Error) and e.status == deepdream.ERR_CANCELLED, "Cancelled: %r" % e)
    expect(calls == [(0, 2, 0, 2), (0, 2, 1, 2)], "calls after the cancel: %s" % calls)
    expect(np.array_equal(PHOTO, before), "a cancelled dream wrote the input")

    class Boom(Exception):
        pass
    boom = Boom("from the callback")

    def raising(octave, octaves, step, steps):
        raise boom
    e = raises(Boom, deepdream.dream, PHOTO, progress=raising, **SMALL)
    expect(e is boom, "the callback's exception came back as %r" % e)


@check
def ctrl_c_stops_a_dream():
    # SIGINT mid-dream (no progress callback given): KeyboardInterrupt within
    # a step or so, not at the end of 100000 steps, and Python's handler back.
    before = PHOTO.copy()
    timer = threading.Timer(0.3, os.kill, (os.getpid(), signal.SIGINT))
    start = time.monotonic()
    timer.start()
    try:
        raises(KeyboardInterrupt, deepdream.dream, PHOTO, layers="mixed2", steps=100000, threads=1)
    finally:
        timer.cancel()
    elapsed = time.monotonic() - start
    expect(elapsed < 5, "KeyboardInterrupt after %.1f s" % elapsed)
    expect(np.array_equal(PHOTO, before), "an interrupted dream wrote the input")
    expect(signal.getsignal(signal.SIGINT) is signal.default_int_handler, "SIGINT's handler not restored")


@check
def model_reuse():
    expected = deepdream.dream(PHOTO, **SMALL)
    with deepdream.Model() as m:
        expect("mixed4" in m.layers and m.layers.index("mixed2") < m.layers.index("mixed4"), "layers %s" % m.layers)
        expect(m.default_layers == "mixed3,mixed4", "default_layers %r" % m.default_layers)
        for _ in range(2):
            expect(np.array_equal(m.dream(PHOTO, **SMALL), expected), "Model.dream differs from dream()")
    raises(ValueError, m.dream, PHOTO, **SMALL)  # closed
    m.close()  # twice is fine


@check
def threads_share_a_model():
    expected = deepdream.dream(PHOTO, **SMALL)
    m = deepdream.Model()
    results = [None] * 3

    def run(i):
        results[i] = m.dream(PHOTO, **SMALL)
    ts = [threading.Thread(target=run, args=(i,)) for i in range(3)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    expect(all(r is not None and np.array_equal(r, expected) for r in results), "threaded dreams differ")


for fn in checks:
    try:
        fn()
        print("ok   %s" % fn.__name__)
    except Exception:
        failures.append(fn.__name__)
        print("FAIL %s:\n%s" % (fn.__name__, traceback.format_exc()), file=sys.stderr)
subprocess.run(["rm", "-rf", TMP], check=False)
if failures:
    print("test_python: %d of %d checks failed: %s" % (len(failures), len(checks), ", ".join(failures)), file=sys.stderr)
    sys.exit(1)
print("test_python: all %d checks passed" % len(checks))
