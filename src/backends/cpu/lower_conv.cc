// Lowering of convolutions onto oneDNN: Conv (with the tactic choice between direct,
// Winograd and kiln's depthwise kernel; INT8, BF16, residual sums) and ConvTranspose.
#include <algorithm>
#include <functional>
#include <memory>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include "backends/cpu/depthwise.h"
#include "backends/cpu/int8.h"
#include "backends/cpu/lower_dnnl_util.h"
#include "backends/cpu/lower_util.h"
#include "ir/op_schema.h"
#include "ir/ops/conv_pool_geometry.h"

namespace kiln::cpu {

using tag = dnnl::memory::format_tag;
using mdt = dnnl::memory::data_type;

namespace {

// Registers the output of a primitive: straight into the node's value, or into a whole
// buffer then split.
int OutputSlot(Compiler& c, const Node& node, const dnnl::memory::desc& md, const std::vector<int64_t>& dims, int split_axis) {
  return c.NewSlot(split_axis < 0 ? node.outputs[0] : kNoValue, md, dims);
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

// The layout a convolution's input arrives in, as a source descriptor and the destination
// in the same format over the output dims: a plain, channels-last or channel-blocked f32
// layout (valid false for any other).
struct ChainLayout {
  bool valid = false;
  bool plain = false;  // row-major: the graph's own layout, not one a kernel chose
  dnnl::memory::desc src, dst;
};

ChainLayout ChainLayoutOf(const Slot& in, const std::vector<int64_t>& out_dims) {
  ChainLayout out;
  if (!in.has_md || in.dtype != DType::kFloat32 || in.md.data_type() != mdt::f32 || in.qscale > 0) return out;
  if (in.dims.size() < 3 || in.dims.size() != out_dims.size()) return out;
  const std::optional<tag> t = ActivationTag(in.md);
  if (!t) return out;
  out.valid = true;
  out.plain = in.md == PlainMd(in.dims);
  out.src = in.md;
  out.dst = dnnl::memory::desc(ToDnnl(out_dims), mdt::f32, *t);
  return out;
}

// What a kernel in layouts (src, dst) adds to a chain in `chain`'s layout: the reorder of its
// input (unless another reader made that copy already) and, when the chain's layout is one
// a kernel chose (not the graph's row-major one), the reorder of its output back -- the
// next layer would pay it, or leave the chain's layout itself.
double LayoutCost(Compiler& c, int in_slot, const dnnl::memory::desc& src, const ChainLayout& chain,
                  const dnnl::memory::desc& dst) {
  if (!chain.valid) return 0;
  double ms = 0;
  if (src != chain.src && !c.HasLayoutCopy(in_slot, src)) ms += c.TimeReorder(chain.src, src);
  if (!chain.plain && dst != chain.dst) ms += c.TimeReorder(dst, chain.dst);
  return ms;
}

// oneDNN 2.6's gemm-based convolution in a channels-last layout applies a binary post-op
// whose operand differs per sample ([N, C, 1, 1] with N > 1: LR-ASPP's gate, an SE block at
// batch 2) at the wrong sample: max error 15.7 on a 1x1 960 -> 128 convolution at N = 2,
// exact at N = 1 and in nchw. Such a primitive is never used.
bool KnownWrongConv(const dnnl::convolution_forward::primitive_desc& pd, const std::vector<PostOp>& ops) {
  if (std::string(pd.impl_info_str()).find("gemm") == std::string::npos) return false;
  const dnnl::memory::desc src = pd.src_desc();
  if (src.data.ndims < 3 || src.data.format_kind != dnnl_blocked) return false;
  const auto& b = src.data.format_desc.blocking;
  const bool channels_last = b.inner_nblks == 0 && b.strides[1] == 1 && src.data.dims[1] > 1;
  if (!channels_last) return false;
  for (const PostOp& op : ops)
    if (op.kind == PostOp::Kind::kBinary && !op.src1_dims.empty() && op.src1_dims[0] > 1) return true;
  return false;
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
  std::vector<float> piece_scales;  // INT8 output of horizontally fused layers: per piece
  if (const std::optional<Int8Quant> in8 = Int8InputOf(node); in8 && !bf16) {
    // The output scale applies after the epilogue: folded into the output scales when every
    // step commutes with a positive scale (ReLU), else one more (linear) post-op.
    bool homogeneous = true;
    for (const PostOp& op : *ops)
      homogeneous = homogeneous && op.kind == PostOp::Kind::kEltwise && op.alg == dnnl::algorithm::eltwise_relu &&
                    op.alpha == 0;
    std::optional<Int8Quant> out8;
    if (residual == kNoValue && split_axis < 0) out8 = Int8OutputFor(g, node.outputs[0]);
    if (residual == kNoValue && split_axis == 1 && homogeneous) {
      // Sibling layers fused into one (GoogLeNet's 1x1 branches): each piece INT8 in its own
      // readers' scale, through the per-channel output scales; one signedness for all.
      std::optional<bool> sign;
      for (size_t p = 0; p < split_sizes.size(); ++p) {
        const std::optional<Int8Quant> q =
            p < node.outputs.size() && node.outputs[p] != kNoValue ? Int8OutputFor(g, node.outputs[p]) : std::nullopt;
        if (!q || (sign && *sign != q->is_unsigned)) {
          piece_scales.clear();
          break;
        }
        sign = q->is_unsigned;
        piece_scales.push_back(q->scale);
      }
      if (!piece_scales.empty()) out8 = Int8Quant{1.0f, *sign};
    }
    KILN_ASSIGN_OR_RETURN(wrm, RowMajorWeights(node, w));
    q8 = PrepareInt8Conv(*in8, wrm, bias, out8, /*quantize_weights=*/false);
    if (!piece_scales.empty()) {
      int64_t oc_at = 0;
      for (size_t p = 0; p < split_sizes.size(); ++p)
        for (int64_t i = 0; i < split_sizes[p]; ++i, ++oc_at)
          q8->out_scales[static_cast<size_t>(oc_at)] /= piece_scales[p];
    }
    if (q8->out) {
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
  // Candidates: each algorithm with the layouts oneDNN prefers for it ("any"), and -- a
  // layout kept along the chain -- with the input's current layout as source and the same
  // layout as destination ("@in"). The first pays reorders into and out of its layouts
  // where they differ from the chain's; timing prices them (LayoutCost), so a faster kernel
  // in a foreign layout wins only when it is faster by more than its reorders.
  struct Candidate {
    const char* name;
    dnnl::algorithm alg;
    bool keep;              // source and destination in the input's layout
    bool blocked = false;   // destination channel-blocked (ChainSeed::kBlocked, "@blocked")
  };
  std::vector<Candidate> cands = {{"direct", dnnl::algorithm::convolution_direct, false}};
  const bool wino_shape = !bf16 && !q8 && spatial == 2 && group == 1 && kernel[0] == 3 && kernel[1] == 3 && strides[0] == 1 &&
                          strides[1] == 1 && dil[0] == 0 && dil[1] == 0;
  if (wino_shape) cands.push_back({"winograd", dnnl::algorithm::convolution_winograd, false});
  const int in_slot = c.SlotOf(main.inputs[0]);
  const ChainLayout chain = ChainLayoutOf(c.program().slots[static_cast<size_t>(in_slot)], out_dims);
  if (chain.valid && !q8 && !bf16) {
    cands.push_back({"direct@in", dnnl::algorithm::convolution_direct, true});
    if (wino_shape) cands.push_back({"winograd@in", dnnl::algorithm::convolution_winograd, true});
  }
  // A tactic recorded in the graph (a plan built earlier) is taken as is.
  std::string forced;
  if (const Attr* t = node.attrs.find("kiln.tactic")) forced = t->s;
  // A chain seeded channel-blocked (ChainSeed::kBlocked): a convolution whose input is not
  // blocked yet starts the blocked layout (its "@blocked" candidates only, when oneDNN has
  // one); its readers then keep it (@in).
  const std::optional<tag> in_tag = ActivationTag(c.program().slots[static_cast<size_t>(in_slot)].md);
  const bool in_blocked = in_tag && (*in_tag == tag::aBcd16b || *in_tag == tag::aBcd8b);
  const bool seed_blocked = c.seed() == ChainSeed::kBlocked && !in_blocked && spatial == 2 && !q8 && !bf16;
  if (seed_blocked || forced.find("@blocked") != std::string::npos) {
    cands.push_back({"direct@blocked", dnnl::algorithm::convolution_direct, false, true});
    if (wino_shape) cands.push_back({"winograd@blocked", dnnl::algorithm::convolution_winograd, false, true});
  }
  auto blocked_dst = [&](int block) {
    return dnnl::memory::desc(ToDnnl(out_dims), dst_t, block == 16 ? tag::aBcd16b : tag::aBcd8b);
  };
  std::vector<int> timing_args = {DNNL_ARG_SRC, DNNL_ARG_WEIGHTS, DNNL_ARG_DST};
  if (bias) timing_args.push_back(DNNL_ARG_BIAS);
  for (const auto& [arg, s] : k->slot_args) timing_args.push_back(arg);
  for (const auto& [arg, m] : k->const_args) timing_args.push_back(arg);
  std::optional<dnnl::convolution_forward::primitive_desc> best;
  const char* best_name = "";
  double best_ms = 0;
  int viable = 0;
  auto make_pd_from = [&](dnnl::algorithm alg, const dnnl::memory::desc& src_md, const dnnl::memory::desc& dst_md) {
    std::optional<dnnl::convolution_forward::primitive_desc> pd;
    try {
      auto d = bias ? dnnl::convolution_forward::desc(dnnl::prop_kind::forward_inference, alg, src_md, w_any, b_md,
                                                      dst_md, strides, dil, pl, pr)
                    : dnnl::convolution_forward::desc(dnnl::prop_kind::forward_inference, alg, src_md, w_any,
                                                      dst_md, strides, dil, pl, pr);
      pd.emplace(d, attr, c.program().engine);
    } catch (const dnnl::error&) {
    }
    return pd;
  };
  auto make_pd = [&](dnnl::algorithm alg, const dnnl::memory::desc& dst_md) { return make_pd_from(alg, src_any, dst_md); };
  dnnl::algorithm best_alg = dnnl::algorithm::convolution_direct;
  bool best_keep = false;
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
  auto collect = [&](const std::string& only) {
    for (const Candidate& cand : cands) {
      if (!only.empty() && only != cand.name) continue;
      auto pd = cand.keep ? make_pd_from(cand.alg, chain.src, chain.dst) : make_pd(cand.alg, dst_any);
      if (cand.blocked) {
        pd = make_pd(cand.alg, blocked_dst(16));
        if (!pd || IsReferenceImpl(pd->impl_info_str())) pd = make_pd(cand.alg, blocked_dst(8));
        if (pd && IsReferenceImpl(pd->impl_info_str())) pd.reset();
      }
      // A kept layout only where oneDNN has a real kernel for it, and only when it differs
      // from what "any" gives.
      if (pd && cand.keep && IsReferenceImpl(pd->impl_info_str())) pd.reset();
      if (pd && KnownWrongConv(*pd, *ops)) pd.reset();
      for (const auto& [other, opd] : viable_pds)
        if (pd && cand.keep && other->alg == cand.alg && opd.src_desc() == chain.src && opd.dst_desc() == chain.dst)
          pd.reset();
      if (pd) viable_pds.emplace_back(&cand, *pd);
    }
  };
  collect(forced_dnnl);
  // A plan's tactic this CPU cannot run (built on another one): oneDNN's own choice.
  if (viable_pds.empty() && !forced_dnnl.empty()) collect("");
  // Seeded blocked: only candidates whose output is channel-blocked, when there is one (the
  // whole program stays blocked; Compile times it against the per-layer choice).
  if (c.seed() == ChainSeed::kBlocked && forced_dnnl.empty()) {
    auto blocked_out = [](const auto& e) {
      const std::optional<tag> t = ActivationTag(e.second.dst_desc());
      return t && (*t == tag::aBcd16b || *t == tag::aBcd8b);
    };
    if (std::any_of(viable_pds.begin(), viable_pds.end(), blocked_out))
      viable_pds.erase(std::remove_if(viable_pds.begin(), viable_pds.end(), [&](const auto& e) { return !blocked_out(e); }),
                       viable_pds.end());
  }
  const bool choice = viable_pds.size() > 1 || kiln_dw_candidate;
  for (auto& [cand_ptr, pd_value] : viable_pds) {
    const Candidate& cand = *cand_ptr;
    std::optional<dnnl::convolution_forward::primitive_desc> pd = pd_value;
    ++viable;
    double ms = 0;
    if (c.timing() && forced.empty() && choice) {
      const std::string name = cand.keep ? std::string(cand.name) + " " + MdKey(chain.src) : std::string(cand.name);
      ms = timed(name.c_str(), [&] { return c.PrimitiveRunner(dnnl::convolution_forward(*pd), *pd, timing_args); });
      if (!cand.keep) {
        ms += LayoutCost(c, in_slot, pd->src_desc(), chain, pd->dst_desc());
        // Leaving the chain's layout takes a clear win: timings here are noisy, and a layout
        // switched on a near-tie flips the layers after it too (DenseNet built with 8 to 46
        // reorders from one build to the next).
        if (chain.valid && (pd->src_desc() != chain.src || pd->dst_desc() != chain.dst)) ms *= 1.05;
      }
      // The residual is summed in the destination's layout: a copy when it is in another.
      if (residual != kNoValue) {
        const Slot& r = c.program().slots[static_cast<size_t>(c.SlotOf(residual))];
        if (r.has_md && r.md != pd->dst_desc()) ms += c.TimeReorder(r.md, pd->dst_desc());
      }
    }
    if (!best || ms < best_ms) {
      best = pd;
      best_name = cand.name;
      best_ms = ms;
      best_alg = cand.alg;
      best_keep = cand.keep;
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
    KILN_ASSIGN_OR_RETURN(Tensor dw_weights, RowMajorWeights(node, w));
    auto dw = DepthwiseConv::Create(ds, dw_weights.data<float>(), bias ? bias->data<float>() : nullptr, *dw_acts);
    if (dw) {
      double ms = 0;
      if (forced.empty()) {
        ms = timed("kiln_dw", [&]() -> std::function<void()> {
          auto xs = std::make_shared<std::vector<float>>(static_cast<size_t>(Numel(x_dims)), 0.0f);
          auto ys = std::make_shared<std::vector<float>>(static_cast<size_t>(Numel(out_dims)));
          DepthwiseConv* kernel_ptr = dw.get();
          return [kernel_ptr, xs, ys] { kernel_ptr->Run(xs->data(), ys->data()); };
        });
        ms += LayoutCost(c, in_slot, dnnl::memory::desc(ToDnnl(x_dims), mdt::f32, tag::nhwc), chain,
                         dnnl::memory::desc(ToDnnl(out_dims), mdt::f32, tag::nhwc));
      }
      // Only when clearly faster: a tie goes to oneDNN (timings on this machine are noisy).
      if (!forced.empty() || !best || ms < 0.95 * best_ms) {
        auto k2 = std::make_unique<DepthwiseKernel>();
        const dnnl::memory::desc nhwc_in(ToDnnl(x_dims), mdt::f32, tag::nhwc), nhwc_out(ToDnnl(out_dims), mdt::f32, tag::nhwc);
        k2->src = c.InLayout(in_slot, nhwc_in);
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
      auto in_place = best_keep ? make_pd_from(best_alg, chain.src, part->md) : make_pd(best_alg, part->md);
      if (in_place && std::string(in_place->impl_info_str()) == best->impl_info_str()) best = in_place;
      else part.reset();
    }
  }
  const auto& pd = *best;
  k->prim = dnnl::convolution_forward(pd);
  const int src = q8 ? c.Quantized(in_slot, pd.src_desc(), q8->in.scale) : c.InLayout(in_slot, pd.src_desc());
  dnnl::memory::desc w_from = group == 1 ? PlainMd(w.dims()) : PlainMd(std::vector<int64_t>(wdims.begin(), wdims.end()));
  const void* w_data = w.raw_data();
  if (node.attrs.has(kPackedMdAttr)) {  // a plan's weights, stored in a kernel layout already
    KILN_ASSIGN_OR_RETURN(PackedSource packed, PackedWeightsSource(node, w));
    w_from = packed.md;
    w_data = packed.data;
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
    // (Split: a buffer only SplitInto's views read, each with its piece's scale.)
    dst = c.NewSlot(split_axis < 0 ? node.outputs[0] : kNoValue, pd.dst_desc(), out_dims,
                    q8->out->is_unsigned ? DType::kUInt8 : DType::kInt8);
    c.program().slots[static_cast<size_t>(dst)].qscale = q8->out->scale;
  } else {
    dst = OutputSlot(c, node, pd.dst_desc(), out_dims, split_axis);
  }
  k->slot_args.push_back({DNNL_ARG_SRC, src});
  k->slot_args.push_back({DNNL_ARG_DST, dst});
  k->reads.push_back(src);
  k->writes.push_back(dst);
  k->info = {node.name, node.op_type, ImplName(pd, "conv"), viable > 1 || !forced.empty() || kiln_dw_candidate || std::string(best_name) != "direct" ? best_name : "", best_ms, id,
             bf16 ? "bf16" : q8 ? "int8" : ""};
  c.AddKernel(std::move(k));
  if (split_axis >= 0) SplitInto(c, node, dst, split_axis, split_sizes, piece_scales.empty() ? nullptr : &piece_scales);
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

}  // namespace kiln::cpu
