#include "tools/server/server.h"

#include <fmt/format.h>
#include <pthread.h>
#include <signal.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <filesystem>
#include <iostream>
#include <mutex>
#include <thread>

#include "tools/server/grpc_frontend.h"
#include "tools/server/http_frontend.h"
#include "tools/server/model_manager.h"

namespace kiln::server {

int Serve(const ServeOptions& o) {
  const auto t0 = std::chrono::steady_clock::now();
  std::error_code ec;
  if (!std::filesystem::is_directory(o.repository, ec)) {
    std::cerr << fmt::format("kiln serve: --model-repository {}: not a directory\n", o.repository);
    return 2;
  }
  if (o.model_control != "none" && o.model_control != "poll" && o.model_control != "explicit") {
    std::cerr << fmt::format("kiln serve: --model-control-mode must be none, poll or explicit, not '{}'\n", o.model_control);
    return 2;
  }
  // SIGTERM/SIGINT go to the one thread that waits for them (set before any thread starts).
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  signal(SIGPIPE, SIG_IGN);  // a client that hangs up is an error on its socket, not our death

  ManagerOptions mo;
  mo.repository = o.repository;
  mo.threads = o.threads;
  mo.plan_cache = o.plan_cache;
  mo.verbose = o.verbose;
  ModelManager manager(mo);

  std::atomic<bool> loaded{false}, draining{false};
  auto ready = [&] { return loaded.load() && !draining.load(); };

  // Listeners first: liveness answers while models load; readiness waits for them.
  std::unique_ptr<HttpFrontend> http, metrics;
  std::unique_ptr<GrpcFrontend> grpc;
  std::string error;
  if (o.http_port >= 0) {
    HttpOptions ho;
    ho.host = o.host;
    ho.port = o.http_port;
    ho.threads = o.http_threads;
    ho.max_body_bytes = o.max_body_bytes;
    ho.repository_control = o.model_control == "explicit";
    ho.access_log = o.access_log;
    ho.read_timeout_s = o.read_timeout_seconds;
    http = std::make_unique<HttpFrontend>(manager, ho, ready);
    if (!http->Bind(&error)) {
      std::cerr << "kiln serve: HTTP: " << error << "\n";
      return 1;
    }
  }
  if (o.metrics_port >= 0) {
    metrics = HttpFrontend::Metrics(manager, o.host, o.metrics_port);
    if (!metrics->Bind(&error)) {
      std::cerr << "kiln serve: metrics: " << error << "\n";
      return 1;
    }
  }
  if (o.grpc_port >= 0) {
    GrpcOptions go;
    go.host = o.host;
    go.port = o.grpc_port;
    go.max_message_bytes = o.max_body_bytes;
    go.repository_control = o.model_control == "explicit";
    grpc = GrpcFrontend::Create(manager, go, ready, &error);
    if (!grpc && !error.empty()) {
      std::cerr << "kiln serve: gRPC: " << error << "\n";
      return 1;
    }
  }
  std::thread http_thread, metrics_thread;
  if (http) http_thread = std::thread([&] { http->Run(); });
  if (metrics) metrics_thread = std::thread([&] { metrics->Run(); });
  std::cerr << fmt::format("kiln serve: {}HTTP on {}:{}, gRPC on {}, metrics on {}\n", "", o.host,
                           http ? std::to_string(http->port()) : "-", grpc ? std::to_string(grpc->port()) : "-",
                           metrics ? std::to_string(metrics->port()) : "-");

  int failed = 0;
  if (o.model_control == "explicit") {
    for (const std::string& name : o.load_models) {
      Reply r = manager.Load(name);
      if (!r.ok()) {
        ++failed;
        std::cerr << fmt::format("kiln serve: model '{}' failed to load: {}\n", name, r.message);
      }
    }
  } else {
    failed = manager.LoadAll();
  }
  loaded = true;
  size_t ready_models = 0;
  for (const auto& e : manager.Index()) ready_models += e.state == "READY";
  std::cerr << fmt::format("kiln serve: ready in {:.0f} ms: {} model version{} serving, {} failed\n",
                           std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count(),
                           ready_models, ready_models == 1 ? "" : "s", failed);

  // Repository polling until shutdown.
  std::mutex stop_mu;
  std::condition_variable stop_cv;
  bool stop = false;
  std::thread poller;
  if (o.model_control == "poll") {
    poller = std::thread([&] {
      std::unique_lock<std::mutex> lock(stop_mu);
      while (!stop_cv.wait_for(lock, std::chrono::milliseconds(std::max(100, o.poll_seconds * 1000)), [&] { return stop; })) {
        lock.unlock();
        manager.Poll();
        lock.lock();
      }
    });
  }

  int sig = 0;
  sigwait(&signals, &sig);
  std::cerr << fmt::format("kiln serve: {}: draining\n", sig == SIGTERM ? "SIGTERM" : "SIGINT");
  draining = true;  // readiness fails now, so load balancers stop sending
  if (o.drain_seconds > 0)
    std::this_thread::sleep_for(std::chrono::milliseconds(static_cast<int64_t>(o.drain_seconds * 1000)));
  {
    std::lock_guard<std::mutex> lock(stop_mu);
    stop = true;
  }
  stop_cv.notify_all();
  if (poller.joinable()) poller.join();
  // Stop accepting; each frontend answers what it accepted before returning.
  if (http) http->Stop();
  if (grpc) grpc->Shutdown();
  if (metrics) metrics->Stop();
  if (http_thread.joinable()) http_thread.join();
  if (metrics_thread.joinable()) metrics_thread.join();
  std::cerr << "kiln serve: stopped\n";
  return 0;
}

}  // namespace kiln::server
