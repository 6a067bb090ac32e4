#!/usr/bin/env python3
"""Meta-World v3 scripted-expert demonstrations -> robomimic/LIBERO-layout HDF5 (one file per task).

    python generate.py --tasks reach-v3 --demos-per-task 4 --image-size 32 --out /tmp/mw-tiny
    python generate.py --tasks mt10 --demos-per-task 50,reach-v3=150 ...   (150 demos of reach, 50 of the others)
See README.md for the layout written and measured timings.
"""
import argparse
import json
import math
import multiprocessing as mp
import os
import platform
import signal
import sys
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from importlib.metadata import version

import numpy as np

from sim import (CAMERAS, ENV_MAX_STEPS, INSTRUCT_TASK, INSTRUCTIONS, camera_for, check_extra_cameras, env_state_doc, episode_seed,
                 REACH_AIMS, REACH_TASKS, expert, parse_tasks, process_sim, stop_pool, worker_init)

# 1.1.0: the instruct scene's rand_vec holds the hand's start (34 values, was 31)
# 1.2.0: --extra-cameras (obs/<name>_rgb) and the data attr extra_cameras
# 1.3.0: --hand-jitter and the data attr hand_jitter
# 1.4.0: --steps-after-success, the data attr steps_after_success; success_step is the first success
# 1.5.0: --action-noise and the data attr action_noise
# 1.6.0: --reach-aim and the data attr reach_aim
GENERATOR_VERSION = "1.6.0"
CHUNK_FRAMES = 8  # frames per zstd chunk: cross-frame redundancy vs. cost of a one-frame read


def run_episode(sim, policy, seed, max_steps, keep_failure, hand_jitter=0.0, after_success=0, action_noise=0.0):
    """One attempt; the recorded arrays are returned for a success, or for any attempt when keep_failure.

    action_noise > 0 (DART, Laskey et al. 2017): the executed action is the expert's plus Gaussian noise of that
    standard deviation per dimension, drawn from the episode seed; the recorded action is the expert's own, so the
    demos show it correcting from states off its own path."""
    obs, layout = sim.reset(seed, hand_jitter)
    attrs = sim.episode_attrs()
    perturb = None
    if action_noise > 0:
        rng = np.random.default_rng([seed, 0x4E4F4953])
        perturb = lambda action: action + rng.normal(0.0, action_noise, action.shape)  # noqa: E731
    steps = list(sim.rollout(policy, obs, max_steps, after_success, perturb))
    success_step = next((t for t, step in enumerate(steps) if step[-1]), -1)
    success = success_step >= 0
    ep = {"seed": seed, "success": success, "success_step": success_step, "steps": len(steps)}
    if success or keep_failure:
        frames, extras, states, actions, rewards, _ = zip(*steps)
        ep.update(layout=json.dumps(layout), attrs=attrs, rgb=np.stack(frames),
                  extra_rgb={name: np.stack([e[name] for e in extras]) for name in sim.extra_cameras},
                  state=np.asarray(states, np.float32), actions=np.stack(actions),
                  rewards=np.asarray(rewards, np.float32))
    return ep


def run_chunk(task, attempts, cfg):
    sim = process_sim(task, cfg["image_size"], cfg["camera"], cfg["extra_cameras"])
    policy = expert(task, cfg["reach_aim"])
    out = []
    for a in attempts:
        ep = run_episode(sim, policy, episode_seed(cfg["seed"], task, a), cfg["max_steps"], cfg["all_attempts"],
                         cfg["hand_jitter"], cfg["steps_after_success"][task], cfg["action_noise"])
        ep.update(attempt=a, flip=sim.flip)
        out.append(ep)
    return out


