#include "passes/passes.h"

namespace kiln {

std::span<const PassInfo> DefaultPasses() {
  static const PassInfo kPasses[] = {
      {"fold_constants", "evaluate nodes whose inputs are all constant", &FoldConstants},
      {"fold_quantize_dequantize",
       "QuantizeLinear -> DequantizeLinear of an activation: readers take it unrounded, its scale recorded for INT8 layers",
       &FoldQuantizeDequantize},
      {"compute_fp16_in_fp32", "FP16 layers compute in FP32 (CPU kernels have no FP16 arithmetic), casts around them vanish",
       &ComputeFp16InFp32},
      {"remove_no_ops", "remove Identity, inference Dropout, same-type Cast, same-shape Reshape, identity Transpose, zero Pad",
       &RemoveNoOps},
      {"fold_pad_into_window", "zero Pad of the spatial axes -> the next Conv's / counting AveragePool's pads",
       &FoldPadIntoWindow},
      {"fold_transpose_pairs", "merge two consecutive Transposes into one", &FoldTransposePairs},
      {"eliminate_common_subexpressions", "merge nodes with the same op, attributes and inputs",
       &EliminateCommonSubexpressions},
      {"recognize_layer_norm", "ReduceMean/Sub/Pow/Sqrt/Div (+ scale, bias) -> LayerNormalization", &RecognizeLayerNorm},
      {"recognize_gelu", "x * 0.5 * (1 + Erf(x / sqrt 2)) -> Gelu", &RecognizeGelu},
      {"recognize_hard_swish", "x * Clip(x + 3, 0, 6) / 6, x * HardSigmoid(x) -> HardSwish", &RecognizeHardSwish},
      {"recognize_swish", "x * Sigmoid(x) -> Swish, x * Tanh(Softplus(x)) -> Mish", &RecognizeSwish},
      {"recognize_softmax", "Exp(x - ReduceMax) / ReduceSum -> Softmax", &RecognizeSoftmax},
      {"recognize_attention", "MatMul(Softmax(Q Kt * scale + mask), V) -> kiln.Attention", &RecognizeAttention},
      {"decompose_batch_norm", "inference BatchNormalization -> per-channel Mul + Add", &DecomposeBatchNorm},
      {"fold_scale_bias_into_conv", "fold per-channel Mul/Add constants into Conv/Gemm weights and bias",
       &FoldScaleBiasIntoConv},
      {"fuse_elementwise_epilogue", "fuse elementwise ops into the epilogue of their producer",
       &FuseElementwiseEpilogue},
      {"fuse_sibling_layers", "merge sibling Convs/MatMuls reading one input into one wider layer", &FuseSiblingLayers},
      {"eliminate_dead_nodes", "remove nodes whose outputs reach no graph output", &EliminateDeadNodes},
  };
  return kPasses;
}

}  // namespace kiln
