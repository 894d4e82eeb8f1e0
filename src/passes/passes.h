// The pass catalog (the pipeline order is DefaultPasses(), passes.cc). Each pass lives
// in src/passes/<name>.cc.
#pragma once

#include <span>

#include "passes/pass.h"

namespace kiln {

// Nodes whose outputs nobody reads (and that have no side effects) are removed.
StatusOr<bool> EliminateDeadNodes(Graph& graph, PassContext& ctx);
// Identity, Dropout (inference), Cast to the same type, Reshape/Flatten to the same shape,
// Transpose with the identity permutation: their output is replaced by their input.
StatusOr<bool> RemoveNoOps(Graph& graph, PassContext& ctx);
// Transpose(Transpose(x, p1), p2) -> Transpose(x, p1∘p2) (removed by RemoveNoOps when identity).
StatusOr<bool> FoldTransposePairs(Graph& graph, PassContext& ctx);
StatusOr<bool> FoldQuantizeDequantize(Graph& graph, PassContext& ctx);
// Nodes whose inputs are all constant are evaluated once (reference kernels) and become
// initializers; covers Shape->Gather->Unsqueeze->Concat chains once shapes are known.
StatusOr<bool> FoldConstants(Graph& graph, PassContext& ctx);
// Two nodes with the same op, attributes and inputs compute the same thing: keep one.
StatusOr<bool> EliminateCommonSubexpressions(Graph& graph, PassContext& ctx);

// BatchNormalization (inference, constant statistics) -> Mul + Add by per-channel constants.
StatusOr<bool> DecomposeBatchNorm(Graph& graph, PassContext& ctx);
// Conv/Gemm followed by Mul/Add by a per-output-channel constant: folded into W and bias.
StatusOr<bool> FoldScaleBiasIntoConv(Graph& graph, PassContext& ctx);
// Vertical fusion: elementwise ops join the epilogue of the node producing their input
// (Conv/Gemm/MatMul + bias + activation + residual add, and elementwise chains).
StatusOr<bool> FuseElementwiseEpilogue(Graph& graph, PassContext& ctx);

// Horizontal fusion: sibling Convs/MatMuls on one input with the same geometry and
// epilogue become one wider layer whose output is split into the siblings' outputs.
StatusOr<bool> FuseSiblingLayers(Graph& graph, PassContext& ctx);

// Pattern recognition: decomposed ops as exporters write them, back into one layer each
// (see each file's header for the exact patterns).
StatusOr<bool> RecognizeLayerNorm(Graph& graph, PassContext& ctx);
StatusOr<bool> RecognizeGelu(Graph& graph, PassContext& ctx);
StatusOr<bool> RecognizeHardSwish(Graph& graph, PassContext& ctx);
StatusOr<bool> RecognizeSwish(Graph& graph, PassContext& ctx);
StatusOr<bool> ComputeFp16InFp32(Graph& graph, PassContext& ctx);
StatusOr<bool> FoldPadIntoWindow(Graph& graph, PassContext& ctx);
StatusOr<bool> RecognizeSoftmax(Graph& graph, PassContext& ctx);
StatusOr<bool> RecognizeAttention(Graph& graph, PassContext& ctx);

// The default pipeline, in order.
std::span<const PassInfo> DefaultPasses();

}  // namespace kiln
