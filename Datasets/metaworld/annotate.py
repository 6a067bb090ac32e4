#!/usr/bin/env python3
"""VLA-IT annotations (InstructVLA section 3) for generate.py's HDF5 files, from the simulator's ground truth.

    python annotate.py Datasets/metaworld-mt10          # every generate.py file in the folder, then its card
    python annotate.py a.hdf5 b.hdf5 --workers 2

Adds a JSON attr `annotations` to every data/demo_<i>: a scene caption, questions and answers, command
rewritings and context creations, worded with the *train* phrasings of phrasings.json only (the *eval* ones are
kept for eval_instructions.py). The facts come from the demo's `scene` attr (instruct-place-v3) or from its
`layout` attr and the task (MT10). README.md documents the schema. Each file is rewritten as a whole (a copy
is annotated, then renamed over the original), so an interrupted run leaves every file either as it was or
fully annotated; files already annotated by this version are skipped. Afterwards the folder's
dataset_card.json gets counts per annotation category, and per object and target of the instruct scene.
"""
import argparse
import hashlib
import json
import os
import shutil
import sys
from collections import Counter
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field

import h5py
import numpy as np

from instruct_scene import TASK as INSTRUCT_TASK

HERE = os.path.dirname(os.path.abspath(__file__))
PHRASINGS_FILE = os.path.join(HERE, "phrasings.json")
with open(PHRASINGS_FILE) as _f:
    PHRASINGS = json.load(_f)
ANNOTATOR_VERSION = "1.0.0"
# Files annotated with other phrasings or another annotator version are annotated again.
VERSION_TAG = f"{ANNOTATOR_VERSION}+{hashlib.sha1(open(PHRASINGS_FILE, 'rb').read()).hexdigest()[:12]}"
CATEGORIES = ("caption", "qa", "command_rewriting", "context_creation")
PER_EPISODE = {"qa": 4, "command_rewriting": 2, "context_creation": 2}
SIDE_MARGIN = 0.06  # image-width fraction (4 px at 64x64) below which left/right is not asked
ROBOT_MARGIN = 0.04  # metres of distance to the robot's base below which "closer to the robot" is not asked
TARGET_SIDE_MARGIN = 0.1  # the same, for telling the two targets apart
NUMBERS = ["none", "one", "two", "three", "four", "five", "six"]


@dataclass
class Thing:
    name: str
    colour: str = None
    pos: tuple = None  # world xyz at the start of the episode
    image_xy: tuple = None  # in the camera image, (0, 0) top left
    static: bool = True  # stays where it is for the whole episode
    graspable: bool = False
    kind: str = "object"  # object, plate, tray, marker, fixture
    category: str = None

    @property
    def display(self):
        return f"{self.colour} {self.name}" if self.colour else self.name


@dataclass
class Facts:
    """What is true of one episode: the things on the table, the action, and how the scene changes."""
    task: str
    things: list  # everything on the table except the places to put objects on
    targets: list = field(default_factory=list)
    action: str = ""
    goal_object: Thing = None
    goal_target: Thing = None
    state: tuple = None  # (part, state at the start, state at the end)
    succeeded: bool = True  # False for the failures that generate.py --all-attempts keeps: no "at the end" facts


# MT10 scenes as rendered (colours checked in the images): (name, colour, layout key of its position or None,
# static, graspable, kind); the articulated part with its state at the start and at the end of a success.
MT10_SCENES = {
    "reach-v3": {"things": [("puck", "red", "obj_pos", True, True, "object"), ("goal marker", "red", "goal_pos", True, False, "marker")]},
    "push-v3": {"things": [("puck", "red", "obj_pos", False, True, "object"), ("goal marker", "green", "goal_pos", True, False, "marker")]},
    "pick-place-v3": {"things": [("puck", "red", "obj_pos", False, True, "object"), ("goal marker", "blue", "goal_pos", True, False, "marker")]},
    "door-open-v3": {"things": [("safe", None, None, True, False, "fixture")], "state": ("door", "closed", "open")},
    "drawer-open-v3": {"things": [("drawer", "green", None, True, False, "fixture")], "state": ("drawer", "closed", "open")},
    "drawer-close-v3": {"things": [("drawer", "green", None, True, False, "fixture")], "state": ("drawer", "open", "closed")},
    "button-press-topdown-v3": {"things": [("button box", "yellow", None, True, False, "fixture"),
                                           ("button", "red", None, True, False, "fixture")],
                                "state": ("button", "not pressed", "pressed down")},
    "peg-insert-side-v3": {"things": [("peg", "green", "obj_pos", False, True, "object"),
                                      ("box with a hole", "red", None, True, False, "fixture")],
                           "state": ("peg", "lying on the table", "in the hole")},
    "window-open-v3": {"things": [("window", None, None, True, False, "fixture")], "state": ("window", "closed", "open")},
    "window-close-v3": {"things": [("window", None, None, True, False, "fixture")], "state": ("window", "open", "closed")},
}


