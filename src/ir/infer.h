// Type and shape inference over a whole graph (and its subgraphs).
#pragma once

#include <functional>
#include <vector>

#include "base/status.h"
#include "ir/graph.h"

namespace kiln {

// Computes a node's outputs from constant inputs (constant folding for data propagation,
// e.g. Shape -> Gather -> Concat -> Reshape). Provided by the reference backend; the IR
// layer does not know kernels.
using ConstantEvaluator =
    std::function<StatusOr<std::vector<Tensor>>(const Graph&, NodeId, const std::vector<const Tensor*>&)>;

struct InferOptions {
  // When set, nodes whose inputs are all constant and small are evaluated so later
  // shape computations see their values (kept aside for inference; folding them into the
  // graph is the fold_constants pass's job).
  const ConstantEvaluator* evaluator = nullptr;
  int64_t max_fold_elements = 1 << 16;
};

// False when some output of `node` has a static shape of more than `max_elements` elements
// (or one whose count overflows): evaluating it just to fold or propagate it would
// materialize a large tensor. Outputs without a static shape do not count.
bool StaticOutputsWithin(const Graph& graph, const Node& node, int64_t max_elements);

// Infers the type of every node output in topological order, merging with the types the
// model declared: a declared dim that contradicts an inferred one is an error naming the
// value and node. Unknown ops are an Unimplemented error naming the node.
Status InferTypes(Graph& graph, const InferOptions& options = {});

// One node's output types from its inputs' (the op schema's rule, the required-input check
// included), stored on its outputs: for graphs built node by node (kiln/network.h). No
// subgraphs, epilogues or data propagation.
Status InferNodeTypes(Graph& graph, NodeId id);

}  // namespace kiln
