// kiln's own broadcasting binary kernels (Add/Sub/Mul/Div/Max/Min on row-major f32, and
// comparisons of f32 into bool masks; any NumPy broadcast of either operand) and the decomposition of an elementwise layer into
// one step per op, for the cases where oneDNN 2.6 has only its reference implementation
// (binary post-ops whose operand broadcasts along an inner axis of a 3-D tensor, eltwise
// primitives with post-ops, ...). Memory-bound: the iteration space is collapsed to
// [rows, inner] where both operands are either contiguous or constant along `inner`, and
// the inner loops are plain enough for the compiler to vectorize.
#include <algorithm>
#include <cstring>
#include <map>

#include "backends/cpu/lower_util.h"
#include "backends/cpu/parallel.h"
#include "ir/op_schema.h"

namespace kiln::cpu {

namespace {

enum class BinOp { kAdd, kSub, kMul, kDiv, kMax, kMin };

std::optional<BinOp> ToBinOp(dnnl::algorithm a) {
  switch (a) {
    case dnnl::algorithm::binary_add: return BinOp::kAdd;
    case dnnl::algorithm::binary_sub: return BinOp::kSub;
    case dnnl::algorithm::binary_mul: return BinOp::kMul;
    case dnnl::algorithm::binary_div: return BinOp::kDiv;
    case dnnl::algorithm::binary_max: return BinOp::kMax;
    case dnnl::algorithm::binary_min: return BinOp::kMin;
    default: return std::nullopt;
  }
}

template <BinOp op>
inline float Apply(float x, float y) {
  if constexpr (op == BinOp::kAdd) return x + y;
  if constexpr (op == BinOp::kSub) return x - y;
  if constexpr (op == BinOp::kMul) return x * y;
  if constexpr (op == BinOp::kDiv) return x / y;
  if constexpr (op == BinOp::kMax) return x > y || x != x ? x : y;  // NaN propagates, as ONNX Max
  if constexpr (op == BinOp::kMin) return x < y || x != x ? x : y;
}

// One row of d = f(a, b): sa/sb are 0 (broadcast) or 1 (contiguous). f is a compile-time
// function (arithmetic into float, comparison into a bool byte), inlined so the loops vectorize.
template <typename Out, Out (*F)(float, float)>
__attribute__((optimize("O3"))) void RowOf(const float* __restrict a, int sa, const float* __restrict b, int sb,
                                           Out* __restrict d, int64_t n) {
  if (sa == 1 && sb == 1) {
    for (int64_t i = 0; i < n; ++i) d[i] = F(a[i], b[i]);
  } else if (sa == 1) {
    const float y = b[0];
    for (int64_t i = 0; i < n; ++i) d[i] = F(a[i], y);
  } else if (sb == 1) {
    const float x = a[0];
    for (int64_t i = 0; i < n; ++i) d[i] = F(x, b[i]);
  } else {
    const Out v = F(a[0], b[0]);
    for (int64_t i = 0; i < n; ++i) d[i] = v;
  }
}
template <BinOp op>
constexpr auto Row = &RowOf<float, &Apply<op>>;

using RowFn = void (*)(const float*, int, const float*, int, float*, int64_t);

RowFn RowFor(BinOp op) {
  switch (op) {
    case BinOp::kAdd: return Row<BinOp::kAdd>;
    case BinOp::kSub: return Row<BinOp::kSub>;
    case BinOp::kMul: return Row<BinOp::kMul>;
    case BinOp::kDiv: return Row<BinOp::kDiv>;
    case BinOp::kMax: return Row<BinOp::kMax>;
    case BinOp::kMin: return Row<BinOp::kMin>;
  }
  return nullptr;
}

// Element strides of an operand of dims `d` (left-padded to out's rank) broadcast to `out`.
std::vector<int64_t> BroadcastStrides(const std::vector<int64_t>& d, const std::vector<int64_t>& out) {
  std::vector<int64_t> s(out.size(), 0);
  int64_t st = 1;
  for (size_t k = out.size(); k-- > 0;) {
    s[k] = d[k] == 1 && out[k] != 1 ? 0 : st;
    st *= d[k];
  }
  return s;
}

// The collapsed iteration space of out = a (op) b: adjacent dims where both operands stay
// linear merge (size-1 dims drop out); per outer dim the element strides of a and b (0 where
// broadcast), the inner length and inner strides (0 or 1). Null when an inner stride is not 0/1.
struct BroadcastIter {
  std::vector<int64_t> outer, a_stride, b_stride;
  int64_t inner = 1;
  int a_inner = 1, b_inner = 1;
};

std::optional<BroadcastIter> CollapseBroadcast(const std::vector<int64_t>& a_dims, const std::vector<int64_t>& b_dims,
                                               const std::vector<int64_t>& out) {
  const int rank = static_cast<int>(out.size());
  const std::vector<int64_t> ad = LeftPad(a_dims, rank);
  const std::vector<int64_t> bd = LeftPad(b_dims, rank);
  std::vector<int64_t> sa = BroadcastStrides(ad, out), sb = BroadcastStrides(bd, out);
  std::vector<int64_t> dims, da, db;
  for (int k = 0; k < rank; ++k) {
    if (out[static_cast<size_t>(k)] == 1) continue;
    if (!dims.empty() && da.back() == sa[static_cast<size_t>(k)] * out[static_cast<size_t>(k)] &&
        db.back() == sb[static_cast<size_t>(k)] * out[static_cast<size_t>(k)]) {
      dims.back() *= out[static_cast<size_t>(k)];
      da.back() = sa[static_cast<size_t>(k)];
      db.back() = sb[static_cast<size_t>(k)];
      continue;
    }
    dims.push_back(out[static_cast<size_t>(k)]);
    da.push_back(sa[static_cast<size_t>(k)]);
    db.push_back(sb[static_cast<size_t>(k)]);
  }
  if (dims.empty()) {
    dims = {1};
    da = {1};
    db = {1};
  }
  // An inner stride other than 0/1 cannot happen: the innermost kept dim has stride 1 or 0.
  if ((da.back() != 0 && da.back() != 1) || (db.back() != 0 && db.back() != 1)) return std::nullopt;
  BroadcastIter it;
  it.inner = dims.back();
  it.a_inner = da.back() == 0 ? 0 : 1;
  it.b_inner = db.back() == 0 ? 0 : 1;
  it.outer.assign(dims.begin(), dims.end() - 1);
  it.a_stride.assign(da.begin(), da.end() - 1);
  it.b_stride.assign(db.begin(), db.end() - 1);
  return it;
}

// Runs body(row, a offset, b offset) over the iteration's rows (in parallel when large).
template <typename Body>
void ForEachRow(const BroadcastIter& it, const Body& body) {
  int64_t rows = 1;
  for (int64_t d : it.outer) rows *= d;
  auto one = [&](int64_t r) {
    int64_t oa = 0, ob = 0, rem = r;
    for (size_t k = it.outer.size(); k-- > 0;) {
      const int64_t i = rem % it.outer[k];
      rem /= it.outer[k];
      oa += i * it.a_stride[k];
      ob += i * it.b_stride[k];
    }
    body(r, oa, ob);
  };
  if (rows * it.inner > (1 << 15) && rows > 1) ParallelFor(rows, 0, one);
  else for (int64_t r = 0; r < rows; ++r) one(r);
}

// out = a (op) b over the collapsed iteration, one row function per op: float results
// (arithmetic) or bool masks (comparisons).
template <typename Out>
class BroadcastKernel : public Kernel {
 public:
  using RowFnT = void (*)(const float*, int, const float*, int, Out*, int64_t);
  int a = -1, b = -1, dst = -1;   // slots; b = -1: the owned constant `b_const`
  std::vector<float> b_const;
  RowFnT row = nullptr;
  BroadcastIter it;

