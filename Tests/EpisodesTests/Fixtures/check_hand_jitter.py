"""Test-only: generate.py --hand-jitter M starts each MT episode's hand at Meta-World's pose plus an offset in
[-M, M]^3, drawn from the episode seed apart from the layout.

  check_hand_jitter.py IN.json OUT.json    IN {"dir": D}
  OUT {"problems": [...], "demos": n, "starts": [[x, y, z], ...]}
Generates reach-v3 and push-v3 (3 demos, 16 px) with and without --hand-jitter 0.1 and checks: every jittered
start lies within 0.1 m (+1 cm for the hand settling) of the plain start on each axis and the starts differ; each
episode seed keeps its layout; the files and the card record the jitter; a bad value exits 2 before any work; and a
SimEnv reset without jitter after one with it starts at Meta-World's pose again (evaluate.py reuses its envs).
An empty "problems" list means every check passed.
"""
import json
import os
import subprocess
import sys

import h5py
import hdf5plugin  # noqa: F401  (zstd filter)
import numpy as np

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", ".."))
MW = os.path.join(ROOT, "Datasets", "metaworld")
sys.path.insert(0, MW)
TINY = ["--tasks", "reach-v3,push-v3", "--demos-per-task", "3", "--image-size", "16", "--camera", "workspace",
        "--workers", "1", "--seed", "0"]
JITTER = 0.1
problems = []


def expect(ok, message):
    if not ok:
        problems.append(message)


def generate(*args):
    return subprocess.run([sys.executable, os.path.join(MW, "generate.py"), *TINY, *args], capture_output=True, text=True,
                          timeout=600)


def demos(path):
    """{episode seed: (start ee_pos, rand_vec)} of a file."""
    with h5py.File(path) as f:
        return {int(d.attrs["seed"]): (d["obs/ee_pos"][0], np.array(json.loads(d.attrs["layout"])["rand_vec"]))
                for d in f["data"].values()}


def main(inp, outp):
    d = json.load(open(inp))["dir"]
    plain, jittered = os.path.join(d, "plain"), os.path.join(d, "jitter")
    for out, extra in ((plain, []), (jittered, ["--hand-jitter", str(JITTER)])):
        r = generate(*extra, "--out", out)
        expect(r.returncode == 0, f"generate.py {' '.join(extra)} exited {r.returncode}: {r.stderr[-400:]}")
    starts, count = [], 0
    for task in ("reach-v3", "push-v3"):
        a, b = demos(os.path.join(plain, f"{task}.hdf5")), demos(os.path.join(jittered, f"{task}.hdf5"))
        fixed = next(iter(a.values()))[0]
        expect(all(np.allclose(s, fixed, atol=1e-3) for s, _ in a.values()), f"{task}: plain starts differ")
        for seed, (start, layout) in b.items():
            count += 1
            starts.append(np.round(start, 4).tolist())
            expect(np.all(np.abs(start - fixed) <= JITTER + 0.01), f"{task} seed {seed}: start {start} is outside the box")
            if seed in a:
                expect(np.array_equal(layout, a[seed][1]), f"{task} seed {seed}: the jitter changed the layout")
        expect(len({tuple(s) for s in starts[-len(b):]}) == len(b), f"{task}: jittered starts repeat")
        expect(any(np.abs(s - fixed).max() > 0.02 for s, _ in b.values()), f"{task}: no start moved by more than 2 cm")
        with h5py.File(os.path.join(jittered, f"{task}.hdf5")) as f:
            expect(float(f["data"].attrs["hand_jitter"]) == JITTER, f"{task}: hand_jitter attr {f['data'].attrs.get('hand_jitter')}")
        card = json.load(open(os.path.join(jittered, "dataset_card.json")))
        expect(card["tasks"][task].get("hand_jitter") == JITTER, f"{task}: the card does not record the jitter")
    r = generate("--hand-jitter", "0.5", "--out", os.path.join(d, "bad"))
    expect(r.returncode == 2 and "--hand-jitter" in r.stderr, f"--hand-jitter 0.5: exit {r.returncode}, {r.stderr[-200:]}")
    expect(not os.path.exists(os.path.join(d, "bad")), "a rejected --hand-jitter still created --out")

    from sim import SimEnv
    sim = SimEnv("push-v3")
    default = sim.reset(5)[0][0:3]
    moved = sim.reset(5, JITTER)[0][0:3]
    again = sim.reset(5)[0][0:3]
    expect(np.abs(moved - default).max() > 1e-3, "a jittered reset did not move the hand")
    expect(np.allclose(again, default, atol=1e-6), f"a plain reset after a jittered one starts at {again}, not {default}")
    json.dump({"problems": problems, "demos": count, "starts": starts}, open(outp, "w"))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
