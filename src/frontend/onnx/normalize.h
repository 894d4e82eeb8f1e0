// Opset normalization: every ONNX version of an op is rewritten, at import, to the one
// form the IR and the kernels know (the newest one): attributes that later opsets turned
// into inputs become constant inputs, renamed ops get their new name, changed defaults
// are made explicit. Each op family registers its normalizers from its own file
// (src/frontend/onnx/normalize_<family>.cc) through Register<Family>Normalizers.
#pragma once

#include <map>
#include <string>

#include "base/status.h"
#include "ir/graph.h"

namespace kiln {

class NormalizeContext {
 public:
  NormalizeContext(Graph& graph, Node& node, int opset) : graph_(graph), node_(node), opset_(opset) {}

  Graph& graph() { return graph_; }
  // The node being imported (not yet added to the graph): its inputs/outputs are resolved.
  Node& node() { return node_; }
  // The opset version the model imports for the node's domain.
  int opset() const { return opset_; }

  // Makes input `slot` a new constant holding `t` (pads the input list with kNoValue).
  Status SetConstantInput(int slot, Tensor t);
  // If attribute `attr` (INTS) exists: removes it and makes it constant int64 input `slot`.
  Status MoveIntsAttrToInput(const std::string& attr, int slot);
  // Same for a FLOAT attribute, as a scalar of `dtype` (e.g. Clip min/max).
  Status MoveFloatAttrToInput(const std::string& attr, int slot, DType dtype);

 private:
  Graph& graph_;
  Node& node_;
  int opset_;
};

using NormalizeFn = Status (*)(NormalizeContext&);

class NormalizerTable {
 public:
  static const NormalizerTable& Global();
  // Registers a normalizer for an op of the default (ai.onnx) domain unless `domain` given.
  void Add(const std::string& op_type, NormalizeFn fn, const std::string& domain = "");
  NormalizeFn Find(const std::string& domain, const std::string& op_type) const;

 private:
  std::map<std::pair<std::string, std::string>, NormalizeFn> table_;
};

}  // namespace kiln
