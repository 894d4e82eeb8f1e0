// Specializing a graph for the shapes it runs at: input dims fixed (or made symbolic for a
// shape profile) and every type re-inferred, with the reference backend evaluating the
// constant subgraphs that shapes depend on. The builder does it once per build; the runtime
// per new input shape of a dynamic engine or CPU island.
#pragma once

#include <map>
#include <string>
#include <vector>

#include "base/status.h"
#include "ir/graph.h"
#include "ir/infer.h"
#include "ir/rvalue.h"

namespace kiln {

// Fixes symbolic or unknown input dims to concrete sizes and re-infers every type.
// `shapes` maps input name -> dims; inputs not listed get 1 for every non-fixed dim.
Status SetInputShapes(Graph& graph, const std::map<std::string, std::vector<int64_t>>& shapes);
// The same with symbolic dims allowed (dynamic-shape profiles): inputs in `dims` get those
// dims, inputs in `fixed` those sizes, the others 1 for each dynamic dim; types re-inferred.
Status SetInputDims(Graph& graph, const std::map<std::string, std::vector<Dim>>& dims,
                    const std::map<std::string, std::vector<int64_t>>& fixed);

// The reference evaluator used for constant folding and data propagation.
const ConstantEvaluator& ReferenceEvaluator();

// Checks a value against a graph input's declared type (dtype, rank, known dims), with a
// message naming the input.
Status CheckInputMatches(const Value& input, const RValue& v);

// A copy of `g` whose subgraphs (fused epilogues, control flow) are copies too; constants
// share their storage.
Graph DeepCopy(const Graph& g);

// Drops the types inference wrote into subgraphs (fused epilogues): re-inference for other
// input shapes must not merge with the old ones.
void ClearSubgraphTypes(Graph& g);

}  // namespace kiln
