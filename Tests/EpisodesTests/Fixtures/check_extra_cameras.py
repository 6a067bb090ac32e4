"""Test-only: extra camera views (generate.py --extra-cameras, evaluate.py's metadata key extra_cameras).

  check_extra_cameras.py IN.json OUT.json    IN {"dir": D}
  OUT {"problems": [...], "frames_compared": n, "requests_checked": n, "extra_cameras_attr": {"plain": s, "side": s},
       "requests_per_connection": [n, ...]}
Generates reach-v3 and instruct-place-v3 (2 demos, 32 px) with and without --extra-cameras side and checks that
the flag changes nothing else (frames, actions, states, layouts byte-identical) and stores obs/side_rgb like
agentview_rgb. Bad names exit 2 before any work. evaluate.py then runs against an in-process openpi server that
replays reach-v3's demo_0: every request must carry observation/side_image equal to the stored frame of that step,
and the episode must succeed on the last step. Bad extra_cameras metadata must abort with exit 1 and a clear message.
Every episode has its own connection (a server's per-connection state, a thinking model's response, must not carry
into the next episode): two episodes of 3 steps are two connections of 3 requests each.
An empty "problems" list means every check passed.
"""
import json
import os
import subprocess
import sys
import threading

import h5py
import hdf5plugin  # noqa: F401  (zstd filter)
import numpy as np
import websockets.sync.server
from openpi_client import msgpack_numpy

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", ".."))
MW = os.path.join(ROOT, "Datasets", "metaworld")
TINY = ["--tasks", "reach-v3,instruct-place-v3", "--demos-per-task", "2", "--image-size", "32", "--camera", "workspace",
        "--workers", "1", "--seed", "0"]
problems = []


def expect(ok, message):
    if not ok:
        problems.append(message)


def run(script, *args):
    return subprocess.run([sys.executable, os.path.join(MW, script), *args], capture_output=True, text=True, timeout=600)


def same(a, b):
    return isinstance(a, np.ndarray) and a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes()


def check_generated(plain_dir, side_dir):
    frames, attrs = 0, {}
    for task in ("reach-v3", "instruct-place-v3"):
        with h5py.File(os.path.join(plain_dir, f"{task}.hdf5")) as p, h5py.File(os.path.join(side_dir, f"{task}.hdf5")) as s:
            attrs = {"plain": p["data"].attrs["extra_cameras"], "side": s["data"].attrs["extra_cameras"]}
            expect(attrs == {"plain": "[]", "side": '["side"]'}, f"{task}: extra_cameras attrs {attrs}")
            for demo in p["data"]:
                a, b = p["data"][demo], s["data"][demo]
                expect("side_rgb" not in a["obs"], f"{task} {demo}: side_rgb written without the flag")
                for key in ("actions", "rewards", "obs/agentview_rgb", "obs/env_state"):
                    expect(same(a[key][()], b[key][()]), f"{task} {demo}: {key} changed by --extra-cameras")
                expect(a.attrs["layout"] == b.attrs["layout"], f"{task} {demo}: layout changed by --extra-cameras")
                main, side = b["obs/agentview_rgb"], b["obs/side_rgb"]
                expect(side.dtype == np.uint8 and side.shape == main.shape and side.chunks == main.chunks
                       and side._filters == main._filters, f"{task} {demo}: side_rgb not stored like agentview_rgb")
                expect(all((side[t] != main[t]).any() for t in range(len(main))), f"{task} {demo}: a side frame equals the main one")
                frames += len(main)
        card = json.load(open(os.path.join(side_dir, "dataset_card.json")))
        expect(card["tasks"][task].get("extra_cameras") == ["side"], f"{task}: the card does not record the extra camera")
    return frames, attrs