def write_task_file(path, task, eps, cfg, attempts):
    import h5py
    import hdf5plugin
    n = len(eps)
    n_valid = max(1, round(n * cfg["valid_fraction"])) if n >= 2 and cfg["valid_fraction"] > 0 else 0
    names = [f"demo_{i}" for i in range(n)]
    tmp = os.path.join(os.path.dirname(path), f".{os.path.basename(path)}.tmp-{os.getpid()}")
    try:
        with h5py.File(tmp, "w") as f:
            data = f.create_group("data")
            for name, ep in zip(names, eps):
                g = data.create_group(name)
                T = len(ep["actions"])
                g.create_dataset("actions", data=ep["actions"])
                g.create_dataset("rewards", data=ep["rewards"])
                g.create_dataset("dones", data=(np.arange(T) == T - 1).astype(np.uint8))
                o = g.create_group("obs")
                for key, rgb in [("agentview", ep["rgb"])] + list(ep["extra_rgb"].items()):
                    o.create_dataset(f"{key}_rgb", data=rgb, chunks=(min(CHUNK_FRAMES, T),) + rgb.shape[1:],
                                     **hdf5plugin.Zstd(clevel=3))
                o.create_dataset("ee_pos", data=ep["state"][:, 0:3])
                o.create_dataset("gripper_state", data=ep["state"][:, 3:4])
                o.create_dataset("env_state", data=ep["state"])
                g.attrs.update(num_samples=T, seed=ep["seed"], attempt=ep["attempt"],
                               layout=ep["layout"], success_step=ep["success_step"])
                g.attrs.update(ep["attrs"])  # the instruct scene: language_instruction and scene
                if cfg["all_attempts"]:
                    g.attrs["success"] = int(ep["success"])
            size, camera, extra = cfg["image_size"], camera_for(task, cfg["camera"]), cfg["extra_cameras"]
            data.attrs.update(
                task=task, env_name=task, language_instruction=INSTRUCTIONS[task],
                env_version=f"metaworld {version('metaworld')} (v3 envs), mujoco {version('mujoco')}",
                num_demos=n, total=int(sum(len(e["actions"]) for e in eps)), attempts=attempts,
                image_size=size, camera=camera, camera_rotated_180=int(bool(eps and eps[0]["flip"])),
                extra_cameras=json.dumps(extra), hand_jitter=cfg["hand_jitter"] if task != INSTRUCT_TASK else -1.0,
                steps_after_success=cfg["steps_after_success"][task], action_noise=cfg["action_noise"],
                reach_aim=reach_aim(task, cfg),
                render_settings="mujoco.Renderer, vis.quality.offsamples=0, shadows and reflections off, "
                                "image rotated 180 degrees when camera_rotated_180"
                                + ("; extra cameras by the same rule (the corner* ones)" if extra else ""),
                seed=cfg["seed"], max_steps=cfg["max_steps"], generator_version=GENERATOR_VERSION,
                env_args=json.dumps({"env_name": task, "type": "metaworld-v3", "env_kwargs": {
                    "camera_name": camera, "width": size, "height": size, "max_steps": cfg["max_steps"]}}),
                obs_doc="agentview_rgb: uint8 HWC, top row first; ee_pos: obs[0:3] hand xyz; "
                        f"gripper_state: obs[3] gripper opening in [0,1] (T,1); env_state: {env_state_doc(task)}"
                        + (f"; {', '.join(n + '_rgb' for n in extra)}: the same state as agentview_rgb seen from "
                           "the extra_cameras" if extra else ""),
                action_doc="(dx, dy, dz, gripper) in [-1, 1], gripper +1 closes")
            if cfg["all_attempts"]:
                data.attrs.update(all_attempts=1, successes=sum(int(e["success"]) for e in eps))
            mask = f.create_group("mask")
            mask.create_dataset("train", data=np.array(names[:n - n_valid], dtype="S"))
            mask.create_dataset("valid", data=np.array(names[n - n_valid:], dtype="S"))
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return n - n_valid, n_valid


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--tasks", default="mt10", help="mt10 (default), mt50 (all 50), or a comma list such as reach-v3,push")
    p.add_argument("--demos-per-task", default="50", metavar="N[,TASK=N...]",
                   help="demos per task, optionally with per-task counts: 50,reach-v3=150 (default 50). Episodes are "
                        "numbered per task, so a larger count keeps the smaller count's demos and adds new layouts")
    p.add_argument("--image-size", type=int, default=64, help="square images, 8..512 (default 64)")
    p.add_argument("--camera", default="corner4", help=f"one of {', '.join(CAMERAS)} (default corner4)")
    p.add_argument("--extra-cameras", default="", metavar="NAMES",
                   help="comma list of more cameras, each stored as obs/<name>_rgb (default none)")
    p.add_argument("--steps-after-success", default="0", metavar="N[,TASK=N...]",
                   help="keep recording the scripted policy for N steps after its first success (bounded by --max-steps), "
                        "optionally per task: 0,reach-v3=20 (default 0: a demo ends at its first success)")
    p.add_argument("--action-noise", type=float, default=0.0, metavar="S",
                   help="DART: execute the expert's action plus Gaussian noise of standard deviation S (actions are in "
                        "[-1, 1]) and record the expert's own action (default 0)")
    p.add_argument("--reach-aim", choices=REACH_AIMS, default="hand",
                   help=f"{' and '.join(REACH_TASKS)} succeed when the fingertips are within 5 cm of the goal, but Meta-World's "
                        "scripted expert steers the hand, 4.5 cm above them: its demos end at the edge of success. "
                        "fingertips: the expert steers the fingertips to the goal (default hand, Meta-World's expert)")
    p.add_argument("--hand-jitter", type=float, default=0.0, metavar="M",
                   help="MT tasks: start the hand at Meta-World's pose plus an offset uniform in [-M, M]^3 metres, drawn per "
                        "episode (default 0: Meta-World's single start pose; the instruct scene draws its own)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--max-steps", type=int, default=ENV_MAX_STEPS, help="per attempt, 1..500 (default 500)")
    p.add_argument("--valid-fraction", type=float, default=0.1)
    p.add_argument("--all-attempts", action="store_true",
                   help="record exactly attempts 0..N-1, failures included (per-demo attr success 0/1): with "
                        "--seed 1000000 --max-steps 200 these are the evaluation episodes of evaluate.py")
    p.add_argument("--out", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "data"))
    a = p.parse_args(argv)
    try:
        a.tasks = parse_tasks(a.tasks)
        a.demos_per_task = parse_task_counts(a.demos_per_task, a.tasks, "--demos-per-task", minimum=1)
        a.steps_after_success = parse_task_counts(a.steps_after_success, a.tasks, "--steps-after-success", minimum=0)
    except ValueError as e:
        p.error(str(e))
    if not 8 <= a.image_size <= 512:  # a task's episodes are held in memory until its file is written
        p.error(f"--image-size must be between 8 and 512, got {a.image_size}")
    if a.camera not in CAMERAS:
        p.error(f"unknown camera {a.camera!r}; valid: {', '.join(CAMERAS)}")
    try:
        a.extra_cameras = check_extra_cameras(filter(None, a.extra_cameras.replace(" ", "").split(",")), a.camera)
    except ValueError as e:
        p.error(f"--extra-cameras: {e}")
    if not 0 <= a.action_noise <= 1:
        p.error(f"--action-noise must be between 0 and 1, got {a.action_noise}")
    if not 0 <= a.hand_jitter <= 0.15:
        p.error(f"--hand-jitter must be between 0 and 0.15 m, got {a.hand_jitter}")
    if not 1 <= a.max_steps <= ENV_MAX_STEPS:
        p.error(f"--max-steps must be between 1 and {ENV_MAX_STEPS}, got {a.max_steps}")
    if a.workers < 1 or not 0 <= a.valid_fraction < 1:
        p.error("--workers must be >= 1, --valid-fraction in [0, 1)")
    try:
        os.makedirs(a.out, exist_ok=True)
        probe = os.path.join(a.out, f".write-probe-{os.getpid()}")
        open(probe, "w").close()
        os.unlink(probe)
    except OSError as e:
        p.error(f"--out {a.out!r} is not a writable directory: {e}")
    return a


