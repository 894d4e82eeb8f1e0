// Per-layer fallback: a graph a backend cannot take whole (control flow, sequences,
// optionals, strings, shapes that depend on data, a layer it has no kernel for) runs as
// "islands" — maximal groups of layers the backend supports (ExecutionBackend::
// WhyNotSupported), each compiled as one of its programs — inside a host graph that the
// reference executor runs, where each island is one node (op kIslandOp). Static islands
// compile at build; dynamic ones (dims known only at run time, but following from the input
// dims) compile per input dims when they run. The ONNX Runtime / TensorRT partitioning
// scheme: the fast kernels take every layer they can, the rest stays correct on the
// reference kernels.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "backends/backend.h"
#include "backends/ref/kernel.h"
#include "ir/graph.h"

namespace kiln {

// Why node `n` of `g` cannot run in any backend's program ("" when it might): a subgraph
// (control flow), or an input/output that is not a tensor of numeric type (its dims need
// not be known). Backends start their WhyNotSupported with it.
std::string WhyNotTensorNode(const Graph& g, NodeId n);

struct Island {
  // The island's own graph: inputs are the values it reads from the host, outputs those the
  // host (or the graph's outputs) read.
  std::shared_ptr<const Graph> graph;
  // Compiled at build for a static island; null for a dynamic one (dims known only at run
  // time): the engine compiles it per input shapes on first use.
  std::shared_ptr<const BackendProgram> program;
  // Dynamic islands: per graph input, whether it is a small integer tensor computed from dims
  // alone (a shape another part computed). Its values join the specialization's key and become
  // constants there, so that the shapes it sets are known when the island compiles.
  std::vector<bool> bake;
  // Inside a control-flow body (node_of/value_of index the body's graph, not the partitioned
  // graph: plans do not record its kernel choices).
  bool nested = false;
  // The island graph's node and value ids -> the partitioned graph's (for plans: tactics and
  // packed weights go back onto the original nodes).
  std::vector<NodeId> node_of;
  std::vector<ValueId> value_of;
};

struct Partition {
  // The graph the reference executor runs: every island's layers replaced by one node of op
  // kIslandOp (domain kIslandDomain) whose attribute kIslandIndexAttr indexes `islands`.
  std::shared_ptr<const Graph> host;
  std::vector<Island> islands;
  // The layers left on the reference backend: "'name' (Op): reference backend - why", in
  // topological order ("in 'loop' (Loop) body: ..." for a control-flow body's).
  std::vector<std::string> host_layers;
  int island_layers = 0;    // layers inside islands
  int dynamic_islands = 0;  // islands compiled per input shapes at run time
  // Per node of the partitioned graph: its island, -1 (host) or -2 (dropped: nothing reads it).
  std::vector<int> island_of;
};

inline constexpr const char* kIslandDomain = kExternalDomain;
inline constexpr const char* kIslandOp = "Island";
inline constexpr const char* kIslandIndexAttr = "kiln.island";

// Splits `g` (optimized, types inferred) into islands of the layers `backend` supports and
// a host graph, and compiles the static islands with `options`. Layers are grouped by "level" — the number of CPU/host
// changes on the longest path from the inputs — so that an island never feeds itself through a host layer (each island
// is convex and the host graph stays acyclic). An island whose layers all compute nothing worth a program (no layers)
// is not made.
StatusOr<Partition> CompilePartitioned(const Graph& g, const ExecutionBackend& backend, const BackendOptions& options);

}  // namespace kiln
