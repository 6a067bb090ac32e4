"""Test-only: generate.py's per-task demo counts, steps after success, action noise and reach aim (--demos-per-task /
--steps-after-success N,TASK=N, --action-noise S, --reach-aim fingertips).

  check_generate_options.py IN.json OUT.json    IN {"dir": D}
  OUT {"problems": [...], "demos": {task: n}, "extra_frames": {task: frames added by --steps-after-success 0,reach=20},
       "noisy_steps_checked": n, "reach_rest_cm": {aim: [fingertips-to-goal distance after each reach demo]}}
Generates reach-v3 (2 demos) and push-v3 (3 demos) in one call, 16 px, and checks: each file and the card hold
its task's count; each task's demos are its attempts 0, 1, ... in order (episode seeds from sim.episode_seed, so a
larger count keeps a smaller count's demos and adds layouts); the valid split is each file's own 10 %. Then the same
call with --steps-after-success 0,reach=20: every reach demo is the same attempt with 20 more frames (the first ones
identical), success_step still its first success, push unchanged; the attrs record the count. With
--action-noise 0.5 every recorded action is the scripted expert's own action on the recorded observation, while the
episodes leave the noise-free ones' states (the executed actions were perturbed). With --reach-aim fingertips (and 20
steps after success) the reach demos are the same attempts, replaying their actions in the env leaves the fingertips
(tcp_center) where the rest distances say, and push is unchanged. Malformed values of the options exit 2 with a
message naming the bad part, before any file is written.
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
from sim import SimEnv, episode_seed, expert  # noqa: E402

TINY = ["--tasks", "reach-v3,push-v3", "--image-size", "16", "--camera", "workspace", "--workers", "2", "--seed", "0"]
COUNTS = {"reach-v3": 2, "push-v3": 3}
problems = []


def expect(ok, message):
    if not ok:
        problems.append(message)


def generate(counts, out, *more):
    return subprocess.run([sys.executable, os.path.join(MW, "generate.py"), *TINY, "--demos-per-task", counts, *more,
                           "--out", out], capture_output=True, text=True, timeout=600)


def expect_refused(counts, more, says, folder):
    """generate.py with a bad value exits 2, names the option and the problem, and writes no file."""
    r = generate(counts, folder, *more)
    what = " ".join(["--demos-per-task", counts, *more])
    expect(r.returncode == 2 and all(s in r.stderr for s in says), f"{what}: exit {r.returncode}, {r.stderr[-300:]}")
    written = [n for n in os.listdir(folder) if n.endswith(".hdf5")] if os.path.isdir(folder) else []
    expect(not written, f"{what} wrote files: {written}")


def expect_attempts(f, task, n, what):
    """The demos of an open task file are its attempts 0..n-1, in demo order (numbered, not alphabetical); their count."""
    names = sorted(f["data"], key=lambda k: int(k.split("_")[1]))
    seeds = [int(f["data"][k].attrs["seed"]) for k in names]
    expect(seeds == [episode_seed(0, task, a) for a in range(n)], f"{what}{task}: demo seeds {seeds} are not attempts 0..{n - 1}")
    return len(names)


def read_demos(path):
    """demo name -> (success_step, actions, agentview frames), and the data attr steps_after_success."""
    with h5py.File(path) as f:
        return {k: (int(g.attrs["success_step"]), g["actions"][()], g["obs/agentview_rgb"][()])
                for k, g in f["data"].items()}, int(f["data"].attrs["steps_after_success"])


def rest_distances_cm(path):
    """Per reach demo: the fingertips' (tcp_center) distance to the goal after its last action, by replaying its
    actions in the env from its seed (checked against the recorded states on the way)."""
    sim, out = SimEnv("reach-v3"), []
    with h5py.File(path) as f:
        for k, g in sorted(f["data"].items()):
            obs, _ = sim.reset(int(g.attrs["seed"]))
            states = g["obs/env_state"][()]
            for t, action in enumerate(g["actions"][()]):
                expect(np.allclose(obs, states[t], atol=1e-5), f"{path} {k} step {t}: the replay left the recorded states")
                obs, *_ = sim.env.step(action)
            out.append(round(100 * float(np.linalg.norm(sim.env.tcp_center - obs[36:39])), 2))
    sim.close()
    return out


def main(inp, outp):
    d = json.load(open(inp))["dir"]
    out = os.path.join(d, "counts")
    r = generate("2,push=3", out)
    expect(r.returncode == 0, f"generate.py --demos-per-task 2,push=3 exited {r.returncode}: {r.stderr[-400:]}")
    card = json.load(open(os.path.join(out, "dataset_card.json")))
    demos = {}
    for task, n in COUNTS.items():
        with h5py.File(os.path.join(out, f"{task}.hdf5")) as f:
            demos[task] = expect_attempts(f, task, n, "")
            expect(len(f["mask/valid"]) == 1, f"{task}: {len(f['mask/valid'])} valid demos, expected 1")
        expect(card["tasks"][task]["demos"] == n and card["tasks"][task]["requested"] == n,
               f"{task}: card {card['tasks'][task]} does not record {n} demos")
        expect(demos[task] == n, f"{task}: {demos[task]} demos in the file, expected {n}")
    expect(card["total_demos"] == sum(COUNTS.values()), f"card total_demos {card['total_demos']}")

    longer = os.path.join(d, "after")
    r = generate("2,push=3", longer, "--steps-after-success", "0,reach=20")
    expect(r.returncode == 0, f"generate.py --steps-after-success 0,reach=20 exited {r.returncode}: {r.stderr[-400:]}")
    extra_frames = {}
    for task, added in (("reach-v3", 20), ("push-v3", 0)):
        (before, before_n), (after, after_n) = (read_demos(os.path.join(o, f"{task}.hdf5")) for o in (out, longer))
        expect((before_n, after_n) == (0, added), f"{task}: steps_after_success attrs {before_n}, {after_n}")
        expect(sorted(before) == sorted(after), f"{task}: demos {sorted(before)} became {sorted(after)}")
        extra_frames[task] = sorted({len(after[k][1]) - len(before[k][1]) for k in before if k in after})
        for k in sorted(set(before) & set(after)):
            (s0, a0, f0), (s1, a1, f1), T = before[k], after[k], len(before[k][1])
            expect(s0 == T - 1 and s1 == s0, f"{task} {k}: success_step {s0} then {s1}, first success at {T - 1}")
            expect((a1[:T] == a0).all() and (f1[:T] == f0).all(), f"{task} {k}: the first {T} steps differ")
        expect(json.load(open(os.path.join(longer, "dataset_card.json")))["tasks"][task]["steps_after_success"] == added,
               f"{task}: the card does not record {added} steps after success")

    noisy_dir = os.path.join(d, "noisy")
    r = generate("2,push=3", noisy_dir, "--action-noise", "0.5")
    expect(r.returncode == 0, f"generate.py --action-noise 0.5 exited {r.returncode}: {r.stderr[-400:]}")
    checked = 0
    for task in COUNTS:
        policy = expert(task)
        with h5py.File(os.path.join(noisy_dir, f"{task}.hdf5")) as f, h5py.File(os.path.join(out, f"{task}.hdf5")) as clean:
            expect(float(f["data"].attrs["action_noise"]) == 0.5, f"{task}: action_noise attr {f['data'].attrs['action_noise']}")
            for k, g in f["data"].items():
                states, actions = g["obs/env_state"][()].astype(np.float64), g["actions"][()]
                for t in range(len(actions)):
                    own = np.clip(policy(states[t].copy(), None, None), -1, 1).astype(np.float32)
                    expect(np.allclose(own, actions[t], atol=1e-5), f"{task} {k} step {t}: recorded {actions[t]}, expert {own}")
                    checked += 1
                reference = clean["data"][k]["obs/env_state"][()]
                n = min(len(reference), len(states))
                expect(np.abs(states[:n] - reference[:n]).max() > 1e-3, f"{task} {k}: the noise did not move the states")
    aimed = os.path.join(d, "aimed")
    r = generate("2,push=3", aimed, "--steps-after-success", "0,reach=20", "--reach-aim", "fingertips")
    expect(r.returncode == 0, f"generate.py --reach-aim fingertips exited {r.returncode}: {r.stderr[-400:]}")
    for task, aim in (("reach-v3", "fingertips"), ("push-v3", "")):
        (hand, _), (fingertips, _) = (read_demos(os.path.join(o, f"{task}.hdf5")) for o in (longer, aimed))
        with h5py.File(os.path.join(aimed, f"{task}.hdf5")) as f:
            expect(f["data"].attrs["reach_aim"] == aim, f"{task}: reach_aim attr {f['data'].attrs['reach_aim']!r}")
            expect_attempts(f, task, COUNTS[task], "--reach-aim fingertips: ")
        if task == "push-v3":
            expect(all((hand[k][1] == fingertips[k][1]).all() for k in hand), "push-v3: --reach-aim changed its actions")
    reach_rest_cm = {aim: rest_distances_cm(os.path.join(o, "reach-v3.hdf5")) for aim, o in (("hand", longer), ("fingertips", aimed))}
    bad = os.path.join(d, "bad")
    for counts, says in (("2,push", "is not TASK=N"), ("2,drawer-open=3", "is not one of --tasks"),
                         ("2,push=0", "whole numbers >= 1"), ("2,mt10=3", "is not one of --tasks"), ("two", "whole numbers >= 1")):
        expect_refused(counts, [], [says], bad)
    for after, says in (("4,reach=x", "whole numbers >= 0"), ("0,drawer-open=2", "is not one of --tasks")):
        expect_refused("2", ["--steps-after-success", after], ["--steps-after-success", says], bad)
    expect_refused("2", ["--action-noise", "1.5"], ["--action-noise"], bad)
    expect_refused("2", ["--reach-aim", "elbow"], ["--reach-aim", "invalid choice"], bad)
    json.dump({"problems": problems, "demos": demos, "extra_frames": extra_frames, "noisy_steps_checked": checked,
               "reach_rest_cm": reach_rest_cm}, open(outp, "w"))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
