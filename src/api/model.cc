#include "api/model.h"

#include "backends/ref/kernel.h"
#include "ir/infer.h"

namespace kiln {

namespace {

// Type inference with the reference backend evaluating constant subgraphs; errors start
// with `source`.
StatusOr<OnnxModel> InferModelTypes(OnnxModel model, const std::string& source) {
  InferOptions options;
  options.evaluator = &ReferenceEvaluator();
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

StatusOr<std::vector<RValue>> RunReference(const Graph& graph, std::vector<RValue> inputs) {
  if (inputs.size() != graph.inputs().size())
    return InvalidArgument("the model takes ", graph.inputs().size(), " inputs, got ", inputs.size());
  for (size_t i = 0; i < inputs.size(); ++i)
    KILN_RETURN_IF_ERROR(CheckInputMatches(graph.value(graph.inputs()[i]), inputs[i]));
  RefExecutor ex;
  return ex.Run(graph, std::move(inputs));
}

}  // namespace kiln
