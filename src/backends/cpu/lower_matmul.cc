// Lowering of matrix products onto oneDNN matmul: MatMul/Gemm (weight-layout tactics,
// BF16, INT8, fused bias and epilogue) and kiln.Attention (two matmuls around a softmax).
#include <algorithm>
#include <cmath>
#include <cstring>
#include <memory>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include "backends/cpu/int8.h"
#include "backends/cpu/lower_dnnl_util.h"
#include "backends/cpu/lower_util.h"
#include "ir/op_schema.h"

namespace kiln::cpu {

using tag = dnnl::memory::format_tag;
using mdt = dnnl::memory::data_type;

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
