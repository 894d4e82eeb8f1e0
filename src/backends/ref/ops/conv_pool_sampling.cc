// GridSample (4-D) with PyTorch's grid_sampler semantics, which ONNX's test data follows:
// unnormalize, then padding by clipping (border) or reflection, then nearest (round half
// to even), bilinear or bicubic (A = -0.75) sampling.
#include <algorithm>
#include <cmath>

#include "backends/ref/ops/sub_families.h"
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