# Names asked about in "is there a ...?" questions, present or not.
ALL_NAMES = sorted(set(PHRASINGS["lexicon"]["train"]) | {t[0] for s in MT10_SCENES.values() for t in s["things"]})


# ---------------------------------------------------------------------------------------------- facts


def instruct_facts(scene):
    """Facts of an instruct-place-v3 episode from its `scene` attr (instruct_scene.scene_info)."""
    objects = [Thing(o["name"], o["colour"], tuple(o["pos"]), tuple(o["image_xy"]), o["display_name"] != scene["goal_object"],
                     True, "object", o["category"]) for o in scene["objects"]]
    targets = [Thing(t["name"], t["colour"], tuple(t["pos"]), tuple(t["image_xy"]), True, False, t["name"])
               for t in scene["targets"]]
    goal_object = next(o for o in objects if o.display == scene["goal_object"])
    goal_target = next(t for t in targets if t.display == scene["goal_target"])
    return Facts(scene["task"], objects, targets, scene["instruction"], goal_object, goal_target)


def mt10_facts(task, layout, instruction):
    """Facts of an MT10 episode from the task's scene vocabulary and the demo's `layout` attr."""
    spec = MT10_SCENES[task]
    things = [Thing(name, colour, tuple(layout[key]) if key else None, None, static, graspable, kind)
              for name, colour, key, static, graspable, kind in spec["things"]]
    return Facts(task, things, action=instruction, state=spec.get("state"))


def facts_of_demo(task, attrs, file_instruction):
    if task == INSTRUCT_TASK:
        f = instruct_facts(json.loads(attrs["scene"]))
    elif task in MT10_SCENES:
        f = mt10_facts(task, json.loads(attrs["layout"]), file_instruction)
    else:
        raise KeyError(f"no scene vocabulary for task {task} (MT10 and {INSTRUCT_TASK} only)")
    f.succeeded = bool(attrs.get("success", 1))
    return f


# ---------------------------------------------------------------------------------------------- wording helpers


def with_article(noun):
    return ("an " if noun[0] in "aeiou" else "a ") + noun


def listing(words):
    return words[0] if len(words) == 1 else ", ".join(words[:-1]) + " and " + words[-1]


def sentence(text):
    text = text.strip()
    return text[0].upper() + text[1:] + ("" if text[-1] in ".?!" else ".")


def robot_distance(thing):
    return float(np.hypot(thing.pos[0], thing.pos[1]))  # the robot's base stands at the origin


def side_of(a, b, margin):
    """'left' or 'right': where a is relative to b in the image, or None when too close to tell."""
    du = a.image_xy[0] - b.image_xy[0] if a.image_xy and b.image_xy else 0.0
    return None if abs(du) < margin else ("left" if du < 0 else "right")


def nearer_of(a, b, margin):
    if a.pos is None or b.pos is None or abs(robot_distance(a) - robot_distance(b)) < margin:
        return None
    return a if robot_distance(a) < robot_distance(b) else b


def pick(rng, items):
    return items[int(rng.integers(len(items)))]


def fill(template, **words):
    return template.format(**words)


# ---------------------------------------------------------------------------------------------- captions


