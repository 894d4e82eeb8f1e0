// Matching helpers for the pattern-recognition passes (recognize_*): they find a
// decomposed op (LayerNorm, GELU, Softmax, attention) by walking producers back from the
// pattern's last node, and replace the whole pattern by one node.
#pragma once

#include <optional>
#include <set>
#include <string>
#include <vector>

#include "ir/graph.h"
#include "passes/pass.h"

namespace kiln {

class PatternMatcher {
 public:
  explicit PatternMatcher(const Graph& graph);

  // The live, unfused ai.onnx node of type `op` producing v, or -1.
  NodeId Producer(ValueId v, const char* op) const;
  // A one-element float constant's value.
  std::optional<double> Scalar(ValueId v) const;
  // An integer constant's values (e.g. Reduce axes).
  std::optional<std::vector<int64_t>> Ints(ValueId v) const;
  // The other input of a two-input node, given one of them (kNoValue if `v` is not an input).
  static ValueId Other(const Node& n, ValueId v);

  // True when every value a pattern node writes, except `out`, is read only by pattern
  // nodes and is neither a graph output nor read by a subgraph by name: then removing the
  // pattern loses nothing.
  bool OnlyInternalUses(const std::vector<NodeId>& nodes, ValueId out) const;

 private:
  const Graph& g_;
  std::set<std::string> captured_;
};

// Removes the pattern's nodes and adds `replacement`, which must write the pattern's output
// value; records the rewrite with the source names the pattern absorbed.
Status ReplacePattern(Graph& graph, PassContext& ctx, const char* pass, const std::vector<NodeId>& nodes,
                      Node replacement);

}  // namespace kiln
