#include "ir/attr.h"

namespace kiln {

const char* AttrTypeName(Attr::Type t) {
  switch (t) {
    case Attr::Type::kFloat: return "FLOAT";
    case Attr::Type::kInt: return "INT";
    case Attr::Type::kString: return "STRING";
    case Attr::Type::kTensor: return "TENSOR";
    case Attr::Type::kGraph: return "GRAPH";
    case Attr::Type::kFloats: return "FLOATS";
    case Attr::Type::kInts: return "INTS";
    case Attr::Type::kStrings: return "STRINGS";
    case Attr::Type::kTensors: return "TENSORS";
    case Attr::Type::kGraphs: return "GRAPHS";
    case Attr::Type::kTypeProto: return "TYPE_PROTO";
  }
  return "?";
}

const Attr* AttrMap::find(const std::string& name) const {
  auto it = map_.find(name);
  return it == map_.end() ? nullptr : &it->second;
}

Status AttrMap::TypeError(const std::string& name, Attr::Type want) const {
  return InvalidArgument("attribute '", name, "' must be ", AttrTypeName(want), ", got ",
                         AttrTypeName(map_.at(name).type));
}

StatusOr<int64_t> AttrMap::GetInt(const std::string& name, int64_t dflt) const {
  const Attr* a = find(name);
  if (!a) return dflt;
  if (a->type != Attr::Type::kInt) return TypeError(name, Attr::Type::kInt);
  return a->i;
}

StatusOr<float> AttrMap::GetFloat(const std::string& name, float dflt) const {
  const Attr* a = find(name);
  if (!a) return dflt;
  if (a->type != Attr::Type::kFloat) return TypeError(name, Attr::Type::kFloat);
  return a->f;
}

StatusOr<std::string> AttrMap::GetString(const std::string& name, const std::string& dflt) const {
  const Attr* a = find(name);
  if (!a) return dflt;
  if (a->type != Attr::Type::kString) return TypeError(name, Attr::Type::kString);
  return a->s;
}

StatusOr<std::vector<int64_t>> AttrMap::GetInts(const std::string& name, std::vector<int64_t> dflt) const {
  const Attr* a = find(name);
  if (!a) return dflt;
  if (a->type != Attr::Type::kInts) return TypeError(name, Attr::Type::kInts);
  return a->ints;
}

StatusOr<std::vector<float>> AttrMap::GetFloats(const std::string& name, std::vector<float> dflt) const {
  const Attr* a = find(name);
  if (!a) return dflt;
  if (a->type != Attr::Type::kFloats) return TypeError(name, Attr::Type::kFloats);
  return a->floats;
}

StatusOr<std::vector<std::string>> AttrMap::GetStrings(const std::string& name,
                                                       std::vector<std::string> dflt) const {
  const Attr* a = find(name);
  if (!a) return dflt;
  if (a->type != Attr::Type::kStrings) return TypeError(name, Attr::Type::kStrings);
  return a->strings;
}

StatusOr<int64_t> AttrMap::RequireInt(const std::string& name) const {
  if (!has(name)) return InvalidArgument("required attribute '", name, "' is missing");
  return GetInt(name, 0);
}

StatusOr<Tensor> AttrMap::RequireTensor(const std::string& name) const {
  const Attr* a = find(name);
  if (!a) return InvalidArgument("required attribute '", name, "' is missing");
  if (a->type != Attr::Type::kTensor) return TypeError(name, Attr::Type::kTensor);
  return a->t;
}

StatusOr<std::shared_ptr<Graph>> AttrMap::RequireGraph(const std::string& name) const {
  const Attr* a = find(name);
  if (!a) return InvalidArgument("required attribute '", name, "' is missing");
  if (a->type != Attr::Type::kGraph) return TypeError(name, Attr::Type::kGraph);
  return a->g;
}

}  // namespace kiln
