#!/usr/bin/env python3
"""Scene question answering about rendered Meta-World frames, from the simulator's ground truth.

Reads demonstration files written by Datasets/metaworld/generate.py (frames plus the full 39-d
observation of every step) and asks about what is in the frame: which object, whether the gripper
is open or closed, high or low, touching the object, whether a drawer/window/door is open (known
at the start and end of an episode, from the task's success), whether the puck is lifted, and a
one-line caption. Train questions come from the files' mask/train demos, test questions from
mask/valid demos, so test layouts never appear in training.

Meta-World-Instruct frames (instruct-place-v3) get general knowledge about their objects instead, the
stand-in for what a pretrained VLM knows from the web: the objects on the table, their colours, which object is
of a kind, shape or use, and where things can be put. Kinds, shapes and uses come from both lexicons
of ../metaworld/phrasings.json: stage 2's robot annotations use only the train lexicon and the
evaluation phrasings use the eval one, so it is this stage-0 knowledge that lets a model read "the
beverage" as the soda can. No instruction template or context of phrasings.json appears here, unless
`--knowledge` asks for the experimental `situation` kind (which object fits a context of either split).

    python scene_qa.py --episodes 'Datasets/metaworld-mt10/*.hdf5' --out Datasets/metaworld-mt10/scene_qa.hdf5

Output layout as generate_shapes.py: /<split>/images (N,H,W,3) uint8 zstd, /<split>/qa JSON strings.
"""
import argparse
import glob
import json
import os
import sys

import h5py
import hdf5plugin
import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "metaworld"))
from annotate import PHRASINGS, instruct_facts, listing, with_article  # noqa: E402
from instruct_scene import TASK as INSTRUCT_TASK  # noqa: E402

OBJECT = {"reach-v3": "puck", "push-v3": "puck", "pick-place-v3": "puck", "door-open-v3": "door", "drawer-open-v3": "drawer",
          "drawer-close-v3": "drawer", "button-press-topdown-v3": "button", "peg-insert-side-v3": "peg",
          "window-open-v3": "window", "window-close-v3": "window"}
# (state at the start, state at the end) of a successful episode.
ARTICULATION = {"drawer-open-v3": ("closed", "open"), "drawer-close-v3": ("open", "closed"), "window-open-v3": ("closed", "open"),
                "window-close-v3": ("open", "closed"), "door-open-v3": ("closed", "open")}


def facts(task, state, t, length):
    """Ground-truth answers available for frame t of an episode (None where the frame is ambiguous)."""
    hand, grip, obj = state[0:3], state[3], state[4:7]
    noun = OBJECT[task]
    f = {"object": noun, "gripper": "open" if grip > 0.7 else ("closed" if grip < 0.5 else None)}
    f["height"] = "high" if hand[2] > 0.17 else ("low" if hand[2] < 0.13 else None)
    distance = float(np.linalg.norm(hand - obj))
    f["touching"] = "yes" if distance < 0.04 else ("no" if distance > 0.08 else None)
    if task in ARTICULATION:
        edge = max(1, int(0.15 * length))
        f["state"] = ARTICULATION[task][0] if t < edge else (ARTICULATION[task][1] if t >= length - edge else None)
    if task == "pick-place-v3":
        f["lifted"] = "yes" if obj[2] > 0.04 else ("no" if obj[2] < 0.025 else None)
    if f["gripper"] and f["height"]:
        article = "an" if f["gripper"] == "open" else "a"
        f["caption"] = f"{article} {f['gripper']} gripper {'above' if f['height'] == 'high' else 'down near'} the {noun}"
    return f


def question(kind, f):
    noun = f["object"]
    return {"object": "what object is on the table?", "gripper": "is the gripper open or closed?",
            "height": "is the gripper high or low?", "touching": f"is the gripper touching the {noun}?",
            "state": f"is the {noun} open or closed?", "lifted": f"is the {noun} lifted?",
            "caption": "describe the scene."}[kind]


def knowledge(f, kind, rng):
    """A (question, answer) about the instruct scene of facts f; lexicon words from either split."""
    lex = PHRASINGS["lexicon"][("train", "eval")[int(rng.integers(2))]]
    thing = f.things[int(rng.integers(len(f.things)))]
    if kind == "objects":
        return "what objects are on the table?", listing([with_article(t.display) for t in f.things])
    if kind == "colour":
        return f"what colour is the {thing.name}?", thing.colour
    if kind == "kind":
        return f"which object is {with_article(lex[thing.name]['category'])}?", f"the {thing.display}"
    if kind == "shape":
        return f"which object is shaped like {with_article(lex[thing.name]['shape'])}?", f"the {thing.display}"
    if kind == "use":
        return f"which object is for {lex[thing.name]['use']}?", f"the {thing.display}"
    if kind == "place":
        place = f.targets[int(rng.integers(len(f.targets)))]
        return f"which place to put things on is {place.colour}?", f"the {place.display}"
    if kind == "put":
        places = sorted(t.display for t in f.targets)
        return f"where can you put the {thing.name}?", f"on the {places[0]} or the {places[1]}"
    if kind == "situation":
        split = ("train", "eval")[int(rng.integers(2))]
        contexts = PHRASINGS["context_creation"][split]["contexts"][thing.name]
        return f"which object would help someone who says: {contexts[int(rng.integers(len(contexts)))]}", f"the {thing.display}"
    raise KeyError(kind)


