// libFuzzer target: bytes -> ONNX import (protobuf parse, opset normalization, structure
// checks) -> type and shape inference with constant folding on the reference backend ->
// the optimizer's whole pass pipeline (fusion, recognizers, pad folding, the FP16 upcast):
// what Engine::Load and `kiln run` do with an .onnx file before anything runs. The rule it
// checks: any bytes give a model or a clear error, never a crash, hang or out-of-bounds read.
#include <cstddef>
#include <cstdint>

#include "api/model.h"
#include "api/optimize.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  auto model = kiln::LoadOnnxModelFromBytes(data, size, "fuzz");
  if (!model.ok()) return 0;
  // Static shapes first (dynamic dims -> 1), as `kiln run` and `kiln build` do.
  if (!kiln::SetInputShapes(*model->graph, {}).ok()) return 0;
  (void)kiln::OptimizeGraph(*model->graph);
  return 0;
}
