// The optimizer entry point: runs the default pass pipeline on an imported graph.
#pragma once

#include <map>
#include <set>
#include <string>
#include <vector>

#include "ir/graph.h"
#include "passes/pass.h"
#include "runtime/specialize.h"  // SetInputShapes, ReferenceEvaluator

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

}  // namespace kiln
