// Small helpers shared by passes: matching stays in the passes, these only edit.
#pragma once

#include <set>
#include <string>

#include "ir/graph.h"

namespace kiln {

// Names of this graph's values that subgraphs (If/Loop/Scan bodies, at any depth) read
// by name. Passes must not rename or remove those values.
std::set<std::string> CapturedNames(const Graph& graph);

bool IsGraphOutput(const Graph& graph, ValueId v);

// Makes every reader of `from` read `to` instead, keeping graph-output names: when `from`
// is a graph output, `to`'s producer is made to write `from` instead (possible only when
// `to` is produced by a node, read by nobody else, and not itself a graph output).
// Returns false (nothing changed) when that is impossible.
bool ForwardValue(Graph& graph, ValueId from, ValueId to);

// True for ops whose result differs between runs (never folded or deduplicated).
bool IsNondeterministicOp(const Node& node);
// True when the node has a subgraph attribute (If, Loop, Scan, SequenceMap, or a fusion epilogue).
bool HasSubgraph(const Node& node);
// The same, not counting a fusion epilogue.
bool HasControlFlowSubgraph(const Node& node);

}  // namespace kiln

namespace kiln {

// The source node names a node stands for: its provenance list if it has one (a node made
// by an earlier rewrite), else its own name.
std::vector<std::string> AbsorbedNames(const Node& node);

}  // namespace kiln
