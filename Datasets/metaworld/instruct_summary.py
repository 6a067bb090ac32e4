#!/usr/bin/env python3
"""Summary table of `make eval-instruct`: closed-loop success on Meta-World-Instruct per instruction kind
(atomic, rewriting, context; held-out phrasings) and VQA exact match, from one evaluation folder.

    python instruct_summary.py Checkpoints/tiny/stage2/eval-20261126-120000
"""
import json
import os
import sys

from evaluate import wilson

KINDS = ("atomic", "rewriting", "context")


def main(folder):
    rows = ["| instructions | success | rate | Wilson 95% CI |", "|---|---|---|---|"]
    for kind in KINDS:
        path = os.path.join(folder, kind, "results.json")
        if not os.path.exists(path):
            rows.append(f"| {kind} | (no {path}) | | |")
            continue
        report = json.load(open(path))
        k = sum(t["successes"] for t in report["tasks"].values())
        n = sum(t["episodes"] for t in report["tasks"].values())
        lo, hi = wilson(k, n)
        rows.append(f"| {kind} | {k}/{n} | {100 * k / max(n, 1):.1f} % | {100 * lo:.1f}–{100 * hi:.1f} % |")
    vqa = os.path.join(folder, "vqa.json")
    text = "\n".join(rows)
    if os.path.exists(vqa):
        text += f"\n\nVQA exact match (stage-0 test split, adapters and router on): {100 * json.load(open(vqa))['accuracy']:.1f} %"
    print(text)
    with open(os.path.join(folder, "summary.md"), "w") as f:
        f.write(text + "\n")


if __name__ == "__main__":
    if len(sys.argv) != 2 or not os.path.isdir(sys.argv[1]):
        sys.exit("usage: instruct_summary.py EVAL_FOLDER (the folder make eval-instruct wrote)")
    main(sys.argv[1])
