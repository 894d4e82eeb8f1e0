"""ONNX backend conformance through the Python module: a sample of 100 cases.

kiln.load(model.onnx).run({name: value}) with values read from the test data's input_K.pb
(arrays, lists of arrays for sequences, None for empty optionals), compared with
output_K.pb as onnx.backend.test does (rtol 1e-3, atol 1e-7, NaN equals NaN, strings
exactly). The sample takes every case with a sequence, optional, string or 16/32/64-bit
unsigned / int16 / bfloat16 value (the types this path must carry), then fills up to 100 with
an even stride over the rest of tests/conformance/expected_cli_pass.txt.
Needs Debian's python3-onnx; skipped without it or without the test data.
"""
import glob
import os
import re
import sys
import unittest

import numpy as np

import kiln

ROOT = os.environ.get("KILN_SOURCE_DIR") or os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")

try:
    import onnx
    # The reading and comparing rules of the `kiln run` conformance driver, shared.
    sys.path.insert(0, os.path.join(ROOT, "tests", "conformance"))
    from cli_conformance import compare as _compare, read_expected as read_value
except ImportError:  # pragma: no cover
    onnx = None


def compare(got, want, what):
    return _compare(got, want, 1e-3, 1e-7, what)


DATA = os.environ.get("ONNX_TESTDATA", "/usr/share/libonnx-testdata/data")
SAMPLE = 100
SPECIAL = {onnx.TensorProto.UINT16, onnx.TensorProto.UINT32, onnx.TensorProto.UINT64, onnx.TensorProto.INT16,
           onnx.TensorProto.STRING, onnx.TensorProto.BFLOAT16} if onnx else set()


def elem_types(type_proto):
    which = type_proto.WhichOneof("value")
    if which == "tensor_type":
        return [type_proto.tensor_type.elem_type]
    if which == "sequence_type":
        return ["seq"] + elem_types(type_proto.sequence_type.elem_type)
    if which == "optional_type":
        return ["opt"] + elem_types(type_proto.optional_type.elem_type)
    return ["?"]


def declared_shapes_match(model, ds):
    """The test data's tensors have the declared static shapes (ONNX's data breaks this in a
    few cases, which `kiln run` builds for but an engine loaded without shapes refuses)."""
    for k, vi in enumerate(i for i in model.graph.input if i.name not in {t.name for t in model.graph.initializer}):
        path = os.path.join(ds, f"input_{k}.pb")
        if not os.path.exists(path) or vi.type.WhichOneof("value") != "tensor_type":
            continue
        dims = [d.dim_value if d.HasField("dim_value") else -1 for d in vi.type.tensor_type.shape.dim]
        got = read_value(path, vi.type).shape
        if vi.type.tensor_type.HasField("shape") and (len(dims) != len(got) or any(d not in (-1, g) for d, g in zip(dims, got))):
            return False
    return True


def sample_cases():
    names = [l.strip() for l in open(os.path.join(ROOT, "tests", "conformance", "expected_cli_pass.txt"))
             if l.strip() and not l.startswith("#")]
    special, rest = [], []
    for n in names:
        d = os.path.join(DATA, n)
        model = onnx.load(os.path.join(d, "model.onnx"), load_external_data=False)
        sets = sorted(glob.glob(os.path.join(d, "test_data_set_*")))
        if not sets or not all(declared_shapes_match(model, ds) for ds in sets):
            continue
        types = [t for v in list(model.graph.input) + list(model.graph.output) for t in elem_types(v.type)]
        (special if any(t in ("seq", "opt") or t in SPECIAL for t in types) else rest).append(n)
    n_rest = max(0, SAMPLE - len(special))
    step = max(1, len(rest) // max(1, n_rest))
    return (special + rest[::step])[:SAMPLE] if len(special) < SAMPLE else special[:SAMPLE]


@unittest.skipUnless(onnx is not None and os.path.isdir(os.path.join(DATA, "node")), "needs python3-onnx and libonnx-testdata")
class ConformanceSampleTest(unittest.TestCase):
    def test_sample_of_100_through_the_python_module(self):
        cases = sample_cases()
        self.assertEqual(len(cases), SAMPLE)
        failures = []
        for name in cases:
            d = os.path.join(DATA, name)
            model = onnx.load(os.path.join(d, "model.onnx"), load_external_data=False)
            inits = {t.name for t in model.graph.initializer}
            graph_inputs = [i for i in model.graph.input if i.name not in inits]
            try:
                for ds in sorted(glob.glob(os.path.join(d, "test_data_set_*"))):
                    files = sorted(glob.glob(os.path.join(ds, "input_*.pb")), key=lambda p: int(re.findall(r"\d+", os.path.basename(p))[0]))
                    feeds = {graph_inputs[k].name: read_value(f, graph_inputs[k].type) for k, f in enumerate(files)}
                    # Built for the data's shapes (dynamic dimensions would otherwise be 1).
                    shapes = {n: list(v.shape) for n, v in feeds.items() if isinstance(v, np.ndarray)}
                    engine = kiln.load(os.path.join(d, "model.onnx"), shapes=shapes)
                    out = engine.run(feeds)
                    for k, o in enumerate(model.graph.output):
                        want_path = os.path.join(ds, f"output_{k}.pb")
                        if os.path.exists(want_path):
                            err = compare(out[o.name], read_value(want_path, o.type), f"{os.path.basename(ds)} '{o.name}'")
                            if err:
                                raise AssertionError(err)
            except Exception as e:  # every case reported, not only the first
                failures.append(f"{name}: {type(e).__name__}: {e}")
        self.assertEqual(failures, [], "\n".join(failures))


if __name__ == "__main__":
    unittest.main()
