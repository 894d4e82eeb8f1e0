// Private helpers of the control-flow family's reference kernels: axis moves, slicing and
// stacking along axis 0 (what Loop/Scan outputs and the sequence ops are built from), and
// reading the scalar inputs these ops take.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "backends/ref/kernel.h"

namespace kiln {

// Registers the sequence and optional kernels (control_flow_sequence.cc).
void RegisterControlFlowSequenceKernels(RefKernelRegistry& r);

namespace ref::control_flow {

// A copy of t with dims reordered: output dim d is input dim perm[d].
Tensor Permuted(const Tensor& t, const std::vector<int>& perm);
// Axis `axis` of t becomes axis 0 (the others keep their order), and back.
Tensor MoveAxisToFront(const Tensor& t, int axis);
Tensor MoveFrontToAxis(const Tensor& t, int axis);

// t[k] along axis 0 (one rank less). Requires 0 <= k < t.dim(0).
Tensor IndexFront(const Tensor& t, int64_t k);
// t[start : start + len] along axis 0. Requires the range to lie inside t.
Tensor SliceFront(const Tensor& t, int64_t start, int64_t len);
// t with axis 0 grown to `rows` (>= t.dim(0)); the new rows are zero.
Tensor PadFront(const Tensor& t, int64_t rows);

// Concatenates tensors of one dtype whose dims agree except axis 0. `what` names the
// values in the error message.
StatusOr<Tensor> ConcatFront(const std::vector<Tensor>& parts, const std::string& what);
// Stacks equally shaped tensors along a new axis 0. With no items, the result is
// [0, dims of `elem_type`] (unknown dims taken as 0) of elem_type's dtype.
StatusOr<Tensor> StackFront(const std::vector<Tensor>& items, const TypeInfo& elem_type, const std::string& what);

// A one-element bool tensor (a condition).
StatusOr<bool> ReadCondition(const RValue& v, const std::string& what);
// A one-element int32/int64 tensor.
StatusOr<int64_t> ReadInteger(const RValue& v, const std::string& what);

// The static type of output `i` of a subgraph (set by type inference).
const TypeInfo& SubgraphOutputType(const Graph& g, size_t i);

}  // namespace ref::control_flow
}  // namespace kiln
