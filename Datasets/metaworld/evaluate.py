#!/usr/bin/env python3
"""Closed-loop Meta-World v3 evaluation of a policy server (openpi websocket protocol) or the scripted expert.

    python evaluate.py --policy expert --tasks reach-v3 --episodes 4
    python evaluate.py --host 127.0.0.1 --port 8000 --tasks mt10 --episodes 20
    python evaluate.py --serve Checkpoints/tiny/stage1 --tasks reach-v3 --episodes 5   # starts and stops `vla serve`
See README.md ("Closed-loop evaluation") for the protocol, the seeds and the files written.
"""
import argparse
import glob
import hashlib
import json
import math
import multiprocessing as mp
import os
import platform
import signal
import re
import socket
import subprocess
import sys
import threading
import time
import traceback
from collections import deque
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from importlib.metadata import PackageNotFoundError, version

import numpy as np

from sim import (CAMERAS, ENV_MAX_STEPS, EVAL_SEED, INSTRUCTIONS, INSTRUCTIONS_FILE, SimEnv, check_extra_cameras,
                 episode_seed, expert, parse_tasks, process_sim, stop_pool, worker_init)

ACTION_DIM = STATE_DIM = 4
REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
STRIP_FRAMES = 16  # at most this many frames in a --frames strip
PACKAGES = ("metaworld", "mujoco", "gymnasium", "numpy", "openpi-client", "msgpack", "websockets")


class ServerProblem(Exception):
    """The policy server cannot be reached, replied with an error, or broke the protocol: the run is aborted."""


class ServerErrorReply(ServerProblem):
    """The server replied with a str, the protocol's error message."""


# ---------------------------------------------------------------------------------------------------------------
# Arguments


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--policy", choices=("server", "expert"), default="server",
                   help="server (default): a policy server over websocket; expert: Meta-World's scripted expert")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--serve", metavar="MODEL", help="start `VLA serve MODEL` (a run folder or export bundle) on a free "
                                                   "local port for this evaluation, and stop it afterwards")
    p.add_argument("--vla", default=os.path.join(REPO, ".build", "release", "vla"), help="the vla executable for --serve")
    p.add_argument("--serve-arg", action="append", default=[], metavar="ARG",
                   help="one more argument for `vla serve` (repeatable), e.g. --serve-arg=--noise-scale=0")
    p.add_argument("--tasks", default="mt10", help="mt10 (default), mt50, or a comma list such as reach-v3,push")
    p.add_argument("--episodes", type=int, default=20, help="per task (default 20)")
    p.add_argument("--max-steps", type=int, default=200, help="per episode, 1..500 (default 200)")
    p.add_argument("--seed", type=int, default=EVAL_SEED, help=f"episode i of task T uses episode_seed(seed, T, i) "
                                                               f"(default {EVAL_SEED}, the held-out evaluation seed)")
    p.add_argument("--workers", type=int, default=2, help="processes, each with its own env; every episode opens its own server connection")
    mode = p.add_mutually_exclusive_group()
    mode.add_argument("--execute", type=int, metavar="K",
                      help="execute the first K actions of each chunk, then query again (default: the whole chunk)")
    mode.add_argument("--temporal-ensemble", type=float, nargs="?", const=0.01, metavar="M",
                      help="query every step and average all chunk predictions for the step with weights "
                           "exp(-M*i), i=0 the oldest (ACT); M defaults to 0.01")
    p.add_argument("--image-size", type=int, help="override the server's image_size (expert: default 64)")
    p.add_argument("--camera", help=f"override the server's camera (expert: default corner4); one of {', '.join(CAMERAS)}")
    p.add_argument("--instructions", metavar="FILE",
                   help='JSON {task: "text" | {"0": "text", ..., "*": "text"}}; other tasks use instructions.json')
    p.add_argument("--train-data", action="append", default=[], metavar="GLOB",
                   help="generate.py HDF5 files (repeatable): refuse to run if an evaluation layout is among them")
    p.add_argument("--frames", default="", metavar="TASK:EP,...", help="save a frame strip of these episodes")
    p.add_argument("--frames-per-task", type=int, default=0, metavar="N",
                   help="save frame strips of the first N episodes of each task")
    p.add_argument("--connect-timeout", type=float, default=30, help="seconds to get the server's metadata (30)")
    p.add_argument("--request-timeout", type=float, default=120, help="seconds for one inference reply (120)")
    p.add_argument("--out", help="output folder (default: eval-results/<date>-<time>-<policy>)")
    a = p.parse_args(argv)
    try:
        a.tasks = parse_tasks(a.tasks)
        a.frames = parse_frames(a.frames, a.tasks, a.episodes, a.frames_per_task)
        a.instructions_table = load_instructions(a.instructions, a.tasks, a.episodes)
    except ValueError as e:
        p.error(str(e))
    if a.episodes < 1 or a.workers < 1 or not 1 <= a.max_steps <= ENV_MAX_STEPS:
        p.error(f"--episodes and --workers must be >= 1 and --max-steps between 1 and {ENV_MAX_STEPS}")
    if a.image_size is not None and not 8 <= a.image_size <= 512:
        p.error(f"--image-size must be between 8 and 512, got {a.image_size}")
    if a.camera is not None and a.camera not in CAMERAS:
        p.error(f"unknown camera {a.camera!r}; valid: {', '.join(CAMERAS)}")
    if a.execute is not None and a.execute < 1:
        p.error("--execute must be >= 1")
    if a.temporal_ensemble is not None and not math.isfinite(a.temporal_ensemble):
        p.error("--temporal-ensemble M must be a finite number")
    if a.policy == "expert" and (a.execute is not None or a.temporal_ensemble is not None):
        p.error("--execute and --temporal-ensemble apply to --policy server only")
    if a.serve_arg and not a.serve:
        p.error("--serve-arg applies to --serve only")
    if a.connect_timeout <= 0 or a.request_timeout <= 0:
        p.error("timeouts must be > 0")
    a.out = a.out or os.path.join("eval-results", time.strftime("%Y%m%d-%H%M%S-") + a.policy)
    return a


