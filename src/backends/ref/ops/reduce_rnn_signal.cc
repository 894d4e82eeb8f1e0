// Reference kernels: the ten Reduce* ops and NonMaxSuppression; registers the family's
// other kernel files.
#include <algorithm>
#include <array>
#include <cmath>
#include <limits>
#include <map>
#include <string>
#include <type_traits>

#include "backends/ref/ops/sub_families.h"
#include "backends/ref/kernel.h"
#include "backends/ref/ops/broadcast.h"
#include "backends/ref/ops/tensor_util.h"
#include "ir/op_schema.h"
#include "ir/ops/families.h"

namespace kiln {

namespace {

enum class ReduceKind { kSum, kMean, kMax, kMin, kProd, kL1, kL2, kLogSum, kLogSumExp, kSumSquare };

const std::map<std::string, ReduceKind>& ReduceKinds() {
  static const std::map<std::string, ReduceKind> kinds = {
      {"ReduceSum", ReduceKind::kSum},       {"ReduceMean", ReduceKind::kMean},
      {"ReduceMax", ReduceKind::kMax},       {"ReduceMin", ReduceKind::kMin},
      {"ReduceProd", ReduceKind::kProd},     {"ReduceL1", ReduceKind::kL1},
      {"ReduceL2", ReduceKind::kL2},         {"ReduceLogSum", ReduceKind::kLogSum},
      {"ReduceLogSumExp", ReduceKind::kLogSumExp}, {"ReduceSumSquare", ReduceKind::kSumSquare}};
  return kinds;
}

// Element offsets into x: bases[o] is where output element o's group starts (reduced axes at
// index 0), spans[j] the offset of the j-th combination of reduced-axis indices. Output o
// reduces x[bases[o] + spans[j]] over all j.
struct ReductionPlan {
  std::vector<int64_t> bases, spans;
};

// All offsets sum(idx[d] * strides[d]) for idx ranging over `extent` (row-major order).
std::vector<int64_t> EnumerateOffsets(const std::vector<int64_t>& extent, const std::vector<int64_t>& strides) {
  int64_t n = 1;
  for (int64_t e : extent) n *= e;
  std::vector<int64_t> offsets;
  offsets.reserve(static_cast<size_t>(n));
  std::vector<int64_t> idx;
  for (int64_t i = 0; i < n; ++i) {
    ref::Unravel(i, extent, idx);
    int64_t off = 0;
    for (size_t d = 0; d < idx.size(); ++d) off += idx[d] * strides[d];
    offsets.push_back(off);
  }
  return offsets;
}

ReductionPlan PlanReduction(const std::vector<int64_t>& dims, const std::vector<bool>& reduced) {
  std::vector<int64_t> kept_extent = dims, reduced_extent = dims;
  for (size_t d = 0; d < dims.size(); ++d) (reduced[d] ? kept_extent : reduced_extent)[d] = 1;
  const std::vector<int64_t> strides = StridesOf(dims);
  return {EnumerateOffsets(kept_extent, strides), EnumerateOffsets(reduced_extent, strides)};
}

// log(sum(exp(v))) shifted by the maximum so large inputs do not overflow.
double LogSumExp(const std::vector<double>& v) {
  double m = -std::numeric_limits<double>::infinity();
  for (double x : v) m = std::isnan(x) || x > m ? x : m;
  if (!std::isfinite(m)) return m;  // empty (-inf), any +inf, or NaN
  double s = 0;
  for (double x : v) s += std::exp(x - m);
  return m + std::log(s);
}

// The reduction of one group in double (floats, bool, and the transcendental reductions of
// integers). Empty groups give the ONNX reference's identities: 0, 1, -inf, +inf, NaN (mean).
double ReduceDoubles(ReduceKind k, const std::vector<double>& v) {
  constexpr double kInf = std::numeric_limits<double>::infinity();
  double acc = k == ReduceKind::kProd ? 1.0 : k == ReduceKind::kMax ? -kInf : k == ReduceKind::kMin ? kInf : 0.0;
  if (k == ReduceKind::kLogSumExp) return LogSumExp(v);
  for (double x : v) {
    switch (k) {
      case ReduceKind::kMax: acc = std::isnan(x) || x > acc ? x : acc; break;  // NaN propagates
      case ReduceKind::kMin: acc = std::isnan(x) || x < acc ? x : acc; break;
      case ReduceKind::kProd: acc *= x; break;
      case ReduceKind::kL1: acc += std::fabs(x); break;
      case ReduceKind::kL2:
      case ReduceKind::kSumSquare: acc += x * x; break;
      default: acc += x; break;  // Sum, Mean, LogSum
    }
  }
  if (k == ReduceKind::kMean) return acc / double(v.size());
  if (k == ReduceKind::kL2) return std::sqrt(acc);
  if (k == ReduceKind::kLogSum) return std::log(acc);
  return acc;
}

// Double -> integer T, saturating (NaN -> 0): log(0) = -inf must not be UB.
template <typename T>
T SaturateCast(double v) {
  if (std::isnan(v)) return T(0);
  if (v <= double(std::numeric_limits<T>::lowest())) return std::numeric_limits<T>::lowest();
  if (v >= double(std::numeric_limits<T>::max())) return std::numeric_limits<T>::max();
  return static_cast<T>(v);
}

// Integers reduce exactly in 64 bits (sums and products wrap like NumPy's fixed-width
// arithmetic: done in uint64 to avoid signed-overflow UB); the mean truncates toward zero.
template <typename T>
T ReduceIntegers(ReduceKind k, const T* x, int64_t base, const std::vector<int64_t>& spans) {
  using Wide = std::conditional_t<std::is_signed_v<T>, int64_t, uint64_t>;
  std::vector<Wide> v;
  for (int64_t s : spans) v.push_back(static_cast<Wide>(x[base + s]));
  uint64_t acc = k == ReduceKind::kProd ? 1 : 0;
  switch (k) {
    case ReduceKind::kMax: return v.empty() ? std::numeric_limits<T>::lowest() : static_cast<T>(*std::max_element(v.begin(), v.end()));
    case ReduceKind::kMin: return v.empty() ? std::numeric_limits<T>::max() : static_cast<T>(*std::min_element(v.begin(), v.end()));
    case ReduceKind::kSum: for (Wide w : v) acc += static_cast<uint64_t>(w); break;
    case ReduceKind::kMean:
      for (Wide w : v) acc += static_cast<uint64_t>(w);
      return v.empty() ? T(0) : static_cast<T>(static_cast<Wide>(acc) / static_cast<Wide>(v.size()));
    case ReduceKind::kProd: for (Wide w : v) acc *= static_cast<uint64_t>(w); break;
    case ReduceKind::kL1: for (Wide w : v) acc += w < 0 ? 0 - static_cast<uint64_t>(w) : static_cast<uint64_t>(w); break;
    case ReduceKind::kSumSquare: for (Wide w : v) acc += static_cast<uint64_t>(w) * static_cast<uint64_t>(w); break;
    default: {  // L2, LogSum, LogSumExp: real-valued, truncated back to T
      std::vector<double> d(v.begin(), v.end());
      return SaturateCast<T>(std::trunc(ReduceDoubles(k, d)));
    }
  }
  return static_cast<T>(static_cast<Wide>(acc));
}

template <typename T>
void ReduceInto(ReduceKind k, const Tensor& x, const ReductionPlan& plan, Tensor& y) {
  const T* in = x.data<T>();
  T* out = y.data<T>();
  for (size_t o = 0; o < plan.bases.size(); ++o) {
    if constexpr (std::is_integral_v<T> && !std::is_same_v<T, bool>) {
      out[o] = ReduceIntegers<T>(k, in, plan.bases[o], plan.spans);
    } else {
      std::vector<double> v;
      v.reserve(plan.spans.size());
      for (int64_t s : plan.spans) v.push_back(ToDouble(in[plan.bases[o] + s]));
      out[o] = FromDouble<T>(ReduceDoubles(k, v));
    }
  }
}

Status ReduceKernel(RefContext& ctx) {
  KILN_RETURN_IF_ERROR(ctx.RequireTensor(0));
  const Tensor& x = ctx.input(0);
  const ReduceKind kind = ReduceKinds().at(ctx.node().op_type);
  KILN_ASSIGN_OR_RETURN(int64_t keep, ctx.attrs().GetInt("keepdims", 1));
  KILN_ASSIGN_OR_RETURN(int64_t noop, ctx.attrs().GetInt("noop_with_empty_axes", 0));
  std::vector<int64_t> axes;
  if (ctx.has_input(1)) {
    if (ctx.input(1).rank() > 1) return InvalidArgument("input 'axes' must be 1-D");
    KILN_ASSIGN_OR_RETURN(axes, ctx.input(1).ToInt64Vector());
  }
  if (axes.empty() && noop) {
    ctx.set_output(0, x);
    return Status::OK();
  }
  const int r = x.rank();
  std::vector<bool> reduced(static_cast<size_t>(r), axes.empty());
  for (int64_t a : axes) {
    KILN_ASSIGN_OR_RETURN(int ax, NormalizeAxis(a, r, "axes"));
    reduced[static_cast<size_t>(ax)] = true;
  }
  std::vector<int64_t> out_dims;
  for (int i = 0; i < r; ++i) {
    if (!reduced[static_cast<size_t>(i)]) out_dims.push_back(x.dim(i));
    else if (keep) out_dims.push_back(1);
  }
  Tensor y(x.dtype(), out_dims);
  const ReductionPlan plan = PlanReduction(x.dims(), reduced);
  const bool ok = VisitNumeric(x.dtype(), [&](auto tag) { ReduceInto<typename decltype(tag)::type>(kind, x, plan, y); });
  if (!ok) return InvalidArgument("input 'data' has unsupported type ", DTypeName(x.dtype()));
  ctx.set_output(0, std::move(y));
  return Status::OK();
}

// Greedy non-maximum suppression per (batch, class): highest score first (lower box index
// on ties), dropping boxes whose IoU with a selected box exceeds iou_threshold.
// Whether box `a` (y0, x0, y1, x1; area aa) overlaps any of the m selected boxes (stored as
// columns) with an IoU above th. Branch-free blocks, so that it vectorizes: detection heads
// select thousands of boxes out of tens of thousands, and this is their O(n x selected) loop.
#if defined(__GNUC__) && !defined(__clang__)
#define KILN_NMS_CLONES __attribute__((target_clones("avx512f", "avx2,fma", "default"), optimize("O3")))
#elif defined(__clang__)
#define KILN_NMS_CLONES __attribute__((target_clones("avx512f", "avx2,fma", "default")))
#else
#define KILN_NMS_CLONES
#endif
KILN_NMS_CLONES bool OverlapsAny(const double* y0, const double* x0, const double* y1, const double* x1,
                                 const double* area, size_t m, const double* a, double aa, double th) {
  constexpr size_t kBlock = 64;
  for (size_t j0 = 0; j0 < m; j0 += kBlock) {
    const size_t j1 = std::min(m, j0 + kBlock);
    int hit = 0;
    for (size_t j = j0; j < j1; ++j) {
      const double ih = std::max(0.0, std::min(a[2], y1[j]) - std::max(a[0], y0[j]));
      const double iw = std::max(0.0, std::min(a[3], x1[j]) - std::max(a[1], x0[j]));
      const double inter = ih * iw;
      const double uni = aa + area[j] - inter;
      hit |= static_cast<int>(uni > 0) & static_cast<int>(inter / uni > th);
    }
    if (hit) return true;
  }
  return false;
}

Status NmsKernel(RefContext& ctx) {
  KILN_RETURN_IF_ERROR(ctx.RequireTensor(0));
  KILN_RETURN_IF_ERROR(ctx.RequireTensor(1));
  const Tensor& boxes = ctx.input(0);
  const Tensor& scores = ctx.input(1);
  if (!IsFloat(boxes.dtype()) || !IsFloat(scores.dtype())) return InvalidArgument("inputs 'boxes' and 'scores' must be float");
  if (boxes.rank() != 3 || boxes.dim(2) != 4) return InvalidArgument("boxes must be [batch, boxes, 4], got ", boxes.ShapeString());
  if (scores.rank() != 3 || scores.dim(0) != boxes.dim(0) || scores.dim(2) != boxes.dim(1))
    return InvalidArgument("scores must be [batch, classes, boxes], got ", scores.ShapeString());
  KILN_ASSIGN_OR_RETURN(int64_t center, ctx.attrs().GetInt("center_point_box", 0));
  if (center != 0 && center != 1) return InvalidArgument("attribute 'center_point_box' must be 0 or 1");
  // Optional scalar inputs; an omitted or empty one takes the spec's default.
  auto scalar = [&](int i, const char* name, double dflt) -> StatusOr<double> {
    if (!ctx.has_input(i) || ctx.input(i).numel() == 0) return dflt;
    if (ctx.input(i).numel() != 1) return InvalidArgument("input '", name, "' must be a scalar");
    return ctx.input(i).GetAsDouble(0);
  };
  KILN_ASSIGN_OR_RETURN(double max_out_d, scalar(2, "max_output_boxes_per_class", 0));
  KILN_ASSIGN_OR_RETURN(double iou_th, scalar(3, "iou_threshold", 0));
  KILN_ASSIGN_OR_RETURN(double score_th, scalar(4, "score_threshold", 0));
  const bool has_score_th = ctx.has_input(4) && ctx.input(4).numel() > 0;
  if (!(iou_th >= 0 && iou_th <= 1)) return InvalidArgument("input 'iou_threshold' must be in [0, 1]");
  const int64_t max_out = static_cast<int64_t>(std::clamp(max_out_d, 0.0, 1e15));
  const int64_t nb = boxes.dim(0), nc = scores.dim(1), n = boxes.dim(1);
  // Per batch, every box's corners and area once (detection heads feed tens of thousands of
  // boxes: the selection loop below must not re-read and re-convert them per comparison).
  std::vector<std::array<double, 4>> box(static_cast<size_t>(n));
  std::vector<double> area(static_cast<size_t>(n)), score(static_cast<size_t>(n));
  std::vector<int64_t> sel;
  for (int64_t b = 0; b < nb; ++b) {
    for (int64_t i = 0; i < n; ++i) {
      double v[4];
      for (int k = 0; k < 4; ++k) v[k] = boxes.GetAsDouble((b * n + i) * 4 + k);
      std::array<double, 4>& c = box[static_cast<size_t>(i)];
      if (center) {
        c = {v[1] - v[3] / 2, v[0] - v[2] / 2, v[1] + v[3] / 2, v[0] + v[2] / 2};  // y0, x0, y1, x1
      } else {
        c = {std::min(v[0], v[2]), std::min(v[1], v[3]), std::max(v[0], v[2]), std::max(v[1], v[3])};
      }
      area[static_cast<size_t>(i)] = (c[2] - c[0]) * (c[3] - c[1]);
    }
    for (int64_t c = 0; c < nc; ++c) {
      std::vector<int64_t> order;
      for (int64_t i = 0; i < n; ++i) {
        score[static_cast<size_t>(i)] = scores.GetAsDouble((b * nc + c) * n + i);
        if (!has_score_th || score[static_cast<size_t>(i)] > score_th) order.push_back(i);
      }
      std::stable_sort(order.begin(), order.end(),
                       [&](int64_t x, int64_t y) { return score[static_cast<size_t>(x)] > score[static_cast<size_t>(y)]; });
      std::vector<int64_t> kept;
      std::vector<double> ky0, kx0, ky1, kx1, karea;  // the kept boxes, as columns
      for (int64_t i : order) {
        if (static_cast<int64_t>(kept.size()) >= max_out) break;
        const std::array<double, 4>& a = box[static_cast<size_t>(i)];
        const double aa = area[static_cast<size_t>(i)];
        if (OverlapsAny(ky0.data(), kx0.data(), ky1.data(), kx1.data(), karea.data(), kept.size(), a.data(), aa, iou_th))
          continue;
        kept.push_back(i);
        ky0.push_back(a[0]);
        kx0.push_back(a[1]);
        ky1.push_back(a[2]);
        kx1.push_back(a[3]);
        karea.push_back(aa);
      }
      for (int64_t i : kept) sel.insert(sel.end(), {b, c, i});
    }
  }
  Tensor y(DType::kInt64, {static_cast<int64_t>(sel.size() / 3), 3});
  for (size_t i = 0; i < sel.size(); ++i) y.data<int64_t>()[i] = sel[i];
  ctx.set_output(0, std::move(y));
  return Status::OK();
}

}  // namespace


void RegisterReduceRnnSignalKernels(RefKernelRegistry& r) {
  RegisterRecurrentKernels(r);
  RegisterSignalKernels(r);
  RegisterTextKernels(r);
  r.Add("", "NonMaxSuppression", &NmsKernel);
  for (const auto& [op, kind] : ReduceKinds()) r.Add("", op, &ReduceKernel);
}

}  // namespace kiln
