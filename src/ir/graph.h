// The IR graph. The graph owns its values and nodes; everything else refers to them by
// id. Values know their producer and consumers. Ops are opset-free: the importer
// normalizes every ONNX version of an op to one form (see src/frontend/onnx/).
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "base/status.h"
#include "ir/attr.h"
#include "ir/shape.h"
#include "ir/tensor.h"

namespace kiln {

using ValueId = int32_t;
using NodeId = int32_t;
inline constexpr ValueId kNoValue = -1;  // an omitted optional input/output

struct Value {
  std::string name;
  TypeInfo type;
  NodeId producer = -1;             // -1: graph input, initializer or outer-scope capture
  std::vector<NodeId> consumers;    // one entry per consuming input slot
  std::optional<Tensor> constant;   // set for initializers (and folded constants)
};

struct Node {
  std::string name;                 // may be empty in the source model; see DisplayName
  std::string op_type;              // e.g. "Conv"
  std::string domain;               // "" for ai.onnx, "ai.onnx.ml", ...
  std::vector<ValueId> inputs;      // kNoValue for an omitted optional input
  std::vector<ValueId> outputs;     // kNoValue for an omitted optional output
  AttrMap attrs;
  std::vector<std::string> fused_from;  // provenance: source node names absorbed into this one
  bool dead = false;                // removed (ids stay stable: dead nodes are skipped, never erased)

  // "'conv1' (Conv)" or "#12 (Conv)" when unnamed.
  std::string DisplayName(NodeId id) const;
};

class Graph {
 public:
  std::string name;

  // Adds a value; names must be unique in the graph (error otherwise).
  StatusOr<ValueId> AddValue(const std::string& name, TypeInfo type = {});
  // Adds an initializer (a value with constant data and matching type).
  StatusOr<ValueId> AddConstant(const std::string& name, Tensor t);
  // Adds a node and links producer/consumer edges. Output values must not have a producer yet.
  StatusOr<NodeId> AddNode(Node node);
  // Marks a node dead and unlinks its edges (its outputs keep existing, producer -1).
  void RemoveNode(NodeId id);
  // Replaces every use of `from` (node inputs and graph outputs) by `to`.
  void ReplaceAllUses(ValueId from, ValueId to);

  Value& value(ValueId id) { return values_[static_cast<size_t>(id)]; }
  const Value& value(ValueId id) const { return values_[static_cast<size_t>(id)]; }
  Node& node(NodeId id) { return nodes_[static_cast<size_t>(id)]; }
  const Node& node(NodeId id) const { return nodes_[static_cast<size_t>(id)]; }
  // Room for this many nodes and values in all (an importer that knows the counts).
  void Reserve(size_t nodes, size_t values) {
    nodes_.reserve(nodes);
    values_.reserve(values);
    by_name_.reserve(values);
  }
  int num_values() const { return static_cast<int>(values_.size()); }
  int num_nodes() const { return static_cast<int>(nodes_.size()); }  // dead included
  int num_live_nodes() const;

  std::optional<ValueId> FindValue(const std::string& name) const;

  std::vector<ValueId>& inputs() { return inputs_; }
  const std::vector<ValueId>& inputs() const { return inputs_; }
  std::vector<ValueId>& outputs() { return outputs_; }
  const std::vector<ValueId>& outputs() const { return outputs_; }
  // Values referenced by this (sub)graph but defined in an enclosing graph.
  std::vector<ValueId>& captures() { return captures_; }
  const std::vector<ValueId>& captures() const { return captures_; }

  // Live nodes in a topological order (stable: ties keep insertion order).
  // Error naming a node on a cycle.
  StatusOr<std::vector<NodeId>> TopologicalOrder() const;

  // Text form for dumps and golden tests.
  std::string ToString() const;

  // INT8 ranges a QDQ model declared, by value name: {scale, unsigned (u8) or signed (s8)},
  // from the QuantizeLinear -> DequantizeLinear pairs the optimizer took out
  // (fold_quantize_dequantize). The builder runs the layers reading these values in INT8
  // with exactly these scales (api/int8_build.cc).
  struct QuantRange {
    float scale = 1;
    bool is_unsigned = false;
  };
  std::map<std::string, QuantRange> quant_ranges;

 private:
  std::vector<Value> values_;
  std::vector<Node> nodes_;
  std::vector<ValueId> inputs_, outputs_, captures_;
  std::string node_name_or_id(NodeId id) const;
  std::unordered_map<std::string, ValueId> by_name_;
};

}  // namespace kiln