class ReplayServer:
    """openpi websocket server replaying one demo's actions and checking each request against its frames; without a
    demo it answers zeros. `connections` holds each closed connection's request count."""

    def __init__(self):
        self.meta, self.demo, self.checked, self.connections = None, None, 0, []
        self.server = websockets.sync.server.serve(self.handle, "127.0.0.1", 0, compression=None, max_size=None)
        self.port = self.server.socket.getsockname()[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def handle(self, ws):
        packer = msgpack_numpy.Packer()
        ws.send(packer.pack(self.meta))
        step = 0
        try:
            for message in ws:
                request = msgpack_numpy.unpackb(message)
                if self.demo is not None:
                    self.check(request, step)
                replay = self.demo is not None and step < len(self.demo["actions"])
                actions = self.demo["actions"][step:step + 1] if replay else np.zeros((1, 4))
                ws.send(packer.pack({"actions": actions.astype(np.float32), "server_timing": {"infer_ms": 0.0}}))
                step += 1
        except websockets.ConnectionClosed:
            pass
        self.connections.append(step)

    def check(self, request, t):
        extra = self.meta.get("extra_cameras", [])
        want = {"observation/image", "observation/state", "prompt"} | {f"observation/{n}_image" for n in extra}
        expect(set(request) == want, f"request keys {sorted(request)}, expected {sorted(want)}")
        if t >= len(self.demo["actions"]):
            problems.append(f"the episode ran past the demo's {len(self.demo['actions'])} steps")
            return
        expect(same(request["observation/image"], self.demo["agentview_rgb"][t]), f"step {t}: observation/image != agentview_rgb")
        for n in extra:
            expect(same(request.get(f"observation/{n}_image"), self.demo[f"{n}_rgb"][t]), f"step {t}: observation/{n}_image != {n}_rgb")
        self.checked += 1


def evaluate(server, meta, out, demo_steps, episodes=1):
    server.meta = meta
    return run("evaluate.py", "--port", str(server.port), "--tasks", "reach-v3", "--episodes", str(episodes), "--seed", "0",
               "--max-steps", str(demo_steps), "--workers", "1", "--connect-timeout", "20", "--out", out)


def main(inp, outp):
    d = json.load(open(inp))["dir"]
    plain, side = os.path.join(d, "plain"), os.path.join(d, "side")
    for out, extra in ((plain, []), (side, ["--extra-cameras", "side"])):
        r = run("generate.py", *TINY, *extra, "--out", out)
        expect(r.returncode == 0, f"generate.py {' '.join(extra)} failed: {r.stderr[-1000:]}")
    frames, attrs = check_generated(plain, side)
    for bad, fragment in (("nope", "valid: "), ("workspace", "main camera")):
        r = run("generate.py", *TINY, "--extra-cameras", bad, "--out", os.path.join(d, "bad"))
        expect(r.returncode == 2 and fragment in r.stderr, f"--extra-cameras {bad}: exit {r.returncode}, {r.stderr[-300:]!r}")
    expect(not os.path.exists(os.path.join(d, "bad")), "a rejected --extra-cameras still created --out")

    with h5py.File(os.path.join(side, "reach-v3.hdf5")) as f:
        g = f["data/demo_0"]
        expect(g.attrs["attempt"] == 0, "reach-v3 demo_0 is not attempt 0 (= evaluation episode 0 with --seed 0)")
        demo = {"actions": g["actions"][()], "agentview_rgb": g["obs/agentview_rgb"][()], "side_rgb": g["obs/side_rgb"][()]}
    server = ReplayServer()
    server.demo = demo
    T = len(demo["actions"])
    meta = {"image_size": 32, "camera": "workspace", "action_horizon": 1, "action_dim": 4, "state_dim": 4, "policy": "replay"}
    requests = 0
    for name, extra in (("side", ["side"]), ("plain", None)):
        before = server.checked
        r = evaluate(server, meta | ({"extra_cameras": extra} if extra is not None else {}), os.path.join(d, f"eval-{name}"), T)
        expect(r.returncode == 0, f"evaluate.py ({name}) failed: {r.stderr[-1000:]}")
        if r.returncode == 0:
            results = json.load(open(os.path.join(d, f"eval-{name}", "results.json")))
            episode = results["tasks"]["reach-v3"]["per_episode"][0]
            expect(episode["success"] and episode["steps"] == T, f"evaluate.py ({name}): replay episode {episode['success']} "
                                                                 f"after {episode['steps']} steps, expected success at {T}")
            expect(results["settings"]["extra_cameras"] == (extra or []), f"settings.extra_cameras {results['settings']['extra_cameras']}")
            header = open(os.path.join(d, f"eval-{name}", "results.md")).read().splitlines()[2]
            expect(("+ side" in header) == bool(extra), f"results.md header {header!r}")
        expect(server.checked - before == T, f"evaluate.py ({name}): {server.checked - before} requests checked, expected {T}")
        requests += server.checked - before
    for bad, fragment in ((["nope"], "unknown extra camera"), (["workspace"], "main camera"), ("side", "not a list")):
        r = evaluate(server, meta | {"extra_cameras": bad}, os.path.join(d, "eval-bad"), T)
        expect(r.returncode == 1 and fragment in r.stderr, f"extra_cameras {bad!r}: exit {r.returncode}, {r.stderr[-300:]!r}")

    server.demo, server.connections = None, []
    r = evaluate(server, meta, os.path.join(d, "eval-episodes"), 3, episodes=2)
    expect(r.returncode == 0, f"evaluate.py (2 episodes) failed: {r.stderr[-1000:]}")
    episodes = [n for n in server.connections if n > 0]  # the parent's metadata connection makes no requests
    expect(episodes == [3, 3], f"2 episodes of 3 steps made connections of {episodes} requests, expected [3, 3]")
    json.dump({"problems": problems, "frames_compared": frames, "requests_checked": requests, "extra_cameras_attr": attrs,
               "requests_per_connection": episodes}, open(outp, "w"))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
