// Data movement of any element type as one strided copy, out[i] = in[base + sum_a i_a *
// stride_a]: Transpose (permuted strides), Slice (any steps, negative too), Split (one slice
// per output), Expand (stride 0 on broadcast dims); and ConstantOfShape as a fill. The
// float cases that oneDNN's reorders take (blocked layouts included) are lowered before
// this; here go the int64 indices of detection post-processing (NonZero -> Transpose ->
// GatherND), masks, steps and broadcasts, which otherwise run on the reference kernels'
// element-by-element walk.
#include <cstring>
#include <optional>

#include "backends/cpu/lower_util.h"
#include "backends/cpu/parallel.h"
#include "ir/op_schema.h"
#include "ir/ops/tensor_geometry.h"

namespace kiln::cpu {

namespace {

class StridedCopyKernel : public Kernel {
 public:
  int src = -1, dst = -1;
  size_t esize = 0;
  std::vector<int64_t> dims, strides;  // output dims; input strides in elements (collapsed)
  int64_t base = 0;                    // input element offset of out[0...0]

  Status Execute(ExecContext& ctx, int) const override {
    const char* in = ctx.ptrs[static_cast<size_t>(src)];
    char* out = ctx.ptrs[static_cast<size_t>(dst)];
    const int rank = static_cast<int>(dims.size());
    const int64_t inner = rank ? dims.back() : 1, inner_stride = rank ? strides.back() : 0;
    const int64_t rows = inner > 0 ? Numel(dims) / inner : 0;
    auto row = [&](int64_t r) {
      int64_t off = base, rest = r;
      for (int a = rank - 2; a >= 0; --a) {
        const int64_t d = dims[static_cast<size_t>(a)];
        off += (rest % d) * strides[static_cast<size_t>(a)];
        rest /= d;
      }
      char* o = out + static_cast<size_t>(r * inner) * esize;
      const char* i = in + off * static_cast<int64_t>(esize);
      if (inner_stride == 1) {
        std::memcpy(o, i, static_cast<size_t>(inner) * esize);
        return;
      }
      const int64_t step = inner_stride * static_cast<int64_t>(esize);
      switch (esize) {
        case 8:
          for (int64_t j = 0; j < inner; ++j) std::memcpy(o + j * 8, i + j * step, 8);
          break;
        case 4:
          for (int64_t j = 0; j < inner; ++j) std::memcpy(o + j * 4, i + j * step, 4);
          break;
        case 2:
          for (int64_t j = 0; j < inner; ++j) std::memcpy(o + j * 2, i + j * step, 2);
          break;
        case 1:
          for (int64_t j = 0; j < inner; ++j) o[j] = i[j * step];
          break;
        default:
          for (int64_t j = 0; j < inner; ++j) std::memcpy(o + j * static_cast<int64_t>(esize), i + j * step, esize);
      }
    };
    if (rows * inner * static_cast<int64_t>(esize) > (1 << 16)) {
      ParallelFor(rows, 0, row);
    } else {
      for (int64_t r = 0; r < rows; ++r) row(r);
    }
    return Status::OK();
  }
};

class FillKernel : public Kernel {
 public:
  int dst = -1;
  std::vector<char> value;  // one element
  int64_t count = 0;

