// The reference backend's kernel interface. Reference kernels are the oracle every fast
// kernel and every pass is tested against: clarity beats speed. A kernel reads its inputs
// and attributes, allocates its outputs (their shapes may depend on data) and returns a
// Status whose message names the field at fault; the executor adds the node's name.
#pragma once

#include <functional>
#include <map>
#include <string>
#include <vector>

#include "base/status.h"
#include "ir/graph.h"
#include "ir/rvalue.h"
#include "ir/tensor.h"

namespace kiln {

class RefExecutor;
struct RefScope;

class RefContext {
 public:
  RefContext(const Graph& graph, const Node& node, NodeId id, std::vector<const RValue*> inputs,
             RefExecutor* executor, const RefScope* scope);

  const Node& node() const { return node_; }
  const AttrMap& attrs() const { return node_.attrs; }

  int num_inputs() const { return static_cast<int>(inputs_.size()); }
  int num_outputs() const { return static_cast<int>(node_.outputs.size()); }
  // False for an omitted optional input, an empty optional value, or an index past the end.
  bool has_input(int i) const;
  // Input i as a tensor; requires has_input(i) and a tensor value. Use input_value for
  // sequences/optionals. Kernels that take tensors should check with RequireTensor.
  const Tensor& input(int i) const;
  const RValue& input_value(int i) const;  // RValue::None() when absent
  // Error unless input i is present and a tensor.
  Status RequireTensor(int i) const;
  // Whether the model consumes output i (an omitted trailing output need not be computed).
  bool has_output(int i) const;

  void set_output(int i, Tensor t) { set_output_value(i, RValue(std::move(t))); }
  void set_output_value(int i, RValue v);
  std::vector<RValue>& outputs() { return outputs_; }

  // Runs a subgraph (If/Loop/Scan body) with the given inputs; outer-scope values it
  // captures are resolved through this node's scope.
  StatusOr<std::vector<RValue>> RunSubgraph(const Graph& body, std::vector<RValue> inputs) const;

 private:
  const Graph& graph_;
  const Node& node_;
  NodeId id_;
  std::vector<const RValue*> inputs_;
  std::vector<RValue> outputs_;
  RefExecutor* executor_;
  const RefScope* scope_;
};

using RefKernelFn = Status (*)(RefContext&);

// Explicit table: each family file under src/backends/ref/ops/ defines
// Register<Family>Kernels(RefKernelRegistry&), called from executor.cc (RefKernelRegistry::Global).
class RefKernelRegistry {
 public:
  static const RefKernelRegistry& Global();
  void Add(const std::string& domain, const std::string& op_type, RefKernelFn fn);
  RefKernelFn Find(const std::string& domain, const std::string& op_type) const;

 private:
  std::map<std::pair<std::string, std::string>, RefKernelFn> kernels_;
};

// Nodes of this domain are not the reference executor's: each is another backend's
// compiled part of the graph (backends/partition.h: a backend's islands), run through Options::external.
inline constexpr const char* kExternalDomain = "kiln.external";

// Runs a graph with the reference kernels.
class RefExecutor {
 public:
  struct Options {
    // Check every kernel's output against the statically inferred type (dtype, rank and
    // every known dim): catches bugs in both.
    bool check_inferred_types = true;
    // Runs a node of kExternalDomain (inputs and outputs through the context, as a kernel).
    std::function<Status(const Node&, RefContext&)> external;
    // When set: the wall time (ms) of every node of the top-level graph, as it ran (the
    // executor appends; subgraph nodes count in their control-flow node).
    std::vector<std::pair<NodeId, double>>* node_ms = nullptr;
  };
  RefExecutor() = default;
  explicit RefExecutor(Options o) : options_(std::move(o)) {}

  // inputs: one per graph input, in graph-input order.
  StatusOr<std::vector<RValue>> Run(const Graph& graph, std::vector<RValue> inputs);
  // Evaluates a single node with constant inputs (constant folding).
  StatusOr<std::vector<Tensor>> EvaluateNode(const Graph& graph, NodeId id, const std::vector<const Tensor*>& inputs);

  // Internal: used by RefContext::RunSubgraph.
  StatusOr<std::vector<RValue>> RunScoped(const Graph& graph, std::vector<RValue> inputs, const RefScope* parent);

 private:
  Options options_;
  // Topological orders of the graphs this executor ran (a Loop body runs once per iteration).
  std::map<const Graph*, std::vector<NodeId>> orders_;
};

}  // namespace kiln
