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

Status CheckInputMatches(const Value& input, const RValue& v) {
  const TypeInfo& t = input.type;
  if (t.kind == TypeInfo::Kind::kOptional) return Status::OK();
  if (t.kind == TypeInfo::Kind::kSequence) {
    if (!v.is_sequence()) return InvalidArgument("input '", input.name, "' must be a sequence");
    return Status::OK();
  }
  if (!v.is_tensor()) return InvalidArgument("input '", input.name, "' must be a tensor");
  const Tensor& x = v.tensor;
  if (t.dtype != DType::kUndefined && t.dtype != x.dtype())
    return InvalidArgument("input '", input.name, "' must be ", DTypeName(t.dtype), ", got ", DTypeName(x.dtype()));
  if (!t.shape.has_rank()) return Status::OK();
  if (t.shape.rank() != x.rank())
    return InvalidArgument("input '", input.name, "' must have shape ", t.shape.ToString(), ", got ",
                           DimsToString(x.dims()));
  for (int i = 0; i < x.rank(); ++i)
    if (t.shape.dim(i).known() && t.shape.dim(i).value != x.dim(i))
      return InvalidArgument("input '", input.name, "' must have shape ", t.shape.ToString(), ", got ",
                             DimsToString(x.dims()), " (dimension ", i, ")");
  return Status::OK();
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
