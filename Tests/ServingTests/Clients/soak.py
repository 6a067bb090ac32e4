#!/usr/bin/env python3
"""Soak: N requests through openpi-client against `vla serve --replay FILE`; the server's resident
memory after warm-up and at the end, and client-side latency percentiles, as JSON on stdout.

    soak.py PORT SERVER_PID REPLAY_FILE N WARMUP
"""
import json
import sys
import time

import h5py
import hdf5plugin  # noqa: F401
import numpy as np
from openpi_client.websocket_client_policy import WebsocketClientPolicy

port, pid, replay_file, n, warmup = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], int(sys.argv[4]), int(sys.argv[5])


def rss_kib():
    with open(f"/proc/{pid}/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmRSS:"))


with h5py.File(replay_file) as f:
    instruction = f["data"].attrs["language_instruction"]
    demo = f["data/demo_0"]
    frames = demo["obs/agentview_rgb"][:]
    states = np.concatenate([demo["obs/ee_pos"][:], demo["obs/gripper_state"][:]], axis=1).astype(np.float32)

client = WebsocketClientPolicy("127.0.0.1", port)
latencies, infer = [], []
for i in range(n):
    t = i % len(frames)
    start = time.perf_counter()
    reply = client.infer({"observation/image": frames[t], "observation/state": states[t], "prompt": instruction})
    latencies.append((time.perf_counter() - start) * 1000)
    infer.append(reply["server_timing"]["infer_ms"])
    if reply["replay"]["step"] != t:
        sys.exit(f"request {i}: frame {t} matched step {reply['replay']['step']}")
    if i + 1 == warmup:
        rss_warm = rss_kib()
rss_end = rss_kib()
after = np.array(latencies[warmup:])
print(json.dumps({"requests": n, "rss_after_warmup_kib": rss_warm, "rss_end_kib": rss_end,
                  "latency_p50_ms": float(np.percentile(after, 50)), "latency_p95_ms": float(np.percentile(after, 95)),
                  "latency_max_ms": float(after.max()), "server_infer_p50_ms": float(np.percentile(infer[warmup:], 50))}))