  Status Execute(ExecContext& ctx, int) const override {
    const float* pa = reinterpret_cast<const float*>(ctx.ptrs[static_cast<size_t>(a)]);
    const float* pb = b >= 0 ? reinterpret_cast<const float*>(ctx.ptrs[static_cast<size_t>(b)]) : b_const.data();
    Out* pd = reinterpret_cast<Out*>(ctx.ptrs[static_cast<size_t>(dst)]);
    ForEachRow(it, [&](int64_t r, int64_t oa, int64_t ob) {
      row(pa + oa, it.a_inner, pb + ob, it.b_inner, pd + r * it.inner, it.inner);
    });
    return Status::OK();
  }
};
using BroadcastBinaryKernel = BroadcastKernel<float>;

enum class CmpOp { kGreater, kLess, kEqual, kGreaterOrEqual, kLessOrEqual };

template <CmpOp op>
inline uint8_t Compare(float x, float y) {
  if constexpr (op == CmpOp::kGreater) return x > y;
  if constexpr (op == CmpOp::kLess) return x < y;
  if constexpr (op == CmpOp::kEqual) return x == y;
  if constexpr (op == CmpOp::kGreaterOrEqual) return x >= y;
  if constexpr (op == CmpOp::kLessOrEqual) return x <= y;
}

template <CmpOp op>
constexpr auto CompareRow = &RowOf<uint8_t, &Compare<op>>;

using CompareKernel = BroadcastKernel<uint8_t>;

}  // namespace

bool AddBroadcastBinary(Compiler& c, dnnl::algorithm alg, int a_slot, int b_slot, const std::vector<float>* b_const,
                        const std::vector<int64_t>& b_dims, int dst_slot, const std::string& name, const std::string& op,
                        int node) {
  auto bop = ToBinOp(alg);
  if (!bop) return false;
  const std::vector<int64_t> out = c.program().slots[static_cast<size_t>(dst_slot)].dims;
  auto it = CollapseBroadcast(c.program().slots[static_cast<size_t>(a_slot)].dims, b_dims, out);
  if (!it) return false;
  auto k = std::make_unique<BroadcastBinaryKernel>();
  k->row = RowFor(*bop);
  k->it = *it;
  k->a = a_slot;
  k->b = b_slot;
  if (b_slot < 0) k->b_const = *b_const;
  k->dst = dst_slot;
  k->reads = {a_slot};
  if (b_slot >= 0) k->reads.push_back(b_slot);
  k->writes = {dst_slot};
  k->info = {name, op, "kiln:binary_broadcast", "", 0, node};
  c.AddKernel(std::move(k));
  return true;
}

StatusOr<bool> LowerCompare(Compiler& c, NodeId id) {
  // Comparisons of float tensors into bool masks (score > threshold, attention masks): any
  // NumPy broadcast, a constant operand held by the kernel; a constant first operand swaps
  // sides (and the comparison's direction).
  const Graph& g = c.graph();
  const Node& node = g.node(id);
  static const std::map<std::string, CmpOp> kOps = {{"Greater", CmpOp::kGreater}, {"Less", CmpOp::kLess},
                                                    {"Equal", CmpOp::kEqual}, {"GreaterOrEqual", CmpOp::kGreaterOrEqual},
                                                    {"LessOrEqual", CmpOp::kLessOrEqual}};
  auto found = kOps.find(node.op_type);
  if (found == kOps.end() || IsFusedNode(node) || node.inputs.size() != 2 || node.outputs.size() != 1) return false;
  ValueId va = node.inputs[0], vb = node.inputs[1];
  const ValueId out = node.outputs[0];
  if (va == kNoValue || vb == kNoValue || out == kNoValue) return false;
  if (DTypeOfValue(g, va) != DType::kFloat32 || DTypeOfValue(g, vb) != DType::kFloat32 || DTypeOfValue(g, out) != DType::kBool)
    return false;
  CmpOp op = found->second;
  if (g.value(va).constant && !g.value(vb).constant) {
    std::swap(va, vb);
    if (op == CmpOp::kGreater) op = CmpOp::kLess;
    else if (op == CmpOp::kLess) op = CmpOp::kGreater;
    else if (op == CmpOp::kGreaterOrEqual) op = CmpOp::kLessOrEqual;
    else if (op == CmpOp::kLessOrEqual) op = CmpOp::kGreaterOrEqual;
  }
  if (g.value(va).constant) return false;  // both constant: folded before this
  const std::vector<int64_t> od = DimsOf(g, out);
  auto it = CollapseBroadcast(DimsOf(g, va), DimsOf(g, vb), od);
  if (!it) return false;
  auto k = std::make_unique<CompareKernel>();
  k->it = *it;
  switch (op) {
    case CmpOp::kGreater: k->row = CompareRow<CmpOp::kGreater>; break;
    case CmpOp::kLess: k->row = CompareRow<CmpOp::kLess>; break;
    case CmpOp::kEqual: k->row = CompareRow<CmpOp::kEqual>; break;
    case CmpOp::kGreaterOrEqual: k->row = CompareRow<CmpOp::kGreaterOrEqual>; break;
    case CmpOp::kLessOrEqual: k->row = CompareRow<CmpOp::kLessOrEqual>; break;
  }
  k->a = c.Plain(c.SlotOf(va));
  if (g.value(vb).constant) {
    const Tensor& t = *g.value(vb).constant;
    k->b_const.assign(t.data<float>(), t.data<float>() + t.numel());
  } else {
    k->b = c.Plain(c.SlotOf(vb));
  }
  k->dst = c.NewRawSlot(out, od, DType::kBool);
  k->reads = {k->a};
  if (k->b >= 0) k->reads.push_back(k->b);
  k->writes = {k->dst};
  k->info = {node.name, node.op_type, "kiln:compare", "", 0, id};
  k->info.elements = Numel(od);
  c.AddKernel(std::move(k));
  return true;
}

}  // namespace kiln::cpu
