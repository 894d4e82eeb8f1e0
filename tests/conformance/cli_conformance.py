#!/usr/bin/python3
"""ONNX backend conformance through the public path: `kiln run` (cpu backend, optimizer on).

Runs every test case of ONNX's backend test data (Debian libonnx-testdata: node,
pytorch-converted, pytorch-operator, simple) the way a user would:

    kiln run model.onnx input_0.pb input_1.pb ... --output-dir OUT

then compares OUT/<k>_<name>.npy|.pb with output_<k>.pb like onnx.backend.test does: same
dtype, same shape, |got - want| <= atol + rtol * |want| (rtol 1e-3, atol 1e-7), NaN equals
NaN, strings exactly. A case passes when every data set passes. Each run has a time limit.

    tests/conformance/cli_conformance.py --kiln build/kiln [--expect expected_cli_pass.txt]

--expect FILE: fails (exit 1) when a test listed there does not pass (a regression).
--write-expect FILE: writes the passing tests. Needs python3-onnx and python3-numpy.
"""
import argparse
import concurrent.futures
import glob
import json
import os
import re
import subprocess
import sys
import tempfile

import numpy as np
import onnx
from onnx import numpy_helper

SUITES = ["node", "pytorch-converted", "pytorch-operator", "simple"]


def read_expected(path, type_proto):
    """An expected output file as a Python value: ndarray, list of ndarrays, or None."""
    with open(path, "rb") as f:
        data = f.read()
    which = type_proto.WhichOneof("value")
    if which == "sequence_type":
        p = onnx.SequenceProto()
        p.ParseFromString(data)
        return [numpy_helper.to_array(t) for t in p.tensor_values]
    if which == "optional_type":
        p = onnx.OptionalProto()
        p.ParseFromString(data)
        if p.HasField("tensor_value"):
            return numpy_helper.to_array(p.tensor_value)
        if p.HasField("sequence_value"):
            return [numpy_helper.to_array(t) for t in p.sequence_value.tensor_values]
        return None
    p = onnx.TensorProto()
    p.ParseFromString(data)
    return numpy_helper.to_array(p)


def read_got(outdir, k, type_proto):
    """kiln run's output k: <k>_<name>.npy (a tensor) or .pb (the proto its type calls for)."""
    files = [f for f in os.listdir(outdir) if f.startswith(f"{k}_")]
    if len(files) != 1:
        raise ValueError(f"output {k}: expected one file {k}_<name>.npy|.pb, found {files}")
    path = os.path.join(outdir, files[0])
    if path.endswith(".npy"):
        return np.load(path, allow_pickle=False)
    return read_expected(path, type_proto)


def as_text(a):
    return np.vectorize(lambda s: s.decode("utf-8", "surrogateescape") if isinstance(s, bytes) else str(s), otypes=[object])(a)


def compare(got, want, rtol, atol, what):
    if want is None or got is None:
        return None if (want is None) == (got is None) else f"{what}: {'none' if got is None else 'a value'} != expected {'none' if want is None else 'a value'}"
    if isinstance(want, list) or isinstance(got, list):
        if not (isinstance(want, list) and isinstance(got, list)):
            return f"{what}: sequence / tensor mismatch"
        if len(got) != len(want):
            return f"{what}: {len(got)} elements != expected {len(want)}"
        for i, (g, w) in enumerate(zip(got, want)):
            err = compare(g, w, rtol, atol, f"{what}[{i}]")
            if err:
                return err
        return None
    got, want = np.asarray(got), np.asarray(want)
    if want.dtype == object or want.dtype.kind in "US":
        if got.dtype.kind not in "OUS":
            return f"{what}: dtype {got.dtype} != expected strings"
        if got.shape != want.shape:
            return f"{what}: shape {got.shape} != expected {want.shape}"
        return None if np.array_equal(as_text(got), as_text(want)) else f"{what}: strings differ"
    if got.dtype != want.dtype:
        return f"{what}: dtype {got.dtype} != expected {want.dtype}"
    if got.shape != want.shape:
        return f"{what}: shape {got.shape} != expected {want.shape}"
    if want.dtype.kind in "fc":
        ok = np.isclose(got, want, rtol=rtol, atol=atol, equal_nan=True)
        if not ok.all():
            bad = np.argwhere(~ok)[0]
            return f"{what}: {int((~ok).sum())} values differ, first at {tuple(bad)}: {got[tuple(bad)]} != {want[tuple(bad)]}"
        return None
    return None if np.array_equal(got, want) else f"{what}: values differ"


