// Runs passes to a fixed point, with switches for debugging: a pass can be disabled by
// name (--disable-pass NAME, or KILN_PASSES="-name1,-name2"; KILN_PASSES="a,b" runs only
// those), the IR can be dumped after every pass that changed it, and the graph is
// verified (topological order, edges, types re-inferred) after every pass.
#pragma once

#include <set>
#include <span>
#include <string>

#include "passes/pass.h"

namespace kiln {

struct PassManagerOptions {
  std::set<std::string> disabled;
  std::string dump_dir;       // non-empty: DIR/NN_<pass>.txt after each change
  int max_iterations = 8;     // rounds of the whole pipeline until nothing changes
  bool verify = true;
  bool read_env = true;       // apply KILN_PASSES
};

class PassManager {
 public:
  explicit PassManager(PassManagerOptions options, std::span<const PassInfo> passes);
  // Runs the pipeline; ctx collects what fired.
  Status Run(Graph& graph, PassContext& ctx) const;
  bool IsEnabled(const std::string& name) const;

 private:
  PassManagerOptions options_;
  std::span<const PassInfo> passes_;
  std::set<std::string> only_;  // from KILN_PASSES without '-': run only these
};

// Structural checks: every node input is produced, an input, an initializer or a capture;
// producer/consumer links agree; no cycle. Names the node at fault.
Status VerifyGraph(const Graph& graph);

}  // namespace kiln
