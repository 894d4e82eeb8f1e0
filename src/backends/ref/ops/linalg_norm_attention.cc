// kiln.Attention, the obviously-correct way: for every batch index and query row, the
// scores against every key in double, the max-subtracted softmax, the weighted sum of V.
// Semantics in src/ir/ops/linalg_norm.cc (InferAttention).
#include <cmath>

#include "backends/ref/ops/sub_families.h"
#include "backends/ref/kernel.h"
#include "backends/ref/ops/broadcast.h"

namespace kiln {

namespace {

std::vector<int64_t> BatchDims(const Tensor& t) { return {t.dims().begin(), t.dims().end() - 2}; }

Status AttentionKernel(RefContext& ctx) {
  for (int i = 0; i < 3; ++i) KILN_RETURN_IF_ERROR(ctx.RequireTensor(i));
  const Tensor& q = ctx.input(0);
  const Tensor& k = ctx.input(1);
  const Tensor& v = ctx.input(2);
  const bool has_mask = ctx.has_input(3);
  if (has_mask) KILN_RETURN_IF_ERROR(ctx.RequireTensor(3));
  KILN_ASSIGN_OR_RETURN(int64_t tk, ctx.attrs().GetInt("transpose_k", 0));
  KILN_ASSIGN_OR_RETURN(float scale, ctx.attrs().GetFloat("scale", 1.f));
  if (q.rank() < 2 || k.rank() < 2 || v.rank() < 2) return InvalidArgument("Q, K and V must have rank >= 2");
  const int64_t L = q.dim(q.rank() - 2), D = q.dim(q.rank() - 1);
  const int64_t S = tk ? k.dim(k.rank() - 2) : k.dim(k.rank() - 1);
  const int64_t kD = tk ? k.dim(k.rank() - 1) : k.dim(k.rank() - 2);
  const int64_t Dv = v.dim(v.rank() - 1);
  if (kD != D) return InvalidArgument("Q ", q.ShapeString(), " and K ", k.ShapeString(), " disagree on the head size");
  if (v.dim(v.rank() - 2) != S)
    return InvalidArgument("K ", k.ShapeString(), " and V ", v.ShapeString(), " disagree on the sequence length");
  KILN_ASSIGN_OR_RETURN(std::vector<int64_t> batch, ref::BroadcastDims({BatchDims(q), BatchDims(k), BatchDims(v)}));
  std::vector<int64_t> score_dims = batch;
  score_dims.push_back(L);
  score_dims.push_back(S);
  // The mask broadcast to the full score shape, as offsets into the mask tensor.
  std::vector<int64_t> mask_at;
  if (has_mask) {
    const Tensor& m = ctx.input(3);
    KILN_ASSIGN_OR_RETURN(std::vector<int64_t> md, ref::BroadcastDims({score_dims, m.dims()}));
    if (md != score_dims) return InvalidArgument("mask ", m.ShapeString(), " does not broadcast to the scores ", DimsToString(score_dims));
    for (ref::BroadcastIter it(score_dims, {m.dims()}); !it.done(); it.Next()) mask_at.push_back(it.offset(0));
  }
  std::vector<int64_t> out_dims = batch;
  out_dims.push_back(L);
  out_dims.push_back(Dv);
  KILN_ASSIGN_OR_RETURN(Tensor out, Tensor::Create(q.dtype(), out_dims, "output"));
  std::vector<double> row(static_cast<size_t>(S));
  int64_t b = 0;
  for (ref::BroadcastIter it(batch, {BatchDims(q), BatchDims(k), BatchDims(v)}); !it.done(); it.Next(), ++b) {
    const int64_t qo = it.offset(0) * L * D, ko = it.offset(1) * S * D, vo = it.offset(2) * S * Dv;
    for (int64_t l = 0; l < L; ++l) {
      double mx = -INFINITY;
      for (int64_t s = 0; s < S; ++s) {
        double acc = 0;
        for (int64_t d = 0; d < D; ++d)
          acc += ref::LoadDouble(q, qo + l * D + d) * ref::LoadDouble(k, ko + (tk ? s * D + d : d * S + s));
        acc *= scale;
        if (has_mask) acc += ref::LoadDouble(ctx.input(3), mask_at[static_cast<size_t>((b * L + l) * S + s)]);
        row[static_cast<size_t>(s)] = acc;
        mx = std::max(mx, acc);
      }
      double sum = 0;
      for (double& r : row) sum += (r = std::exp(r - mx));
      for (int64_t j = 0; j < Dv; ++j) {
        double acc = 0;
        for (int64_t s = 0; s < S; ++s) acc += row[static_cast<size_t>(s)] * ref::LoadDouble(v, vo + s * Dv + j);
        ref::StoreDouble(out, (b * L + l) * Dv + j, acc / sum);
      }
    }
  }
  ctx.set_output(0, std::move(out));
  return Status::OK();
}

}  // namespace

void RegisterAttentionKernels(RefKernelRegistry& r) { r.Add("kiln", "Attention", &AttentionKernel); }

}  // namespace kiln