def parse_task_counts(spec, tasks, option, minimum):
    """'50' or '50,reach-v3=150,peg-insert-side=100' -> {task: count} for every task; ValueError names the bad part."""
    default, *overrides = spec.replace(" ", "").split(",")
    counts = dict.fromkeys(tasks, whole_count(default, spec, option, minimum))
    for item in overrides:
        name, eq, n = item.partition("=")
        if not eq:
            raise ValueError(f"{option} {spec!r}: {item!r} is not TASK=N (only the first entry is a bare count)")
        named = parse_tasks(name) if name else []
        task = named[0] if len(named) == 1 else name  # a group such as mt10 is not one task
        if task not in counts:
            raise ValueError(f"{option} {spec!r}: {name!r} is not one of --tasks ({', '.join(tasks)})")
        counts[task] = whole_count(n, spec, option, minimum)
    return counts


def whole_count(text, spec, option, minimum):
    if not text.isdigit() or int(text) < minimum:
        raise ValueError(f"{option} {spec!r}: counts must be whole numbers >= {minimum}, got {text!r}")
    return int(text)


def reach_aim(task, cfg):
    """What the expert of a reach task steered to the goal ("hand" or "fingertips"); "" for other tasks."""
    return cfg["reach_aim"] if task in REACH_TASKS else ""


