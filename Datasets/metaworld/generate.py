#!/usr/bin/env python3
"""Meta-World v3 scripted-expert demonstrations -> robomimic/LIBERO-layout HDF5 (one file per task).

    python generate.py --tasks reach-v3 --demos-per-task 4 --image-size 32 --out /tmp/mw-tiny
See README.md for the layout written and measured timings.
"""
import argparse
import atexit
import json
import math
import multiprocessing as mp
import os
import platform
import sys
import warnings
import zlib
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from importlib.metadata import version

os.environ.setdefault("MUJOCO_GL", "egl")  # headless; must be set before mujoco is imported

import numpy as np

GENERATOR_VERSION = "1.0.0"
CHUNK_FRAMES = 8  # frames per zstd chunk: cross-frame redundancy vs. cost of a one-frame read
ENV_MAX_STEPS = 500  # Meta-World's max_path_length; stepping past it raises
# corner4 (default) frames the table ~2x tighter than corner; hand, objects and goals stay in view for all
# MT10 layouts (checked by projecting the recorded positions).
CAMERAS = ["corner4", "corner", "corner2", "corner3", "topview", "behindGripper", "gripperPOV"]

MT10 = ["reach-v3", "push-v3", "pick-place-v3", "door-open-v3", "drawer-open-v3", "drawer-close-v3",
        "button-press-topdown-v3", "peg-insert-side-v3", "window-open-v3", "window-close-v3"]
INSTRUCTIONS = {
    "assembly-v3": "pick up the ring and put it onto the peg",
    "basketball-v3": "pick up the basketball and dunk it into the hoop",
    "bin-picking-v3": "move the puck from one bin into the other bin",
    "box-close-v3": "pick up the lid and put it on the box",
    "button-press-topdown-v3": "press the button down from the top",
    "button-press-topdown-wall-v3": "press the button down from the top behind the wall",
    "button-press-v3": "press the button in from the front",
    "button-press-wall-v3": "reach past the wall and press the button",
    "coffee-button-v3": "press the button on the coffee machine",
    "coffee-pull-v3": "pull the mug away from the coffee machine",
    "coffee-push-v3": "push the mug under the coffee machine",
    "dial-turn-v3": "turn the dial",
    "disassemble-v3": "pull the ring off the peg",
    "door-close-v3": "close the door",
    "door-lock-v3": "lock the door by turning the lock",
    "door-open-v3": "open the door",
    "door-unlock-v3": "unlock the door by turning the lock",
    "hand-insert-v3": "push the block into the hole",
    "drawer-close-v3": "close the drawer",
    "drawer-open-v3": "open the drawer",
    "faucet-open-v3": "open the faucet",
    "faucet-close-v3": "close the faucet",
    "hammer-v3": "hammer the nail into the wall",
    "handle-press-side-v3": "press the handle down from the side",
    "handle-press-v3": "press the handle down",
    "handle-pull-side-v3": "pull the handle up from the side",
    "handle-pull-v3": "pull the handle up",
    "lever-pull-v3": "pull the lever up",
    "pick-place-wall-v3": "pick up the puck and place it at the goal behind the wall",
    "pick-out-of-hole-v3": "pick the puck out of the hole",
    "pick-place-v3": "pick up the puck and place it at the goal",
    "plate-slide-v3": "slide the plate into the goal",
    "plate-slide-side-v3": "slide the plate sideways into the goal",
    "plate-slide-back-v3": "slide the plate back out of the goal",
    "plate-slide-back-side-v3": "slide the plate sideways out of the goal",
    "peg-insert-side-v3": "insert the peg into the hole from the side",
    "peg-unplug-side-v3": "unplug the peg from the side",
    "soccer-v3": "kick the soccer ball into the goal",
    "stick-push-v3": "grab the stick and push the thermos to the goal with it",
    "stick-pull-v3": "grab the stick and pull the thermos to the goal with it",
    "push-v3": "push the puck to the goal",
    "push-wall-v3": "push the puck around the wall to the goal",
    "push-back-v3": "pull the puck back to the goal",
    "reach-v3": "move the gripper to the goal",
    "reach-wall-v3": "move the gripper over the wall to the goal",
    "shelf-place-v3": "pick up the puck and place it on the shelf",
    "sweep-into-v3": "sweep the puck into the hole",
    "sweep-v3": "sweep the puck off the table",
    "window-open-v3": "slide the window open",
    "window-close-v3": "slide the window closed",
}


