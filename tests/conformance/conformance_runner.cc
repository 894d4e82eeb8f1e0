// Runs ONNX's backend test data (libonnx-testdata: node, pytorch-converted,
// pytorch-operator, simple) through kiln's importer and reference backend and compares
// with the reference outputs the way onnx.backend.test does: same dtype, same shape,
// |a-e| <= atol + rtol*|e| (rtol 1e-3, atol 1e-7), NaN equals NaN.
//
// Each test runs in a forked child with a time limit, so a crash or hang in one op is a
// reported status ("crash", "timeout"), never the end of the run.
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <chrono>
#include <cmath>
#include <csignal>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <nlohmann/json.hpp>
#include <regex>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "api/engine_internal.h"
#include "api/model.h"
#include "api/optimize.h"
#include "builder/memory_planner.h"
#include "backends/ref/kernel.h"
#include "frontend/onnx/tensor_proto.h"

namespace fs = std::filesystem;
using namespace kiln;

namespace {

struct Options {
  std::string data_dir = "/usr/share/libonnx-testdata/data";
  std::vector<std::string> suites = {"node", "pytorch-converted", "pytorch-operator", "simple"};
  std::string filter;
  std::string failures_file, json_file, md_file, expect_file, write_expect_file, ort_json;
  double rtol = 1e-3, atol = 1e-7;
  int timeout_s = 60;
  bool verbose = false;
  bool optimize = false;  // run the optimizer's default pipeline before executing
  // "ref": the reference executor; "cpu": the Engine on the fast CPU backend (optimizer on,
  // shapes from the test data); tests it cannot take (non-tensor inputs/outputs, inputs
  // that differ from the declared shapes) run on the reference, counted in `on_reference`.
  std::string backend = "ref";
};

// Statuses, in table order.
const std::vector<std::string> kStatuses = {"pass", "mismatch", "unsupported", "error", "crash", "timeout"};

struct Result {
  std::string status;
  std::string detail;
};

std::string CompareTensor(const Tensor& got, const Tensor& want, const Options& o, const std::string& what) {
  if (got.dtype() != want.dtype())
    return StrCat(what, ": dtype ", DTypeName(got.dtype()), " != expected ", DTypeName(want.dtype()));
  if (got.dims() != want.dims())
    return StrCat(what, ": shape ", DimsToString(got.dims()), " != expected ", DimsToString(want.dims()));
  if (got.dtype() == DType::kString) {
    for (int64_t i = 0; i < got.numel(); ++i)
      if (got.data<std::string>()[i] != want.data<std::string>()[i])
        return StrCat(what, ": string [", i, "] '", got.data<std::string>()[i], "' != '", want.data<std::string>()[i], "'");
    return {};
  }
  if (got.dtype() == DType::kComplex64 || got.dtype() == DType::kComplex128) {
    Tensor g = *got.CastTo(got.dtype()), w = want;
    const int64_t n = got.numel() * 2;
    auto at = [](const Tensor& t, int64_t i) {
      return t.dtype() == DType::kComplex64 ? double(reinterpret_cast<const float*>(t.raw_data())[i])
                                            : reinterpret_cast<const double*>(t.raw_data())[i];
    };
    for (int64_t i = 0; i < n; ++i) {
      double a = at(got, i), e = at(want, i);
      if (!(std::fabs(a - e) <= o.atol + o.rtol * std::fabs(e)) && !(std::isnan(a) && std::isnan(e)))
        return StrCat(what, ": complex component ", i, " got ", a, " expected ", e);
    }
    return {};
  }
  int64_t bad = 0, worst = -1;
  double worst_err = -1;
  for (int64_t i = 0; i < got.numel(); ++i) {
    double a = got.GetAsDouble(i), e = want.GetAsDouble(i);
    if (a == e || (std::isnan(a) && std::isnan(e))) continue;
    double err = std::fabs(a - e);
    if (!(err <= o.atol + o.rtol * std::fabs(e))) {
      ++bad;
      if (std::isnan(err) || err > worst_err) { worst_err = std::isnan(err) ? INFINITY : err; worst = i; }
    }
  }
  if (bad == 0) return {};
  std::ostringstream os;
  os.precision(8);
  os << what << ": " << bad << "/" << got.numel() << " values differ; max_abs " << worst_err << ", worst [" << worst
     << "] got " << got.GetAsDouble(worst) << " expected " << want.GetAsDouble(worst);
  return os.str();
}

std::string CompareValue(const RValue& got, const RValue& want, const Options& o, const std::string& what) {
  if (want.is_none()) return got.is_none() ? std::string() : StrCat(what, ": expected an empty optional");
  if (want.is_sequence()) {
    if (!got.is_sequence()) return StrCat(what, ": expected a sequence");
    if (got.sequence.size() != want.sequence.size())
      return StrCat(what, ": sequence length ", got.sequence.size(), " != expected ", want.sequence.size());
    for (size_t i = 0; i < got.sequence.size(); ++i) {
      std::string d = CompareTensor(got.sequence[i], want.sequence[i], o, StrCat(what, "[", i, "]"));
      if (!d.empty()) return d;
    }
    return {};
  }
  if (!got.is_tensor()) return StrCat(what, ": expected a tensor");
  return CompareTensor(got.tensor, want.tensor, o, what);
}

std::vector<fs::path> SortedFiles(const fs::path& dir, const std::string& prefix) {
  std::vector<std::pair<int, fs::path>> files;
  for (const auto& e : fs::directory_iterator(dir)) {
    std::string name = e.path().filename().string();
    if (name.rfind(prefix, 0) == 0 && e.path().extension() == ".pb")
      files.emplace_back(std::atoi(name.c_str() + prefix.size()), e.path());
  }
  std::sort(files.begin(), files.end());
  std::vector<fs::path> out;
  for (auto& f : files) out.push_back(f.second);
  return out;
}

// NumPy has no bfloat16: ONNX's test data stores bfloat16 tensors as their uint16 bits.
RValue AsDeclaredBFloat16(RValue v, const TypeInfo& declared) {
  if (v.is_tensor() && declared.is_tensor() && declared.dtype == DType::kBFloat16 && v.tensor.dtype() == DType::kUInt16) {
    Tensor t(DType::kBFloat16, v.tensor.dims());
    std::memcpy(t.raw_data(), v.tensor.raw_data(), t.nbytes());
    return RValue(std::move(t));
  }
  return v;
}

bool g_ran_on_cpu = false;  // the last RunTest ran (some of) its sets on the CPU engine

// The test's model built into an Engine on the CPU backend for these inputs' shapes.
// Unimplemented: the Engine cannot take this test (the caller runs the reference).
StatusOr<std::vector<RValue>> RunOnCpuEngine(const fs::path& dir, const Graph& g, const std::vector<RValue>& inputs) {
  BuildOptions options;
  options.backend = Backend::kCpu;
  for (size_t i = 0; i < inputs.size(); ++i) {
    if (!inputs[i].is_tensor()) return Unimplemented("non-tensor input");
    const TypeInfo& t = g.value(g.inputs()[i]).type;
    if (!t.is_tensor()) return Unimplemented("non-tensor input");
    if (Status st = CheckInputMatches(g.value(g.inputs()[i]), inputs[i]); !st.ok()) return Unimplemented(st.message());
    options.input_shapes[g.value(g.inputs()[i]).name] = inputs[i].tensor.dims();
  }
  for (ValueId v : g.outputs())
    if (!g.value(v).type.is_tensor()) return Unimplemented("non-tensor output");
  auto model = LoadOnnxModel((dir / "model.onnx").string());
  if (!model.ok()) return model.status();
  auto engine = BuildEngineFromGraph(std::move(model->graph), options);
  if (!engine.ok()) {
    if (engine.status().message().find("not supported by the Engine API") != std::string::npos)
      return Unimplemented(engine.status().message());
    return engine.status();
  }
  if (EngineCpuProgram(**engine) == nullptr) return Unimplemented("the CPU backend does not take this graph");
  auto ctx = (*engine)->CreateContext();
  for (size_t i = 0; i < inputs.size(); ++i) {
    const Tensor& t = inputs[i].tensor;
    KILN_RETURN_IF_ERROR(ctx->SetInput(static_cast<int>(i), HostTensor::Wrap(static_cast<DataType>(static_cast<int>(t.dtype())),
                                                                             t.dims(), const_cast<void*>(t.raw_data()))));
  }
  KILN_RETURN_IF_ERROR(ctx->Run());
  std::vector<RValue> outs;
  for (size_t i = 0; i < (*engine)->outputs().size(); ++i) {
    KILN_ASSIGN_OR_RETURN(HostTensor h, ctx->Output(static_cast<int>(i)));
    Tensor t(static_cast<DType>(static_cast<int>(h.dtype())), h.shape());
    if (t.nbytes() > 0) std::memcpy(t.raw_data(), h.data(), t.nbytes());
    outs.emplace_back(std::move(t));
  }
  return outs;
}

Result RunTest(const fs::path& dir, const Options& o) {
  g_ran_on_cpu = false;
  auto model = LoadOnnxModel((dir / "model.onnx").string());
  if (!model.ok()) {
    const Status& s = model.status();
    return {s.code() == StatusCode::kUnimplemented ? "unsupported" : "error", s.message()};
  }
  if (o.optimize) {
    auto report = OptimizeGraph(*model->graph);
    if (!report.ok()) return {"error", "optimizer: " + report.status().message()};
    // The memory plan of every statically shaped model must hold its invariants.
    if (auto plan = PlanMemory(*model->graph); plan.ok()) {
      Status v = VerifyMemoryPlan(*model->graph, *plan);
      if (!v.ok()) return {"error", v.message()};
    }
  }
  const Graph& g = *model->graph;
  std::vector<fs::path> sets;
  for (const auto& e : fs::directory_iterator(dir))
    if (e.is_directory() && e.path().filename().string().rfind("test_data_set_", 0) == 0) sets.push_back(e.path());
  std::sort(sets.begin(), sets.end());
  if (sets.empty()) return {"error", "no test_data_set_* folder"};
  for (const fs::path& set : sets) {
    std::vector<RValue> inputs;
    std::vector<fs::path> in_files = SortedFiles(set, "input_");
    // Test data may omit trailing optional inputs (graph inputs with defaults).
    if (in_files.size() > g.inputs().size())
      return {"error", StrCat(set.filename().string(), ": ", in_files.size(), " input files for ", g.inputs().size(), " graph inputs")};
    for (size_t i = 0; i < in_files.size(); ++i) {
      auto v = ReadValueProtoFile(in_files[i].string(), &g.value(g.inputs()[i]).type);
      if (!v.ok()) return {"error", v.status().message()};
      inputs.push_back(AsDeclaredBFloat16(std::move(*v), g.value(g.inputs()[i]).type));
    }
    while (inputs.size() < g.inputs().size()) inputs.push_back(RValue::None());
    StatusOr<std::vector<RValue>> outs = Status::OK();
    bool ran_cpu = false;
    if (o.backend == "cpu") {
      auto cpu_outs = RunOnCpuEngine(dir, g, inputs);
      if (cpu_outs.ok()) {
        outs = std::move(*cpu_outs);
        ran_cpu = true;
      } else if (cpu_outs.status().code() != StatusCode::kUnimplemented) {
        return {"error", "cpu engine: " + cpu_outs.status().message()};
      }
    }
    if (!ran_cpu) {
      // The executor directly, without `kiln run`'s strict input-shape check: a few test
      // sets feed shapes other than the model declares (e.g. CastLike's 'like' input).
      RefExecutor executor;
      outs = executor.Run(g, std::move(inputs));
    } else {
      g_ran_on_cpu = true;
    }
    if (!outs.ok()) {
      const Status& s = outs.status();
      return {s.code() == StatusCode::kUnimplemented ? "unsupported" : "error", s.message()};
    }
    std::vector<fs::path> out_files = SortedFiles(set, "output_");
    if (out_files.size() != outs->size())
      return {"mismatch", StrCat(out_files.size(), " expected outputs, kiln produced ", outs->size())};
    for (size_t i = 0; i < out_files.size(); ++i) {
      auto want = ReadValueProtoFile(out_files[i].string(), &g.value(g.outputs()[i]).type);
      if (!want.ok()) return {"error", want.status().message()};
      *want = AsDeclaredBFloat16(std::move(*want), g.value(g.outputs()[i]).type);
      std::string d = CompareValue((*outs)[i], *want, o,
                                   StrCat(set.filename().string(), ": output '", g.value(g.outputs()[i]).name, "'"));
      if (!d.empty()) return {"mismatch", d};
    }
  }
  return {"pass", g_ran_on_cpu ? "ran on the cpu engine" : ""};
}

// Runs one test in a child process with a time limit.
Result RunIsolated(const fs::path& dir, const Options& o) {
  int fds[2];
  if (pipe(fds) != 0) return RunTest(dir, o);
  pid_t pid = fork();
  if (pid == 0) {
    close(fds[0]);
    alarm(static_cast<unsigned>(o.timeout_s));
    Result r = RunTest(dir, o);
    std::string msg = r.status + "\n" + r.detail;
    if (write(fds[1], msg.data(), msg.size()) < 0) _exit(3);
    close(fds[1]);
    _exit(0);
  }
  close(fds[1]);
  std::string buf;
  char tmp[4096];
  ssize_t n;
  while ((n = read(fds[0], tmp, sizeof tmp)) > 0) buf.append(tmp, static_cast<size_t>(n));
  close(fds[0]);
  int wstatus = 0;
  waitpid(pid, &wstatus, 0);
  if (WIFSIGNALED(wstatus)) {
    int sig = WTERMSIG(wstatus);
    if (sig == SIGALRM) return {"timeout", StrCat("no result after ", o.timeout_s, " s")};
    return {"crash", StrCat("killed by signal ", sig, " (", strsignal(sig), ")")};
  }
  size_t nl = buf.find('\n');
  if (nl == std::string::npos) return {"crash", StrCat("child exited with status ", WEXITSTATUS(wstatus), " and no result")};
  return {buf.substr(0, nl), buf.substr(nl + 1)};
}

std::set<std::string> ReadList(const std::string& path) {
  std::set<std::string> s;
  std::ifstream in(path);
  std::string line;
  while (std::getline(in, line)) {
    if (line.empty() || line[0] == '#') continue;
    s.insert(line.substr(0, line.find_first_of(" \t")));
  }
  return s;
}

void Usage() {
  std::cout << "usage: kiln_conformance [--data-dir DIR] [--suites a,b] [--filter REGEX] [--failures FILE]\n"
               "                        [--json FILE] [--md FILE] [--expect FILE] [--write-expect FILE]\n"
               "                        [--ort-json FILE] [--timeout S] [-O] [--backend ref|cpu] [-v]\n"
               "Runs ONNX backend test data through kiln (reference backend), rtol 1e-3 / atol 1e-7.\n"
               "--expect FILE: exit 1 if a test listed there (suite/test per line) does not pass.\n"
               "-O, --optimize: run kiln's graph optimizer first (results must not change).\n"
               "--ort-json FILE: ONNX Runtime's results (../shared/bench/conformance) for a side-by-side table.\n";
}

}  // namespace

