// Fused epilogues (kEpilogueAttr subgraphs) as oneDNN post-ops, and the unary ops that
// map onto oneDNN eltwise algorithms.
#include <cmath>
#include <cstdio>
#include <map>

#include "backends/cpu/lower_util.h"
#include "ir/op_schema.h"

namespace kiln::cpu {

using alg = dnnl::algorithm;

template <typename F>
std::optional<EltwiseOp> UnaryAlgorithmImpl(const Graph& g, const Node& n, F&& f,
                                            const std::function<const Tensor*(ValueId)>* constant_of);

std::optional<EltwiseOp> UnaryAlgorithm(const Graph& g, const Node& n,
                                        const std::function<const Tensor*(ValueId)>* constant_of) {
  // A malformed attribute (wrong type) is left to the reference kernel, which reports it.
  bool bad = false;
  auto f = [&](const char* name, float dflt) {
    auto r = n.attrs.GetFloat(name, dflt);
    bad = bad || !r.ok();
    return r.ok() ? *r : dflt;
  };
  auto u = UnaryAlgorithmImpl(g, n, f, constant_of);
  if (bad) return std::nullopt;
  return u;
}

template <typename F>
std::optional<EltwiseOp> UnaryAlgorithmImpl(const Graph& g, const Node& n, F&& f,
                                            const std::function<const Tensor*(ValueId)>* constant_of) {
  const std::string& op = n.op_type;
  if (op == "Relu") return EltwiseOp{alg::eltwise_relu, 0, 0};
  if (op == "LeakyRelu") return EltwiseOp{alg::eltwise_relu, f("alpha", 0.01f), 0};
  if (op == "Sigmoid") return EltwiseOp{alg::eltwise_logistic, 0, 0};
  if (op == "Tanh") return EltwiseOp{alg::eltwise_tanh, 0, 0};
  if (op == "Elu") return EltwiseOp{alg::eltwise_elu, f("alpha", 1.0f), 0};
  if (op == "Exp") return EltwiseOp{alg::eltwise_exp, 0, 0};
  if (op == "Abs") return EltwiseOp{alg::eltwise_abs, 0, 0};
  if (op == "Sqrt") return EltwiseOp{alg::eltwise_sqrt, 0, 0};
  if (op == "Neg") return EltwiseOp{alg::eltwise_linear, -1, 0};
  if (op == "HardSwish") return EltwiseOp{alg::eltwise_hardswish, 0, 0};
  if (op == "Softplus") return EltwiseOp{alg::eltwise_soft_relu, 0, 0};
  if (op == "Mish") return EltwiseOp{alg::eltwise_mish, 0, 0};
  if (op == "Swish") return EltwiseOp{alg::eltwise_swish, f("alpha", 1.0f), 0};
  if (op == "Gelu") {
    auto a = n.attrs.GetString("approximate", "none");
    if (!a.ok()) return std::nullopt;
    return EltwiseOp{*a == "tanh" ? alg::eltwise_gelu_tanh : alg::eltwise_gelu_erf, 0, 0};
  }
  if (op == "Clip") {
    // min/max are optional constant inputs (the IR normalizes attribute forms to inputs).
    float lo = -INFINITY, hi = INFINITY;
    for (size_t i = 1; i < n.inputs.size() && i < 3; ++i) {
      if (n.inputs[i] == kNoValue) continue;
      const Value& v = g.value(n.inputs[i]);
      const Tensor* t = v.constant ? &*v.constant : (constant_of ? (*constant_of)(n.inputs[i]) : nullptr);
      if (!t || t->dtype() != DType::kFloat32 || t->numel() != 1) return std::nullopt;
      (i == 1 ? lo : hi) = t->data<float>()[0];
    }
    return EltwiseOp{alg::eltwise_clip_v2, lo, hi};
  }
  return std::nullopt;
}

std::optional<dnnl::algorithm> BinaryAlgorithm(const std::string& op) {
  if (op == "Add") return alg::binary_add;
  if (op == "Sub") return alg::binary_sub;
  if (op == "Mul") return alg::binary_mul;
  if (op == "Div") return alg::binary_div;
  if (op == "Max") return alg::binary_max;
  if (op == "Min") return alg::binary_min;
  return std::nullopt;
}

std::vector<int64_t> LeftPad(std::vector<int64_t> dims, int rank) {
  while (static_cast<int>(dims.size()) < rank) dims.insert(dims.begin(), 1);
  return dims;
}

std::optional<std::vector<PostOp>> TranslateEpilogue(const Graph& g, const Node& node, int out_rank, bool fusable_only) {
  std::vector<PostOp> ops;
  const Attr* epi = node.attrs.find(kEpilogueAttr);
  if (epi == nullptr) return ops;
  if (!epi->g) return std::nullopt;
  const Graph& eg = *epi->g;
  const Attr* mi = node.attrs.find(kEpilogueMainInputs);
  const size_t main_inputs = mi ? static_cast<size_t>(mi->i) : node.inputs.size();
  auto order = eg.TopologicalOrder();
  if (!order.ok() || eg.inputs().empty() || eg.outputs().size() != 1) return std::nullopt;
  // Epilogue input k >= 1 is the outer node's input main_inputs + k - 1.
  auto outer_of = [&](ValueId ev) -> ValueId {
    for (size_t k = 1; k < eg.inputs().size(); ++k)
      if (eg.inputs()[k] == ev) {
        const size_t i = main_inputs + k - 1;
        return i < node.inputs.size() ? node.inputs[i] : kNoValue;
      }
    return kNoValue;
  };
  const std::function<const Tensor*(ValueId)> constant_of = [&](ValueId ev) -> const Tensor* {
    if (eg.value(ev).constant) return &*eg.value(ev).constant;
    ValueId o = outer_of(ev);
    if (o != kNoValue && g.value(o).constant) return &*g.value(o).constant;
    return nullptr;
  };
  ValueId chain = eg.inputs()[0], before_unary = kNoValue;
  for (NodeId eid : *order) {
    const Node& e = eg.node(eid);
    if (e.outputs.size() != 1) return std::nullopt;
    if (e.op_type == "HardSigmoid" && !e.inputs.empty() && e.inputs[0] == chain) {
      // max(0, min(1, alpha x + beta)): a linear step and a clip (oneDNN 2.6 has no
      // hardsigmoid algorithm).
      auto a = e.attrs.GetFloat("alpha", 0.2f);
      auto b = e.attrs.GetFloat("beta", 0.5f);
      if (!a.ok() || !b.ok()) return std::nullopt;
      PostOp lin;
      lin.alg = alg::eltwise_linear;
      lin.alpha = *a;
      lin.beta = *b;
      PostOp clip;
      clip.alg = alg::eltwise_clip_v2;
      clip.alpha = 0;
      clip.beta = 1;
      ops.push_back(lin);
      ops.push_back(clip);
      before_unary = chain;
      chain = e.outputs[0];
      continue;
    }
    if (auto u = UnaryAlgorithm(eg, e, &constant_of)) {
      if (e.inputs.empty() || e.inputs[0] != chain) return std::nullopt;
      PostOp p;
      p.alg = u->alg;
      p.alpha = u->alpha;
      p.beta = u->beta;
      ops.push_back(p);
      before_unary = chain;
      chain = e.outputs[0];
      continue;
    }
    auto b = BinaryAlgorithm(e.op_type);
    if (!b || e.inputs.size() != 2) return std::nullopt;
    const int pos = e.inputs[0] == chain ? 0 : (e.inputs[1] == chain ? 1 : -1);
    if (pos < 0 || e.inputs[0] == e.inputs[1]) return std::nullopt;
    const ValueId other = e.inputs[static_cast<size_t>(1 - pos)];
    // x * sigmoid(x): swish.
    if (e.op_type == "Mul" && other == before_unary && !ops.empty() && ops.back().kind == PostOp::Kind::kEltwise &&
        ops.back().alg == alg::eltwise_logistic) {
      ops.back().alg = alg::eltwise_swish;
      ops.back().alpha = 1.0f;
      before_unary = kNoValue;
      chain = e.outputs[0];
      continue;
    }
    const bool commutative = e.op_type == "Add" || e.op_type == "Mul" || e.op_type == "Max" || e.op_type == "Min";
    if (pos == 1 && !commutative && e.op_type != "Sub") return std::nullopt;
    if (pos == 1 && e.op_type == "Sub") {  // other - chain = -(chain) + other
      PostOp neg;
      neg.alg = alg::eltwise_linear;
      neg.alpha = -1;
      ops.push_back(neg);
    }
    const dnnl::algorithm balg = (pos == 1 && e.op_type == "Sub") ? alg::binary_add : *b;
    PostOp p;
    p.kind = PostOp::Kind::kBinary;
    p.alg = balg;
    if (const Tensor* c = constant_of(other)) {
      if (c->dtype() != DType::kFloat32 || c->rank() > out_rank) return std::nullopt;
      p.src1_dims = LeftPad(c->dims(), out_rank);
      p.src1_const.assign(c->data<float>(), c->data<float>() + c->numel());
      if (c->numel() == 1) {  // scalar operand: an eltwise op
        const float v = p.src1_const[0];
        PostOp lin;
        lin.alg = alg::eltwise_linear;
        if (balg == alg::binary_add) { lin.alpha = 1; lin.beta = v; ops.push_back(lin); }
        else if (balg == alg::binary_sub) { lin.alpha = 1; lin.beta = -v; ops.push_back(lin); }
        else if (balg == alg::binary_mul) { lin.alpha = v; lin.beta = 0; ops.push_back(lin); }
        else if (balg == alg::binary_div && v != 0) { lin.alpha = 1.0f / v; lin.beta = 0; ops.push_back(lin); }
        else ops.push_back(p);
      } else {
        ops.push_back(p);
      }
    } else {
      ValueId o = outer_of(other);
      if (o == kNoValue) return std::nullopt;  // an intermediate of the epilogue itself
      const TypeInfo& t = g.value(o).type;
      if (t.dtype != DType::kFloat32 || !t.shape.IsStatic() || t.shape.rank() > out_rank) return std::nullopt;
      p.src1 = o;
      p.src1_dims = LeftPad(t.shape.Sizes(), out_rank);
      ops.push_back(p);
    }
    before_unary = kNoValue;
    chain = e.outputs[0];
  }
  if (chain != eg.outputs()[0]) return std::nullopt;
  if (fusable_only) {
    if (!NormalizePostOps(ops)) return std::nullopt;
  } else {
    FoldLinearPostOps(ops);
  }
  return ops;
}

void FoldLinearPostOps(std::vector<PostOp>& ops) {
  // Consecutive linear steps fold into one: a2 (a1 x + b1) + b2.
  std::vector<PostOp> out;
  for (const PostOp& op : ops) {
    if (!out.empty() && op.kind == PostOp::Kind::kEltwise && op.alg == alg::eltwise_linear &&
        out.back().kind == PostOp::Kind::kEltwise && out.back().alg == alg::eltwise_linear) {
      PostOp& prev = out.back();
      prev.beta = op.alpha * prev.beta + op.beta;
      prev.alpha = op.alpha * prev.alpha;
      continue;
    }
    out.push_back(op);
  }
  ops = std::move(out);
}

bool PostOpsConflict(const std::vector<PostOp>& ops) {
  // oneDNN 2.6's JIT post-op injectors keep one set of parameters per eltwise algorithm:
  // a chain with the same algorithm twice with other parameters computes the wrong thing
  // (e.g. linear(-1, 0) then linear(1, 0.5) gives x). Such chains run elsewhere.
  std::map<dnnl::algorithm, std::pair<float, float>> params;
  for (const PostOp& op : ops) {
    if (op.kind != PostOp::Kind::kEltwise) continue;
    auto [it, fresh] = params.emplace(op.alg, std::make_pair(op.alpha, op.beta));
    if (!fresh && it->second != std::make_pair(op.alpha, op.beta)) return true;
  }
  return false;
}

bool NormalizePostOps(std::vector<PostOp>& ops) {
  std::vector<PostOp> folded = ops;
  FoldLinearPostOps(folded);
  if (PostOpsConflict(folded)) return false;
  ops = std::move(folded);
  return true;
}

std::string MdKey(const dnnl::memory::desc& md) {
  const dnnl_memory_desc_t& m = md.data;
  std::string k = StrCat("md", static_cast<int>(m.data_type), ":", static_cast<int>(m.format_kind), ":", m.offset0);
  for (int i = 0; i < m.ndims; ++i) k += StrCat(",", m.dims[i], "/", m.padded_dims[i], "/", m.padded_offsets[i]);
  if (m.format_kind == dnnl_blocked) {
    const dnnl_blocking_desc_t& b = m.format_desc.blocking;
    for (int i = 0; i < m.ndims; ++i) k += StrCat(";s", b.strides[i]);
    for (int i = 0; i < b.inner_nblks; ++i) k += StrCat(";b", b.inner_blks[i], "@", b.inner_idxs[i]);
  }
  k += StrCat(";x", static_cast<int>(m.extra.flags));
  return k;
}

std::string AttrKey(const dnnl::primitive_attr& attr) {
  std::string k = StrCat("attr", static_cast<int>(attr.get_scratchpad_mode()), ":", static_cast<int>(attr.get_fpmath_mode()));
  int mask = 0;
  std::vector<float> scales;
  attr.get_output_scales(mask, scales);
  k += StrCat(":os", mask);
  char buf[64];
  for (float f : scales) {
    std::snprintf(buf, sizeof buf, ",%a", f);
    k += buf;
  }
  const dnnl::post_ops po = attr.get_post_ops();
  for (int i = 0; i < po.len(); ++i) {
    const dnnl::primitive::kind kind = po.kind(i);
    k += StrCat("|", static_cast<int>(kind));
    dnnl::algorithm alg = dnnl::algorithm::undef;
    float scale = 0, alpha = 0, beta = 0;
    if (kind == dnnl::primitive::kind::eltwise) {
      po.get_params_eltwise(i, scale, alg, alpha, beta);
      // Exact float bits: two parameters that print alike must not share a descriptor.
      std::snprintf(buf, sizeof buf, ":%d:%a:%a:%a", static_cast<int>(alg), scale, alpha, beta);
      k += buf;
    } else if (kind == dnnl::primitive::kind::binary) {
      dnnl::memory::desc md;
      po.get_params_binary(i, alg, md);
      k += StrCat(":", static_cast<int>(alg), ":", MdKey(md));
    } else if (kind == dnnl::primitive::kind::sum) {
      po.get_params_sum(i, scale);
      std::snprintf(buf, sizeof buf, ":%a", scale);
      k += buf;
    } else {
      return "";  // a post-op this key does not describe: no memo
    }
  }
  return k;
}

dnnl::memory::desc BroadcastOperandMd(const std::vector<int64_t>& d, const dnnl::memory::desc* dst) {
  const dnnl::memory::desc plain = PlainMd(d);
  if (dst == nullptr || d.size() < 3 || dst->data.ndims != static_cast<int>(d.size())) return plain;
  const dnnl_memory_desc_t& m = dst->data;
  if (m.format_kind != dnnl_blocked || m.format_desc.blocking.inner_nblks != 1 || m.format_desc.blocking.inner_idxs[0] != 1)
    return plain;
  for (size_t i = 0; i < d.size(); ++i)
    if (i != 1 && d[i] != 1) return plain;
  if (d[1] != m.dims[1] || d[1] % m.format_desc.blocking.inner_blks[0] != 0) return plain;
  const dnnl::memory::format_tag t = BlockedChannelTag(d.size(), m.format_desc.blocking.inner_blks[0]);
  if (t == dnnl::memory::format_tag::undef) return plain;
  dnnl::memory::desc b(ToDnnl(d), dnnl::memory::data_type::f32, t);
  return b.get_size() == plain.get_size() ? b : plain;
}

Status ApplyPostOps(Compiler& c, const std::vector<PostOp>& ops, const std::vector<int64_t>& dst_dims,
                    dnnl::primitive_attr* attr, std::vector<std::pair<int, int>>* slot_args,
                    std::vector<std::pair<int, dnnl::memory>>* const_args, std::vector<int>* reads,
                    const dnnl::memory::desc* dst_md) {
  dnnl::post_ops po;
  for (size_t i = 0; i < ops.size(); ++i) {
    const PostOp& op = ops[i];
    if (op.kind == PostOp::Kind::kEltwise) {
      if (attr != nullptr) po.append_eltwise(1.0f, op.alg, op.alpha, op.beta);
      continue;
    }
    if (op.kind == PostOp::Kind::kSum) {
      if (attr != nullptr) po.append_sum(1.0f);
      continue;
    }
    const int arg = DNNL_ARG_ATTR_MULTIPLE_POST_OP(static_cast<int>(i)) | DNNL_ARG_SRC_1;
    if (op.src1 == kNoValue) {
      dnnl::memory::desc md = BroadcastOperandMd(op.src1_dims, dst_md);
      dnnl::memory m(md, c.program().engine);
      std::memcpy(m.get_data_handle(), op.src1_const.data(), op.src1_const.size() * sizeof(float));
      if (attr != nullptr) po.append_binary(op.alg, md);
      const_args->push_back({arg, m});
      continue;
    }
    int s = c.SlotOf(op.src1);
    const Slot& slot = c.program().slots[static_cast<size_t>(s)];
    if (slot.dims != op.src1_dims) s = c.View(c.Plain(s), op.src1_dims);
    else if (dst_md != nullptr && op.src1_dims == dst_dims && dst_md->data_type() == dnnl::memory::data_type::f32)
      s = c.InLayout(s, *dst_md);
    (void)dst_dims;
    if (attr != nullptr) po.append_binary(op.alg, c.program().slots[static_cast<size_t>(s)].md);
    slot_args->push_back({arg, s});
    reads->push_back(s);
  }
  if (attr != nullptr) attr->set_post_ops(po);
  return Status::OK();
}

std::string PostOpsKey(const std::vector<PostOp>& ops) {
  std::string k;
  char buf[96];
  for (const PostOp& op : ops) {
    std::snprintf(buf, sizeof buf, "|%d:%d:%a:%a:%d", static_cast<int>(op.kind), static_cast<int>(op.alg), op.alpha,
                  op.beta, op.src1 == kNoValue ? 0 : 1);
    k += buf;
    for (int64_t d : op.src1_dims) k += StrCat(",", d);
  }
  return k;
}

}  // namespace kiln::cpu