def parse_frames(spec, tasks, episodes, per_task):
    """--frames 'TASK:EP,...' plus --frames-per-task N -> set of (task, episode)."""
    chosen = {(t, e) for t in tasks for e in range(min(per_task, episodes))}
    for item in filter(None, spec.replace(" ", "").split(",")):
        task, sep, ep = item.rpartition(":")
        task = task if task.endswith("-v3") else task + "-v3"
        if not sep or not ep.isdigit() or task not in tasks or int(ep) >= episodes:
            raise ValueError(f"--frames: {item!r} is not TASK:EP with TASK among the evaluated tasks "
                             f"and EP < {episodes}")
        chosen.add((task, int(ep)))
    return chosen


def load_instructions(path, tasks, episodes):
    """{task: [instruction of episode 0, 1, ...]} from --instructions FILE, falling back to instructions.json."""
    table = {}
    if path:
        try:
            with open(path) as f:
                table = json.load(f)
        except (OSError, ValueError) as e:
            raise ValueError(f"--instructions {path!r}: {e}")
        if not isinstance(table, dict):
            raise ValueError(f"--instructions {path!r}: expected a JSON object keyed by task name")
        for task, value in table.items():
            if task not in INSTRUCTIONS:
                raise ValueError(f"--instructions {path!r}: unknown task {task!r} (use full names such as reach-v3)")
            entries = value.values() if isinstance(value, dict) else [value]
            bad_keys = [k for k in (value if isinstance(value, dict) else []) if k != "*" and not k.isdigit()]
            if bad_keys or not all(isinstance(v, str) and v.strip() for v in entries):
                raise ValueError(f"--instructions {path!r}: {task}: expected a non-empty string or an object "
                                 f'mapping episode indices ("0", "1", ...) and optionally "*" to non-empty strings')
    out = {}
    for task in tasks:
        value = table.get(task, INSTRUCTIONS[task])
        if isinstance(value, str):
            out[task] = [value] * episodes
        else:
            rest = value.get("*", INSTRUCTIONS[task])
            out[task] = [value.get(str(i), rest) for i in range(episodes)]
    return out


