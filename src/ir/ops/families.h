// The op families. Each family owns one file in each layer:
//   src/ir/ops/<family>.cc                  schemas + type/shape inference
//   src/backends/ref/ops/<family>.cc        reference kernels
//   src/frontend/onnx/normalize_<family>.cc ONNX opset normalizers
//   tests/ops/test_<family>.cc              unit tests
// and registers from it explicitly (called from op_registry.cc, backends/ref/executor.cc and
// normalize.cc). A family may split its files further; the Register function stays one.
#pragma once

namespace kiln {

class OpRegistry;
class RefKernelRegistry;
class NormalizerTable;

#define KILN_OP_FAMILIES(X) \
  X(Elementwise)            \
  X(Tensor)                 \
  X(ConvPool)               \
  X(LinalgNorm)             \
  X(ReduceRnnSignal)        \
  X(ControlFlow)

#define KILN_DECLARE_FAMILY_(F)                  \
  void Register##F##Schemas(OpRegistry& r);     \
  void Register##F##Kernels(RefKernelRegistry& r); \
  void Register##F##Normalizers(NormalizerTable& t);
KILN_OP_FAMILIES(KILN_DECLARE_FAMILY_)
#undef KILN_DECLARE_FAMILY_

}  // namespace kiln
