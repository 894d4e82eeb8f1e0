"""kiln serve, driven by independent clients: python3-requests (HTTP/REST, KServe v2) and
python3-grpcio with stubs protoc generates from tools/server/proto/grpc_service.proto.

Each test class starts its own server on free loopback ports (--http-port 0 ...; the
ports are read from the server's log) over a repository it builds in a temporary folder
with Debian's python3-onnx. Nothing leaves loopback.

Usage: test_server.py (KILN_CLI=path/to/kiln, KILN_SOURCE_DIR=repo root)
"""
import concurrent.futures
import gzip
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import unittest

import numpy as np
import onnx
import requests
from onnx import TensorProto, helper, numpy_helper

KILN = os.environ.get("KILN_CLI", "kiln")
ROOT = os.environ.get("KILN_SOURCE_DIR") or os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")
RNG = np.random.default_rng(7)
W1 = RNG.standard_normal((16, 8)).astype(np.float32)
B1 = RNG.standard_normal(8).astype(np.float32)


def dense_model(path, w, b, batch="N"):
    """y = Relu(x @ w + b), x: [batch, 16]."""
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [batch, w.shape[0]])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [batch, w.shape[1]])
    nodes = [helper.make_node("MatMul", ["x", "w"], ["m"]), helper.make_node("Add", ["m", "b"], ["a"]),
             helper.make_node("Relu", ["a"], ["y"])]
    g = helper.make_graph(nodes, "dense", [x], [y], [numpy_helper.from_array(w, "w"), numpy_helper.from_array(b, "b")])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)])
    m.ir_version = 8
    os.makedirs(os.path.dirname(path), exist_ok=True)
    onnx.save(m, path)


def slow_model(path):
    """A few ms of MatMul per run, to fill a queue."""
    w = RNG.standard_normal((384, 384)).astype(np.float32) * 0.05
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 384, 384])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 384, 384])
    nodes, prev = [], "x"
    for i in range(4):
        nodes.append(helper.make_node("MatMul", [prev, "w"], [f"t{i}"]))
        prev = f"t{i}"
    nodes.append(helper.make_node("Identity", [prev], ["y"]))
    g = helper.make_graph(nodes, "slow", [x], [y], [numpy_helper.from_array(w, "w")])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)])
    m.ir_version = 8
    os.makedirs(os.path.dirname(path), exist_ok=True)
    onnx.save(m, path)


def string_model(path):
    """Strings through: y = Identity(x), x: string[2]; n = Size(x) (int64)."""
    x = helper.make_tensor_value_info("x", TensorProto.STRING, [2])
    y = helper.make_tensor_value_info("y", TensorProto.STRING, [2])
    g = helper.make_graph([helper.make_node("Identity", ["x"], ["y"])], "strings", [x], [y])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)])
    m.ir_version = 8
    os.makedirs(os.path.dirname(path), exist_ok=True)
    onnx.save(m, path)


def write_config(repo, name, config):
    with open(os.path.join(repo, name, "config.json"), "w") as f:
        json.dump(config, f)


def dense_ref(x, w=W1, b=B1):
    return np.maximum(x @ w + b, 0)


