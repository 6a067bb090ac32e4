"""Independent reference for the Swift TransformerBlock: a Qwen2-style pre-norm decoder block
(RMSNorm, GQA attention with rotate-half RoPE and a causal mask, SwiGLU MLP) written in numpy,
differentiated by HIPS autograd, in float64.

Usage: transformer_block.py IN.json OUT.json
IN: {"config": {...}, "params": {name: {"shape", "data"}}, "x": {...}, "positions": [...], "r": {...}}
OUT: {"out": [...], "grads": {name: [...]}} with grads of L = sum(out * r) for every param and "x".
"""
import json
import sys

import autograd.numpy as np
from autograd import grad


def rms_norm(x, w, eps):
    return x / np.sqrt(np.mean(x * x, axis=-1, keepdims=True) + eps) * w


def rope(x, positions, theta):
    # x: (B, T, H, D); HF rotate_half convention.
    d = x.shape[-1]
    inv_freq = 1.0 / theta ** (np.arange(0, d, 2) / d)
    freqs = np.outer(np.asarray(positions, dtype=np.float64), inv_freq)  # (T, D/2)
    emb = np.concatenate([freqs, freqs], axis=-1)
    cos, sin = np.cos(emb)[None, :, None, :], np.sin(emb)[None, :, None, :]
    half = d // 2
    rotated = np.concatenate([-x[..., half:], x[..., :half]], axis=-1)
    return x * cos + rotated * sin


def block(p, x, cfg, positions):
    b, t, c = x.shape
    nh, nkv = cfg["num_heads"], cfg["num_kv_heads"]
    hd = c // nh
    eps, theta = cfg["eps"], cfg["rope_theta"]

    h = rms_norm(x, p["input_layernorm.weight"], eps)
    q = np.dot(h, p["self_attn.q_proj.weight"].T) + p["self_attn.q_proj.bias"]
    k = np.dot(h, p["self_attn.k_proj.weight"].T) + p["self_attn.k_proj.bias"]
    v = np.dot(h, p["self_attn.v_proj.weight"].T) + p["self_attn.v_proj.bias"]
    q = rope(np.reshape(q, (b, t, nh, hd)), positions, theta)
    k = rope(np.reshape(k, (b, t, nkv, hd)), positions, theta)
    v = np.reshape(v, (b, t, nkv, hd))
    group = nh // nkv
    heads = []
    causal = np.tril(np.ones((t, t), dtype=bool))
    for head in range(nh):
        qh, kh, vh = q[:, :, head, :], k[:, :, head // group, :], v[:, :, head // group, :]
        scores = np.einsum("btd,bsd->bts", qh, kh) / np.sqrt(hd)
        scores = np.where(causal[None], scores, -1e30)
        scores = scores - np.max(scores, axis=-1, keepdims=True)
        weights = np.exp(scores)
        weights = weights / np.sum(weights, axis=-1, keepdims=True)
        heads.append(np.einsum("bts,bsd->btd", weights, vh))
    attn = np.concatenate(heads, axis=-1)  # (B, T, H*hd), head-major like the reshape
    x = x + np.dot(attn, p["self_attn.o_proj.weight"].T)

    h = rms_norm(x, p["post_attention_layernorm.weight"], eps)
    gate = np.dot(h, p["mlp.gate_proj.weight"].T)
    up = np.dot(h, p["mlp.up_proj.weight"].T)
    silu = gate / (1.0 + np.exp(-gate))
    return x + np.dot(silu * up, p["mlp.down_proj.weight"].T)


def array(entry):
    return np.array(entry["data"], dtype=np.float64).reshape(entry["shape"])


def main(inp, outp):
    with open(inp) as f:
        spec = json.load(f)
    cfg, positions = spec["config"], spec["positions"]
    params = {k: array(v) for k, v in spec["params"].items()}
    x, r = array(spec["x"]), array(spec["r"])

    def objective(p, x):
        return np.sum(block(p, x, cfg, positions) * r)

    out = block(params, x, cfg, positions)
    grads = grad(objective, 0)(params, x)
    grads = {k: g.ravel().tolist() for k, g in grads.items()}
    grads["x"] = grad(objective, 1)(params, x).ravel().tolist()
    with open(outp, "w") as f:
        json.dump({"out": out.ravel().tolist(), "grads": grads}, f)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
