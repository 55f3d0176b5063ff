#!/usr/bin/env python3
"""Writes the fuzz seed corpus (tests/fuzz/corpus/*): tiny valid files of each
kind the readers take. Run once and commit the output; it needs python3 and,
for the JPEGs, ImageMagick's convert. Deterministic except for the JPEGs,
whose bytes depend on the ImageMagick build."""
import json
import os
import struct
import subprocess
import sys
import tempfile
import zlib

HERE = os.path.dirname(os.path.abspath(__file__))
CORPUS = os.path.join(HERE, "corpus")
ICC_DIR = "/usr/share/color/icc/ghostscript"


def write(kind, name, data):
    os.makedirs(os.path.join(CORPUS, kind), exist_ok=True)
    with open(os.path.join(CORPUS, kind, name), "wb") as f:
        f.write(data)


def pattern(w, h, ch, maxval, seed=0):
    """Samples, row-major interleaved, spread over 0..maxval."""
    return [[[(seed + 37 * x + 61 * y + 97 * c) * 2654435761 % (maxval + 1) for c in range(ch)]
             for x in range(w)] for y in range(h)]


# ---- PNG --------------------------------------------------------------------

def chunk(kind, data):
    body = kind + data
    return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))


def pack_row(row, depth):
    """One scanline's bytes at 1, 2, 4, 8 or 16 bits per sample."""
    samples = [s for px in row for s in px]
    if depth == 16:
        return b"".join(struct.pack(">H", s) for s in samples)
    if depth == 8:
        return bytes(samples)
    out, acc, bits = bytearray(), 0, 0
    for s in samples:
        acc, bits = acc << depth | s, bits + depth
        if bits == 8:
            out.append(acc)
            acc, bits = 0, 0
    if bits:
        out.append(acc << (8 - bits))
    return bytes(out)


ADAM7 = [(0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4), (1, 0, 2, 2), (0, 1, 1, 2)]


def png(rows, colour, depth, interlace=False, extra=b""):
    h, w = len(rows), len(rows[0])
    raw = bytearray()
    if interlace:
        for x0, y0, dx, dy in ADAM7:
            sub = [[rows[y][x] for x in range(x0, w, dx)] for y in range(y0, h, dy)]
            for r in sub:
                if r:
                    raw += b"\0" + pack_row(r, depth)
    else:
        for r in rows:
            raw += b"\0" + pack_row(r, depth)
    ihdr = struct.pack(">IIBBBBB", w, h, depth, colour, 0, 0, 1 if interlace else 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + extra + chunk(b"IDAT", zlib.compress(bytes(raw), 9))
            + chunk(b"IEND", b""))


def tiff_orientation(value, big):
    """A TIFF structure with IFD0 holding one Orientation SHORT."""
    e = ">" if big else "<"
    head = (b"MM" if big else b"II") + struct.pack(e + "HI", 42, 8)
    return head + struct.pack(e + "H", 1) + struct.pack(e + "HHIHH", 0x0112, 3, 1, value, 0) + struct.pack(e + "I", 0)


def iccp(path):
    with open(path, "rb") as f:
        return chunk(b"iCCP", b"ICC profile\0\0" + zlib.compress(f.read(), 9))


def make_png():
    write("png", "rgb8.png", png(pattern(5, 3, 3, 255), 2, 8, extra=chunk(b"tEXt", b"Comment\0seed")))
    write("png", "grey1.png", png(pattern(9, 3, 1, 1), 0, 1))
    palette = bytes(v for i in range(6) for v in (40 * i, 255 - 40 * i, 17 * i))
    write("png", "palette4_trns.png", png(pattern(5, 4, 1, 5), 3, 4,
                                         extra=chunk(b"PLTE", palette) + chunk(b"tRNS", bytes([0, 128, 255]))))
    write("png", "rgba16_adam7.png", png(pattern(9, 9, 4, 65535), 6, 16, interlace=True))
    write("png", "greya8_exif6_icc.png", png(pattern(4, 3, 2, 255), 4, 8,
                                             extra=iccp(os.path.join(ICC_DIR, "sgray.icc"))
                                             + chunk(b"eXIf", tiff_orientation(6, True))))
    write("png", "rgb16_trns_exif8_icc.png", png(pattern(3, 5, 3, 65535), 2, 16,
                                                 extra=iccp(os.path.join(ICC_DIR, "ps_rgb.icc"))
                                                 + chunk(b"tRNS", struct.pack(">HHH", 1, 2, 3))
                                                 + chunk(b"eXIf", tiff_orientation(8, False))))
    write("png", "grey16_trns.png", png(pattern(4, 4, 1, 65535), 0, 16, extra=chunk(b"tRNS", struct.pack(">H", 7))))


