"""Test-only: reads TensorBoard event files with the `tensorboard` package's own event reader.

  read_tensorboard.py IN.json OUT.json   IN {"dir": RUN}  ->  OUT {tag: [[step, value], ...]}
"""
import json
import sys

from tensorboard.backend.event_processing.event_accumulator import EventAccumulator


def main(inp, outp):
    run = json.load(open(inp))["dir"]
    acc = EventAccumulator(run, size_guidance={"scalars": 0})
    acc.Reload()
    out = {tag: [[e.step, e.value] for e in acc.Scalars(tag)] for tag in acc.Tags()["scalars"]}
    json.dump(out, open(outp, "w"))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
