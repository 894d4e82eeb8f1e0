// Reference kernels: reductions (accumulated in double).
#include <algorithm>
#include <cmath>
#include <limits>

#include "backends/ref/kernel.h"
#include "backends/ref/ops/broadcast.h"
#include "backends/ref/ops/tensor_util.h"
#include "ir/op_schema.h"
#include "ir/ops/families.h"

namespace kiln {

namespace {

Status ReduceKernel(RefContext& ctx) {
  KILN_RETURN_IF_ERROR(ctx.RequireTensor(0));
  const Tensor& x = ctx.input(0);
  const std::string& op = ctx.node().op_type;
  KILN_ASSIGN_OR_RETURN(int64_t keep, ctx.attrs().GetInt("keepdims", 1));
  KILN_ASSIGN_OR_RETURN(int64_t noop, ctx.attrs().GetInt("noop_with_empty_axes", 0));
  const int r = x.rank();
  std::vector<int64_t> axes;
  if (ctx.has_input(1)) { KILN_ASSIGN_OR_RETURN(axes, ctx.input(1).ToInt64Vector()); }
  if (axes.empty() && noop) { ctx.set_output(0, x); return Status::OK(); }
  std::vector<bool> red(static_cast<size_t>(r), axes.empty());
  for (int64_t a : axes) {
    KILN_ASSIGN_OR_RETURN(int ax, NormalizeAxis(a, r, "axes"));
    red[static_cast<size_t>(ax)] = true;
  }
  std::vector<int64_t> kept_dims, out_dims;
  for (int i = 0; i < r; ++i) {
    kept_dims.push_back(red[static_cast<size_t>(i)] ? 1 : x.dim(i));
    if (!red[static_cast<size_t>(i)]) out_dims.push_back(x.dim(i));
    else if (keep) out_dims.push_back(1);
  }
  int64_t out_n = 1;
  for (int64_t d : kept_dims) out_n *= d;
  const bool is_max = op == "ReduceMax", is_min = op == "ReduceMin", is_prod = op == "ReduceProd";
  const double init = is_max ? -std::numeric_limits<double>::infinity()
                      : is_min ? std::numeric_limits<double>::infinity() : is_prod ? 1.0 : 0.0;
  std::vector<double> acc(static_cast<size_t>(out_n), init);
  std::vector<int64_t> count(static_cast<size_t>(out_n), 0);
  const std::vector<int64_t> kstrides = StridesOf(kept_dims);
  std::vector<int64_t> pos;
  for (int64_t i = 0; i < x.numel(); ++i) {
    ref::Unravel(i, x.dims(), pos);
    int64_t o = 0;
    for (int d = 0; d < r; ++d)
      if (!red[static_cast<size_t>(d)]) o += pos[static_cast<size_t>(d)] * kstrides[static_cast<size_t>(d)];
    const double v = x.GetAsDouble(i);
    double& a = acc[static_cast<size_t>(o)];
    if (is_max) a = (std::isnan(v) || v > a) ? v : a;
    else if (is_min) a = (std::isnan(v) || v < a) ? v : a;
    else if (is_prod) a *= v;
    else if (op == "ReduceL1") a += std::fabs(v);
    else if (op == "ReduceL2" || op == "ReduceSumSquare") a += v * v;
    else if (op == "ReduceLogSumExp") a += std::exp(v);
    else a += v;  // Sum, Mean, LogSum
    ++count[static_cast<size_t>(o)];
  }
  Tensor y(x.dtype(), out_dims);
  for (int64_t o = 0; o < out_n; ++o) {
    double a = acc[static_cast<size_t>(o)];
    if (op == "ReduceMean") a /= double(count[static_cast<size_t>(o)]);
    else if (op == "ReduceL2") a = std::sqrt(a);
    else if (op == "ReduceLogSum" || op == "ReduceLogSumExp") a = std::log(a);
    if ((is_max || is_min) && count[static_cast<size_t>(o)] == 0 && IsInteger(x.dtype()))
      a = is_max ? double(std::numeric_limits<int32_t>::min()) : double(std::numeric_limits<int32_t>::max());
    ref::StoreDouble(y, o, IsInteger(x.dtype()) && op == "ReduceMean" ? std::trunc(a) : a);
  }
  ctx.set_output(0, std::move(y));
  return Status::OK();
}

// Hann / Hamming / Blackman windows (periodic: N' = size, symmetric: N' = size - 1).
Status WindowKernel(RefContext& ctx) {
  KILN_RETURN_IF_ERROR(ctx.RequireTensor(0));
  if (ctx.input(0).numel() != 1) return InvalidArgument("size must be a scalar");
  const int64_t size = static_cast<int64_t>(ctx.input(0).GetAsDouble(0));
  if (size < 0 || size > (int64_t{1} << 30)) return InvalidArgument("window size ", size, " out of range");
  KILN_ASSIGN_OR_RETURN(int64_t periodic, ctx.attrs().GetInt("periodic", 1));
  KILN_ASSIGN_OR_RETURN(int64_t dt, ctx.attrs().GetInt("output_datatype", 1));
  const std::string& op = ctx.node().op_type;
  const double n_den = periodic ? double(size) : double(size - 1);
  Tensor y(static_cast<DType>(dt), {size});
  for (int64_t i = 0; i < size; ++i) {
    const double x = n_den > 0 ? 2 * M_PI * double(i) / n_den : 0.0;
    double v;
    if (op == "HannWindow") v = 0.5 - 0.5 * std::cos(x);
    else if (op == "HammingWindow") v = 25.0 / 46.0 - (1 - 25.0 / 46.0) * std::cos(x);
    else v = 0.42 - 0.5 * std::cos(x) + 0.08 * std::cos(2 * x);
    ref::StoreDouble(y, i, v);
  }
  ctx.set_output(0, std::move(y));
  return Status::OK();
}

// Case folding for ASCII and Latin-1 letters encoded as UTF-8 (what the en_US locale changes
// in these inputs); other bytes pass through unchanged.
std::string ChangeCase(const std::string& s, bool upper) {
  std::string out = s;
  for (char& c : out) c = static_cast<char>(upper ? std::toupper(static_cast<unsigned char>(c)) : std::tolower(static_cast<unsigned char>(c)));
  return out;
}

Status StringNormalizerKernel(RefContext& ctx) {
  KILN_RETURN_IF_ERROR(ctx.RequireTensor(0));
  const Tensor& x = ctx.input(0);
  if (x.dtype() != DType::kString) return InvalidArgument("input must be a string tensor");
  if (x.rank() > 2 || (x.rank() == 2 && x.dim(0) != 1)) return InvalidArgument("input must be [C] or [1, C]");
  KILN_ASSIGN_OR_RETURN(std::string action, ctx.attrs().GetString("case_change_action", "NONE"));
  KILN_ASSIGN_OR_RETURN(int64_t sensitive, ctx.attrs().GetInt("is_case_sensitive", 0));
  KILN_ASSIGN_OR_RETURN(std::vector<std::string> stop, ctx.attrs().GetStrings("stopwords"));
  if (action != "NONE" && action != "LOWER" && action != "UPPER") return InvalidArgument("bad case_change_action '", action, "'");
  std::vector<std::string> kept;
  for (int64_t i = 0; i < x.numel(); ++i) {
    const std::string& w = x.data<std::string>()[i];
    bool drop = false;
    for (const std::string& sw : stop) drop = drop || (sensitive ? w == sw : ChangeCase(w, false) == ChangeCase(sw, false));
    if (drop) continue;
    kept.push_back(action == "NONE" ? w : ChangeCase(w, action == "UPPER"));
  }
  if (kept.empty()) kept.push_back("");
  const int64_t n = static_cast<int64_t>(kept.size());
  Tensor y = Tensor::FromVector(kept, x.rank() == 2 ? std::vector<int64_t>{1, n} : std::vector<int64_t>{n});
  ctx.set_output(0, std::move(y));
  return Status::OK();
}

// Greedy non-maximum suppression per (batch, class): highest score first (lower box index
// on ties), dropping boxes whose IoU with a selected box exceeds iou_threshold.
Status NmsKernel(RefContext& ctx) {
  KILN_RETURN_IF_ERROR(ctx.RequireTensor(0));
  KILN_RETURN_IF_ERROR(ctx.RequireTensor(1));
  const Tensor& boxes = ctx.input(0);
  const Tensor& scores = ctx.input(1);
  if (boxes.rank() != 3 || boxes.dim(2) != 4) return InvalidArgument("boxes must be [batch, boxes, 4], got ", boxes.ShapeString());
  if (scores.rank() != 3 || scores.dim(0) != boxes.dim(0) || scores.dim(2) != boxes.dim(1))
    return InvalidArgument("scores must be [batch, classes, boxes], got ", scores.ShapeString());
  KILN_ASSIGN_OR_RETURN(int64_t center, ctx.attrs().GetInt("center_point_box", 0));
  const int64_t max_out = ctx.has_input(2) && ctx.input(2).numel() > 0 ? static_cast<int64_t>(ctx.input(2).GetAsDouble(0)) : 0;
  const double iou_th = ctx.has_input(3) && ctx.input(3).numel() > 0 ? ctx.input(3).GetAsDouble(0) : 0.0;
  const bool has_score_th = ctx.has_input(4) && ctx.input(4).numel() > 0;
  const double score_th = has_score_th ? ctx.input(4).GetAsDouble(0) : 0.0;
  const int64_t nb = boxes.dim(0), nc = scores.dim(1), n = boxes.dim(1);
  auto corners = [&](int64_t b, int64_t i, double c[4]) {
    double v[4];
    for (int k = 0; k < 4; ++k) v[k] = boxes.GetAsDouble((b * n + i) * 4 + k);
    if (center) {
      c[0] = v[1] - v[3] / 2; c[2] = v[1] + v[3] / 2;  // y
      c[1] = v[0] - v[2] / 2; c[3] = v[0] + v[2] / 2;  // x
    } else {
      c[0] = std::min(v[0], v[2]); c[2] = std::max(v[0], v[2]);
      c[1] = std::min(v[1], v[3]); c[3] = std::max(v[1], v[3]);
    }
  };
  std::vector<int64_t> sel;
  for (int64_t b = 0; b < nb; ++b)
    for (int64_t c = 0; c < nc; ++c) {
      std::vector<int64_t> order;
      for (int64_t i = 0; i < n; ++i)
        if (!has_score_th || scores.GetAsDouble((b * nc + c) * n + i) > score_th) order.push_back(i);
      std::stable_sort(order.begin(), order.end(), [&](int64_t x, int64_t y) {
        return scores.GetAsDouble((b * nc + c) * n + x) > scores.GetAsDouble((b * nc + c) * n + y);
      });
      std::vector<int64_t> kept;
      for (int64_t i : order) {
        if (max_out > 0 && static_cast<int64_t>(kept.size()) >= max_out) break;
        if (max_out == 0) break;
        double a[4];
        corners(b, i, a);
        bool suppressed = false;
        for (int64_t j : kept) {
          double o[4];
          corners(b, j, o);
          const double ih = std::max(0.0, std::min(a[2], o[2]) - std::max(a[0], o[0]));
          const double iw = std::max(0.0, std::min(a[3], o[3]) - std::max(a[1], o[1]));
          const double inter = ih * iw;
          const double uni = (a[2] - a[0]) * (a[3] - a[1]) + (o[2] - o[0]) * (o[3] - o[1]) - inter;
          if (uni > 0 && inter / uni > iou_th) { suppressed = true; break; }
        }
        if (!suppressed) kept.push_back(i);
      }
      for (int64_t i : kept) sel.insert(sel.end(), {b, c, i});
    }
  Tensor y(DType::kInt64, {static_cast<int64_t>(sel.size() / 3), 3});
  for (size_t i = 0; i < sel.size(); ++i) y.data<int64_t>()[i] = sel[i];
  ctx.set_output(0, std::move(y));
  return Status::OK();
}

}  // namespace

void RegisterRecurrentKernels(RefKernelRegistry& r);  // reduce_rnn_signal_rnn.cc
void RegisterSignalKernels(RefKernelRegistry& r);     // reduce_rnn_signal_signal.cc

void RegisterReduceRnnSignalKernels(RefKernelRegistry& r) {
  RegisterRecurrentKernels(r);
  RegisterSignalKernels(r);
  r.Add("", "NonMaxSuppression", &NmsKernel);
  for (const char* op : {"HannWindow", "HammingWindow", "BlackmanWindow"}) r.Add("", op, &WindowKernel);
  r.Add("", "StringNormalizer", &StringNormalizerKernel);
  for (const char* op : {"ReduceSum", "ReduceMean", "ReduceMax", "ReduceMin", "ReduceProd", "ReduceL1", "ReduceL2",
                         "ReduceLogSum", "ReduceLogSumExp", "ReduceSumSquare"})
    r.Add("", op, &ReduceKernel);
}

}  // namespace kiln
