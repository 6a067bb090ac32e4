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
import signal
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
# One English instruction per task (MT10 and all 50), also for evaluation code to read.
with open(os.path.join(os.path.dirname(os.path.abspath(__file__)), "instructions.json")) as _f:
    INSTRUCTIONS = json.load(_f)


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
        # Reset can leave body/site poses a substep stale (seen as single pixels that depend on the previous
        # episode). Recompute poses only: mj_forward would also change the solver warm start, so the physics.
        for fn in (self.mujoco.mj_kinematics, self.mujoco.mj_comPos, self.mujoco.mj_camlight):
            fn(env.model, env.data)
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


def _worker_init():
    try:  # Linux: die with the parent, so that a killed generator leaves no workers behind
        import ctypes
        ctypes.CDLL(None).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


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
                image_size=size, camera=cfg["camera"], camera_rotated_180=int(bool(eps and eps[0]["flip"])),
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
    p.add_argument("--tasks", default="mt10", help="mt10 (default), mt50 (all 50), or a comma list such as reach-v3,push")
    p.add_argument("--demos-per-task", type=int, default=50)
    p.add_argument("--image-size", type=int, default=64, help="square images, 8..512 (default 64)")
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
    if not 8 <= a.image_size <= 512:  # a task's episodes are held in memory until its file is written
        p.error(f"--image-size must be between 8 and 512, got {a.image_size}")
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
        p.error(f"--out {a.out!r} is not a writable directory: {e}")
    return a


def finish_task(task, wins, n, next_attempt, cfg, out_dir):
    """Write a task's file from its first n successes (attempt order, so independent of scheduling)."""
    kept = wins[:n]
    attempts = kept[-1]["attempt"] + 1 if len(kept) == n else next_attempt
    path = os.path.join(out_dir, f"{task}.hdf5")
    n_train, n_valid = write_task_file(path, task, kept, cfg, attempts) if kept else (0, 0)
    lengths = [e["steps"] for e in kept]
    return {"requested": n, "demos": len(kept), "file": os.path.basename(path) if kept else None,
            "language_instruction": INSTRUCTIONS[task], "train": n_train, "valid": n_valid,
            "attempts": attempts, "scripted_success_rate": round(len(kept) / max(attempts, 1), 4),
            "frames": sum(lengths), "mean_length": round(float(np.mean(lengths)), 1) if kept else 0,
            "max_length": max(lengths, default=0)}


def main(argv=None):
    args = parse_args(argv)
    from tqdm import tqdm
    cfg = {k: getattr(args, k) for k in ("seed", "image_size", "camera", "max_steps", "valid_fraction")}
    n = args.demos_per_task
    chunk = max(1, min(10, math.ceil(n / args.workers)))
    limit = max(20, 10 * n)  # attempts after which a task is given up
    state = {t: {"next": 0, "eps": {}, "running": 0, "shown": 0} for t in args.tasks}
    card_tasks = {}
    if args.workers > 1:
        os.environ.setdefault("LP_NUM_THREADS", "1")  # one llvmpipe thread per worker process
    bar = tqdm(total=n * len(args.tasks), unit="demo", dynamic_ncols=True)
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))  # clean up like Ctrl-C
    pool = ProcessPoolExecutor(args.workers, mp_context=mp.get_context("spawn"), initializer=_worker_init)
    futures = {}

    def submit(task, count):  # attempts are numbered per task, in contiguous chunks
        s = state[task]
        end = min(s["next"] + count, limit)
        for start in range(s["next"], end, chunk):
            futures[pool.submit(run_chunk, task, list(range(start, min(start + chunk, end))), cfg)] = task
            s["running"] += 1
        s["next"] = end

    try:
        for t in args.tasks:
            submit(t, n)
        while futures:
            for fut in wait(futures, return_when=FIRST_COMPLETED)[0]:
                task = futures.pop(fut)
                s = state[task]
                s["running"] -= 1
                s["eps"].update((ep["attempt"], ep) for ep in fut.result())
                wins = [s["eps"][a] for a in sorted(s["eps"]) if s["eps"][a]["success"]]
                bar.update(min(len(wins), n) - s["shown"])
                s["shown"] = min(len(wins), n)
                if s["running"]:
                    continue
                if len(wins) < n and s["next"] < limit:
                    submit(task, math.ceil((n - len(wins)) / max(len(wins) / s["next"], 0.1)))
                    continue
                card_tasks[task] = c = finish_task(task, wins, n, s["next"], cfg, args.out)
                tqdm.write(f"{task}: kept {c['demos']}/{n} from {c['attempts']} attempts, {c['frames']} frames"
                           + (f" -> {os.path.join(args.out, c['file'])}" if c["file"] else ", no file written"))
                s["eps"].clear()
    except BaseException:  # error, Ctrl-C or SIGTERM: stop the running chunks too (no public API before 3.14)
        for proc in (getattr(pool, "_processes", None) or {}).values():
            proc.terminate()
        raise
    finally:
        pool.shutdown(cancel_futures=True)
        bar.close()
        if card_tasks:  # also after an interruption, for the files that are complete
            write_card(args, card_tasks)
    incomplete = [t for t, c in card_tasks.items() if c["demos"] < n]
    if incomplete:
        print(f"error: the scripted policy reached fewer than {n} successes in {limit} attempts for "
              f"{', '.join(incomplete)} (their files hold fewer demos, or none were written)", file=sys.stderr)
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
