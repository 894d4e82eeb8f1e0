#!/usr/bin/env python3
"""kiln serve benchmarks (loopback; client and server share the machine's cores):

  batching  ResNet-50 (or --model): throughput and latency of batch-1 serving vs the dynamic
            batcher, each at its best concurrency among --concurrency, and the single-request
            latency (one client, sequential).
  overhead  SqueezeNet (or --model), 1 thread: median latency of HTTP binary infer and gRPC
            infer (client-observed, keep-alive) vs `kiln bench` on the same plan in-process,
            measured alternately; plus the server's own time per request from its metrics
            (request time minus engine time).
  soak      --minutes of mixed traffic (binary and JSON infers, bad requests) at
            --concurrency; the server's RSS sampled every 5 s must stay flat.
  coldstart process start -> first successful infer (a plan in the repository), median of
            --runs starts; ONNX Runtime's session creation for the same model beside it
            (../shared/bench/peer/ort_bench.js) when the kit is installed.

Usage: bench/serve_bench.py {batching|overhead|coldstart} --kiln build/kiln --model M.onnx [options]
Prints a Markdown table and writes --json.
"""
import argparse
import atexit
import concurrent.futures
import http.client
import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)


def cpu_name():
    for line in open("/proc/cpuinfo"):
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return "unknown CPU"


def input_spec(kiln, model):
    """(name, shape with dynamic dims as 1) of the model's first input."""
    import onnx
    m = onnx.load(model, load_external_data=False)
    inits = {t.name for t in m.graph.initializer}
    first = [i for i in m.graph.input if i.name not in inits][0]
    shape = [d.dim_value if d.HasField("dim_value") and d.dim_value > 0 else 1 for d in first.type.tensor_type.shape.dim]
    return first.name, shape


class Server:
    def __init__(self, kiln, repo, *args):
        self.log = tempfile.NamedTemporaryFile("w+", suffix=".log", delete=False)
        self.t0 = time.perf_counter()
        self.proc = subprocess.Popen([kiln, "serve", "--model-repository", repo, "--host", "127.0.0.1",
                                      "--http-port", "0", "--grpc-port", "0", "--metrics-port", "0", *args],
                                     stdout=self.log, stderr=subprocess.STDOUT)
        # A benchmark that fails half-way must not leave its server running.
        atexit.register(lambda p=self.proc: p.poll() is None and p.kill())
        while True:
            m = re.search(r"HTTP on [\d.]+:(\d+), gRPC on (\d+), metrics on (\d+)", open(self.log.name).read())
            if m:
                self.http, self.grpc, self.metrics = (int(g) for g in m.groups())
                break
            if self.proc.poll() is not None:
                raise RuntimeError(open(self.log.name).read())
            time.sleep(0.002)

    def wait_ready(self, timeout=600):
        deadline = time.time() + timeout
        while time.time() < deadline:
            try:
                c = http.client.HTTPConnection("127.0.0.1", self.http, timeout=5)
                c.request("GET", "/v2/health/ready")
                if c.getresponse().status == 200:
                    return
            except OSError:
                pass
            time.sleep(0.01)
        raise RuntimeError("not ready: " + open(self.log.name).read())

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(timeout=60)


def binary_request(name, x):
    head = json.dumps({"inputs": [{"name": name, "shape": list(x.shape), "datatype": "FP32",
                                   "parameters": {"binary_data_size": x.nbytes}}],
                       "parameters": {"binary_data_output": True}}).encode()
    return head + x.tobytes(), {"Inference-Header-Content-Length": str(len(head)),
                                "Content-Type": "application/octet-stream"}


def http_infer(conn, model, body, headers):
    conn.request("POST", f"/v2/models/{model}/infer", body=body, headers=headers)
    r = conn.getresponse()
    data = r.read()
    if r.status != 200:
        raise RuntimeError(f"HTTP {r.status}: {data[:300]}")
    return data


