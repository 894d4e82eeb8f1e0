#include "api/optimize.h"

#include "runtime/specialize.h"
#include "ir/infer.h"
#include "passes/pass_manager.h"
#include "passes/passes.h"

namespace kiln {

StatusOr<OptimizeReport> OptimizeGraph(Graph& graph, const OptimizeOptions& options) {
  OptimizeReport report;
  report.source_nodes = graph.num_live_nodes();
  PassManagerOptions pm_options;
  pm_options.disabled = options.disabled_passes;
  pm_options.dump_dir = options.dump_dir;
  for (const std::string& name : options.disabled_passes) {
    bool known = false;
    for (const PassInfo& p : DefaultPasses()) known = known || name == p.name;
    if (!known) return InvalidArgument("disabled passes: no pass named '", name, "'");
  }
  PassManager pm(pm_options, DefaultPasses());
  PassContext ctx;
  ctx.evaluator = &ReferenceEvaluator();
  KILN_RETURN_IF_ERROR(pm.Run(graph, ctx));
  report.layers = graph.num_live_nodes();
  report.records = std::move(ctx.records);
  return report;
}

}  // namespace kiln
