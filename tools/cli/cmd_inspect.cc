// `kiln inspect MODEL.onnx|PLAN [--json] [--html FILE] [--dot FILE] [--shapes NAME=1x3x224x224]... [--disable-pass NAME]...
//  [--dump-ir DIR]`
// Shows the model before and after optimization: node and layer counts, every fusion with
// the source nodes it absorbed, the memory plan, and per-layer shapes and precisions.
// The --json form is documented in docs/inspect-json.md.
#include <algorithm>
#include <cstdio>
#include <iostream>
#include <functional>
#include <map>
#include <set>
#include <nlohmann/json.hpp>

#include "api/engine_internal.h"
#include "api/model.h"
#include "backends/cpu/cpu_backend.h"
#include "api/optimize.h"
#include "builder/memory_planner.h"
#include "ir/op_schema.h"
#include "plan/cpu_features.h"
#include "plan/plan_reader.h"
#include "tools/cli/commands.h"
#include "tools/cli/inspect_render.h"

namespace kiln::cli {

namespace {

struct InspectArgs {
  std::string model;
  bool json = false;
  std::vector<std::string> shapes;
  std::vector<std::string> disabled;
  std::string dump_dir;
  std::string html_file, dot_file;
  bool kernels = false;  // --kernels: compile for the CPU backend, list its steps
  std::string precision = "fp32";
  int threads = 0;
};

// Shape-only ops run as views: no kernel.
bool IsViewOp(const Node& n) {
  return n.domain.empty() && !n.attrs.has(kEpilogueAttr) &&
         (n.op_type == "Reshape" || n.op_type == "Flatten" || n.op_type == "Squeeze" || n.op_type == "Unsqueeze" ||
          n.op_type == "Identity");
}

std::string LayerOpName(const Node& n) {
  std::string op = n.op_type;
  if (const Attr* e = n.attrs.find(kEpilogueAttr); e && e->g) {
    auto order = e->g->TopologicalOrder();
    if (order.ok())
      for (NodeId id : *order) op += "+" + e->g->node(id).op_type;
  }
  return op;
}

// The part of the report an ONNX model and a plan share: layers (with a plan's recorded
// choices), memory plan, and with --kernels the CPU backend's steps. `j` holds the header
// fields already; print_header prints the text header.
int Report(const InspectArgs& a, const Graph& g, const MemoryPlan& mem, nlohmann::json j, bool from_plan,
           const std::function<StatusOr<std::shared_ptr<const Engine>>()>& make_engine,
           const std::function<void(int kernels)>& print_header) {
  auto order = g.TopologicalOrder();
  if (!order.ok()) {
    std::cerr << "error: " << a.model << ": " << order.status().message() << "\n";
    return 1;
  }
  int kernels = 0;
  nlohmann::json layers = nlohmann::json::array();
  for (NodeId id : *order) {
    const Node& n = g.node(id);
    const bool eliminated = std::find(mem.eliminated_concats.begin(), mem.eliminated_concats.end(), id) !=
                            mem.eliminated_concats.end();
    const bool slice_view =
        std::find(mem.view_nodes.begin(), mem.view_nodes.end(), id) != mem.view_nodes.end();
    const bool view = IsViewOp(n) || eliminated || slice_view;
    kernels += view ? 0 : 1;
    nlohmann::json l;
    l["name"] = n.name.empty() ? StrCat("#", id) : n.name;
    l["op"] = LayerOpName(n);
    l["kernel"] = !view;
    if (eliminated) l["eliminated"] = "concat: producers write into its slices";
    if (slice_view) l["eliminated"] = "view: its outputs are contiguous ranges of its input";
    l["fused_from"] = n.fused_from;
    nlohmann::json outs = nlohmann::json::array();
    for (ValueId o : n.outputs) {
      if (o == kNoValue) continue;
      const TypeInfo& t = g.value(o).type;
      outs.push_back({{"name", g.value(o).name}, {"dtype", DTypeName(t.dtype)}, {"shape", t.shape.ToString()}});
    }
    l["outputs"] = outs;
    nlohmann::json ins = nlohmann::json::array();  // activations only: the renderers draw edges from these
    for (ValueId v : n.inputs)
      if (v != kNoValue && !g.value(v).constant) ins.push_back(g.value(v).name);
    l["inputs"] = ins;
    // Choices a plan recorded (absent for an ONNX model): tactic, precision, weights layout.
    const Attr* precision = n.attrs.find("kiln.precision");
    l["precision"] = precision != nullptr && precision->type == Attr::Type::kString ? precision->s : "fp32";
    if (const Attr* t = n.attrs.find("kiln.tactic"); t != nullptr && t->type == Attr::Type::kString) l["tactic"] = t->s;
    const Node main = MainPartOf(n);
    if (main.inputs.size() > 1 && main.inputs[1] != kNoValue && g.value(main.inputs[1]).constant)
      if (std::string w = cpu::DescribePlanWeights(n, *g.value(main.inputs[1]).constant); !w.empty()) l["weights"] = w;
    layers.push_back(l);
  }
  j["kernels"] = kernels;
  j["memory"] = {{"arena_bytes", mem.arena_bytes},
                 {"naive_bytes", mem.naive_bytes},
                 {"ratio", mem.naive_bytes ? double(mem.arena_bytes) / double(mem.naive_bytes) : 0.0},
                 {"tensors", mem.num_tensors},
                 {"in_place", mem.num_in_place},
                 {"concat_slices", mem.concat_slices},
                 {"concats_eliminated", mem.eliminated_concats.size()},
                 {"slice_views", mem.slice_views}};
  j["layer_list"] = layers;
  if (a.kernels) {
    // The CPU backend's schedule: every step with its implementation and, where candidates
    // were timed, the winner and its time (TensorRT's "tactic" report).
    auto engine = make_engine();
    if (!engine.ok()) {
      std::cerr << "error: " << a.model << ": " << engine.status().message() << "\n";
      return 1;
    }
    nlohmann::json steps = nlohmann::json::array();
    if (const cpu::Program* p = EngineCpuProgram(**engine)) {
      for (const cpu::StepInfo& st : cpu::Steps(*p))
        steps.push_back({{"name", st.name}, {"op", st.op}, {"impl", st.impl}, {"tactic", st.tactic},
                         {"tactic_ms", st.tactic_ms}, {"precision", st.precision.empty() ? "fp32" : st.precision},
                         {"slow_path", cpu::IsSlowStep(st)}, {"note", st.note}});
      j["cpu_arena_bytes"] = cpu::ArenaBytes(*p);
      const cpu::WeightsPacking packing = cpu::WeightsPackingOf(*p);
      j["weights_in_place_bytes"] = packing.in_place_bytes;
      j["weights_repacked_bytes"] = packing.repacked_bytes;
    }
    j["cpu_backend"] = EngineBackendSummary(**engine);
    j["cpu_steps"] = steps;
    j["slow_paths"] = EngineSlowPaths(**engine);
  }
  j["graph_inputs"] = nlohmann::json::array();
  j["graph_outputs"] = nlohmann::json::array();
  for (ValueId v : g.inputs())
    if (!g.value(v).constant) j["graph_inputs"].push_back(g.value(v).name);
  for (ValueId v : g.outputs()) j["graph_outputs"].push_back(g.value(v).name);
  if (Status ws = WriteInspectFiles(j, a.dot_file, a.html_file); !ws.ok()) {
    std::cerr << "error: " << ws.message() << "\n";
    return 1;
  }
  if (a.json) {
    std::cout << j.dump(1) << "\n";
    return 0;
  }
  print_header(kernels);
  if (mem.placements.empty())
    std::printf("  activation arena: not planned for the whole graph (dynamic shapes or a partitioned graph: each program plans its own)\n");
  else
    std::printf("  activation arena %.2f MiB vs naive %.2f MiB (%.1f%%), %d tensors, %d in place\n",
                mem.arena_bytes / 1048576.0, mem.naive_bytes / 1048576.0,
                mem.naive_bytes ? 100.0 * mem.arena_bytes / mem.naive_bytes : 0.0, mem.num_tensors,
                mem.num_in_place);
  std::printf("  concat elimination: %zu Concats without a copy kernel, %d producers write into concat slices\n",
              mem.eliminated_concats.size(), mem.concat_slices);
  std::printf("\n  %-36s %-40s %-24s %s\n", "layer", "op", "output", from_plan ? "tactic, precision, weights" : "absorbed");
  for (const auto& l : layers) {
    std::string out = l["outputs"].empty() ? "" : l["outputs"][0]["shape"].get<std::string>();
    std::string last;
    if (from_plan) {
      last = l.value("tactic", std::string());
      if (l["precision"] != "fp32") last += (last.empty() ? "" : ", ") + l["precision"].get<std::string>();
      if (l.contains("weights")) last += (last.empty() ? "" : ", ") + l["weights"].get<std::string>();
    } else {
      for (const auto& s : l["fused_from"]) last += (last.empty() ? "" : ", ") + s.get<std::string>();
    }
    std::printf("  %-36s %-40s %-24s %s\n", l["name"].get<std::string>().c_str(), l["op"].get<std::string>().c_str(),
                out.c_str(), last.c_str());
  }
  if (a.kernels) {
    std::printf("\n  cpu backend: %s, arena %.2f MiB\n", j["cpu_backend"].get<std::string>().c_str(),
                j.contains("cpu_arena_bytes") ? j["cpu_arena_bytes"].get<double>() / 1048576.0 : 0.0);
    if (j.contains("weights_in_place_bytes"))
      std::printf("  kernel weights: %.2f MiB used as stored, %.2f MiB repacked\n",
                  j["weights_in_place_bytes"].get<double>() / 1048576.0, j["weights_repacked_bytes"].get<double>() / 1048576.0);
    // (A "copy" is a buffer a kernel overwrites, e.g. a residual summed into a copy of it.)
    int reorders = 0, concats = 0, copies = 0;
    for (const auto& st : j["cpu_steps"]) {
      const bool copy = st["name"].get<std::string>().rfind("copy ", 0) == 0;
      reorders += st["op"] == "Reorder" && !copy;
      copies += copy;
      concats += st["op"] == "Concat";
    }
    std::printf("  layout reorders: %d steps; concat copies: %d steps; buffer copies: %d steps\n", reorders, concats,
                copies);
    const auto& slow = j["slow_paths"];
    if (slow.empty()) std::printf("  slow paths: none (every step on an optimized kernel)\n");
    else std::printf("  slow paths: %zu step(s) on a reference implementation, marked *\n", slow.size());
    std::printf("  %-4s %-40s %-18s %-44s %s\n", "step", "name", "op", "kernel", "tactic (timed ms)");
    int i = 0;
    for (const auto& st : j["cpu_steps"]) {
      std::string tactic = st["tactic"].get<std::string>();
      if (!tactic.empty() && st["tactic_ms"].get<double>() > 0)
        tactic += StrCat(" (", st["tactic_ms"].get<double>(), ")");
      if (st["precision"] != "fp32") tactic += " " + st["precision"].get<std::string>();
      if (st["slow_path"].get<bool>()) tactic += " * " + st["note"].get<std::string>();
      std::printf("  %-4d %-40.40s %-18.18s %-44.44s %s\n", i++, st["name"].get<std::string>().c_str(),
                  st["op"].get<std::string>().c_str(), st["impl"].get<std::string>().c_str(), tactic.c_str());
    }
  }
  return 0;
}

std::string Join(const std::vector<std::string>& v) {
  std::string out;
  for (const std::string& x : v) out += (out.empty() ? "" : ", ") + x;
  return out;
}

// A plan: what it was built for and with (format, kiln, target, sizes), its layers with the
// recorded tactics and weight layouts; --kernels loads it as `kiln run` would.
int InspectPlan(const InspectArgs& a) {
  if (!a.shapes.empty() || !a.disabled.empty() || !a.dump_dir.empty() || a.precision != "fp32") {
    std::cerr << "error: " << a.model << ": a plan is optimized already: --shapes, --disable-pass, --dump-ir and "
              << "--precision apply to ONNX models\n";
    return 1;
  }
  // Any CPU's plan can be inspected: the ISA check is reported, not enforced, here.
  LoadPlanOptions lo;
  lo.cpu_features = std::vector<std::string>(KnownCpuFeatures().begin(), KnownCpuFeatures().end());
  auto plan = LoadPlan(a.model, lo);
  if (!plan.ok()) {
    std::cerr << "error: " << plan.status().message() << "\n";
    return 1;
  }
  const Graph& g = *plan->graph;
  std::vector<std::string> missing;
  for (const std::string& f : plan->target.isa_features) {
    auto has = CpuHasFeature(f);
    if (!has.ok() || !*has) missing.push_back(f);
  }
  // Weight bytes by how they are stored (each distinct range once).
  std::set<const void*> seen;
  int64_t packed = 0, copies = 0;
  for (NodeId id = 0; id < g.num_nodes(); ++id) {
    const Node& n = g.node(id);
    for (const char* name : {cpu::kPackedWeightsAttr, cpu::kKernelWeightsAttr}) {
      const Attr* at = n.attrs.find(name);
      if (at == nullptr || at->type != Attr::Type::kTensor || !seen.insert(at->t.raw_data()).second) continue;
      (std::string(name) == cpu::kKernelWeightsAttr ? copies : packed) += static_cast<int64_t>(at->t.nbytes());
    }
    if (n.attrs.has(cpu::kPackedMdAttr) && !n.attrs.has(cpu::kPackedWeightsAttr)) {
      const Node main = MainPartOf(n);
      if (main.inputs.size() > 1 && main.inputs[1] != kNoValue && g.value(main.inputs[1]).constant)
        packed += static_cast<int64_t>(g.value(main.inputs[1]).constant->nbytes());
    }
  }
  nlohmann::json j;
  j["model"] = a.model;
  j["format"] = "plan";
  j["format_version"] = plan->format_version;
  j["kiln_version"] = plan->kiln_version;
  j["backend"] = plan->target.backend;
  j["isa_features"] = plan->target.isa_features;
  j["isa_features_missing_here"] = missing;
  j["file_bytes"] = plan->file_bytes;
  j["weights_bytes"] = plan->weights_bytes;
  j["packed_weights_bytes"] = packed;
  j["kernel_copy_bytes"] = copies;
  j["batch_slice"] = plan->batch_slice;
  j["profiles"] = plan->profiles.size();
  int layers = 0;
  for (NodeId id = 0; id < g.num_nodes(); ++id) layers += g.node(id).dead ? 0 : 1;
  j["layers"] = layers;
  const std::string features = plan->target.isa_features.empty() ? "none" : Join(plan->target.isa_features);
  return Report(
      a, g, plan->memory, std::move(j), true,
      [&]() {
        BuildOptions bo;
        bo.threads = a.threads;
        return LoadOrBuild(a.model, bo);
      },
      [&](int kernels) {
        std::printf("%s\n  kiln plan, format %u (built by kiln %s), backend %s, CPU features needed: %s%s\n",
                    a.model.c_str(), plan->format_version, plan->kiln_version.c_str(), plan->target.backend.c_str(),
                    features.c_str(), missing.empty() ? "" : StrCat(" (this CPU lacks ", Join(missing), ")").c_str());
        std::printf("  %.2f MiB: weights %.2f MiB (%.2f MiB in kernel layouts, %.2f MiB kernel copies)\n",
                    plan->file_bytes / 1048576.0, plan->weights_bytes / 1048576.0, packed / 1048576.0, copies / 1048576.0);
        std::printf("  layers %d, kernels per inference %d%s%s\n", layers, kernels,
                    plan->profiles.empty() ? "" : StrCat(", ", plan->profiles.size(), " shape profiles").c_str(),
                    plan->batch_slice > 0 ? StrCat(", batch-parallel slices of ", plan->batch_slice).c_str() : "");
      });
}

int Inspect(const InspectArgs& a) {
  if (IsPlanFile(a.model)) return InspectPlan(a);
  std::map<std::string, std::vector<int64_t>> shapes;
  for (const std::string& s : a.shapes) {
    auto r = ParseShapeSpec(s);
    if (!r.ok()) {
      std::cerr << "error: " << r.status().message() << "\n";
      return 1;
    }
    shapes[r->first] = r->second;
  }
  auto model = LoadOnnxModel(a.model);
  if (!model.ok()) {
    std::cerr << "error: " << model.status().message() << "\n";
    return 1;
  }
  Graph& g = *model->graph;
  const int onnx_nodes = CountOnnxNodes(a.model);
  Status st = SetInputShapes(g, shapes);
  if (!st.ok()) {
    std::cerr << "error: " << a.model << ": " << st.message() << "\n";
    return 1;
  }
  OptimizeOptions oo;
  oo.disabled_passes = {a.disabled.begin(), a.disabled.end()};
  oo.dump_dir = a.dump_dir;
  auto report = OptimizeGraph(g, oo);
  if (!report.ok()) {
    std::cerr << "error: " << a.model << ": " << report.status().message() << "\n";
    return 1;
  }
  // A graph the cpu backend takes only in part (control flow, shapes from data) has no
  // single arena to plan (its islands plan their own).
  StatusOr<MemoryPlan> plan = PlanEngineMemory(g, /*dynamic=*/false, /*verify=*/true);
  if (!plan.ok()) {
    std::cerr << "error: " << a.model << ": " << plan.status().message() << "\n";
    return 1;
  }
  nlohmann::json j;
  j["model"] = a.model;
  j["format"] = "onnx";
  j["onnx_nodes"] = onnx_nodes;
  j["imported_nodes"] = report->source_nodes;
  j["layers"] = report->layers;
  std::map<std::string, int> fusions_by_pass;
  for (const RewriteRecord& r : report->records) fusions_by_pass[r.pass]++;
  j["rewrites"] = fusions_by_pass;
  return Report(
      a, g, *plan, std::move(j), false,
      [&]() -> StatusOr<std::shared_ptr<const Engine>> {
        BuildOptions bo;
        KILN_RETURN_IF_ERROR(ParseEngineFlags("", a.precision, "", &bo));
        bo.threads = a.threads;
        return MakeEngineFromOptimized(std::make_shared<Graph>(g), *plan, bo);
      },
      [&](int kernels) {
        std::printf("%s\n  ONNX nodes %d -> imported %d -> layers %d, kernels per inference %d\n", a.model.c_str(),
                    onnx_nodes, report->source_nodes, report->layers, kernels);
        for (const auto& [pass, count] : fusions_by_pass) std::printf("  %-34s fired %d times\n", pass.c_str(), count);
      });
}

}  // namespace

Command AddInspectCommand(CLI::App& app) {
  auto args = std::make_shared<InspectArgs>();
  CLI::App* cmd = app.add_subcommand("inspect", "Show a model before and after optimization");
  cmd->add_option("model", args->model, "ONNX model or plan file")->required()->check(kPath);
  cmd->add_flag("--json", args->json, "Machine-readable output (docs/inspect-json.md)");
  cmd->add_option("--shapes", args->shapes, "NAME=1x3x224x224: input shape to plan for (default: 1 for dynamic dims)");
  cmd->add_option("--disable-pass", args->disabled, "Switch a pass off by name (repeatable)");
  cmd->add_option("--dump-ir", args->dump_dir, "Write the IR after every pass that changed it into DIR")->check(kPath);
  cmd->add_option("--html", args->html_file, "Write an HTML report with the optimized graph (needs Graphviz 'dot')")->check(kPath);
  cmd->add_option("--dot", args->dot_file, "Write the optimized graph as a Graphviz DOT file")->check(kPath);
  cmd->add_flag("--kernels", args->kernels,
                "Compile for the CPU backend and list its steps: kernel, timed tactic, precision");
  cmd->add_option("--precision", args->precision, "With --kernels: fp32 or bf16");
  cmd->add_option("--threads", args->threads, "With --kernels: threads the tactics are timed with");
  return {cmd, [args] { return Inspect(*args); }};
}

}  // namespace kiln::cli
