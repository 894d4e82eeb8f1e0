// kiln's own broadcasting binary kernel (Add/Sub/Mul/Div/Max/Min on row-major f32, any
// NumPy broadcast of either operand) and the decomposition of an elementwise layer into
// one step per op, for the cases where oneDNN 2.6 has only its reference implementation
// (binary post-ops whose operand broadcasts along an inner axis of a 3-D tensor, eltwise
// primitives with post-ops, ...). Memory-bound: the iteration space is collapsed to
// [rows, inner] where both operands are either contiguous or constant along `inner`, and
// the inner loops are plain enough for the compiler to vectorize.
#include <algorithm>
#include <cstring>

#include "backends/cpu/lower_util.h"
#include "backends/cpu/parallel.h"

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

// One row: sa/sb are 0 (broadcast) or 1 (contiguous).
template <BinOp op>
__attribute__((optimize("O3"))) void Row(const float* __restrict a, int sa, const float* __restrict b, int sb,
                                         float* __restrict d, int64_t n) {
  if (sa == 1 && sb == 1) {
    for (int64_t i = 0; i < n; ++i) d[i] = Apply<op>(a[i], b[i]);
  } else if (sa == 1) {
    const float y = b[0];
    for (int64_t i = 0; i < n; ++i) d[i] = Apply<op>(a[i], y);
  } else if (sb == 1) {
    const float x = a[0];
    for (int64_t i = 0; i < n; ++i) d[i] = Apply<op>(x, b[i]);
  } else {
    const float v = Apply<op>(a[0], b[0]);
    for (int64_t i = 0; i < n; ++i) d[i] = v;
  }
}

using RowFn = void (*)(const float*, int, const float*, int, float*, int64_t);

RowFn RowFor(BinOp op) {
  switch (op) {
    case BinOp::kAdd: return &Row<BinOp::kAdd>;
    case BinOp::kSub: return &Row<BinOp::kSub>;
    case BinOp::kMul: return &Row<BinOp::kMul>;
    case BinOp::kDiv: return &Row<BinOp::kDiv>;
    case BinOp::kMax: return &Row<BinOp::kMax>;
    case BinOp::kMin: return &Row<BinOp::kMin>;
  }
  return nullptr;
}

class BroadcastBinaryKernel : public Kernel {
 public:
  int a = -1, b = -1, dst = -1;   // slots; b = -1: the owned constant `b_const`
  std::vector<float> b_const;
  RowFn row = nullptr;
  // Collapsed iteration space: outer dims (rows) and the inner length; per outer dim the
  // element strides of a and b (0 where broadcast); the inner strides (0 or 1).
  std::vector<int64_t> outer, a_stride, b_stride;
  int64_t inner = 1;
  int a_inner = 1, b_inner = 1;

  Status Execute(ExecContext& ctx, int) const override {
    const float* pa = reinterpret_cast<const float*>(ctx.ptrs[static_cast<size_t>(a)]);
    const float* pb = b >= 0 ? reinterpret_cast<const float*>(ctx.ptrs[static_cast<size_t>(b)]) : b_const.data();
    float* pd = reinterpret_cast<float*>(ctx.ptrs[static_cast<size_t>(dst)]);
    int64_t rows = 1;
    for (int64_t d : outer) rows *= d;
    auto body = [&](int64_t r) {
      int64_t oa = 0, ob = 0, rem = r;
      for (size_t k = outer.size(); k-- > 0;) {
        const int64_t i = rem % outer[k];
        rem /= outer[k];
        oa += i * a_stride[k];
        ob += i * b_stride[k];
      }
      row(pa + oa, a_inner, pb + ob, b_inner, pd + r * inner, inner);
    };
    if (rows * inner > (1 << 15) && rows > 1) ParallelFor(rows, 0, body);
    else for (int64_t r = 0; r < rows; ++r) body(r);
    return Status::OK();
  }
};

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

}  // namespace

bool AddBroadcastBinary(Compiler& c, dnnl::algorithm alg, int a_slot, int b_slot, const std::vector<float>* b_const,
                        const std::vector<int64_t>& b_dims, int dst_slot, const std::string& name, const std::string& op,
                        int node) {
  auto bop = ToBinOp(alg);
  if (!bop) return false;
  const std::vector<int64_t> out = c.program().slots[static_cast<size_t>(dst_slot)].dims;
  const int rank = static_cast<int>(out.size());
  const std::vector<int64_t> ad = LeftPad(c.program().slots[static_cast<size_t>(a_slot)].dims, rank);
  const std::vector<int64_t> bd = LeftPad(b_dims, rank);
  std::vector<int64_t> sa = BroadcastStrides(ad, out), sb = BroadcastStrides(bd, out);
  // Collapse adjacent dims where both operands stay linear (size-1 dims drop out).
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
  auto k = std::make_unique<BroadcastBinaryKernel>();
  k->row = RowFor(*bop);
  k->inner = dims.back();
  k->a_inner = da.back() == 0 ? 0 : 1;
  k->b_inner = db.back() == 0 ? 0 : 1;
  // An inner stride other than 0/1 cannot happen: the innermost kept dim has stride 1 or 0.
  if ((da.back() != 0 && da.back() != 1) || (db.back() != 0 && db.back() != 1)) return false;
  k->outer.assign(dims.begin(), dims.end() - 1);
  k->a_stride.assign(da.begin(), da.end() - 1);
  k->b_stride.assign(db.begin(), db.end() - 1);
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

}  // namespace kiln::cpu