def run_case(kiln, case_dir, rtol, atol, timeout):
    model_path = os.path.join(case_dir, "model.onnx")
    try:
        model = onnx.load(model_path, load_external_data=False)
    except Exception as e:  # the model itself is bad: kiln must say so too, but it cannot pass
        return "error", f"onnx cannot load the model: {e}"
    outputs = list(model.graph.output)
    sets = sorted(glob.glob(os.path.join(case_dir, "test_data_set_*")))
    if not sets:
        return "error", "no test data"
    for ds in sets:
        ins = sorted(glob.glob(os.path.join(ds, "input_*.pb")), key=lambda p: int(re.findall(r"\d+", os.path.basename(p))[0]))
        with tempfile.TemporaryDirectory() as out:
            cmd = [kiln, "run", model_path, *ins, "--output-dir", out]
            try:
                r = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
            except subprocess.TimeoutExpired:
                return "timeout", f"over {timeout} s"
            if r.returncode < 0 or r.returncode > 1:
                return "crash", f"exit {r.returncode}: {r.stderr.strip()[-300:]}"
            if r.returncode != 0:
                msg = r.stderr.strip().splitlines()
                return "error", (msg[-1] if msg else "exit 1")[:300]
            for k, o in enumerate(outputs):
                want_path = os.path.join(ds, f"output_{k}.pb")
                if not os.path.exists(want_path):
                    continue
                try:
                    want = read_expected(want_path, o.type)
                    got = read_got(out, k, o.type)
                except Exception as e:
                    return "mismatch", str(e)[:300]
                err = compare(got, want, rtol, atol, f"{os.path.basename(ds)} output '{o.name}'")
                if err:
                    return "mismatch", err[:300]
    return "pass", ""


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--kiln", default="build/kiln")
    ap.add_argument("--data", default=os.environ.get("ONNX_TESTDATA", "/usr/share/libonnx-testdata/data"))
    ap.add_argument("--suites", default=",".join(SUITES))
    ap.add_argument("--filter", default="")
    ap.add_argument("--jobs", type=int, default=os.cpu_count() or 2)
    ap.add_argument("--timeout", type=int, default=120)
    ap.add_argument("--rtol", type=float, default=1e-3)
    ap.add_argument("--atol", type=float, default=1e-7)
    ap.add_argument("--expect")
    ap.add_argument("--write-expect")
    ap.add_argument("--json")
    ap.add_argument("-v", "--verbose", action="store_true")
    a = ap.parse_args()
    kiln = os.path.abspath(a.kiln)
    cases = []
    for suite in a.suites.split(","):
        for d in sorted(glob.glob(os.path.join(a.data, suite, "*"))):
            name = f"{suite}/{os.path.basename(d)}"
            if os.path.isfile(os.path.join(d, "model.onnx")) and re.search(a.filter, name):
                cases.append((name, d))
    results = {}
    with concurrent.futures.ThreadPoolExecutor(max_workers=a.jobs) as pool:
        futures = {pool.submit(run_case, kiln, d, a.rtol, a.atol, a.timeout): name for name, d in cases}
        for f in concurrent.futures.as_completed(futures):
            results[futures[f]] = f.result()
    by_suite = {}
    for name, (status, _) in results.items():
        s = by_suite.setdefault(name.split("/")[0], {})
        s[status] = s.get(status, 0) + 1
    print(f"kiln run conformance ({a.kiln}, cpu backend, optimizer on; rtol {a.rtol}, atol {a.atol})")
    print(f"{'suite':20} {'tests':>6} {'pass':>6} {'mismatch':>9} {'error':>6} {'crash':>6} {'timeout':>8}")
    total = {}
    for suite in a.suites.split(","):
        s = by_suite.get(suite, {})
        n = sum(s.values())
        for k, v in s.items():
            total[k] = total.get(k, 0) + v
        print(f"{suite:20} {n:6} {s.get('pass', 0):6} {s.get('mismatch', 0):9} {s.get('error', 0):6} {s.get('crash', 0):6} {s.get('timeout', 0):8}")
    print(f"{'all':20} {sum(total.values()):6} {total.get('pass', 0):6} {total.get('mismatch', 0):9} "
          f"{total.get('error', 0):6} {total.get('crash', 0):6} {total.get('timeout', 0):8}")
    for name in sorted(results):
        status, detail = results[name]
        if status != "pass" or a.verbose:
            print(f"  {status:9} {name}: {detail}")
    if a.json:
        with open(a.json, "w") as f:
            json.dump({n: {"status": s, "detail": d} for n, (s, d) in sorted(results.items())}, f, indent=1)
    if a.write_expect:
        with open(a.write_expect, "w") as f:
            f.write("# Tests that pass through `kiln run` (tests/conformance/cli_conformance.py --write-expect).\n")
            for n in sorted(results):
                if results[n][0] == "pass":
                    f.write(n + "\n")
    rc = 0
    if any(s == "crash" for s, _ in results.values()):
        print("FAIL: kiln crashed on some test (a crash is never an acceptable answer)")
        rc = 1
    if a.expect:
        want = [l.strip() for l in open(a.expect) if l.strip() and not l.startswith("#")]
        lost = [n for n in want if n in results and results[n][0] != "pass"]
        for n in lost:
            print(f"REGRESSION: {n}: {results[n][0]}: {results[n][1]}")
        if lost:
            rc = 1
    return rc


if __name__ == "__main__":
    sys.exit(main())