def caption(f):
    """What is on the table, where, and in what state (at the start of the episode)."""
    objects = [with_article(t.display) for t in f.things if t.kind != "marker"]
    markers = [with_article(t.display) for t in f.things if t.kind == "marker"]
    if f.task != INSTRUCT_TASK:
        text = f"On the table: {listing(objects + markers)}."
        if f.state:
            text += f" At the start the {f.state[0]} is {f.state[1]}."
        return text
    text = f"{NUMBERS[len(objects)].capitalize()} objects lie on the table: {listing(objects)}."
    a, b = f.targets
    side = side_of(a, b, TARGET_SIDE_MARGIN)
    if side:
        where = [f"{with_article(a.display)} on the {side}", f"{with_article(b.display)} on the {opposite(side)}"]
    else:
        near = nearer_of(a, b, 0.0)
        far = b if near is a else a
        where = [f"{with_article(near.display)} closer to the robot", f"{with_article(far.display)} farther away"]
    return text + f" There are two places to put them, {listing(where)}, and both are empty."


def opposite(side):
    return "right" if side == "left" else "left"


# ---------------------------------------------------------------------------------------------- questions
# Each question type: facts, rng, lexicon -> (template words, answer, things referred to), or None when the
# question does not apply to this scene.


def q_count_objects(f, rng, lex):
    n = sum(t.graspable for t in f.things)
    return ({}, NUMBERS[n], []) if n else None


def q_count_plates(f, rng, lex):
    return {}, NUMBERS[sum(t.kind == "plate" for t in f.targets)], []


def q_colour(f, rng, lex):
    coloured = [t for t in f.things if t.colour]
    if not coloured:
        return None
    t = pick(rng, coloured)
    return {"name": t.name}, t.colour, [t.display]


def q_exists(f, rng, lex):
    present = [t.name for t in f.things]
    absent = [n for n in ALL_NAMES if n not in present]
    if rng.random() < 0.5 or not absent:
        t = pick(rng, f.things)
        return {"name": t.name}, "yes", [t.display]
    return {"name": pick(rng, absent)}, "no", []


def _static_pairs(f, relation):
    things = [t for t in f.things + f.targets if t.static and t.pos is not None]
    return [(a, b, r) for a in things for b in things if a is not b and (r := relation(a, b)) is not None]


def q_left_right(f, rng, lex):
    pairs = _static_pairs(f, lambda a, b: side_of(a, b, SIDE_MARGIN))
    if not pairs:
        return None
    a, b, side = pick(rng, pairs)
    return {"a": a.display, "b": b.display}, f"to the {side}", [a.display, b.display]


def q_nearer_robot(f, rng, lex):
    pairs = _static_pairs(f, lambda a, b: nearer_of(a, b, ROBOT_MARGIN))
    if not pairs:
        return None
    a, b, near = pick(rng, pairs)
    return {"a": a.display, "b": b.display}, f"the {near.display}", [a.display, b.display]


def _with_use(f, lex):
    return [t for t in f.things if lex.get(t.name, {}).get("use")]


def q_use(f, rng, lex):
    things = _with_use(f, lex)
    if not things:
        return None
    t = pick(rng, things)
    return {"name": t.name}, lex[t.name]["use"], [t.display]


def q_which_for_use(f, rng, lex):
    things = [t for t in _with_use(f, lex) if t.graspable]
    if not things:
        return None
    t = pick(rng, things)
    return {"use": lex[t.name]["use"]}, f"the {t.display}", [t.display]


def q_edible(f, rng, lex):
    food = [t for t in f.things if t.category == "fruit"]
    return {}, listing([f"the {t.display}" for t in food]) if food else "none of them", [t.display for t in food]


def q_state_start(f, rng, lex):
    return ({"part": f.state[0]}, f.state[1], []) if f.state else None


def q_state_end(f, rng, lex):
    return ({"part": f.state[0]}, f.state[2], []) if f.state and f.succeeded else None


def q_target_start(f, rng, lex):
    if not f.targets:
        return None
    b = pick(rng, f.targets)
    return {"b": b.display}, "nothing", [b.display]


def q_target_end(f, rng, lex):
    if not f.targets or not f.succeeded:
        return None
    b = pick(rng, f.targets)
    return {"b": b.display}, f"the {f.goal_object.display}" if b is f.goal_target else "nothing", [b.display]


def q_goal_end(f, rng, lex):
    if not f.goal_object or not f.succeeded:
        return None
    return ({"a": f.goal_object.display}, f"on the {f.goal_target.display}",
            [f.goal_object.display, f.goal_target.display])