# ---- JPEG -------------------------------------------------------------------

def splice_after_soi(jpeg, segments):
    return jpeg[:2] + b"".join(segments) + jpeg[2:]


def segment(marker, data):
    return bytes([0xFF, marker]) + struct.pack(">H", len(data) + 2) + data


def make_jpeg():
    with tempfile.TemporaryDirectory() as tmp:
        src = os.path.join(tmp, "src.ppm")
        with open(src, "wb") as f:
            rows = pattern(16, 8, 3, 255)
            f.write(b"P6\n16 8\n255\n" + bytes(s for r in rows for px in r for s in px))

        def convert(name, *opts):
            out = os.path.join(tmp, name)
            subprocess.run(["convert", src, "-strip", *opts, out], check=True)
            with open(out, "rb") as f:
                return f.read()

        write("jpeg", "rgb420.jpg", convert("a.jpg", "-quality", "75", "-sampling-factor", "2x2"))
        write("jpeg", "grey.jpg", convert("b.jpg", "-colorspace", "Gray", "-quality", "80"))
        write("jpeg", "progressive444.jpg", convert("c.jpg", "-interlace", "JPEG", "-sampling-factor", "1x1"))
        write("jpeg", "cmyk.jpg", convert("d.jpg", "-colorspace", "CMYK", "-quality", "70"))
        write("jpeg", "restart422.jpg", convert("e.jpg", "-sampling-factor", "2x1", "-define",
                                                "jpeg:restart-interval=1"))
        with open(os.path.join(ICC_DIR, "ps_rgb.icc"), "rb") as f:
            icc = f.read()
        base = convert("f.jpg", "-quality", "60")
        write("jpeg", "exif6_icc.jpg", splice_after_soi(base, [
            segment(0xE1, b"Exif\0\0" + tiff_orientation(6, False)),
            segment(0xE2, b"ICC_PROFILE\0" + bytes([1, 1]) + icc)]))
        write("jpeg", "exif3_comment.jpg", splice_after_soi(base, [
            segment(0xE1, b"Exif\0\0" + tiff_orientation(3, True)), segment(0xFE, b"a comment")]))


# ---- PNM and PAM ------------------------------------------------------------

def samples(rows, maxval):
    flat = [s for r in rows for px in r for s in px]
    return bytes(flat) if maxval < 256 else b"".join(struct.pack(">H", s) for s in flat)


def make_pnm():
    write("pnm", "grey8.pgm", b"P5\n# a comment\n4 3\n255\n" + samples(pattern(4, 3, 1, 255), 255))
    write("pnm", "grey15.pgm", b"P5 3 2 15\n" + samples(pattern(3, 2, 1, 15), 15))
    write("pnm", "rgb8.ppm", b"P6\n5 2\n255\n" + samples(pattern(5, 2, 3, 255), 255))
    write("pnm", "rgb1000.ppm", b"P6\n3 2\n1000\n" + samples(pattern(3, 2, 3, 1000), 1000))

    def pam(w, h, depth, maxval, tupltype, seed=0):
        head = "P7\n# pam\nWIDTH %d\nHEIGHT %d\nDEPTH %d\nMAXVAL %d\nTUPLTYPE %s\nENDHDR\n" % (
            w, h, depth, maxval, tupltype)
        return head.encode() + samples(pattern(w, h, depth, maxval, seed), maxval)

    write("pnm", "greya8.pam", pam(3, 3, 2, 255, "GRAYSCALE_ALPHA"))
    write("pnm", "rgba16.pam", pam(2, 3, 4, 65535, "RGB_ALPHA"))
    write("pnm", "rgb8.pam", pam(4, 2, 3, 255, "RGB"))
    write("pnm", "bilevel.pam", pam(5, 2, 1, 1, "BLACKANDWHITE"))


