#!/usr/bin/python3
"""Steadiness of a dreamed pan: mean |Y_t - Y_t-1 moved with the picture| in levels over the luma
planes both frames show, and how much was dreamed: mean |dream Y - photo Y|.

usage: video_steadiness.py DREAM.y4m PHOTO.y4m SHIFT
The pan moves the picture SHIFT pixels left a frame (an exact integer shift: the photo's own
figure is 0). Reads 4:2:0 and 4:4:4 8-bit y4m with bare FRAME lines. Needs numpy.
"""
import sys

import numpy as np


def luma_frames(path):
    data = open(path, "rb").read()
    end = data.index(b"\n")
    fields = {f[:1]: f[1:] for f in data[:end].split()[1:]}
    w, h = int(fields[b"W"]), int(fields[b"H"])
    chroma = fields.get(b"C", b"420jpeg")
    plane = w * h
    size = plane * 3 if chroma.startswith(b"444") else plane + 2 * ((w + 1) // 2) * ((h + 1) // 2)
    frames, at = [], end + 1
    while at < len(data):
        at = data.index(b"\n", at) + 1
        frames.append(np.frombuffer(data[at:at + plane], np.uint8).reshape(h, w).astype(np.float64))
        at += size
    return frames


def main():
    dream, photo, shift = luma_frames(sys.argv[1]), luma_frames(sys.argv[2]), int(sys.argv[3])
    unsteady = np.mean([np.abs(dream[t][:, :-shift] - dream[t - 1][:, shift:]).mean() for t in range(1, len(dream))])
    dreamed = np.mean([np.abs(d - p).mean() for d, p in zip(dream, photo)])
    print(f"{unsteady:.3f} {dreamed:.3f}")


main()