QUESTIONS = {"count_objects": q_count_objects, "count_plates": q_count_plates, "colour": q_colour, "exists": q_exists,
             "left_right": q_left_right, "nearer_robot": q_nearer_robot, "use": q_use, "which_for_use": q_which_for_use,
             "edible": q_edible, "state_start": q_state_start, "state_end": q_state_end,
             "target_start": q_target_start, "target_end": q_target_end, "goal_end": q_goal_end}


def questions(f, rng, split, n):
    """n questions of distinct types, drawn among the types that apply to the scene."""
    lex, templates = PHRASINGS["lexicon"][split], PHRASINGS["qa"][split]
    out = []
    for kind in rng.permutation(sorted(QUESTIONS)):
        got = QUESTIONS[kind](f, rng, lex)
        if got is not None:
            words, answer, refs = got
            out.append({"category": "qa", "type": str(kind), "question": fill(pick(rng, templates[kind]), **words),
                        "response": answer, "refs": refs})
        if len(out) == n:
            break
    return out


# ---------------------------------------------------------------------------------------------- commands


def object_reference(obj, rng, split):
    lex = PHRASINGS["lexicon"][split][obj.name]
    return fill(pick(rng, PHRASINGS["command_rewriting"][split]["object_refs"]), colour=obj.colour, **lex)


def target_reference(f, rng, split, category):
    """A reference to the goal target that only fits the goal target: by colour, side, or distance to the robot."""
    target = f.goal_target
    other = next(t for t in f.targets if t is not target)
    side = side_of(target, other, TARGET_SIDE_MARGIN)
    near = nearer_of(target, other, ROBOT_MARGIN)
    words = {"colour": target.colour, "kind": target.kind, "side": side,
             "robot_side": None if near is None else ("closer to" if near is target else "farther from")}
    usable = [t for t in PHRASINGS[category][split]["target_refs"]
              if all(words[k] is not None for k in ("side", "robot_side") if "{" + k + "}" in t)]
    return fill(pick(rng, usable), **words)


def rewriting(f, rng, split):
    """The same goal in other words: the action's object and target referred to by attribute, shape or use."""
    spec = PHRASINGS["command_rewriting"][split]
    if f.task != INSTRUCT_TASK:
        return pick(rng, spec["mt10"][f.task])
    return fill(pick(rng, spec["templates"]), object=object_reference(f.goal_object, rng, split),
                target=target_reference(f, rng, split, "command_rewriting"))


def context(f, rng, split):
    """A situation that implies the goal; its answer is the action."""
    spec = PHRASINGS["context_creation"][split]
    if f.task != INSTRUCT_TASK:
        return pick(rng, spec["mt10"][f.task])
    return fill(pick(rng, spec["templates"]), context=pick(rng, spec["contexts"][f.goal_object.name]),
                target=target_reference(f, rng, split, "context_creation"))


def commands(f, rng, category, n):
    make = rewriting if category == "command_rewriting" else context
    texts = []
    for _ in range(8 * n):  # distinct wordings, as many as the phrasings allow
        text = make(f, rng, "train")
        if text not in texts:
            texts.append(text)
        if len(texts) == n:
            break
    refs = [t.display for t in (f.goal_object, f.goal_target) if t]
    return [{"category": category, "instruction": t, "response": sentence(f.action), "refs": refs} for t in texts]


def annotations(f, seed):
    """The episode's annotations: one caption, then questions, command rewritings and context creations."""
    rng = np.random.default_rng([seed, 0xA11])
    mentioned = [t.display for t in f.things + f.targets]
    out = [{"category": "caption", "question": pick(rng, PHRASINGS["caption"]["train"]), "response": caption(f),
            "refs": mentioned}]
    out += questions(f, rng, "train", PER_EPISODE["qa"])
    for category in ("command_rewriting", "context_creation"):
        out += commands(f, rng, category, PER_EPISODE[category])
    return out


# ---------------------------------------------------------------------------------------------- files


def _text(value):
    return value.decode() if isinstance(value, bytes) else str(value)


