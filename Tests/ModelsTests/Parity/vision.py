"""Independent reference for the Swift VisionEncoder (SigLIP layout, optionally with a convolutional
stem) and Projector (InternVL mlp1): numpy, float64, convolutions written as explicit sums over the
kernel on a zero-padded image.

  vision.py IN.json OUT.json   IN {"config", "params", "pixels"}  ->  OUT {"features": [...], "tokens": [...]}
"""
import json
import math
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from transformer_block import array  # noqa: E402


def layer_norm(x, w, b, eps):
    mu = x.mean(-1, keepdims=True)
    var = ((x - mu) ** 2).mean(-1, keepdims=True)
    return (x - mu) / np.sqrt(var + eps) * w + b


def gelu_tanh(x):
    return 0.5 * x * (1 + np.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x ** 3)))


def gelu_erf(x):
    from math import erf
    return 0.5 * x * (1 + np.vectorize(erf)(x / math.sqrt(2)))


def conv2d(x, w, b, stride, pad):
    """PyTorch Conv2d on channels-last x [B, H, W, C] with weight [O, C, K, K]."""
    k = w.shape[2]
    x = np.pad(x, ((0, 0), (pad, pad), (pad, pad), (0, 0)))
    ho, wo = (x.shape[1] - k) // stride + 1, (x.shape[2] - k) // stride + 1
    y = np.zeros((x.shape[0], ho, wo, w.shape[0]))
    for oy in range(ho):
        for ox in range(wo):
            window = x[:, oy * stride:oy * stride + k, ox * stride:ox * stride + k, :]  # [B, K, K, C]
            y[:, oy, ox, :] = np.einsum("byxc,ocyx->bo", window, w) + b
    return y


def main(inp, outp):
    spec = json.load(open(inp))
    cfg = spec["config"]
    p = {k: array(v) for k, v in spec["params"].items()}
    pixels = array(spec["pixels"]) * 2 - 1  # [B, H, W, 3]
    b, hgt, wid, _ = pixels.shape
    P, D, heads, eps = cfg["patch"], cfg["hidden"], cfg["heads"], cfg["eps"]
    g = hgt // P
    conv_w, conv_b = p["embeddings.patch_embedding.weight"], p["embeddings.patch_embedding.bias"]  # [D, 3 or C, P or 1, ...]
    if cfg.get("stem_stages", 0):
        h = pixels
        for i in range(cfg["stem_stages"]):
            h = conv2d(h, p[f"embeddings.stem.convs.{i}.weight"], p[f"embeddings.stem.convs.{i}.bias"], 2, 1)
            h = np.maximum(layer_norm(h, p[f"embeddings.stem.norms.{i}.weight"], p[f"embeddings.stem.norms.{i}.bias"], 1e-6), 0)
        x = conv2d(h, conv_w, conv_b, 1, 0).reshape(b, g * g, D)
    else:
        x = np.zeros((b, g * g, D))
        for gy in range(g):
            for gx in range(g):
                patch = pixels[:, gy * P:(gy + 1) * P, gx * P:(gx + 1) * P, :]  # [B, P, P, 3]
                x[:, gy * g + gx, :] = np.einsum("byxc,dcyx->bd", patch, conv_w) + conv_b
    x = x + p["embeddings.position_embedding.weight"][None]
    hd = D // heads
    for i in range(cfg["layers"]):
        q = lambda k: p[f"encoder.layers.{i}.{k}"]  # noqa: E731
        h = layer_norm(x, q("layer_norm1.weight"), q("layer_norm1.bias"), eps)
        proj = lambda name: (h @ q(f"self_attn.{name}.weight").T + q(f"self_attn.{name}.bias")).reshape(b, -1, heads, hd)  # noqa: E731
        Q, K, V = proj("q_proj"), proj("k_proj"), proj("v_proj")
        s = np.einsum("bthd,bshd->bhts", Q, K) / math.sqrt(hd)
        s = np.exp(s - s.max(-1, keepdims=True))
        s = s / s.sum(-1, keepdims=True)
        o = np.einsum("bhts,bshd->bthd", s, V).reshape(b, -1, D)
        x = x + o @ q("self_attn.out_proj.weight").T + q("self_attn.out_proj.bias")
        h = layer_norm(x, q("layer_norm2.weight"), q("layer_norm2.bias"), eps)
        h = gelu_tanh(h @ q("mlp.fc1.weight").T + q("mlp.fc1.bias"))
        x = x + h @ q("mlp.fc2.weight").T + q("mlp.fc2.bias")
    features = layer_norm(x, p["post_layernorm.weight"], p["post_layernorm.bias"], eps)

    # InternVL pixel_shuffle(x, 0.5) on [n, w, h, c], then mlp1.
    n, w, hh, c = b, g, g, D
    y = features.reshape(n, w, hh, c).reshape(n, w, hh // 2, c * 2).transpose(0, 2, 1, 3)
    y = y.reshape(n, hh // 2, w // 2, c * 4).transpose(0, 2, 1, 3).reshape(n, -1, c * 4)
    y = layer_norm(y, p["mlp1.0.weight"], p["mlp1.0.bias"], 1e-5)
    y = gelu_erf(y @ p["mlp1.1.weight"].T + p["mlp1.1.bias"])
    tokens = y @ p["mlp1.3.weight"].T + p["mlp1.3.bias"]
    json.dump({"features": features.ravel().tolist(), "tokens": tokens.ravel().tolist()}, open(outp, "w"))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
