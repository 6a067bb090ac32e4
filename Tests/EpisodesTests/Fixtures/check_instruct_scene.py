"""Test-only: generate a tiny Meta-World-Instruct + MT10 set, annotate it, and check the annotations against the
simulator's ground truth, independently of annotate.py's own reasoning.

IN {"dir"} -> OUT {"problems": [...], "demos": n, "annotations": {category: n}, "eval_phrasings_checked": n,
                  "success_rate": {task: rate}, "instruction_files": [...], "knowledge": {type: n}}
Also checks the stage-0 scene-QA file (Datasets/vqa/scene_qa.py) of the same episodes: its instruct-scene
knowledge answers against the scene, and that no eval phrasing occurs in it either.
An empty "problems" list means every check passed; each problem names the file, demo and entry.
"""
import json
import os
import re
import subprocess
import sys
from collections import Counter

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", ".."))
MW = os.path.join(ROOT, "Datasets", "metaworld")
sys.path.insert(0, MW)

import h5py  # noqa: E402
import hdf5plugin  # noqa: E402,F401  (zstd filter)
import numpy as np  # noqa: E402

import annotate  # noqa: E402
import eval_instructions  # noqa: E402
import instruct_scene  # noqa: E402
import instruct_summary  # noqa: E402
from sim import EVAL_SEED, MT10  # noqa: E402

TASKS = ("instruct-place-v3", "reach-v3", "drawer-open-v3")
PHRASINGS = json.load(open(os.path.join(MW, "phrasings.json")))
INSTRUCTIONS = json.load(open(os.path.join(MW, "instructions.json")))
TRAIN_LEX, EVAL_LEX = PHRASINGS["lexicon"]["train"], PHRASINGS["lexicon"]["eval"]
COLOURS = {o.colour for o in instruct_scene.OBJECTS} | {t.colour for t in instruct_scene.TARGETS}
OBJECT_NAMES = [o.name for o in instruct_scene.OBJECTS]


def run(script, *args):
    subprocess.run([sys.executable, os.path.join(MW, script), *args], check=True, capture_output=True)


def words_in(text, phrase):
    return re.search(r"\b" + re.escape(phrase) + r"\b", text.lower()) is not None


def sentence(text):
    return text[0].upper() + text[1:] + "."


