// Reference kernels: matrix products, normalization, softmax, quantization, losses.
// Everything is computed in double and rounded once.
#include <cmath>
#include <limits>

#include "backends/ref/ops/sub_families.h"
#include "backends/ref/kernel.h"
#include "backends/ref/ops/broadcast.h"
#include "backends/ref/ops/tensor_util.h"
#include "ir/op_schema.h"
#include "ir/ops/families.h"

namespace kiln {


namespace {

std::vector<double> D(const Tensor& t) {
  std::vector<double> v(static_cast<size_t>(t.numel()));
  for (int64_t i = 0; i < t.numel(); ++i) v[static_cast<size_t>(i)] = t.GetAsDouble(i);
  return v;
}

Tensor FromD(const std::vector<double>& v, DType dt, const std::vector<int64_t>& dims) {
  Tensor t(dt, dims);
  for (int64_t i = 0; i < t.numel(); ++i) ref::StoreDouble(t, i, v[static_cast<size_t>(i)]);
  return t;
}

Status GemmKernel(RefContext& ctx) {
  const Tensor& a = ctx.input(0);
  const Tensor& b = ctx.input(1);
  if (a.rank() != 2 || b.rank() != 2) return InvalidArgument("A and B must be 2-D");
  KILN_ASSIGN_OR_RETURN(int64_t ta, ctx.attrs().GetInt("transA", 0));
  KILN_ASSIGN_OR_RETURN(int64_t tb, ctx.attrs().GetInt("transB", 0));
  KILN_ASSIGN_OR_RETURN(float alpha, ctx.attrs().GetFloat("alpha", 1.f));
  KILN_ASSIGN_OR_RETURN(float beta, ctx.attrs().GetFloat("beta", 1.f));
  const int64_t m = ta ? a.dim(1) : a.dim(0), k = ta ? a.dim(0) : a.dim(1);
  const int64_t n = tb ? b.dim(0) : b.dim(1), k2 = tb ? b.dim(1) : b.dim(0);
  if (k != k2) return InvalidArgument("inner dimensions differ: ", a.ShapeString(), " vs ", b.ShapeString());
  const std::vector<double> ad = D(a), bd = D(b);
  std::vector<double> y(static_cast<size_t>(m * n), 0.0);
  for (int64_t i = 0; i < m; ++i)
    for (int64_t j = 0; j < n; ++j) {
      double acc = 0;
      for (int64_t p = 0; p < k; ++p)
        acc += ad[static_cast<size_t>(ta ? p * m + i : i * k + p)] * bd[static_cast<size_t>(tb ? j * k + p : p * n + j)];
      y[static_cast<size_t>(i * n + j)] = double(alpha) * acc;
    }
  if (ctx.has_input(2)) {
    const Tensor& c = ctx.input(2);
    KILN_ASSIGN_OR_RETURN(std::vector<int64_t> od, ref::BroadcastDims({{m, n}, c.dims()}));
    if (od != std::vector<int64_t>{m, n}) return InvalidArgument("C ", c.ShapeString(), " does not broadcast to [", m, ",", n, "]");
    for (ref::BroadcastIter it({m, n}, {c.dims()}); !it.done(); it.Next())
      y[static_cast<size_t>(it.index())] += double(beta) * c.GetAsDouble(it.offset(0));
  }
  ctx.set_output(0, FromD(y, a.dtype(), {m, n}));
  return Status::OK();
}

// Batched NumPy matmul on doubles: returns the result and its dims.
StatusOr<std::vector<double>> MatMulCore(const std::vector<double>& ad, std::vector<int64_t> adims,
                                         const std::vector<double>& bd, std::vector<int64_t> bdims,
                                         std::vector<int64_t>* out_dims) {
  if (adims.empty() || bdims.empty()) return InvalidArgument("operands must have rank >= 1");
  const bool a1 = adims.size() == 1, b1 = bdims.size() == 1;
  if (a1) adims.insert(adims.begin(), 1);
  if (b1) bdims.push_back(1);
  const int64_t m = adims[adims.size() - 2], k = adims.back(), n = bdims.back();
  if (bdims[bdims.size() - 2] != k) return InvalidArgument("inner dimensions differ (", k, " vs ", bdims[bdims.size() - 2], ")");
  std::vector<int64_t> ab(adims.begin(), adims.end() - 2), bb(bdims.begin(), bdims.end() - 2);
  KILN_ASSIGN_OR_RETURN(std::vector<int64_t> batch, ref::BroadcastDims({ab, bb}));
  int64_t nb = 1;
  for (int64_t d : batch) nb *= d;
  std::vector<double> y(static_cast<size_t>(nb * m * n));
  int64_t bi = 0;
  for (ref::BroadcastIter it(batch, {ab, bb}); !it.done(); it.Next(), ++bi) {
    const double* pa = &ad[static_cast<size_t>(it.offset(0) * m * k)];
    const double* pb = &bd[static_cast<size_t>(it.offset(1) * k * n)];
    double* py = &y[static_cast<size_t>(bi * m * n)];
    for (int64_t i = 0; i < m; ++i)
      for (int64_t j = 0; j < n; ++j) {
        double acc = 0;
        for (int64_t p = 0; p < k; ++p) acc += pa[i * k + p] * pb[p * n + j];
        py[i * n + j] = acc;
      }
  }
  *out_dims = batch;
  if (!a1) out_dims->push_back(m);
  if (!b1) out_dims->push_back(n);
  return y;
}

Status MatMulKernel(RefContext& ctx) {
  const Tensor& a = ctx.input(0);
  const Tensor& b = ctx.input(1);
  std::vector<int64_t> od;
  KILN_ASSIGN_OR_RETURN(std::vector<double> y, MatMulCore(D(a), a.dims(), D(b), b.dims(), &od));
  ctx.set_output(0, FromD(y, a.dtype(), od));
  return Status::OK();
}

// Subtracts a zero point that is a scalar or per row (a: along the second-to-last dim) /
// per column (b: along the last dim).
Status SubtractZeroPoint(std::vector<double>& v, const Tensor& t, const Tensor* zp, bool per_col) {
  if (zp == nullptr) return Status::OK();
  if (zp->numel() == 1) {
    for (double& x : v) x -= zp->GetAsDouble(0);
    return Status::OK();
  }
  const int64_t cols = t.dim(t.rank() - 1), rows = t.rank() >= 2 ? t.dim(t.rank() - 2) : 1;
  const int64_t expect = per_col ? cols : rows;
  if (zp->numel() != expect) return InvalidArgument("zero point must be a scalar or have ", expect, " elements");
  for (size_t i = 0; i < v.size(); ++i) {
    int64_t idx = per_col ? static_cast<int64_t>(i) % cols : (static_cast<int64_t>(i) / cols) % rows;
    v[i] -= zp->GetAsDouble(idx);
  }
  return Status::OK();
}

Status MatMulIntegerKernel(RefContext& ctx) {
  const Tensor& a = ctx.input(0);
  const Tensor& b = ctx.input(1);
  std::vector<double> ad = D(a), bd = D(b);
  KILN_RETURN_IF_ERROR(SubtractZeroPoint(ad, a, ctx.has_input(2) ? &ctx.input(2) : nullptr, false));
  KILN_RETURN_IF_ERROR(SubtractZeroPoint(bd, b, ctx.has_input(3) ? &ctx.input(3) : nullptr, true));
  std::vector<int64_t> od;
  KILN_ASSIGN_OR_RETURN(std::vector<double> y, MatMulCore(ad, a.dims(), bd, b.dims(), &od));
  ctx.set_output(0, FromD(y, DType::kInt32, od));
  return Status::OK();
}

double SaturateTo(double v, DType dt) {
  double lo = -128, hi = 127;
  if (dt == DType::kUInt8) lo = 0, hi = 255;
  else if (dt == DType::kInt32) lo = -2147483648.0, hi = 2147483647.0;
  return std::min(hi, std::max(lo, v));
}

Status QLinearMatMulKernel(RefContext& ctx) {
  for (int i = 0; i < 8; ++i) KILN_RETURN_IF_ERROR(ctx.RequireTensor(i));
  const Tensor& a = ctx.input(0);
  const Tensor& b = ctx.input(3);
  std::vector<double> ad = D(a), bd = D(b);
  KILN_RETURN_IF_ERROR(SubtractZeroPoint(ad, a, &ctx.input(2), false));
  KILN_RETURN_IF_ERROR(SubtractZeroPoint(bd, b, &ctx.input(5), true));
  const Tensor& as = ctx.input(1);
  const Tensor& bs = ctx.input(4);
  for (size_t i = 0; i < ad.size(); ++i)
    ad[i] *= as.GetAsDouble(as.numel() == 1 ? 0 : (static_cast<int64_t>(i) / a.dim(a.rank() - 1)) % a.dim(a.rank() - 2));
  for (size_t i = 0; i < bd.size(); ++i) bd[i] *= bs.GetAsDouble(bs.numel() == 1 ? 0 : static_cast<int64_t>(i) % b.dim(b.rank() - 1));
  std::vector<int64_t> od;
  KILN_ASSIGN_OR_RETURN(std::vector<double> y, MatMulCore(ad, a.dims(), bd, b.dims(), &od));
  const double ys = ctx.input(6).GetAsDouble(0), yz = ctx.input(7).GetAsDouble(0);
  const DType dt = ctx.input(7).dtype();
  for (double& v : y) v = SaturateTo(std::nearbyint(v / ys) + yz, dt);
  ctx.set_output(0, FromD(y, dt, od));
  return Status::OK();
}

Status BatchNormKernel(RefContext& ctx) {
  for (int i = 0; i < 5; ++i) KILN_RETURN_IF_ERROR(ctx.RequireTensor(i));
  const Tensor& x = ctx.input(0);
  if (x.rank() < 2) return InvalidArgument("input must have rank >= 2");
  KILN_ASSIGN_OR_RETURN(float eps, ctx.attrs().GetFloat("epsilon", 1e-5f));
  KILN_ASSIGN_OR_RETURN(float momentum, ctx.attrs().GetFloat("momentum", 0.9f));
  KILN_ASSIGN_OR_RETURN(int64_t training, ctx.attrs().GetInt("training_mode", 0));
  const int64_t n = x.dim(0), c = x.dim(1), sp = x.numel() / std::max<int64_t>(1, n * c);
  for (int i = 1; i < 5; ++i)
    if (ctx.input(i).numel() != c) return InvalidArgument("input ", i, " must have ", c, " elements (one per channel)");
  std::vector<double> xd = D(x), scale = D(ctx.input(1)), bias = D(ctx.input(2)), mean = D(ctx.input(3)), var = D(ctx.input(4));
  std::vector<double> use_mean = mean, use_var = var;
  if (training) {
    for (int64_t ch = 0; ch < c; ++ch) {
      double s = 0, s2 = 0;
      for (int64_t b = 0; b < n; ++b)
        for (int64_t i = 0; i < sp; ++i) {
          double v = xd[static_cast<size_t>((b * c + ch) * sp + i)];
          s += v;
          s2 += v * v;
        }
      const double cnt = double(n * sp), m = s / cnt;
      use_mean[static_cast<size_t>(ch)] = m;
      use_var[static_cast<size_t>(ch)] = s2 / cnt - m * m;
    }
  }
  std::vector<double> y(xd.size());
  for (int64_t b = 0; b < n; ++b)
    for (int64_t ch = 0; ch < c; ++ch) {
      const size_t k = static_cast<size_t>(ch);
      const double inv = 1.0 / std::sqrt(use_var[k] + double(eps));
      for (int64_t i = 0; i < sp; ++i) {
        const size_t at = static_cast<size_t>((b * c + ch) * sp + i);
        y[at] = (xd[at] - use_mean[k]) * inv * scale[k] + bias[k];
      }
    }
  ctx.set_output(0, FromD(y, x.dtype(), x.dims()));
  if (training) {
    std::vector<double> rm(mean.size()), rv(var.size());
    for (size_t k = 0; k < rm.size(); ++k) {
      rm[k] = mean[k] * momentum + use_mean[k] * (1 - momentum);
      rv[k] = var[k] * momentum + use_var[k] * (1 - momentum);
    }
    if (ctx.has_output(1)) ctx.set_output(1, FromD(rm, ctx.input(3).dtype(), ctx.input(3).dims()));
    if (ctx.has_output(2)) ctx.set_output(2, FromD(rv, ctx.input(4).dtype(), ctx.input(4).dims()));
  }
  return Status::OK();
}

// Normalizes each of `groups` contiguous blocks of `block` elements: (x - mean) / sqrt(var + eps).
void NormalizeBlocks(std::vector<double>& v, int64_t groups, int64_t block, double eps, std::vector<double>* means,
                     std::vector<double>* inv_stds) {
  for (int64_t g = 0; g < groups; ++g) {
    double s = 0, s2 = 0;
    for (int64_t i = 0; i < block; ++i) s += v[static_cast<size_t>(g * block + i)];
    const double m = s / double(block);
    for (int64_t i = 0; i < block; ++i) {
      double d = v[static_cast<size_t>(g * block + i)] - m;
      s2 += d * d;
    }
    const double inv = 1.0 / std::sqrt(s2 / double(block) + eps);
    for (int64_t i = 0; i < block; ++i) v[static_cast<size_t>(g * block + i)] = (v[static_cast<size_t>(g * block + i)] - m) * inv;
    if (means) means->push_back(m);
    if (inv_stds) inv_stds->push_back(inv);
  }
}

Status InstanceNormKernel(RefContext& ctx) {
  const Tensor& x = ctx.input(0);
  if (x.rank() < 3) return InvalidArgument("input must have rank >= 3");
  KILN_ASSIGN_OR_RETURN(float eps, ctx.attrs().GetFloat("epsilon", 1e-5f));
  const int64_t n = x.dim(0), c = x.dim(1), sp = x.numel() / std::max<int64_t>(1, n * c);
  if (ctx.input(1).numel() != c || ctx.input(2).numel() != c) return InvalidArgument("scale and B must have ", c, " elements");
  std::vector<double> v = D(x);
  NormalizeBlocks(v, n * c, sp, eps, nullptr, nullptr);
  for (size_t i = 0; i < v.size(); ++i) {
    const int64_t ch = (static_cast<int64_t>(i) / sp) % c;
    v[i] = v[i] * ctx.input(1).GetAsDouble(ch) + ctx.input(2).GetAsDouble(ch);
  }
  ctx.set_output(0, FromD(v, x.dtype(), x.dims()));
  return Status::OK();
}

Status LayerNormKernel(RefContext& ctx) {
  const Tensor& x = ctx.input(0);
  KILN_ASSIGN_OR_RETURN(int64_t axis, ctx.attrs().GetInt("axis", -1));
  KILN_ASSIGN_OR_RETURN(float eps, ctx.attrs().GetFloat("epsilon", 1e-5f));
  KILN_ASSIGN_OR_RETURN(int64_t stash, ctx.attrs().GetInt("stash_type", 1));
  KILN_ASSIGN_OR_RETURN(int ax, NormalizeAxis(axis, x.rank()));
  int64_t outer = 1, inner = 1;
  for (int d = 0; d < ax; ++d) outer *= x.dim(d);
  for (int d = ax; d < x.rank(); ++d) inner *= x.dim(d);
  std::vector<int64_t> norm_dims(x.dims().begin() + ax, x.dims().end());
  std::vector<double> v = D(x), means, invs;
  NormalizeBlocks(v, outer, inner, eps, &means, &invs);
  // Scale and bias broadcast against the normalized dims.
  const Tensor& scale = ctx.input(1);
  KILN_ASSIGN_OR_RETURN(std::vector<int64_t> bd, ref::BroadcastDims({norm_dims, scale.dims()}));
  if (bd != norm_dims) return InvalidArgument("Scale ", scale.ShapeString(), " does not broadcast to the normalized shape");
  std::vector<double> sv(static_cast<size_t>(inner)), bv(static_cast<size_t>(inner), 0.0);
  for (ref::BroadcastIter it(norm_dims, {scale.dims()}); !it.done(); it.Next()) sv[static_cast<size_t>(it.index())] = scale.GetAsDouble(it.offset(0));
  if (ctx.has_input(2)) {
    const Tensor& b = ctx.input(2);
    KILN_ASSIGN_OR_RETURN(std::vector<int64_t> bd2, ref::BroadcastDims({norm_dims, b.dims()}));
    if (bd2 != norm_dims) return InvalidArgument("B ", b.ShapeString(), " does not broadcast to the normalized shape");
    for (ref::BroadcastIter it(norm_dims, {b.dims()}); !it.done(); it.Next()) bv[static_cast<size_t>(it.index())] = b.GetAsDouble(it.offset(0));
  }
  for (size_t i = 0; i < v.size(); ++i) v[i] = v[i] * sv[i % static_cast<size_t>(inner)] + bv[i % static_cast<size_t>(inner)];
  ctx.set_output(0, FromD(v, x.dtype(), x.dims()));
  std::vector<int64_t> stat_dims = x.dims();
  for (int d = ax; d < x.rank(); ++d) stat_dims[static_cast<size_t>(d)] = 1;
  if (ctx.has_output(1)) ctx.set_output(1, FromD(means, static_cast<DType>(stash), stat_dims));
  if (ctx.has_output(2)) ctx.set_output(2, FromD(invs, static_cast<DType>(stash), stat_dims));
  return Status::OK();
}

Status GroupNormKernel(RefContext& ctx) {
  const Tensor& x = ctx.input(0);
  if (x.rank() < 3) return InvalidArgument("input must have rank >= 3");
  KILN_ASSIGN_OR_RETURN(int64_t groups, ctx.attrs().RequireInt("num_groups"));
  KILN_ASSIGN_OR_RETURN(float eps, ctx.attrs().GetFloat("epsilon", 1e-5f));
  const int64_t n = x.dim(0), c = x.dim(1), sp = x.numel() / std::max<int64_t>(1, n * c);
  if (groups <= 0 || c % groups) return InvalidArgument("num_groups must divide the channels");
  std::vector<double> v = D(x);
  NormalizeBlocks(v, n * groups, c / groups * sp, eps, nullptr, nullptr);
  const Tensor& scale = ctx.input(1);
  const Tensor& bias = ctx.input(2);
  const bool per_channel = scale.numel() == c;
  if (!per_channel && scale.numel() != groups) return InvalidArgument("scale must have C or num_groups elements");
  for (size_t i = 0; i < v.size(); ++i) {
    int64_t ch = (static_cast<int64_t>(i) / sp) % c, k = per_channel ? ch : ch / (c / groups);
    v[i] = v[i] * scale.GetAsDouble(k) + bias.GetAsDouble(k);
  }
  ctx.set_output(0, FromD(v, x.dtype(), x.dims()));
  return Status::OK();
}

Status MvnKernel(RefContext& ctx) {
  const Tensor& x = ctx.input(0);
  KILN_ASSIGN_OR_RETURN(std::vector<int64_t> axes, ctx.attrs().GetInts("axes", {0, 2, 3}));
  std::vector<bool> red(static_cast<size_t>(x.rank()), false);
  for (int64_t a : axes) { KILN_ASSIGN_OR_RETURN(int ax, NormalizeAxis(a, x.rank(), "axes")); red[static_cast<size_t>(ax)] = true; }
  std::vector<int64_t> kd;
  for (int d = 0; d < x.rank(); ++d) kd.push_back(red[static_cast<size_t>(d)] ? 1 : x.dim(d));
  int64_t kn = 1;
  for (int64_t d : kd) kn *= d;
  std::vector<double> s(static_cast<size_t>(kn), 0), s2(static_cast<size_t>(kn), 0), cnt(static_cast<size_t>(kn), 0);
  const std::vector<int64_t> ks = StridesOf(kd);
  std::vector<int64_t> pos;
  auto key = [&](int64_t i) {
    ref::Unravel(i, x.dims(), pos);
    int64_t o = 0;
    for (int d = 0; d < x.rank(); ++d) if (!red[static_cast<size_t>(d)]) o += pos[static_cast<size_t>(d)] * ks[static_cast<size_t>(d)];
    return static_cast<size_t>(o);
  };
  for (int64_t i = 0; i < x.numel(); ++i) {
    double v = x.GetAsDouble(i);
    size_t k = key(i);
    s[k] += v; s2[k] += v * v; cnt[k] += 1;
  }
  std::vector<double> y(static_cast<size_t>(x.numel()));
  for (int64_t i = 0; i < x.numel(); ++i) {
    size_t k = key(i);
    double m = s[k] / cnt[k], sd = std::sqrt(s2[k] / cnt[k] - m * m);
    y[static_cast<size_t>(i)] = (x.GetAsDouble(i) - m) / (sd + 1e-9);
  }
  ctx.set_output(0, FromD(y, x.dtype(), x.dims()));
  return Status::OK();
}

Status LpNormKernel(RefContext& ctx) {
  const Tensor& x = ctx.input(0);
  KILN_ASSIGN_OR_RETURN(int64_t axis, ctx.attrs().GetInt("axis", -1));
  KILN_ASSIGN_OR_RETURN(int64_t p, ctx.attrs().GetInt("p", 2));
  if (p != 1 && p != 2) return InvalidArgument("attribute 'p' must be 1 or 2");
  KILN_ASSIGN_OR_RETURN(int ax, NormalizeAxis(axis, x.rank()));
  int64_t outer = 1, inner = 1, n = x.dim(ax);
  for (int d = 0; d < ax; ++d) outer *= x.dim(d);
  for (int d = ax + 1; d < x.rank(); ++d) inner *= x.dim(d);
  std::vector<double> v = D(x);
  for (int64_t o = 0; o < outer; ++o)
    for (int64_t i = 0; i < inner; ++i) {
      double norm = 0;
      for (int64_t j = 0; j < n; ++j) {
        double e = v[static_cast<size_t>((o * n + j) * inner + i)];
        norm += p == 1 ? std::fabs(e) : e * e;
      }
      if (p == 2) norm = std::sqrt(norm);
      for (int64_t j = 0; j < n; ++j) {
        double& e = v[static_cast<size_t>((o * n + j) * inner + i)];
        e = norm == 0 ? 0 : e / norm;
      }
    }
  ctx.set_output(0, FromD(v, x.dtype(), x.dims()));
  return Status::OK();
}

// Softmax, LogSoftmax, Hardmax along one axis; with kiln.coerce_2d (opset < 13 models) over
// the flattened block of dims [axis, rank).
Status SoftmaxKernel(RefContext& ctx) {
  KILN_RETURN_IF_ERROR(ctx.RequireTensor(0));
  const Tensor& x = ctx.input(0);
  const std::string& op = ctx.node().op_type;
  KILN_ASSIGN_OR_RETURN(int64_t coerce, ctx.attrs().GetInt("kiln.coerce_2d", 0));
  KILN_ASSIGN_OR_RETURN(int64_t axis, ctx.attrs().GetInt("axis", coerce ? 1 : -1));
  if (x.rank() == 0) return InvalidArgument("input must have rank >= 1");
  KILN_ASSIGN_OR_RETURN(int ax, NormalizeAxis(axis, x.rank()));
  int64_t outer = 1, n = 1, inner = 1;
  for (int d = 0; d < ax; ++d) outer *= x.dim(d);
  if (coerce) {
    for (int d = ax; d < x.rank(); ++d) n *= x.dim(d);
  } else {
    n = x.dim(ax);
    for (int d = ax + 1; d < x.rank(); ++d) inner *= x.dim(d);
  }
  std::vector<double> v = D(x);
  for (int64_t o = 0; o < outer; ++o)
    for (int64_t i = 0; i < inner; ++i) {
      auto at = [&](int64_t j) -> double& { return v[static_cast<size_t>((o * n + j) * inner + i)]; };
      double mx = -std::numeric_limits<double>::infinity();
      int64_t arg = 0;
      for (int64_t j = 0; j < n; ++j)
        if (at(j) > mx) { mx = at(j); arg = j; }
      if (op == "Hardmax") {
        for (int64_t j = 0; j < n; ++j) at(j) = j == arg ? 1.0 : 0.0;
        continue;
      }
      double sum = 0;
      for (int64_t j = 0; j < n; ++j) sum += std::exp(at(j) - mx);
      for (int64_t j = 0; j < n; ++j) at(j) = op == "LogSoftmax" ? at(j) - mx - std::log(sum) : std::exp(at(j) - mx) / sum;
    }
  ctx.set_output(0, FromD(v, x.dtype(), x.dims()));
  return Status::OK();
}

// Scale/zero point per tensor, or per slice along `axis` (1-D scale).
struct QuantParams {
  const Tensor* scale;
  const Tensor* zp;
  int64_t axis_size = 1, inner = 1;
  double scale_at(int64_t i) const { return scale->GetAsDouble(scale->numel() == 1 ? 0 : (i / inner) % axis_size); }
  double zp_at(int64_t i) const { return zp ? zp->GetAsDouble(zp->numel() == 1 ? 0 : (i / inner) % axis_size) : 0.0; }
};

StatusOr<QuantParams> ReadQuantParams(RefContext& ctx, const Tensor& x) {
  QuantParams q{&ctx.input(1), ctx.has_input(2) ? &ctx.input(2) : nullptr};
  if (q.scale->numel() != 1) {
    KILN_ASSIGN_OR_RETURN(int64_t axis, ctx.attrs().GetInt("axis", 1));
    KILN_ASSIGN_OR_RETURN(int ax, NormalizeAxis(axis, x.rank()));
    q.axis_size = x.dim(ax);
    if (q.scale->numel() != q.axis_size) return InvalidArgument("scale must have ", q.axis_size, " elements for axis ", axis);
    if (q.zp && q.zp->numel() != q.axis_size) return InvalidArgument("zero point must match the scale");
    for (int d = ax + 1; d < x.rank(); ++d) q.inner *= x.dim(d);
  }
  return q;
}

Status QuantizeKernel(RefContext& ctx) {
  const Tensor& x = ctx.input(0);
  KILN_ASSIGN_OR_RETURN(QuantParams q, ReadQuantParams(ctx, x));
  const DType dt = q.zp ? q.zp->dtype() : DType::kUInt8;
  if (dt != DType::kUInt8 && dt != DType::kInt8) return Unimplemented("QuantizeLinear to ", DTypeName(dt));
  Tensor y(dt, x.dims());
  for (int64_t i = 0; i < x.numel(); ++i)
    ref::StoreDouble(y, i, SaturateTo(std::nearbyint(x.GetAsDouble(i) / q.scale_at(i)) + q.zp_at(i), dt));
  ctx.set_output(0, std::move(y));
  return Status::OK();
}

Status DequantizeKernel(RefContext& ctx) {
  const Tensor& x = ctx.input(0);
  KILN_ASSIGN_OR_RETURN(QuantParams q, ReadQuantParams(ctx, x));
  Tensor y(ctx.input(1).dtype(), x.dims());
  for (int64_t i = 0; i < x.numel(); ++i) ref::StoreDouble(y, i, (x.GetAsDouble(i) - q.zp_at(i)) * q.scale_at(i));
  ctx.set_output(0, std::move(y));
  return Status::OK();
}

Status DynamicQuantizeKernel(RefContext& ctx) {
  const Tensor& x = ctx.input(0);
  double lo = 0, hi = 0;
  for (int64_t i = 0; i < x.numel(); ++i) { lo = std::min(lo, x.GetAsDouble(i)); hi = std::max(hi, x.GetAsDouble(i)); }
  const double scale = static_cast<float>((hi - lo) / 255.0);
  const double zp = scale == 0 ? 0 : SaturateTo(std::nearbyint(-lo / scale), DType::kUInt8);
  Tensor y(DType::kUInt8, x.dims());
  for (int64_t i = 0; i < x.numel(); ++i)
    // In float32, as the op is defined (the quotient's rounding decides ties).
    y.data<uint8_t>()[i] = static_cast<uint8_t>(
        scale == 0 ? zp
                   : SaturateTo(std::nearbyint(static_cast<float>(x.GetAsDouble(i)) / static_cast<float>(scale)) + zp,
                                DType::kUInt8));
  ctx.set_output(0, std::move(y));
  ctx.set_output(1, Tensor::Scalar<float>(static_cast<float>(scale)));
  ctx.set_output(2, Tensor::Scalar<uint8_t>(static_cast<uint8_t>(zp)));
  return Status::OK();
}

// NegativeLogLikelihoodLoss on log-probabilities `lp` [N, C, d...] and integer targets [N, d...].
StatusOr<Tensor> NllLoss(RefContext& ctx, const std::vector<double>& lp, const std::vector<int64_t>& lp_dims, DType dt) {
  const Tensor& target = ctx.input(1);
  KILN_ASSIGN_OR_RETURN(std::vector<int64_t> t, target.ToInt64Vector());
  KILN_ASSIGN_OR_RETURN(std::string red, ctx.attrs().GetString("reduction", "mean"));
  const bool has_ignore = ctx.attrs().has("ignore_index");
  KILN_ASSIGN_OR_RETURN(int64_t ignore, ctx.attrs().GetInt("ignore_index", 0));
  if (lp_dims.size() < 2) return InvalidArgument("input must have rank >= 2");
  const int64_t n = lp_dims[0], c = lp_dims[1];
  int64_t sp = 1;
  for (size_t d = 2; d < lp_dims.size(); ++d) sp *= lp_dims[d];
  if (static_cast<int64_t>(t.size()) != n * sp) return InvalidArgument("target must have shape [N, d1, ...]");
  const Tensor* w = ctx.has_input(2) ? &ctx.input(2) : nullptr;
  std::vector<double> loss(t.size());
  double wsum = 0;
  for (int64_t b = 0; b < n; ++b)
    for (int64_t i = 0; i < sp; ++i) {
      const int64_t cls = t[static_cast<size_t>(b * sp + i)];
      if (has_ignore && cls == ignore) { loss[static_cast<size_t>(b * sp + i)] = 0; continue; }
      if (cls < 0 || cls >= c) return OutOfRange("target class ", cls, " out of range [0, ", c, ")");
      const double wt = w ? w->GetAsDouble(cls) : 1.0;
      loss[static_cast<size_t>(b * sp + i)] = -lp[static_cast<size_t>((b * c + cls) * sp + i)] * wt;
      wsum += wt;
    }
  if (red == "none") return FromD(loss, dt, target.dims());
  double total = 0;
  for (double v : loss) total += v;
  if (red == "mean") total = wsum == 0 ? 0 : total / wsum;
  return FromD({total}, dt, {});
}

Status NllLossKernel(RefContext& ctx) {
  const Tensor& x = ctx.input(0);
  KILN_ASSIGN_OR_RETURN(Tensor y, NllLoss(ctx, D(x), x.dims(), x.dtype()));
  ctx.set_output(0, std::move(y));
  return Status::OK();
}

Status SoftmaxCrossEntropyKernel(RefContext& ctx) {
  const Tensor& x = ctx.input(0);
  if (x.rank() < 2) return InvalidArgument("scores must have rank >= 2");
  const int64_t n = x.dim(0), c = x.dim(1), sp = x.numel() / std::max<int64_t>(1, n * c);
  std::vector<double> lp = D(x);
  for (int64_t b = 0; b < n; ++b)
    for (int64_t i = 0; i < sp; ++i) {
      double mx = -std::numeric_limits<double>::infinity(), sum = 0;
      for (int64_t j = 0; j < c; ++j) mx = std::max(mx, lp[static_cast<size_t>((b * c + j) * sp + i)]);
      for (int64_t j = 0; j < c; ++j) sum += std::exp(lp[static_cast<size_t>((b * c + j) * sp + i)] - mx);
      for (int64_t j = 0; j < c; ++j) lp[static_cast<size_t>((b * c + j) * sp + i)] -= mx + std::log(sum);
    }
  KILN_ASSIGN_OR_RETURN(Tensor y, NllLoss(ctx, lp, x.dims(), x.dtype()));
  ctx.set_output(0, std::move(y));
  if (ctx.has_output(1)) ctx.set_output(1, FromD(lp, x.dtype(), x.dims()));
  return Status::OK();
}

Status DetKernel(RefContext& ctx) {
  const Tensor& x = ctx.input(0);
  if (x.rank() < 2 || x.dim(x.rank() - 1) != x.dim(x.rank() - 2)) return InvalidArgument("input must be [..., M, M]");
  const int64_t m = x.dim(x.rank() - 1), batch = x.numel() / std::max<int64_t>(1, m * m);
  std::vector<double> v = D(x), out;
  for (int64_t b = 0; b < batch; ++b) {
    std::vector<double> a(v.begin() + b * m * m, v.begin() + (b + 1) * m * m);
    double det = 1;
    for (int64_t col = 0; col < m; ++col) {
      int64_t piv = col;
      for (int64_t r = col + 1; r < m; ++r)
        if (std::fabs(a[static_cast<size_t>(r * m + col)]) > std::fabs(a[static_cast<size_t>(piv * m + col)])) piv = r;
      if (a[static_cast<size_t>(piv * m + col)] == 0) { det = 0; break; }
      if (piv != col) {
        for (int64_t k = 0; k < m; ++k) std::swap(a[static_cast<size_t>(piv * m + k)], a[static_cast<size_t>(col * m + k)]);
        det = -det;
      }
      const double p = a[static_cast<size_t>(col * m + col)];
      det *= p;
      for (int64_t r = col + 1; r < m; ++r) {
        const double f = a[static_cast<size_t>(r * m + col)] / p;
        for (int64_t k = col; k < m; ++k) a[static_cast<size_t>(r * m + k)] -= f * a[static_cast<size_t>(col * m + k)];
      }
    }
    out.push_back(det);
  }
  ctx.set_output(0, FromD(out, x.dtype(), std::vector<int64_t>(x.dims().begin(), x.dims().end() - 2)));
  return Status::OK();
}

template <RefKernelFn Fn>
Status Tensors(RefContext& ctx) {
  KILN_RETURN_IF_ERROR(ctx.RequireTensor(0));
  for (int i = 1; i < ctx.num_inputs(); ++i)
    if (ctx.has_input(i) && !ctx.input_value(i).is_tensor()) return InvalidArgument("input ", i, " must be a tensor");
  return Fn(ctx);
}

}  // namespace

void RegisterLinalgNormKernels(RefKernelRegistry& r) {
  r.Add("", "Gemm", &Tensors<GemmKernel>);
  r.Add("", "MatMul", &Tensors<MatMulKernel>);
  r.Add("", "MatMulInteger", &Tensors<MatMulIntegerKernel>);
  r.Add("", "QLinearMatMul", &Tensors<QLinearMatMulKernel>);
  r.Add("", "BatchNormalization", &Tensors<BatchNormKernel>);
  r.Add("", "InstanceNormalization", &Tensors<InstanceNormKernel>);
  r.Add("", "LayerNormalization", &Tensors<LayerNormKernel>);
  r.Add("", "GroupNormalization", &Tensors<GroupNormKernel>);
  r.Add("", "MeanVarianceNormalization", &Tensors<MvnKernel>);
  r.Add("", "LpNormalization", &Tensors<LpNormKernel>);
  for (const char* op : {"Softmax", "LogSoftmax", "Hardmax"}) r.Add("", op, &Tensors<SoftmaxKernel>);
  r.Add("", "QuantizeLinear", &Tensors<QuantizeKernel>);
  r.Add("", "DequantizeLinear", &Tensors<DequantizeKernel>);
  r.Add("", "DynamicQuantizeLinear", &Tensors<DynamicQuantizeKernel>);
  r.Add("", "NegativeLogLikelihoodLoss", &Tensors<NllLossKernel>);
  r.Add("", "SoftmaxCrossEntropyLoss", &Tensors<SoftmaxCrossEntropyKernel>);
  r.Add("", "Det", &Tensors<DetKernel>);
  RegisterEinsumKernels(r);
  RegisterAttentionKernels(r);
}

}  // namespace kiln
