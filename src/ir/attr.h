// Node attributes. Getters check the attribute's type, so a model with `strides` given
// as a float gets an error naming the attribute instead of a wrong answer.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <variant>
#include <vector>

#include "base/status.h"
#include "ir/tensor.h"

namespace kiln {

class Graph;

struct Attr {
  enum class Type { kFloat, kInt, kString, kTensor, kGraph, kFloats, kInts, kStrings, kTensors, kGraphs, kTypeProto };
  Type type = Type::kInt;
  float f = 0;
  int64_t i = 0;
  std::string s;
  Tensor t;
  std::shared_ptr<Graph> g;
  std::vector<float> floats;
  std::vector<int64_t> ints;
  std::vector<std::string> strings;
  std::vector<Tensor> tensors;
  std::vector<std::shared_ptr<Graph>> graphs;

  static Attr Int(int64_t v) { Attr a; a.type = Type::kInt; a.i = v; return a; }
  static Attr Float(float v) { Attr a; a.type = Type::kFloat; a.f = v; return a; }
  static Attr String(std::string v) { Attr a; a.type = Type::kString; a.s = std::move(v); return a; }
  static Attr Ints(std::vector<int64_t> v) { Attr a; a.type = Type::kInts; a.ints = std::move(v); return a; }
  static Attr Floats(std::vector<float> v) { Attr a; a.type = Type::kFloats; a.floats = std::move(v); return a; }
  static Attr Strings(std::vector<std::string> v) { Attr a; a.type = Type::kStrings; a.strings = std::move(v); return a; }
  static Attr TensorValue(Tensor v) { Attr a; a.type = Type::kTensor; a.t = std::move(v); return a; }
  static Attr GraphValue(std::shared_ptr<Graph> v) { Attr a; a.type = Type::kGraph; a.g = std::move(v); return a; }
};

const char* AttrTypeName(Attr::Type t);

// Ordered map (deterministic iteration for printing and plans).
class AttrMap {
 public:
  bool has(const std::string& name) const { return map_.count(name) != 0; }
  const Attr* find(const std::string& name) const;
  void set(const std::string& name, Attr a) { map_[name] = std::move(a); }
  void erase(const std::string& name) { map_.erase(name); }
  const std::map<std::string, Attr>& all() const { return map_; }

  // Typed getters: the default when absent; an error when present with another type.
  StatusOr<int64_t> GetInt(const std::string& name, int64_t dflt) const;
  StatusOr<float> GetFloat(const std::string& name, float dflt) const;
  StatusOr<std::string> GetString(const std::string& name, const std::string& dflt) const;
  StatusOr<std::vector<int64_t>> GetInts(const std::string& name, std::vector<int64_t> dflt = {}) const;
  StatusOr<std::vector<float>> GetFloats(const std::string& name, std::vector<float> dflt = {}) const;
  StatusOr<std::vector<std::string>> GetStrings(const std::string& name, std::vector<std::string> dflt = {}) const;
  // Error when absent.
  StatusOr<int64_t> RequireInt(const std::string& name) const;
  StatusOr<Tensor> RequireTensor(const std::string& name) const;
  StatusOr<std::shared_ptr<Graph>> RequireGraph(const std::string& name) const;

 private:
  Status TypeError(const std::string& name, Attr::Type want) const;
  std::map<std::string, Attr> map_;
};

}  // namespace kiln