class Checker:
    def __init__(self):
        self.problems = []

    def expect(self, ok, where, message):
        if not ok:
            self.problems.append(f"{where}: {message}")

    # ------------------------------------------------------------------ instruct scene ground truth

    def instruct_demo(self, where, scene, instruction, entries, first_state):
        objects = {o["name"]: o for o in scene["objects"]}
        targets = {t["display_name"]: t for t in scene["targets"]}
        displays = {o["display_name"] for o in scene["objects"]} | set(targets)
        goal = next(o for o in scene["objects"] if o["display_name"] == scene["goal_object"])
        goal_target = targets.get(scene["goal_target"])
        self.expect(goal_target is not None, where, f"goal target {scene['goal_target']} is not in the scene")
        self.expect(instruction == f"put the {scene['goal_object']} on the {scene['goal_target']}", where,
                    f"language_instruction {instruction!r} does not name the scene's goal")
        # The stored scene is the episode's first state: the goal object where env_state[0] says it is.
        self.expect(np.allclose(goal["pos"], first_state[4:7], atol=2e-3), where, "scene goal position != env_state[0]")
        for e in entries:
            at = f"{where} {e['category']} {e.get('type', '')} {e.get('question') or e.get('instruction')!r}"
            text = " ".join(str(e.get(k, "")) for k in ("question", "instruction", "response"))
            for ref in e.get("refs", []):
                self.expect(ref in displays, at, f"refers to {ref!r}, which is not in this episode")
            absent_ok = e.get("type") == "exists" and e["response"] == "no"
            for name in OBJECT_NAMES:
                if words_in(text, name) and not absent_ok:
                    self.expect(name in objects, at, f"names a {name}, which is not in this episode")
            for colour in COLOURS:
                if words_in(text, colour) and not absent_ok:
                    self.expect(any(t["colour"] == colour for t in scene["objects"] + scene["targets"]), at,
                                f"says {colour}, but nothing in this episode is {colour}")
            if e["category"] == "qa":
                self.expect(e["response"] == self.instruct_answer(e, scene, objects, targets), at,
                            f"answer {e['response']!r} != ground truth {self.instruct_answer(e, scene, objects, targets)!r}")
            elif e["category"] == "caption":
                for d in displays:
                    self.expect(d in e["response"], at, f"caption misses {d}")
            else:
                self.expect(e["response"] == sentence(instruction), at, "response is not the episode's action")
                self.command_refers_to_goal(at, e["instruction"], goal, goal_target, scene)

    def command_refers_to_goal(self, at, text, goal, goal_target, scene):
        """Every attribute word of a rewritten command or context belongs to the goal object or goal target."""
        others = [o for o in scene["objects"] if o is not goal]
        for o in others:
            self.expect(not words_in(text, o["colour"]), at, f"names the {o['display_name']}'s colour")
        for lex in (TRAIN_LEX, EVAL_LEX):
            for o in others:
                for key in ("category", "shape", "use"):
                    self.expect(not words_in(text, lex[o["name"]][key]), at, f"describes the {o['display_name']}")
        for split in ("train", "eval"):
            for name, contexts in PHRASINGS["context_creation"][split]["contexts"].items():
                for c in contexts:
                    self.expect(c not in text or name == goal["name"], at, f"the situation implies the {name}")
        other_target = next(t for t in scene["targets"] if t is not goal_target)
        self.expect(not words_in(text, other_target["colour"]), at, f"names the {other_target['display_name']}'s colour")
        for side in ("left", "right"):
            if f"on the {side}" in text or f"{side}-hand" in text:
                du = goal_target["image_xy"][0] - other_target["image_xy"][0]
                self.expect((du < 0) == (side == "left"), at, f"the goal target is not on the {side}")
        for phrase, nearer in (("closer to", True), ("farther from", False)):
            if phrase in text:
                d = np.hypot(*goal_target["pos"][:2]) - np.hypot(*other_target["pos"][:2])
                self.expect((d < 0) == nearer, at, f"the goal target is not {phrase} the robot")

    @staticmethod
    def instruct_answer(e, scene, objects, targets):
        q, kind = e["question"], e["type"]
        everything = {t["display_name"]: t for t in scene["objects"] + scene["targets"]}
        a, b = (everything.get(x) for x in (e["refs"] + [None, None])[:2])
        if kind == "count_objects":
            return annotate.NUMBERS[len(scene["objects"])]
        if kind == "count_plates":
            return annotate.NUMBERS[sum(t["name"] == "plate" for t in scene["targets"])]
        if kind == "colour":
            return next(o["colour"] for o in scene["objects"] if o["name"] in q)
        if kind == "exists":
            return "yes" if any(words_in(q, n) for n in objects) else "no"
        if kind == "left_right":
            return "to the left" if a["image_xy"][0] < b["image_xy"][0] else "to the right"
        if kind == "nearer_robot":
            return "the " + min((a, b), key=lambda t: np.hypot(*t["pos"][:2]))["display_name"]
        if kind == "use":
            return next(TRAIN_LEX[n]["use"] for n in objects if words_in(q, n))
        if kind == "which_for_use":
            return "the " + next(o["display_name"] for n, o in objects.items() if TRAIN_LEX[n]["use"] in q)
        if kind == "edible":
            return "the red apple" if "apple" in objects else "none of them"
        if kind == "target_start":  # nothing within a plate's radius at the start
            near = [o for o in scene["objects"] if np.hypot(*(np.subtract(o["pos"][:2], a["pos"][:2]))) < 0.065]
            return "nothing" if not near else "the " + near[0]["display_name"]
        if kind == "target_end":
            return "the " + scene["goal_object"] if a["display_name"] == scene["goal_target"] else "nothing"
        if kind == "goal_end":
            return "on the " + scene["goal_target"]
        return f"<unexpected question type {kind}>"

    # ------------------------------------------------------------------ MT10 ground truth

    def mt10_demo(self, where, task, layout, instruction, entries, states):
        for e in entries:
            at = f"{where} {e['category']} {e.get('type', '')}"
            text = " ".join(str(e.get(k, "")) for k in ("question", "instruction", "response"))
            if e["category"] in ("command_rewriting", "context_creation"):
                self.expect(e["response"] == sentence(instruction), at, "response is not the task's instruction")
            absent_ok = e.get("type") == "exists" and e["response"] == "no"
            for name in OBJECT_NAMES:
                self.expect(not words_in(text, name) or absent_ok, at, f"names a {name} in an MT10 scene")
            kind, answer = e.get("type"), e.get("response")
            if task == "reach-v3" and kind == "nearer_robot":
                puck, goal = (np.hypot(*layout[k][:2]) for k in ("obj_pos", "goal_pos"))
                self.expect(answer == ("the red puck" if puck < goal else "the red goal marker"), at, f"wrong: {answer}")
            if task == "drawer-open-v3" and kind in ("state_start", "state_end"):
                # The drawer's handle moves towards the robot (-y) as it opens: closed at the start, open at the end.
                opened = states[-1][5] < states[0][5] - 0.05
                self.expect(opened and answer == ("closed" if kind == "state_start" else "open"), at, f"wrong: {answer}")
            if kind == "count_objects":
                self.expect(answer == ("one" if task == "reach-v3" else "none"), at, f"wrong count {answer}")
            if kind == "count_plates":
                self.expect(answer == "none", at, f"wrong count {answer}")