def finish_task(task, recorded, n, next_attempt, cfg, out_dir):
    """Write a task's file from its first n recorded episodes (attempt order, so independent of scheduling)."""
    kept = recorded[:n]
    attempts = kept[-1]["attempt"] + 1 if len(kept) == n else next_attempt
    path = os.path.join(out_dir, f"{task}.hdf5")
    n_train, n_valid = write_task_file(path, task, kept, cfg, attempts) if kept else (0, 0)
    lengths = [e["steps"] for e in kept]
    successes = sum(e["success"] for e in kept)
    return {"requested": n, "demos": len(kept), "file": os.path.basename(path) if kept else None,
            "language_instruction": INSTRUCTIONS[task], "train": n_train, "valid": n_valid,
            "attempts": attempts, "scripted_success_rate": round(successes / max(attempts, 1), 4),
            "frames": sum(lengths), "mean_length": round(float(np.mean(lengths)), 1) if kept else 0,
            "max_length": max(lengths, default=0), "extra_cameras": cfg["extra_cameras"],
            "hand_jitter": cfg["hand_jitter"] if task != INSTRUCT_TASK else None,
            "steps_after_success": cfg["steps_after_success"][task], "action_noise": cfg["action_noise"],
            "reach_aim": reach_aim(task, cfg) or None} \
        | ({"successes": successes} if cfg["all_attempts"] else {})


