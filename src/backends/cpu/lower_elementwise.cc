// Lowering of elementwise layers (unary and binary ops with their fused epilogues as
// post-ops) onto oneDNN eltwise/binary primitives, or one step per op when none fits.
#include <algorithm>
#include <cstdio>
#include <cstring>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "backends/cpu/lower_dnnl_util.h"
#include "backends/cpu/lower_util.h"
#include "ir/op_schema.h"

namespace kiln::cpu {

namespace {

// A primitive descriptor through Compiler::MemoPd: `what` names the primitive and every
// parameter of its op descriptor beyond `md` (which, with the attribute, completes the key).
template <typename PD, typename F>
PD MemoizedPd(Compiler& c, const std::string& what, const dnnl::memory::desc& md, const dnnl::primitive_attr& attr,
              F&& make) {
  const std::string ak = AttrKey(attr);
  const std::string key = ak.empty() ? std::string() : StrCat(what, "|", MdKey(md), "|", ak);
  const dnnl::primitive_desc pd = c.MemoPd(key, [&]() -> dnnl::primitive_desc { return make(); });
  if (!pd) throw dnnl::error(dnnl_unimplemented, "no implementation");
  return PD(pd.get());  // (this constructor clones the C descriptor: the memo keeps its own)
}

std::string FloatBits(float f) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%a", f);
  return buf;
}

// A binary primitive step reading slots s0, s1 and writing dst.
void AddBinaryStep(Compiler& c, const dnnl::binary::primitive_desc& pd, int s0, int s1, int dst, const Node& node,
                   NodeId id) {
  auto k = std::make_unique<PrimitiveKernel>();
  k->prim = dnnl::binary(pd);
  k->slot_args = {{DNNL_ARG_SRC_0, s0}, {DNNL_ARG_SRC_1, s1}, {DNNL_ARG_DST, dst}};
  k->reads = {s0, s1};
  k->writes = {dst};
  k->info = {node.name, node.op_type, ImplName(pd, "binary"), "", 0, id};
  c.AddKernel(std::move(k));
}

// The last resort for an elementwise layer whose every single-primitive formulation is a
// oneDNN reference implementation: one step per op on row-major buffers — the head (an
// eltwise, or a binary: oneDNN's when it has a JIT kernel, else kiln's broadcasting one),
// then each post-op. A few more passes over memory instead of ref:any's scalar loops.
// `head` adds the first step writing `dst` (a row-major slot); false when it cannot.
bool LowerDecomposed(Compiler& c, const Node& node, NodeId id, const std::vector<PostOp>& ops,
                     const std::vector<int64_t>& out_dims, const std::function<bool(int dst)>& head,
                     const dnnl::memory::desc* layout = nullptr) {
  for (const PostOp& op : ops)
    if (op.kind == PostOp::Kind::kSum) return false;
  const dnnl::engine& eng = c.program().engine;
  const int rank = static_cast<int>(out_dims.size());
  // The working layout: row-major (every step possible: kiln's kernel backs up oneDNN's),
  // or the given one — then only when oneDNN has a JIT kernel for every step in it.
  const dnnl::memory::desc work = layout ? *layout : PlainMd(out_dims);
  auto operand_md = [&](const PostOp& op) {
    const std::vector<int64_t> d1 = LeftPad(op.src1_dims, rank);
    return layout && op.src1 != kNoValue && d1 == out_dims ? work : BroadcastOperandMd(d1, layout ? &work : nullptr);
  };
  auto step_impl = [&](const PostOp& op) {
    if (op.kind == PostOp::Kind::kEltwise)
      return TrialImpl([&] {
        return dnnl::eltwise_forward::primitive_desc(
            dnnl::eltwise_forward::desc(dnnl::prop_kind::forward_inference, op.alg, work, op.alpha, op.beta), BaseAttr(), eng);
      });
    return TrialImpl([&] { return dnnl::binary::primitive_desc(dnnl::binary::desc(op.alg, work, operand_md(op), work), BaseAttr(), eng); });
  };
  if (layout)
    for (const PostOp& op : ops) {
      const std::string impl = step_impl(op);
      if (impl.empty() || IsReferenceImpl(impl)) return false;
    }
  auto slot_for = [&](size_t step) {
    return step == ops.size() ? c.NewSlot(node.outputs[0], work, out_dims) : c.NewSlot(kNoValue, work, out_dims);
  };
  int cur = slot_for(0);
  if (!head(cur)) return false;
  const dnnl::memory::desc zero_md = PlainMd(std::vector<int64_t>(static_cast<size_t>(rank), 1));
  for (size_t i = 0; i < ops.size(); ++i) {
    const PostOp& op = ops[i];
    // A run of eltwise ops that oneDNN can fuse (NormalizePostOps): one "x + 0" binary step
    // with them as post-ops, when it has a JIT kernel -- a chain split only where it must be.
    if (op.kind == PostOp::Kind::kEltwise) {
      size_t end = i + 1;
      while (end < ops.size() && ops[end].kind == PostOp::Kind::kEltwise &&
             !PostOpsConflict(std::vector<PostOp>(ops.begin() + static_cast<std::ptrdiff_t>(i),
                                                  ops.begin() + static_cast<std::ptrdiff_t>(end) + 1)))
        ++end;
      if (end - i >= 2) {
        const std::vector<PostOp> run(ops.begin() + static_cast<std::ptrdiff_t>(i), ops.begin() + static_cast<std::ptrdiff_t>(end));
        const dnnl::primitive_attr run_attr = TrialAttr(run, out_dims, work);
        auto run_pd = [&] {
          return dnnl::binary::primitive_desc(dnnl::binary::desc(dnnl::algorithm::binary_add, work, zero_md, work), run_attr, eng);
        };
        const std::string impl = TrialImpl(run_pd);
        if (!impl.empty() && !IsReferenceImpl(impl)) {
          const dnnl::binary::primitive_desc pd = run_pd();
          const int dst = slot_for(end);
          auto k = std::make_unique<PrimitiveKernel>();
          k->prim = dnnl::binary(pd);
          dnnl::memory zero(zero_md, eng);
          *static_cast<float*>(zero.get_data_handle()) = 0.f;
          k->const_args.push_back({DNNL_ARG_SRC_1, zero});
          k->slot_args = {{DNNL_ARG_SRC_0, cur}, {DNNL_ARG_DST, dst}};
          k->reads.push_back(cur);
          k->writes.push_back(dst);
          k->info = {StrCat(node.name, " [", i + 1, "-", end, "]"), node.op_type, ImplName(pd, "binary"), "", 0, id};
          c.AddKernel(std::move(k));
          cur = dst;
          i = end - 1;
          continue;
        }
      }
    }
    const int dst = slot_for(i + 1);
    const std::string name = StrCat(node.name, " [", i + 1, "]");
    auto k = std::make_unique<PrimitiveKernel>();
    if (op.kind == PostOp::Kind::kEltwise) {
      dnnl::eltwise_forward::primitive_desc pd(
          dnnl::eltwise_forward::desc(dnnl::prop_kind::forward_inference, op.alg, work, op.alpha, op.beta), BaseAttr(), eng);
      k->prim = dnnl::eltwise_forward(pd);
      k->slot_args = {{DNNL_ARG_SRC, cur}, {DNNL_ARG_DST, dst}};
      k->info = {name, node.op_type, ImplName(pd, "eltwise"), "", 0, id};
    } else {
      const std::vector<int64_t> d1 = LeftPad(op.src1_dims, rank);
      const dnnl::memory::desc md1 = operand_md(op);
      int s1 = -1;
      if (op.src1 != kNoValue)
        s1 = md1 == work && layout ? c.InLayout(c.SlotOf(op.src1), work) : c.ViewMd(c.Plain(c.SlotOf(op.src1)), md1, d1);
      const std::string impl = step_impl(op);
      if (impl.empty() || IsReferenceImpl(impl)) {
        if (!AddBroadcastBinary(c, op.alg, cur, s1, &op.src1_const, d1, dst, name, node.op_type, id)) return false;
        cur = dst;
        continue;
      }
      dnnl::binary::primitive_desc bpd(dnnl::binary::desc(op.alg, work, md1, work), BaseAttr(), eng);
      k->prim = dnnl::binary(bpd);
      k->slot_args = {{DNNL_ARG_SRC_0, cur}, {DNNL_ARG_DST, dst}};
      if (s1 >= 0) {
        k->slot_args.push_back({DNNL_ARG_SRC_1, s1});
        k->reads.push_back(s1);
      } else {
        dnnl::memory m(md1, eng);
        std::memcpy(m.get_data_handle(), op.src1_const.data(), op.src1_const.size() * sizeof(float));
        k->const_args.push_back({DNNL_ARG_SRC_1, m});
      }
      k->info = {name, node.op_type, ImplName(bpd, "binary"), "", 0, id};
    }
    k->reads.push_back(cur);
    k->writes.push_back(dst);
    c.AddKernel(std::move(k));
    cur = dst;
  }
  return true;
}

}  // namespace

