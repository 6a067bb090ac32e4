#!/usr/bin/env python3
"""Drives `vla serve --replay FILE` with PyPI's openpi-client, unchanged, and checks the protocol.

    openpi_check.py PORT SERVER_PID REPLAY_FILE MAX_MESSAGE_BYTES
Exits non-zero with a message on the first failed check; prints "ok" at the end.
"""
import os
import sys
import urllib.error
import urllib.request

import h5py
import hdf5plugin  # noqa: F401  (registers the zstd filter the frames are stored with)
import msgpack
import numpy as np
import websockets.sync.client
from openpi_client import msgpack_numpy
from openpi_client.websocket_client_policy import WebsocketClientPolicy

port, pid, replay_file, max_bytes = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], int(sys.argv[4])
uri = f"ws://127.0.0.1:{port}"


def check(condition, message):
    if not condition:
        sys.exit(f"FAILED: {message}")


def expect_error(client, obs, fragment):
    try:
        client.infer(obs)
    except RuntimeError as e:
        check(fragment in str(e), f"error {str(e)!r} should mention {fragment!r}")
        return
    check(False, f"an observation with {fragment!r} wrong was accepted")


with h5py.File(replay_file) as f:
    instruction = f["data"].attrs["language_instruction"]
    # The server returns actions through the quantile normalisation every policy uses: values outside
    # [q01, q99] of the dataset come back clipped to it.
    all_actions = np.concatenate([f[f"data/{d}/actions"][:] for d in f["data"]]).astype(np.float64)
    q01, q99 = np.quantile(all_actions, 0.01, axis=0), np.quantile(all_actions, 0.99, axis=0)
    demo = f["data/demo_1"]
    frames, actions = demo["obs/agentview_rgb"][:], demo["actions"][:]
    states = np.concatenate([demo["obs/ee_pos"][:], demo["obs/gripper_state"][:]], axis=1).astype(np.float32)

client = WebsocketClientPolicy("127.0.0.1", port)
meta = client.get_server_metadata()
H = meta["action_horizon"]
check(meta["image_size"] == frames.shape[1] and meta["state_dim"] == 4 and meta["action_dim"] == 4, f"metadata {meta}")
check(meta["camera"] == "corner4", f"metadata camera {meta.get('camera')}")


def observation(t):
    return {"observation/image": frames[t], "observation/state": states[t], "prompt": instruction}


# Every frame maps back to its own step, and the chunk is the recorded one (past the end the last action repeats).
for t in range(0, len(frames), 3):
    reply = client.infer(observation(t))
    check(reply["actions"].shape == (H, 4) and reply["actions"].dtype == np.float32, f"actions {reply['actions'].shape} {reply['actions'].dtype}")
    check(reply["replay"]["step"] == t and reply["replay"]["image_mean_abs_diff"] == 0, f"frame {t} matched {reply['replay']}")
    expected = np.clip(actions[np.minimum(np.arange(t, t + H), len(actions) - 1)], q01, q99)
    check(np.abs(reply["actions"] - expected).max() < 1e-5, f"frame {t}: actions differ by {np.abs(reply['actions'] - expected).max()}")
    check(reply["server_timing"]["infer_ms"] >= 0, "server_timing.infer_ms")
# A float64 state is accepted (numpy's default dtype); the image flipped upside down matches another frame.
reply = client.infer({**observation(4), "observation/state": states[4].astype(np.float64)})
check(reply["replay"]["step"] == 4, "float64 state")
reply = client.infer({**observation(4), "observation/image": frames[4][::-1].copy()})
check(reply["replay"]["image_mean_abs_diff"] > 0, "a flipped image must not match its frame exactly")

# Malformed observations get an error reply naming the problem, and the same connection keeps serving.
good = observation(2)
expect_error(client, {**good, "observation/image": good["observation/image"].astype(np.float32)}, "must be uint8")
expect_error(client, {**good, "observation/image": good["observation/image"][:, :, :2].copy()}, "must be uint8")
expect_error(client, {**good, "observation/state": np.zeros(7, np.float32)}, "observation/state")
expect_error(client, {**good, "observation/state": np.array([np.nan, 0, 0, 0], np.float32)}, "finite")
expect_error(client, {k: v for k, v in good.items() if k != "prompt"}, "missing 'prompt'")
expect_error(client, {**good, "observation/wrist_image": good["observation/image"]}, "unexpected observation key")
expect_error(client, [1, 2, 3], "must be a msgpack map")
check(client.infer(good)["replay"]["step"] == 2, "serving after errors")

# Raw frames the client library would never send: garbage bytes, text, and a message over the size bound.
with websockets.sync.client.connect(uri, compression=None, max_size=None) as ws:
    ws.recv()  # metadata
    ws.send(b"\xc1 not msgpack")
    check("invalid msgpack" in ws.recv(), "garbage bytes")
    ws.send("hello")
    check("binary msgpack" in ws.recv(), "text frame")
    ws.send(msgpack_numpy.packb(good))
    check(msgpack_numpy.unpackb(ws.recv())["replay"]["step"] == 2, "raw valid request")
# A message over the size bound, whole (four times the bound, so most of it is still unread when the
# server refuses it) or in fragments each under the bound, is answered by close code 1009.
oversized = msgpack.packb({"prompt": "x" * (4 * max_bytes)})
fragments = [oversized[i:i + max_bytes // 4] for i in range(0, len(oversized), max_bytes // 4)]
for name, message in [("whole", oversized), ("fragmented", fragments)]:
    try:
        with websockets.sync.client.connect(uri, compression=None, max_size=None) as ws:
            ws.recv()
            ws.send(message)
            ws.recv()
        check(False, f"a {name} message over the size bound was answered")
    except websockets.exceptions.ConnectionClosed as e:
        check(e.rcvd is not None and e.rcvd.code == 1009, f"{name} oversized message should close with 1009 (message too big), got {e.rcvd}")

# Clients that vanish mid-request do not take the server down.
for _ in range(20):
    ws = websockets.sync.client.connect(uri, compression=None, max_size=None)
    ws.recv()
    ws.send(msgpack_numpy.packb(good))
    ws.socket.close()  # no close handshake, reply never read
check(os.path.exists(f"/proc/{pid}"), "server process died")
check(WebsocketClientPolicy("127.0.0.1", port).infer(good)["replay"]["step"] == 2, "a new client after abandoned requests")

with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=10) as r:
    check(r.status == 200 and r.read() == b"OK\n", "healthz")
try:
    urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=10)
    check(False, "plain HTTP to / should be refused")
except urllib.error.HTTPError as e:
    check(e.code == 426, f"plain HTTP to / answered {e.code}")
print("ok")
