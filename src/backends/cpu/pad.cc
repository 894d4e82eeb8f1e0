// Pad as kiln's own kernel (constant, edge and reflect modes; non-negative pads on any
// axes) on row-major f32: each output row is a fill / one memcpy of the source row / fill,
// at memory speed. Zero pads in front of a Conv or counting AveragePool never get here:
// fold_pad_into_window makes them the window's own padding.
#include <algorithm>
#include <cstring>

#include "backends/cpu/lower_util.h"
#include "backends/cpu/parallel.h"
#include "ir/op_schema.h"

namespace kiln::cpu {

namespace {

enum class PadMode { kConstant, kEdge, kReflect };

// The source index of output index `o` along an axis of size n with `before` padding, or
// -1 (constant mode, outside).
inline int64_t SourceIndex(int64_t o, int64_t before, int64_t n, PadMode mode) {
  int64_t i = o - before;
  if (i >= 0 && i < n) return i;
  if (mode == PadMode::kConstant) return -1;
  if (mode == PadMode::kEdge) return i < 0 ? 0 : n - 1;
  if (n == 1) return 0;
  // reflect (without repeating the edge); ONNX requires pads < n, so one fold suffices.
  if (i < 0) i = -i;
  if (i >= n) i = 2 * (n - 1) - i;
  return std::min<int64_t>(std::max<int64_t>(i, 0), n - 1);
}

class PadKernel : public Kernel {
 public:
  int src = -1, dst = -1;
  std::vector<int64_t> in_dims, out_dims, before;
  PadMode mode = PadMode::kConstant;
  float value = 0;

  Status Execute(ExecContext& ctx, int) const override {
    const float* in = reinterpret_cast<const float*>(ctx.ptrs[static_cast<size_t>(src)]);
    float* out = reinterpret_cast<float*>(ctx.ptrs[static_cast<size_t>(dst)]);
    const size_t r = out_dims.size();
    const int64_t w = out_dims[r - 1], iw = in_dims[r - 1], pb = before[r - 1];
    int64_t rows = 1;
    for (size_t d = 0; d + 1 < r; ++d) rows *= out_dims[d];
    auto row = [&](int64_t ro) {
      float* o = out + ro * w;
      // Source row: unravel over the leading output dims.
      int64_t rem = ro, src_row = 0, stride = 1;
      bool outside = false;
      for (size_t d = r - 1; d-- > 0;) {
        const int64_t idx = rem % out_dims[d];
        rem /= out_dims[d];
        const int64_t s = SourceIndex(idx, before[d], in_dims[d], mode);
        if (s < 0) outside = true;
        src_row += (s < 0 ? 0 : s) * stride;
        stride *= in_dims[d];
      }
      if (outside) {
        std::fill(o, o + w, value);
        return;
      }
      const float* irow = in + src_row * iw;
      const int64_t lo = std::min(w, pb), hi = std::min(w, pb + iw);
      for (int64_t x = 0; x < lo; ++x) {
        const int64_t s = SourceIndex(x, pb, iw, mode);
        o[x] = s < 0 ? value : irow[s];
      }
      if (hi > lo) std::memcpy(o + lo, irow + (lo - pb), static_cast<size_t>(hi - lo) * sizeof(float));
      for (int64_t x = hi; x < w; ++x) {
        const int64_t s = SourceIndex(x, pb, iw, mode);
        o[x] = s < 0 ? value : irow[s];
      }
    };
    if (rows * w > (1 << 15) && rows > 1) ParallelFor(rows, 0, row);
    else for (int64_t ro = 0; ro < rows; ++ro) row(ro);
    return Status::OK();
  }
};

}  // namespace

StatusOr<bool> LowerPad(Compiler& c, NodeId id) {
  const Graph& g = c.graph();
  const Node& node = g.node(id);
  if (node.op_type != "Pad" || IsFusedNode(node) || node.inputs.size() < 2 || node.outputs.size() != 1 ||
      !IsF32(g, node.inputs[0]) || !IsF32(g, node.outputs[0]))
    return false;
  KILN_ASSIGN_OR_RETURN(std::string mode_s, node.attrs.GetString("mode", "constant"));
  PadMode mode;
  if (mode_s == "constant") mode = PadMode::kConstant;
  else if (mode_s == "edge") mode = PadMode::kEdge;
  else if (mode_s == "reflect") mode = PadMode::kReflect;
  else return false;  // wrap: the reference kernel
  const Value& pv = g.value(node.inputs[1]);
  if (node.inputs[1] == kNoValue || !pv.constant) return false;
  if (node.inputs.size() > 3 && node.inputs[3] != kNoValue) return false;  // axes
  float value = 0;
  if (node.inputs.size() > 2 && node.inputs[2] != kNoValue) {
    const Value& cv = g.value(node.inputs[2]);
    if (!cv.constant || cv.constant->numel() > 1) return false;
    if (cv.constant->numel() == 1) value = static_cast<float>(cv.constant->GetAsDouble(0));
  }
  auto pads = pv.constant->ToInt64Vector();
  const std::vector<int64_t> in_dims = DimsOf(g, node.inputs[0]), out_dims = DimsOf(g, node.outputs[0]);
  const size_t r = in_dims.size();
  if (!pads.ok() || r == 0 || pads->size() != 2 * r || out_dims.size() != r) return false;
  for (size_t d = 0; d < r; ++d) {
    const int64_t b = (*pads)[d], e = (*pads)[d + r];
    if (b < 0 || e < 0 || in_dims[d] + b + e != out_dims[d]) return false;
    if (in_dims[d] == 0 && (b > 0 || e > 0) && mode != PadMode::kConstant) return false;
    if (mode == PadMode::kReflect && (b >= in_dims[d] || e >= in_dims[d]) && in_dims[d] > 1) return false;
  }
  if (Numel(out_dims) == 0) return false;
  auto k = std::make_unique<PadKernel>();
  k->in_dims = in_dims;
  k->out_dims = out_dims;
  k->before.assign(pads->begin(), pads->begin() + static_cast<int64_t>(r));
  k->mode = mode;
  k->value = value;
  k->src = c.Plain(c.SlotOf(node.inputs[0]));
  k->dst = c.NewSlot(node.outputs[0], PlainMd(out_dims), out_dims);
  k->reads = {k->src};
  k->writes = {k->dst};
  k->info = {node.name, node.op_type, "kiln:pad " + mode_s, "", 0, id};
  c.AddKernel(std::move(k));
  return true;
}

}  // namespace kiln::cpu