  Status Execute(ExecContext& ctx, int) const override {
    char* out = ctx.ptrs[static_cast<size_t>(dst)];
    bool zero = true;
    for (char b : value) zero = zero && b == 0;
    if (zero) {
      std::memset(out, 0, static_cast<size_t>(count) * value.size());
    } else {
      for (int64_t i = 0; i < count; ++i) std::memcpy(out + static_cast<size_t>(i) * value.size(), value.data(), value.size());
    }
    return Status::OK();
  }
};

bool CopyableType(DType dt) { return dt != DType::kString && dt != DType::kUndefined && DTypeSize(dt) > 0; }

// Merges output axes a, a+1 where the input walks them as one (stride_a == stride_{a+1} * d_{a+1}).
void Collapse(std::vector<int64_t>* dims, std::vector<int64_t>* strides) {
  std::vector<int64_t> d, s;
  for (size_t a = 0; a < dims->size(); ++a) {
    if ((*dims)[a] == 1) continue;  // walks nothing
    if (!d.empty() && s.back() == (*strides)[a] * (*dims)[a]) {
      d.back() *= (*dims)[a];
      s.back() = (*strides)[a];
      continue;
    }
    d.push_back((*dims)[a]);
    s.push_back((*strides)[a]);
  }
  if (d.empty()) {
    d.push_back(1);
    s.push_back(1);
  }
  *dims = std::move(d);
  *strides = std::move(s);
}

std::vector<int64_t> RowMajorStrides(const std::vector<int64_t>& dims) {
  std::vector<int64_t> s(dims.size(), 1);
  for (int a = static_cast<int>(dims.size()) - 2; a >= 0; --a) s[static_cast<size_t>(a)] = s[static_cast<size_t>(a) + 1] * dims[static_cast<size_t>(a) + 1];
  return s;
}

// A constant int32/int64 input as int64s, or nullopt.
std::optional<std::vector<int64_t>> ConstInts(const Graph& g, const Node& n, size_t i) {
  if (i >= n.inputs.size() || n.inputs[i] == kNoValue || !g.value(n.inputs[i]).constant) return std::nullopt;
  const Tensor& t = *g.value(n.inputs[i]).constant;
  if (t.dtype() != DType::kInt64 && t.dtype() != DType::kInt32) return std::nullopt;
  std::vector<int64_t> v;
  for (int64_t k = 0; k < t.numel(); ++k) v.push_back(static_cast<int64_t>(t.GetAsDouble(k)));
  return v;
}

void AddCopy(Compiler& c, NodeId id, const Node& node, ValueId in, ValueId out, std::vector<int64_t> dims,
             std::vector<int64_t> strides, int64_t base) {
  const Graph& g = c.graph();
  const DType dt = DTypeOfValue(g, in);
  auto k = std::make_unique<StridedCopyKernel>();
  k->esize = DTypeSize(dt);
  k->src = dt == DType::kFloat32 ? c.Plain(c.SlotOf(in)) : c.SlotOf(in);
  k->dst = c.NewRawSlot(out, DimsOf(g, out), dt);
  Collapse(&dims, &strides);
  k->dims = std::move(dims);
  k->strides = std::move(strides);
  k->base = base;
  k->reads = {k->src};
  k->writes = {k->dst};
  k->info = {node.name, node.op_type, "kiln:strided_copy", "", 0, id};
  k->info.elements = Numel(DimsOf(g, out));
  c.AddKernel(std::move(k));
}

}  // namespace

std::optional<SliceParams> ConstSliceParams(const Graph& g, const Node& n) {
  if (n.inputs.size() < 3) return std::nullopt;
  auto starts = ConstInts(g, n, 1), ends = ConstInts(g, n, 2);
  if (!starts || !ends || ends->size() != starts->size()) return std::nullopt;
  SliceParams p{*starts, *ends, {}, std::vector<int64_t>(starts->size(), 1)};
  if (n.inputs.size() > 3 && n.inputs[3] != kNoValue) {
    auto a = ConstInts(g, n, 3);
    if (!a) return std::nullopt;
    p.axes = *a;
  } else {
    for (size_t i = 0; i < starts->size(); ++i) p.axes.push_back(static_cast<int64_t>(i));
  }
  if (n.inputs.size() > 4 && n.inputs[4] != kNoValue) {
    auto st = ConstInts(g, n, 4);
    if (!st) return std::nullopt;
    p.steps = *st;
  }
  if (p.axes.size() != p.starts.size() || p.steps.size() != p.starts.size()) return std::nullopt;
  return p;
}

StatusOr<bool> LowerStridedCopy(Compiler& c, NodeId id) {
  const Graph& g = c.graph();
  const Node& node = g.node(id);
  if (IsFusedNode(node) || node.inputs.empty() || node.outputs.empty()) return false;
  const std::string& op = node.op_type;
  if (op == "ConstantOfShape") {
    const ValueId out = node.outputs[0];
    if (out == kNoValue || !CopyableType(DTypeOfValue(g, out))) return false;
    const DType dt = DTypeOfValue(g, out);
    auto k = std::make_unique<FillKernel>();
    k->value.assign(DTypeSize(dt), 0);
    if (const Attr* a = node.attrs.find("value")) {
      if (a->type != Attr::Type::kTensor || a->t.dtype() != dt || a->t.numel() != 1) return false;
      std::memcpy(k->value.data(), a->t.raw_data(), k->value.size());
    }
    k->count = Numel(DimsOf(g, out));
    k->dst = c.NewRawSlot(out, DimsOf(g, out), dt);
    k->writes = {k->dst};
    k->info = {node.name, node.op_type, "kiln:fill", "", 0, id};
    k->info.elements = k->count;
    c.AddKernel(std::move(k));
    return true;
  }
  const ValueId in = node.inputs[0];
  if (in == kNoValue || !CopyableType(DTypeOfValue(g, in))) return false;
  const std::vector<int64_t> x = DimsOf(g, in);
  const std::vector<int64_t> xs = RowMajorStrides(x);
  const int rank = static_cast<int>(x.size());
  if (op == "Transpose") {
    if (node.outputs.size() != 1 || node.outputs[0] == kNoValue) return false;
    KILN_ASSIGN_OR_RETURN(std::vector<int64_t> perm, node.attrs.GetInts("perm", {}));
    if (perm.empty())
      for (int a = rank - 1; a >= 0; --a) perm.push_back(a);
    if (static_cast<int>(perm.size()) != rank) return false;
    std::vector<int64_t> dims, strides;
    for (int64_t p : perm) {
      if (p < 0 || p >= rank) return false;
      dims.push_back(x[static_cast<size_t>(p)]);
      strides.push_back(xs[static_cast<size_t>(p)]);
    }
    if (dims != DimsOf(g, node.outputs[0])) return false;
    AddCopy(c, id, node, in, node.outputs[0], dims, strides, 0);
    return true;
  }
  if (op == "Slice") {
    if (node.outputs.size() != 1 || node.outputs[0] == kNoValue) return false;
    auto p = ConstSliceParams(g, node);
    if (!p) return false;
    const std::vector<int64_t>&starts = p->starts, &ends = p->ends, &axes = p->axes, &steps = p->steps;
    std::vector<int64_t> dims = x, strides = xs;
    int64_t base = 0;
    for (size_t i = 0; i < axes.size(); ++i) {
      const int64_t ax = axes[i] < 0 ? axes[i] + rank : axes[i];
      if (ax < 0 || ax >= rank || steps[i] == 0) return false;
      const SliceAxisRange r = ComputeSliceAxis(starts[i], ends[i], steps[i], x[static_cast<size_t>(ax)]);
      dims[static_cast<size_t>(ax)] = r.length;
      base += r.start * xs[static_cast<size_t>(ax)];
      strides[static_cast<size_t>(ax)] = xs[static_cast<size_t>(ax)] * steps[i];
    }
    if (dims != DimsOf(g, node.outputs[0])) return false;
    AddCopy(c, id, node, in, node.outputs[0], dims, strides, base);
    return true;
  }
  if (op == "Split") {
    KILN_ASSIGN_OR_RETURN(int64_t axis, node.attrs.GetInt("axis", 0));
    if (axis < 0) axis += rank;
    if (rank == 0 || axis < 0 || axis >= rank) return false;
    int64_t start = 0;
    std::vector<std::vector<int64_t>> parts;
    for (ValueId v : node.outputs) {
      if (v == kNoValue) return false;
      parts.push_back(DimsOf(g, v));
      if (static_cast<int>(parts.back().size()) != rank) return false;
      start += parts.back()[static_cast<size_t>(axis)];
    }
    if (start != x[static_cast<size_t>(axis)]) return false;
    start = 0;
    for (size_t k = 0; k < parts.size(); ++k) {
      AddCopy(c, id, node, in, node.outputs[k], parts[k], xs, start * xs[static_cast<size_t>(axis)]);
      start += parts[k][static_cast<size_t>(axis)];
    }
    return true;
  }
  if (op == "Expand") {
    if (node.outputs.size() != 1 || node.outputs[0] == kNoValue) return false;
    const std::vector<int64_t> dims = DimsOf(g, node.outputs[0]);
    if (dims.size() < x.size()) return false;
    std::vector<int64_t> strides(dims.size(), 0);
    const size_t lead = dims.size() - x.size();
    for (size_t a = 0; a < x.size(); ++a) {
      if (x[a] == dims[lead + a]) strides[lead + a] = xs[a];
      else if (x[a] != 1) return false;
    }
    AddCopy(c, id, node, in, node.outputs[0], dims, strides, 0);
    return true;
  }
  return false;
}

}  // namespace kiln::cpu
