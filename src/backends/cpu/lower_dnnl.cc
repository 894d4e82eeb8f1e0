// Lowering of the heavy layers onto oneDNN primitives: convolution (with the tactic
// choice between direct and Winograd), matmul/Gemm, pooling, concat, layer norm, softmax,
// and elementwise ops with their fused epilogues as post-ops.
#include <cmath>
#include <cstring>
#include <set>
#include <sstream>

#include <algorithm>
#include <cstdio>
#include <chrono>

#include "backends/cpu/depthwise.h"
#include "backends/cpu/int8.h"
#include "backends/cpu/lower_util.h"
#include "ir/op_schema.h"
#include "ir/ops/conv_pool_geometry.h"
#include "ir/ops/tensor_geometry.h"

namespace kiln::cpu {

using tag = dnnl::memory::format_tag;
using mdt = dnnl::memory::data_type;

namespace {

dnnl::primitive_attr BaseAttr() {
  dnnl::primitive_attr a;
  a.set_scratchpad_mode(dnnl::scratchpad_mode::user);
  return a;
}

// The post-ops attr that ApplyPostOps would build for `ops` on a destination `dst_md`,
// from descriptors alone (no slots, no reorders): to ask oneDNN which implementation a
// candidate formulation gets before committing to it.
dnnl::primitive_attr TrialAttr(const std::vector<PostOp>& ops, const std::vector<int64_t>& dst_dims,
                               const dnnl::memory::desc& dst_md) {
  dnnl::primitive_attr attr = BaseAttr();
  dnnl::post_ops po;
  for (const PostOp& op : ops) {
    if (op.kind == PostOp::Kind::kEltwise) po.append_eltwise(1.0f, op.alg, op.alpha, op.beta);
    else if (op.kind == PostOp::Kind::kSum) po.append_sum(1.0f);
    else if (op.src1 != kNoValue && op.src1_dims == dst_dims) po.append_binary(op.alg, dst_md);
    else po.append_binary(op.alg, op.src1 == kNoValue ? BroadcastOperandMd(op.src1_dims, &dst_md) : PlainMd(op.src1_dims));
  }
  attr.set_post_ops(po);
  return attr;
}

// The implementation oneDNN picks for a primitive descriptor built by `make`, or "" when
// it has none.
template <typename F>
std::string TrialImpl(F&& make) {
  try {
    return make().impl_info_str();
  } catch (const dnnl::error&) {
    return "";
  }
}

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

std::string ImplName(const dnnl::primitive_desc_base& pd, const char* what) {
  return std::string("onednn:") + what + " " + pd.impl_info_str();
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

// The node's epilogue as post-ops (empty when it has none), registered on `k`.
bool PostOpsFor(Compiler& c, const Node& node, const std::vector<int64_t>& out_dims, dnnl::primitive_attr* attr,
                PrimitiveKernel* k, const dnnl::memory::desc* dst_md = nullptr) {
  auto ops = TranslateEpilogue(c.graph(), node, static_cast<int>(out_dims.size()));
  if (!ops) return false;
  return ApplyPostOps(c, *ops, out_dims, attr, &k->slot_args, &k->const_args, &k->reads, dst_md).ok();
}

// A common activation format of `md`, when it has one (so split parts keep the layout).
std::optional<tag> ActivationTag(const dnnl::memory::desc& md) {
  const int nd = md.data.ndims;
  std::vector<tag> cands;
  if (nd == 4) cands = {tag::nchw, tag::nhwc, tag::nChw16c, tag::nChw8c};
  if (nd == 3) cands = {tag::ncw, tag::nwc, tag::nCw16c, tag::nCw8c};
  if (nd == 5) cands = {tag::ncdhw, tag::ndhwc, tag::nCdhw16c, tag::nCdhw8c};
  if (nd == 2) cands = {tag::nc};
  dnnl::memory::dims dims(md.data.dims, md.data.dims + nd);
  for (tag t : cands)
    if (dnnl::memory::desc(dims, md.data_type(), t) == md) return t;
  return std::nullopt;
}

// Writes `whole` (dims `dims`) into the node's outputs, split along `axis` by `sizes`.
void SplitInto(Compiler& c, const Node& node, int whole, int axis, const std::vector<int64_t>& sizes) {
  const Slot& w = c.program().slots[static_cast<size_t>(whole)];
  const std::vector<int64_t> dims = w.dims;
  const dnnl::memory::desc wmd = w.md;
  auto t = ActivationTag(wmd);
  int64_t start = 0;
  for (size_t k = 0; k < sizes.size(); ++k) {
    std::vector<int64_t> part = dims;
    part[static_cast<size_t>(axis)] = sizes[k];
    dnnl::memory::dims offs(dims.size(), 0);
    offs[static_cast<size_t>(axis)] = start;
    start += sizes[k];
    if (k >= node.outputs.size() || node.outputs[k] == kNoValue) continue;
    dnnl::memory::desc src_md, dst_md;
    int src = whole;
    try {
      src_md = wmd.submemory_desc(ToDnnl(part), offs);
      dst_md = t ? dnnl::memory::desc(ToDnnl(part), wmd.data_type(), *t) : PlainMd(part, wmd.data_type());
    } catch (const dnnl::error&) {
      src = c.Plain(whole);
      src_md = c.program().slots[static_cast<size_t>(src)].md.submemory_desc(ToDnnl(part), offs);
      dst_md = PlainMd(part);
    }
    int view = c.ViewMd(src, src_md, part);
    int out;
    if (auto target = c.ConcatTarget(node.outputs[k], dst_md)) {
      dst_md = target->md;
      out = target->slot;
    } else {
      out = c.NewSlot(node.outputs[k], dst_md, part);
    }
    c.AddReorder(view, out, "split " + c.graph().value(node.outputs[k]).name, "Split");
  }
}

// Output dims of a (possibly horizontally fused) node: output 0, or the whole before the split.
std::vector<int64_t> WholeOutputDims(const Graph& g, const Node& node, int* split_axis, std::vector<int64_t>* sizes) {
  std::vector<int64_t> dims = DimsOf(g, node.outputs[0]);
  *split_axis = -1;
  if (const Attr* s = node.attrs.find(kSplitSizesAttr)) {
    auto ax = node.attrs.GetInt(kSplitAxisAttr, 0);
    *split_axis = ax.ok() ? static_cast<int>(*ax) : 0;
    *sizes = s->ints;
    int64_t total = 0;
    for (int64_t v : s->ints) total += v;
    dims[static_cast<size_t>(*split_axis)] = total;
  }
  return dims;
}

// Registers the output of a primitive: straight into the node's value, or into a whole
// buffer then split.
int OutputSlot(Compiler& c, const Node& node, const dnnl::memory::desc& md, const std::vector<int64_t>& dims, int split_axis) {
  return c.NewSlot(split_axis < 0 ? node.outputs[0] : kNoValue, md, dims);
}

bool OnlyOutput0Used(const Graph& g, const Node& node) {
  for (size_t o = 1; o < node.outputs.size(); ++o)
    if (node.outputs[o] != kNoValue && (!g.value(node.outputs[o]).consumers.empty())) return false;
  for (size_t o = 1; o < node.outputs.size(); ++o)
    for (ValueId v : g.outputs())
      if (v == node.outputs[o]) return false;
  return true;
}

// kiln's depthwise convolution on NHWC slots (depthwise.h).
class DepthwiseKernel : public Kernel {
 public:
  std::unique_ptr<DepthwiseConv> conv;
  int src = -1, dst = -1;
  Status Execute(ExecContext& ctx, int) const override {
    conv->Run(reinterpret_cast<const float*>(ctx.ptrs[static_cast<size_t>(src)]),
              reinterpret_cast<float*>(ctx.ptrs[static_cast<size_t>(dst)]));
    return Status::OK();
  }
};

// The epilogue as in-register activations of the depthwise kernel, or nullopt when some
// step is not one it has (binary operands, residual sums, other algorithms).
std::optional<std::vector<DwActivation>> DwActivations(const std::vector<PostOp>& ops) {
  std::vector<DwActivation> out;
  for (const PostOp& op : ops) {
    if (op.kind != PostOp::Kind::kEltwise) return std::nullopt;
    switch (op.alg) {
      case dnnl::algorithm::eltwise_relu:
        out.push_back({DwActivation::Kind::kRelu, op.alpha, 0});
        break;
      case dnnl::algorithm::eltwise_clip:
      case dnnl::algorithm::eltwise_clip_v2:
        out.push_back({DwActivation::Kind::kClip, op.alpha, op.beta});
        break;
      case dnnl::algorithm::eltwise_bounded_relu:
        out.push_back({DwActivation::Kind::kClip, 0, op.alpha});
        break;
      case dnnl::algorithm::eltwise_linear:
        out.push_back({DwActivation::Kind::kLinear, op.alpha, op.beta});
        break;
      case dnnl::algorithm::eltwise_hardswish:
        out.push_back({DwActivation::Kind::kHardSwish, 0, 0});
        break;
      default:
        return std::nullopt;
    }
  }
  return out;
}

}  // namespace

StatusOr<bool> LowerConv(Compiler& c, NodeId id) {
  const Graph& g = c.graph();
  const Node& node = g.node(id);
  if (node.op_type != "Conv") return false;
  const Node main = MainPartOf(node);
  if (main.inputs.size() < 2 || !IsF32(g, main.inputs[0]) || !IsF32(g, main.inputs[1])) return false;
  const Value& wv = g.value(main.inputs[1]);
  if (!wv.constant) return false;
  const Tensor& w = *wv.constant;
  const Tensor* bias = nullptr;
  if (main.inputs.size() > 2 && main.inputs[2] != kNoValue) {
    const Value& bv = g.value(main.inputs[2]);
    if (!bv.constant || bv.constant->dtype() != DType::kFloat32) return false;
    bias = &*bv.constant;
  }
  const std::vector<int64_t> x_dims = DimsOf(g, main.inputs[0]);
  const int rank = static_cast<int>(x_dims.size()), spatial = rank - 2;
  if (spatial < 1 || spatial > 3 || w.rank() != rank) return false;
  KILN_ASSIGN_OR_RETURN(int64_t group, main.attrs.GetInt("group", 1));
  std::vector<int64_t> kernel(w.dims().begin() + 2, w.dims().end());
  KILN_ASSIGN_OR_RETURN(WindowGeometry geo, ReadWindowGeometry(main.attrs, spatial, kernel));
  int split_axis;
  std::vector<int64_t> split_sizes;
  const std::vector<int64_t> out_dims = WholeOutputDims(g, node, &split_axis, &split_sizes);
  dnnl::memory::dims strides, dil, pl, pr;
  for (int i = 0; i < spatial; ++i) {
    KILN_ASSIGN_OR_RETURN(int64_t o, WindowOutputSize(geo, i, x_dims[static_cast<size_t>(i + 2)]));
    if (o != out_dims[static_cast<size_t>(i + 2)]) return false;
    const int64_t s = geo.strides[static_cast<size_t>(i)], d = geo.dilations[static_cast<size_t>(i)];
    const int64_t ext = (kernel[static_cast<size_t>(i)] - 1) * d + 1;
    const int64_t left = geo.pads[static_cast<size_t>(i)];
    const int64_t right = (o - 1) * s + ext - x_dims[static_cast<size_t>(i + 2)] - left;
    strides.push_back(s);
    dil.push_back(d - 1);
    pl.push_back(left);
    pr.push_back(right);
  }
  const int64_t oc = w.dim(0), icg = w.dim(1);
  dnnl::memory::dims wdims;
  if (group == 1) {
    wdims = ToDnnl(w.dims());
  } else {
    wdims = {group, oc / group, icg};
    wdims.insert(wdims.end(), kernel.begin(), kernel.end());
  }
  auto k = std::make_unique<PrimitiveKernel>();
  dnnl::primitive_attr attr = BaseAttr();
  auto ops = TranslateEpilogue(g, node, static_cast<int>(out_dims.size()));
  if (!ops) return false;
  // A residual add of a full-size activation: oneDNN's sum post-op (dst += conv(x)) with the
  // residual's bytes already in dst. Binary post-ops with a full-tensor operand push oneDNN
  // off its fast convolutions (onto gemm-based ones, 5-10x slower), the sum keeps them.
  ValueId residual = kNoValue;
  if (split_axis < 0) {
    for (PostOp& op : *ops) {
      if (op.kind == PostOp::Kind::kBinary && op.alg == dnnl::algorithm::binary_add && op.src1 != kNoValue &&
          op.src1_dims == out_dims && IsF32(g, op.src1) && DimsOf(g, op.src1) == out_dims) {
        residual = op.src1;
        op.kind = PostOp::Kind::kSum;
        break;
      }
    }
  }
  const bool bf16 = c.Bf16(node);
  // INT8 (a calibrated layer): u8/s8 input, s8 weights per output channel, output float or,
  // when every reader is an INT8 convolution, already quantized for them.
  std::optional<Int8ConvParams> q8;
  Tensor wrm;  // INT8: the row-major float weights
  if (const std::optional<Int8Quant> in8 = Int8InputOf(node); in8 && !bf16) {
    std::optional<Int8Quant> out8;
    if (residual == kNoValue && split_axis < 0) out8 = Int8OutputFor(g, node.outputs[0]);
    KILN_ASSIGN_OR_RETURN(wrm, RowMajorWeights(node, w));
    q8 = PrepareInt8Conv(*in8, wrm, bias, out8, /*quantize_weights=*/false);
    if (q8->out) {
      // The output scale applies after the epilogue: folded into the output scales when every
      // step commutes with a positive scale (ReLU), else one more (linear) post-op.
      bool homogeneous = true;
      for (const PostOp& op : *ops)
        homogeneous = homogeneous && op.kind == PostOp::Kind::kEltwise && op.alg == dnnl::algorithm::eltwise_relu &&
                      op.alpha == 0;
      if (!homogeneous) {
        for (float& s : q8->out_scales) s *= q8->out->scale;  // back to real units
        PostOp lin;
        lin.alg = dnnl::algorithm::eltwise_linear;
        lin.alpha = 1.0f / q8->out->scale;
        ops->push_back(lin);
      }
    }
  }
  if (residual != kNoValue && ops->front().kind != PostOp::Kind::kSum) {
    // oneDNN's AVX2 convolutions take the sum post-op only first (sum, then activation):
    // Conv + Relu + residual Add (U^2-Net's RSU blocks) would get ref:any. Then the residual
    // goes in as a binary add post-op, which they take anywhere.
    const mdt dt = bf16 ? mdt::bf16 : mdt::f32;
    const dnnl::memory::desc s_any(ToDnnl(x_dims), dt, tag::any), d_any(ToDnnl(out_dims), dt, tag::any),
        wa(wdims, dt, tag::any), bm({oc}, mdt::f32, tag::x);
    auto trial = TrialAttr(*ops, out_dims, PlainMd(out_dims));
    const std::string impl = TrialImpl([&] {
      auto d = bias ? dnnl::convolution_forward::desc(dnnl::prop_kind::forward_inference, dnnl::algorithm::convolution_direct,
                                                      s_any, wa, bm, d_any, strides, dil, pl, pr)
                    : dnnl::convolution_forward::desc(dnnl::prop_kind::forward_inference, dnnl::algorithm::convolution_direct,
                                                      s_any, wa, d_any, strides, dil, pl, pr);
      return dnnl::convolution_forward::primitive_desc(d, trial, c.program().engine);
    });
    if (impl.empty() || IsReferenceImpl(impl)) {
      for (PostOp& op : *ops)
        if (op.kind == PostOp::Kind::kSum) op.kind = PostOp::Kind::kBinary;
      residual = kNoValue;
    }
  }
  KILN_RETURN_IF_ERROR(ApplyPostOps(c, *ops, out_dims, &attr, &k->slot_args, &k->const_args, &k->reads));
  if (q8) attr.set_output_scales(q8->out_scales.size() > 1 ? 1 << 1 : 0, q8->out_scales);
  const mdt act = bf16 ? mdt::bf16 : mdt::f32;
  auto int8_type = [](const Int8Quant& qq) { return qq.is_unsigned ? mdt::u8 : mdt::s8; };
  const mdt src_t = q8 ? int8_type(q8->in) : act, dst_t = q8 && q8->out ? int8_type(*q8->out) : act;
  const dnnl::memory::desc src_any(ToDnnl(x_dims), src_t, tag::any), dst_any(ToDnnl(out_dims), dst_t, tag::any);
  const dnnl::memory::desc w_any(wdims, q8 ? mdt::s8 : act, tag::any), b_md({oc}, mdt::f32, tag::x);
  struct Candidate {
    const char* name;
    dnnl::algorithm alg;
  };
  std::vector<Candidate> cands = {{"direct", dnnl::algorithm::convolution_direct}};
  const bool wino_shape = !bf16 && !q8 && spatial == 2 && group == 1 && kernel[0] == 3 && kernel[1] == 3 && strides[0] == 1 &&
                          strides[1] == 1 && dil[0] == 0 && dil[1] == 0;
  if (wino_shape) cands.push_back({"winograd", dnnl::algorithm::convolution_winograd});
  // A tactic recorded in the graph (a plan built earlier) is taken as is.
  std::string forced;
  if (const Attr* t = node.attrs.find("kiln.tactic")) forced = t->s;
  std::vector<int> timing_args = {DNNL_ARG_SRC, DNNL_ARG_WEIGHTS, DNNL_ARG_DST};
  if (bias) timing_args.push_back(DNNL_ARG_BIAS);
  for (const auto& [arg, s] : k->slot_args) timing_args.push_back(arg);
  for (const auto& [arg, m] : k->const_args) timing_args.push_back(arg);
  std::optional<dnnl::convolution_forward::primitive_desc> best;
  const char* best_name = "";
  double best_ms = 0;
  int viable = 0;
  auto make_pd = [&](dnnl::algorithm alg, const dnnl::memory::desc& dst_md) {
    std::optional<dnnl::convolution_forward::primitive_desc> pd;
    try {
      auto d = bias ? dnnl::convolution_forward::desc(dnnl::prop_kind::forward_inference, alg, src_any, w_any, b_md,
                                                      dst_md, strides, dil, pl, pr)
                    : dnnl::convolution_forward::desc(dnnl::prop_kind::forward_inference, alg, src_any, w_any,
                                                      dst_md, strides, dil, pl, pr);
      pd.emplace(d, attr, c.program().engine);
    } catch (const dnnl::error&) {
    }
    return pd;
  };
  dnnl::algorithm best_alg = dnnl::algorithm::convolution_direct;
  // Timings are keyed by the layer's problem and the candidate (the timing cache).
  auto timed = [&](const char* name, const std::function<std::function<void()>()>& prepare) {
    std::ostringstream key;
    key << "conv " << name << " x" << DimsToString(x_dims) << " w" << DimsToString(w.dims()) << " g" << group
        << " s" << DimsToString(std::vector<int64_t>(strides.begin(), strides.end())) << " p"
        << DimsToString(std::vector<int64_t>(pl.begin(), pl.end()))
        << DimsToString(std::vector<int64_t>(pr.begin(), pr.end())) << " d"
        << DimsToString(std::vector<int64_t>(dil.begin(), dil.end())) << " post" << attr.get_post_ops().len()
        << " t" << c.program().threads << (bf16 ? " bf16" : "") << (q8 ? (q8->out ? " int8>int8" : " int8") : "");
    return c.TimeTactic(key.str(), prepare);
  };
  // kiln's own depthwise kernel competes for depthwise layers whose epilogue it can apply
  // (not for a plan's layers without a recorded tactic: those keep oneDNN's, untimed).
  const bool from_plan = node.attrs.has("kiln.precision");
  std::optional<std::vector<DwActivation>> dw_acts;
  if (!bf16 && !q8 && spatial == 2 && group > 1 && group == oc && icg == 1 && oc == x_dims[1] && residual == kNoValue &&
      split_axis < 0 && (forced == "kiln_dw" || (forced.empty() && !from_plan && c.timing())))
    dw_acts = DwActivations(*ops);
  const bool kiln_dw_candidate = dw_acts.has_value();
  // A plan's "kiln_dw" still gets oneDNN's direct kernel ready, for a CPU without AVX2.
  const std::string forced_dnnl = forced == "kiln_dw" ? "direct" : forced;
  // The candidates oneDNN implements on this CPU (Winograd is AVX-512 only): timed only
  // when there is a choice.
  std::vector<std::pair<const Candidate*, dnnl::convolution_forward::primitive_desc>> viable_pds;
  for (const Candidate& cand : cands) {
    if (!forced_dnnl.empty() && forced_dnnl != cand.name) continue;
    if (auto pd = make_pd(cand.alg, dst_any)) viable_pds.emplace_back(&cand, *pd);
  }
  for (auto& [cand_ptr, pd_value] : viable_pds) {
    const Candidate& cand = *cand_ptr;
    std::optional<dnnl::convolution_forward::primitive_desc> pd = pd_value;
    ++viable;
    double ms = 0;
    if (c.timing() && forced.empty() && (viable_pds.size() > 1 || kiln_dw_candidate))
      ms = timed(cand.name, [&] { return c.PrimitiveRunner(dnnl::convolution_forward(*pd), *pd, timing_args); });
    if (!best || ms < best_ms) {
      best = pd;
      best_name = cand.name;
      best_ms = ms;
      best_alg = cand.alg;
    }
  }
  if (kiln_dw_candidate) {
    DwShape ds;
    ds.n = x_dims[0];
    ds.c = oc;
    ds.ih = x_dims[2];
    ds.iw = x_dims[3];
    ds.oh = out_dims[2];
    ds.ow = out_dims[3];
    ds.kh = kernel[0];
    ds.kw = kernel[1];
    ds.sh = strides[0];
    ds.sw = strides[1];
    ds.dh = dil[0] + 1;
    ds.dw = dil[1] + 1;
    ds.pt = pl[0];
    ds.pl = pl[1];
    KILN_ASSIGN_OR_RETURN(Tensor wrm, RowMajorWeights(node, w));
    auto dw = DepthwiseConv::Create(ds, wrm.data<float>(), bias ? bias->data<float>() : nullptr, *dw_acts);
    if (dw) {
      double ms = 0;
      if (forced.empty()) {
        ms = timed("kiln_dw", [&]() -> std::function<void()> {
          auto xs = std::make_shared<std::vector<float>>(static_cast<size_t>(Numel(x_dims)), 0.0f);
          auto ys = std::make_shared<std::vector<float>>(static_cast<size_t>(Numel(out_dims)));
          DepthwiseConv* k = dw.get();
          return [k, xs, ys] { k->Run(xs->data(), ys->data()); };
        });
      }
      // Only when clearly faster: a tie goes to oneDNN (timings on this machine are noisy).
      if (!forced.empty() || !best || ms < 0.95 * best_ms) {
        auto k2 = std::make_unique<DepthwiseKernel>();
        const dnnl::memory::desc nhwc_in(ToDnnl(x_dims), mdt::f32, tag::nhwc), nhwc_out(ToDnnl(out_dims), mdt::f32, tag::nhwc);
        k2->src = c.InLayout(c.SlotOf(main.inputs[0]), nhwc_in);
        k2->dst = OutputSlot(c, node, nhwc_out, out_dims, split_axis);
        k2->reads = {k2->src};
        k2->writes = {k2->dst};
        k2->info = {node.name, node.op_type, std::string("kiln:dw_nhwc ") + dw->isa(), "kiln_dw", ms, id, ""};
        k2->conv = std::move(dw);
        c.AddKernel(std::move(k2));
        return true;
      }
    }
  }
  if (!best) return false;
  // Concat elimination: when the only reader of the output is a channel Concat, write
  // straight into the concat's buffer (same primitive, a strided destination).
  std::optional<Compiler::ConcatPart> part;
  if (residual == kNoValue && split_axis < 0 && !(q8 && q8->out)) {
    part = c.ConcatTarget(node.outputs[0], best->dst_desc());
    if (part) {
      // Only when the same implementation takes the strided destination (oneDNN falls back
      // to its slow reference convolution for some).
      auto in_place = make_pd(best_alg, part->md);
      if (in_place && std::string(in_place->impl_info_str()) == best->impl_info_str()) best = in_place;
      else part.reset();
    }
  }
  const auto& pd = *best;
  k->prim = dnnl::convolution_forward(pd);
  const int src = q8 ? c.Quantized(c.SlotOf(main.inputs[0]), pd.src_desc(), q8->in.scale)
                     : c.InLayout(c.SlotOf(main.inputs[0]), pd.src_desc());
  dnnl::memory::desc w_from = group == 1 ? PlainMd(w.dims()) : PlainMd(std::vector<int64_t>(wdims.begin(), wdims.end()));
  const void* w_data = w.raw_data();
  if (node.attrs.has(kPackedMdAttr)) {  // a plan's weights, stored in a kernel layout already
    KILN_ASSIGN_OR_RETURN(PackedSource src, PackedWeightsSource(node, w));
    w_from = src.md;
    w_data = src.data;
  }
  dnnl::memory wmem;
  if (q8) {
    // A plan's INT8 kernel copy in place, else the weights quantized here (this function's
    // buffer: always copied into the kernel's layout).
    if (std::optional<dnnl::memory> kc = c.KernelCopy(node, pd.weights_desc())) {
      wmem = *kc;
    } else {
      QuantizeConvWeights(wrm, &*q8);
      wmem = c.ConstantMemory(q8->weights.data(), PlainMd(std::vector<int64_t>(wdims.begin(), wdims.end()), mdt::s8),
                              pd.weights_desc());
      c.program().weights_repacked_bytes += static_cast<int64_t>(pd.weights_desc().get_size());
    }
    // The plan keeps the float weights and this INT8 copy (a form that cannot be turned back).
    if (g.value(main.inputs[1]).consumers.size() == 1) {
      k->packed_value = main.inputs[1];
      k->packed = wmem;
      k->packed_relayout = false;
    }
  } else {
    wmem = c.WeightsMemory(node, w_data, w_from, pd.weights_desc());
  }
  k->const_args.push_back({DNNL_ARG_WEIGHTS, wmem});
  // Packable into a plan: the constant is this layer's alone.
  if (!q8 && g.value(main.inputs[1]).consumers.size() == 1) {
    bool output = false;
    for (ValueId o : g.outputs()) output = output || o == main.inputs[1];
    if (!output) {
      k->packed_value = main.inputs[1];
      k->packed = wmem;
      const dnnl::memory::desc& wd = pd.weights_desc();
      k->packed_relayout = wd.data.format_kind == dnnl_blocked && wd.data_type() == mdt::f32;
    }
  }
  if (bias && q8) k->const_args.push_back({DNNL_ARG_BIAS, c.ConstantMemory(q8->bias.data(), b_md, pd.bias_desc())});
  else if (bias) k->const_args.push_back({DNNL_ARG_BIAS, c.ConstantMemory(*bias, b_md, pd.bias_desc())});
  int dst;
  if (residual != kNoValue) {
    // Accumulate into the residual's buffer when this layer is its last reader (no copy),
    // else into a copy of it.
    const int r = c.SlotOf(residual);
    // (Never when the convolution reads that same buffer: x + conv(x) with x's last use.)
    if (c.program().slots[static_cast<size_t>(r)].md == pd.dst_desc() && c.IsLastUse(residual, id) &&
        c.program().Root(r) != c.program().Root(src)) {
      dst = r;
      c.TakeOverSlot(residual, node.outputs[0]);
    } else {
      dst = c.CopyTo(r, pd.dst_desc());
      c.SetValueSlot(node.outputs[0], dst);
    }
    k->reads.push_back(dst);
  } else if (part) {
    dst = part->slot;
  } else if (q8 && q8->out) {
    dst = c.NewSlot(node.outputs[0], pd.dst_desc(), out_dims, q8->out->is_unsigned ? DType::kUInt8 : DType::kInt8);
    c.program().slots[static_cast<size_t>(dst)].qscale = q8->out->scale;
  } else {
    dst = OutputSlot(c, node, pd.dst_desc(), out_dims, split_axis);
  }
  k->slot_args.push_back({DNNL_ARG_SRC, src});
  k->slot_args.push_back({DNNL_ARG_DST, dst});
  k->reads.push_back(src);
  k->writes.push_back(dst);
  k->info = {node.name, node.op_type, ImplName(pd, "conv"), viable > 1 || !forced.empty() || kiln_dw_candidate ? best_name : "", best_ms, id,
             bf16 ? "bf16" : q8 ? "int8" : ""};
  c.AddKernel(std::move(k));
  if (split_axis >= 0) SplitInto(c, node, dst, split_axis, split_sizes);
  return true;
}

StatusOr<bool> LowerMatMul(Compiler& c, NodeId id) {
  const Graph& g = c.graph();
  const Node& node = g.node(id);
  const bool gemm = node.op_type == "Gemm";
  if (node.op_type != "MatMul" && !gemm) return false;
  const Node main = MainPartOf(node);
  if (main.inputs.size() < 2 || !IsF32(g, main.inputs[0]) || !IsF32(g, main.inputs[1])) return false;
  int split_axis;
  std::vector<int64_t> split_sizes;
  const std::vector<int64_t> out_dims = WholeOutputDims(g, node, &split_axis, &split_sizes);
  std::vector<int64_t> a_dims = DimsOf(g, main.inputs[0]), b_dims = DimsOf(g, main.inputs[1]);
  if (a_dims.size() < 2 || b_dims.size() < 2) return false;
  const Value& bv = g.value(main.inputs[1]);
  const int out_rank = static_cast<int>(out_dims.size());
  auto ops = TranslateEpilogue(g, node, out_rank);
  if (!ops) return false;
  float alpha = 1, beta = 1;
  const Tensor* gemm_c = nullptr;
  bool trans_b = false;
  if (gemm) {
    KILN_ASSIGN_OR_RETURN(int64_t ta, main.attrs.GetInt("transA", 0));
    KILN_ASSIGN_OR_RETURN(int64_t tb, main.attrs.GetInt("transB", 0));
    KILN_ASSIGN_OR_RETURN(alpha, main.attrs.GetFloat("alpha", 1.0f));
    KILN_ASSIGN_OR_RETURN(beta, main.attrs.GetFloat("beta", 1.0f));
    if (ta != 0 || !bv.constant) return false;
    trans_b = tb != 0;
    if (main.inputs.size() > 2 && main.inputs[2] != kNoValue) {
      const Value& cv = g.value(main.inputs[2]);
      if (!cv.constant || cv.constant->dtype() != DType::kFloat32) return false;
      gemm_c = &*cv.constant;
    }
  }
  auto k = std::make_unique<PrimitiveKernel>();
  // Constant 2-D weights: fold the batch dims of A into M, so the weights pack once.
  const bool const_w = bv.constant.has_value() && b_dims.size() == 2;
  std::vector<int64_t> src_dims, w_dims, dst_dims;
  const int64_t k_dim = trans_b ? b_dims[0] : b_dims[1];
  (void)k_dim;
  if (const_w) {
    const int64_t kk = a_dims.back(), n = out_dims.back();
    src_dims = {Numel(a_dims) / kk, kk};
    w_dims = {kk, n};
    dst_dims = {Numel(out_dims) / n, n};
    // Binary operands must map onto the 2-D output: full shape, or broadcast along rows.
    for (PostOp& op : *ops) {
      if (op.kind != PostOp::Kind::kBinary) continue;
      if (op.src1_dims == out_dims) {
        op.src1_dims = dst_dims;
      } else {
        for (size_t i = 0; i + 1 < op.src1_dims.size(); ++i)
          if (op.src1_dims[i] != 1) return false;
        op.src1_dims = {1, op.src1_dims.back()};
      }
    }
  } else {
    if (bv.constant && b_dims.size() != 2) { /* batched constant weights: plain */ }
    src_dims = LeftPad(a_dims, out_rank);
    w_dims = LeftPad(b_dims, out_rank);
    dst_dims = out_dims;
  }
  dnnl::primitive_attr attr = BaseAttr();
  std::vector<PostOp> all_ops;
  std::vector<float> bias_data;
  std::vector<int64_t> bias_dims;
  if (gemm_c) {
    // beta * C: the matmul bias when it broadcasts along rows, else a binary post-op first.
    std::vector<float> cdata(gemm_c->data<float>(), gemm_c->data<float>() + gemm_c->numel());
    for (float& v : cdata) v *= beta;
    std::vector<int64_t> cd = LeftPad(gemm_c->dims(), 2);
    if (cd[0] == 1) {
      bias_data = cdata;
      bias_dims = {1, cd[1]};
      if (cd[1] != dst_dims[1] && cd[1] != 1) return false;
      if (cd[1] == 1) {  // a scalar bias: broadcast it over N
        bias_data.assign(static_cast<size_t>(dst_dims[1]), cdata[0]);
        bias_dims = {1, dst_dims[1]};
      }
    } else {
      PostOp p;
      p.kind = PostOp::Kind::kBinary;
      p.alg = dnnl::algorithm::binary_add;
      p.src1_dims = cd;
      p.src1_const = cdata;
      all_ops.push_back(p);
    }
  }
  all_ops.insert(all_ops.end(), ops->begin(), ops->end());
  // A per-column constant added first (PyTorch's Linear exported as MatMul + Add): the
  // matmul's own bias rather than a binary post-op (~8 % faster with an activation after).
  if (bias_data.empty() && !all_ops.empty() && dst_dims.size() == 2) {
    const PostOp& f = all_ops.front();
    const int64_t n = dst_dims[1];
    const Tensor* t = f.src1 != kNoValue && g.value(f.src1).constant ? &*g.value(f.src1).constant : nullptr;
    if (f.kind == PostOp::Kind::kBinary && f.alg == dnnl::algorithm::binary_add && f.src1_dims.size() == 2 &&
        f.src1_dims[0] == 1 && f.src1_dims[1] == n) {
      if (t != nullptr && t->dtype() == DType::kFloat32 && t->numel() == n) {
        bias_data.assign(t->data<float>(), t->data<float>() + n);
      } else if (t == nullptr && f.src1 == kNoValue && static_cast<int64_t>(f.src1_const.size()) == n) {
        bias_data = f.src1_const;
      }
      if (!bias_data.empty()) {
        bias_dims = {1, n};
        all_ops.erase(all_ops.begin());
      }
    }
  }
  if (!NormalizePostOps(all_ops)) return false;
  KILN_RETURN_IF_ERROR(ApplyPostOps(c, all_ops, dst_dims, &attr, &k->slot_args, &k->const_args, &k->reads));
  // BF16 for constant weights only (activation x activation products stay FP32).
  const bool bf16 = const_w && c.Bf16(node);
  const mdt act = bf16 ? mdt::bf16 : mdt::f32;
  // INT8 (a calibrated layer with constant 2-D weights): u8/s8 A, s8 weights per output
  // column, float output through the output scales.
  std::optional<Int8Quant> in8;
  std::vector<float> wf, ws;  // INT8: alpha * B as [K, N], per-column scales
  if (const_w && !bf16) in8 = Int8InputOf(node);
  if (in8) {
    const Tensor& bt = *bv.constant;
    const int64_t kk = w_dims[0], n = w_dims[1];
    wf.resize(static_cast<size_t>(kk * n));
    const float* b = bt.data<float>();
    for (int64_t r = 0; r < kk; ++r)
      for (int64_t col = 0; col < n; ++col)
        wf[static_cast<size_t>(r * n + col)] = alpha * (trans_b ? b[col * kk + r] : b[r * n + col]);
    ws.assign(static_cast<size_t>(n), 0.0f);
    std::vector<float> oscales(static_cast<size_t>(n));
    for (int64_t r = 0; r < kk; ++r)
      for (int64_t col = 0; col < n; ++col)
        ws[static_cast<size_t>(col)] = std::max(ws[static_cast<size_t>(col)], std::fabs(wf[static_cast<size_t>(r * n + col)]));
    for (float& v : ws) v = v > 0 ? v / 127.0f : 1.0f;
    for (int64_t col = 0; col < n; ++col) oscales[static_cast<size_t>(col)] = in8->scale * ws[static_cast<size_t>(col)];
    // oneDNN 2.x adds the bias to the int32 accumulator before the output scales.
    if (!bias_data.empty())
      for (size_t col = 0; col < bias_data.size(); ++col) bias_data[col] /= oscales[col % oscales.size()];
    attr.set_output_scales(1 << 1, oscales);
  }
  const dnnl::memory::desc src_md = PlainMd(src_dims, in8 ? (in8->is_unsigned ? mdt::u8 : mdt::s8) : act),
                           dst_md = PlainMd(dst_dims, act);
  dnnl::memory::desc w_md = const_w ? dnnl::memory::desc(ToDnnl(w_dims), in8 ? mdt::s8 : act, tag::any) : PlainMd(w_dims);
  // Tactic for constant FP32 weights: the layout oneDNN picks ("any") or an explicit
  // row-major or transposed one, timed on this CPU. On AVX2, oneDNN's gemm with [K, N]
  // weights whose row is a multiple of 4 KiB (N = 3072: ViT's MLP) runs at half the speed
  // of the transposed layout; on other CPUs and shapes "any" wins. A plan's choice is kept.
  std::string mm_tactic;
  double mm_tactic_ms = 0;
  int mm_viable = 0;
  if (const_w && !bf16 && !in8) {
    std::string forced;
    if (const Attr* t = node.attrs.find("kiln.tactic")) forced = t->s;
    const std::pair<const char*, tag> cands[] = {{"w_any", tag::any}, {"w_ab", tag::ab}, {"w_ba", tag::ba}};
    std::vector<int> timing_args = {DNNL_ARG_SRC, DNNL_ARG_WEIGHTS, DNNL_ARG_DST};
    if (!bias_data.empty()) timing_args.push_back(DNNL_ARG_BIAS);
    for (const auto& [arg, sl] : k->slot_args) timing_args.push_back(arg);
    for (const auto& [arg, m] : k->const_args) timing_args.push_back(arg);
    double best = -1;
    for (const auto& [name, t] : cands) {
      if (!forced.empty() && forced != name) continue;
      const dnnl::memory::desc wm(ToDnnl(w_dims), act, t);
      std::optional<dnnl::matmul::primitive_desc> trial;
      try {
        if (!bias_data.empty())
          trial.emplace(dnnl::matmul::desc(src_md, wm, PlainMd(bias_dims), dst_md), attr, c.program().engine);
        else
          trial.emplace(dnnl::matmul::desc(src_md, wm, dst_md), attr, c.program().engine);
      } catch (const dnnl::error&) {
        continue;
      }
      if (IsReferenceImpl(trial->impl_info_str())) continue;
      ++mm_viable;
      double ms = 0;
      if (forced.empty() && c.timing()) {
        std::ostringstream key;
        key << "matmul " << name << " m" << src_dims[0] << " k" << src_dims[1] << " n" << w_dims[1] << " b"
            << !bias_data.empty() << " post" << attr.get_post_ops().len() << " t" << c.program().threads;
        ms = c.TimeTactic(key.str(), [&] { return c.PrimitiveRunner(dnnl::matmul(*trial), *trial, timing_args); });
      }
      if (best < 0 || ms < best) {
        best = ms;
        w_md = wm;
        mm_tactic = name;
        mm_tactic_ms = ms;
      }
      if (!c.timing() && forced.empty()) break;  // untimed: oneDNN's own choice
    }
  }
  std::optional<dnnl::matmul::primitive_desc> pd;
  if (!bias_data.empty()) {
    const dnnl::memory::desc b_md = PlainMd(bias_dims);
    pd.emplace(dnnl::matmul::desc(src_md, w_md, b_md, dst_md), attr, c.program().engine);
    dnnl::memory bm(b_md, c.program().engine);
    std::memcpy(bm.get_data_handle(), bias_data.data(), bias_data.size() * sizeof(float));
    k->const_args.push_back({DNNL_ARG_BIAS, bm});
  } else {
    pd.emplace(dnnl::matmul::desc(src_md, w_md, dst_md), attr, c.program().engine);
  }
  k->prim = dnnl::matmul(*pd);
  int a_slot = c.View(c.Plain(c.SlotOf(main.inputs[0])), src_dims);
  if (bf16) a_slot = c.InLayout(a_slot, src_md);
  if (in8) a_slot = c.Quantized(a_slot, src_md, in8->scale);
  k->slot_args.push_back({DNNL_ARG_SRC, a_slot});
  k->reads.push_back(a_slot);
  if (const_w) {
    const Tensor& bt = *bv.constant;
    std::vector<float> scaled;
    const Tensor* wt = &bt;
    Tensor tmp;
    if (alpha != 1.0f) {
      tmp = bt.Clone();
      for (float& v : tmp.span<float>()) v *= alpha;
      wt = &tmp;
    }
    const dnnl::memory::desc from = trans_b ? dnnl::memory::desc(ToDnnl(w_dims), mdt::f32, tag::ba) : PlainMd(w_dims);
    dnnl::memory wmem;
    if (!in8) {
      wmem = c.WeightsMemory(node, wt->raw_data(), from, pd->weights_desc());
    } else if (std::optional<dnnl::memory> kc = c.KernelCopy(node, pd->weights_desc())) {
      wmem = *kc;  // a plan's INT8 copy
    } else {
      const size_t n = ws.size();
      std::vector<int8_t> w8(wf.size());
      for (size_t i = 0; i < wf.size(); ++i)
        w8[i] = static_cast<int8_t>(std::clamp(std::nearbyint(wf[i] / ws[i % n]), -127.0f, 127.0f));
      wmem = c.ConstantMemory(w8.data(), PlainMd(w_dims, mdt::s8), pd->weights_desc());
      c.program().weights_repacked_bytes += static_cast<int64_t>(pd->weights_desc().get_size());
    }
    if (wt == &tmp && wmem.get_data_handle() == tmp.raw_data())  // in place over the scaled copy: keep it
      wmem = c.ConstantMemory(tmp.raw_data(), wmem.get_desc(), wmem.get_desc());
    k->const_args.push_back({DNNL_ARG_WEIGHTS, wmem});
    // A plan may store them as the kernel reads them (a kernel copy: transposed, scaled).
    if (bv.consumers.size() == 1 &&
        std::find(g.outputs().begin(), g.outputs().end(), main.inputs[1]) == g.outputs().end()) {
      k->packed_value = main.inputs[1];
      k->packed = wmem;
    }
  } else {
    const int b_slot = c.View(c.Plain(c.SlotOf(main.inputs[1])), w_dims);
    k->slot_args.push_back({DNNL_ARG_WEIGHTS, b_slot});
    k->reads.push_back(b_slot);
  }
  const int whole = c.NewSlot(split_axis < 0 ? node.outputs[0] : kNoValue, PlainMd(out_dims, act), out_dims);
  const int dst = c.View(whole, dst_dims);
  k->slot_args.push_back({DNNL_ARG_DST, dst});
  k->writes.push_back(dst);
  k->info = {node.name, node.op_type, ImplName(*pd, "matmul"), mm_viable > 1 || node.attrs.has("kiln.tactic") ? mm_tactic : "",
             mm_tactic_ms, id, bf16 ? "bf16" : in8 ? "int8" : ""};
  c.AddKernel(std::move(k));
  if (split_axis >= 0) SplitInto(c, node, whole, split_axis, split_sizes);
  return true;
}

StatusOr<bool> LowerPool(Compiler& c, NodeId id) {
  const Graph& g = c.graph();
  const Node& node = g.node(id);
  const std::string& op = node.op_type;
  const bool global = op == "GlobalAveragePool" || op == "GlobalMaxPool";
  if (op != "MaxPool" && op != "AveragePool" && !global) return false;
  const Node main = MainPartOf(node);
  if (main.inputs.empty() || !IsF32(g, main.inputs[0]) || !OnlyOutput0Used(g, node) || node.attrs.has(kSplitSizesAttr))
    return false;
  const std::vector<int64_t> x_dims = DimsOf(g, main.inputs[0]), out_dims = DimsOf(g, node.outputs[0]);
  const int spatial = static_cast<int>(x_dims.size()) - 2;
  if (spatial < 1 || spatial > 3) return false;
  dnnl::memory::dims kernel, strides, dil, pl, pr;
  bool include_pad = false;
  if (global) {
    for (int i = 0; i < spatial; ++i) {
      kernel.push_back(x_dims[static_cast<size_t>(i + 2)]);
      strides.push_back(1);
      dil.push_back(0);
      pl.push_back(0);
      pr.push_back(0);
    }
  } else {
    KILN_ASSIGN_OR_RETURN(WindowGeometry geo, ReadWindowGeometry(main.attrs, spatial, {}));
    KILN_ASSIGN_OR_RETURN(int64_t cip, main.attrs.GetInt("count_include_pad", 0));
    include_pad = cip != 0 && op == "AveragePool";
    for (int i = 0; i < spatial; ++i) {
      KILN_ASSIGN_OR_RETURN(int64_t o, WindowOutputSize(geo, i, x_dims[static_cast<size_t>(i + 2)]));
      if (o != out_dims[static_cast<size_t>(i + 2)]) return false;
      const int64_t s = geo.strides[static_cast<size_t>(i)], d = geo.dilations[static_cast<size_t>(i)];
      const int64_t kk = geo.kernel[static_cast<size_t>(i)], ext = (kk - 1) * d + 1;
      const int64_t left = geo.pads[static_cast<size_t>(i)];
      const int64_t right = (o - 1) * s + ext - x_dims[static_cast<size_t>(i + 2)] - left;
      // ceil_mode's extra window tail counts as padding for oneDNN's include-padding average.
      if (include_pad && right != geo.pads[static_cast<size_t>(i + spatial)]) return false;
      if (right < 0) return false;
      kernel.push_back(kk);
      strides.push_back(s);
      dil.push_back(d - 1);
      pl.push_back(left);
      pr.push_back(right);
    }
  }
  const dnnl::algorithm a = (op == "MaxPool" || op == "GlobalMaxPool") ? dnnl::algorithm::pooling_max
                            : include_pad ? dnnl::algorithm::pooling_avg_include_padding
                                          : dnnl::algorithm::pooling_avg_exclude_padding;
  auto k = std::make_unique<PrimitiveKernel>();
  dnnl::primitive_attr attr = BaseAttr();
  if (!PostOpsFor(c, node, out_dims, &attr, k.get())) return false;
  const int src = c.SlotOf(main.inputs[0]);
  const dnnl::memory::desc src_md = c.program().slots[static_cast<size_t>(src)].md;
  const dnnl::memory::desc dst_any(ToDnnl(out_dims), src_md.data_type(), tag::any);
  dnnl::pooling_v2_forward::primitive_desc pd(
      dnnl::pooling_v2_forward::desc(dnnl::prop_kind::forward_inference, a, src_md, dst_any, strides, kernel, dil, pl, pr),
      attr, c.program().engine);
  k->prim = dnnl::pooling_v2_forward(pd);
  const int dst = c.NewSlot(node.outputs[0], pd.dst_desc(), out_dims);
  k->slot_args.push_back({DNNL_ARG_SRC, src});
  k->slot_args.push_back({DNNL_ARG_DST, dst});
  k->reads.push_back(src);
  k->writes.push_back(dst);
  k->info = {node.name, op, ImplName(pd, "pool"), "", 0};
  c.AddKernel(std::move(k));
  return true;
}

StatusOr<bool> LowerConcat(Compiler& c, NodeId id) {
  const Graph& g = c.graph();
  const Node& node = g.node(id);
  if (node.op_type != "Concat" || IsFusedNode(node) || !IsF32(g, node.outputs[0])) return false;
  const std::vector<int64_t> out_dims = DimsOf(g, node.outputs[0]);
  KILN_ASSIGN_OR_RETURN(int64_t axis, node.attrs.GetInt("axis", 0));
  if (axis < 0) axis += static_cast<int64_t>(out_dims.size());
  if (auto whole = c.ConcatWhole(id)) {
    // Some producers wrote into this buffer already (ConcatTarget); copy in the others —
    // with kiln's copy concat when the layouts allow (oneDNN's reorder into a strided
    // sub-memory is its slow generic one), else one reorder each.
    const dnnl::memory::desc wmd = c.program().slots[static_cast<size_t>(*whole)].md;
    {
      std::vector<int> pieces;
      std::vector<std::vector<int64_t>> pdims;
      bool ok = true;
      for (ValueId v : node.inputs) {
        if (v == kNoValue || !IsF32(g, v)) { ok = false; break; }
        const std::vector<int64_t> d = DimsOf(g, v);
        if (Numel(d) == 0) continue;
        const int s = c.SlotOf(v);
        pieces.push_back(c.program().Root(s) == c.program().Root(*whole) ? -1 : s);
        pdims.push_back(d);
      }
      if (ok && !pieces.empty() &&
          AddCopyConcat(c, pieces, pdims, out_dims, axis, node.outputs[0], node.name, id, *whole))
        return true;
    }
    int64_t offset = 0;
    for (ValueId v : node.inputs) {
      const std::vector<int64_t> d = DimsOf(g, v);
      dnnl::memory::dims offs(out_dims.size(), 0);
      offs[static_cast<size_t>(axis)] = offset;
      offset += d[static_cast<size_t>(axis)];
      if (Numel(d) == 0) continue;
      const int s = c.SlotOf(v);
      if (c.program().Root(s) == c.program().Root(*whole)) continue;
      const dnnl::memory::desc sub = wmd.submemory_desc(ToDnnl(d), offs);
      const int view = c.ViewMd(*whole, sub, d);
      c.AddReorder(s, view, node.name + " <- " + g.value(v).name, node.op_type, id);
    }
    return true;
  }
  std::vector<dnnl::memory::desc> mds;
  std::vector<int> srcs;
  for (ValueId v : node.inputs) {
    if (v == kNoValue || !IsF32(g, v)) return false;
    if (Numel(DimsOf(g, v)) == 0) continue;  // empty pieces add nothing
    int s = c.SlotOf(v);
    srcs.push_back(s);
    mds.push_back(c.program().slots[static_cast<size_t>(s)].md);
  }
  if (srcs.empty() || out_dims.empty()) return false;
  // Mixed layouts, or a blocked layout oneDNN concatenates only with its reference
  // implementation (offsets off the channel blocks): every piece row-major.
  bool mixed = false;
  for (size_t i = 1; i < srcs.size(); ++i)
    mixed = mixed || !ActivationTag(mds[i]) || ActivationTag(mds[i]) != ActivationTag(mds[0]) ||
            mds[i].data_type() != mds[0].data_type();
  if (!mixed && srcs.size() > 1) {
    const std::string impl = TrialImpl([&] { return dnnl::concat::primitive_desc(static_cast<int>(axis), mds, c.program().engine, BaseAttr()); });
    mixed = impl.empty() || IsReferenceImpl(impl);
  }
  std::vector<std::vector<int64_t>> piece_dims;
  for (int s : srcs) piece_dims.push_back(c.program().slots[static_cast<size_t>(s)].dims);
  if (!mixed && AddCopyConcat(c, srcs, piece_dims, out_dims, axis, node.outputs[0], node.name, id)) return true;
  if (mixed)
    for (int& s : srcs) s = c.Plain(s);
  if (mixed && AddCopyConcat(c, srcs, piece_dims, out_dims, axis, node.outputs[0], node.name, id)) return true;
  for (size_t i = 0; i < srcs.size(); ++i) mds[i] = c.program().slots[static_cast<size_t>(srcs[i])].md;
  dnnl::concat::primitive_desc pd(static_cast<int>(axis), mds, c.program().engine, BaseAttr());
  auto k = std::make_unique<PrimitiveKernel>();
  k->prim = dnnl::concat(pd);
  for (size_t i = 0; i < srcs.size(); ++i) {
    k->slot_args.push_back({DNNL_ARG_MULTIPLE_SRC + static_cast<int>(i), srcs[i]});
    k->reads.push_back(srcs[i]);
  }
  const int dst = c.NewSlot(node.outputs[0], pd.dst_desc(), out_dims);
  k->slot_args.push_back({DNNL_ARG_DST, dst});
  k->writes.push_back(dst);
  k->info = {node.name, node.op_type, ImplName(pd, "concat"), "", 0};
  c.AddKernel(std::move(k));
  return true;
}

StatusOr<bool> LowerNormSoftmax(Compiler& c, NodeId id) {
  const Graph& g = c.graph();
  const Node& node = g.node(id);
  const std::string& op = node.op_type;
  if (op != "LayerNormalization" && op != "Softmax" && op != "LogSoftmax") return false;
  if (IsFusedNode(node) || node.inputs.empty() || !IsF32(g, node.inputs[0]) || !OnlyOutput0Used(g, node)) return false;
  const std::vector<int64_t> dims = DimsOf(g, node.inputs[0]);
  const int rank = static_cast<int>(dims.size());
  if (rank == 0) return false;
  auto k = std::make_unique<PrimitiveKernel>();
  const int in = c.Plain(c.SlotOf(node.inputs[0]));
  const int out = c.NewSlot(node.outputs[0], PlainMd(dims), dims);
  if (op == "LayerNormalization") {
    KILN_ASSIGN_OR_RETURN(int64_t axis, node.attrs.GetInt("axis", -1));
    KILN_ASSIGN_OR_RETURN(float eps, node.attrs.GetFloat("epsilon", 1e-5f));
    if (axis < 0) axis += rank;
    if (axis < 0 || axis >= rank) return false;
    int64_t outer = 1, inner = 1;
    for (int i = 0; i < rank; ++i) (i < axis ? outer : inner) *= dims[static_cast<size_t>(i)];
    const Tensor* scale = nullptr;
    const Tensor* shift = nullptr;
    if (node.inputs.size() > 1 && node.inputs[1] != kNoValue) {
      if (!g.value(node.inputs[1]).constant) return false;
      scale = &*g.value(node.inputs[1]).constant;
    }
    if (node.inputs.size() > 2 && node.inputs[2] != kNoValue) {
      if (!g.value(node.inputs[2]).constant) return false;
      shift = &*g.value(node.inputs[2]).constant;
    }
    if ((scale && (scale->dtype() != DType::kFloat32 || scale->numel() != inner)) ||
        (shift && (shift->dtype() != DType::kFloat32 || shift->numel() != inner)))
      return false;  // broadcast scale/shift: reference kernel
    const std::vector<int64_t> d2 = {outer, inner};
    const int in2 = c.View(in, d2), out2 = c.View(out, d2);
    dnnl::normalization_flags flags = dnnl::normalization_flags::none;
    if (scale) flags |= dnnl::normalization_flags::use_scale;
    if (shift) flags |= dnnl::normalization_flags::use_shift;
    dnnl::layer_normalization_forward::primitive_desc pd(
        dnnl::layer_normalization_forward::desc(dnnl::prop_kind::forward_inference, PlainMd(d2), eps, flags), BaseAttr(),
        c.program().engine);
    k->prim = dnnl::layer_normalization_forward(pd);
    const dnnl::memory::desc v_md = PlainMd({inner});
    if (scale) k->const_args.push_back({DNNL_ARG_SCALE, c.ConstantMemory(*scale, v_md, v_md)});
    if (shift) k->const_args.push_back({DNNL_ARG_SHIFT, c.ConstantMemory(*shift, v_md, v_md)});
    k->slot_args = {{DNNL_ARG_SRC, in2}, {DNNL_ARG_DST, out2}};
    k->reads = {in2};
    k->writes = {out2};
    k->info = {node.name, op, ImplName(pd, "layer_norm"), "", 0};
  } else {
    KILN_ASSIGN_OR_RETURN(int64_t axis, node.attrs.GetInt("axis", -1));
    if (axis < 0) axis += rank;
    if (axis < 0 || axis >= rank) return false;
    const dnnl::memory::desc md = PlainMd(dims);
    dnnl::softmax_v2_forward::primitive_desc pd(
        dnnl::softmax_v2_forward::desc(dnnl::prop_kind::forward_inference,
                                       op == "Softmax" ? dnnl::algorithm::softmax_accurate : dnnl::algorithm::softmax_log,
                                       md, md, static_cast<int>(axis)),
        BaseAttr(), c.program().engine);
    k->prim = dnnl::softmax_v2_forward(pd);
    k->slot_args = {{DNNL_ARG_SRC, in}, {DNNL_ARG_DST, out}};
    k->reads = {in};
    k->writes = {out};
    k->info = {node.name, op, ImplName(pd, "softmax"), "", 0};
  }
  c.AddKernel(std::move(k));
  return true;
}

bool IsReferenceImpl(const std::string& impl) {
  // kiln's own reference kernels ("ref"), and oneDNN's reference implementations
  // ("ref:any", "ref_int8:any", gemm-based on the reference gemm), as a StepInfo::impl
  // ("onednn:<primitive> <impl>") or as oneDNN's impl_info_str. kiln's own kernels
  // ("kiln:...") never are.
  if (impl == "ref") return true;
  if (impl.rfind("kiln:", 0) == 0) return false;
  std::string dnnl = impl;
  if (impl.rfind("onednn:", 0) == 0) {
    const size_t sp = impl.find(' ');
    dnnl = sp == std::string::npos ? "" : impl.substr(sp + 1);
  }
  return dnnl.rfind("ref", 0) == 0 || dnnl.find("gemm:ref") != std::string::npos;
}

namespace {

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
      k->slot_args.push_back({use_binary ? DNNL_ARG_SRC_0 : DNNL_ARG_SRC, src});
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

StatusOr<bool> LowerView(Compiler& c, NodeId id) {
  const Graph& g = c.graph();
  const Node& node = g.node(id);
  // (A Cast to the type it already has is one too: compute_fp16_in_fp32 leaves them at graph
  // outputs, where remove_no_ops cannot forward the name.)
  static const std::set<std::string> kViews = {"Reshape", "Flatten", "Squeeze", "Unsqueeze", "Identity", "Cast", "CastLike"};
  if (!kViews.count(node.op_type) || IsFusedNode(node) || node.inputs.empty() || node.outputs.size() != 1) return false;
  const ValueId in = node.inputs[0];
  if (in == kNoValue || DTypeOfValue(g, in) != DTypeOfValue(g, node.outputs[0])) return false;
  const std::vector<int64_t> out_dims = DimsOf(g, node.outputs[0]);
  if (Numel(out_dims) != Numel(DimsOf(g, in))) return false;
  const int s = c.View(c.Plain(c.SlotOf(in)), out_dims);
  c.SetValueSlot(node.outputs[0], s);
  return true;
}

StatusOr<bool> LowerTranspose(Compiler& c, NodeId id) {
  const Graph& g = c.graph();
  const Node& node = g.node(id);
  if (node.op_type != "Transpose" || IsFusedNode(node) || !IsF32(g, node.inputs[0])) return false;
  const std::vector<int64_t> in_dims = DimsOf(g, node.inputs[0]), out_dims = DimsOf(g, node.outputs[0]);
  const int rank = static_cast<int>(in_dims.size());
  if (rank == 0) return false;
  std::vector<int64_t> perm;
  KILN_ASSIGN_OR_RETURN(perm, node.attrs.GetInts("perm", {}));
  if (perm.empty())
    for (int i = rank - 1; i >= 0; --i) perm.push_back(i);
  if (static_cast<int>(perm.size()) != rank) return false;
  std::vector<int64_t> in_strides(static_cast<size_t>(rank), 1);
  for (int i = rank - 2; i >= 0; --i) in_strides[static_cast<size_t>(i)] = in_strides[static_cast<size_t>(i) + 1] * in_dims[static_cast<size_t>(i) + 1];
  dnnl::memory::dims strides;
  for (int64_t p : perm) strides.push_back(in_strides[static_cast<size_t>(p)]);
  const int src = c.Plain(c.SlotOf(node.inputs[0]));
  const dnnl::memory::desc src_md(ToDnnl(out_dims), mdt::f32, strides);
  const int view = c.ViewMd(src, src_md, out_dims);
  const int dst = c.NewSlot(node.outputs[0], PlainMd(out_dims), out_dims);
  c.AddReorder(view, dst, node.name, node.op_type, id);
  return true;
}

StatusOr<bool> LowerSlice(Compiler& c, NodeId id) {
  // Unit-step Slice of a float tensor: one reorder from a sub-memory view of the input.
  const Graph& g = c.graph();
  const Node& node = g.node(id);
  if (node.op_type != "Slice" || IsFusedNode(node) || node.inputs.size() < 3 || !IsF32(g, node.inputs[0])) return false;
  const std::vector<int64_t> x_dims = DimsOf(g, node.inputs[0]), out_dims = DimsOf(g, node.outputs[0]);
  const int rank = static_cast<int>(x_dims.size());
  auto p = ConstSliceParams(g, node);
  if (!p || rank == 0 || Numel(out_dims) == 0) return false;
  const std::vector<int64_t>&starts = p->starts, &ends = p->ends, &axes = p->axes, &steps = p->steps;
  dnnl::memory::dims offs(static_cast<size_t>(rank), 0);
  std::vector<int64_t> dims = x_dims;
  for (size_t i = 0; i < axes.size(); ++i) {
    int64_t ax = axes[i] < 0 ? axes[i] + rank : axes[i];
    if (ax < 0 || ax >= rank || steps[i] != 1) return false;
    const SliceAxisRange r = ComputeSliceAxis(starts[i], ends[i], 1, x_dims[static_cast<size_t>(ax)]);
    offs[static_cast<size_t>(ax)] = r.start;
    dims[static_cast<size_t>(ax)] = r.length;
  }
  if (dims != out_dims) return false;
  const int src = c.Plain(c.SlotOf(node.inputs[0]));
  const dnnl::memory::desc src_md = PlainMd(x_dims).submemory_desc(ToDnnl(out_dims), offs);
  const int view = c.ViewMd(src, src_md, out_dims);
  const int dst = c.NewSlot(node.outputs[0], PlainMd(out_dims), out_dims);
  c.AddReorder(view, dst, node.name, node.op_type, id);
  return true;
}

StatusOr<bool> LowerSplit(Compiler& c, NodeId id) {
  // Split of a float tensor: one reorder per output from a sub-memory view (SplitInto, as
  // for horizontally fused layers), in the input's own layout where it allows.
  const Graph& g = c.graph();
  const Node& node = g.node(id);
  if (node.op_type != "Split" || IsFusedNode(node) || node.inputs.empty() || !IsF32(g, node.inputs[0])) return false;
  const std::vector<int64_t> x_dims = DimsOf(g, node.inputs[0]);
  const int rank = static_cast<int>(x_dims.size());
  KILN_ASSIGN_OR_RETURN(int64_t axis, node.attrs.GetInt("axis", 0));
  if (axis < 0) axis += rank;
  if (rank == 0 || axis < 0 || axis >= rank) return false;
  std::vector<int64_t> sizes;
  int64_t total = 0;
  for (ValueId v : node.outputs) {
    if (v == kNoValue) return false;
    const std::vector<int64_t> d = DimsOf(g, v);
    if (static_cast<int>(d.size()) != rank) return false;
    sizes.push_back(d[static_cast<size_t>(axis)]);
    total += sizes.back();
  }
  if (total != x_dims[static_cast<size_t>(axis)]) return false;
  SplitInto(c, node, c.SlotOf(node.inputs[0]), static_cast<int>(axis), sizes);
  return true;
}

namespace {
StatusOr<bool> LowerConvTransposeAsGemm(Compiler& c, NodeId id, const Node& node, const Node& main, const Tensor& w,
                                        const Tensor* bias, const std::vector<int64_t>& x_dims,
                                        const std::vector<int64_t>& out_dims) {
  const Graph& g = c.graph();
  const int64_t n = x_dims[0], ic = x_dims[1], h = x_dims[2], wd = x_dims[3];
  const int64_t oc = out_dims[1], kh = w.dim(2), kw = w.dim(3), kk = kh * kw, cols = oc * kk;
  // Epilogue: eltwise ops as they are; per-channel constants repeated over (kh, kw).
  auto ops = TranslateEpilogue(g, node, 4);
  if (!ops) return false;
  for (PostOp& op : *ops) {
    if (op.kind != PostOp::Kind::kBinary) continue;
    if (op.src1 != kNoValue) return false;  // an activation operand: not per column
    const std::vector<int64_t>& d = op.src1_dims;
    const bool per_channel = d[0] == 1 && d[2] == 1 && d[3] == 1 && (d[1] == oc || d[1] == 1);
    if (!per_channel) return false;
    std::vector<float> rep;
    for (int64_t o = 0; o < oc; ++o)
      for (int64_t j = 0; j < kk; ++j) rep.push_back(op.src1_const[static_cast<size_t>(d[1] == 1 ? 0 : o)]);
    op.src1_const = std::move(rep);
    op.src1_dims = {1, 1, cols};
  }
  auto k = std::make_unique<PrimitiveKernel>();
  dnnl::primitive_attr attr = BaseAttr();
  const std::vector<int64_t> mm_dims = {n, h * wd, cols};
  KILN_RETURN_IF_ERROR(ApplyPostOps(c, *ops, mm_dims, &attr, &k->slot_args, &k->const_args, &k->reads));
  // src: NCHW seen as [N, H*W, C_in] (strided; no copy).
  const int x_plain = c.Plain(c.SlotOf(main.inputs[0]));
  const dnnl::memory::desc src_md({n, h * wd, ic}, mdt::f32, {ic * h * wd, 1, h * wd});
  const int src = c.ViewMd(x_plain, src_md, {n, h * wd, ic});
  const dnnl::memory::desc w_md({1, ic, cols}, mdt::f32, tag::any), dst_md = PlainMd(mm_dims);
  std::optional<dnnl::matmul::primitive_desc> pd;
  dnnl::memory::desc b_md;
  if (bias) {
    b_md = PlainMd({1, 1, cols});
    pd.emplace(dnnl::matmul::desc(src_md, w_md, b_md, dst_md), attr, c.program().engine);
    dnnl::memory bm(b_md, c.program().engine);
    float* bp = static_cast<float*>(bm.get_data_handle());
    for (int64_t o = 0; o < oc; ++o)
      for (int64_t j = 0; j < kk; ++j) bp[o * kk + j] = bias->data<float>()[o];
    k->const_args.push_back({DNNL_ARG_BIAS, bm});
  } else {
    pd.emplace(dnnl::matmul::desc(src_md, w_md, dst_md), attr, c.program().engine);
  }
  k->prim = dnnl::matmul(*pd);
  // ONNX weights [C_in, C_out, kh, kw] are row-major [C_in, C_out*kh*kw] already.
  k->const_args.push_back({DNNL_ARG_WEIGHTS, c.ConstantMemory(w, PlainMd({1, ic, cols}), pd->weights_desc())});
  const int tmp = c.NewSlot(kNoValue, dst_md, mm_dims);
  k->slot_args.push_back({DNNL_ARG_SRC, src});
  k->slot_args.push_back({DNNL_ARG_DST, tmp});
  k->reads.push_back(src);
  k->writes.push_back(tmp);
  k->info = {node.name + " (gemm)", node.op_type, ImplName(*pd, "matmul"), "", 0, id};
  c.AddKernel(std::move(k));
  // Scatter [N, H, W, C_out, kh, kw] into the output [N, C_out, H, kh, W, kw] (= NCHW).
  const dnnl::memory::dims six = {n, oc, h, kh, wd, kw};
  const dnnl::memory::desc from(six, mdt::f32, {h * wd * cols, kk, wd * cols, kw, cols, 1});
  const int from_view = c.ViewMd(tmp, from, {n, oc, h, kh, wd, kw});
  const int out = c.NewSlot(node.outputs[0], PlainMd(out_dims), out_dims);
  const dnnl::memory::desc to = PlainMd({n, oc, h, kh, wd, kw});
  const int to_view = c.ViewMd(out, to, {n, oc, h, kh, wd, kw});
  c.AddReorder(from_view, to_view, node.name + " (scatter)", node.op_type, id);
  return true;
}
}  // namespace

StatusOr<bool> LowerConvTranspose(Compiler& c, NodeId id) {
  // ONNX ConvTranspose as oneDNN deconvolution: ONNX's [C_in, C_out/g, k...] weights are
  // oneDNN's (g)iohw; pads from the attribute (left) and the inferred output size (right).
  const Graph& g = c.graph();
  const Node& node = g.node(id);
  if (node.op_type != "ConvTranspose" || node.attrs.has(kSplitSizesAttr)) return false;
  const Node main = MainPartOf(node);
  if (main.inputs.size() < 2 || !IsF32(g, main.inputs[0]) || !g.value(main.inputs[1]).constant) return false;
  const Tensor& w = *g.value(main.inputs[1]).constant;
  if (w.dtype() != DType::kFloat32) return false;
  const Tensor* bias = nullptr;
  if (main.inputs.size() > 2 && main.inputs[2] != kNoValue) {
    const Value& bv = g.value(main.inputs[2]);
    if (!bv.constant || bv.constant->dtype() != DType::kFloat32) return false;
    bias = &*bv.constant;
  }
  KILN_ASSIGN_OR_RETURN(std::string auto_pad, main.attrs.GetString("auto_pad", "NOTSET"));
  if (auto_pad != "NOTSET") return false;
  const std::vector<int64_t> x_dims = DimsOf(g, main.inputs[0]), out_dims = DimsOf(g, node.outputs[0]);
  const int rank = static_cast<int>(x_dims.size()), spatial = rank - 2;
  if (spatial != 2 || w.rank() != rank) return false;
  KILN_ASSIGN_OR_RETURN(int64_t group, main.attrs.GetInt("group", 1));
  KILN_ASSIGN_OR_RETURN(std::vector<int64_t> strides_a, main.attrs.GetInts("strides", std::vector<int64_t>(2, 1)));
  KILN_ASSIGN_OR_RETURN(std::vector<int64_t> dil_a, main.attrs.GetInts("dilations", std::vector<int64_t>(2, 1)));
  KILN_ASSIGN_OR_RETURN(std::vector<int64_t> pads_a, main.attrs.GetInts("pads", std::vector<int64_t>(4, 0)));
  if (strides_a.size() != 2 || dil_a.size() != 2 || pads_a.size() != 4 || group < 1) return false;
  const int64_t oc = out_dims[1], ic = x_dims[1];
  if (oc % group != 0 || ic % group != 0 || w.dim(0) != ic || w.dim(1) * group != oc) return false;
  dnnl::memory::dims strides, dil, pl, pr;
  for (int i = 0; i < 2; ++i) {
    const int64_t k = w.dim(2 + i), s = strides_a[static_cast<size_t>(i)], d = dil_a[static_cast<size_t>(i)];
    const int64_t left = pads_a[static_cast<size_t>(i)];
    const int64_t right = (x_dims[static_cast<size_t>(2 + i)] - 1) * s + (k - 1) * d + 1 - left - out_dims[static_cast<size_t>(2 + i)];
    if (right < 0 || left < 0) return false;  // output_padding beyond the pads: reference kernel
    strides.push_back(s);
    dil.push_back(d - 1);
    pl.push_back(left);
    pr.push_back(right);
  }
  // Kernel == stride, no padding, no dilation, one group: the output windows do not
  // overlap, so the layer is one GEMM ([N*H*W, C_in] x [C_in, C_out*kh*kw], bias and the
  // epilogue fused) whose result a strided reorder scatters into place. oneDNN 2.6's
  // deconvolution is slower than the reference kernel for these (2x2 stride-2 upsampling).
  if (group == 1 && w.dim(2) == strides[0] && w.dim(3) == strides[1] && dil[0] == 0 && dil[1] == 0 && pl[0] == 0 &&
      pl[1] == 0 && pr[0] == 0 && pr[1] == 0) {
    auto done = LowerConvTransposeAsGemm(c, id, node, main, w, bias, x_dims, out_dims);
    if (!done.ok() || *done) return done;
  }
  auto k = std::make_unique<PrimitiveKernel>();
  dnnl::primitive_attr attr = BaseAttr();
  if (!PostOpsFor(c, node, out_dims, &attr, k.get())) return false;
  dnnl::memory::dims wdims;
  dnnl::memory::desc w_onnx;
  if (group == 1) {
    wdims = {oc, ic, w.dim(2), w.dim(3)};
    w_onnx = dnnl::memory::desc(wdims, mdt::f32, tag::iohw);
  } else {
    wdims = {group, oc / group, ic / group, w.dim(2), w.dim(3)};
    w_onnx = dnnl::memory::desc(wdims, mdt::f32, tag::giohw);
  }
  const dnnl::memory::desc src_any(ToDnnl(x_dims), mdt::f32, tag::any), dst_any(ToDnnl(out_dims), mdt::f32, tag::any);
  const dnnl::memory::desc w_any(wdims, mdt::f32, tag::any), b_md({oc}, mdt::f32, tag::x);
  auto d = bias ? dnnl::deconvolution_forward::desc(dnnl::prop_kind::forward_inference, dnnl::algorithm::deconvolution_direct,
                                                    src_any, w_any, b_md, dst_any, strides, dil, pl, pr)
                : dnnl::deconvolution_forward::desc(dnnl::prop_kind::forward_inference, dnnl::algorithm::deconvolution_direct,
                                                    src_any, w_any, dst_any, strides, dil, pl, pr);
  dnnl::deconvolution_forward::primitive_desc pd(d, attr, c.program().engine);
  k->prim = dnnl::deconvolution_forward(pd);
  const int src = c.InLayout(c.SlotOf(main.inputs[0]), pd.src_desc());
  k->const_args.push_back({DNNL_ARG_WEIGHTS, c.ConstantMemory(w, w_onnx, pd.weights_desc())});
  if (bias) k->const_args.push_back({DNNL_ARG_BIAS, c.ConstantMemory(*bias, b_md, pd.bias_desc())});
  const int dst = c.NewSlot(node.outputs[0], pd.dst_desc(), out_dims);
  k->slot_args.push_back({DNNL_ARG_SRC, src});
  k->slot_args.push_back({DNNL_ARG_DST, dst});
  k->reads.push_back(src);
  k->writes.push_back(dst);
  k->info = {node.name, node.op_type, ImplName(pd, "deconv"), "", 0, id};
  c.AddKernel(std::move(k));
  return true;
}

StatusOr<bool> LowerResize(Compiler& c, NodeId id) {
  // Nearest-neighbour Resize by integer factors as oneDNN resampling, for the coordinate
  // modes where ONNX picks the same source pixel as oneDNN (floor(dst / k)): asymmetric with
  // floor, half_pixel / pytorch_half_pixel with round_prefer_floor / round_prefer_ceil.
  const Graph& g = c.graph();
  const Node& node = g.node(id);
  if (node.op_type != "Resize" || IsFusedNode(node) || node.inputs.empty() || !IsF32(g, node.inputs[0])) return false;
  KILN_ASSIGN_OR_RETURN(std::string mode, node.attrs.GetString("mode", "nearest"));
  KILN_ASSIGN_OR_RETURN(std::string coord, node.attrs.GetString("coordinate_transformation_mode", "half_pixel"));
  KILN_ASSIGN_OR_RETURN(std::string nearest, node.attrs.GetString("nearest_mode", "round_prefer_floor"));
  KILN_ASSIGN_OR_RETURN(int64_t antialias, node.attrs.GetInt("antialias", 0));
  if (mode != "nearest" || antialias != 0) return false;
  const bool same_pixel = (coord == "asymmetric" && nearest == "floor") ||
                          ((coord == "half_pixel" || coord == "pytorch_half_pixel") &&
                           (nearest == "round_prefer_floor" || nearest == "round_prefer_ceil"));
  if (!same_pixel) return false;
  const std::vector<int64_t> x_dims = DimsOf(g, node.inputs[0]), out_dims = DimsOf(g, node.outputs[0]);
  const int rank = static_cast<int>(x_dims.size());
  if (rank < 3 || rank > 5 || static_cast<int>(out_dims.size()) != rank || x_dims[0] != out_dims[0] ||
      x_dims[1] != out_dims[1])
    return false;
  for (int i = 2; i < rank; ++i)
    if (x_dims[static_cast<size_t>(i)] == 0 || out_dims[static_cast<size_t>(i)] % x_dims[static_cast<size_t>(i)] != 0)
      return false;
  const int src = c.SlotOf(node.inputs[0]);
  const dnnl::memory::desc src_md = c.program().slots[static_cast<size_t>(src)].md;
  const dnnl::memory::desc dst_any(ToDnnl(out_dims), src_md.data_type(), tag::any);
  auto make_pd = [&](const dnnl::memory::desc& dst_md) {
    return dnnl::resampling_forward::primitive_desc(
        dnnl::resampling_forward::desc(dnnl::prop_kind::forward_inference, dnnl::algorithm::resampling_nearest, src_md,
                                       dst_md),
        BaseAttr(), c.program().engine);
  };
  dnnl::resampling_forward::primitive_desc pd = make_pd(dst_any);
  // Concat elimination, as for convolutions: straight into the concat's buffer when the
  // same implementation takes the strided destination.
  int dst = -1;
  if (auto part = c.ConcatTarget(node.outputs[0], pd.dst_desc())) {
    try {
      auto in_place = make_pd(part->md);
      if (std::string(in_place.impl_info_str()) == pd.impl_info_str()) {
        pd = in_place;
        dst = part->slot;
      }
    } catch (const dnnl::error&) {
    }
  }
  auto k = std::make_unique<PrimitiveKernel>();
  k->prim = dnnl::resampling_forward(pd);
  if (dst < 0) dst = c.NewSlot(node.outputs[0], pd.dst_desc(), out_dims);
  k->slot_args = {{DNNL_ARG_SRC, src}, {DNNL_ARG_DST, dst}};
  k->reads = {src};
  k->writes = {dst};
  k->info = {node.name, node.op_type, ImplName(pd, "resampling"), "", 0, id};
  c.AddKernel(std::move(k));
  return true;
}

StatusOr<bool> LowerAttention(Compiler& c, NodeId id) {
  // kiln.Attention (softmax(scale * Q K^T + mask) V) as two oneDNN matmuls around a softmax:
  // the scale is the first matmul's output scale, the mask its binary post-op; K^T is a
  // strided view of K, never a copy. The scores live in one arena temporary.
  const Graph& g = c.graph();
  const Node& node = g.node(id);
  if (node.op_type != "Attention" || node.domain != "kiln" || IsFusedNode(node) || node.inputs.size() < 3) return false;
  for (size_t i = 0; i < node.inputs.size(); ++i)
    if (node.inputs[i] != kNoValue && !IsF32(g, node.inputs[i])) return false;
  KILN_ASSIGN_OR_RETURN(int64_t tk, node.attrs.GetInt("transpose_k", 0));
  KILN_ASSIGN_OR_RETURN(float scale, node.attrs.GetFloat("scale", 1.f));
  const std::vector<int64_t> out_dims = DimsOf(g, node.outputs[0]);
  const int rank = static_cast<int>(out_dims.size());
  std::vector<int64_t> qd = DimsOf(g, node.inputs[0]), kd = DimsOf(g, node.inputs[1]), vd = DimsOf(g, node.inputs[2]);
  if (rank < 2 || rank > 6 || static_cast<int>(qd.size()) > rank || static_cast<int>(kd.size()) > rank ||
      static_cast<int>(vd.size()) > rank)
    return false;
  qd = LeftPad(qd, rank);
  kd = LeftPad(kd, rank);
  vd = LeftPad(vd, rank);
  const int64_t L = qd[static_cast<size_t>(rank - 2)], D = qd[static_cast<size_t>(rank - 1)];
  const int64_t S = vd[static_cast<size_t>(rank - 2)];
  // K as [.., D, S]: a transposed view when K is stored [.., S, D].
  std::vector<int64_t> kt_dims = kd;
  dnnl::memory::desc kt_md;
  if (tk) {
    std::swap(kt_dims[static_cast<size_t>(rank - 1)], kt_dims[static_cast<size_t>(rank - 2)]);
    dnnl::memory::dims strides(static_cast<size_t>(rank));
    int64_t st = 1;
    for (int i = rank - 1; i >= 0; --i) {
      strides[static_cast<size_t>(i)] = st;
      st *= kd[static_cast<size_t>(i)];
    }
    std::swap(strides[static_cast<size_t>(rank - 1)], strides[static_cast<size_t>(rank - 2)]);
    kt_md = dnnl::memory::desc(ToDnnl(kt_dims), mdt::f32, strides);
  } else {
    kt_md = PlainMd(kt_dims);
  }
  if (kt_dims[static_cast<size_t>(rank - 2)] != D || kt_dims[static_cast<size_t>(rank - 1)] != S) return false;
  std::vector<int64_t> score_dims(out_dims.begin(), out_dims.end() - 2);
  score_dims.push_back(L);
  score_dims.push_back(S);
  const dnnl::engine& eng = c.program().engine;
  // scores = scale * Q K^T (+ mask)
  auto k1 = std::make_unique<PrimitiveKernel>();
  dnnl::primitive_attr attr1 = BaseAttr();
  if (scale != 1.0f) attr1.set_output_scales(0, {scale});
  if (node.inputs.size() > 3 && node.inputs[3] != kNoValue) {
    std::vector<int64_t> md = DimsOf(g, node.inputs[3]);
    if (static_cast<int>(md.size()) > rank) return false;
    PostOp mask;
    mask.kind = PostOp::Kind::kBinary;
    mask.alg = dnnl::algorithm::binary_add;
    mask.src1_dims = LeftPad(md, rank);
    if (g.value(node.inputs[3]).constant) {
      const Tensor& t = *g.value(node.inputs[3]).constant;
      mask.src1_const.assign(t.data<float>(), t.data<float>() + t.numel());
    } else {
      mask.src1 = node.inputs[3];
    }
    KILN_RETURN_IF_ERROR(ApplyPostOps(c, {mask}, score_dims, &attr1, &k1->slot_args, &k1->const_args, &k1->reads));
  }
  const int q_slot = c.View(c.Plain(c.SlotOf(node.inputs[0])), qd);
  const int k_plain = c.Plain(c.SlotOf(node.inputs[1]));
  const int k_slot = tk ? c.ViewMd(k_plain, kt_md, kt_dims) : c.View(k_plain, kt_dims);
  const int v_slot = c.View(c.Plain(c.SlotOf(node.inputs[2])), vd);
  dnnl::matmul::primitive_desc pd1(dnnl::matmul::desc(PlainMd(qd), kt_md, PlainMd(score_dims)), attr1, eng);
  const int scores = c.NewSlot(kNoValue, PlainMd(score_dims), score_dims);
  k1->prim = dnnl::matmul(pd1);
  k1->slot_args.push_back({DNNL_ARG_SRC, q_slot});
  k1->slot_args.push_back({DNNL_ARG_WEIGHTS, k_slot});
  k1->slot_args.push_back({DNNL_ARG_DST, scores});
  k1->reads.push_back(q_slot);
  k1->reads.push_back(k_slot);
  k1->writes.push_back(scores);
  k1->info = {node.name + " (scores)", "Attention", ImplName(pd1, "matmul"), "", 0, id};
  // softmax over the keys, in place
  dnnl::softmax_v2_forward::primitive_desc pd2(
      dnnl::softmax_v2_forward::desc(dnnl::prop_kind::forward_inference, dnnl::algorithm::softmax_accurate,
                                     PlainMd(score_dims), PlainMd(score_dims), rank - 1),
      BaseAttr(), eng);
  auto k2 = std::make_unique<PrimitiveKernel>();
  k2->prim = dnnl::softmax_v2_forward(pd2);
  k2->slot_args = {{DNNL_ARG_SRC, scores}, {DNNL_ARG_DST, scores}};
  k2->reads = {scores};
  k2->writes = {scores};
  k2->info = {node.name + " (softmax)", "Attention", ImplName(pd2, "softmax"), "", 0, id};
  // out = P V
  dnnl::matmul::primitive_desc pd3(dnnl::matmul::desc(PlainMd(score_dims), PlainMd(vd), PlainMd(out_dims)), BaseAttr(), eng);
  auto k3 = std::make_unique<PrimitiveKernel>();
  k3->prim = dnnl::matmul(pd3);
  const int out = c.NewSlot(node.outputs[0], PlainMd(out_dims), out_dims);
  k3->slot_args = {{DNNL_ARG_SRC, scores}, {DNNL_ARG_WEIGHTS, v_slot}, {DNNL_ARG_DST, out}};
  k3->reads = {scores, v_slot};
  k3->writes = {out};
  k3->info = {node.name + " (context)", "Attention", ImplName(pd3, "matmul"), "", 0, id};
  (void)D;
  c.AddKernel(std::move(k1));
  c.AddKernel(std::move(k2));
  c.AddKernel(std::move(k3));
  return true;
}

}  // namespace kiln::cpu