KNOWLEDGE = ("objects", "colour", "kind", "shape", "use", "place", "put")
# Not in stage 0's default knowledge: which object fits a situation, in the words of both splits'
# context-creation contexts. It puts the held-out evaluation contexts into the data, so it is only
# for experiments that ask whether such knowledge, if the VLM had it, would reach the actions.
EXPERIMENTAL_KNOWLEDGE = ("situation",)
# Frames of the first part of an instruct episode only, before the goal object moves.
KNOWLEDGE_FRAMES = 0.2


def collect_instruct(demo, per_demo, rng, kinds=KNOWLEDGE):
    f = instruct_facts(json.loads(demo.attrs["scene"]))
    frames = demo["obs/agentview_rgb"]
    last = max(1, int(KNOWLEDGE_FRAMES * len(frames)))
    out = []
    for kind in rng.permutation(kinds)[:per_demo]:
        q, a = knowledge(f, str(kind), rng)
        out.append((frames[int(rng.integers(last))], json.dumps({"question": q, "answer": a, "type": f"instruct_{kind}",
                                                                  "demo": demo.name.rsplit("/", 1)[-1]})))
    return out


def collect(files, split, per_demo, max_demos, rng, knowledge_kinds=KNOWLEDGE):
    images, qa = [], []
    for path in files:
        with h5py.File(path, "r") as h:
            task = h["data"].attrs["task"]
            task = task.decode() if isinstance(task, bytes) else str(task)
            if task not in OBJECT and task != INSTRUCT_TASK:
                sys.exit(f"{path}: task {task} has no scene vocabulary (MT10 and {INSTRUCT_TASK} only)")
            names = [n.decode() for n in h[f"mask/{split}"][()]][:max_demos]
            for name in names:
                demo = h[f"data/{name}"]
                if task == INSTRUCT_TASK:
                    for image, item in collect_instruct(demo, per_demo, rng, knowledge_kinds):
                        images.append(image)
                        qa.append(item)
                    continue
                states, frames = demo["obs/env_state"][()], demo["obs/agentview_rgb"]
                length = len(states)
                # Start and end frames (where articulation state is known) plus random ones between.
                ts = sorted(set([0, length - 1] + list(rng.integers(0, length, per_demo))))
                for t in ts[:per_demo + 2]:
                    f = facts(task, states[t], t, length)
                    kinds = [k for k, v in f.items() if v is not None]
                    kind = kinds[int(rng.integers(len(kinds)))]
                    images.append(frames[t])
                    qa.append(json.dumps({"question": question(kind, f), "answer": f[kind], "type": kind}))
    return np.stack(images), qa


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--episodes", required=True, help="glob of demonstration files")
    ap.add_argument("--out", required=True)
    ap.add_argument("--per-demo", type=int, default=6, help="questions per demonstration (at least 2: first and last frame)")
    ap.add_argument("--max-demos", type=int, default=None, metavar="N",
                    help="ask about at most the first N demos of each file's train and valid masks (default: all), so that "
                         "a file generated with more demos for stage 1 leaves stage 0's questions as they were")
    ap.add_argument("--knowledge", default=",".join(KNOWLEDGE), metavar="KIND,...",
                    help=f"what instruct-scene frames are asked (default: {','.join(KNOWLEDGE)}; experimental: "
                         f"{','.join(EXPERIMENTAL_KNOWLEDGE)})")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    kinds = tuple(args.knowledge.split(","))
    unknown = [k for k in kinds if k not in KNOWLEDGE + EXPERIMENTAL_KNOWLEDGE]
    if unknown:
        sys.exit(f"--knowledge: unknown kind(s) {unknown}; choose from {','.join(KNOWLEDGE + EXPERIMENTAL_KNOWLEDGE)}")
    if args.max_demos is not None and args.max_demos < 1:
        sys.exit(f"--max-demos must be at least 1, got {args.max_demos}")
    files = sorted(glob.glob(args.episodes))
    if not files:
        sys.exit(f"--episodes: '{args.episodes}' matches no file (run make data first)")
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    tmp = f"{args.out}.tmp-{os.getpid()}"
    with h5py.File(tmp, "w") as out:
        out.attrs.update(generator="scene_qa.py 1.3", seed=args.seed, max_demos=args.max_demos or 0, knowledge=args.knowledge,
                         sources=json.dumps([os.path.basename(f) for f in files]))
        for split, seed in [("train", args.seed), ("test", args.seed + 1)]:
            images, qa = collect(files, "train" if split == "train" else "valid", args.per_demo, args.max_demos,
                                  np.random.default_rng(seed), kinds)
            g = out.create_group(split)
            g.create_dataset("images", data=images, chunks=(min(64, len(images)),) + images.shape[1:], **hdf5plugin.Zstd(clevel=3))
            g.create_dataset("qa", data=qa, dtype=h5py.string_dtype("utf-8"))
            print(f"{split}: {len(qa)} questions")
    os.replace(tmp, args.out)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
