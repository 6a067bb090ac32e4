#!/usr/bin/env python3
"""Evaluation instruction files for evaluate.py --instructions, worded with the *eval* phrasings only.

    python eval_instructions.py            # -> Datasets/metaworld/eval_instructions/{atomic,rewriting,context}.json
    python eval_instructions.py --phrasings train   # the same goals in training wordings -> eval_instructions_train/

Episode i of task T in evaluation starts from seed episode_seed(EVAL_SEED, T, i), so the instruct scene's goal
of every evaluation episode is known offline: this script resets the scene with those seeds and words the goal
three ways: atomic (as in the demonstrations), command rewriting and context creation (held-out wordings from
phrasings.json). MT10 tasks get their instructions.json instruction and the eval rewritings and contexts,
taken in turn over the episodes.
"""
import argparse
import json
import os
import sys

import numpy as np

from annotate import INSTRUCT_TASK, PHRASINGS, context, instruct_facts, rewriting
from sim import EVAL_SEED, INSTRUCTIONS, MT10, SimEnv, episode_seed

KINDS = {"atomic": None, "rewriting": rewriting, "context": context}


def instruct_episodes(n, seed):
    """(episode seed, facts) of the first n evaluation episodes of the instruct scene, from reset alone."""
    sim = SimEnv(INSTRUCT_TASK)
    try:
        out = []
        for i in range(n):
            s = episode_seed(seed, INSTRUCT_TASK, i)
            sim.reset(s)
            out.append((s, instruct_facts(sim.env.scene_info())))
        return out
    finally:
        sim.close()


def instruct_table(episodes, kind, split):
    word = KINDS[kind]
    return {str(i): f.action if word is None else word(f, np.random.default_rng([s, 0xE7A1]), split)
            for i, (s, f) in enumerate(episodes)}


def mt10_value(task, kind, n, split):
    if kind == "atomic":
        return INSTRUCTIONS[task]
    options = PHRASINGS["command_rewriting" if kind == "rewriting" else "context_creation"][split]["mt10"][task]
    return {str(i): options[i % len(options)] for i in range(n)}


def tables(n, seed, split="eval"):
    episodes = instruct_episodes(n, seed)
    return {kind: {INSTRUCT_TASK: instruct_table(episodes, kind, split)} | {t: mt10_value(t, kind, n, split) for t in MT10}
            for kind in KINDS}


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--episodes", type=int, default=50, help="episodes 0..N-1 per task (default 50)")
    p.add_argument("--seed", type=int, default=EVAL_SEED, help=f"evaluation seed (default {EVAL_SEED}, as evaluate.py)")
    p.add_argument("--phrasings", choices=("eval", "train"), default="eval",
                   help="word the goals with the held-out phrasings (default) or with the training ones, on the same "
                        "evaluation layouts: a model that fails only on the held-out ones learnt the words, not the meaning")
    p.add_argument("--out", default=None, help="output folder (default eval_instructions/, or eval_instructions_train/ "
                                                 "with --phrasings train)")
    args = p.parse_args(argv)
    here = os.path.dirname(os.path.abspath(__file__))
    args.out = args.out or os.path.join(here, "eval_instructions" + ("_train" if args.phrasings == "train" else ""))
    os.makedirs(args.out, exist_ok=True)
    for kind, table in tables(args.episodes, args.seed, args.phrasings).items():
        path = os.path.join(args.out, f"{kind}.json")
        with open(path, "w") as f:
            json.dump(table, f, indent=1)
            f.write("\n")
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