def check_knowledge(check, items, scenes):
    """Stage-0 knowledge about instruct scenes (`items`: the scene-QA file's entries, `scenes`: demo name -> its
    scene): each answer names the scene's one thing that fits, with the lexicon words of either split; returns
    the count per question type."""
    counts = {}
    by_lexicon = {}
    for lex in (TRAIN_LEX, EVAL_LEX):
        for name, words in lex.items():
            for field in ("category", "shape", "use"):
                if field in words:
                    by_lexicon.setdefault((field, words[field]), set()).add(name)
    for q in items:
        kind = q["type"]
        if not kind.startswith("instruct_"):
            continue
        counts[kind] = counts.get(kind, 0) + 1
        where = f"scene_qa {q['question']!r}"
        question = q["question"]
        lexicon = re.fullmatch(r"which object is (?:a|an) (.+)\?|which object is shaped like (?:a|an) (.+)\?|which object is for (.+)\?",
                               question)
        colour = re.fullmatch(r"what colour is the (.+)\?", question)
        place = re.fullmatch(r"which place to put things on is (.+)\?", question)
        put = re.fullmatch(r"where can you put the (.+)\?", question)
        situation = re.fullmatch(r"which object would help someone who says: (.+)", question)
        if not (lexicon or colour or place or put or situation or question == "what objects are on the table?"):
            check.expect(False, where, f"unknown question type {kind}")
            continue
        scene = scenes.get(q.get("demo"))
        if scene is None:
            check.expect(False, where, f"names no demo of the set ({q.get('demo')!r})")
            continue
        objects = {o["name"]: o["display_name"] for o in scene["objects"]}
        colours = {o["name"]: o["colour"] for o in scene["objects"]}
        targets = sorted(t["display_name"] for t in scene["targets"])
        if lexicon:
            field, word = next((f, w) for f, w in zip(("category", "shape", "use"), lexicon.groups()) if w)
            names = by_lexicon.get((field, word), set()) & set(objects)
            fits = len(names) == 1 and q["answer"] == f"the {objects[names.pop()]}"
        elif colour:
            fits = colours.get(colour.group(1)) == q["answer"]
        elif place:
            fits = q["answer"] in {f"the {t}" for t in targets if t.startswith(place.group(1) + " ")}
        elif put:
            fits = put.group(1) in objects and q["answer"] == f"on the {targets[0]} or the {targets[1]}"
        elif situation:
            names = {name for split in ("train", "eval") for name, contexts in PHRASINGS["context_creation"][split]["contexts"].items()
                     if situation.group(1) in contexts} & set(objects)
            fits = len(names) == 1 and q["answer"] == f"the {objects[names.pop()]}"
        else:
            fits = all(d in q["answer"] for d in objects.values()) and q["answer"].count(",") == len(objects) - 2
        check.expect(fits, where, f"answer {q['answer']!r} does not fit the scene of demo {q['demo']!r}")
    return counts