def sha256(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


# ---------------------------------------------------------------------------------------------------------------
# Held-out check


def eval_layouts(tasks, episodes, seed):
    """rand_vec of every evaluation episode, from envs without a renderer: {task: (episodes, d) array}."""
    out = {}
    for task in tasks:
        sim = SimEnv(task)
        out[task] = np.array([sim.reset(episode_seed(seed, task, i))[1]["rand_vec"] for i in range(episodes)])
        sim.close()
    return out


def training_layouts(patterns):
    """(file, demo, task or None, rand_vec) of every demo with a layout attr in the files matched."""
    import h5py
    paths = sorted({p for g in patterns for p in glob.glob(g, recursive=True)})
    if not paths:
        raise ValueError(f"--train-data {' '.join(patterns)} matched no file")
    for path in paths:
        try:
            with h5py.File(path, "r") as f:
                data = f["data"]
                task = data.attrs.get("task")
                for name, demo in data.items():
                    if "layout" in demo.attrs:
                        yield path, name, task, np.array(json.loads(demo.attrs["layout"])["rand_vec"])
        except (OSError, KeyError, ValueError) as e:
            raise ValueError(f"--train-data: {path} is not a generate.py HDF5 file: {e}")


def check_held_out(patterns, layouts):
    """Layouts of the evaluation that a training file also holds (rand_vec equal within 1e-9): messages.
    ValueError when a training layout has another length than the task's (another generator version): it cannot
    be checked."""
    clashes, checked = [], 0
    for path, demo, task, rv in training_layouts(patterns):
        checked += 1
        for t in [task] if task in layouts else layouts if task is None else []:
            if layouts[t].shape[1] != rv.shape[0]:
                if task is None:  # a file without a task attr is compared with every task of its length only
                    continue
                raise ValueError(f"--train-data {path} {demo}: its layout has {rv.shape[0]} values, {t}'s evaluation "
                                 f"layouts {layouts[t].shape[1]} (written by another generator version; regenerate it), "
                                 "so it cannot be checked for held-out layouts")
            for i in np.flatnonzero(np.isclose(layouts[t], rv, rtol=0, atol=1e-9).all(axis=1)):
                clashes.append(f"{t} episode {i} has the layout of {path} {demo}")
    return clashes, checked


# ---------------------------------------------------------------------------------------------------------------
# Policy server


def call_with_timeout(seconds, fn, *args):
    """fn(*args) in a daemon thread; TimeoutError after `seconds` (openpi_client's calls have no timeout)."""
    box = {}

    def target():
        try:
            box["value"] = fn(*args)
        except BaseException as e:  # noqa: BLE001 - handed to the caller
            box["error"] = e

    t = threading.Thread(target=target, daemon=True)
    t.start()
    t.join(seconds)
    if t.is_alive():
        raise TimeoutError
    if "error" in box:
        raise box["error"]
    return box["value"]


def connect(host, port, timeout):
    """An openpi WebsocketClientPolicy that has received the server's metadata."""
    from openpi_client.websocket_client_policy import WebsocketClientPolicy
    where = f"ws://{host}:{port}"
    try:
        return call_with_timeout(timeout, WebsocketClientPolicy, host, port)
    except TimeoutError:
        raise ServerProblem(f"no metadata from the policy server at {where} within {timeout:g} s (a server that "
                            f"serves one connection at a time needs --workers 1)") from None
    except Exception as e:
        raise ServerProblem(f"cannot connect to the policy server at {where}: {type(e).__name__}: {e}") from None


def disconnect(client):
    client._ws.close()  # openpi_client 0.1.2 has no close()


def server_settings(meta, args):
    """image_size, camera, action_horizon, the executed chunk length and the extra cameras (a list) from the
    metadata and the overrides."""
    if not isinstance(meta, dict):
        raise ServerProblem(f"the server's metadata is a {type(meta).__name__}, expected a dict")
    missing = [k for k in ("action_horizon", "action_dim", "state_dim") + (() if args.image_size else ("image_size",))
               + (() if args.camera else ("camera",)) if k not in meta]
    if missing:
        raise ServerProblem(f"the server's metadata lacks {', '.join(missing)} (got {sorted(meta)})")
    if meta["action_dim"] != ACTION_DIM or meta["state_dim"] != STATE_DIM:
        raise ServerProblem(f"the server expects action_dim {meta['action_dim']} and state_dim {meta['state_dim']}; "
                            f"Meta-World has {ACTION_DIM} and {STATE_DIM}")
    size, camera, horizon = args.image_size or meta["image_size"], args.camera or meta["camera"], meta["action_horizon"]
    if not (isinstance(size, int) and 8 <= size <= 512) or camera not in CAMERAS or not (
            isinstance(horizon, int) and horizon >= 1):
        raise ServerProblem(f"unusable metadata: image_size {size!r}, camera {camera!r}, action_horizon {horizon!r}")
    for key, override in (("image_size", args.image_size), ("camera", args.camera)):
        if override and key in meta and meta[key] != override:
            print(f"warning: --{key.replace('_', '-')} {override} overrides the server's {key} {meta[key]}",
                  file=sys.stderr)
    execute = args.execute or horizon
    if args.temporal_ensemble is None and execute > horizon:
        raise ServerProblem(f"--execute {execute} exceeds the server's action_horizon {horizon}")
    extra = meta.get("extra_cameras", [])
    if not (isinstance(extra, list) and all(isinstance(n, str) for n in extra)):
        raise ServerProblem(f"unusable metadata: extra_cameras {extra!r} is not a list of camera names")
    try:
        extra = check_extra_cameras(extra, camera)
    except ValueError as e:
        raise ServerProblem(f"unusable metadata: {e}") from None
    return size, camera, horizon, execute, extra


def check_reply(reply, horizon):
    """The reply's actions as float32 (horizon, 4), and its server_timing.infer_ms (or None)."""
    if not isinstance(reply, dict) or "actions" not in reply:
        raise ServerProblem(f"reply without 'actions': {reply if not isinstance(reply, dict) else sorted(reply)}")
    actions = np.asarray(reply["actions"])
    if actions.shape != (horizon, ACTION_DIM) or actions.dtype.kind != "f":
        raise ServerProblem(f"reply actions must be floats of shape ({horizon}, {ACTION_DIM}), the metadata's "
                            f"action_horizon and action_dim; got {actions.dtype} {actions.shape}")
    if not np.isfinite(actions).all():
        raise ServerProblem("reply actions hold NaN or infinity")
    timing = reply.get("server_timing")
    infer_ms = timing.get("infer_ms") if isinstance(timing, dict) else None
    return actions.astype(np.float32), infer_ms


class ServerPolicy:
    """Rollout policy of one episode backed by the server: chunk execution or temporal ensembling."""

    def __init__(self, client, prompt, cfg):
        self.client, self.prompt, self.cfg = client, prompt, cfg
        self.step = 0
        self.queue = deque()  # chunk execution: actions still to execute
        self.chunks = deque()  # temporal ensemble: (first step, chunk) of the predictions covering the step
        self.latency_ms, self.infer_ms = [], []
        self.texts = []  # each new response of a thinking server, in order (it regenerates every think_every requests)

    def __call__(self, obs, frame, extra):
        m = self.cfg["temporal_ensemble"]
        if m is None:
            if not self.queue:
                self.queue.extend(self.query(obs, frame, extra)[:self.cfg["execute"]])
            action = self.queue.popleft()
        else:
            self.chunks.append((self.step, self.query(obs, frame, extra)))
            while self.step - self.chunks[0][0] >= len(self.chunks[0][1]):
                self.chunks.popleft()
            preds = np.stack([chunk[self.step - start] for start, chunk in self.chunks])  # oldest first
            w = np.exp(-m * np.arange(len(preds)))
            action = (w[:, None] * preds).sum(axis=0) / w.sum()
        self.step += 1
        return action

    def query(self, obs, frame, extra):
        import websockets
        request = {"observation/image": frame, "observation/state": obs[0:STATE_DIM].astype(np.float32),
                   "prompt": self.prompt} | {f"observation/{name}_image": image for name, image in extra.items()}
        t0 = time.perf_counter()
        try:
            reply = call_with_timeout(self.cfg["request_timeout"], self.client.infer, request)
        except TimeoutError:
            raise ServerProblem(f"no reply within {self.cfg['request_timeout']:g} s (--request-timeout)") from None
        except RuntimeError as e:  # openpi_client raises it for a str reply
            raise ServerErrorReply(f"the server replied with an error: {e}") from None
        except websockets.ConnectionClosed as e:
            raise ServerProblem(f"the server closed the connection ({e}); note that a server must also answer "
                                f"websocket pings (every 20 s), else the client closes the connection") from None
        except Exception as e:
            raise ServerProblem(f"request failed: {type(e).__name__}: {e}") from None
        self.latency_ms.append((time.perf_counter() - t0) * 1e3)
        actions, infer_ms = check_reply(reply, self.cfg["action_horizon"])
        if infer_ms is not None:
            self.infer_ms.append(float(infer_ms))
        if isinstance(reply.get("text"), str) and (not self.texts or self.texts[-1] != reply["text"]):
            self.texts.append(reply["text"])
        return actions


# ---------------------------------------------------------------------------------------------------------------
# Worker side


def eval_worker_init():
    worker_init()
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent handles Ctrl-C and terminates the workers


def run_episode(task, ep, instruction, save_frames, cfg):
    """One evaluation episode in a worker process -> its result record."""
    sim = process_sim(task, cfg["image_size"], cfg["camera"], cfg["extra_cameras"])
    seed = episode_seed(cfg["seed"], task, ep)
    server = cfg["policy"] == "server"
    # One connection per episode: a server keeps state per connection (a thinking model's response), and
    # openpi has no reset message, so an episode must not inherit the last one's.
    client = connect(cfg["host"], cfg["port"], cfg["connect_timeout"]) if server else None
    policy = ServerPolicy(client, instruction, cfg) if server else expert(task)
    obs, layout = sim.reset(seed)
    frames, steps, success = [], 0, False
    try:
        for frame, _, _, _, _, success in sim.rollout(policy, obs, cfg["max_steps"]):
            steps += 1
            if save_frames:
                frames.append(frame)
    finally:
        if client is not None:
            disconnect(client)
    if save_frames:
        save_strip(os.path.join(cfg["out"], "frames", f"{task}_ep{ep:03d}_{'success' if success else 'fail'}.png"),
                   frames)
    rec = {"task": task, "episode": ep, "seed": seed, "success": success, "steps": steps,
           "instruction": instruction, "layout": layout}
    if server:
        rec.update(queries=len(policy.latency_ms), text=policy.texts[0] if policy.texts else None, texts=policy.texts,
                   latency_ms=policy.latency_ms, infer_ms=policy.infer_ms)
    return rec


def save_strip(path, frames):
    """Every k-th frame side by side (k so that at most STRIP_FRAMES), upscaled 2x nearest."""
    from PIL import Image
    k = math.ceil(len(frames) / STRIP_FRAMES)
    strip = np.concatenate(frames[::k], axis=1).repeat(2, axis=0).repeat(2, axis=1)
    tmp = f"{path}.tmp-{os.getpid()}"
    Image.fromarray(strip).save(tmp, format="PNG")
    os.replace(tmp, path)


# ---------------------------------------------------------------------------------------------------------------
# Results


def wilson(k, n, z=1.959964):
    """Wilson score 95 % interval of a success rate k/n."""
    p = k / n
    d = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / d
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / d
    return [round(max(0.0, centre - half), 4), round(min(1.0, centre + half), 4)]


def percentiles(values, qs):
    return {f"p{q}": round(float(np.percentile(values, q)), 3) for q in qs} if values else None


def summarize(records, tasks):
    """Per-task statistics (tasks with at least one finished episode) and the MT average."""
    out = {}
    for task in tasks:
        eps = sorted((r for r in records if r["task"] == task), key=lambda r: r["episode"])
        if not eps:
            continue
        k, n = sum(r["success"] for r in eps), len(eps)
        wins = [r["steps"] for r in eps if r["success"]]
        out[task] = {"successes": k, "episodes": n, "rate": round(k / n, 4), "wilson95": wilson(k, n),
                     "mean_steps_success": round(float(np.mean(wins)), 1) if wins else None,
                     "per_episode": [{key: v for key, v in r.items() if key not in ("task", "latency_ms", "infer_ms")}
                                     for r in eps]}
    rates = [t["successes"] / t["episodes"] for t in out.values()]
    return out, (round(float(np.mean(rates)), 4) if rates else None)


def timing(records):
    latency = [x for r in records for x in r.get("latency_ms", [])]
    infer = [x for r in records for x in r.get("infer_ms", [])]
    if not latency:
        return None
    return {"requests": len(latency), "request_ms": percentiles(latency, (50, 95)) | {"max": round(max(latency), 3)},
            "server_infer_ms": percentiles(infer, (50, 95))}


def package_versions():
    def v(name):
        try:
            return version(name)
        except PackageNotFoundError:
            return None
    return {name: v(name) for name in PACKAGES} | {"python": platform.python_version()}


def markdown(report):
    s = report["settings"]
    lines = [f"# Meta-World closed-loop evaluation: {s['policy']}" + (f" ({report['server_metadata'].get('policy')})"
                                                                     if report.get("server_metadata") else ""),
             "",
             f"seed {s['seed']}, {s['episodes']} episodes per task, max {s['max_steps']} steps, "
             f"{s['image_size']}px {s['camera']}" + "".join(f" + {c}" for c in s["extra_cameras"])
             + f", execution: {s['execution']['mode']}"
             + "".join(f", {k} {v}" for k, v in s["execution"].items() if k != "mode"),
             "",
             "| task | success | rate | Wilson 95% CI | mean steps |", "|---|---|---|---|---|"]
    for task, t in report["tasks"].items():
        lo, hi = t["wilson95"]
        steps = "–" if t["mean_steps_success"] is None else f"{t['mean_steps_success']:.1f}"
        lines.append(f"| {task} | {t['successes']}/{t['episodes']} | {100 * t['rate']:.1f} % | "
                     f"{100 * lo:.1f}–{100 * hi:.1f} % | {steps} |")
    k = sum(t["successes"] for t in report["tasks"].values())
    n = sum(t["episodes"] for t in report["tasks"].values())
    n_tasks = len(report["tasks"])
    lines.append(f"| **average of {n_tasks} task{'s' * (n_tasks != 1)}** | {k}/{n} | "
                 f"**{100 * report['average_success']:.1f} %** | | |")
    return "\n".join(lines) + "\n"


def write_atomic(path, text):
    tmp = os.path.join(os.path.dirname(path), f".{os.path.basename(path)}.tmp-{os.getpid()}")
    with open(tmp, "w") as f:
        f.write(text)
    os.replace(tmp, path)


def jsonable(x):
    return x.tolist() if isinstance(x, (np.ndarray, np.generic)) else str(x)


def report_of(args, cfg, meta, records, wall_s):
    tasks, average = summarize(records, args.tasks)
    execution = ({"mode": "expert"} if args.policy == "expert" else
                 {"mode": "chunk", "execute": cfg["execute"], "action_horizon": cfg["action_horizon"]}
                 if cfg["temporal_ensemble"] is None else
                 {"mode": "temporal_ensemble", "m": cfg["temporal_ensemble"], "action_horizon": cfg["action_horizon"]})
    settings = {"policy": args.policy, "server": f"ws://{args.host}:{args.port}" if args.policy == "server" else None,
                "served_model": args.serve,
                "seed": args.seed, "seed_rule": "episode i of task T: SeedSequence(seed, spawn_key=(crc32(T), i))",
                "tasks": args.tasks, "episodes": args.episodes, "max_steps": args.max_steps,
                "image_size": cfg["image_size"], "camera": cfg["camera"], "extra_cameras": cfg["extra_cameras"],
                "execution": execution,
                "workers": args.workers, "train_data": args.train_data or None,
                "instructions": {"file": os.path.abspath(args.instructions) if args.instructions else None,
                                 "sha256": sha256(args.instructions) if args.instructions else None,
                                 "default_file": INSTRUCTIONS_FILE, "default_sha256": sha256(INSTRUCTIONS_FILE)}}
    return {"started": args.started, "settings": settings, "server_metadata": meta, "tasks": tasks, "average_success": average,
            "timing": timing(records), "wall_s": round(wall_s, 1),
            "environment": {"packages": package_versions(), "hostname": socket.gethostname()}}


# ---------------------------------------------------------------------------------------------------------------
# Main


def fetch_metadata(args):
    client = connect(args.host, args.port, args.connect_timeout)
    meta = client.get_server_metadata()
    disconnect(client)  # the workers open their own connections
    return meta


def run_all(args, cfg, on_record):
    """Run every episode on the worker pool; on_record(record) for each finished one, in finishing order."""
    if args.workers > 1:
        os.environ.setdefault("LP_NUM_THREADS", "1")  # one llvmpipe thread per worker process
    pool = ProcessPoolExecutor(args.workers, mp_context=mp.get_context("spawn"), initializer=eval_worker_init)
    try:
        futures = {pool.submit(run_episode, t, i, args.instructions_table[t][i], (t, i) in args.frames, cfg): (t, i)
                   for t in args.tasks for i in range(args.episodes)}
        while futures:
            for fut in wait(futures, return_when=FIRST_COMPLETED)[0]:
                task, ep = futures.pop(fut)
                try:
                    on_record(fut.result())
                except ServerProblem as e:
                    raise type(e)(f"{task} episode {ep}: {e}") from None
    except BaseException:
        stop_pool(pool)
        raise
    finally:
        pool.shutdown(cancel_futures=True)


def held_out_problem(args):
    """None when the evaluation layouts are held out from --train-data, else the error message."""
    try:
        clashes, checked = check_held_out(args.train_data, eval_layouts(args.tasks, args.episodes, args.seed))
    except ValueError as e:
        return str(e)
    if clashes:
        return (f"the evaluation layouts (seed {args.seed}) are not held out from --train-data: " + "; ".join(clashes[:10])
                + (f"; and {len(clashes) - 10} more" if len(clashes) > 10 else ""))
    print(f"held-out check: {args.episodes * len(args.tasks)} evaluation layouts differ from {checked} training "
          f"layouts", flush=True)
    return None


def run_config(args):
    """The workers' settings, (server metadata or None); raises ServerProblem."""
    cfg = {k: getattr(args, k) for k in ("policy", "host", "port", "seed", "max_steps", "connect_timeout",
                                         "request_timeout", "temporal_ensemble")}
    cfg["out"] = os.path.abspath(args.out)
    if args.policy == "expert":
        cfg["image_size"], cfg["camera"], cfg["extra_cameras"] = args.image_size or 64, args.camera or "corner4", []
        return cfg, None
    meta = fetch_metadata(args)
    (cfg["image_size"], cfg["camera"], cfg["action_horizon"], cfg["execute"],
     cfg["extra_cameras"]) = server_settings(meta, args)
    return cfg, meta


class Run:
    """The finished episodes of a run, its progress lines and its result files."""

    def __init__(self, args, cfg, meta, t_start):
        self.args, self.cfg, self.meta, self.t_start = args, cfg, meta, t_start
        self.records, self.total = [], args.episodes * len(args.tasks)
        self.new_dirs = [d for d in (cfg["out"], os.path.join(cfg["out"], "frames")) if not os.path.isdir(d)]
        os.makedirs(os.path.join(cfg["out"], "frames") if args.frames else cfg["out"], exist_ok=True)

    def add(self, r):
        self.records.append(r)
        print(f"[{len(self.records):>{len(str(self.total))}}/{self.total}] {r['task']} episode {r['episode']}: "
              f"{'success' if r['success'] else 'fail'} after {r['steps']} steps "
              f"({time.monotonic() - self.t_start:.0f} s)", flush=True)

    def report(self):
        return report_of(self.args, self.cfg, self.meta, self.records, time.monotonic() - self.t_start)

    def write(self, name, text):
        write_atomic(os.path.join(self.cfg["out"], name), text)

    def finish(self):
        report = {"complete": True} | self.report()
        table = markdown(report)
        self.write("results.json", json.dumps(report, indent=2, default=jsonable) + "\n")
        self.write("results.md", table)
        print("\n" + table + f"\nwall {report['wall_s']} s -> {os.path.join(self.args.out, 'results.json')}, "
              f"results.md", flush=True)

    def abort(self, reason, error_replies=0):
        """results.partial.json when some episodes finished, else no trace (not even the folders made)."""
        if not self.records:
            for d in reversed(self.new_dirs):
                if os.path.isdir(d) and not os.listdir(d):
                    os.rmdir(d)
            return
        report = {"complete": False, "aborted": reason, "server_error_replies": error_replies} | self.report()
        self.write("results.partial.json", json.dumps(report, indent=2, default=jsonable) + "\n")
        print(f"partial results of {len(self.records)}/{self.total} episodes: "
              f"{os.path.join(self.args.out, 'results.partial.json')}", file=sys.stderr)


class served:
    """`vla serve MODEL --port 0` for the duration of a `with` block; yields the port it bound."""

    def __init__(self, vla, model, log_path, extra_args=(), timeout=300):
        if not os.access(vla, os.X_OK):
            raise ServerProblem(f"no vla executable at {vla} (build it: swift build -c release --product vla)")
        os.makedirs(os.path.dirname(log_path) or ".", exist_ok=True)
        self.log_path, self.timeout = log_path, timeout
        self.log = open(log_path, "w")
        self.proc = subprocess.Popen([vla, "serve", model, "--port", "0", *extra_args], stdout=self.log, stderr=subprocess.STDOUT)

    def __enter__(self):
        deadline = time.monotonic() + self.timeout
        while time.monotonic() < deadline:
            with open(self.log_path) as f:
                found = re.search(r"ws://127\.0\.0\.1:(\d+)", f.read())
            if found:
                return int(found.group(1))
            if self.proc.poll() is not None:
                break
            time.sleep(0.2)
        self.__exit__()
        with open(self.log_path) as f:
            raise ServerProblem(f"vla serve did not start (log {self.log_path}):\n{f.read()[-2000:]}")

    def __exit__(self, *exc):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        self.log.close()


def main(argv=None):
    args = parse_args(argv)
    if not args.serve:
        return evaluate(args)
    try:
        with served(args.vla, args.serve, os.path.join(args.out, "server.log"), args.serve_arg) as port:
            args.port = port
            return evaluate(args)
    except ServerProblem as e:
        print(f"error: {e}", file=sys.stderr)
        return 1


def evaluate(args):
    t_start, args.started = time.monotonic(), time.strftime("%Y-%m-%dT%H:%M:%S%z")
    stale = [n for n in ("results.json", "results.partial.json") if os.path.exists(os.path.join(args.out, n))]
    problem = (f"--out {args.out} already holds {stale[0]} of an earlier run; choose another folder" if stale else
               held_out_problem(args) if args.train_data else None)
    if problem:
        print(f"error: {problem}", file=sys.stderr)
        return 2
    try:
        cfg, meta = run_config(args)
    except ServerProblem as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    run = Run(args, cfg, meta, t_start)
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))  # clean up like Ctrl-C
    try:
        run_all(args, cfg, run.add)
    except ServerProblem as e:
        print(f"error: {e}", file=sys.stderr)
        run.abort(str(e), int(isinstance(e, ServerErrorReply)))
        return 1
    except (KeyboardInterrupt, SystemExit) as e:
        run.abort("interrupted (Ctrl-C)" if isinstance(e, KeyboardInterrupt) else "terminated (SIGTERM)")
        raise
    except Exception as e:
        traceback.print_exc()
        run.abort(f"{type(e).__name__}: {e}")
        return 1
    run.finish()
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        print("\ninterrupted: no results.json written", file=sys.stderr)
        sys.exit(130)
