#!/usr/bin/env python3
"""kiln vs ONNX Runtime 1.30 on the same model, threads, batch and input shapes.

For every model and thread count, runs `kiln bench --json` and the kit's ort_bench.js
(../shared/bench/peer) alternately, --rounds times, and reports the median of each side's
per-round median latencies and their ratio kiln/ORT (< 1: kiln is faster). With
--tp-batch B it also measures single-stream throughput at batch B on both sides. With
--load it reports kiln's engine load (and load + first inference) next to ORT's session
creation (and creation + median inference).

Usage: bench/compare_ort.sh [--threads 1,2] [--batch 1] [--rounds 2] [--tp-batch 8]
                            [--load] [--plan] [--json FILE] [--set default|zoo|all] [MODEL...]
Prints the CPU model, a table of ratios and per thread count their geometric mean.
MODEL: a benchmark model name (resnet50, mobilenet_v2, ..., ppocrv4_det, ...) or a path.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
KIT = os.environ.get("KILN_BENCH_KIT", os.path.join(ROOT, "..", "shared", "bench"))
CACHE = os.environ.get("KILN_BENCH_CACHE", os.path.expanduser("~/.cache/kiln-bench"))
KILN = os.environ.get("KILN", os.path.join(ROOT, "build", "kiln"))
DEFAULT_MODELS = ["resnet50", "mobilenet_v2", "squeezenet1_1", "googlenet", "transformer_encoder",
                  "ppocrv4_det", "ppocrv4_rec", "ppocr_mobile_v2_cls", "oww_hello_deepa"]
ZOO_MODELS = ["densenet121", "efficientnet_b0", "vit_b_16", "mobilenet_v3_large", "inception_v3", "alexnet",
              "regnet_x_400mf", "squeezenet1_0", "wide_resnet50_2", "lraspp_mobilenet_v3_large", "fcn_resnet50",
              "isnet_fp32"]


def cpu_name():
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "unknown CPU"


def available(name):
    return os.path.exists(name) or os.path.exists(os.path.join(CACHE, "models", name + ".onnx")) or \
        os.path.exists(os.path.join(CACHE, "real", name + ".onnx"))


def model_spec(name):
    """(path, ORT extra args, kiln extra args) for a benchmark model name or a file."""
    if os.path.exists(name):
        return name, [], []
    syn = os.path.join(CACHE, "models", name + ".onnx")
    if os.path.exists(syn):
        # Integer inputs (token ids) from the manifest's range, on both sides.
        try:
            m = json.load(open(os.path.join(CACHE, "models", "manifest.json")))["models"].get(name, {})
            r = (m.get("bench_input") or {}).get("int_range")
        except (OSError, ValueError):
            r = None
        if r:
            rng = f"{r[0]}:{r[1]}"
            return syn, ["--int-range", rng], ["--int-range", rng]
        return syn, [], []
    real_json = os.path.join(KIT, "models", "real_models.json")
    for m in json.load(open(real_json))["models"]:
        if m["name"] == name:
            bench = m.get("bench", [])
            ort, kiln = [], []
            i = 0
            while i < len(bench):
                if bench[i] == "--shape":
                    ort += ["--shape", bench[i + 1]]
                    kiln += ["--shapes", bench[i + 1]]
                    i += 2
                elif bench[i] == "--tp-batch":
                    i += 2  # set by this script
                else:
                    ort.append(bench[i])
                    i += 1
            return os.path.join(CACHE, "real", name + ".onnx"), ort, kiln
    sys.exit(f"compare_ort: no model '{name}' (not a file, not in {CACHE}/models or real_models.json)")


def run(cmd):
    r = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    if r.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed ({r.returncode}):\n{r.stderr[-2000:]}")
    return r.stdout


def kiln_bench(model, threads, batch, extra, iters, tmp):
    out = os.path.join(tmp, "kiln.json")
    cmd = [KILN, "bench", model, "--threads", str(threads), "--json", out, "-n", str(iters), "--warmup", "5"] + extra
    if batch:
        cmd += ["--batch", str(batch)]
    run(cmd)
    return json.load(open(out))


def ort_bench(model, threads, batch, extra, tp_batch, tmp, quick):
    out = os.path.join(tmp, "ort.json")
    timing = ["--runs", "20", "--min-time", "1", "--create-reps", "2"] if quick else \
             ["--runs", "30", "--min-time", "3", "--create-reps", "3"]
    cmd = ["node", os.path.join(KIT, "peer", "ort_bench.js"), model, "--threads", str(threads), "--batch", str(batch),
           "--tp-batch", str(tp_batch), "--tp-runs", "4", "--tp-min-time", "2", "--json", out] + timing + extra
    run(cmd)
    j = json.load(open(out))
    return j[0] if isinstance(j, list) else j


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("models", nargs="*")
    ap.add_argument("--set", choices=["default", "zoo", "all"], default="default",
                    help="without MODELs: the nine benchmark models, the zoo (+ IS-Net), or both")
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--batch", type=int, default=1)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--tp-batch", type=int, default=0, help="also compare throughput at this batch")
    ap.add_argument("--plan", action="store_true", help="kiln runs a plan built first (kiln build), not the .onnx")
    ap.add_argument("--load", action="store_true", help="report load + first inference")
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--json", help="write every measurement to FILE")
    a = ap.parse_args()
    if not a.models:
        a.models = {"default": DEFAULT_MODELS, "zoo": ZOO_MODELS, "all": DEFAULT_MODELS + ZOO_MODELS}[a.set]
        missing = [m for m in a.models if not available(m)]
        if missing:
            print("compare_ort: not in the cache, skipped: " + ", ".join(missing), file=sys.stderr)
        a.models = [m for m in a.models if available(m)]
    print(f"CPU: {cpu_name()} ({os.cpu_count()} cores)", file=sys.stderr)
    threads = [int(t) for t in a.threads.split(",")]
    iters = 20 if a.quick else 40
    rows, raw = [], []
    with tempfile.TemporaryDirectory() as tmp:
        for name in a.models:
            model, ort_extra, kiln_extra = model_spec(name)
            label = os.path.splitext(os.path.basename(model))[0]
            kiln_model = model
            if a.plan:
                kiln_model = os.path.join(tmp, label + ".plan")
                shapes = list(kiln_extra)
                run([KILN, "build", model, "-o", kiln_model] + shapes)
                kiln_extra = []
            for t in threads:
                k_lat, o_lat, k_tp, o_tp, k_load, o_load, k_open, o_open = [], [], [], [], [], [], [], []
                try:
                    for _ in range(a.rounds):
                        kj = kiln_bench(kiln_model, t, None if a.plan else a.batch, kiln_extra, iters, tmp)
                        oj = ort_bench(model, t, a.batch, ort_extra, a.tp_batch, tmp, a.quick)
                        k_lat.append(kj["latency_ms"]["median"])
                        o_lat.append(oj["latency"]["median_ms"])
                        k_load.append(kj["load_ms"] + kj["first_inference_ms"])
                        o_load.append(oj["create_ms"]["median"] + oj["latency"]["median_ms"])
                        k_open.append(kj["load_ms"])
                        o_open.append(oj["create_ms"]["median"])
                        raw.append({"model": label, "threads": t, "kiln": kj, "ort": oj})
                        if a.tp_batch:
                            kt = kiln_bench(kiln_model if not a.plan else model, t, a.tp_batch, kiln_extra, max(8, iters // 4), tmp)
                            k_tp.append(kt["throughput_per_s"])
                            o_tp.append((oj.get("throughput") or {}).get("inferences_per_s_median") or
                                        (oj.get("throughput") or {}).get("inferences_per_s") or float("nan"))
                except RuntimeError as e:
                    print(f"| {label} | {t} | error: {str(e).splitlines()[0][:120]} |", file=sys.stderr)
                    print(str(e), file=sys.stderr)
                    continue
                km, om = statistics.median(k_lat), statistics.median(o_lat)
                row = {"model": label, "threads": t, "batch": a.batch, "kiln_ms": km, "ort_ms": om, "ratio": km / om,
                       "kiln_rounds": k_lat, "ort_rounds": o_lat,
                       "kiln_load_first_ms": statistics.median(k_load), "ort_create_plus_median_ms": statistics.median(o_load),
                       "kiln_load_ms": statistics.median(k_open), "ort_create_ms": statistics.median(o_open)}
                if a.tp_batch:
                    row["kiln_tp"] = statistics.median(k_tp)
                    row["ort_tp"] = statistics.median(o_tp)
                rows.append(row)
                print(f"{label} threads={t}: kiln {km:.3f} ms, ORT {om:.3f} ms, kiln/ORT {km / om:.2f}", file=sys.stderr)
    hdr = "| model | threads | batch | kiln median ms | ORT median ms | kiln/ORT |"
    sep = "|---|---:|---:|---:|---:|---:|"
    if a.load:
        hdr += " kiln load ms | ORT create ms | ratio | kiln load+first ms | ORT create+median ms | ratio |"
        sep += "---:|---:|---:|---:|---:|---:|"
    if a.tp_batch:
        hdr += f" kiln inf/s @{a.tp_batch} | ORT inf/s @{a.tp_batch} | kiln/ORT |"
        sep += "---:|---:|---:|"
    print(hdr)
    print(sep)
    for r in rows:
        line = f"| {r['model']} | {r['threads']} | {r['batch']} | {r['kiln_ms']:.2f} | {r['ort_ms']:.2f} | {r['ratio']:.2f} |"
        if a.load:
            line += f" {r['kiln_load_ms']:.1f} | {r['ort_create_ms']:.1f} | {r['kiln_load_ms'] / r['ort_create_ms']:.2f} |"
            line += (f" {r['kiln_load_first_ms']:.1f} | {r['ort_create_plus_median_ms']:.1f} |"
                     f" {r['kiln_load_first_ms'] / r['ort_create_plus_median_ms']:.2f} |")
        if a.tp_batch:
            line += f" {r['kiln_tp']:.1f} | {r['ort_tp']:.1f} | {r['kiln_tp'] / r['ort_tp']:.2f} |"
        print(line)
    for t in threads:
        rs = [r["ratio"] for r in rows if r["threads"] == t]
        if rs:
            geo = statistics.geometric_mean(rs)
            print(f"\ngeometric mean kiln/ORT at {t} thread(s) over {len(rs)} models: {geo:.2f}; worst "
                  f"{max(rs):.2f} ({[r['model'] for r in rows if r['threads'] == t and r['ratio'] == max(rs)][0]}); CPU: {cpu_name()}")
    if a.json:
        json.dump({"cpu": cpu_name(), "rows": rows, "raw": raw}, open(a.json, "w"), indent=1)


if __name__ == "__main__":
    main()
