#!/usr/bin/env python3
"""Summary table of `make eval-instruct`: closed-loop success on Meta-World-Instruct per instruction kind
(atomic, rewriting, context; held-out phrasings) and VQA exact match, from one evaluation folder. A model that
thinks (stage 2) also gets how often its first response names the episode's goal object and goal place, the
language half of the task, apart from whether the arm then does it, and how often every response of the episode
(a thinking server answers again every think_every requests) names both.

    python instruct_summary.py Checkpoints/tiny/stage2/eval-20261126-120000
"""
import json
import os
import sys

from evaluate import wilson
from instruct_scene import OBJECTS, TARGETS, TASK, Layout, display_name

KINDS = ("atomic", "rewriting", "context")


def named_goal(records):
    """(episodes with a response, naming the goal object, naming the goal place, every response naming both) over
    the instruct scene's episode records: the goal's full display name ("blue soda can") occurs in the response,
    whatever else it names."""
    n = obj = place = steady = 0
    for r in records:
        if not isinstance(r.get("text"), str):
            continue
        try:
            layout = Layout.from_vec(r["layout"]["rand_vec"])
        except ValueError as e:  # a layout stored by another generator version
            sys.exit(f"instruct_summary.py: {e}")
        names = display_name(OBJECTS[layout.goal_object]), display_name(TARGETS[layout.goal_target])
        text = r["text"].lower()
        n += 1
        obj += names[0] in text
        place += names[1] in text
        steady += all(all(name in t.lower() for name in names) for t in r.get("texts") or [r["text"]])
    return n, obj, place, steady


def main(folder):
    rows = ["| instructions | success | rate | Wilson 95% CI | response names the object | … and the place "
            "| every response names both |",
            "|---|---|---|---|---|---|---|"]
    for kind in KINDS:
        path = os.path.join(folder, kind, "results.json")
        if not os.path.exists(path):
            rows.append(f"| {kind} | (no {path}) | | | | | |")
            continue
        report = json.load(open(path))
        k = sum(t["successes"] for t in report["tasks"].values())
        n = sum(t["episodes"] for t in report["tasks"].values())
        lo, hi = wilson(k, n)
        answered, obj, place, steady = named_goal(report["tasks"].get(TASK, {}).get("per_episode", []))
        said = (f"{obj}/{answered}", f"{place}/{answered}", f"{steady}/{answered}") if answered else ("(no response)", "", "")
        rows.append(f"| {kind} | {k}/{n} | {100 * k / max(n, 1):.1f} % | {100 * lo:.1f}–{100 * hi:.1f} % | {' | '.join(said)} |")
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