int main(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto next = [&]() -> std::string {
      if (i + 1 >= argc) { std::cerr << a << " needs a value\n"; std::exit(2); }
      return argv[++i];
    };
    if (a == "--data-dir") o.data_dir = next();
    else if (a == "--suites") {
      o.suites.clear();
      std::stringstream ss(next());
      for (std::string s; std::getline(ss, s, ',');) o.suites.push_back(s);
    } else if (a == "--filter") o.filter = next();
    else if (a == "--failures") o.failures_file = next();
    else if (a == "--json") o.json_file = next();
    else if (a == "--md") o.md_file = next();
    else if (a == "--expect") o.expect_file = next();
    else if (a == "--write-expect") o.write_expect_file = next();
    else if (a == "--ort-json") o.ort_json = next();
    else if (a == "--timeout") o.timeout_s = std::stoi(next());
    else if (a == "-v" || a == "--verbose") o.verbose = true;
    else if (a == "-O" || a == "--optimize") o.optimize = true;
    else if (a == "--backend") o.backend = next();
    else if (a == "-h" || a == "--help") { Usage(); return 0; }
    else { std::cerr << "unknown argument " << a << "\n"; Usage(); return 2; }
  }
  std::regex filter(o.filter.empty() ? ".*" : o.filter);
  nlohmann::json ort;
  if (!o.ort_json.empty()) {
    std::ifstream in(o.ort_json);
    if (in) ort = nlohmann::json::parse(in, nullptr, false);
  }
  std::map<std::string, std::map<std::string, int>> counts;
  std::map<std::string, Result> results;  // "suite/test" -> result
  auto t0 = std::chrono::steady_clock::now();
  for (const std::string& suite : o.suites) {
    fs::path sdir = fs::path(o.data_dir) / suite;
    if (!fs::is_directory(sdir)) { std::cerr << "missing suite folder " << sdir << "\n"; return 2; }
    std::vector<fs::path> tests;
    for (const auto& e : fs::directory_iterator(sdir))
      if (e.is_directory() && fs::exists(e.path() / "model.onnx")) tests.push_back(e.path());
    std::sort(tests.begin(), tests.end());
    for (const fs::path& t : tests) {
      std::string name = t.filename().string();
      if (!std::regex_search(name, filter)) continue;
      Result r = RunIsolated(t, o);
      counts[suite][r.status]++;
      counts[suite]["total"]++;
      if (o.verbose || (r.status != "pass" && !o.filter.empty()))
        std::cout << suite << "/" << name << ": " << r.status << (r.detail.empty() ? "" : " — " + r.detail) << "\n";
      results[suite + "/" + name] = r;
    }
  }
  double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  if (o.backend == "cpu") {
    int on_cpu = 0, passed = 0;
    for (const auto& [name, r] : results) {
      passed += r.status == "pass";
      on_cpu += r.status == "pass" && r.detail == "ran on the cpu engine";
    }
    std::cout << "cpu backend: " << on_cpu << " of " << passed
              << " passing tests ran on the CPU engine (the others have non-tensor I/O or inputs unlike the "
                 "declared types, and ran on the reference)\n";
  }

  // Table (kiln next to ORT when its results are given).
  std::ostringstream md;
  md << "| suite | tests | pass | mismatch | unsupported | error | crash | timeout |" << (ort.is_null() ? "" : " ORT 1.30 pass |") << "\n";
  md << "|---|---:|---:|---:|---:|---:|---:|---:|" << (ort.is_null() ? "" : "---:|") << "\n";
  std::map<std::string, int> all;
  int ort_all = 0;
  for (const std::string& suite : o.suites) {
    auto& c = counts[suite];
    md << "| " << suite << " | " << c["total"];
    for (const std::string& s : kStatuses) md << " | " << c[s];
    if (!ort.is_null()) {
      int p = ort["suites"][suite]["counts"].value("pass", 0);
      ort_all += p;
      md << " | " << p;
    }
    md << " |\n";
    for (auto& [k, v] : c) all[k] += v;
  }
  md << "| **all** | " << all["total"];
  for (const std::string& s : kStatuses) md << " | " << all[s];
  if (!ort.is_null()) md << " | " << ort_all;
  md << " |\n";
  std::cout << md.str();
  std::cout << "(" << secs << " s; rtol " << o.rtol << ", atol " << o.atol << ")\n";

  if (!ort.is_null()) {
    std::vector<std::string> ort_only;
    for (const auto& [key, r] : results) {
      auto slash = key.find('/');
      const auto& st = ort["suites"][key.substr(0, slash)]["tests"][key.substr(slash + 1)];
      if (r.status != "pass" && st.is_object() && st.value("status", "") == "pass") ort_only.push_back(key);
    }
    std::cout << ort_only.size() << " tests pass in ORT but not in kiln";
    if (!ort_only.empty() && ort_only.size() <= 40) {
      std::cout << ":";
      for (auto& k : ort_only) std::cout << " " << k;
    }
    std::cout << "\n";
  }
  if (!o.md_file.empty()) std::ofstream(o.md_file) << md.str();
  if (!o.failures_file.empty()) {
    std::ofstream f(o.failures_file);
    for (const auto& [k, r] : results)
      if (r.status != "pass") f << k << "\t" << r.status << "\t" << r.detail << "\n";
  }
  if (!o.json_file.empty()) {
    nlohmann::json j;
    j["rtol"] = o.rtol;
    j["atol"] = o.atol;
    for (const auto& [k, r] : results) j["tests"][k] = {{"status", r.status}, {"detail", r.detail}};
    for (auto& [s, c] : counts) j["counts"][s] = c;
    std::ofstream(o.json_file) << j.dump(1);
  }
  if (!o.write_expect_file.empty()) {
    std::ofstream f(o.write_expect_file);
    f << "# Conformance tests that must pass (suite/test). Regenerate with kiln_conformance --write-expect.\n";
    for (const auto& [k, r] : results)
      if (r.status == "pass") f << k << "\n";
  }
  int rc = 0;
  if (!o.expect_file.empty()) {
    std::set<std::string> expected = ReadList(o.expect_file);
    int regressed = 0, fresh = 0;
    for (const std::string& k : expected) {
      auto it = results.find(k);
      if (it == results.end()) continue;  // filtered out
      if (it->second.status != "pass") {
        std::cout << "REGRESSION " << k << ": " << it->second.status << " — " << it->second.detail << "\n";
        ++regressed;
      }
    }
    for (const auto& [k, r] : results)
      if (r.status == "pass" && !expected.count(k)) ++fresh;
    std::cout << "expected passes: " << expected.size() << ", regressions: " << regressed
              << ", new passes not in the list: " << fresh << "\n";
    if (regressed) rc = 1;
  }
  // Not the "N passed, N failed" form: non-passing tests here include expected ones.
  std::cout << "conformance: " << all["pass"] << " of " << all["total"] << " tests pass\n";
  return rc;
}
