"""Test-only: writes episode files with h5py + hdf5plugin, and what numpy says about them.

  make_fixtures.py IN.json OUT.json    IN {"dir": D}
Writes into D: robomimic_{zstd,gzip,none}.hdf5 (3 demos; masks train=[demo_0, demo_1], valid=[demo_2]),
aloha.hdf5, and broken files; OUT holds expected values and numpy statistics over the train split.
"""
import json
import os
import sys

import h5py
import hdf5plugin
import numpy as np

H, W, A = 16, 12, 4
LENGTHS = [5, 9, 7]


def demo_arrays(i):
    rng = np.random.default_rng(100 + i)
    T = LENGTHS[i]
    return {
        "actions": rng.uniform(-1, 1, (T, A)).astype(np.float32),
        "agentview_rgb": rng.integers(0, 256, (T, H, W, 3), dtype=np.uint8),
        "ee_pos": rng.normal(0, 1, (T, 3)).astype(np.float32),
        "gripper_state": rng.uniform(0, 1, (T, 1)).astype(np.float32),
    }


def write_robomimic(path, compression, mutate=None):
    kwargs = {"none": {}, "gzip": {"compression": "gzip", "compression_opts": 4},
              "zstd": dict(hdf5plugin.Zstd(clevel=3))}[compression]
    with h5py.File(path, "w") as f:
        data = f.create_group("data")
        data.attrs["language_instruction"] = "push the puck to the goal"
        for i in range(len(LENGTHS)):
            arrays = demo_arrays(i)
            if mutate:
                mutate(i, arrays)
            g = data.create_group(f"demo_{i}")
            g.attrs["num_samples"] = len(arrays["actions"])
            g.create_dataset("actions", data=arrays["actions"])
            obs = g.create_group("obs")
            images = arrays["agentview_rgb"]
            obs.create_dataset("agentview_rgb", data=images, chunks=(min(4, max(len(images), 1)), H, W, 3) if len(images) else None, **kwargs)
            obs.create_dataset("ee_pos", data=arrays["ee_pos"])
            obs.create_dataset("gripper_state", data=arrays["gripper_state"])
        f.create_dataset("mask/train", data=np.array([b"demo_0", b"demo_1"]))
        f.create_dataset("mask/valid", data=np.array([b"demo_2"]))


def write_aloha(path):
    rng = np.random.default_rng(7)
    T = 6
    with h5py.File(path, "w") as f:
        f.attrs["sim"] = True
        f.create_dataset("action", data=rng.uniform(-1, 1, (T, 14)).astype(np.float32))
        f.create_dataset("observations/qpos", data=rng.normal(0, 1, (T, 14)).astype(np.float64))
        f.create_dataset("observations/images/top", data=rng.integers(0, 256, (T, H, W, 3), dtype=np.uint8),
                         chunks=(1, H, W, 3), **dict(hdf5plugin.Zstd()))


def main(inp, outp):
    d = json.load(open(inp))["dir"]
    for c in ["zstd", "gzip", "none"]:
        write_robomimic(os.path.join(d, f"robomimic_{c}.hdf5"), c)
    write_aloha(os.path.join(d, "aloha.hdf5"))

    def nan_in_demo_1(i, a):
        if i == 1:
            a["actions"][2, 1] = np.nan
    write_robomimic(os.path.join(d, "nan_actions.hdf5"), "none", nan_in_demo_1)

    def short_images(i, a):
        if i == 2:
            a["agentview_rgb"] = a["agentview_rgb"][:-1]
    write_robomimic(os.path.join(d, "length_mismatch.hdf5"), "none", short_images)

    def empty_demo(i, a):
        if i == 0:
            for k in a:
                a[k] = a[k][:0]
    write_robomimic(os.path.join(d, "empty_demo.hdf5"), "none", empty_demo)

    def float_images(i, a):
        a["agentview_rgb"] = a["agentview_rgb"].astype(np.float32)
    write_robomimic(os.path.join(d, "float_images.hdf5"), "none", float_images)

    def flat_actions(i, a):
        a["actions"] = a["actions"].reshape(-1)
    write_robomimic(os.path.join(d, "rank_actions.hdf5"), "none", flat_actions)

    write_robomimic(os.path.join(d, "missing_key.hdf5"), "none")
    with h5py.File(os.path.join(d, "missing_key.hdf5"), "a") as f:
        del f["data/demo_1/obs/ee_pos"]

    write_robomimic(os.path.join(d, "array_instruction.hdf5"), "none")
    with h5py.File(os.path.join(d, "array_instruction.hdf5"), "a") as f:
        f["data"].attrs["language_instruction"] = ["push the puck", "then stop"]

    with open(os.path.join(d, "robomimic_zstd.hdf5"), "rb") as f:
        whole = f.read()
    with open(os.path.join(d, "truncated.hdf5"), "wb") as f:
        f.write(whole[: len(whole) // 2])
    with open(os.path.join(d, "not_hdf5.hdf5"), "w") as f:
        f.write("this is not an HDF5 file\n")

    train = [demo_arrays(i) for i in (0, 1)]
    actions = np.concatenate([t["actions"] for t in train]).astype(np.float64)
    proprio = np.concatenate([np.concatenate([t["ee_pos"], t["gripper_state"]], axis=1) for t in train]).astype(np.float64)

    def stats(x):
        return {"mean": x.mean(0).tolist(), "std": x.std(0).tolist(), "min": x.min(0).tolist(), "max": x.max(0).tolist(),
                "q01": np.quantile(x, 0.01, axis=0).tolist(), "q99": np.quantile(x, 0.99, axis=0).tolist()}

    expected = {"demos": {f"demo_{i}": {k: v.ravel().astype(np.float64).tolist() for k, v in demo_arrays(i).items()}
                          for i in range(len(LENGTHS))},
                "stats": {"actions": stats(actions), "proprio": stats(proprio)}}
    with h5py.File(os.path.join(d, "aloha.hdf5"), "r") as f:
        expected["aloha"] = {"action": f["action"][()].ravel().tolist(), "qpos": f["observations/qpos"][()].ravel().tolist(),
                             "top": f["observations/images/top"][()].ravel().tolist()}
    json.dump(expected, open(outp, "w"))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
