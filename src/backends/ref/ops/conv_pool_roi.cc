// Region-of-interest pooling: RoiAlign (bilinear samples per bin, averaged or maxed) and
// MaxRoiPool (Caffe's ROIPooling: integer bins, max over each).
#include <algorithm>
#include <cmath>
#include <vector>

#include "backends/ref/ops/sub_families.h"
#include "backends/ref/kernel.h"
#include "backends/ref/ops/broadcast.h"

namespace kiln {

namespace {

// RoiAlign (ONNX / Detectron semantics): each output bin averages (or maxes) bilinear
// samples on a regular grid inside the bin.
Status RoiAlignKernel(RefContext& ctx) {
  for (int i = 0; i < 3; ++i) KILN_RETURN_IF_ERROR(ctx.RequireTensor(i));
  const Tensor& x = ctx.input(0);
  const Tensor& rois = ctx.input(1);
  KILN_ASSIGN_OR_RETURN(std::vector<int64_t> bidx, ctx.input(2).ToInt64Vector());
  if (x.rank() != 4 || rois.rank() != 2 || rois.dim(1) != 4 || static_cast<int64_t>(bidx.size()) != rois.dim(0))
    return InvalidArgument("X must be [N,C,H,W], rois [R,4] and batch_indices [R]");
  KILN_ASSIGN_OR_RETURN(std::string mode, ctx.attrs().GetString("mode", "avg"));
  KILN_ASSIGN_OR_RETURN(int64_t oh, ctx.attrs().GetInt("output_height", 1));
  KILN_ASSIGN_OR_RETURN(int64_t ow, ctx.attrs().GetInt("output_width", 1));
  KILN_ASSIGN_OR_RETURN(int64_t ratio, ctx.attrs().GetInt("sampling_ratio", 0));
  KILN_ASSIGN_OR_RETURN(float scale, ctx.attrs().GetFloat("spatial_scale", 1.f));
  KILN_ASSIGN_OR_RETURN(std::string ctm, ctx.attrs().GetString("coordinate_transformation_mode", "half_pixel"));
  if (oh <= 0 || ow <= 0) return InvalidArgument("attributes 'output_height' and 'output_width' must be positive");
  if (ratio < 0) return InvalidArgument("attribute 'sampling_ratio' must be non-negative");
  if (mode != "avg" && mode != "max") return InvalidArgument("attribute 'mode' has unknown value '", mode, "'");
  if (ctm != "half_pixel" && ctm != "output_half_pixel")
    return InvalidArgument("attribute 'coordinate_transformation_mode' has unknown value '", ctm, "'");
  const int64_t c = x.dim(1), h = x.dim(2), w = x.dim(3), nr = rois.dim(0);
  const double offset = ctm == "half_pixel" ? 0.5 : 0.0;
  const bool is_max = mode == "max";
  KILN_ASSIGN_OR_RETURN(Tensor y, Tensor::Create(x.dtype(), {nr, c, oh, ow}, "output"));
  for (int64_t r = 0; r < nr; ++r) {
    const int64_t b = bidx[static_cast<size_t>(r)];
    if (b < 0 || b >= x.dim(0)) return OutOfRange("batch index ", b, " out of range");
    const double sw = rois.GetAsDouble(r * 4) * scale - offset, sh = rois.GetAsDouble(r * 4 + 1) * scale - offset;
    const double ew = rois.GetAsDouble(r * 4 + 2) * scale - offset, eh = rois.GetAsDouble(r * 4 + 3) * scale - offset;
    double rw = ew - sw, rh = eh - sh;
    if (ctm == "output_half_pixel") { rw = std::max(rw, 1.0); rh = std::max(rh, 1.0); }
    const double bh = rh / double(oh), bw = rw / double(ow);
    const int64_t gh = ratio > 0 ? ratio : static_cast<int64_t>(std::ceil(rh / double(oh)));
    const int64_t gw = ratio > 0 ? ratio : static_cast<int64_t>(std::ceil(rw / double(ow)));
    const double count = std::max<double>(1.0, double(gh * gw));
    // The bilinear taps of every sample, once per roi (they do not depend on the channel).
    struct Sample {
      int64_t off[4];
      double w[4];
      bool outside;
    };
    std::vector<Sample> samples(static_cast<size_t>(oh * ow * gh * gw));
    size_t si = 0;
    for (int64_t ph = 0; ph < oh; ++ph)
      for (int64_t pw = 0; pw < ow; ++pw)
        for (int64_t iy = 0; iy < gh; ++iy)
          for (int64_t ix = 0; ix < gw; ++ix) {
            Sample& sm = samples[si++];
            double yy = sh + double(ph) * bh + (double(iy) + 0.5) * bh / double(gh);
            double xx = sw + double(pw) * bw + (double(ix) + 0.5) * bw / double(gw);
            sm.outside = yy < -1.0 || yy > double(h) || xx < -1.0 || xx > double(w);
            if (sm.outside) continue;
            yy = std::max(yy, 0.0);
            xx = std::max(xx, 0.0);
            int64_t y0 = static_cast<int64_t>(yy), x0 = static_cast<int64_t>(xx), y1, x1;
            if (y0 >= h - 1) { y0 = y1 = h - 1; yy = double(y0); } else { y1 = y0 + 1; }
            if (x0 >= w - 1) { x0 = x1 = w - 1; xx = double(x0); } else { x1 = x0 + 1; }
            const double ly = yy - double(y0), lx = xx - double(x0), hy = 1 - ly, hx = 1 - lx;
            sm.off[0] = y0 * w + x0, sm.off[1] = y0 * w + x1, sm.off[2] = y1 * w + x0, sm.off[3] = y1 * w + x1;
            sm.w[0] = hy * hx, sm.w[1] = hy * lx, sm.w[2] = ly * hx, sm.w[3] = ly * lx;
          }
    const float* xf = x.dtype() == DType::kFloat32 ? x.data<float>() : nullptr;
    auto at = [&](int64_t i) { return xf ? static_cast<double>(xf[i]) : x.GetAsDouble(i); };
    const int64_t per_bin = gh * gw;
    for (int64_t ch = 0; ch < c; ++ch) {
      const int64_t plane = (b * c + ch) * h * w;
      for (int64_t bin = 0; bin < oh * ow; ++bin) {
        double acc = is_max ? -INFINITY : 0.0;
        bool any = false;
        for (int64_t k = 0; k < per_bin; ++k) {
          const Sample& sm = samples[static_cast<size_t>(bin * per_bin + k)];
          if (sm.outside) {
            if (is_max) { acc = std::max(acc, 0.0); any = true; }
            continue;
          }
          const double v1 = sm.w[0] * at(plane + sm.off[0]), v2 = sm.w[1] * at(plane + sm.off[1]);
          const double v3 = sm.w[2] * at(plane + sm.off[2]), v4 = sm.w[3] * at(plane + sm.off[3]);
          if (is_max) { acc = std::max({acc, v1, v2, v3, v4}); any = true; }
          else acc += v1 + v2 + v3 + v4;
        }
        const double v = is_max ? (any ? acc : 0.0) : acc / count;
        ref::StoreDouble(y, (r * c + ch) * oh * ow + bin, v);
      }
    }
  }
  ctx.set_output(0, std::move(y));
  return Status::OK();
}

// MaxRoiPool: rois are [R, 5] = (batch index, x1, y1, x2, y2) in input coordinates before
// spatial_scale. As in Caffe, corners are rounded, the region is at least 1x1, and bin
// (ph, pw) covers rows [floor(ph * bin_h), ceil((ph + 1) * bin_h)) of it, clipped to the
// input; an empty bin yields 0.
Status MaxRoiPoolKernel(RefContext& ctx) {
  for (int i = 0; i < 2; ++i) KILN_RETURN_IF_ERROR(ctx.RequireTensor(i));
  const Tensor& x = ctx.input(0);
  const Tensor& rois = ctx.input(1);
  if (x.rank() != 4 || rois.rank() != 2 || rois.dim(1) != 5)
    return InvalidArgument("X must be [N,C,H,W] and rois [R,5], got ", x.ShapeString(), " and ", rois.ShapeString());
  if (!ctx.attrs().has("pooled_shape")) return InvalidArgument("required attribute 'pooled_shape' is missing");
  KILN_ASSIGN_OR_RETURN(std::vector<int64_t> pooled, ctx.attrs().GetInts("pooled_shape"));
  KILN_ASSIGN_OR_RETURN(float scale, ctx.attrs().GetFloat("spatial_scale", 1.f));
  if (pooled.size() != 2 || pooled[0] <= 0 || pooled[1] <= 0)
    return InvalidArgument("attribute 'pooled_shape' must hold 2 positive sizes");
  const int64_t c = x.dim(1), h = x.dim(2), w = x.dim(3), nr = rois.dim(0), oh = pooled[0], ow = pooled[1];
  KILN_ASSIGN_OR_RETURN(Tensor y, Tensor::Create(x.dtype(), {nr, c, oh, ow}, "output"));
  auto corner = [&](int64_t r, int k) { return static_cast<int64_t>(std::round(rois.GetAsDouble(r * 5 + k) * scale)); };
  for (int64_t r = 0; r < nr; ++r) {
    const double bd = rois.GetAsDouble(r * 5);
    if (!(bd >= 0 && bd < double(x.dim(0)))) return OutOfRange("roi ", r, ": batch index ", bd, " out of range");
    const int64_t b = static_cast<int64_t>(bd);
    const int64_t x1 = corner(r, 1), y1 = corner(r, 2), x2 = corner(r, 3), y2 = corner(r, 4);
    const double bin_h = double(std::max<int64_t>(y2 - y1 + 1, 1)) / double(oh);
    const double bin_w = double(std::max<int64_t>(x2 - x1 + 1, 1)) / double(ow);
    auto clip = [](double v, int64_t hi) { return std::min<int64_t>(std::max<int64_t>(static_cast<int64_t>(v), 0), hi); };
    for (int64_t ph = 0; ph < oh; ++ph) {
      const int64_t hs = clip(std::floor(double(ph) * bin_h) + double(y1), h);
      const int64_t he = clip(std::ceil(double(ph + 1) * bin_h) + double(y1), h);
      for (int64_t pw = 0; pw < ow; ++pw) {
        const int64_t ws = clip(std::floor(double(pw) * bin_w) + double(x1), w);
        const int64_t we = clip(std::ceil(double(pw + 1) * bin_w) + double(x1), w);
        for (int64_t ch = 0; ch < c; ++ch) {
          const int64_t plane = (b * c + ch) * h * w;
          double m = (he <= hs || we <= ws) ? 0.0 : -INFINITY;
          for (int64_t i = hs; i < he; ++i)
            for (int64_t j = ws; j < we; ++j) m = std::max(m, x.GetAsDouble(plane + i * w + j));
          ref::StoreDouble(y, ((r * c + ch) * oh + ph) * ow + pw, m);
        }
      }
    }
  }
  ctx.set_output(0, std::move(y));
  return Status::OK();
}

}  // namespace

void RegisterRoiKernels(RefKernelRegistry& r) {
  r.Add("", "RoiAlign", &RoiAlignKernel);
  r.Add("", "MaxRoiPool", &MaxRoiPoolKernel);
}

}  // namespace kiln