def episode_seed(seed, task, attempt):
    """Seed of one attempt: independent of workers and chunking, so output depends only on --seed."""
    ss = np.random.SeedSequence(seed, spawn_key=(zlib.crc32(task.encode()), attempt))
    return int(ss.generate_state(1)[0])


class TaskRunner:
    """One env + offscreen renderer for one task, living in a worker process."""

    def __init__(self, task, size, camera):
        import metaworld
        import mujoco
        from metaworld.policies import ENV_POLICY_MAP
        warnings.filterwarnings("ignore", message=r"Constant\(s\) may be too high")  # experts; actions are clipped
        self.mujoco = mujoco
        bench = metaworld.MT1(task, seed=0)  # only for a valid Task (fully observable goal)
        self.env = bench.train_classes[task]()
        self.env.set_task(bench.train_tasks[0])
        self.env.seeded_rand_vec = True  # fresh layouts drawn from env.np_random instead of the 50 fixed ones
        self.policy = ENV_POLICY_MAP[task]()
        m = self.env.model
        # llvmpipe spends most of its time on MSAA and 4096^2 shadow maps: 75-130 ms -> ~7 ms a frame.
        m.vis.quality.offsamples = 0
        m.vis.global_.offwidth = max(m.vis.global_.offwidth, size)
        m.vis.global_.offheight = max(m.vis.global_.offheight, size)
        self.renderer = mujoco.Renderer(m, size, size)
        self.camera = camera
        self.env.reset()
        # Meta-World's corner cameras have their up axis pointing down (images come out upside down):
        # rotate by 180 degrees whenever the camera's up vector points below the horizon.
        cam = m.camera(camera).id
        self.flip = bool(self.env.data.cam_xmat[cam].reshape(3, 3)[2, 1] < 0)

    def render(self):
        r = self.renderer
        r.update_scene(self.env.data, camera=self.camera)
        r.scene.flags[self.mujoco.mjtRndFlag.mjRND_SHADOW] = False
        r.scene.flags[self.mujoco.mjtRndFlag.mjRND_REFLECTION] = False
        img = r.render()
        return img[::-1, ::-1].copy() if self.flip else img.copy()

    def run(self, seed, max_steps):
        env = self.env
        # An unfrozen reset draws a layout in each of its two reset_model() calls, and some envs (window, door)
        # then return a first observation that mixes both. So draw the layout, freeze it, and reset again:
        # the episode starts exactly as an MT1 task (and an eval env given layout["rand_vec"]) would.
        env._freeze_rand_vec = False
        env.seed(seed)
        env.reset()
        env._freeze_rand_vec = True
        obs, _ = env.reset()
        layout = {"rand_vec": env._last_rand_vec.tolist(), "hand_pos": obs[0:3].tolist(),
                  "obj_pos": obs[4:7].tolist(), "obj_quat": obs[7:11].tolist(),
                  "obj2_pos": obs[11:14].tolist(), "goal_pos": obs[36:39].tolist()}
        frames, states, actions, rewards = [], [], [], []
        success = False
        for _ in range(max_steps):
            frames.append(self.render())
            states.append(obs.copy())  # some experts (door-open/close) edit the obs they are given in place
            action = np.clip(self.policy.get_action(obs), -1.0, 1.0).astype(np.float32)
            obs, reward, _, _, info = env.step(action)
            actions.append(action)
            rewards.append(reward)
            if info["success"]:
                success = True
                break
        ep = {"seed": seed, "success": success, "steps": len(actions)}
        if success:
            ep.update(layout=json.dumps(layout), rgb=np.stack(frames),
                      state=np.asarray(states, np.float32), actions=np.stack(actions),
                      rewards=np.asarray(rewards, np.float32))
        return ep

    def close(self):
        self.renderer.close()
        self.env.close()


_runner = None


def _close_runner():  # else Renderer.__del__ prints EGL errors at interpreter teardown
    if _runner is not None:
        _runner.close()


def run_chunk(task, attempts, cfg):
    global _runner
    if _runner is None or _runner.key != (task, cfg["image_size"], cfg["camera"]):
        first = _runner is None
        if not first:
            _runner.close()
        _runner = TaskRunner(task, cfg["image_size"], cfg["camera"])
        if first:  # after the renderer exists, so that this runs before mujoco's own atexit eglTerminate
            atexit.register(_close_runner)
        _runner.key = (task, cfg["image_size"], cfg["camera"])
    out = []
    for a in attempts:
        ep = _runner.run(episode_seed(cfg["seed"], task, a), cfg["max_steps"])
        ep.update(attempt=a, flip=_runner.flip)
        out.append(ep)
    return out


