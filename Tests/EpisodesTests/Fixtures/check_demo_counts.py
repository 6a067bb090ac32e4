"""Test-only: per-task demo counts (generate.py --demos-per-task N,TASK=N).

  check_demo_counts.py IN.json OUT.json    IN {"dir": D}
  OUT {"problems": [...], "demos": {task: n}}
Generates reach-v3 (2 demos) and push-v3 (3 demos) in one call, 16 px, and checks: each file and the card hold
its task's count; each task's demos are its attempts 0, 1, ... in order (episode seeds from sim.episode_seed, so a
larger count keeps a smaller count's demos and adds layouts); the valid split is each file's own 10 %. Malformed
counts exit 2 with a message naming the bad part, before any file is written.
An empty "problems" list means every check passed.
"""
import json
import os
import subprocess
import sys

import h5py
import hdf5plugin  # noqa: F401  (zstd filter)

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", ".."))
MW = os.path.join(ROOT, "Datasets", "metaworld")
sys.path.insert(0, MW)
from sim import episode_seed  # noqa: E402

TINY = ["--tasks", "reach-v3,push-v3", "--image-size", "16", "--camera", "workspace", "--workers", "2", "--seed", "0"]
COUNTS = {"reach-v3": 2, "push-v3": 3}
problems = []


def expect(ok, message):
    if not ok:
        problems.append(message)


def generate(counts, out):
    return subprocess.run([sys.executable, os.path.join(MW, "generate.py"), *TINY, "--demos-per-task", counts,
                           "--out", out], capture_output=True, text=True, timeout=600)


def main(inp, outp):
    d = json.load(open(inp))["dir"]
    out = os.path.join(d, "counts")
    r = generate("2,push=3", out)
    expect(r.returncode == 0, f"generate.py --demos-per-task 2,push=3 exited {r.returncode}: {r.stderr[-400:]}")
    card = json.load(open(os.path.join(out, "dataset_card.json")))
    demos = {}
    for task, n in COUNTS.items():
        with h5py.File(os.path.join(out, f"{task}.hdf5")) as f:
            names = sorted(f["data"], key=lambda k: int(k.split("_")[1]))
            demos[task] = len(names)
            seeds = [int(f["data"][k].attrs["seed"]) for k in names]
            expect(seeds == [episode_seed(0, task, a) for a in range(n)],
                   f"{task}: demo seeds {seeds} are not attempts 0..{n - 1}")
            expect(len(f["mask/valid"]) == 1, f"{task}: {len(f['mask/valid'])} valid demos, expected 1")
        expect(card["tasks"][task]["demos"] == n and card["tasks"][task]["requested"] == n,
               f"{task}: card {card['tasks'][task]} does not record {n} demos")
        expect(demos[task] == n, f"{task}: {demos[task]} demos in the file, expected {n}")
    expect(card["total_demos"] == sum(COUNTS.values()), f"card total_demos {card['total_demos']}")

    for bad, says in (("2,push", "is not TASK=N"), ("2,drawer-open=3", "is not one of --tasks"),
                      ("2,push=0", "whole numbers >= 1"), ("2,mt10=3", "is not one of --tasks"), ("two", "whole numbers >= 1")):
        empty = os.path.join(d, "bad")
        r = generate(bad, empty)
        expect(r.returncode == 2 and says in r.stderr, f"--demos-per-task {bad!r}: exit {r.returncode}, {r.stderr[-300:]}")
        written = [n for n in os.listdir(empty) if n.endswith(".hdf5")] if os.path.isdir(empty) else []
        expect(not written, f"--demos-per-task {bad!r} wrote files: {written}")
    json.dump({"problems": problems, "demos": demos}, open(outp, "w"))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