def training_texts(files):
    texts, per_demo = [], []
    for path in files:
        with h5py.File(path, "r") as h:
            for name, demo in h["data"].items():
                entries = json.loads(demo.attrs["annotations"])
                per_demo.append((path, name, dict(demo.attrs), entries, demo["obs/env_state"][()]))
                texts += [str(e.get(k, "")).lower() for e in entries for k in ("question", "instruction", "response")]
                texts.append(str(demo.attrs.get("language_instruction", h["data"].attrs["language_instruction"])).lower())
    return texts, per_demo


def eval_phrasings(facts_list):
    """Every eval wording: templates filled in for these episodes, MT10 rewritings and situations, caption prompts."""
    out = set()
    for f in facts_list:
        for seed in range(20):  # many draws: every eval template and reference gets filled in
            rng = np.random.default_rng(seed)
            out.add(annotate.rewriting(f, rng, "eval"))
            out.add(annotate.context(f, rng, "eval"))
            out.update(q["question"] for q in annotate.questions(f, rng, "eval", len(annotate.QUESTIONS)))
    out.update(PHRASINGS["caption"]["eval"])
    for split_section in (PHRASINGS["command_rewriting"]["eval"], PHRASINGS["context_creation"]["eval"]):
        for phrasings in split_section["mt10"].values():
            out.update(phrasings)
    for section in PHRASINGS["context_creation"]["eval"]["contexts"].values():
        out.update(section)
    return {p.lower() for p in out}


def check_instruction_files(check, train_texts):
    """The committed files equal a fresh build from phrasings.json, name each episode's goal, and hold eval
    wordings only."""
    built = eval_instructions.tables(50, EVAL_SEED)
    episodes = eval_instructions.instruct_episodes(50, EVAL_SEED)
    names, references = [], {}
    for kind, table in built.items():
        path = os.path.join(MW, "eval_instructions", f"{kind}.json")
        names.append(os.path.relpath(path, ROOT))
        with open(path) as fh:
            committed = json.load(fh)
        check.expect(committed == table, path, "differs from `python eval_instructions.py` (regenerate it)")
        check.expect(set(committed) == {"instruct-place-v3", *MT10}, path, "tasks are not MT10 + instruct-place-v3")
        for i, (seed, f) in enumerate(episodes):
            text = table["instruct-place-v3"][str(i)]
            scene = {"objects": [{"name": t.name, "display_name": t.display, "colour": t.colour} for t in f.things],
                     "targets": [{"display_name": t.display, "colour": t.colour, "image_xy": t.image_xy, "pos": t.pos}
                                 for t in f.targets]}
            goal = next(o for o in scene["objects"] if o["display_name"] == f.goal_object.display)
            target = next(t for t in scene["targets"] if t["display_name"] == f.goal_target.display)
            if kind == "atomic":
                check.expect(text == f.action, f"{path} episode {i}", f"{text!r} != {f.action!r}")
            else:
                check.command_refers_to_goal(f"{path} episode {i}", text, goal, target, scene)
                # instruct_summary.py scores responses by the kind of reference; every evaluation instruction has one.
                obj, place = instruct_summary.reference_kinds(text, f.goal_object.name, f.goal_object.colour, f.goal_target.kind,
                                                              f.goal_target.colour)
                check.expect((obj == "context") == (kind == "context") and obj is not None and place is not None,
                             f"{path} episode {i}", f"reference kinds ({obj}, {place}) of {text!r}")
                references.setdefault(kind, Counter()).update([f"object by {obj}", f"place by {place}"])
                check.expect(not any(text.lower() in t for t in train_texts), f"{path} episode {i}",
                             f"{text!r} occurs in the training annotations")
    examples = {("transfer the plaything to the left-hand tray", "toy block", "orange", "tray", "black"): ("category", "side"),
                ("place the orange object on the plate on the right", "toy block", "orange", "plate", "white"): ("colour", "side"),
                ("I'm thirsty. Put what I need on the white one.", "soda can", "blue", "plate", "white"): ("context", "colour"),
                ("put it over there", "apple", "red", "plate", "green"): (None, None)}
    for args, expected in examples.items():
        got = instruct_summary.reference_kinds(*args)
        check.expect(got == expected, "instruct_summary.reference_kinds", f"{args[0]!r}: {got} != {expected}")
    # named_goal: the goal is the blue soda can on the black tray; one response names it whole, one the can alone.
    layout = {"rand_vec": instruct_scene.Layout({0: (0.0, 0.6, 0.0), 4: (0.1, 0.7, 0.0)}, {1: (-0.1, 0.6), 2: (0.1, 0.8)},
                                                goal_object=0, goal_target=2).to_vec().tolist()}
    records = [{"layout": layout, "text": "Put the blue soda can on the black tray.", "success": True},
               {"layout": layout, "text": "Put the blue soda can on the black tray.", "success": False,
                "texts": ["Put the blue soda can on the black tray.", "Put the blue soda can on the white plate."]},
               {"layout": layout, "text": "Put the blue soda can on the white plate.", "success": True},
               {"layout": layout, "text": None, "success": False}]
    got = instruct_summary.named_goal(records)
    check.expect(got == (3, 3, 2, 1, 2, 1), "instruct_summary.named_goal", f"{got} != (3, 3, 2, 1, 2, 1)")
    return names, references


