// Resize / Upsample as kiln's own kernel: every mode (nearest, linear, cubic) and
// coordinate transformation, over the last two axes (the leading ones unchanged), on
// row-major f32. The taps come from the reference kernel's plan (PlanResize), so both
// compute the same thing; here they are precomputed once at compile time and each output
// row is a weighted sum of horizontally interpolated input rows.
#include <algorithm>
#include <cstring>

#include "backends/cpu/lower_util.h"
#include "backends/cpu/parallel.h"
#include "backends/ref/ops/resize_plan.h"
#include "ir/op_schema.h"

namespace kiln::cpu {

namespace {

// The two passes, compiled for AVX-512, AVX2 and the baseline (picked once, at load, by
// the CPU's features): horizontal interpolation of one input row, and the vertical blend of
// interpolated rows into one output row.
#define KILN_RESIZE_CLONES __attribute__((target_clones("avx512f", "avx2,fma", "default")))

KILN_RESIZE_CLONES void InterpolateRow(const float* irow, const int64_t* xi, const float* xw, int kx, int64_t ow,
                                       float* h) {
  if (kx == 2) {
    for (int64_t x = 0; x < ow; ++x) h[x] = xw[2 * x] * irow[xi[2 * x]] + xw[2 * x + 1] * irow[xi[2 * x + 1]];
  } else if (kx == 1) {
    for (int64_t x = 0; x < ow; ++x) h[x] = xw[x] * irow[xi[x]];
  } else {
    for (int64_t x = 0; x < ow; ++x) {
      float v = 0;
      for (int k = 0; k < kx; ++k) v += xw[x * kx + k] * irow[xi[x * kx + k]];
      h[x] = v;
    }
  }
}

KILN_RESIZE_CLONES void BlendRows(const float* const* rows, const float* w, int n, int64_t ow, float* o) {
  if (n == 1) {
    for (int64_t x = 0; x < ow; ++x) o[x] = w[0] * rows[0][x];
  } else if (n == 2) {
    const float* a = rows[0];
    const float* b = rows[1];
    for (int64_t x = 0; x < ow; ++x) o[x] = w[0] * a[x] + w[1] * b[x];
  } else {
    for (int64_t x = 0; x < ow; ++x) o[x] = w[0] * rows[0][x];
    for (int t = 1; t < n; ++t)
      for (int64_t x = 0; x < ow; ++x) o[x] += w[t] * rows[t][x];
  }
}

class ResizeKernel : public Kernel {
 public:
  int src = -1, dst = -1;
  int64_t planes = 0, ih = 1, iw = 1, oh = 1, ow = 1;
  int ky = 1, kx = 1;                 // taps per output row / column (padded with weight 0)
  std::vector<int64_t> yi, xi;        // oh*ky, ow*kx input indices
  std::vector<float> yw, xw;          // their weights
  std::vector<uint8_t> yin, xin;      // inside the crop (tf_crop_and_resize)
  float extrapolation = 0;
  // Output rows per task: each task interpolates the input rows its output rows read once
  // (an input row serves ~oh/ih output rows when upsampling), then blends.
  static constexpr int64_t kBlockRows = 32;