def write_task_file(path, task, eps, cfg, attempts):
    import h5py
    import hdf5plugin
    n = len(eps)
    n_valid = max(1, round(n * cfg["valid_fraction"])) if n >= 2 else 0
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
                dones = np.zeros(T, np.uint8)
                dones[-1] = 1
                g.create_dataset("dones", data=dones)
                o = g.create_group("obs")
                o.create_dataset("agentview_rgb", data=ep["rgb"], chunks=(min(CHUNK_FRAMES, T),) + ep["rgb"].shape[1:],
                                 **hdf5plugin.Zstd(clevel=3))
                o.create_dataset("ee_pos", data=ep["state"][:, 0:3])
                o.create_dataset("gripper_state", data=ep["state"][:, 3:4])
                o.create_dataset("env_state", data=ep["state"])
                g.attrs.update(num_samples=T, seed=ep["seed"], attempt=ep["attempt"],
                               layout=ep["layout"], success_step=T - 1)
            size = cfg["image_size"]
            data.attrs.update(
                task=task, env_name=task, language_instruction=INSTRUCTIONS[task],
                env_version=f"metaworld {version('metaworld')} (v3 envs), mujoco {version('mujoco')}",
                num_demos=n, total=int(sum(len(e["actions"]) for e in eps)), attempts=attempts,
                image_size=size, camera=cfg["camera"], camera_rotated_180=bool(eps and eps[0]["flip"]),
                render_settings="mujoco.Renderer, vis.quality.offsamples=0, shadows and reflections off, "
                                "image rotated 180 degrees when camera_rotated_180",
                seed=cfg["seed"], max_steps=cfg["max_steps"], generator_version=GENERATOR_VERSION,
                env_args=json.dumps({"env_name": task, "type": "metaworld-v3", "env_kwargs": {
                    "camera_name": cfg["camera"], "width": size, "height": size, "max_steps": cfg["max_steps"]}}),
                obs_doc="agentview_rgb: uint8 HWC, top row first; ee_pos: obs[0:3] hand xyz; "
                        "gripper_state: obs[3] gripper opening in [0,1] (T,1); env_state: the full 39-d observation",
                action_doc="(dx, dy, dz, gripper) in [-1, 1], gripper +1 closes")
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
    p.add_argument("--tasks", default="mt10", help="'mt10', 'mt50' or a comma list (default: mt10)")
    p.add_argument("--demos-per-task", type=int, default=50)
    p.add_argument("--image-size", type=int, default=64, help="square images, 8..1024 (default 64)")
    p.add_argument("--camera", default="corner4", help=f"one of {', '.join(CAMERAS)} (default corner4)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--max-steps", type=int, default=ENV_MAX_STEPS, help="per attempt, 1..500 (default 500)")
    p.add_argument("--valid-fraction", type=float, default=0.1)
    p.add_argument("--out", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "data"))
    a = p.parse_args(argv)
    from metaworld.env_dict import ALL_V3_ENVIRONMENTS
    if a.tasks.lower() in ("mt10", "mt50", "all"):
        a.tasks = MT10 if a.tasks.lower() == "mt10" else list(ALL_V3_ENVIRONMENTS)
    else:
        a.tasks = [t if t.endswith("-v3") else t + "-v3" for t in a.tasks.replace(" ", "").split(",") if t]
        bad = [t for t in a.tasks if t not in ALL_V3_ENVIRONMENTS]
        if bad or not a.tasks:
            p.error(f"unknown task(s) {bad}; valid: mt10, mt50, or any of {', '.join(ALL_V3_ENVIRONMENTS)}")
    if not 8 <= a.image_size <= 1024:
        p.error(f"--image-size must be between 8 and 1024, got {a.image_size}")
    if a.camera not in CAMERAS:
        p.error(f"unknown camera {a.camera!r}; valid: {', '.join(CAMERAS)}")
    if not 1 <= a.max_steps <= ENV_MAX_STEPS:
        p.error(f"--max-steps must be between 1 and {ENV_MAX_STEPS}, got {a.max_steps}")
    if a.demos_per_task < 1 or a.workers < 1 or not 0 <= a.valid_fraction < 1:
        p.error("--demos-per-task and --workers must be >= 1, --valid-fraction in [0, 1)")
    try:
        os.makedirs(a.out, exist_ok=True)
        probe = os.path.join(a.out, f".write-probe-{os.getpid()}")
        open(probe, "w").close()
        os.unlink(probe)
    except OSError as e:
        p.error(f"output directory {a.out!r} is not writable: {e}")
    return a


