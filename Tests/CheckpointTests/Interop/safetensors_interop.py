"""Test-only bridge to Python's `safetensors` package (the reference implementation).

  safetensors_interop.py IN.json OUT.json
IN  {"mode": "read", "path": FILE}
      -> OUT {"metadata": {...}, "tensors": {name: {"dtype", "shape", "values": [float...]}}}
    {"mode": "write", "path": FILE, "metadata": {...}, "tensors": {name: {"dtype", "shape", "values"}}}
      -> writes FILE with safetensors.serialize_file; OUT {"ok": true}
BF16 has no numpy dtype, so it is converted here by bit manipulation (round to nearest even).
"""
import json
import sys

import numpy as np
from safetensors import TensorSpec, deserialize, serialize_file

NUMPY = {"F32": np.float32, "F16": np.float16, "F64": np.float64, "I64": np.int64, "I32": np.int32,
         "U8": np.uint8, "BOOL": np.bool_}
# Names TensorSpec takes for each header dtype.
SPEC_NAMES = {"F32": "float32", "F16": "float16", "BF16": "bfloat16", "F64": "float64", "I64": "int64",
              "I32": "int32", "U8": "uint8", "BOOL": "bool"}


def to_bf16(values):
    bits = np.asarray(values, dtype=np.float32).view(np.uint32).astype(np.uint64)
    rounded = (bits + 0x7FFF + ((bits >> 16) & 1)) >> 16
    return rounded.astype("<u2")


def from_bytes(dtype, data):
    if dtype == "BF16":
        return (np.frombuffer(data, dtype="<u2").astype(np.uint32) << 16).view(np.float32)
    return np.frombuffer(data, dtype=np.dtype(NUMPY[dtype]).newbyteorder("<"))


def main(inp, outp):
    spec = json.load(open(inp))
    if spec["mode"] == "read":
        raw = open(spec["path"], "rb").read()
        header_len = int.from_bytes(raw[:8], "little")
        metadata = json.loads(raw[8:8 + header_len]).get("__metadata__", {})
        tensors = {}
        for name, t in deserialize(raw):
            values = from_bytes(t["dtype"], bytes(t["data"]))
            entry = {"dtype": t["dtype"], "shape": list(t["shape"]), "values": values.astype(np.float64).tolist()}
            if values.dtype == np.float32:  # exact bits, immune to decimal round trips
                entry["bits"] = values.view(np.uint32).tolist()
            tensors[name] = entry
        json.dump({"metadata": metadata, "tensors": tensors}, open(outp, "w"))
    else:
        arrays, tensors = [], {}
        for name, t in spec["tensors"].items():
            if t["dtype"] == "BF16":
                array = to_bf16(t["values"])
            else:
                array = np.asarray(t["values"]).astype(np.dtype(NUMPY[t["dtype"]]).newbyteorder("<"))
            array = np.ascontiguousarray(array)
            arrays.append(array)  # keeps the buffer alive through serialize_file
            tensors[name] = TensorSpec(dtype=SPEC_NAMES[t["dtype"]], shape=t["shape"],
                                       data_ptr=array.ctypes.data, data_len=array.nbytes)
        serialize_file(tensors, spec["path"], metadata=spec.get("metadata"))
        json.dump({"ok": True}, open(outp, "w"))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
