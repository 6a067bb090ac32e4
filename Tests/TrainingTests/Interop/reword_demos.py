#!/usr/bin/env python3
"""Test fixture: copy an episode file and give each demo its own instruction (attr `language_instruction`,
which the Swift loader prefers to the file's), as the instruct scene's files have.

    python reword_demos.py IN.json OUT.json   # IN: {"source", "target", "instructions": [one per demo, in order]}
"""
import json
import shutil
import sys

import h5py


def main(inp, outp):
    spec = json.load(open(inp))
    shutil.copyfile(spec["source"], spec["target"])
    with h5py.File(spec["target"], "r+") as h:
        names = sorted(h["data"], key=lambda n: int(n.split("_")[-1]))
        for name, text in zip(names, spec["instructions"]):
            h[f"data/{name}"].attrs["language_instruction"] = text
    json.dump({"demos": len(names)}, open(outp, "w"))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