def load_test(port, model, body, headers, concurrency, seconds):
    """Closed loop: `concurrency` clients, each sending its next request when answered."""
    lat, stop = [], time.perf_counter() + seconds
    lock = threading.Lock()

    def client():
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=300)
        mine = []
        while time.perf_counter() < stop:
            t = time.perf_counter()
            http_infer(conn, model, body, headers)
            mine.append(time.perf_counter() - t)
        with lock:
            lat.extend(mine)

    t0 = time.perf_counter()
    threads = [threading.Thread(target=client) for _ in range(concurrency)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - t0
    lat.sort()
    return {"concurrency": concurrency, "requests": len(lat), "throughput": len(lat) / wall,
            "p50_ms": 1000 * lat[len(lat) // 2], "p99_ms": 1000 * lat[min(len(lat) - 1, int(len(lat) * 0.99))]}


def make_repo(model_path, name, config):
    repo = tempfile.mkdtemp(prefix="kiln_bench_repo_")
    os.makedirs(os.path.join(repo, name, "1"))
    os.symlink(os.path.abspath(model_path), os.path.join(repo, name, "1", "model.onnx"))
    with open(os.path.join(repo, name, "config.json"), "w") as f:
        json.dump(config, f)
    return repo


def batching(a):
    name, shape = input_spec(a.kiln, a.model)
    x = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
    body, headers = binary_request(name, x)
    rows = []
    configs = [("batch-1 serving", {"threads": a.threads}),
               ("dynamic batching", {"threads": a.threads, "max_batch_size": a.max_batch,
                                     "dynamic_batching": {"max_queue_delay_microseconds": a.delay_us}})]
    for label, config in configs:
        repo = make_repo(a.model, "m", config)
        s = Server(a.kiln, repo)
        s.wait_ready()
        load_test(s.http, "m", body, headers, 1, 2)  # warm
        single = load_test(s.http, "m", body, headers, 1, a.seconds)
        for c in a.concurrency:
            r = load_test(s.http, "m", body, headers, c, a.seconds)
            r.update(label=label, single_p50_ms=single["p50_ms"])
            rows.append(r)
            print(f"{label:17s} c={c:2d}: {r['throughput']:7.2f} req/s  p50 {r['p50_ms']:7.1f} ms  p99 {r['p99_ms']:7.1f} ms"
                  f"  (single {single['p50_ms']:.1f} ms)", flush=True)
        s.stop()
        shutil.rmtree(repo, ignore_errors=True)
    best = {lab: max((r for r in rows if r["label"] == lab), key=lambda r: r["throughput"]) for lab, _ in configs}
    b1, db = best["batch-1 serving"], best["dynamic batching"]
    print(f"\n{cpu_name()}, {os.path.basename(a.model)}, --threads {a.threads}: dynamic batching {db['throughput']:.2f} req/s "
          f"(c={db['concurrency']}, p99 {db['p99_ms']:.1f} ms) vs batch-1 {b1['throughput']:.2f} req/s "
          f"(c={b1['concurrency']}): {db['throughput'] / b1['throughput']:.2f}x; p99 / single-request latency "
          f"{db['p99_ms'] / db['single_p50_ms']:.2f}")
    return {"rows": rows, "ratio": db["throughput"] / b1["throughput"]}


def overhead(a):
    name, shape = input_spec(a.kiln, a.model)
    x = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
    repo = make_repo(a.model, "m", {"threads": 1})
    s = Server(a.kiln, repo)
    s.wait_ready()
    plan = [os.path.join(repo, "m", "1", ".kiln-cache", f) for f in os.listdir(os.path.join(repo, "m", "1", ".kiln-cache"))][0]
    body, headers = binary_request(name, x)
    sys.path.insert(0, tempfile.mkdtemp())
    subprocess.check_call(["protoc", f"--python_out={sys.path[0]}", f"--grpc_out={sys.path[0]}",
                           "--plugin=protoc-gen-grpc=/usr/bin/grpc_python_plugin", "-I", os.path.join(ROOT, "tools/server/proto"),
                           os.path.join(ROOT, "tools/server/proto/grpc_service.proto")])
    import grpc
    import grpc_service_pb2 as pb
    import grpc_service_pb2_grpc as rpc
    stub = rpc.GRPCInferenceServiceStub(grpc.insecure_channel(f"127.0.0.1:{s.grpc}"))
    greq = pb.ModelInferRequest(model_name="m", inputs=[pb.ModelInferRequest.InferInputTensor(
        name=name, datatype="FP32", shape=shape)], raw_input_contents=[x.tobytes()])
    conn = http.client.HTTPConnection("127.0.0.1", s.http)
    rounds = {"http": [], "grpc": [], "inproc": []}
    for _ in range(a.rounds):
        t = []
        for _ in range(a.iters):
            t0 = time.perf_counter()
            http_infer(conn, "m", body, headers)
            t.append(time.perf_counter() - t0)
        rounds["http"].append(1000 * statistics.median(t))
        t = []
        for _ in range(a.iters):
            t0 = time.perf_counter()
            stub.ModelInfer(greq)
            t.append(time.perf_counter() - t0)
        rounds["grpc"].append(1000 * statistics.median(t))
        out = subprocess.run([a.kiln, "bench", plan, "--iterations", str(a.iters), "--threads", "1", "--json", "-"],
                             capture_output=True, text=True, check=True).stdout
        rounds["inproc"].append(json.loads(out)["latency_ms"]["median"])
    metrics = http.client.HTTPConnection("127.0.0.1", s.metrics)
    metrics.request("GET", "/metrics")
    text = metrics.getresponse().read().decode()
    get = lambda k: float(re.search(k + r'\{model="m",version="1"\} (\S+)', text).group(1))
    n = get("kiln_request_success_total")
    server_us = (get("kiln_request_duration_us_total") - get("kiln_compute_duration_us_total")) / n
    compute_us = get("kiln_compute_duration_us_total") / n
    s.stop()
    shutil.rmtree(repo, ignore_errors=True)
    med = {k: statistics.median(v) for k, v in rounds.items()}
    print(f"{cpu_name()}, {os.path.basename(a.model)}, 1 thread, median of {a.rounds} rounds x {a.iters}:")
    print(f"| path | median ms | overhead vs in-process ms |\n|---|---:|---:|")
    print(f"| in-process (`kiln bench`, same plan) | {med['inproc']:.3f} | |")
    print(f"| HTTP binary (http.client, keep-alive) | {med['http']:.3f} | {med['http'] - med['inproc']:.3f} |")
    print(f"| gRPC raw contents (grpcio) | {med['grpc']:.3f} | {med['grpc'] - med['inproc']:.3f} |")
    print(f"server-side, from /metrics (means over all requests): engine {compute_us / 1000:.3f} ms, outside the engine "
          f"(decode, queue hand-off, encode) {server_us / 1000:.3f} ms")
    return {"rounds": rounds, "median": med, "server_us": server_us, "compute_us": compute_us}


def coldstart(a):
    name, shape = input_spec(a.kiln, a.model)
    x = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
    body, headers = binary_request(name, x)
    repo = tempfile.mkdtemp(prefix="kiln_bench_repo_")
    os.makedirs(os.path.join(repo, "m", "1"))
    subprocess.run([a.kiln, "build", a.model, "-o", os.path.join(repo, "m", "1", "model.plan"), "--threads",
                    str(a.threads)], check=True, capture_output=True)
    times = []
    for _ in range(a.runs):
        s = Server(a.kiln, repo, "--threads", str(a.threads))
        while True:
            try:
                conn = http.client.HTTPConnection("127.0.0.1", s.http, timeout=30)
                http_infer(conn, "m", body, headers)
                break
            except (OSError, RuntimeError):
                time.sleep(0.002)
        times.append(1000 * (time.perf_counter() - s.t0))
        s.stop()
    shutil.rmtree(repo, ignore_errors=True)
    med = statistics.median(times)
    ort = None
    ort_bench = os.path.join(ROOT, "..", "shared", "bench", "peer", "ort_bench.js")
    if shutil.which("node") and os.path.exists(ort_bench):
        out_json = tempfile.mktemp(suffix=".json")
        try:
            subprocess.run(["node", ort_bench, a.model, "--threads", str(a.threads), "--no-latency", "--no-throughput",
                            "--json", out_json], capture_output=True, text=True, timeout=600, check=True)
            ort = json.load(open(out_json))[0]["create_ms"]["median"]
        except Exception as e:  # the kit is optional
            print("ORT session creation not measured:", e)
    print(f"{cpu_name()}, {os.path.basename(a.model)}: kiln serve process start -> first successful infer (plan): "
          f"median {med:.0f} ms over {a.runs} starts ({', '.join(f'{t:.0f}' for t in times)})"
          + (f"; ONNX Runtime session creation alone: {ort:.0f} ms" if ort else ""))
    return {"times_ms": times, "median_ms": med, "ort_session_create_ms": ort}


def rss_kb(pid):
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def soak(a):
    """Mixed traffic (binary and JSON infers, bad requests) for --minutes; RSS sampled."""
    name, shape = input_spec(a.kiln, a.model)
    x = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
    body, headers = binary_request(name, x)
    json_body = json.dumps({"inputs": [{"name": name, "shape": shape, "datatype": "FP32",
                                        "data": x.flatten().tolist()}]}).encode()
    repo = make_repo(a.model, "m", {"threads": 1, "max_batch_size": 0})
    s = Server(a.kiln, repo)
    s.wait_ready()
    stop = time.perf_counter() + 60 * a.minutes
    counts = {"ok": 0, "bad": 0, "unexpected": 0}
    lock = threading.Lock()

    def client(k):
        conn = http.client.HTTPConnection("127.0.0.1", s.http, timeout=60)
        i = 0
        while time.perf_counter() < stop:
            i += 1
            kind = i % 4
            try:
                if kind == 0:
                    conn.request("POST", "/v2/models/m/infer", body=body, headers=headers)
                elif kind == 1:
                    conn.request("POST", "/v2/models/m/infer", body=json_body)
                elif kind == 2:
                    conn.request("POST", "/v2/models/m/infer", body=b'{"inputs": [{"name": "x"}]}')
                else:
                    conn.request("POST", "/v2/models/nope/infer", body=b"{}")
                r = conn.getresponse()
                r.read()
                want_ok = kind < 2
                with lock:
                    if (r.status == 200) == want_ok and (want_ok or 400 <= r.status < 500):
                        counts["ok" if want_ok else "bad"] += 1
                    else:
                        counts["unexpected"] += 1
            except OSError:
                with lock:
                    counts["unexpected"] += 1
                conn = http.client.HTTPConnection("127.0.0.1", s.http, timeout=60)

    threads = [threading.Thread(target=client, args=(k,)) for k in range(a.concurrency[0])]
    for t in threads:
        t.start()
    samples = []
    while time.perf_counter() < stop:
        samples.append((time.perf_counter(), rss_kb(s.proc.pid)))
        time.sleep(5)
    for t in threads:
        t.join()
    s.stop()
    shutil.rmtree(repo, ignore_errors=True)
    n = max(1, len(samples) // 10)
    first = statistics.median(r for _, r in samples[n:2 * n]) if len(samples) > 2 * n else samples[0][1]
    last = statistics.median(r for _, r in samples[-n:])
    peak = max(r for _, r in samples)
    print(f"{cpu_name()}, {os.path.basename(a.model)}: {a.minutes} min soak at concurrency {a.concurrency[0]}: "
          f"{counts['ok']} good answers, {counts['bad']} 4xx for bad requests, {counts['unexpected']} unexpected; "
          f"RSS after warm-up {first / 1024:.1f} MiB, at the end {last / 1024:.1f} MiB, peak {peak / 1024:.1f} MiB")
    return {"counts": counts, "rss_samples_kb": samples, "rss_first_kb": first, "rss_last_kb": last}


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("mode", choices=["batching", "overhead", "coldstart", "soak"])
    p.add_argument("--minutes", type=float, default=10)
    p.add_argument("--kiln", default=os.path.join(ROOT, "build", "kiln"))
    p.add_argument("--model", required=True)
    p.add_argument("--threads", type=int, default=os.cpu_count())
    p.add_argument("--max-batch", type=int, default=8)
    p.add_argument("--delay-us", type=int, default=2000)
    p.add_argument("--concurrency", type=int, nargs="+", default=[1, 2, 4, 8])
    p.add_argument("--seconds", type=float, default=10)
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--iters", type=int, default=200)
    p.add_argument("--runs", type=int, default=5)
    p.add_argument("--json")
    a = p.parse_args()
    result = {"cpu": cpu_name(), "model": a.model, "mode": a.mode, **globals()[a.mode](a)}
    if a.json:
        with open(a.json, "w") as f:
            json.dump(result, f, indent=1)


if __name__ == "__main__":
    main()
