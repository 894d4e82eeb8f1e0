// A graph pass: a small, single-purpose rewrite with a stable name. Passes never change
// numerics beyond float reassociation. See passes.h for the catalog and
// pass_manager.h for how they run.
#pragma once

#include <string>
#include <vector>

#include "base/status.h"
#include "ir/graph.h"
#include "ir/infer.h"

namespace kiln {

// One fusion or rewrite that fired, for `kiln inspect` and logs.
struct RewriteRecord {
  std::string pass;
  std::string layer;                 // name of the resulting node
  std::vector<std::string> absorbed; // source node names it replaced
};

struct PassContext {
  // Evaluates a node on constant inputs (the reference backend); used by fold_constants.
  const ConstantEvaluator* evaluator = nullptr;
  // Largest constant (elements) folding may create; bigger results stay computed at run time.
  int64_t max_fold_elements = int64_t{1} << 22;
  std::vector<RewriteRecord> records;
};

// Returns whether the graph changed.
using PassFn = StatusOr<bool> (*)(Graph& graph, PassContext& ctx);

struct PassInfo {
  const char* name;  // stable: used by --disable-pass and KILN_PASSES
  const char* doc;   // one line
  PassFn run;
};

}  // namespace kiln