class Server:
    """A kiln serve process on free loopback ports."""

    def __init__(self, repo, *args, wait_ready=True):
        self.log = tempfile.NamedTemporaryFile("w+", suffix=".log", delete=False)
        self.proc = subprocess.Popen([KILN, "serve", "--model-repository", repo, "--host", "127.0.0.1", "--http-port", "0",
                                      "--grpc-port", "0", "--metrics-port", "0", "--threads", "1", *args],
                                     stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.time() + 120
        self.http = None
        while time.time() < deadline:
            m = re.search(r"HTTP on [\d.]+:(\d+), gRPC on (\d+), metrics on (\d+)", self.text())
            if m:
                self.http, self.grpc, self.metrics = (int(g) for g in m.groups())
                break
            if self.proc.poll() is not None:
                raise RuntimeError("kiln serve exited: " + self.text())
            time.sleep(0.05)
        if self.http is None:
            raise RuntimeError("kiln serve did not start: " + self.text())
        self.url = f"http://127.0.0.1:{self.http}"
        while wait_ready and time.time() < deadline:
            try:
                if requests.get(self.url + "/v2/health/ready", timeout=5).status_code == 200:
                    break
            except requests.ConnectionError:
                pass
            time.sleep(0.05)

    def text(self):
        with open(self.log.name) as f:
            return f.read()

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                return self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                raise
        return self.proc.returncode

    def infer(self, model, body, version=None, **kw):
        path = f"/v2/models/{model}" + (f"/versions/{version}" if version else "") + "/infer"
        return requests.post(self.url + path, json=body, timeout=60, **kw)


def json_input(name, a, datatype="FP32"):
    return {"name": name, "shape": list(a.shape), "datatype": datatype, "data": a.flatten().tolist()}


def grpc_stubs():
    """Python stubs for the server's proto, made with Debian's protoc + grpc_python_plugin."""
    out = tempfile.mkdtemp(prefix="kiln_grpc_")
    subprocess.check_call(["protoc", f"--python_out={out}", f"--grpc_out={out}",
                           "--plugin=protoc-gen-grpc=/usr/bin/grpc_python_plugin",
                           "-I", os.path.join(ROOT, "tools", "server", "proto"),
                           os.path.join(ROOT, "tools", "server", "proto", "grpc_service.proto")])
    sys.path.insert(0, out)
    import grpc_service_pb2 as pb  # noqa: E402
    import grpc_service_pb2_grpc as rpc  # noqa: E402
    return pb, rpc


class RepositoryMixin:
    @classmethod
    def make_repo(cls):
        repo = tempfile.mkdtemp(prefix="kiln_repo_")
        shutil.copy(os.path.join(ROOT, "models", "tiny_cnn.onnx"), os.path.join(repo, "tiny_cnn.onnx.tmp"))
        os.makedirs(os.path.join(repo, "tiny", "1"))
        os.rename(os.path.join(repo, "tiny_cnn.onnx.tmp"), os.path.join(repo, "tiny", "1", "model.onnx"))
        dense_model(os.path.join(repo, "dense", "1", "model.onnx"), W1, B1)
        write_config(repo, "dense", {"max_batch_size": 8, "dynamic_batching": {"max_queue_delay_microseconds": 20000,
                                                                               "preferred_batch_size": [4, 8]}})
        string_model(os.path.join(repo, "strings", "1", "model.onnx"))
        slow_model(os.path.join(repo, "slow", "1", "model.onnx"))
        write_config(repo, "slow", {"max_queue_size": 1})
        # A corrupt plan: this model fails to load, with the reason, and the others serve.
        os.makedirs(os.path.join(repo, "broken", "1"))
        with open(os.path.join(repo, "broken", "1", "model.plan"), "wb") as f:
            f.write(b"KILNPLAN" + bytes(range(256)) * 4)
        os.makedirs(os.path.join(repo, "bad name", "1"))  # not a valid model name: skipped
        return repo


class HttpProtocolTest(unittest.TestCase, RepositoryMixin):
    @classmethod
    def setUpClass(cls):
        cls.repo = cls.make_repo()
        cls.server = Server(cls.repo, "--max-body-mb", "1", "--http-read-timeout", "1")

    @classmethod
    def tearDownClass(cls):
        rc = cls.server.stop()
        shutil.rmtree(cls.repo, ignore_errors=True)
        assert rc == 0, f"kiln serve exited {rc}: {cls.server.text()}"

    def assert_error(self, r, status, fragment=""):
        self.assertEqual(r.status_code, status, r.text)
        self.assertIn("error", r.json())
        self.assertIn(fragment, r.json()["error"])

    def assert_still_serving(self):
        r = requests.get(self.server.url + "/v2/health/live", timeout=10)
        self.assertEqual(r.status_code, 200)

    def test_health_and_metadata(self):
        s = self.server
        self.assertEqual(requests.get(s.url + "/v2/health/live").status_code, 200)
        self.assertEqual(requests.get(s.url + "/v2/health/ready").status_code, 200)
        meta = requests.get(s.url + "/v2").json()
        self.assertEqual(meta["name"], "kiln")
        self.assertIn("binary_tensor_data", meta["extensions"])
        m = requests.get(s.url + "/v2/models/dense").json()
        self.assertEqual(m["inputs"], [{"name": "x", "datatype": "FP32", "shape": [-1, 16]}])
        self.assertEqual(m["outputs"], [{"name": "y", "datatype": "FP32", "shape": [-1, 8]}])
        self.assertEqual(m["versions"], ["1"])
        self.assertEqual(requests.get(s.url + "/v2/models/dense/versions/1/ready").status_code, 200)
        self.assertEqual(requests.get(s.url + "/v2/models/dense/config").json()["max_batch_size"], 8)

    def test_json_infer_matches_reference(self):
        x = np.load(os.path.join(ROOT, "models", "tiny_cnn_input.npy"))
        want = np.load(os.path.join(ROOT, "models", "tiny_cnn_expected.npy"))
        r = self.server.infer("tiny", {"id": "r1", "inputs": [json_input("input", x)]})
        self.assertEqual(r.status_code, 200, r.text)
        body = r.json()
        self.assertEqual(body["id"], "r1")
        self.assertEqual(body["model_name"], "tiny")
        out = body["outputs"][0]
        self.assertEqual((out["name"], out["datatype"], out["shape"]), ("probs", "FP32", list(want.shape)))
        np.testing.assert_allclose(np.array(out["data"], np.float32).reshape(want.shape), want, rtol=1e-4, atol=1e-6)

    def test_binary_infer(self):
        x = RNG.standard_normal((3, 16)).astype(np.float32)
        head = json.dumps({"inputs": [{"name": "x", "shape": [3, 16], "datatype": "FP32",
                                       "parameters": {"binary_data_size": x.nbytes}}],
                           "outputs": [{"name": "y", "parameters": {"binary_data": True}}]}).encode()
        r = requests.post(self.server.url + "/v2/models/dense/infer", data=head + x.tobytes(),
                          headers={"Inference-Header-Content-Length": str(len(head))})
        self.assertEqual(r.status_code, 200, r.text)
        n = int(r.headers["Inference-Header-Content-Length"])
        meta = json.loads(r.content[:n])
        self.assertEqual(meta["outputs"][0]["parameters"]["binary_data_size"], 3 * 8 * 4)
        got = np.frombuffer(r.content[n:], "<f4").reshape(3, 8)
        np.testing.assert_allclose(got, dense_ref(x), rtol=1e-4, atol=1e-5)

    def test_bytes_tensors(self):
        words = ["héllo", "wörld"]
        r = self.server.infer("strings", {"inputs": [{"name": "x", "shape": [2], "datatype": "BYTES", "data": words}]})
        self.assertEqual(r.status_code, 200, r.text)
        self.assertEqual(r.json()["outputs"][0]["data"], words)
        raw = b"".join(len(w.encode()).to_bytes(4, "little") + w.encode() for w in words)
        head = json.dumps({"inputs": [{"name": "x", "shape": [2], "datatype": "BYTES",
                                       "parameters": {"binary_data_size": len(raw)}}],
                           "parameters": {"binary_data_output": True}}).encode()
        r = requests.post(self.server.url + "/v2/models/strings/infer", data=head + raw,
                          headers={"Inference-Header-Content-Length": str(len(head))})
        self.assertEqual(r.status_code, 200, r.text)
        n = int(r.headers["Inference-Header-Content-Length"])
        self.assertEqual(r.content[n:], raw)

    def test_dynamic_batching_combines_concurrent_requests(self):
        def one(i):
            x = RNG.standard_normal((1 + i % 3, 16)).astype(np.float32)
            r = self.server.infer("dense", {"inputs": [json_input("x", x)]})
            self.assertEqual(r.status_code, 200, r.text)
            got = np.array(r.json()["outputs"][0]["data"], np.float32).reshape(x.shape[0], 8)
            np.testing.assert_allclose(got, dense_ref(x), rtol=1e-4, atol=1e-5)
            return x.shape[0]

        with concurrent.futures.ThreadPoolExecutor(16) as pool:
            samples = sum(pool.map(one, range(48)))
        metrics = requests.get(f"http://127.0.0.1:{self.server.metrics}/metrics").text
        count = re.search(r'kiln_inference_count_total\{model="dense",version="1"\} (\d+)', metrics)
        execs = re.search(r'kiln_execution_count_total\{model="dense",version="1"\} (\d+)', metrics)
        self.assertIsNotNone(count, metrics)
        self.assertGreaterEqual(int(count.group(1)), samples)
        # Batching happened: fewer executions than requests.
        self.assertLess(int(execs.group(1)), 48, metrics)

    def test_queue_full_is_503_with_retry_hint(self):
        x = np.zeros((1, 384, 384), np.float32)
        head = json.dumps({"inputs": [{"name": "x", "shape": [1, 384, 384], "datatype": "FP32",
                                       "parameters": {"binary_data_size": x.nbytes}}]}).encode()

        def one(_):
            r = requests.post(self.server.url + "/v2/models/slow/infer", data=head + x.tobytes(),
                              headers={"Inference-Header-Content-Length": str(len(head))}, timeout=60)
            return r.status_code, r.headers.get("Retry-After")

        with concurrent.futures.ThreadPoolExecutor(24) as pool:
            results = list(pool.map(one, range(48)))
        codes = [c for c, _ in results]
        self.assertTrue(set(codes) <= {200, 503}, codes)
        self.assertIn(503, codes)
        self.assertIn(200, codes)
        self.assertTrue(all(h == "1" for c, h in results if c == 503))
        self.assert_still_serving()

    def test_timeout_parameter_answers_504(self):
        # The batcher holds a lone request up to 20 ms for company: a 1 us timeout has passed by then.
        x = np.ones((1, 16), np.float32)
        r = self.server.infer("dense", {"inputs": [json_input("x", x)], "parameters": {"timeout": 1}})
        self.assert_error(r, 504, "timeout")
        r = self.server.infer("dense", {"inputs": [json_input("x", x)], "parameters": {"timeout": 10_000_000}})
        self.assertEqual(r.status_code, 200, r.text)

    def test_broken_model_fails_alone_with_its_reason(self):
        r = requests.get(self.server.url + "/v2/models/broken/ready")
        self.assertEqual(r.status_code, 503)
        self.assertIn("broken", r.json()["error"])
        index = requests.post(self.server.url + "/v2/repository/index").json()
        broken = [m for m in index if m["name"] == "broken"]
        self.assertEqual(broken[0]["state"], "UNAVAILABLE")
        self.assertIn("model.plan", broken[0]["reason"])
        self.assertEqual({m["name"] for m in index if m["state"] == "READY"}, {"tiny", "dense", "strings", "slow"})

    def test_bad_requests_are_4xx_and_the_server_keeps_serving(self):
        url = self.server.url
        x16 = np.zeros((1, 16), np.float32)
        cases = [
            (requests.post(url + "/v2/models/dense/infer", data=b"{"), 400, "not valid JSON"),
            (requests.post(url + "/v2/models/dense/infer", data=b"[" * 5000 + b"]" * 5000), 400, "nests deeper"),
            (requests.post(url + "/v2/models/dense/infer", data=b'{"inputs": 5}'), 400, "'inputs' array"),
            (self.server.infer("nope", {"inputs": []}), 404, "unknown model"),
            (self.server.infer("dense", {"inputs": [json_input("x", x16)]}, version="7"), 404, "no version '7'"),
            (self.server.infer("dense", {"inputs": [json_input("x", x16, "INT64")]}), 400, "is FP32, the request says INT64"),
            (self.server.infer("dense", {"inputs": [json_input("x", x16, "FLOAT")]}), 400, "unknown datatype"),
            (self.server.infer("dense", {"inputs": [json_input("x", np.zeros((1, 15), np.float32))]}), 400, "has shape"),
            (self.server.infer("dense", {"inputs": [json_input("x", np.zeros((9, 16), np.float32))]}), 400, "max_batch_size"),
            (self.server.infer("dense", {"inputs": [{"name": "x", "shape": [1, 16], "datatype": "FP32", "data": [1, 2]}]}),
             400, "holds 2 elements"),
            (self.server.infer("dense", {"inputs": [{"name": "x", "shape": [1, 16], "datatype": "FP32",
                                                     "data": ["a"] * 16}]}), 400, "not a number"),
            (self.server.infer("tiny", {"inputs": [{"name": "input", "shape": [2 ** 40, 2 ** 40, 3, 32], "datatype": "FP32",
                                                    "data": [1]}]}), 400, ""),
            (self.server.infer("strings", {"inputs": [{"name": "x", "shape": [2 ** 62, 2 ** 62], "datatype": "BYTES",
                                                       "data": []}]}), 400, ""),
            (self.server.infer("dense", {"inputs": [json_input("x", x16), json_input("x", x16)]}), 400, "given twice"),
            (self.server.infer("dense", {"inputs": []}), 400, "lacks"),
            (self.server.infer("dense", {"inputs": [json_input("x", x16)], "outputs": [{"name": "zz"}]}), 400, "no output 'zz'"),
            (self.server.infer("dense", {"inputs": [json_input("x", x16)], "parameters": {"timeout": -1}}), 400, "timeout"),
        ]
        # Binary extension lengths that disagree with the body.
        head = json.dumps({"inputs": [{"name": "x", "shape": [1, 16], "datatype": "FP32",
                                       "parameters": {"binary_data_size": 64}}]}).encode()
        for hlen, payload, frag in [(str(len(head) + 1000), head + b"\0" * 64, "Inference-Header-Content-Length"),
                                    ("-5", head + b"\0" * 64, "Inference-Header-Content-Length"),
                                    ("abc", head + b"\0" * 64, "Inference-Header-Content-Length"),
                                    (str(len(head)), head + b"\0" * 10, "past the end"),
                                    (str(len(head)), head + b"\0" * 100, "binary_data_size add up")]:
            cases.append((requests.post(url + "/v2/models/dense/infer", data=payload,
                                        headers={"Inference-Header-Content-Length": hlen}), 400, frag))
        raw = (10).to_bytes(4, "little") + b"abc"
        head = json.dumps({"inputs": [{"name": "x", "shape": [2], "datatype": "BYTES",
                                       "parameters": {"binary_data_size": len(raw)}}]}).encode()
        cases.append((requests.post(url + "/v2/models/strings/infer", data=head + raw,
                                    headers={"Inference-Header-Content-Length": str(len(head))}), 400, "claims 10 bytes"))
        # Size limits (this server: --max-body-mb 1): plain, chunked, and a gzip bomb.
        big = b"{" + b" " * (2 << 20) + b"}"
        cases.append((requests.post(url + "/v2/models/dense/infer", data=big), 413, "larger than the limit"))
        cases.append((requests.post(url + "/v2/models/dense/infer", data=iter([b" " * 65536] * 40)), 413, "larger than"))
        bomb = gzip.compress(b" " * (16 << 20))
        cases.append((requests.post(url + "/v2/models/dense/infer", data=bomb, headers={"Content-Encoding": "gzip"}),
                      413, "larger than"))
        # Model names that try to be paths, and names that are not UTF-8 or hold NUL.
        for name in ["..", "%2e%2e", "..%2f..%2fetc", "%2fetc%2fpasswd", "a%00b", "%ff%fe", "bad%20name", "tiny%2f1"]:
            r = requests.post(url + f"/v2/models/{name}/infer", data=b"{}")
            cases.append((r, 404, ""))
        for r, status, fragment in cases:
            with self.subTest(status=status, fragment=fragment, body=r.text[:200]):
                self.assert_error(r, status, fragment)
        # A body that stops half-way: the server times the connection out, and serves others meanwhile.
        s = socket.create_connection(("127.0.0.1", self.server.http))
        s.sendall(b"POST /v2/models/dense/infer HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n{\"inputs\"")
        self.assert_still_serving()
        r = self.server.infer("dense", {"inputs": [json_input("x", x16)]})
        self.assertEqual(r.status_code, 200, r.text)
        # --http-read-timeout 1: the stalled connection is closed by the server, not held.
        s.settimeout(10)
        t0 = time.time()
        try:
            while s.recv(65536):
                pass
        except ConnectionResetError:
            pass
        self.assertLess(time.time() - t0, 8)
        s.close()
        self.assert_still_serving()

    def test_repository_control_is_off_by_default(self):
        r = requests.post(self.server.url + "/v2/repository/models/dense/unload")
        self.assert_error(r, 400, "--model-control-mode explicit")


class GrpcProtocolTest(unittest.TestCase, RepositoryMixin):
    @classmethod
    def setUpClass(cls):
        import grpc
        cls.grpc = grpc
        cls.pb, rpc = grpc_stubs()
        cls.repo = cls.make_repo()
        cls.server = Server(cls.repo)
        cls.channel = grpc.insecure_channel(f"127.0.0.1:{cls.server.grpc}")
        cls.stub = rpc.GRPCInferenceServiceStub(cls.channel)

    @classmethod
    def tearDownClass(cls):
        cls.channel.close()
        rc = cls.server.stop()
        shutil.rmtree(cls.repo, ignore_errors=True)
        assert rc == 0, cls.server.text()

    def infer_request(self, model, name, a, datatype="FP32", raw=True):
        pb = self.pb
        t = pb.ModelInferRequest.InferInputTensor(name=name, datatype=datatype, shape=list(a.shape))
        req = pb.ModelInferRequest(model_name=model, id="g1", inputs=[t])
        if raw:
            req.raw_input_contents.append(a.tobytes())
        else:
            req.inputs[0].contents.fp32_contents.extend(a.flatten().tolist())
        return req

    def test_health_metadata(self):
        pb = self.pb
        self.assertTrue(self.stub.ServerLive(pb.ServerLiveRequest()).live)
        self.assertTrue(self.stub.ServerReady(pb.ServerReadyRequest()).ready)
        self.assertTrue(self.stub.ModelReady(pb.ModelReadyRequest(name="dense")).ready)
        self.assertFalse(self.stub.ModelReady(pb.ModelReadyRequest(name="broken")).ready)
        m = self.stub.ModelMetadata(pb.ModelMetadataRequest(name="dense"))
        self.assertEqual((m.inputs[0].name, m.inputs[0].datatype, list(m.inputs[0].shape)), ("x", "FP32", [-1, 16]))
        self.assertEqual(self.stub.ServerMetadata(pb.ServerMetadataRequest()).name, "kiln")
        index = self.stub.RepositoryIndex(pb.RepositoryIndexRequest())
        self.assertIn("broken", [m.name for m in index.models if m.state == "UNAVAILABLE"])

    def test_infer_raw_and_typed_contents(self):
        x = RNG.standard_normal((2, 16)).astype(np.float32)
        for raw in (True, False):
            r = self.stub.ModelInfer(self.infer_request("dense", "x", x, raw=raw))
            self.assertEqual((r.model_name, r.model_version, r.id), ("dense", "1", "g1"))
            self.assertEqual(list(r.outputs[0].shape), [2, 8])
            got = np.frombuffer(r.raw_output_contents[0], "<f4").reshape(2, 8)
            np.testing.assert_allclose(got, dense_ref(x), rtol=1e-4, atol=1e-5)

    def test_errors_have_grpc_codes(self):
        grpc, pb = self.grpc, self.pb
        x = np.zeros((1, 16), np.float32)
        cases = [
            (self.infer_request("nope", "x", x), grpc.StatusCode.NOT_FOUND),
            (self.infer_request("dense", "y", x), grpc.StatusCode.INVALID_ARGUMENT),
            (self.infer_request("dense", "x", x.astype(np.float64), "FP64"), grpc.StatusCode.INVALID_ARGUMENT),
            (self.infer_request("dense", "x", np.zeros((1, 3), np.float32)), grpc.StatusCode.INVALID_ARGUMENT),
            (self.infer_request("broken", "x", x), grpc.StatusCode.UNAVAILABLE),
            (pb.ModelInferRequest(model_name="dense", inputs=[pb.ModelInferRequest.InferInputTensor(
                name="x", datatype="FP32", shape=[1, 16])], raw_input_contents=[b"\0" * 3]), grpc.StatusCode.INVALID_ARGUMENT),
            (pb.ModelInferRequest(model_name="dense", inputs=[pb.ModelInferRequest.InferInputTensor(
                name="x", datatype="FP32", shape=[2 ** 40, 2 ** 40])], raw_input_contents=[b""]), grpc.StatusCode.INVALID_ARGUMENT),
        ]
        for req, code in cases:
            with self.subTest(code=code):
                with self.assertRaises(grpc.RpcError) as cm:
                    self.stub.ModelInfer(req)
                self.assertEqual(cm.exception.code(), code, cm.exception.details())
        self.assertTrue(self.stub.ServerLive(pb.ServerLiveRequest()).live)

    def test_client_deadline(self):
        grpc = self.grpc
        # A 5 ms deadline on a request the batcher holds for 20 ms.
        with self.assertRaises(grpc.RpcError) as cm:
            self.stub.ModelInfer(self.infer_request("dense", "x", np.ones((1, 16), np.float32)), timeout=0.005)
        self.assertEqual(cm.exception.code(), grpc.StatusCode.DEADLINE_EXCEEDED)
        self.assertTrue(self.stub.ServerLive(self.pb.ServerLiveRequest()).live)


class LifecycleTest(unittest.TestCase):
    """Model control, plan cache, hot reload and SIGTERM, under load."""

    def setUp(self):
        self.repo = tempfile.mkdtemp(prefix="kiln_repo_")
        dense_model(os.path.join(self.repo, "dense", "1", "model.onnx"), W1, B1)
        write_config(self.repo, "dense", {"max_batch_size": 4, "dynamic_batching": {"max_queue_delay_microseconds": 1000}})

    def tearDown(self):
        shutil.rmtree(self.repo, ignore_errors=True)

    def load_generator(self, server, stop, results, model="dense", stop_on_close=False):
        """Sends requests until `stop`. stop_on_close: like a load balancer that takes the
        endpoint out of rotation when the server says it is going (readiness fails, and each
        answer closes its connection), stop sending after an answer with Connection: close."""
        x = RNG.standard_normal((1, 16)).astype(np.float32)
        session = requests.Session()
        while not stop.is_set():
            try:
                r = session.post(server.url + f"/v2/models/{model}/infer", json={"inputs": [json_input("x", x)]}, timeout=60)
                results.append((r.status_code, r.json().get("model_version")))
                if stop_on_close and r.headers.get("Connection", "").lower() == "close":
                    return
            except requests.ConnectionError as e:
                # Not accepted: the connection could not be made (refused, or reset while it
                # waited in the listen backlog as the server closed its socket) -- no request
                # reached the server. Anything else (a reset or close after the request was
                # sent) is a dropped request.
                text = str(e).lower()
                not_accepted = "refused" in text or "failed to establish a new connection" in text
                results.append(("refused" if not_accepted else f"dropped: {e}", None))
                session = requests.Session()
                time.sleep(0.01)

    def test_plan_cache_and_second_start(self):
        s = Server(self.repo)
        self.assertEqual(requests.get(s.url + "/v2/models/dense").json()["platform"], "onnx")
        self.assertEqual(s.stop(), 0)
        cached = os.listdir(os.path.join(self.repo, "dense", "1", ".kiln-cache"))
        self.assertEqual(len(cached), 1, cached)
        s = Server(self.repo)
        self.assertEqual(requests.get(s.url + "/v2/models/dense").json()["platform"], "onnx (cached plan)")
        self.assertEqual(s.stop(), 0)

    def test_warmup_only_where_something_compiles(self):
        """A static engine serves without a warm-up run (most of a cold start); a dynamic one
        warms its batch sizes; "warmup": true/false in config.json overrides; a bad value is
        that model's load error."""
        dense_model(os.path.join(self.repo, "fixed", "1", "model.onnx"), W1, B1, batch=2)
        s = Server(self.repo, "--verbose")
        try:
            log = s.text()
            self.assertRegex(log, r"model 'fixed' version 1 ready \([^)]*no warm-up", log)
            self.assertRegex(log, r"model 'dense' version 1 ready \([^)]*warm-up of \d+ batch sizes", log)
            x = RNG.standard_normal((2, 16)).astype(np.float32)
            r = s.infer("fixed", {"inputs": [json_input("x", x)]})
            self.assertEqual(r.status_code, 200, r.text)
            got = np.array(r.json()["outputs"][0]["data"], np.float32).reshape(2, 8)
            np.testing.assert_allclose(got, dense_ref(x), rtol=1e-5, atol=1e-5)
        finally:
            self.assertEqual(s.stop(), 0)
        write_config(self.repo, "fixed", {"warmup": True})
        write_config(self.repo, "dense", {"warmup": "yes"})
        s = Server(self.repo, "--verbose")
        try:
            self.assertRegex(s.text(), r"model 'fixed' version 1 ready \([^)]*warm-up of 1 batch size ", s.text())
            r = requests.get(s.url + "/v2/models/dense/ready")
            self.assertNotEqual(r.status_code, 200)
            self.assertIn("'warmup' must be true or false", requests.post(s.url + "/v2/repository/index").text)
        finally:
            self.assertEqual(s.stop(), 0)

    def test_explicit_load_unload_and_concurrent_control(self):
        s = Server(self.repo, "--model-control-mode", "explicit")
        try:
            self.assertEqual(requests.get(s.url + "/v2/models/dense/ready").status_code, 404)
            self.assertEqual(requests.post(s.url + "/v2/repository/models/dense/load").status_code, 200)
            self.assertEqual(requests.get(s.url + "/v2/models/dense/ready").status_code, 200)
            self.assertEqual(requests.post(s.url + "/v2/repository/models/..%2fdense/load").status_code, 404)
            self.assertEqual(requests.post(s.url + "/v2/repository/models/nothere/load").status_code, 404)

            def flip(i):
                return requests.post(s.url + f"/v2/repository/models/dense/{'load' if i % 2 else 'unload'}").status_code

            with concurrent.futures.ThreadPoolExecutor(8) as pool:
                codes = list(pool.map(flip, range(16)))
            self.assertTrue(set(codes) <= {200}, codes)
            self.assertEqual(requests.post(s.url + "/v2/repository/models/dense/load").status_code, 200)
            x = np.ones((1, 16), np.float32)
            r = s.infer("dense", {"inputs": [json_input("x", x)]})
            self.assertEqual(r.status_code, 200, r.text)
            self.assertEqual(requests.post(s.url + "/v2/repository/models/dense/unload").status_code, 200)
            self.assertEqual(s.infer("dense", {"inputs": [json_input("x", x)]}).status_code, 404)
        finally:
            self.assertEqual(s.stop(), 0)

    def test_hot_reload_under_load_fails_no_request(self):
        s = Server(self.repo, "--model-control-mode", "poll", "--repository-poll-secs", "1")
        stop, results = threading.Event(), []
        threads = [threading.Thread(target=self.load_generator, args=(s, stop, results)) for _ in range(4)]
        for t in threads:
            t.start()
        time.sleep(1.0)
        w2 = RNG.standard_normal((16, 8)).astype(np.float32)
        tmp = os.path.join(self.repo, "dense", ".v2")
        dense_model(os.path.join(tmp, "model.onnx"), w2, B1)
        os.rename(tmp, os.path.join(self.repo, "dense", "2"))  # the version appears whole
        deadline = time.time() + 60
        while time.time() < deadline and not any(v == "2" for _, v in results[-20:]):
            time.sleep(0.2)
        time.sleep(0.5)
        stop.set()
        for t in threads:
            t.join()
        self.assertEqual(s.stop(), 0)
        codes = [c for c, _ in results]
        versions = [v for _, v in results]
        self.assertGreater(len(results), 20)
        self.assertEqual([c for c in codes if c != 200], [], s.text()[-2000:])
        self.assertIn("1", versions)
        self.assertIn("2", versions)
        # Once version 2 serves, version 1 no longer answers.
        first2 = versions.index("2")
        self.assertNotIn("1", versions[first2 + 4 * 2:])

    def test_sigterm_under_load_drops_no_request(self):
        s = Server(self.repo, "--drain-seconds", "0.5")
        stop, results = threading.Event(), []
        threads = [threading.Thread(target=self.load_generator, args=(s, stop, results, "dense", True)) for _ in range(4)]
        for t in threads:
            t.start()
        time.sleep(1.0)
        before = len(results)
        s.proc.send_signal(signal.SIGTERM)
        rc = s.proc.wait(timeout=60)
        stop.set()
        for t in threads:
            t.join()
        self.assertEqual(rc, 0, s.text())
        self.assertGreater(before, 5)
        # Every request the server accepted was answered 200; after it closed, connections are refused.
        self.assertEqual([c for c, _ in results if c not in (200, "refused")], [], s.text()[-2000:])
        self.assertIn("stopped", s.text())


if __name__ == "__main__":
    unittest.main()
