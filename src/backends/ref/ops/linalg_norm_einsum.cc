// Einsum, the obviously-correct way: iterate over every assignment of every label and
// accumulate the product of the operands' elements into the output element.
#include <map>

#include "backends/ref/ops/sub_families.h"
#include "backends/ref/kernel.h"
#include "backends/ref/ops/broadcast.h"
#include "ir/ops/einsum_equation.h"

namespace kiln {

namespace {

Status EinsumKernel(RefContext& ctx) {
  KILN_ASSIGN_OR_RETURN(std::string eq, ctx.attrs().GetString("equation", ""));
  std::vector<int> ranks;
  for (int i = 0; i < ctx.num_inputs(); ++i) {
    KILN_RETURN_IF_ERROR(ctx.RequireTensor(i));
    ranks.push_back(ctx.input(i).rank());
  }
  KILN_ASSIGN_OR_RETURN(EinsumEquation e, ParseEinsum(eq, ranks));
  std::map<int, int64_t> size;
  for (int i = 0; i < ctx.num_inputs(); ++i)
    for (size_t d = 0; d < e.inputs[static_cast<size_t>(i)].size(); ++d) {
      int64_t n = ctx.input(i).dim(static_cast<int>(d));
      auto [it, fresh] = size.emplace(e.inputs[static_cast<size_t>(i)][d], n);
      if (!fresh && it->second != n) {
        if (it->second == 1) it->second = n;
        else if (n != 1) return InvalidArgument("label sizes disagree: ", it->second, " vs ", n);
      }
    }
  std::vector<int> labels;
  for (const auto& [l, n] : size) labels.push_back(l);
  std::map<int, size_t> slot;
  for (size_t i = 0; i < labels.size(); ++i) slot[labels[i]] = i;
  std::vector<int64_t> out_dims;
  for (int l : e.output) {
    if (!size.count(l)) return InvalidArgument("output label not in any input");
    out_dims.push_back(size[l]);
  }
  const DType dt = ctx.input(0).dtype();
  std::vector<double> acc(1, 0.0);
  int64_t out_n = 1;
  for (int64_t d : out_dims) out_n *= d;
  acc.assign(static_cast<size_t>(out_n), 0.0);
  std::vector<int64_t> val(labels.size(), 0), lim;
  for (int l : labels) lim.push_back(size[l]);
  int64_t total = 1;
  for (int64_t n : lim) total *= n;
  const std::vector<int64_t> ostr = StridesOf(out_dims);
  std::vector<std::vector<int64_t>> istr;
  for (int i = 0; i < ctx.num_inputs(); ++i) istr.push_back(StridesOf(ctx.input(i).dims()));
  for (int64_t t = 0; t < total; ++t) {
    int64_t rem = t;
    for (size_t k = labels.size(); k-- > 0;) { val[k] = rem % lim[k]; rem /= lim[k]; }
    double p = 1;
    for (int i = 0; i < ctx.num_inputs() && p != 0; ++i) {
      const Tensor& x = ctx.input(i);
      int64_t off = 0;
      for (size_t d = 0; d < e.inputs[static_cast<size_t>(i)].size(); ++d) {
        const int64_t v = x.dim(static_cast<int>(d)) == 1 ? 0 : val[slot[e.inputs[static_cast<size_t>(i)][d]]];
        off += v * istr[static_cast<size_t>(i)][d];
      }
      p *= x.GetAsDouble(off);
    }
    int64_t o = 0;
    for (size_t d = 0; d < e.output.size(); ++d) o += val[slot[e.output[d]]] * ostr[d];
    acc[static_cast<size_t>(o)] += p;
  }
  Tensor y(dt, out_dims);
  for (int64_t i = 0; i < out_n; ++i) ref::StoreDouble(y, i, acc[static_cast<size_t>(i)]);
  ctx.set_output(0, std::move(y));
  return Status::OK();
}

}  // namespace

void RegisterEinsumKernels(RefKernelRegistry& r) { r.Add("", "Einsum", &EinsumKernel); }

}  // namespace kiln
