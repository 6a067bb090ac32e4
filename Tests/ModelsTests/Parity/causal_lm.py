"""Independent reference for the Swift CausalLM (Qwen2 layout, tied embeddings): numpy, float64.

  causal_lm.py IN.json OUT.json
IN {"config": {...}, "params": {name: {"shape", "data"}}, "ids": [[...]], "num_layers": L}
OUT {"logits": [...]}
"""
import json
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from transformer_block import array, block, rms_norm  # noqa: E402  (the block reference, reused)


def main(inp, outp):
    spec = json.load(open(inp))
    cfg = spec["config"]
    params = {k: array(v) for k, v in spec["params"].items()}
    ids = np.array(spec["ids"])
    b, t = ids.shape
    embed = params["model.embed_tokens.weight"]
    h = embed[ids]
    for i in range(spec["num_layers"]):
        prefix = f"model.layers.{i}."
        layer = {k[len(prefix):]: v for k, v in params.items() if k.startswith(prefix)}
        h = block(layer, h, cfg, list(range(t)))
    h = rms_norm(h, params["model.norm.weight"], cfg["eps"])
    head = params.get("lm_head.weight", embed)  # tied when there is no lm_head
    json.dump({"logits": (h @ head.T).ravel().tolist()}, open(outp, "w"))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
