// Reference kernels for convolution, pooling and LRN. Inputs are widened to double,
// computed in double and rounded once to the output type.
#include <cmath>
#include <limits>

#include "backends/ref/ops/sub_families.h"
#include "backends/ref/kernel.h"
#include "base/checked_math.h"
#include "backends/ref/ops/broadcast.h"
#include "backends/ref/ops/tensor_util.h"
#include "ir/ops/conv_pool_geometry.h"
#include "ir/ops/families.h"

namespace kiln {


namespace {

using ref::Unravel;

std::vector<double> ToDoubles(const Tensor& t) {
  std::vector<double> v(static_cast<size_t>(t.numel()));
  for (int64_t i = 0; i < t.numel(); ++i) v[static_cast<size_t>(i)] = t.GetAsDouble(i);
  return v;
}

Tensor FromDoubles(const std::vector<double>& v, DType dt, const std::vector<int64_t>& dims) {
  Tensor t(dt, dims);
  for (int64_t i = 0; i < t.numel(); ++i) ref::StoreDouble(t, i, v[static_cast<size_t>(i)]);
  return t;
}

std::vector<int64_t> Spatial(const std::vector<int64_t>& dims) { return {dims.begin() + 2, dims.end()}; }

int64_t Product(const std::vector<int64_t>& v) {
  int64_t p = 1;
  for (int64_t d : v) p *= d;
  return p;
}

struct ConvProblem {
  std::vector<int64_t> x_dims, w_dims, out_dims;
  WindowGeometry g;
  int64_t group = 1;
};

// Resolves geometry and output dims of a convolution; validates shapes.
StatusOr<ConvProblem> SetUpConv(const AttrMap& attrs, const Tensor& x, const Tensor& w) {
  ConvProblem p;
  p.x_dims = x.dims();
  p.w_dims = w.dims();
  if (x.rank() < 3 || w.rank() != x.rank()) return InvalidArgument("X ", x.ShapeString(), " and W ", w.ShapeString(), " must have the same rank >= 3");
  KILN_ASSIGN_OR_RETURN(p.group, attrs.GetInt("group", 1));
  if (p.group <= 0 || x.dim(1) != w.dim(1) * p.group || w.dim(0) % p.group != 0)
    return InvalidArgument("channels of X ", x.ShapeString(), " and W ", w.ShapeString(), " do not match group ", p.group);
  const int spatial = x.rank() - 2;
  KILN_ASSIGN_OR_RETURN(p.g, ReadWindowGeometry(attrs, spatial, Spatial(w.dims())));
  if (p.g.kernel != Spatial(w.dims())) return InvalidArgument("attribute 'kernel_shape' does not match W");
  p.out_dims = {x.dim(0), w.dim(0)};
  for (int i = 0; i < spatial; ++i) {
    KILN_ASSIGN_OR_RETURN(int64_t o, WindowOutputSize(p.g, i, x.dim(i + 2)));
    p.out_dims.push_back(o);
  }
  return p;
}

// out[n, m, o...] = bias[m] + sum over c in group, k of x[n, c, o*s - pad + k*d] * w[m, c, k].
std::vector<double> ConvCore(const ConvProblem& p, const std::vector<double>& x, const std::vector<double>& w,
                             const std::vector<double>* bias) {
  const int64_t n_batch = p.x_dims[0], c_in = p.x_dims[1], m_out = p.w_dims[0];
  const int64_t cg = c_in / p.group, mg = m_out / p.group;
  const std::vector<int64_t> in_sp = Spatial(p.x_dims), out_sp = Spatial(p.out_dims), k_sp = Spatial(p.w_dims);
  const int64_t in_size = Product(in_sp), out_size = Product(out_sp), k_size = Product(k_sp);
  const size_t spatial = in_sp.size();
  std::vector<double> out(static_cast<size_t>(n_batch * m_out * out_size), 0.0);
  std::vector<int64_t> opos, kpos;
  // Input offset (or -1 when in the padding) for every (output position, kernel position).
  std::vector<int64_t> tap(static_cast<size_t>(out_size * k_size));
  const std::vector<int64_t> in_strides = StridesOf(in_sp);
  for (int64_t o = 0; o < out_size; ++o) {
    Unravel(o, out_sp, opos);
    for (int64_t k = 0; k < k_size; ++k) {
      Unravel(k, k_sp, kpos);
      int64_t off = 0;
      for (size_t d = 0; d < spatial && off >= 0; ++d) {
        int64_t i = opos[d] * p.g.strides[d] - p.g.pads[d] + kpos[d] * p.g.dilations[d];
        off = (i < 0 || i >= in_sp[d]) ? -1 : off + i * in_strides[d];
      }
      tap[static_cast<size_t>(o * k_size + k)] = off;
    }
  }
  for (int64_t n = 0; n < n_batch; ++n)
    for (int64_t m = 0; m < m_out; ++m) {
      const int64_t g = m / mg;
      double* dst = &out[static_cast<size_t>((n * m_out + m) * out_size)];
      const double b = bias ? (*bias)[static_cast<size_t>(m)] : 0.0;
      for (int64_t o = 0; o < out_size; ++o) {
        double acc = b;
        const int64_t* t = &tap[static_cast<size_t>(o * k_size)];
        for (int64_t c = 0; c < cg; ++c) {
          const double* xs = &x[static_cast<size_t>((n * c_in + g * cg + c) * in_size)];
          const double* ws = &w[static_cast<size_t>((m * cg + c) * k_size)];
          for (int64_t k = 0; k < k_size; ++k)
            if (t[k] >= 0) acc += xs[t[k]] * ws[k];
        }
        dst[o] = acc;
      }
    }
  return out;
}

Status ConvKernel(RefContext& ctx) {
  KILN_RETURN_IF_ERROR(ctx.RequireTensor(0));
  KILN_RETURN_IF_ERROR(ctx.RequireTensor(1));
  const Tensor& x = ctx.input(0);
  const Tensor& w = ctx.input(1);
  KILN_ASSIGN_OR_RETURN(ConvProblem p, SetUpConv(ctx.attrs(), x, w));
  std::vector<double> bias;
  if (ctx.has_input(2)) {
    if (ctx.input(2).numel() != w.dim(0)) return InvalidArgument("bias B must have ", w.dim(0), " elements");
    bias = ToDoubles(ctx.input(2));
  }
  std::vector<double> out = ConvCore(p, ToDoubles(x), ToDoubles(w), ctx.has_input(2) ? &bias : nullptr);
  ctx.set_output(0, FromDoubles(out, x.dtype(), p.out_dims));
  return Status::OK();
}

// Zero point of a per-tensor or per-channel (axis `axis` of `t`) quantized tensor, as doubles per channel.
StatusOr<std::vector<double>> ZeroPoints(RefContext& ctx, int input, int64_t channels) {
  if (!ctx.has_input(input)) return std::vector<double>(static_cast<size_t>(channels), 0.0);
  const Tensor& z = ctx.input(input);
  if (z.numel() == 1) return std::vector<double>(static_cast<size_t>(channels), z.GetAsDouble(0));
  if (z.numel() != channels) return InvalidArgument("zero point (input ", input, ") must be a scalar or have ", channels, " elements");
  return ToDoubles(z);
}

Status ConvIntegerKernel(RefContext& ctx) {
  KILN_RETURN_IF_ERROR(ctx.RequireTensor(0));
  KILN_RETURN_IF_ERROR(ctx.RequireTensor(1));
  const Tensor& x = ctx.input(0);
  const Tensor& w = ctx.input(1);
  KILN_ASSIGN_OR_RETURN(ConvProblem p, SetUpConv(ctx.attrs(), x, w));
  KILN_ASSIGN_OR_RETURN(std::vector<double> xz, ZeroPoints(ctx, 2, 1));
  KILN_ASSIGN_OR_RETURN(std::vector<double> wz, ZeroPoints(ctx, 3, w.dim(0)));
  std::vector<double> xd = ToDoubles(x), wd = ToDoubles(w);
  for (double& v : xd) v -= xz[0];
  const int64_t per = w.numel() / w.dim(0);
  for (int64_t i = 0; i < w.numel(); ++i) wd[static_cast<size_t>(i)] -= wz[static_cast<size_t>(i / per)];
  // Zero-point-shifted padding: padded X positions hold the zero point, i.e. 0 after the shift.
  std::vector<double> out = ConvCore(p, xd, wd, nullptr);
  ctx.set_output(0, FromDoubles(out, DType::kInt32, p.out_dims));
  return Status::OK();
}

double Saturate(double v, DType dt) {
  double lo = dt == DType::kUInt8 ? 0 : -128, hi = dt == DType::kUInt8 ? 255 : 127;
  return std::min(hi, std::max(lo, v));
}

Status QLinearConvKernel(RefContext& ctx) {
  for (int i = 0; i < 8; ++i) KILN_RETURN_IF_ERROR(ctx.RequireTensor(i));
  const Tensor& x = ctx.input(0);
  const Tensor& w = ctx.input(3);
  KILN_ASSIGN_OR_RETURN(ConvProblem p, SetUpConv(ctx.attrs(), x, w));
  const int64_t m = w.dim(0);
  const double xs = ctx.input(1).GetAsDouble(0), ys = ctx.input(6).GetAsDouble(0);
  KILN_ASSIGN_OR_RETURN(std::vector<double> xz, ZeroPoints(ctx, 2, 1));
  KILN_ASSIGN_OR_RETURN(std::vector<double> wz, ZeroPoints(ctx, 5, m));
  KILN_ASSIGN_OR_RETURN(std::vector<double> yz, ZeroPoints(ctx, 7, 1));
  const Tensor& wst = ctx.input(4);
  if (wst.numel() != 1 && wst.numel() != m) return InvalidArgument("w_scale must be a scalar or have ", m, " elements");
  std::vector<double> xd = ToDoubles(x), wd = ToDoubles(w);
  for (double& v : xd) v -= xz[0];
  const int64_t per = w.numel() / m;
  for (int64_t i = 0; i < w.numel(); ++i) wd[static_cast<size_t>(i)] -= wz[static_cast<size_t>(i / per)];
  std::vector<double> bias;
  if (ctx.has_input(8)) bias = ToDoubles(ctx.input(8));
  std::vector<double> acc = ConvCore(p, xd, wd, ctx.has_input(8) ? &bias : nullptr);
  const DType out_dt = ctx.input(7).dtype();
  const int64_t out_sp = Product(Spatial(p.out_dims));
  for (size_t i = 0; i < acc.size(); ++i) {
    const int64_t ch = (static_cast<int64_t>(i) / out_sp) % m;
    const double ws = wst.GetAsDouble(wst.numel() == 1 ? 0 : ch);
    acc[i] = Saturate(std::nearbyint(acc[i] * xs * ws / ys) + yz[0], out_dt);
  }
  ctx.set_output(0, FromDoubles(acc, out_dt, p.out_dims));
  return Status::OK();
}

Status ConvTransposeKernel(RefContext& ctx) {
  KILN_RETURN_IF_ERROR(ctx.RequireTensor(0));
  KILN_RETURN_IF_ERROR(ctx.RequireTensor(1));
  const Tensor& x = ctx.input(0);
  const Tensor& w = ctx.input(1);
  if (x.rank() < 3 || w.rank() != x.rank()) return InvalidArgument("X and W must have the same rank >= 3");
  KILN_ASSIGN_OR_RETURN(int64_t group, ctx.attrs().GetInt("group", 1));
  if (group <= 0 || x.dim(1) != w.dim(0) || w.dim(0) % group) return InvalidArgument("channels of X and W do not match group ", group);
  const int spatial = x.rank() - 2;
  KILN_ASSIGN_OR_RETURN(WindowGeometry g, ReadWindowGeometry(ctx.attrs(), spatial, Spatial(w.dims())));
  KILN_ASSIGN_OR_RETURN(std::vector<int64_t> out_pad, ctx.attrs().GetInts("output_padding", std::vector<int64_t>(static_cast<size_t>(spatial), 0)));
  KILN_ASSIGN_OR_RETURN(std::vector<int64_t> out_shape, ctx.attrs().GetInts("output_shape"));
  const std::vector<int64_t> in_sp = Spatial(x.dims()), k_sp = Spatial(w.dims());
  std::vector<int64_t> out_sp(static_cast<size_t>(spatial));
  const bool same = g.auto_pad == "SAME_UPPER" || g.auto_pad == "SAME_LOWER";
  for (int i = 0; i < spatial; ++i) {
    const size_t a = static_cast<size_t>(i), e = a + static_cast<size_t>(spatial);
    const int64_t extent = (k_sp[a] - 1) * g.dilations[a] + 1;
    const int64_t full = g.strides[a] * (in_sp[a] - 1) + out_pad[a] + extent;
    if (!out_shape.empty() || same) {
      const int64_t target = !out_shape.empty() ? out_shape[out_shape.size() - static_cast<size_t>(spatial) + a] : in_sp[a] * g.strides[a];
      // Floor division as in ONNX's reference: a negative total (output_shape larger than the
      // full result) leaves the extra rows/columns at the end.
      const int64_t total = full - target;
      const int64_t half = total >= 0 ? total / 2 : -((-total + 1) / 2);
      if (g.auto_pad == "SAME_UPPER") { g.pads[a] = half; g.pads[e] = total - half; }
      else { g.pads[a] = total - half; g.pads[e] = half; }
      out_sp[a] = target;
    } else {
      if (g.auto_pad == "VALID") g.pads[a] = g.pads[e] = 0;
      out_sp[a] = full - g.pads[a] - g.pads[e];
    }
    if (out_sp[a] <= 0) return InvalidArgument("output size is not positive");
  }
  const int64_t n_batch = x.dim(0), c_in = x.dim(1), mg = w.dim(1), m_out = mg * group, cg = c_in / group;
  std::vector<int64_t> out_dims = {n_batch, m_out};
  out_dims.insert(out_dims.end(), out_sp.begin(), out_sp.end());
  const int64_t in_size = Product(in_sp), out_size = Product(out_sp), k_size = Product(k_sp);
  std::vector<double> xd = ToDoubles(x), wd = ToDoubles(w), out(static_cast<size_t>(n_batch * m_out * out_size), 0.0);
  if (ctx.has_input(2)) {
    if (ctx.input(2).numel() != m_out) return InvalidArgument("bias B must have ", m_out, " elements");
    for (int64_t n = 0; n < n_batch; ++n)
      for (int64_t m = 0; m < m_out; ++m)
        for (int64_t o = 0; o < out_size; ++o) out[static_cast<size_t>((n * m_out + m) * out_size + o)] = ctx.input(2).GetAsDouble(m);
  }
  const std::vector<int64_t> out_strides = StridesOf(out_sp);
  std::vector<int64_t> ipos, kpos;
  std::vector<int64_t> tap(static_cast<size_t>(in_size * k_size));
  for (int64_t i = 0; i < in_size; ++i) {
    Unravel(i, in_sp, ipos);
    for (int64_t k = 0; k < k_size; ++k) {
      Unravel(k, k_sp, kpos);
      int64_t off = 0;
      for (size_t d = 0; d < in_sp.size() && off >= 0; ++d) {
        int64_t o = ipos[d] * g.strides[d] - g.pads[d] + kpos[d] * g.dilations[d];
        off = (o < 0 || o >= out_sp[d]) ? -1 : off + o * out_strides[d];
      }
      tap[static_cast<size_t>(i * k_size + k)] = off;
    }
  }
  for (int64_t n = 0; n < n_batch; ++n)
    for (int64_t c = 0; c < c_in; ++c) {
      const int64_t gi = c / cg;
      for (int64_t mo = 0; mo < mg; ++mo) {
        const int64_t m = gi * mg + mo;
        double* dst = &out[static_cast<size_t>((n * m_out + m) * out_size)];
        const double* ws = &wd[static_cast<size_t>((c * mg + mo) * k_size)];
        for (int64_t i = 0; i < in_size; ++i) {
          const double xv = xd[static_cast<size_t>((n * c_in + c) * in_size + i)];
          const int64_t* t = &tap[static_cast<size_t>(i * k_size)];
          for (int64_t k = 0; k < k_size; ++k)
            if (t[k] >= 0) dst[t[k]] += xv * ws[k];
        }
      }
    }
  ctx.set_output(0, FromDoubles(out, x.dtype(), out_dims));
  return Status::OK();
}

// Max/Average/Lp pooling over windows.
Status PoolKernel(RefContext& ctx) {
  KILN_RETURN_IF_ERROR(ctx.RequireTensor(0));
  const Tensor& x = ctx.input(0);
  const std::string& op = ctx.node().op_type;
  if (x.rank() < 3) return InvalidArgument("input must have rank >= 3");
  const int spatial = x.rank() - 2;
  if (!ctx.attrs().has("kernel_shape")) return InvalidArgument("required attribute 'kernel_shape' is missing");
  KILN_ASSIGN_OR_RETURN(WindowGeometry g, ReadWindowGeometry(ctx.attrs(), spatial, {}));
  KILN_ASSIGN_OR_RETURN(int64_t include_pad, ctx.attrs().GetInt("count_include_pad", 0));
  KILN_ASSIGN_OR_RETURN(int64_t storage_order, ctx.attrs().GetInt("storage_order", 0));
  KILN_ASSIGN_OR_RETURN(int64_t p_norm, ctx.attrs().GetInt("p", 2));
  if (p_norm <= 0) return InvalidArgument("attribute 'p' must be positive");
  const std::vector<int64_t> in_sp = Spatial(x.dims());
  std::vector<int64_t> out_sp;
  for (int i = 0; i < spatial; ++i) {
    KILN_ASSIGN_OR_RETURN(int64_t o, WindowOutputSize(g, i, in_sp[static_cast<size_t>(i)]));
    out_sp.push_back(o);
  }
  std::vector<int64_t> out_dims = {x.dim(0), x.dim(1)};
  out_dims.insert(out_dims.end(), out_sp.begin(), out_sp.end());
  const int64_t nc = x.dim(0) * x.dim(1), in_size = Product(in_sp), out_size = Product(out_sp), k_size = Product(g.kernel);
  const std::vector<double> xd = ToDoubles(x);
  std::vector<double> out(static_cast<size_t>(nc * out_size));
  Tensor indices(DType::kInt64, out_dims);
  const std::vector<int64_t> in_strides = StridesOf(in_sp);
  std::vector<int64_t> opos, kpos;
  for (int64_t o = 0; o < out_size; ++o) {
    Unravel(o, out_sp, opos);
    // Window taps: input offset (or -1 in padding) and whether the tap is inside the padded input.
    std::vector<std::pair<int64_t, bool>> taps;
    for (int64_t k = 0; k < k_size; ++k) {
      Unravel(k, g.kernel, kpos);
      int64_t off = 0;
      bool in_padded = true, inside = true;
      for (size_t d = 0; d < in_sp.size(); ++d) {
        int64_t i = opos[d] * g.strides[d] - g.pads[d] + kpos[d] * g.dilations[d];
        if (i < -g.pads[d] || i >= in_sp[d] + g.pads[d + in_sp.size()]) in_padded = false;
        if (i < 0 || i >= in_sp[d]) inside = false;
        else off += i * in_strides[d];
      }
      taps.emplace_back(inside ? off : -1, in_padded);
    }
    for (int64_t c = 0; c < nc; ++c) {
      const double* xs = &xd[static_cast<size_t>(c * in_size)];
      double acc = op == "MaxPool" ? -std::numeric_limits<double>::infinity() : 0.0;
      int64_t count = 0, best = -1;
      for (const auto& [off, in_padded] : taps) {
        if (op == "MaxPool") {
          if (off >= 0 && (best < 0 || xs[off] > acc)) { acc = xs[off]; best = off; }
        } else if (op == "AveragePool") {
          if (off >= 0) acc += xs[off];
          if (off >= 0 || (include_pad && in_padded)) ++count;
        } else {
          if (off >= 0) acc += std::pow(std::fabs(xs[off]), double(p_norm));
        }
      }
      double v = acc;
      if (op == "AveragePool") v = count ? acc / double(count) : 0.0;
      if (op == "LpPool") v = std::pow(acc, 1.0 / double(p_norm));
      out[static_cast<size_t>(c * out_size + o)] = v;
      if (op == "MaxPool") {
        int64_t idx = best < 0 ? 0 : best;
        if (storage_order == 1 && spatial == 2) idx = (best % in_sp[1]) * in_sp[0] + best / in_sp[1];
        indices.data<int64_t>()[c * out_size + o] = c * in_size + idx;
      }
    }
  }
  ctx.set_output(0, FromDoubles(out, x.dtype(), out_dims));
  if (ctx.has_output(1)) ctx.set_output(1, std::move(indices));
  return Status::OK();
}

Status GlobalPoolKernel(RefContext& ctx) {
  KILN_RETURN_IF_ERROR(ctx.RequireTensor(0));
  const Tensor& x = ctx.input(0);
  if (x.rank() < 3) return InvalidArgument("input must have rank >= 3");
  const std::string& op = ctx.node().op_type;
  KILN_ASSIGN_OR_RETURN(int64_t p_norm, ctx.attrs().GetInt("p", 2));
  if (p_norm <= 0) return InvalidArgument("attribute 'p' must be positive");
  const int64_t nc = x.dim(0) * x.dim(1), sp = x.numel() / std::max<int64_t>(1, nc);
  std::vector<int64_t> od = {x.dim(0), x.dim(1)};
  for (int i = 2; i < x.rank(); ++i) od.push_back(1);
  const std::vector<double> xd = ToDoubles(x);
  std::vector<double> out(static_cast<size_t>(nc));
  for (int64_t c = 0; c < nc; ++c) {
    double acc = op == "GlobalMaxPool" ? -std::numeric_limits<double>::infinity() : 0.0;
    for (int64_t i = 0; i < sp; ++i) {
      double v = xd[static_cast<size_t>(c * sp + i)];
      if (op == "GlobalMaxPool") acc = std::max(acc, v);
      else if (op == "GlobalAveragePool") acc += v;
      else acc += std::pow(std::fabs(v), double(p_norm));
    }
    if (op == "GlobalAveragePool") acc /= double(sp);
    if (op == "GlobalLpPool") acc = std::pow(acc, 1.0 / double(p_norm));
    out[static_cast<size_t>(c)] = acc;
  }
  ctx.set_output(0, FromDoubles(out, x.dtype(), od));
  return Status::OK();
}

Status MaxUnpoolKernel(RefContext& ctx) {
  KILN_RETURN_IF_ERROR(ctx.RequireTensor(0));
  KILN_RETURN_IF_ERROR(ctx.RequireTensor(1));
  const Tensor& x = ctx.input(0);
  if (x.rank() < 3) return InvalidArgument("input X must have rank >= 3, got ", x.ShapeString());
  KILN_ASSIGN_OR_RETURN(std::vector<int64_t> idx, ctx.input(1).ToInt64Vector());
  if (static_cast<int64_t>(idx.size()) != x.numel()) return InvalidArgument("indices must have the shape of X");
  // Indices address the default output shape (the pooled op's input); an explicit
  // output_shape only pads it.
  const int spatial = x.rank() - 2;
  KILN_ASSIGN_OR_RETURN(WindowGeometry g, ReadWindowGeometry(ctx.attrs(), spatial, {}));
  std::vector<int64_t> dflt = {x.dim(0), x.dim(1)};
  for (int i = 0; i < spatial; ++i) {
    KILN_ASSIGN_OR_RETURN(int64_t o, UnpoolOutputSize(g, i, x.dim(i + 2)));
    dflt.push_back(o);
  }
  std::vector<int64_t> od = dflt;
  if (ctx.has_input(2)) {
    KILN_ASSIGN_OR_RETURN(od, ctx.input(2).ToInt64Vector());
    if (od.size() != dflt.size()) return InvalidArgument("output_shape must have rank ", dflt.size());
  }
  KILN_ASSIGN_OR_RETURN(Tensor y, Tensor::Create(x.dtype(), od, "output"));
  KILN_ASSIGN_OR_RETURN(int64_t dflt_numel, CheckedNumel(dflt, "unpooled output"));
  const std::vector<int64_t> ostrides = StridesOf(od);
  std::vector<int64_t> pos;
  for (int64_t i = 0; i < x.numel(); ++i) {
    const int64_t v = idx[static_cast<size_t>(i)];
    if (v < 0 || v >= dflt_numel) return OutOfRange("index ", v, " out of range");
    ref::Unravel(v, dflt, pos);
    int64_t off = 0;
    for (size_t d = 0; d < pos.size(); ++d) {
      if (pos[d] >= od[d]) return OutOfRange("index ", v, " falls outside output_shape");
      off += pos[d] * ostrides[d];
    }
    ref::CopyElement(y, off, x, i);
  }
  ctx.set_output(0, std::move(y));
  return Status::OK();
}

Status LrnKernel(RefContext& ctx) {
  KILN_RETURN_IF_ERROR(ctx.RequireTensor(0));
  const Tensor& x = ctx.input(0);
  if (x.rank() < 3) return InvalidArgument("input must have rank >= 3");
  KILN_ASSIGN_OR_RETURN(int64_t size, ctx.attrs().RequireInt("size"));
  KILN_ASSIGN_OR_RETURN(float alpha, ctx.attrs().GetFloat("alpha", 1e-4f));
  KILN_ASSIGN_OR_RETURN(float beta, ctx.attrs().GetFloat("beta", 0.75f));
  KILN_ASSIGN_OR_RETURN(float bias, ctx.attrs().GetFloat("bias", 1.0f));
  if (size <= 0) return InvalidArgument("attribute 'size' must be positive");
  const int64_t n = x.dim(0), c = x.dim(1), sp = x.numel() / std::max<int64_t>(1, n * c);
  const std::vector<double> xd = ToDoubles(x);
  std::vector<double> out(xd.size());
  const int64_t lo = (size - 1) / 2, hi = size - 1 - lo;
  for (int64_t b = 0; b < n; ++b)
    for (int64_t ch = 0; ch < c; ++ch)
      for (int64_t i = 0; i < sp; ++i) {
        double sq = 0;
        for (int64_t k = std::max<int64_t>(0, ch - lo); k <= std::min(c - 1, ch + hi); ++k) {
          double v = xd[static_cast<size_t>((b * c + k) * sp + i)];
          sq += v * v;
        }
        const size_t at = static_cast<size_t>((b * c + ch) * sp + i);
        out[at] = xd[at] / std::pow(double(bias) + double(alpha) / double(size) * sq, double(beta));
      }
  ctx.set_output(0, FromDoubles(out, x.dtype(), x.dims()));
  return Status::OK();
}

}  // namespace

void RegisterConvPoolKernels(RefKernelRegistry& r) {
  r.Add("", "Conv", &ConvKernel);
  r.Add("", "ConvInteger", &ConvIntegerKernel);
  r.Add("", "QLinearConv", &QLinearConvKernel);
  r.Add("", "ConvTranspose", &ConvTransposeKernel);
  for (const char* op : {"MaxPool", "AveragePool", "LpPool"}) r.Add("", op, &PoolKernel);
  for (const char* op : {"GlobalAveragePool", "GlobalMaxPool", "GlobalLpPool"}) r.Add("", op, &GlobalPoolKernel);
  r.Add("", "MaxUnpool", &MaxUnpoolKernel);
  r.Add("", "LRN", &LrnKernel);
  RegisterResizeKernels(r);
  RegisterGridSampleKernels(r);
  RegisterRoiKernels(r);
}

}  // namespace kiln
