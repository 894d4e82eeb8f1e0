// Reference kernels: reductions (accumulated in double).
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

}  // namespace

void RegisterReduceRnnSignalKernels(RefKernelRegistry& r) {
  for (const char* op : {"ReduceSum", "ReduceMean", "ReduceMax", "ReduceMin", "ReduceProd", "ReduceL1", "ReduceL2",
                         "ReduceLogSum", "ReduceLogSumExp", "ReduceSumSquare"})
    r.Add("", op, &ReduceKernel);
}

}  // namespace kiln
