#!/usr/bin/env python3
"""Converts between the measuring kit's io.json folders (../shared/bench/peer/README.md)
and the .npy files `kiln run` reads and writes.

  io_json.py to-npy IO_DIR OUT_DIR          inputs of IO_DIR -> OUT_DIR/input_<i>.npy (prints the paths)
  io_json.py from-npy MODEL NPY_DIR OUT_DIR kiln's NPY_DIR/<i>_<name>.npy -> OUT_DIR/io.json + .bin
"""
import glob
import json
import os
import sys

import numpy as np


def to_npy(io_dir, out_dir):
    os.makedirs(out_dir, exist_ok=True)
    meta = json.load(open(os.path.join(io_dir, "io.json")))
    for i, t in enumerate(meta["inputs"]):
        a = np.fromfile(os.path.join(io_dir, t["file"]), dtype=t["dtype"]).reshape(t["shape"])
        p = os.path.join(out_dir, f"input_{i}.npy")
        np.save(p, a)
        print(p)


def from_npy(model, npy_dir, out_dir):
    os.makedirs(out_dir, exist_ok=True)
    outs = []
    files = sorted(glob.glob(os.path.join(npy_dir, "*.npy")), key=lambda p: int(os.path.basename(p).split("_")[0]))
    for i, p in enumerate(files):
        a = np.load(p)
        name = os.path.basename(p)[len(str(i)) + 1:-4]
        f = f"output_{i}.bin"
        np.ascontiguousarray(a).tofile(os.path.join(out_dir, f))
        outs.append({"name": name, "dtype": str(a.dtype), "shape": list(a.shape), "file": f})
    json.dump({"producer": "kiln", "model": os.path.basename(model), "inputs": [], "outputs": outs},
              open(os.path.join(out_dir, "io.json"), "w"), indent=1)


if __name__ == "__main__":
    if sys.argv[1] == "to-npy":
        to_npy(sys.argv[2], sys.argv[3])
    else:
        from_npy(sys.argv[2], sys.argv[3], sys.argv[4])