def main(inp, outp):
    spec = json.load(open(inp))
    out_dir = os.path.join(spec["dir"], "instruct")
    run("generate.py", "--tasks", ",".join(TASKS), "--demos-per-task", "3", "--image-size", "32", "--workers", "2",
        "--out", out_dir)
    run("annotate.py", out_dir)
    files = sorted(os.path.join(out_dir, f"{t}.hdf5") for t in TASKS)
    check = Checker()
    train_texts, demos = training_texts(files)
    facts_list, counts = [], {c: 0 for c in annotate.CATEGORIES}
    starts = []  # the instruct scene's first hand positions: drawn per episode, so the arm's motion names no goal
    box = np.array([instruct_scene.HAND_X, instruct_scene.HAND_Y, instruct_scene.HAND_Z])
    for path, name, attrs, entries, states in demos:
        where = f"{os.path.basename(path)} {name}"
        task = os.path.basename(path)[:-5]
        for e in entries:
            counts[e["category"]] += 1
        check.expect(sorted({e["category"] for e in entries}) == sorted(annotate.CATEGORIES), where,
                     "not every annotation category is present")
        check.expect(sum(e["category"] == "caption" for e in entries) == 1, where, "one caption per episode")
        if task == "instruct-place-v3":
            scene = json.loads(attrs["scene"])
            check.instruct_demo(where, scene, attrs["language_instruction"], entries, states[0])
            starts.append(np.asarray(states[0][:3]))
            check.expect(bool(np.all((starts[-1] >= box[:, 0] - 0.01) & (starts[-1] <= box[:, 1] + 0.01))), where,
                         f"the hand starts at {starts[-1].round(3).tolist()}, outside the start box {box.tolist()}")
            facts_list.append(annotate.instruct_facts(scene))
        else:
            instruction = INSTRUCTIONS[task]
            layout = json.loads(attrs["layout"])
            check.mt10_demo(where, task, layout, instruction, entries, states)
            facts_list.append(annotate.mt10_facts(task, layout, instruction))
    check.expect(len(starts) >= 2 and min(np.linalg.norm(p - q) for i, p in enumerate(starts) for q in starts[i + 1:]) > 0.01,
                 "instruct-place-v3", f"the hand starts at the same place in several episodes: {[p.round(3).tolist() for p in starts]}")
    # Held-out wordings: no eval phrasing, filled in for these very episodes, occurs in any training text.
    held_out = eval_phrasings(facts_list)
    for p in held_out:
        hits = [t for t in train_texts if p in t]
        check.expect(not hits, "eval phrasing", f"{p!r} occurs in the training annotation {hits[:1]}")
    for category in ("caption", "command_rewriting", "context_creation"):
        train, evals = PHRASINGS[category]["train"], PHRASINGS[category]["eval"]
        if isinstance(train, dict):
            train, evals = train["templates"], evals["templates"]
        check.expect(not set(train) & set(evals), category, "a template is in both the train and eval sets")
    for kind, templates in PHRASINGS["qa"]["eval"].items():
        check.expect(not set(templates) & set(PHRASINGS["qa"]["train"][kind]), f"qa {kind}", "shared template")
    files_checked, references = check_instruction_files(check, train_texts)

    def scene_qa(name, *extra):
        path = os.path.join(spec["dir"], name)
        subprocess.run([sys.executable, os.path.join(ROOT, "Datasets", "vqa", "scene_qa.py"), "--episodes",
                        os.path.join(out_dir, "*-v3.hdf5"), "--out", path, "--per-demo", "7", *extra], check=True, capture_output=True)
        return path

    qa_file = scene_qa("scene_qa.hdf5")
    scenes = {name: json.loads(attrs["scene"]) for path, name, attrs, _, _ in demos if path.endswith("instruct-place-v3.hdf5")}
    with h5py.File(qa_file, "r") as h:
        stage0 = [json.loads(x) for split in ("train", "test") for x in h[f"{split}/qa"][()]]
    knowledge = check_knowledge(check, stage0, scenes)
    stage0_texts = [t.lower() for q in stage0 for t in q.values()]
    for p in held_out:
        check.expect(not any(p in t for t in stage0_texts), "eval phrasing", f"{p!r} occurs in the stage-0 scene QA")
    # --knowledge situation (experimental, off by default): which object fits a context of either split.
    situation_file = scene_qa("situations.hdf5", "--knowledge", "situation")
    with h5py.File(situation_file, "r") as h:
        situations = check_knowledge(check, [json.loads(x) for split in ("train", "test") for x in h[f"{split}/qa"][()]], scenes)
    refused = subprocess.run([sys.executable, os.path.join(ROOT, "Datasets", "vqa", "scene_qa.py"), "--episodes",
                              os.path.join(out_dir, "*-v3.hdf5"), "--out", os.path.join(spec["dir"], "bad.hdf5"), "--knowledge", "kind,weather"],
                             capture_output=True, text=True)
    check.expect(refused.returncode != 0 and "unknown kind(s) ['weather']" in refused.stderr
                 and not os.path.exists(os.path.join(spec["dir"], "bad.hdf5")), "scene_qa.py --knowledge", f"bad kind not refused: {refused.stderr!r}")
    # --max-demos 1: only each file's first train demo and first valid demo are asked about.
    capped_file = scene_qa("scene_qa_capped.hdf5", "--max-demos", "1")
    with h5py.File(capped_file, "r") as h:
        capped = {split: sorted({json.loads(x).get("demo") for x in h[f"{split}/qa"][()]} - {None}) for split in ("train", "test")}
    with h5py.File(os.path.join(out_dir, "instruct-place-v3.hdf5"), "r") as h:
        masks = {split: [n.decode() for n in h[f"mask/{split}"][()]] for split in ("train", "valid")}
    card = json.load(open(os.path.join(out_dir, "dataset_card.json")))
    for key in ("annotations", "instruct_scene"):
        check.expect(key in card, "dataset_card.json", f"has no {key!r} section")
    json.dump({"problems": check.problems, "demos": len(demos), "annotations": counts,
               "eval_phrasings_checked": len(held_out), "instruction_files": files_checked,
               "success_rate": {t: c["scripted_success_rate"] for t, c in card["tasks"].items()}, "knowledge": knowledge, "situation_knowledge": situations, "eval_references": references,
               "capped_knowledge_demos": capped, "instruct_masks": masks},
              open(outp, "w"))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
