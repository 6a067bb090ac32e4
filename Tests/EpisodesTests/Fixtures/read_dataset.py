"""Test-only: reads one dataset with h5py + hdf5plugin.  IN {"path", "key"} -> OUT {"values", "shape", "filters"}"""
import json
import sys

import h5py
import hdf5plugin  # noqa: F401  (registers filter 32015)


def main(inp, outp):
    spec = json.load(open(inp))
    with h5py.File(spec["path"], "r") as f:
        d = f[spec["key"]]
        plist = d.id.get_create_plist()
        filters = [plist.get_filter(i)[0] for i in range(plist.get_nfilters())]
        json.dump({"values": d[()].ravel().tolist(), "shape": list(d.shape), "filters": filters}, open(outp, "w"))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
