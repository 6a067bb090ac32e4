#!/usr/bin/env python3
"""Summary table of `make eval-instruct`: closed-loop success on Meta-World-Instruct per instruction kind
(atomic, rewriting, context; held-out phrasings) and VQA exact match, from one evaluation folder. A model that
thinks (stage 2) also gets how often its first response names the episode's goal object and goal place, the
language half of the task, apart from whether the arm then does it, and how often every response of the episode
(a thinking server answers again every think_every requests) names both; and, for rewriting and context, how
often the first response names the goal object and place by the kind of reference the instruction makes
("the plaything": the object by kind; "the right-hand plate": the place by side).

    python instruct_summary.py Checkpoints/tiny/stage2/eval-20261126-120000
"""
import json
import os
import re
import sys

from annotate import PHRASINGS, fill
from evaluate import wilson
from instruct_scene import OBJECTS, TARGETS, TASK, Layout, display_name

KINDS = ("atomic", "rewriting", "context")
# What fills a place reference's one attribute placeholder, besides {kind}: any value annotate.py may use.
PLACE_VALUES = {"side": ("left", "right"), "robot_side": ("closer to", "farther from")}


def placeholders(template):
    return re.findall(r"\{(\w+)\}", template)


def reference_kinds(instruction, object_name, object_colour, place_kind, place_colour):
    """(object reference, place reference) of a rewriting or context instruction about a goal: the placeholder
    of the phrasings.json reference (either split) it contains, e.g. ("category", "side") for "transfer the
    plaything to the left-hand tray"; "context" for an object named only through a situation; None where
    no reference fits."""
    text = instruction.lower()
    obj = "context" if any(c in instruction for ctx in PHRASINGS["context_creation"].values()
                            for cs in ctx["contexts"].values() for c in cs) else None
    place = None
    for split in ("train", "eval"):
        words = dict(PHRASINGS["lexicon"][split][object_name], colour=object_colour)
        for template in PHRASINGS["command_rewriting"][split]["object_refs"]:
            if fill(template, **words).lower() in text:
                obj, = placeholders(template)
        for category in ("command_rewriting", "context_creation"):
            for template in PHRASINGS[category][split]["target_refs"]:
                field, = set(placeholders(template)) - {"kind"}
                values = PLACE_VALUES.get(field, (place_colour,))
                if any(fill(template, kind=place_kind, **{field: v}).lower() in text for v in values):
                    place = field
    return obj, place


def answered_goals(records):
    """(record, goal object, goal target) of each instruct-scene episode record that has a response."""
    for r in records:
        if not isinstance(r.get("text"), str):
            continue
        try:
            layout = Layout.from_vec(r["layout"]["rand_vec"])
        except ValueError as e:  # a layout stored by another generator version
            sys.exit(f"instruct_summary.py: {e}")
        yield r, OBJECTS[layout.goal_object], TARGETS[layout.goal_target]


def named_goal(records):
    """(episodes with a response, naming the goal object, naming the goal place, every response naming both, first
    response naming both, of those the successes) over the instruct scene's episode records: the goal's full display
    name ("blue soda can") occurs in the response, whatever else it names. The last two split a failure into the
    language half (the response) and the action half (the arm, given a response that names the goal)."""
    n = obj = place = steady = both = both_success = 0
    for r, goal_object, goal_target in answered_goals(records):
        names = display_name(goal_object), display_name(goal_target)
        text = r["text"].lower()
        n += 1
        obj += names[0] in text
        place += names[1] in text
        steady += all(all(name in t.lower() for name in names) for t in r.get("texts") or [r["text"]])
        if all(name in text for name in names):
            both += 1
            both_success += bool(r.get("success"))
    return n, obj, place, steady, both, both_success


def named_by_reference(records):
    """{("object", kind) or ("place", kind): [first responses naming that goal, episodes]} over instruct-scene records."""
    out = {}
    for r, obj, target in answered_goals(records):
        kinds = reference_kinds(r["instruction"], obj.name, obj.colour, target.name, target.colour)
        for part, kind, entity in zip(("object", "place"), kinds, (obj, target)):
            count = out.setdefault((part, kind or "unrecognised"), [0, 0])
            count[0] += display_name(entity) in r["text"].lower()
            count[1] += 1
    return out


def main(folder):
    rows = ["| instructions | success | rate | Wilson 95% CI | response names the object | … and the place "
            "| every response names both | success where the first names both |",
            "|---|---|---|---|---|---|---|---|"]
    by_reference = ["", "First responses naming the goal, by the kind of reference the instruction makes:", "",
                    "| instructions | reference | named |", "|---|---|---|"]
    for kind in KINDS:
        path = os.path.join(folder, kind, "results.json")
        if not os.path.exists(path):
            rows.append(f"| {kind} | (no {path}) | | | | | | |")
            continue
        report = json.load(open(path))
        k = sum(t["successes"] for t in report["tasks"].values())
        n = sum(t["episodes"] for t in report["tasks"].values())
        lo, hi = wilson(k, n)
        records = report["tasks"].get(TASK, {}).get("per_episode", [])
        answered, obj, place, steady, both, both_success = named_goal(records)
        said = ((f"{obj}/{answered}", f"{place}/{answered}", f"{steady}/{answered}", f"{both_success}/{both}") if answered
                else ("(no response)", "", "", ""))
        rows.append(f"| {kind} | {k}/{n} | {100 * k / max(n, 1):.1f} % | {100 * lo:.1f}–{100 * hi:.1f} % | {' | '.join(said)} |")
        if kind != "atomic":
            by_reference += [f"| {kind} | {part} by {ref} | {named}/{of} |"
                             for (part, ref), (named, of) in sorted(named_by_reference(records).items())]
    if len(by_reference) > 5:
        rows += by_reference
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
