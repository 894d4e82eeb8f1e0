"""Markdown table for bench/ort_optimized_counts.sh: ONNX nodes, ONNX Runtime's optimized graph and kiln's
layers per model. Reads WORK/MODEL/{source, ort_optimized.onnx, ort.log, kiln.json, kiln.log}.

Usage: /usr/bin/python3 bench/ort_optimized_counts.py WORK MODEL...
"""
import collections
import json
import os
import sys

import onnx

CONV = ("Conv", "FusedConv")
MATMUL = ("MatMul", "FusedMatMul", "Gemm", "FusedGemm")
# Short prefixes for ORT's internal op domains, so "nchwc.ReorderInput" and a standard op stay apart.
DOMAINS = {"": "", "ai.onnx": "", "com.microsoft": "ms.", "com.microsoft.nchwc": "nchwc."}


def op_counts(path):
    # Node counts only: skip the weights (ORT's file may point at external data it never wrote).
    graph = onnx.load(path, load_external_data=False).graph
    return collections.Counter((n.domain, n.op_type) for n in graph.node)


def count(ops, names):
    return sum(c for (_, op), c in ops.items() if op in names)


def last_line(path):
    try:
        with open(path) as f:
            lines = [l.strip() for l in f if l.strip()]
        return lines[-1][:80] if lines else "?"
    except OSError:
        return "?"


def row(work, model):
    d = os.path.join(work, model)
    with open(os.path.join(d, "source")) as f:
        source = f.read().strip()
    onnx_nodes = sum(op_counts(source).values())
    cells = [model, str(onnx_nodes)]
    ort_file = os.path.join(d, "ort_optimized.onnx")
    other = ""
    if os.path.exists(ort_file):
        ops = op_counts(ort_file)
        cells += [str(sum(ops.values())), str(count(ops, CONV)), str(count(ops, MATMUL)), str(count(ops, ("Concat",)))]
        rest = collections.Counter({DOMAINS.get(dom, dom + ".") + op: c for (dom, op), c in ops.items()
                                    if op not in CONV + MATMUL + ("Concat",)})
        other = ", ".join(f"{op} {c}" for op, c in rest.most_common(4))
    else:
        cells += ["ORT failed: " + last_line(os.path.join(d, "ort.log")).replace("|", "/"), "", "", ""]
    try:
        with open(os.path.join(d, "kiln.json")) as f:
            j = json.load(f)
        # kiln ops read "Conv+Add+Relu": the first op is the layer's kernel, the rest its fused epilogue.
        kernels = collections.Counter(l["op"].split("+")[0] for l in j["layer_list"] if l["kernel"])
        cells += [str(j["layers"]), str(j["kernels"]),
                  f'{sum(kernels[o] for o in CONV)} / {sum(kernels[o] for o in MATMUL)} / {kernels["Concat"]}']
    except (OSError, ValueError, KeyError):
        cells += ["kiln failed: " + last_line(os.path.join(d, "kiln.log")).replace("|", "/"), "", ""]
    cells.append(other)
    return "| " + " | ".join(cells) + " |"


def main():
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    work, models = sys.argv[1], sys.argv[2:]
    print("| model | ONNX nodes | ORT optimized nodes | ORT Conv+FusedConv | ORT MatMul+FusedMatMul+Gemm+FusedGemm | ORT Concat "
          "| kiln layers | kiln kernels/inference | kiln kernels Conv / MatMul+Gemm / Concat | other ORT ops (top 4) |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---|")
    for m in models:
        print(row(work, m))


if __name__ == "__main__":
    main()
