// Helpers shared by the oneDNN lowerings (lower_conv.cc, lower_matmul.cc, lower_copy.cc,
// lower_pool_resize.cc, lower_norm_softmax.cc, lower_elementwise.cc); defined in lower_dnnl_util.cc
// (SplitInto: lower_copy.cc).
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "backends/cpu/program.h"

namespace kiln::cpu {

// The attribute every primitive starts from: a user-mode scratchpad (ExecContext::scratch).
dnnl::primitive_attr BaseAttr();
// The post-ops attr that ApplyPostOps would build for `ops` on a destination `dst_md`,
// from descriptors alone (no slots, no reorders): to ask oneDNN which implementation a
// candidate formulation gets before committing to it.
dnnl::primitive_attr TrialAttr(const std::vector<PostOp>& ops, const std::vector<int64_t>& dst_dims,
                               const dnnl::memory::desc& dst_md);
// The implementation oneDNN picks for a primitive descriptor built by `make`, or "" when
// it has none.
template <typename F>
std::string TrialImpl(F&& make) {
  try {
    return make().impl_info_str();
  } catch (const dnnl::error&) {
    return "";
  }
}
std::string ImplName(const dnnl::primitive_desc_base& pd, const char* what);
// The node's epilogue as post-ops (empty when it has none), registered on `k`.
bool PostOpsFor(Compiler& c, const Node& node, const std::vector<int64_t>& out_dims, dnnl::primitive_attr* attr,
                PrimitiveKernel* k, const dnnl::memory::desc* dst_md = nullptr);
// Writes `whole` (dims `dims`) into the node's outputs, split along `axis` by `sizes`.
// `piece_qscales`: an INT8 whole whose pieces are quantized each with its own scale.
void SplitInto(Compiler& c, const Node& node, int whole, int axis, const std::vector<int64_t>& sizes,
               const std::vector<float>* piece_qscales = nullptr);
// A common activation format of `md` (nchw, nhwc, nChw16c, nChw8c and their rank-3/5
// forms, nc), when it has one: to keep a layout across a split, a concat or a chain.
std::optional<dnnl::memory::format_tag> ActivationTag(const dnnl::memory::desc& md);
// Output dims of a (possibly horizontally fused) node: output 0, or the whole before the split.
std::vector<int64_t> WholeOutputDims(const Graph& g, const Node& node, int* split_axis, std::vector<int64_t>* sizes);
// Whether no output but the first is read (by a node or as a graph output).
bool OnlyOutput0Used(const Graph& g, const Node& node);

}  // namespace kiln::cpu
