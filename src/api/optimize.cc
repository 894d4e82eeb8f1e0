#include "api/optimize.h"

#include "backends/ref/kernel.h"
#include "ir/infer.h"
#include "passes/pass_manager.h"
#include "passes/passes.h"

namespace kiln {

const ConstantEvaluator& ReferenceEvaluator() {
  static const ConstantEvaluator eval = [](const Graph& g, NodeId id, const std::vector<const Tensor*>& ins) {
    RefExecutor ex;
    return ex.EvaluateNode(g, id, ins);
  };
  return eval;
}

StatusOr<OptimizeReport> OptimizeGraph(Graph& graph, const OptimizeOptions& options) {
  OptimizeReport report;
  report.source_nodes = graph.num_live_nodes();
  PassManagerOptions pm_options;
  pm_options.disabled = options.disabled_passes;
  pm_options.dump_dir = options.dump_dir;
  for (const std::string& name : options.disabled_passes) {
    bool known = false;
    for (const PassInfo& p : DefaultPasses()) known = known || name == p.name;
    if (!known) return InvalidArgument("--disable-pass: no pass named '", name, "'");
  }
  PassManager pm(pm_options, DefaultPasses());
  PassContext ctx;
  ctx.evaluator = &ReferenceEvaluator();
  KILN_RETURN_IF_ERROR(pm.Run(graph, ctx));
  report.layers = graph.num_live_nodes();
  report.records = std::move(ctx.records);
  return report;
}

Status SetInputShapes(Graph& graph, const std::map<std::string, std::vector<int64_t>>& shapes) {
  return SetInputDims(graph, {}, shapes);
}

Status SetInputDims(Graph& graph, const std::map<std::string, std::vector<Dim>>& symbolic,
                    const std::map<std::string, std::vector<int64_t>>& shapes) {
  for (const auto& [name, dims] : symbolic) {
    bool found = false;
    for (ValueId v : graph.inputs()) found = found || graph.value(v).name == name;
    if (!found) return InvalidArgument("profile: the model has no input named '", name, "'");
  }
  for (const auto& [name, dims] : shapes) {
    bool found = false;
    for (ValueId v : graph.inputs()) found = found || graph.value(v).name == name;
    if (!found) return InvalidArgument("--shapes: the model has no input named '", name, "'");
  }
  for (ValueId v : graph.inputs()) {
    Value& val = graph.value(v);
    if (!val.type.is_tensor()) continue;
    if (auto sym = symbolic.find(val.name); sym != symbolic.end()) {
      const Shape& s = val.type.shape;
      if (s.has_rank() && s.rank() != static_cast<int>(sym->second.size()))
        return InvalidArgument("profile: input '", val.name, "' has rank ", s.rank(), ", the profile gives ", sym->second.size());
      for (int i = 0; s.has_rank() && i < s.rank(); ++i) {
        const Dim& want = sym->second[static_cast<size_t>(i)];
        // A dimension fixed in the model stays fixed (weights typically depend on it).
        if (s.dim(i).known() && (!want.known() || want.value != s.dim(i).value))
          return InvalidArgument("profile: input '", val.name, "' dimension ", i, " is fixed at ", s.dim(i).value,
                                 " in the model");
      }
      val.type.shape = Shape(sym->second);
      continue;
    }
    auto it = shapes.find(val.name);
    if (it != shapes.end()) {
      const Shape& s = val.type.shape;
      if (s.has_rank() && s.rank() != static_cast<int>(it->second.size()))
        return InvalidArgument("--shapes: input '", val.name, "' has rank ", s.rank(), ", got ",
                               DimsToString(it->second));
      for (int i = 0; s.has_rank() && i < s.rank(); ++i)
        if (s.dim(i).known() && s.dim(i).value != it->second[static_cast<size_t>(i)])
          return InvalidArgument("--shapes: input '", val.name, "' dimension ", i, " is fixed at ", s.dim(i).value);
      val.type.shape = Shape::FromDims(it->second);
    } else if (val.type.shape.has_rank()) {
      for (Dim& d : val.type.shape.dims())
        if (!d.known()) d = Dim(1);
    }
  }
  // Re-infer from scratch: drop every inferred (non-input, non-constant) type first.
  for (int v = 0; v < graph.num_values(); ++v) {
    Value& val = graph.value(v);
    if (val.producer >= 0 && !val.constant) val.type = TypeInfo{};
  }
  InferOptions io;
  io.evaluator = &ReferenceEvaluator();
  return InferTypes(graph, io);
}

}  // namespace kiln