# ---- safetensors models -----------------------------------------------------

def f32(values):
    return struct.pack("<%df" % len(values), *values)


def f16(values):
    return struct.pack("<%de" % len(values), *values)


def safetensors(tensors, metadata):
    """tensors: list of (name, dtype, shape, bytes)."""
    header, data = {"__metadata__": metadata}, b""
    for name, dtype, shape, raw in tensors:
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [len(data), len(data) + len(raw)]}
        data += raw
    text = json.dumps(header, separators=(",", ":")).encode()
    return struct.pack("<Q", len(text)) + text + data


def values(n, seed, scale=0.1, offset=0.0):
    return [offset + scale * (((seed + 7 * i) * 2654435761 % 1000) / 500.0 - 1.0) for i in range(n)]


def make_model():
    # input -> conv 3x3 (bias) -> batch norm -> relu -> max pool -> conv 1x1
    # -> relu; concat of the pool and that; avg pool. All F32.
    nodes = [
        {"name": "c1", "op": "conv2d", "inputs": ["in"], "filters": 4, "kernel": [3, 3], "strides": [1, 1],
         "padding": "same", "use_bias": True, "kernel_layout": "HWIO", "tensors": {"kernel": "c1/k", "bias": "c1/b"}},
        {"name": "bn1", "op": "batch_norm", "inputs": ["c1"], "epsilon": 0.001, "center": True, "scale": True,
         "tensors": {"moving_mean": "bn1/m", "moving_variance": "bn1/v", "beta": "bn1/beta", "gamma": "bn1/g"}},
        {"name": "r1", "op": "relu", "inputs": ["bn1"]},
        {"name": "p1", "op": "pool", "pool": "max", "inputs": ["r1"], "size": [2, 2], "strides": [2, 2],
         "padding": "valid"},
        {"name": "c2", "op": "conv2d", "inputs": ["p1"], "filters": 2, "kernel": [1, 1], "strides": [1, 1],
         "padding": "valid", "use_bias": False, "kernel_layout": "HWIO", "tensors": {"kernel": "c2/k"}},
        {"name": "r2", "op": "relu", "inputs": ["c2"]},
        {"name": "mix", "op": "concat", "inputs": ["p1", "r2"]},
        {"name": "p2", "op": "pool", "pool": "avg", "inputs": ["mix"], "size": [3, 3], "strides": [1, 1],
         "padding": "same"},
    ]
    tensors = [
        ("c1/k", "F32", [3, 3, 3, 4], f32(values(108, 1))),
        ("c1/b", "F32", [4], f32(values(4, 2))),
        ("bn1/m", "F32", [4], f32(values(4, 3))),
        ("bn1/v", "F32", [4], f32(values(4, 4, 0.5, 1.0))),
        ("bn1/beta", "F32", [4], f32(values(4, 5))),
        ("bn1/g", "F32", [4], f32(values(4, 6, 0.2, 1.0))),
        ("c2/k", "F32", [1, 1, 4, 2], f32(values(8, 7))),
    ]
    meta = {"format": "deepdream-graph-1",
            "graph": json.dumps({"input": {"name": "in", "channels": 3}, "nodes": nodes}),
            "layers": json.dumps(["r1", "p1", "r2", "mix", "p2"]),
            "preprocess": json.dumps({"divisor": 127.5, "offset": -1})}
    tiny = safetensors(tensors, meta)
    write("model", "tiny_f32.safetensors", tiny)
    write("model", "tiny_f32_truncated.safetensors", tiny[:len(tiny) - 100])

    # The same kind of graph with F16 and U8 (quantised) tensors, nodes out
    # of order, no layer list (every node but batch norms is a layer).
    nodes2 = [
        {"name": "out", "op": "concat", "inputs": ["a", "b"]},
        {"name": "b", "op": "relu", "inputs": ["conv"]},
        {"name": "a", "op": "pool", "pool": "max", "inputs": ["conv"], "size": [3, 3], "strides": [2, 2],
         "padding": "same"},
        {"name": "conv", "op": "conv2d", "inputs": ["x"], "filters": 3, "kernel": [2, 2], "strides": [2, 1],
         "padding": "valid", "use_bias": True, "kernel_layout": "HWIO",
         "tensors": {"kernel": "conv/k", "bias": "conv/b"}},
    ]
    tensors2 = [
        ("conv/k", "U8", [2, 2, 3, 3], bytes((i * 37) % 256 for i in range(36))),
        ("conv/b", "F16", [3], f16(values(3, 9))),
    ]
    meta2 = {"format": "deepdream-graph-1",
             "graph": json.dumps({"input": {"name": "x", "channels": 3}, "nodes": nodes2}),
             "quantization": json.dumps({"tensors": {"conv/k": {"min": -0.5, "scale": 0.004}}})}
    write("model", "mixed_u8_f16.safetensors", safetensors(tensors2, meta2))

    # What tools/convert_torchvision.py writes: OIHW kernels, PyTorch's
    # explicit pads, ceil_mode, an average pool counting its padding, a
    # residual add with a ReLU, mean/std preprocessing and default layers.
    nodes3 = [
        {"name": "c1", "op": "conv2d", "inputs": ["in"], "filters": 4, "kernel": [3, 3], "strides": [2, 2],
         "padding": [1, 1, 1, 1], "use_bias": True, "kernel_layout": "OIHW",
         "tensors": {"kernel": "c1.weight", "bias": "c1.bias"}},
        {"name": "r1", "op": "relu", "inputs": ["c1"]},
        {"name": "p1", "op": "pool", "pool": "max", "inputs": ["r1"], "size": [3, 3], "strides": [2, 2],
         "padding": [0, 0, 0, 0], "ceil_mode": True},
        {"name": "c2", "op": "conv2d", "inputs": ["p1"], "filters": 4, "kernel": [1, 3], "strides": [1, 1],
         "padding": [0, 0, 1, 1], "use_bias": False, "kernel_layout": "OIHW", "tensors": {"kernel": "c2.weight"}},
        {"name": "bn2", "op": "batch_norm", "inputs": ["c2"], "epsilon": 1e-5, "center": True, "scale": True,
         "tensors": {"moving_mean": "bn2.running_mean", "moving_variance": "bn2.running_var", "beta": "bn2.bias",
                     "gamma": "bn2.weight"}},
        {"name": "sum", "op": "add", "inputs": ["bn2", "p1"]},
        {"name": "block", "op": "relu", "inputs": ["sum"]},
        {"name": "p2", "op": "pool", "pool": "avg", "inputs": ["block"], "size": [3, 3], "strides": [1, 1],
         "padding": [1, 1, 1, 1], "count_padding": True},
    ]
    tensors3 = [
        ("c1.weight", "F32", [4, 3, 3, 3], f32(values(108, 11))),
        ("c1.bias", "F32", [4], f32(values(4, 12))),
        ("c2.weight", "F16", [4, 4, 1, 3], f16(values(48, 13))),
        ("bn2.running_mean", "F32", [4], f32(values(4, 14))),
        ("bn2.running_var", "F32", [4], f32(values(4, 15, 0.5, 1.0))),
        ("bn2.bias", "F32", [4], f32(values(4, 16))),
        ("bn2.weight", "F32", [4], f32(values(4, 17, 0.2, 1.0))),
    ]
    meta3 = {"format": "deepdream-graph-1",
             "graph": json.dumps({"input": {"name": "in", "channels": 3}, "nodes": nodes3}),
             "layers": json.dumps(["c1", "r1", "p1", "c2", "sum", "block", "p2"]),
             "default_layers": "block",
             "preprocess": json.dumps({"mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225]})}
    write("model", "torch_ops.safetensors", safetensors(tensors3, meta3))


if __name__ == "__main__":
    make_png()
    make_jpeg()
    make_pnm()
    make_model()
    for kind in sorted(os.listdir(CORPUS)):
        d = os.path.join(CORPUS, kind)
        for name in sorted(os.listdir(d)):
            print("%6d %s/%s" % (os.path.getsize(os.path.join(d, name)), kind, name))
    sys.exit(0)