def annotate_file(path, force=False):
    """Annotate every demo of one generate.py file (atomically); returns (path, demos annotated or None if skipped)."""
    with h5py.File(path, "r") as h:
        if "data" not in h or "task" not in h["data"].attrs:
            return path, None  # not a generate.py file (scene_qa.hdf5, shapes.hdf5)
        if not force and _text(h["data"].attrs.get("annotations_version", "")) == VERSION_TAG:
            return path, 0
    tmp = os.path.join(os.path.dirname(path), f".{os.path.basename(path)}.tmp-{os.getpid()}")
    try:
        shutil.copyfile(path, tmp)
        with h5py.File(tmp, "r+") as h:
            data = h["data"]
            task, instruction = _text(data.attrs["task"]), _text(data.attrs["language_instruction"])
            for demo in data.values():
                f = facts_of_demo(task, demo.attrs, instruction)
                demo.attrs["annotations"] = json.dumps(annotations(f, int(demo.attrs["seed"])))
            data.attrs["annotations_version"] = VERSION_TAG
            data.attrs["annotations_doc"] = ("per demo: JSON list of {category, question|instruction, response, ...}; "
                                             "see Datasets/metaworld/README.md")
            n = len(data)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path, n


def statistics(paths):
    """Counts for the dataset card: annotation categories and question types per task; the instruct scene's
    goal objects, goal targets, pairs and the objects and targets present."""
    per_task, qa_types, scene = {}, Counter(), {k: Counter() for k in ("goal_objects", "goal_targets", "goal_pairs",
                                                                        "objects_present", "targets_present")}
    for path in paths:
        with h5py.File(path, "r") as h:
            if "data" not in h or "annotations_version" not in h["data"].attrs:
                continue
            task = _text(h["data"].attrs["task"])
            counts = per_task.setdefault(task, Counter())
            for demo in h["data"].values():
                for entry in json.loads(demo.attrs["annotations"]):
                    counts[entry["category"]] += 1
                    if entry["category"] == "qa":
                        qa_types[entry["type"]] += 1
                if task == INSTRUCT_TASK:
                    s = json.loads(demo.attrs["scene"])
                    scene["goal_objects"][s["goal_object"]] += 1
                    scene["goal_targets"][s["goal_target"]] += 1
                    scene["goal_pairs"][f"{s['goal_object']} -> {s['goal_target']}"] += 1
                    scene["objects_present"].update(o["display_name"] for o in s["objects"])
                    scene["targets_present"].update(t["display_name"] for t in s["targets"])
    totals = Counter()
    for c in per_task.values():
        totals.update(c)
    return ({"version": VERSION_TAG, "phrasings": "Datasets/metaworld/phrasings.json (train sets only)",
             "categories": {c: totals[c] for c in CATEGORIES}, "qa_types": dict(sorted(qa_types.items())),
             "per_task": {t: {c: per_task[t][c] for c in CATEGORIES} for t in sorted(per_task)}},
            {k: dict(sorted(v.items())) for k, v in scene.items()} if scene["goal_objects"] else None)


def update_card(folder, paths):
    card_path = os.path.join(folder, "dataset_card.json")
    if not os.path.exists(card_path):
        return None
    with open(card_path) as fh:
        card = json.load(fh)
    card["annotations"], instruct = statistics(paths)
    if instruct:
        card["instruct_scene"] = instruct
    tmp = os.path.join(folder, f".dataset_card.json.tmp-{os.getpid()}")
    with open(tmp, "w") as fh:
        json.dump(card, fh, indent=2)
        fh.write("\n")
    os.replace(tmp, card_path)
    return card_path


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("paths", nargs="+", help="generate.py HDF5 files, or folders holding them")
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--force", action="store_true", help="annotate files that this version already annotated")
    args = p.parse_args(argv)
    files = []
    for path in args.paths:
        if os.path.isdir(path):
            files += sorted(os.path.join(path, n) for n in os.listdir(path) if n.endswith(".hdf5") and not n.startswith("."))
        elif os.path.isfile(path):
            files.append(path)
        else:
            p.error(f"{path}: no such file or folder")
    with ProcessPoolExecutor(max(1, min(args.workers, len(files)))) as pool:
        for path, n in pool.map(annotate_file, files, [args.force] * len(files)):
            if n is not None:
                print(f"{os.path.basename(path)}: " + (f"annotated {n} demos" if n else "already annotated"))
    by_folder = {}
    for f in files:
        by_folder.setdefault(os.path.dirname(os.path.abspath(f)), []).append(f)
    for folder, paths in sorted(by_folder.items()):
        card = update_card(folder, paths)
        if card:
            print(f"updated {card}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
