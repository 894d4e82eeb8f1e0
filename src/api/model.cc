#include "api/model.h"

#include "backends/ref/kernel.h"
#include "ir/infer.h"

namespace kiln {

namespace {

// Type inference with the reference backend evaluating constant subgraphs; errors start
// with `source`.
StatusOr<OnnxModel> InferModelTypes(OnnxModel model, const std::string& source) {
  ConstantEvaluator eval = [](const Graph& g, NodeId id, const std::vector<const Tensor*>& ins) {
    RefExecutor ex;
    return ex.EvaluateNode(g, id, ins);
  };
  InferOptions options;
  options.evaluator = &eval;
  Status st = InferTypes(*model.graph, options);
  if (!st.ok()) return st.WithPrefix(source);
  return model;
}

}  // namespace

StatusOr<OnnxModel> LoadOnnxModel(const std::string& path) {
  KILN_ASSIGN_OR_RETURN(OnnxModel model, ImportOnnxFile(path));
  return InferModelTypes(std::move(model), path);
}

StatusOr<OnnxModel> LoadOnnxModelFromBytes(const void* data, size_t size, const std::string& source) {
  KILN_ASSIGN_OR_RETURN(OnnxModel model, ImportOnnxBytes(data, size, "", source));
  return InferModelTypes(std::move(model), source);
}

namespace {

// A tensor against a tensor type; `what` names it ("input 'x'", "input 'x' element 2").
Status CheckTensorMatches(const TypeInfo& t, const Tensor& x, const std::string& what) {
  if (t.dtype != DType::kUndefined && t.dtype != x.dtype())
    return InvalidArgument(what, " must be ", DTypeName(t.dtype), ", got ", DTypeName(x.dtype()));
  if (!t.shape.has_rank()) return Status::OK();
  if (t.shape.rank() != x.rank())
    return InvalidArgument(what, " must have shape ", t.shape.ToString(), ", got ", DimsToString(x.dims()));
  for (int i = 0; i < x.rank(); ++i)
    if (t.shape.dim(i).known() && t.shape.dim(i).value != x.dim(i))
      return InvalidArgument(what, " must have shape ", t.shape.ToString(), ", got ", DimsToString(x.dims()),
                             " (dimension ", i, ")");
  return Status::OK();
}

const char* KindOf(const RValue& v) { return v.is_tensor() ? "a tensor" : v.is_sequence() ? "a sequence" : "no value"; }

}  // namespace

Status CheckInputMatches(const Value& input, const RValue& v) {
  const TypeInfo* t = &input.type;
  const std::string what = StrCat("input '", input.name, "'");
  if (t->kind == TypeInfo::Kind::kOptional) {
    if (v.is_none() || !t->elem) return Status::OK();
    t = t->elem.get();
  } else if (v.is_none()) {
    return InvalidArgument(what, " (", input.type.ToString(), ") needs a value: only optional inputs may be empty");
  }
  if (t->kind == TypeInfo::Kind::kSequence) {
    if (!v.is_sequence())
      return InvalidArgument(what, " must be a sequence (", input.type.ToString(), "), got ", KindOf(v));
    for (size_t i = 1; i < v.sequence.size(); ++i)
      if (v.sequence[i].dtype() != v.sequence[0].dtype())
        return InvalidArgument(what, ": the elements of a sequence must share one type, but element 0 is ",
                               DTypeName(v.sequence[0].dtype()), " and element ", i, " is ", DTypeName(v.sequence[i].dtype()));
    if (t->elem && t->elem->is_tensor())
      for (size_t i = 0; i < v.sequence.size(); ++i)
        KILN_RETURN_IF_ERROR(CheckTensorMatches(*t->elem, v.sequence[i], StrCat(what, " element ", i)));
    return Status::OK();
  }
  if (!v.is_tensor()) return InvalidArgument(what, " must be a tensor (", input.type.ToString(), "), got ", KindOf(v));
  return CheckTensorMatches(*t, v.tensor, what);
}

StatusOr<std::vector<RValue>> RunReference(const Graph& graph, std::vector<RValue> inputs) {
  if (inputs.size() != graph.inputs().size())
    return InvalidArgument("the model takes ", graph.inputs().size(), " inputs, got ", inputs.size());
  for (size_t i = 0; i < inputs.size(); ++i)
    KILN_RETURN_IF_ERROR(CheckInputMatches(graph.value(graph.inputs()[i]), inputs[i]));
  RefExecutor ex;
  return ex.Run(graph, std::move(inputs));
}

}  // namespace kiln
