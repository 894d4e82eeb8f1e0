"""Tests of the Python module `kiln` (python/kiln_module.cc) on the demo model.

Run by ctest (label python) with PYTHONPATH at the built module; by hand:
  PYTHONPATH=build/python /usr/bin/python3 -m unittest discover -s tests/python -v
Environment: KILN_SOURCE_DIR (the repository, default ../..), KILN_CLI (the kiln command; the
comparison with `kiln run` is skipped without it).
"""
import gc
import os
import subprocess
import tempfile
import threading
import unittest

import numpy as np

import kiln

ROOT = os.environ.get("KILN_SOURCE_DIR") or os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")
MODEL = os.path.join(ROOT, "models", "tiny_cnn.onnx")
X = np.load(os.path.join(ROOT, "models", "tiny_cnn_input.npy"))  # float32 [1, 3, 32, 32]
EXPECTED = np.load(os.path.join(ROOT, "models", "tiny_cnn_expected.npy"))  # PyTorch's probs [1, 10]
KILN_CLI = os.environ.get("KILN_CLI")


def assert_close(a, b):
    np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)


class EngineTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.engine = kiln.load(MODEL)

    def test_inputs_outputs(self):
        self.assertEqual(self.engine.inputs, [("input", np.dtype(np.float32), (1, 3, 32, 32))])
        self.assertEqual(self.engine.outputs, [("probs", np.dtype(np.float32), (1, 10))])
        self.assertIn("input: float32 [1,3,32,32]", repr(self.engine))
        self.assertRegex(kiln.__version__, r"^\d+\.\d+\.\d+$")

    def test_run_matches_pytorch(self):
        out = self.engine.run({"input": X})
        self.assertEqual(list(out), ["probs"])
        self.assertEqual(out["probs"].dtype, np.float32)
        self.assertEqual(out["probs"].shape, (1, 10))
        assert_close(out["probs"], EXPECTED)

    def test_dynamic_batch_profile(self):
        engine = kiln.load(MODEL, profiles=[{"input": ((1, 3, 32, 32), (2, 3, 32, 32), (4, 3, 32, 32))}])
        for batch in (1, 3, 4):
            out = engine.run({"input": np.concatenate([X] * batch)})["probs"]
            self.assertEqual(out.shape, (batch, 10))
            assert_close(out, np.concatenate([EXPECTED] * batch))
        with self.assertRaises(Exception) as cm:
            engine.run({"input": np.concatenate([X] * 5)})
        self.assertIn("outside every profile", str(cm.exception))

    def test_backend_precision_threads(self):
        ref = kiln.load(MODEL, backend="ref", threads=1).run({"input": X})["probs"]
        assert_close(ref, EXPECTED)
        one = kiln.load(MODEL, threads=1).run({"input": X})["probs"]
        assert_close(one, EXPECTED)
        for bad in ("fp16", "int3"):
            with self.assertRaises(Exception) as cm:
                kiln.load(MODEL, precision=bad)
            self.assertIn(bad, str(cm.exception))
        with self.assertRaises(Exception):
            kiln.load(MODEL, backend="tpu")

    def test_int8_build_with_calibration_and_cache(self):
        rng = np.random.default_rng(3)
        batches = [{"input": rng.normal(size=(1, 3, 32, 32)).astype(np.float32)} for _ in range(8)]
        with tempfile.TemporaryDirectory() as d:
            plan, cache = os.path.join(d, "m.plan"), os.path.join(d, "m.cache")
            e = kiln.build(MODEL, plan, precision="int8", calibration=iter(batches), calibration_cache=cache, threads=1)
            got = e.run({"input": X})["probs"]
            self.assertEqual(got.shape, EXPECTED.shape)
            self.assertLess(float(np.abs(got - EXPECTED).max()), 0.05)  # softmax probabilities
            with open(cache) as f:
                self.assertTrue(f.readline().startswith("# kiln calibration cache 1"))
            again = kiln.build(MODEL, os.path.join(d, "c.plan"), precision="int8", calibration_cache=cache, threads=1)
            np.testing.assert_array_equal(again.run({"input": X})["probs"], got)
            self.assertTrue(np.array_equal(kiln.load(plan).run({"input": X})["probs"], got))
            with self.assertRaises(Exception) as cm:
                kiln.build(MODEL, os.path.join(d, "x.plan"), precision="int8", calibration=[[1, 2]])
            self.assertIn("dict", str(cm.exception))
            with self.assertRaises(Exception) as cm:
                kiln.build(MODEL, os.path.join(d, "x.plan"), precision="int8")
            self.assertIn("calibration", str(cm.exception))
            self.assertFalse(os.path.exists(os.path.join(d, "x.plan")))

    @unittest.skipUnless(KILN_CLI, "KILN_CLI not set")
    def test_run_matches_cli(self):
        for flags, optimize in (([], False), (["-O"], True)):
            with self.subTest(flags=flags), tempfile.TemporaryDirectory() as d:
                x = os.path.join(d, "x.npy")
                np.save(x, X)
                subprocess.run([KILN_CLI, "run", *flags, MODEL, x, "--output-dir", d], check=True, capture_output=True)
                want = np.load(os.path.join(d, "0_probs.npy"))
                got = kiln.load(MODEL, optimize=optimize).run({"input": X})["probs"]
                assert_close(got, want)

    def test_dynamic_batch(self):
        engine = kiln.load(MODEL, shapes={"input": (4, 3, 32, 32)})
        self.assertEqual(engine.inputs[0][2], (4, 3, 32, 32))
        xs = np.concatenate([X, X * 0.5, X * 2, -X])
        probs = engine.run({"input": xs})["probs"]
        self.assertEqual(probs.shape, (4, 10))
        for i in range(4):
            assert_close(probs[i:i + 1], self.engine.run({"input": xs[i:i + 1]})["probs"])
        # The batch-parallel schedule (forced on, and off) gives the same results.
        for mode in ("on", "off"):
            e = kiln.load(MODEL, shapes={"input": (4, 3, 32, 32)}, threads=2, batch_parallel=mode)
            assert_close(e.run({"input": xs})["probs"], probs)
        with self.assertRaises(Exception) as cm:
            kiln.load(MODEL, batch_parallel="sometimes")
        self.assertIn("sometimes", str(cm.exception))

    def test_build_save_load_round_trip(self):
        with tempfile.TemporaryDirectory() as d:
            for optimize in (True, False):
                with self.subTest(optimize=optimize):
                    plan = os.path.join(d, f"tiny_cnn_{optimize}.plan")
                    built = kiln.build(MODEL, plan, optimize=optimize)
                    self.assertTrue(os.path.getsize(plan) > 0)
                    loaded = kiln.load(plan)
                    self.assertEqual(loaded.inputs, built.inputs)
                    self.assertEqual(loaded.outputs, built.outputs)
                    want = built.run({"input": X})["probs"]
                    np.testing.assert_array_equal(loaded.run({"input": X})["probs"], want)
                    assert_close(want, EXPECTED)
            plan = os.path.join(d, "b8.plan")
            kiln.build(MODEL, plan, shapes={"input": (8, 3, 32, 32)})
            self.assertEqual(kiln.load(plan).inputs[0][2], (8, 3, 32, 32))
            self.engine.save(os.path.join(d, "saved.plan"))
            np.testing.assert_array_equal(kiln.load(os.path.join(d, "saved.plan")).run({"input": X})["probs"],
                                          self.engine.run({"input": X})["probs"])

    def test_input_conversions(self):
        want = self.engine.run({"input": X})["probs"]
        np.testing.assert_array_equal(self.engine.run({"input": np.asfortranarray(X)})["probs"], want)
        strided = np.repeat(X, 2, axis=3)[..., ::2]  # a non-contiguous view
        self.assertFalse(strided.flags.c_contiguous)
        np.testing.assert_array_equal(self.engine.run({"input": strided})["probs"], want)
        assert_close(self.engine.run({"input": X.astype(np.float64)})["probs"], want)  # same kind: cast
        np.testing.assert_array_equal(self.engine.run({"input": X.astype(">f4")})["probs"], want)
        readonly = X.copy()
        readonly.flags.writeable = False
        np.testing.assert_array_equal(self.engine.run({"input": readonly})["probs"], want)

    def test_bad_inputs(self):
        with self.assertRaisesRegex(KeyError, "no input 'x'"):
            self.engine.run({"x": X})
        with self.assertRaisesRegex(TypeError, "input 'input' must be float32, got int32"):
            self.engine.run({"input": X.astype(np.int32)})
        with self.assertRaisesRegex(TypeError, "input 'input' must be float32, got bool"):
            self.engine.run({"input": X > 0})
        with self.assertRaisesRegex(ValueError, r"input 'input' must have shape \[1,3,32,32\], got \[1,3,16,16\]"):
            self.engine.run({"input": np.zeros((1, 3, 16, 16), np.float32)})
        with self.assertRaisesRegex(ValueError, "must have shape"):
            self.engine.run({"input": X[0]})
        with self.assertRaisesRegex(RuntimeError, "input 'input' is not set"):
            self.engine.run({})
        with self.assertRaises(TypeError):
            self.engine.run({1: X})
        ctx = self.engine.create_context()
        with self.assertRaises(IndexError):
            ctx.set_input(1, X)
        with self.assertRaisesRegex(RuntimeError, "call Run"):
            ctx.output(0)
        ctx.set_input(0, X)
        ctx.run()
        with self.assertRaisesRegex(KeyError, "no output 'logits'"):
            ctx.output("logits")
        with self.assertRaises(IndexError):
            ctx.output(1)

    def test_bad_models(self):
        with tempfile.TemporaryDirectory() as d:
            with self.assertRaisesRegex(OSError, "nope.onnx: cannot open"):
                kiln.load(os.path.join(d, "nope.onnx"))
            junk = os.path.join(d, "junk.onnx")
            with open(junk, "w") as f:
                f.write("hello world, not onnx")
            with self.assertRaisesRegex(ValueError, "not a valid ONNX model"):
                kiln.load(junk)
            with self.assertRaisesRegex(ValueError, "not a valid ONNX model"):
                kiln.build(junk, os.path.join(d, "junk.plan"))
            self.assertFalse(os.path.exists(os.path.join(d, "junk.plan")))

    def test_strict(self):
        kiln.load(MODEL, strict=True)  # every layer of the demo model has a fast kernel
        import onnx
        from onnx import TensorProto, helper
        g = helper.make_graph([helper.make_node("Erf", ["x"], ["y"], name="lonely_erf")], "g",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [4, 64])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [4, 64])])
        with tempfile.TemporaryDirectory() as d:
            path = os.path.join(d, "erf.onnx")
            onnx.save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)]), path)
            e = kiln.load(path)  # runs, on the reference kernel
            x = np.linspace(-2, 2, 256, dtype=np.float32).reshape(4, 64)
            out = e.run({"x": x})
            np.testing.assert_allclose(out["y"], np.vectorize(__import__("math").erf)(x), rtol=1e-5, atol=1e-6)
            with self.assertRaisesRegex(RuntimeError, "strict mode[^$]*lonely_erf \\(Erf\\)"):
                kiln.load(path, strict=True)

    def test_context_reads_bound_array_in_place(self):
        # A C-contiguous float32 array is bound without a copy: changing it changes the next run.
        ctx = self.engine.create_context()
        x = X.copy()
        ctx.set_input("input", x)
        ctx.run()
        first = ctx.output("probs")
        x *= 2
        ctx.run()
        np.testing.assert_array_equal(ctx.output(0), self.engine.run({"input": X * 2})["probs"])
        # A float64 array is converted, so the context holds its own float32 copy.
        x64 = X.astype(np.float64)
        ctx.set_input(0, x64)
        del x64
        gc.collect()
        ctx.run()
        np.testing.assert_array_equal(ctx.output("probs"), first)

    def test_outputs_own_their_buffers(self):
        engine = kiln.load(MODEL)
        ctx = engine.create_context()
        ctx.set_input(0, X)
        ctx.run()
        a, b = ctx.output(0), ctx.output(0)
        out = engine.run({"input": X})["probs"]
        for arr in (a, out):
            self.assertEqual(type(arr.base).__name__, "PyCapsule")  # the buffer kiln allocated
            self.assertTrue(arr.flags.writeable)
            self.assertTrue(arr.flags.c_contiguous)
        self.assertFalse(np.shares_memory(a, b))
        del engine, ctx
        gc.collect()
        assert_close(out, EXPECTED)  # still valid with the engine gone
        out[:] = 0
        self.assertEqual(float(out.sum()), 0.0)
        assert_close(a, EXPECTED)

    def test_threads_with_own_contexts(self):
        n_threads, n_runs = 4, 10
        inputs = [X * (1 + 0.25 * i) for i in range(n_threads)]
        want = [self.engine.run({"input": x})["probs"] for x in inputs]
        errors = []

        def worker(i):
            try:
                ctx = self.engine.create_context()
                ctx.set_input("input", inputs[i])
                for _ in range(n_runs):
                    ctx.run()
                    np.testing.assert_array_equal(ctx.output("probs"), want[i])
                    np.testing.assert_array_equal(self.engine.run({"input": inputs[i]})["probs"], want[i])
            except Exception as e:  # noqa: BLE001 (reported below)
                errors.append(f"thread {i}: {e!r}")

        threads = [threading.Thread(target=worker, args=(i,)) for i in range(n_threads)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        self.assertEqual(errors, [])


if __name__ == "__main__":
    unittest.main()
