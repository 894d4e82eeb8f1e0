// The optimizer entry point: runs the default pass pipeline on an imported graph.
#pragma once

#include <map>
#include <set>
#include <string>
#include <vector>

#include "ir/graph.h"
#include "passes/pass.h"

namespace kiln {

struct OptimizeOptions {
  std::set<std::string> disabled_passes;  // --disable-pass
  std::string dump_dir;                   // --dump-ir
};

struct OptimizeReport {
  int source_nodes = 0;   // live nodes before optimization (Constant nodes were folded at import)
  int layers = 0;         // live nodes after
  std::vector<RewriteRecord> records;
};

StatusOr<OptimizeReport> OptimizeGraph(Graph& graph, const OptimizeOptions& options = {});

// Fixes symbolic or unknown input dims to concrete sizes and re-infers every type.
// `shapes` maps input name -> dims; inputs not listed get 1 for every non-fixed dim.
Status SetInputShapes(Graph& graph, const std::map<std::string, std::vector<int64_t>>& shapes);
// The same with symbolic dims allowed (dynamic-shape profiles): inputs in `dims` get those
// dims, inputs in `fixed` those sizes, the others 1 for each dynamic dim; types re-inferred.
Status SetInputDims(Graph& graph, const std::map<std::string, std::vector<Dim>>& dims,
                    const std::map<std::string, std::vector<int64_t>>& fixed);

// The reference evaluator used for constant folding and data propagation.
const ConstantEvaluator& ReferenceEvaluator();

}  // namespace kiln
