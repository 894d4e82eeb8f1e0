// Helpers for op unit tests: run one op through type inference and the reference
// executor (which checks every output against the inferred type), then on every other
// registered backend that takes it (the CPU backend; a GPU one), whose outputs must match the
// reference's — so every op test is a test of every backend (one harness, issue #16).
#pragma once

#include <gtest/gtest.h>

#include <cmath>
#include <string>
#include <vector>

#include "backends/ref/kernel.h"
#include "ir/graph.h"
#include "ir/infer.h"

namespace kiln::testing {

struct OpRun {
  Status status;
  std::vector<RValue> outputs;
  Graph graph;  // after inference: graph.value(graph.outputs()[i]).type is the inferred type
  std::vector<std::string> backends;  // the other backends that ran it and matched
};
// Float outputs of another backend vs the reference: |got - want| <= atol + rtol * |want|.
inline constexpr double kBackendRtol = 1e-4;
inline constexpr double kBackendAtol = 1e-5;

// Builds a one-node graph `op_type(inputs...) -> num_outputs outputs` with `attrs`, infers
// types, and executes it. An undefined Tensor in `inputs` means an omitted optional input.
// Inputs listed in `constant_inputs` (by index) become initializers instead of graph inputs
// (needed by ops whose output shape depends on an input's value, e.g. Reshape).
// Attributes in one expression: A({{"axis", Attr::Int(1)}}).
AttrMap A(std::initializer_list<std::pair<const char*, Attr>> kv);
// True when `s` is an error whose text contains `text`.
bool Has(const Status& s, const std::string& text);
// Output i's inferred type, e.g. "float32[2,3]".
std::string OutType(const OpRun& r, int i = 0);

OpRun RunOp(const std::string& op_type, const std::vector<Tensor>& inputs, const AttrMap& attrs = {},
            int num_outputs = 1, const std::vector<int>& constant_inputs = {}, const std::string& domain = "");

// The same, for ops with sequence/optional inputs: each input given as an RValue and its type.
OpRun RunOpValues(const std::string& op_type, const std::vector<RValue>& inputs,
                  const std::vector<TypeInfo>& input_types, const AttrMap& attrs = {}, int num_outputs = 1,
                  const std::string& domain = "");

// numpy.allclose-style check with NaN == NaN; reports the worst element.
::testing::AssertionResult TensorsClose(const Tensor& actual, const Tensor& expected, double rtol = 1e-5,
                                        double atol = 1e-6);

// Shorthand: float tensor from values and dims.
Tensor F32(std::vector<float> v, std::vector<int64_t> dims);
Tensor I64(std::vector<int64_t> v, std::vector<int64_t> dims);

}  // namespace kiln::testing