def main(argv=None):
    args = parse_args(argv)
    from tqdm import tqdm
    cfg = {k: getattr(args, k) for k in ("seed", "image_size", "camera", "extra_cameras", "max_steps", "valid_fraction",
                                         "all_attempts", "hand_jitter", "steps_after_success", "action_noise",
                                         "reach_aim")}
    counts = args.demos_per_task
    # attempts run in chunks of up to 10; a task is given up after 10x its count
    state = {t: {"next": 0, "eps": {}, "running": 0, "shown": 0, "n": n, "limit": max(20, 10 * n),
                 "chunk": max(1, min(10, math.ceil(n / args.workers)))} for t, n in counts.items()}
    card_tasks = {}
    if args.workers > 1:
        os.environ.setdefault("LP_NUM_THREADS", "1")  # one llvmpipe thread per worker process
    bar = tqdm(total=sum(counts.values()), unit="demo", dynamic_ncols=True)
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))  # clean up like Ctrl-C
    pool = ProcessPoolExecutor(args.workers, mp_context=mp.get_context("spawn"), initializer=worker_init)
    futures = {}

    def submit(task, count):  # attempts are numbered per task, in contiguous chunks
        s = state[task]
        end, chunk = min(s["next"] + count, s["limit"]), s["chunk"]
        for start in range(s["next"], end, chunk):
            futures[pool.submit(run_chunk, task, list(range(start, min(start + chunk, end))), cfg)] = task
            s["running"] += 1
        s["next"] = end

    try:
        for t, n in counts.items():
            submit(t, n)
        while futures:
            for fut in wait(futures, return_when=FIRST_COMPLETED)[0]:
                task = futures.pop(fut)
                s = state[task]
                n = s["n"]
                s["running"] -= 1
                s["eps"].update((ep["attempt"], ep) for ep in fut.result())
                eps = [s["eps"][a] for a in sorted(s["eps"])]
                kept = eps if args.all_attempts else [e for e in eps if e["success"]]
                bar.update(min(len(kept), n) - s["shown"])
                s["shown"] = min(len(kept), n)
                if s["running"]:
                    continue
                if len(kept) < n and s["next"] < s["limit"]:
                    submit(task, math.ceil((n - len(kept)) / max(len(kept) / s["next"], 0.1)))
                    continue
                card_tasks[task] = c = finish_task(task, kept, n, s["next"], cfg, args.out)
                what = f"{c['successes']} successful" if args.all_attempts else f"kept {c['demos']}/{n}"
                tqdm.write(f"{task}: {what} from {c['attempts']} attempts, {c['frames']} frames"
                           + (f" -> {os.path.join(args.out, c['file'])}" if c["file"] else ", no file written"))
                s["eps"].clear()
    except BaseException:  # error, Ctrl-C or SIGTERM: stop the running chunks too
        stop_pool(pool)
        raise
    finally:
        pool.shutdown(cancel_futures=True)
        bar.close()
        if card_tasks:  # also after an interruption, for the files that are complete
            write_card(args, card_tasks)
    incomplete = [f"{t} ({c['demos']} of {counts[t]} in {c['attempts']} attempts)" for t, c in card_tasks.items()
                  if c["demos"] < counts[t]]
    if incomplete:
        print(f"error: the scripted policy reached too few successes for {', '.join(incomplete)} "
              f"(their files hold fewer demos, or none were written)", file=sys.stderr)
        return 1
    return 0


def write_card(args, tasks):
    settings = {"generator_version": GENERATOR_VERSION, "seed": args.seed, "image_size": args.image_size,
                "camera": args.camera, "max_steps": args.max_steps, "valid_fraction": args.valid_fraction}
    if args.all_attempts:  # an expert-replay set (failures included) never shares a card with a demo set
        settings["all_attempts"] = True
    path = os.path.join(args.out, "dataset_card.json")
    try:  # a later run with the same settings adds its tasks to the card
        with open(path) as f:
            old = json.load(f)
        if old.get("settings") == settings:
            tasks = {**old.get("tasks", {}), **tasks}
    except (OSError, ValueError):
        pass
    card = {
        "name": "metaworld-v3-scripted-demos", "layout": "robomimic/LIBERO HDF5, one file per task",
        "settings": settings,
        "seeds": "episode seed = SeedSequence(seed, spawn_key=(crc32(task), attempt)); stored per demo",
        "image_compression": "zstd level 3 (HDF5 filter 32015), chunks of up to %d frames" % CHUNK_FRAMES,
        "packages": {p: version(p) for p in ("metaworld", "mujoco", "gymnasium", "numpy", "h5py", "hdf5plugin")}
        | {"python": platform.python_version()},
        "total_demos": sum(t["demos"] for t in tasks.values()),
        "tasks": dict(sorted(tasks.items())),
    }
    tmp = os.path.join(args.out, f".dataset_card.json.tmp-{os.getpid()}")
    with open(tmp, "w") as f:
        json.dump(card, f, indent=2)
        f.write("\n")
    os.replace(tmp, path)


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        print("\ninterrupted: the files reported above are complete; no partial file was kept", file=sys.stderr)
        sys.exit(130)
