// libFuzzer target: bytes -> ONNX import (protobuf parse, opset normalization, structure
// checks) -> type and shape inference with constant folding on the reference backend: what
// Engine::Load and `kiln run` do with an .onnx file before anything runs. The rule it checks:
// any bytes give a model or a clear error, never a crash, hang or out-of-bounds read.
#include <cstddef>
#include <cstdint>

#include "api/model.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  (void)kiln::LoadOnnxModelFromBytes(data, size, "fuzz");
  return 0;
}