  Status Execute(ExecContext& ctx, int) const override {
    const float* in = reinterpret_cast<const float*>(ctx.ptrs[static_cast<size_t>(src)]);
    float* out = reinterpret_cast<float*>(ctx.ptrs[static_cast<size_t>(dst)]);
    const int64_t blocks_per_plane = (oh + kBlockRows - 1) / kBlockRows;
    const bool all_xin = std::all_of(xin.begin(), xin.end(), [](uint8_t v) { return v != 0; });
    auto block = [&](int64_t b) {
      const int64_t p = b / blocks_per_plane, oy0 = b % blocks_per_plane * kBlockRows;
      const int64_t oy1 = std::min(oh, oy0 + kBlockRows);
      // The input rows this block reads (taps of weight 0 and rows outside the crop skip).
      int64_t lo = ih, hi = -1;
      for (int64_t oy = oy0; oy < oy1; ++oy) {
        if (!yin[static_cast<size_t>(oy)]) continue;
        for (int t = 0; t < ky; ++t) {
          if (yw[static_cast<size_t>(oy * ky + t)] == 0.f) continue;
          lo = std::min(lo, yi[static_cast<size_t>(oy * ky + t)]);
          hi = std::max(hi, yi[static_cast<size_t>(oy * ky + t)]);
        }
      }
      thread_local std::vector<float> interp;
      if (hi >= lo) {
        interp.resize(static_cast<size_t>((hi - lo + 1) * ow));
        for (int64_t y = lo; y <= hi; ++y)
          InterpolateRow(in + (p * ih + y) * iw, xi.data(), xw.data(), kx, ow, interp.data() + (y - lo) * ow);
      }
      thread_local std::vector<const float*> rows;
      thread_local std::vector<float> w;
      rows.resize(static_cast<size_t>(ky));
      w.resize(static_cast<size_t>(ky));
      for (int64_t oy = oy0; oy < oy1; ++oy) {
        float* o = out + (p * oh + oy) * ow;
        int n = 0;
        if (yin[static_cast<size_t>(oy)])
          for (int t = 0; t < ky; ++t) {
            const float wt = yw[static_cast<size_t>(oy * ky + t)];
            if (wt == 0.f) continue;
            rows[n] = interp.data() + (yi[static_cast<size_t>(oy * ky + t)] - lo) * ow;
            w[n++] = wt;
          }
        if (!yin[static_cast<size_t>(oy)]) {
          std::fill(o, o + ow, extrapolation);
          continue;
        }
        if (n == 0) std::fill(o, o + ow, 0.f);
        else BlendRows(rows.data(), w.data(), n, ow, o);
        if (!all_xin)
          for (int64_t x = 0; x < ow; ++x)
            if (!xin[static_cast<size_t>(x)]) o[x] = extrapolation;
      }
    };
    const int64_t blocks = planes * blocks_per_plane;
    if (planes * oh * ow > (1 << 14)) ParallelFor(blocks, 0, block);
    else for (int64_t b = 0; b < blocks; ++b) block(b);
    return Status::OK();
  }
};

const Tensor* ConstInput(const Graph& g, const Node& n, size_t i, bool* ok) {
  if (i >= n.inputs.size() || n.inputs[i] == kNoValue) return nullptr;
  const Value& v = g.value(n.inputs[i]);
  if (!v.constant) *ok = false;
  return v.constant ? &*v.constant : nullptr;
}

// Per output index of one axis: taps padded to `k` entries (index 0, weight 0).
void Flatten(const std::vector<std::vector<std::pair<int64_t, double>>>& taps, int k, std::vector<int64_t>* idx,
             std::vector<float>* w) {
  idx->assign(taps.size() * static_cast<size_t>(k), 0);
  w->assign(taps.size() * static_cast<size_t>(k), 0.f);
  for (size_t i = 0; i < taps.size(); ++i)
    for (size_t t = 0; t < taps[i].size(); ++t) {
      (*idx)[i * static_cast<size_t>(k) + t] = taps[i][t].first;
      (*w)[i * static_cast<size_t>(k) + t] = static_cast<float>(taps[i][t].second);
    }
}

}  // namespace

StatusOr<bool> LowerResizeKiln(Compiler& c, NodeId id) {
  const Graph& g = c.graph();
  const Node& node = g.node(id);
  if (node.op_type != "Resize" || IsFusedNode(node) || node.inputs.empty() || node.outputs.size() != 1 ||
      !IsF32(g, node.inputs[0]) || !IsF32(g, node.outputs[0]))
    return false;
  bool consts = true;
  const Tensor* roi = ConstInput(g, node, 1, &consts);
  const Tensor* scales = ConstInput(g, node, 2, &consts);
  const Tensor* sizes = ConstInput(g, node, 3, &consts);
  if (!consts) return false;
  const std::vector<int64_t> in_dims = DimsOf(g, node.inputs[0]);
  const int r = static_cast<int>(in_dims.size());
  if (r < 1) return false;
  auto plan = PlanResize(node.attrs, in_dims, roi, scales, sizes);
  if (!plan.ok()) return false;  // the reference kernel reports it
  if (plan->out_dims != DimsOf(g, node.outputs[0])) return false;
  // Only the last two axes may be resized: the leading ones must map index i to i.
  for (int a = 0; a < r - 2; ++a) {
    if (plan->out_dims[static_cast<size_t>(a)] != in_dims[static_cast<size_t>(a)]) return false;
    for (int64_t i = 0; i < in_dims[static_cast<size_t>(a)]; ++i) {
      const auto& t = plan->taps[static_cast<size_t>(a)][static_cast<size_t>(i)];
      if (!plan->inside[static_cast<size_t>(a)][static_cast<size_t>(i)] || t.size() != 1 || t[0].first != i ||
          t[0].second != 1.0)
        return false;
    }
  }
  auto k = std::make_unique<ResizeKernel>();
  const int ya = r - 2, xa = r - 1;
  k->iw = in_dims[static_cast<size_t>(xa)];
  k->ow = plan->out_dims[static_cast<size_t>(xa)];
  std::vector<std::vector<std::pair<int64_t, double>>> ytaps;
  if (ya >= 0) {
    k->ih = in_dims[static_cast<size_t>(ya)];
    k->oh = plan->out_dims[static_cast<size_t>(ya)];
    ytaps = plan->taps[static_cast<size_t>(ya)];
    k->yin.assign(plan->inside[static_cast<size_t>(ya)].begin(), plan->inside[static_cast<size_t>(ya)].end());
  } else {
    ytaps = {{{0, 1.0}}};
    k->yin = {1};
  }
  const auto& xtaps = plan->taps[static_cast<size_t>(xa)];
  k->xin.assign(plan->inside[static_cast<size_t>(xa)].begin(), plan->inside[static_cast<size_t>(xa)].end());
  k->ky = k->kx = 1;
  for (const auto& t : ytaps) k->ky = std::max<int>(k->ky, static_cast<int>(t.size()));
  for (const auto& t : xtaps) k->kx = std::max<int>(k->kx, static_cast<int>(t.size()));
  Flatten(ytaps, k->ky, &k->yi, &k->yw);
  Flatten(xtaps, k->kx, &k->xi, &k->xw);
  k->extrapolation = static_cast<float>(plan->extrapolation);
  k->planes = 1;
  for (int a = 0; a < r - 2; ++a) k->planes *= in_dims[static_cast<size_t>(a)];
  k->src = c.Plain(c.SlotOf(node.inputs[0]));
  k->dst = c.NewSlot(node.outputs[0], PlainMd(plan->out_dims), plan->out_dims);
  k->reads = {k->src};
  k->writes = {k->dst};
  k->info = {node.name, node.op_type, "kiln:resize", "", 0, id};
  c.AddKernel(std::move(k));
  return true;
}

}  // namespace kiln::cpu