def main(argv=None):
    args = parse_args(argv)
    from tqdm import tqdm
    cfg = {k: getattr(args, k) for k in ("seed", "image_size", "camera", "max_steps", "valid_fraction")}
    n = args.demos_per_task
    chunk = max(1, min(10, math.ceil(n / args.workers)))
    limit = max(20, 10 * n)  # attempts after which a task is given up
    state = {t: {"next": 0, "eps": {}, "running": 0, "shown": 0} for t in args.tasks}
    card_tasks, incomplete = {}, []
    if args.workers > 1:
        os.environ.setdefault("LP_NUM_THREADS", "1")  # one llvmpipe thread per worker process
    bar = tqdm(total=n * len(args.tasks), unit="demo", dynamic_ncols=True)
    with ProcessPoolExecutor(args.workers, mp_context=mp.get_context("spawn")) as pool:
        futures = {}

        def submit(task, count):
            s = state[task]
            end = min(s["next"] + count, limit)
            for start in range(s["next"], end, chunk):
                futures[pool.submit(run_chunk, task, list(range(start, min(start + chunk, end))), cfg)] = task
                s["running"] += 1
            s["next"] = end

        for t in args.tasks:
            submit(t, n)
        while futures:
            for fut in wait(futures, return_when=FIRST_COMPLETED)[0]:
                task = futures.pop(fut)
                s = state[task]
                s["running"] -= 1
                for ep in fut.result():
                    s["eps"][ep["attempt"]] = ep
                wins = [s["eps"][a] for a in sorted(s["eps"]) if s["eps"][a]["success"]]
                bar.update(min(len(wins), n) - s["shown"])
                s["shown"] = min(len(wins), n)
                if s["running"]:
                    continue
                if len(wins) < n and s["next"] < limit:
                    rate = max(len(wins) / s["next"], 0.1)
                    submit(task, math.ceil((n - len(wins)) / rate))
                    continue
                # Keep the first n successes in attempt order: the result does not depend on scheduling.
                kept = wins[:n]
                attempts = kept[-1]["attempt"] + 1 if len(kept) == n else s["next"]
                path = os.path.join(args.out, f"{task}.hdf5")
                n_train, n_valid = write_task_file(path, task, kept, cfg, attempts)
                lengths = [e["steps"] for e in kept]
                card_tasks[task] = {
                    "file": os.path.basename(path), "language_instruction": INSTRUCTIONS[task],
                    "demos": len(kept), "train": n_train, "valid": n_valid, "attempts": attempts,
                    "scripted_success_rate": round(len(kept) / attempts, 4) if attempts else 0.0,
                    "frames": sum(lengths), "mean_length": round(float(np.mean(lengths)), 1) if kept else 0,
                    "max_length": max(lengths, default=0)}
                if len(kept) < n:
                    incomplete.append(task)
                tqdm.write(f"{task}: kept {len(kept)}/{n} from {attempts} attempts, {sum(lengths)} frames -> {path}")
                s["eps"].clear()
    bar.close()
    write_card(args, card_tasks)
    if incomplete:
        print(f"error: scripted policy reached fewer than {n} successes in {limit} attempts for: "
              f"{', '.join(incomplete)} (files written with fewer demos)", file=sys.stderr)
        return 1
    return 0


def write_card(args, tasks):
    settings = {"generator_version": GENERATOR_VERSION, "seed": args.seed, "image_size": args.image_size,
                "camera": args.camera, "max_steps": args.max_steps, "valid_fraction": args.valid_fraction}
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
        "settings": settings, "demos_per_task_requested": args.demos_per_task,
        "seeds": "episode seed = SeedSequence(seed, spawn_key=(crc32(task), attempt)); stored per demo",
        "image_compression": "zstd level 3 (HDF5 filter 32015), chunks of up to %d frames" % CHUNK_FRAMES,
        "packages": {p: version(p) for p in ("metaworld", "mujoco", "gymnasium", "numpy", "h5py", "hdf5plugin")}
        | {"python": platform.python_version()},
        "total_demos": sum(t["demos"] for t in tasks.values()),
        "tasks": dict(sorted(tasks.items())),
    }
    tmp = path + f".tmp-{os.getpid()}"
    with open(tmp, "w") as f:
        json.dump(card, f, indent=2)
        f.write("\n")
    os.replace(tmp, path)


if __name__ == "__main__":
    sys.exit(main())
