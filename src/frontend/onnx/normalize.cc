#include "frontend/onnx/normalize.h"

#include "ir/ops/families.h"

namespace kiln {

Status NormalizeContext::SetConstantInput(int slot, Tensor t) {
  std::string base = node_.name.empty() ? node_.op_type : node_.name;
  std::string name;
  for (int k = 0;; ++k) {
    name = StrCat(base, "/const_input_", slot, k ? StrCat("_", k) : "");
    if (!graph_.FindValue(name)) break;
  }
  KILN_ASSIGN_OR_RETURN(ValueId v, graph_.AddConstant(name, std::move(t)));
  if (node_.inputs.size() <= static_cast<size_t>(slot)) node_.inputs.resize(static_cast<size_t>(slot) + 1, kNoValue);
  node_.inputs[static_cast<size_t>(slot)] = v;
  return Status::OK();
}

Status NormalizeContext::MoveIntsAttrToInput(const std::string& attr, int slot) {
  if (!node_.attrs.has(attr)) return Status::OK();
  KILN_ASSIGN_OR_RETURN(std::vector<int64_t> v, node_.attrs.GetInts(attr));
  node_.attrs.erase(attr);
  return SetConstantInput(slot, Tensor::FromVector(v));
}

Status NormalizeContext::MoveFloatAttrToInput(const std::string& attr, int slot, DType dtype) {
  if (!node_.attrs.has(attr)) return Status::OK();
  KILN_ASSIGN_OR_RETURN(float f, node_.attrs.GetFloat(attr, 0.f));
  node_.attrs.erase(attr);
  KILN_ASSIGN_OR_RETURN(Tensor t, Tensor::Scalar(f).CastTo(dtype));
  return SetConstantInput(slot, std::move(t));
}

const NormalizerTable& NormalizerTable::Global() {
  static const NormalizerTable* table = [] {
    auto* t = new NormalizerTable();
#define KILN_REGISTER_(F) Register##F##Normalizers(*t);
    KILN_OP_FAMILIES(KILN_REGISTER_)
#undef KILN_REGISTER_
    return t;
  }();
  return *table;
}

void NormalizerTable::Add(const std::string& op_type, NormalizeFn fn, const std::string& domain) {
  table_[{domain, op_type}] = fn;
}

NormalizeFn NormalizerTable::Find(const std::string& domain, const std::string& op_type) const {
  auto it = table_.find({domain == "ai.onnx" ? "" : domain, op_type});
  return it == table_.end() ? nullptr : it->second;
}

}  // namespace kiln