StatusOr<bool> LowerElementwise(Compiler& c, NodeId id) {
  const Graph& g = c.graph();
  const Node& node = g.node(id);
  if (node.attrs.has(kSplitSizesAttr) || node.outputs.size() != 1 || !IsF32(g, node.outputs[0])) return false;
  const Node main = MainPartOf(node);
  const std::vector<int64_t> out_dims = DimsOf(g, node.outputs[0]);
  const int rank = static_cast<int>(out_dims.size());
  if (rank == 0) return false;
  auto k = std::make_unique<PrimitiveKernel>();
  dnnl::primitive_attr attr = BaseAttr();
  const dnnl::engine& eng = c.program().engine;
  if (auto u = UnaryAlgorithm(g, main)) {
    if (main.inputs.empty() || !IsF32(g, main.inputs[0]) || DimsOf(g, main.inputs[0]) != out_dims) return false;
    // (An epilogue oneDNN cannot fuse, NormalizePostOps, still runs: one step per op.)
    auto epi = TranslateEpilogue(g, node, rank, /*fusable_only=*/false);
    if (!epi) return false;
    const bool fusable = !PostOpsConflict(*epi);
    // Candidates, first one that oneDNN runs with a JIT kernel wins: the eltwise primitive
    // (its JIT kernels take no post-ops: an epilogue sends it to ref:any), or "x + 0" as a
    // binary primitive with the op as its first post-op (binary's JIT kernels take eltwise
    // and binary post-ops) — each in the source's own layout, then row-major.
    std::vector<PostOp> as_post = *epi;
    PostOp first;
    first.alg = u->alg;
    first.alpha = u->alpha;
    first.beta = u->beta;
    as_post.insert(as_post.begin(), first);
    const bool binary_ok = NormalizePostOps(as_post);
    int src = c.SlotOf(main.inputs[0]);
    const dnnl::memory::desc own = c.program().slots[static_cast<size_t>(src)].md;
    const dnnl::memory::desc plain = PlainMd(out_dims);
    const dnnl::memory::desc zero_md = PlainMd(std::vector<int64_t>(static_cast<size_t>(rank), 1));
    // (Memoized: a chain of identical layers searches oneDNN's implementations once.)
    const std::string eltwise_what =
        StrCat("eltwise:", static_cast<int>(u->alg), ":", FloatBits(u->alpha), ":", FloatBits(u->beta));
    auto eltwise_pd = [&](const dnnl::memory::desc& md, const dnnl::primitive_attr& a) {
      return MemoizedPd<dnnl::eltwise_forward::primitive_desc>(c, eltwise_what, md, a, [&] {
        return dnnl::eltwise_forward::primitive_desc(
            dnnl::eltwise_forward::desc(dnnl::prop_kind::forward_inference, u->alg, md, u->alpha, u->beta), a, eng);
      });
    };
    auto binary_pd = [&](const dnnl::memory::desc& md, const dnnl::primitive_attr& a) {
      return MemoizedPd<dnnl::binary::primitive_desc>(c, "binary_add_zero", md, a, [&] {
        return dnnl::binary::primitive_desc(dnnl::binary::desc(dnnl::algorithm::binary_add, md, zero_md, md), a, eng);
      });
    };
    // An identical step lowered before (no activation operands in the epilogue: their
    // layouts are not in the key) gives its formulation and shares its primitive.
    const bool slot_operands = std::any_of(epi->begin(), epi->end(), [](const PostOp& op) {
      return op.kind == PostOp::Kind::kBinary && op.src1 != kNoValue;
    });
    const std::string step_key =
        slot_operands ? std::string() : StrCat("unary|", eltwise_what, "|", MdKey(own), PostOpsKey(*epi));
    if (const Compiler::StepMemo* m = step_key.empty() ? nullptr : c.FindStep(step_key)) {
      const bool use_binary = (m->variant & 1) != 0;
      if ((m->variant & 2) != 0) src = c.Plain(src);
      const dnnl::memory::desc md = c.program().slots[static_cast<size_t>(src)].md;
      KILN_RETURN_IF_ERROR(ApplyPostOps(c, use_binary ? as_post : *epi, out_dims, nullptr, &k->slot_args,
                                        &k->const_args, &k->reads, &md));
      k->prim = m->prim;
      if (use_binary) k->const_args.push_back({DNNL_ARG_SRC_1, m->aux});
      k->slot_args.push_back({DNNL_ARG_SRC, src});  // (= DNNL_ARG_SRC_0 of a binary primitive)
      const int dst = c.NewSlot(node.outputs[0], m->dst, out_dims);
      k->info = {node.name, node.op_type, m->impl, "", 0};
      k->slot_args.push_back({DNNL_ARG_DST, dst});
      k->reads.push_back(src);
      k->writes.push_back(dst);
      c.AddKernel(std::move(k));
      return true;
    }
    bool use_binary = false, use_plain = false;
    bool found = false;
    for (int cand = 0; cand < 4 && !found; ++cand) {
      const bool bin = cand % 2 == 1, pl = cand >= 2;
      if ((bin && (epi->empty() || !binary_ok)) || (!bin && !fusable) || (pl && own == plain)) continue;
      const dnnl::memory::desc& md = pl ? plain : own;
      auto a = TrialAttr(bin ? as_post : *epi, out_dims, md);
      const std::string impl = bin ? TrialImpl([&] { return binary_pd(md, a); }) : TrialImpl([&] { return eltwise_pd(md, a); });
      if (!impl.empty() && !IsReferenceImpl(impl)) {
        use_binary = bin;
        use_plain = pl;
        found = true;
      }
    }
    if (!found && !epi->empty()) {
      const int plain_src = c.Plain(src);
      return LowerDecomposed(c, node, id, *epi, out_dims, [&](int dst) {
        dnnl::eltwise_forward::primitive_desc pd = eltwise_pd(plain, BaseAttr());
        auto hk = std::make_unique<PrimitiveKernel>();
        hk->prim = dnnl::eltwise_forward(pd);
        hk->slot_args = {{DNNL_ARG_SRC, plain_src}, {DNNL_ARG_DST, dst}};
        hk->reads = {plain_src};
        hk->writes = {dst};
        hk->info = {node.name, node.op_type, ImplName(pd, "eltwise"), "", 0, id};
        c.AddKernel(std::move(hk));
        return true;
      });
    }
    if (use_plain) src = c.Plain(src);
    const dnnl::memory::desc md = c.program().slots[static_cast<size_t>(src)].md;
    KILN_RETURN_IF_ERROR(ApplyPostOps(c, use_binary ? as_post : *epi, out_dims, &attr, &k->slot_args, &k->const_args,
                                      &k->reads, &md));
    int dst;
    if (use_binary) {
      dnnl::binary::primitive_desc pd = binary_pd(md, attr);
      k->prim = dnnl::binary(pd);
      dnnl::memory zero(zero_md, eng);
      *static_cast<float*>(zero.get_data_handle()) = 0.f;
      k->const_args.push_back({DNNL_ARG_SRC_1, zero});
      dst = c.NewSlot(node.outputs[0], pd.dst_desc(), out_dims);
      k->slot_args.push_back({DNNL_ARG_SRC_0, src});
      k->info = {node.name, node.op_type, ImplName(pd, "binary"), "", 0};
      if (!step_key.empty()) c.RememberStep(step_key, {1 | (use_plain ? 2 : 0), k->prim, k->info.impl, pd.dst_desc(), zero});
    } else {
      dnnl::eltwise_forward::primitive_desc pd = eltwise_pd(md, attr);
      k->prim = dnnl::eltwise_forward(pd);
      dst = c.NewSlot(node.outputs[0], pd.dst_desc(), out_dims);
      k->slot_args.push_back({DNNL_ARG_SRC, src});
      k->info = {node.name, node.op_type, ImplName(pd, "eltwise"), "", 0};
      if (!step_key.empty()) c.RememberStep(step_key, {use_plain ? 2 : 0, k->prim, k->info.impl, pd.dst_desc(), {}});
    }
    k->slot_args.push_back({DNNL_ARG_DST, dst});
    k->reads.push_back(src);
    k->writes.push_back(dst);
    c.AddKernel(std::move(k));
    return true;
  }
  auto b = BinaryAlgorithm(main.op_type);
  if (!b || main.inputs.size() != 2 || !IsF32(g, main.inputs[0]) || !IsF32(g, main.inputs[1])) return false;
  ValueId a0 = main.inputs[0], a1 = main.inputs[1];
  // (An epilogue oneDNN cannot fuse, NormalizePostOps, still runs: one step per op.)
  auto epi = TranslateEpilogue(g, node, rank, /*fusable_only=*/false);
  if (!epi) return false;
  const bool fusable = !PostOpsConflict(*epi);
  if (DimsOf(g, a0) != out_dims) {
    const bool commutative = main.op_type == "Add" || main.op_type == "Mul" || main.op_type == "Max" || main.op_type == "Min";
    if (!commutative || DimsOf(g, a1) != out_dims) {
      // The first operand broadcasts (bias - x, 1 / x, [N,1] + [1,M]): kiln's kernel.
      if (static_cast<int>(DimsOf(g, a0).size()) > rank || static_cast<int>(DimsOf(g, a1).size()) > rank) return false;
      const std::vector<int64_t> d0 = LeftPad(DimsOf(g, a0), rank), d1 = LeftPad(DimsOf(g, a1), rank);
      const int p0 = c.View(c.Plain(c.SlotOf(a0)), d0), p1 = c.View(c.Plain(c.SlotOf(a1)), d1);
      return LowerDecomposed(c, node, id, *epi, out_dims, [&](int dst) {
        return AddBroadcastBinary(c, *b, p0, p1, nullptr, d1, dst, node.name, node.op_type, id);
      });
    }
    std::swap(a0, a1);
  }
  const std::vector<int64_t> d1 = DimsOf(g, a1);
  if (static_cast<int>(d1.size()) > rank) return false;
  int s0 = c.SlotOf(a0);
  const dnnl::memory::desc own = c.program().slots[static_cast<size_t>(s0)].md;
  const dnnl::memory::desc plain = PlainMd(out_dims);
  // src1's descriptor for a given src0 layout: the same layout when it is full-size, else a
  // row-major view padded to the rank (a scalar or a broadcast row/channel vector).
  const bool full = d1 == out_dims;
  const std::vector<int64_t> bcast_dims = Numel(d1) == 1 ? std::vector<int64_t>(static_cast<size_t>(rank), 1) : LeftPad(d1, rank);
  auto pd_for = [&](const dnnl::memory::desc& md0, const dnnl::primitive_attr& a) {
    return dnnl::binary::primitive_desc(dnnl::binary::desc(*b, md0, full ? md0 : BroadcastOperandMd(bcast_dims, &md0), md0), a, eng);
  };
  // src0 keeps its own (possibly blocked) layout when oneDNN has a JIT kernel for the
  // combination, else both go row-major (a reorder around the op beats ref:any).
  bool use_plain = false;
  std::string impl = fusable ? TrialImpl([&] { return pd_for(own, TrialAttr(*epi, out_dims, own)); }) : "";
  if (own != plain && (impl.empty() || IsReferenceImpl(impl)) && !epi->empty()) {
    // The op with its epilogue has no JIT kernel in src0's (blocked) layout, but each step
    // alone may (DenseNet's BN after a concat: per-channel Mul, then Add + ReLU): one step
    // per op in that layout — two passes over memory instead of reorder, op, reorder back.
    const std::string head_impl = TrialImpl([&] { return pd_for(own, BaseAttr()); });
    if (!head_impl.empty() && !IsReferenceImpl(head_impl)) {
      const bool done = LowerDecomposed(c, node, id, *epi, out_dims, [&](int dst) {
        // (Made only now: LowerDecomposed has checked every step, nothing is left half-built.)
        const int s1_own = full ? c.InLayout(c.SlotOf(a1), own)
                                : c.ViewMd(c.Plain(c.SlotOf(a1)), BroadcastOperandMd(bcast_dims, &own), bcast_dims);
        AddBinaryStep(c, pd_for(own, BaseAttr()), s0, s1_own, dst, node, id);
        return true;
      }, &own);
      if (done) return true;
    }
  }
  if (fusable && own != plain && (impl.empty() || IsReferenceImpl(impl))) {
    const std::string impl_plain = TrialImpl([&] { return pd_for(plain, TrialAttr(*epi, out_dims, plain)); });
    use_plain = !impl_plain.empty() && (!IsReferenceImpl(impl_plain) || impl.empty());
    if (use_plain) impl = impl_plain;
  }
  if (impl.empty() || IsReferenceImpl(impl)) {
    // No JIT kernel for the op with its epilogue in either layout: one step per op.
    const int p0 = c.Plain(s0);
    const int p1 = c.View(c.Plain(c.SlotOf(a1)), bcast_dims);
    return LowerDecomposed(c, node, id, *epi, out_dims, [&](int dst) {
      const std::string hi = TrialImpl([&] { return pd_for(plain, BaseAttr()); });
      if (hi.empty() || IsReferenceImpl(hi))
        return AddBroadcastBinary(c, *b, p0, p1, nullptr, bcast_dims, dst, node.name, node.op_type, id);
      AddBinaryStep(c, pd_for(plain, BaseAttr()), p0, p1, dst, node, id);
      return true;
    });
  }
  if (use_plain) s0 = c.Plain(s0);
  const dnnl::memory::desc md0 = c.program().slots[static_cast<size_t>(s0)].md;
  int s1;
  if (full) {
    s1 = c.InLayout(c.SlotOf(a1), md0);
  } else {
    s1 = c.ViewMd(c.Plain(c.SlotOf(a1)), BroadcastOperandMd(bcast_dims, &md0), bcast_dims);
  }
  KILN_RETURN_IF_ERROR(ApplyPostOps(c, *epi, out_dims, &attr, &k->slot_args, &k->const_args, &k->reads, &md0));
  dnnl::binary::primitive_desc pd(dnnl::binary::desc(*b, md0, c.program().slots[static_cast<size_t>(s1)].md, md0), attr, eng);
  k->prim = dnnl::binary(pd);
  const int dst = c.NewSlot(node.outputs[0], pd.dst_desc(), out_dims);
  k->slot_args.push_back({DNNL_ARG_SRC_0, s0});
  k->slot_args.push_back({DNNL_ARG_SRC_1, s1});
  k->slot_args.push_back({DNNL_ARG_DST, dst});
  k->reads.push_back(s0);
  k->reads.push_back(s1);
  k->writes.push_back(dst);
  k->info = {node.name, node.op_type, ImplName(pd, "binary"), "", 0};
  c.AddKernel(std::move(k));
  return true;
}

}  // namespace kiln::cpu
