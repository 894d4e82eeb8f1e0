// Op schemas: arity, fusion class and type/shape inference for every op kiln knows.
// Registration is explicit: each family file under src/ir/ops/ defines a
// Register<Family>Schemas(OpRegistry&) that op_registry.cc calls (no static initializers).
#pragma once

#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "base/status.h"
#include "ir/graph.h"

namespace kiln {

// How an op may take part in fusion (used by the optimizer).
enum class FusionClass {
  kOpaque,            // never fused
  kElementwise,       // out[i] = f(in[i]) with identical shapes
  kBroadcast,         // elementwise with broadcasting
  kInjective,         // each output element reads one input element (Transpose, Slice...)
  kReduction,
  kComplexOutFusable, // Conv, MatMul, Gemm: elementwise epilogues can fuse into them
};

class InferenceContext {
 public:
  // known_values: constant values of non-initializer values found by the driver (may be null).
  InferenceContext(const Graph& graph, const Node& node, NodeId id,
                   const std::vector<std::optional<Tensor>>* known_values = nullptr);

  const Node& node() const { return node_; }
  const AttrMap& attrs() const { return node_.attrs; }
  const Graph& graph() const { return graph_; }

  int num_inputs() const { return static_cast<int>(node_.inputs.size()); }
  int num_outputs() const { return static_cast<int>(node_.outputs.size()); }
  // False for an omitted optional input or an index past the end.
  bool has_input(int i) const;
  bool has_output(int i) const;
  const TypeInfo& input_type(int i) const;   // requires has_input(i)
  // Constant value of input i when known at build time (initializer or folded), else nullptr.
  const Tensor* input_value(int i) const;

  // Set the inferred type of output i (ignored for an omitted output or one past the
  // node's output count: an op's optional trailing outputs need not be declared).
  void set_output_type(int i, TypeInfo t) {
    if (i >= 0 && static_cast<size_t>(i) < outputs_.size()) outputs_[static_cast<size_t>(i)] = std::move(t);
  }
  void set_output(int i, DType dt, Shape s) { set_output_type(i, TypeInfo::Tensor(dt, std::move(s))); }
  const TypeInfo& output_type(int i) const { return outputs_[static_cast<size_t>(i)]; }
  // Data propagation: an inference function that can compute an output's value from
  // static information alone (e.g. Shape of a statically shaped tensor) sets it here.
  void set_output_value(int i, Tensor t) {
    if (i < 0 || i >= num_outputs()) return;
    if (output_values_.size() <= static_cast<size_t>(i)) output_values_.resize(static_cast<size_t>(i) + 1);
    output_values_[static_cast<size_t>(i)] = std::move(t);
  }
  const std::vector<std::optional<Tensor>>& output_values() const { return output_values_; }

  // Infers a subgraph (If/Loop/Scan bodies) given its input types; returns its output types.
  // Set by the inference driver.
  std::function<StatusOr<std::vector<TypeInfo>>(const Graph&, const std::vector<TypeInfo>&)> infer_subgraph;

  std::vector<TypeInfo>& outputs() { return outputs_; }
  NodeId id() const { return id_; }  // the node's id in graph()

 private:
  const Graph& graph_;
  const Node& node_;
  NodeId id_;
  const std::vector<std::optional<Tensor>>* known_values_;
  std::vector<TypeInfo> outputs_;
  std::vector<std::optional<Tensor>> output_values_;
};

using InferFn = Status (*)(InferenceContext&);

struct OpSchema {
  std::string op_type;
  std::string domain;      // "" = ai.onnx
  int min_inputs = 0;
  int max_inputs = 0;      // kVariadic for unbounded
  int min_outputs = 1;
  int max_outputs = 1;
  InferFn infer = nullptr;
  FusionClass fusion = FusionClass::kOpaque;
  // Output 0 is input 0's bytes under another shape (Reshape, Flatten, Squeeze, Unsqueeze,
  // Identity): no kernel needs to run, the memory planner and backends alias it.
  bool view = false;
};
inline constexpr int kVariadic = 1 << 20;

// Whether a node is a view (OpSchema::view) as it stands: an ONNX view op without a fused
// epilogue (which would compute on the bytes).
bool IsViewNode(const Node& node);

class OpRegistry {
 public:
  // The registry with every schema of src/ir/ops/ (built once, thread-safe).
  static const OpRegistry& Global();
  void Add(OpSchema s);
  const OpSchema* Find(const std::string& domain, const std::string& op_type) const;
  std::vector<const OpSchema*> All() const;

 private:
  std::map<std::pair<std::string, std::string>, OpSchema> schemas_;
};

// Shared inference rules for the families.
Status InferSameAsInput0(InferenceContext& ctx);           // output 0 = type of input 0
StatusOr<Shape> BroadcastShapes(const std::vector<Shape>& shapes);  // NumPy rules, symbolic-aware
Status InferBroadcast(InferenceContext& ctx);              // output 0: dtype of input 0, broadcast of all inputs
Status InferBroadcastBool(InferenceContext& ctx);          // comparisons: bool output
// Normalizes an axis in [-rank, rank) to [0, rank); error naming `what` otherwise.
StatusOr<int> NormalizeAxis(int64_t axis, int rank, const char* what = "axis");

}  // namespace kiln

namespace kiln {

// Vertical fusion: any node may carry an elementwise epilogue, a subgraph applied to its
// output 0. Its inputs are [output 0 of the op, extra_0, extra_1, ...], where the extras are
// the node's inputs past the first `kEpilogueMainInputs` (attribute) ones; its single output
// replaces the node's output 0. The reference executor and type inference handle it for
// every op, so one fusion rule serves Conv+bias+ReLU, MatMul+GELU, residual adds and plain
// elementwise chains alike.
inline constexpr const char* kEpilogueAttr = "kiln.epilogue";
inline constexpr const char* kEpilogueMainInputs = "kiln.main_inputs";
// The most ops one epilogue absorbs. Kernels apply an epilogue as a list of post-ops, and
// oneDNN takes at most 32 -- including the head op of a unary layer, and two for some ops
// (Sub with the chain second) -- so 16 leaves room; a longer elementwise chain becomes several
// fused nodes, which also keeps fusion linear in the chain's length.
inline constexpr int kMaxEpilogueOps = 16;

// Horizontal fusion: a node may compute several sibling layers at once and hand each its
// slice of output 0 (after the epilogue): the result is split along kSplitAxisAttr into
// kSplitSizesAttr pieces, which are the node's outputs. A backend writes each slice
// straight to its own buffer, so the split costs no copy.
inline constexpr const char* kSplitAxisAttr = "kiln.split_axis";
inline constexpr const char* kSplitSizesAttr = "kiln.split_sizes";

// Whether elementwise node `e`, reading the fusion chain at input `chain_slot`, may join an
// epilogue: the ops a backend applies inside the producer's kernel (oneDNN post-ops on
// CPU: activations with a closed form, Clip with constant bounds, Add/Sub/Mul/Max/Min with
// the chain on either side, Div with the chain as dividend). Anything else stays its own
// layer: an epilogue the producer's kernels cannot apply would send the whole fused layer
// (convolution included) to the reference kernels.
bool IsEpilogueOp(const Graph& g, const Node& e, int chain_slot);

// True when a node carries a fusion epilogue or output split (a rewritten node).
bool IsFusedNode(const Node& node);

// The node as its op sees it: without the epilogue, its extra inputs, the output split and
// their attributes.
Node MainPartOf(const Node& node);

}  // namespace kiln
