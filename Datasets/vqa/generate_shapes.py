#!/usr/bin/env python3
"""General-purpose VQA that has nothing to do with the robot: procedurally drawn shapes with
questions about colour, shape, count, position and existence. Used to pretrain the VLM (stage 0)
and to measure forgetting later. Deterministic for a seed; train and test splits never share an image.

    python generate_shapes.py --out Datasets/tiny/shapes.hdf5 --train 2000 --test 300 --image-size 32

Layout: /<split>/images (N,H,W,3) uint8 (zstd, filter 32015); /<split>/qa (N,) JSON strings
{"question", "answer", "type"}; root attrs: generator, seed, image_size, question_types.
"""
import argparse
import json
import os
import sys

import h5py
import hdf5plugin
import numpy as np

COLORS = {"red": (220, 40, 40), "green": (40, 180, 60), "blue": (50, 80, 230), "yellow": (235, 210, 40), "purple": (150, 60, 200)}
SHAPES = ["circle", "square", "triangle"]
TYPES = ["color", "shape", "count", "position", "exists"]


def draw(size, objects):
    img = np.full((size, size, 3), 245, np.uint8)
    yy, xx = np.mgrid[0:size, 0:size]
    for o in objects:
        cx, cy, r = o["x"], o["y"], o["r"]
        if o["shape"] == "circle":
            mask = (xx - cx) ** 2 + (yy - cy) ** 2 <= r * r
        elif o["shape"] == "square":
            mask = (abs(xx - cx) <= r * 0.85) & (abs(yy - cy) <= r * 0.85)
        else:  # upward triangle
            mask = (yy >= cy - r) & (yy <= cy + r) & (abs(xx - cx) <= (yy - (cy - r)) / 2)
        img[mask] = COLORS[o["color"]]
    return img


def scene(rng, size):
    """1-3 objects in distinct cells of a 3x3 grid, with distinct shapes and distinct colours, so
    "the square" or "the red object" always names exactly one."""
    n = int(rng.integers(1, 4))
    r = size // 8
    cells, shapes, colors = rng.permutation(9)[:n], rng.permutation(len(SHAPES))[:n], rng.permutation(len(COLORS))[:n]
    objects = []
    for cell, shape, color in zip(cells, shapes, colors):
        gx, gy = cell % 3, cell // 3
        objects.append({"color": list(COLORS)[color], "shape": SHAPES[shape], "r": r,
                        "x": int(size * (gx + 0.5) / 3), "y": int(size * (gy + 0.5) / 3), "cell": (int(gx), int(gy))})
    return objects


def question(rng, objects):
    kind = TYPES[int(rng.integers(len(TYPES)))]
    o = objects[int(rng.integers(len(objects)))]
    if kind == "color":
        return f"what color is the {o['shape']}?", o["color"], kind
    if kind == "shape":
        return f"what shape is the {o['color']} object?", o["shape"], kind
    if kind == "count":
        return "how many shapes are there?", str(len(objects)), kind
    if kind == "position":
        col = ["left", "middle", "right"][o["cell"][0]]
        row = ["top", "middle", "bottom"][o["cell"][1]]
        return f"where is the {o['color']} {o['shape']}?", f"{row} {col}", kind
    color = list(COLORS)[int(rng.integers(len(COLORS)))]
    shape = SHAPES[int(rng.integers(len(SHAPES)))]
    present = any(x["color"] == color and x["shape"] == shape for x in objects)
    return f"is there a {color} {shape}?", "yes" if present else "no", kind


def split(rng, n, size):
    images = np.zeros((n, size, size, 3), np.uint8)
    qa = []
    for i in range(n):
        objects = scene(rng, size)
        images[i] = draw(size, objects)
        q, a, t = question(rng, objects)
        qa.append(json.dumps({"question": q, "answer": a, "type": t}))
    return images, qa


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", required=True)
    ap.add_argument("--train", type=int, default=2000)
    ap.add_argument("--test", type=int, default=300)
    ap.add_argument("--image-size", type=int, default=32)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    if args.image_size < 16 or args.image_size % 8:
        sys.exit(f"--image-size must be a multiple of 8, at least 16 (got {args.image_size})")
    if args.train < 1 or args.test < 1:
        sys.exit("--train and --test must be positive")
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    tmp = f"{args.out}.tmp-{os.getpid()}"
    with h5py.File(tmp, "w") as f:
        f.attrs.update(generator="generate_shapes.py 1.0", seed=args.seed, image_size=args.image_size, question_types=json.dumps(TYPES))
        for name, n, seed in [("train", args.train, args.seed), ("test", args.test, args.seed + 1_000_003)]:
            images, qa = split(np.random.default_rng(seed), n, args.image_size)
            g = f.create_group(name)
            g.create_dataset("images", data=images, chunks=(min(64, n), args.image_size, args.image_size, 3), **hdf5plugin.Zstd(clevel=3))
            g.create_dataset("qa", data=qa, dtype=h5py.string_dtype("utf-8"))
    os.replace(tmp, args.out)
    print(f"wrote {args.out}: {args.train} train, {args.test} test, {args.image_size}px")


if __name__ == "__main__":
    main()
