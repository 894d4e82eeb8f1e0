// Sampling ops: GridSample (4-D) with PyTorch's grid_sampler semantics, which ONNX's test data follows:
// unnormalize, then padding by clipping (border) or reflection, then nearest (round half
// to even), bilinear or bicubic (A = -0.75) sampling.
#include <algorithm>
#include <cmath>

#include "backends/ref/kernel.h"
#include "backends/ref/ops/broadcast.h"

namespace kiln {

namespace {

double Unnormalize(double c, int64_t size, bool align) {
  return align ? (c + 1) / 2 * double(size - 1) : ((c + 1) * double(size) - 1) / 2;
}

double Reflect(double in, double twice_low, double twice_high) {
  if (twice_low == twice_high) return 0;
  const double mn = twice_low / 2, span = (twice_high - twice_low) / 2;
  in = std::fabs(in - mn);
  const double extra = std::fmod(in, span);
  const int64_t flips = static_cast<int64_t>(std::floor(in / span));
  return flips % 2 == 0 ? extra + mn : span - extra + mn;
}

double ApplyPadding(double c, int64_t size, const std::string& pad, bool align) {
  if (pad == "border") return std::min(double(size - 1), std::max(0.0, c));
  if (pad == "reflection") {
    c = align ? Reflect(c, 0, 2.0 * double(size - 1)) : Reflect(c, -1, 2.0 * double(size) - 1);
    return std::min(double(size - 1), std::max(0.0, c));
  }
  return c;
}

double Cubic1(double x, double a) { return ((a + 2) * x - (a + 3)) * x * x + 1; }
double Cubic2(double x, double a) { return ((a * x - 5 * a) * x + 8 * a) * x - 4 * a; }

Status GridSampleKernel(RefContext& ctx) {
  KILN_RETURN_IF_ERROR(ctx.RequireTensor(0));
  KILN_RETURN_IF_ERROR(ctx.RequireTensor(1));
  const Tensor& x = ctx.input(0);
  const Tensor& grid = ctx.input(1);
  if (x.rank() != 4 || grid.rank() != 4 || grid.dim(3) != 2 || grid.dim(0) != x.dim(0))
    return InvalidArgument("X must be [N,C,H,W] and grid [N,Ho,Wo,2], got ", x.ShapeString(), " and ", grid.ShapeString());
  KILN_ASSIGN_OR_RETURN(std::string mode, ctx.attrs().GetString("mode", "bilinear"));
  KILN_ASSIGN_OR_RETURN(std::string pad, ctx.attrs().GetString("padding_mode", "zeros"));
  KILN_ASSIGN_OR_RETURN(int64_t align_i, ctx.attrs().GetInt("align_corners", 0));
  if (mode != "bilinear" && mode != "nearest" && mode != "bicubic") return InvalidArgument("unknown mode '", mode, "'");
  if (pad != "zeros" && pad != "border" && pad != "reflection") return InvalidArgument("unknown padding_mode '", pad, "'");
  const bool align = align_i != 0;
  const int64_t n = x.dim(0), c = x.dim(1), h = x.dim(2), w = x.dim(3), ho = grid.dim(1), wo = grid.dim(2);
  Tensor y(x.dtype(), {n, c, ho, wo});
  for (int64_t b = 0; b < n; ++b)
    for (int64_t i = 0; i < ho; ++i)
      for (int64_t j = 0; j < wo; ++j) {
        const int64_t g = ((b * ho + i) * wo + j) * 2;
        const double gx = grid.GetAsDouble(g), gy = grid.GetAsDouble(g + 1);
        for (int64_t ch = 0; ch < c; ++ch) {
          const int64_t plane = (b * c + ch) * h * w;
          auto at = [&](int64_t yy, int64_t xx) {
            return (yy < 0 || yy >= h || xx < 0 || xx >= w) ? 0.0 : x.GetAsDouble(plane + yy * w + xx);
          };
          double v = 0;
          if (mode == "bicubic") {
            const double ix = Unnormalize(gx, w, align), iy = Unnormalize(gy, h, align);
            const double fx = std::floor(ix), fy = std::floor(iy), tx = ix - fx, ty = iy - fy;
            const double a = -0.75;
            const double cx[4] = {Cubic2(tx + 1, a), Cubic1(tx, a), Cubic1(1 - tx, a), Cubic2(2 - tx, a)};
            const double cy[4] = {Cubic2(ty + 1, a), Cubic1(ty, a), Cubic1(1 - ty, a), Cubic2(2 - ty, a)};
            for (int p = 0; p < 4; ++p)
              for (int q = 0; q < 4; ++q) {
                double xx = fx - 1 + q, yy = fy - 1 + p;
                xx = ApplyPadding(xx, w, pad, align);
                yy = ApplyPadding(yy, h, pad, align);
                v += cy[p] * cx[q] * at(static_cast<int64_t>(yy), static_cast<int64_t>(xx));
              }
          } else {
            const double ix = ApplyPadding(Unnormalize(gx, w, align), w, pad, align);
            const double iy = ApplyPadding(Unnormalize(gy, h, align), h, pad, align);
            if (mode == "nearest") {
              v = at(static_cast<int64_t>(std::nearbyint(iy)), static_cast<int64_t>(std::nearbyint(ix)));
            } else {
              const double x0 = std::floor(ix), y0 = std::floor(iy), tx = ix - x0, ty = iy - y0;
              const int64_t xi = static_cast<int64_t>(x0), yi = static_cast<int64_t>(y0);
              v = at(yi, xi) * (1 - tx) * (1 - ty) + at(yi, xi + 1) * tx * (1 - ty) + at(yi + 1, xi) * (1 - tx) * ty +
                  at(yi + 1, xi + 1) * tx * ty;
            }
          }
          ref::StoreDouble(y, ((b * c + ch) * ho + i) * wo + j, v);
        }
      }
  ctx.set_output(0, std::move(y));
  return Status::OK();
}

}  // namespace

void RegisterGridSampleKernels(RefKernelRegistry& r) { r.Add("", "GridSample", &GridSampleKernel); }

}  // namespace kiln

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
  if (oh <= 0 || ow <= 0 || ratio < 0) return InvalidArgument("bad output size or sampling_ratio");
  const int64_t c = x.dim(1), h = x.dim(2), w = x.dim(3), nr = rois.dim(0);
  const double offset = ctm == "half_pixel" ? 0.5 : 0.0;
  Tensor y(x.dtype(), {nr, c, oh, ow});
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
    for (int64_t ch = 0; ch < c; ++ch) {
      const int64_t plane = (b * c + ch) * h * w;
      for (int64_t ph = 0; ph < oh; ++ph)
        for (int64_t pw = 0; pw < ow; ++pw) {
          double acc = mode == "max" ? -INFINITY : 0.0;
          bool any = false;
          for (int64_t iy = 0; iy < gh; ++iy)
            for (int64_t ix = 0; ix < gw; ++ix) {
              double yy = sh + double(ph) * bh + (double(iy) + 0.5) * bh / double(gh);
              double xx = sw + double(pw) * bw + (double(ix) + 0.5) * bw / double(gw);
              if (yy < -1.0 || yy > double(h) || xx < -1.0 || xx > double(w)) {
                if (mode == "max") { acc = std::max(acc, 0.0); any = true; }
                continue;
              }
              yy = std::max(yy, 0.0);
              xx = std::max(xx, 0.0);
              int64_t y0 = static_cast<int64_t>(yy), x0 = static_cast<int64_t>(xx), y1, x1;
              if (y0 >= h - 1) { y0 = y1 = h - 1; yy = double(y0); } else { y1 = y0 + 1; }
              if (x0 >= w - 1) { x0 = x1 = w - 1; xx = double(x0); } else { x1 = x0 + 1; }
              const double ly = yy - double(y0), lx = xx - double(x0), hy = 1 - ly, hx = 1 - lx;
              const double v1 = hy * hx * x.GetAsDouble(plane + y0 * w + x0), v2 = hy * lx * x.GetAsDouble(plane + y0 * w + x1);
              const double v3 = ly * hx * x.GetAsDouble(plane + y1 * w + x0), v4 = ly * lx * x.GetAsDouble(plane + y1 * w + x1);
              if (mode == "max") { acc = std::max({acc, v1, v2, v3, v4}); any = true; }
              else acc += v1 + v2 + v3 + v4;
            }
          const double v = mode == "max" ? (any ? acc : 0.0) : acc / count;
          ref::StoreDouble(y, ((r * c + ch) * oh + ph) * ow + pw, v);
        }
    }
  }
  ctx.set_output(0, std::move(y));
  return Status::OK();
}

}  // namespace

void RegisterRoiAlignKernels(RefKernelRegistry& r) { r.Add("", "RoiAlign", &RoiAlignKernel); }

}  // namespace kiln
