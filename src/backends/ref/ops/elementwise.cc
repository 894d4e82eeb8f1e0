// Reference kernels of the elementwise family. Floating-point math runs in double and is
// rounded once to the output type; integer math runs natively in 64 bits (no UB on
// division by zero or overflow: division by zero gives 0, like NumPy's integer result).
#include <cmath>
#include <functional>
#include <limits>
#include <map>
#include <random>

#include "backends/ref/kernel.h"
#include "backends/ref/ops/broadcast.h"
#include "ir/ops/families.h"

namespace kiln {

namespace {

using ref::BroadcastDims;
using ref::BroadcastIter;

// ---------------------------------------------------------------- unary

struct UnaryParams {
  double alpha = 0, beta = 0, gamma = 0, lambd = 0, bias = 0;
  std::string approximate;
};

using UnaryFloatFn = double (*)(double, const UnaryParams&);

double Erf(double x, const UnaryParams&) { return std::erf(x); }
double SigmoidOf(double x) { return x >= 0 ? 1 / (1 + std::exp(-x)) : std::exp(x) / (1 + std::exp(x)); }
double Softplus(double x) { return x > 30 ? x : std::log1p(std::exp(x)); }
double RoundHalfEven(double x) { return std::nearbyint(x); }  // default rounding mode is to-nearest-even

const std::map<std::string, UnaryFloatFn>& UnaryFloatTable() {
  static const std::map<std::string, UnaryFloatFn> t = {
      {"Abs", [](double x, const UnaryParams&) { return std::fabs(x); }},
      {"Acos", [](double x, const UnaryParams&) { return std::acos(x); }},
      {"Acosh", [](double x, const UnaryParams&) { return std::acosh(x); }},
      {"Asin", [](double x, const UnaryParams&) { return std::asin(x); }},
      {"Asinh", [](double x, const UnaryParams&) { return std::asinh(x); }},
      {"Atan", [](double x, const UnaryParams&) { return std::atan(x); }},
      {"Atanh", [](double x, const UnaryParams&) { return std::atanh(x); }},
      {"Ceil", [](double x, const UnaryParams&) { return std::ceil(x); }},
      {"Cos", [](double x, const UnaryParams&) { return std::cos(x); }},
      {"Cosh", [](double x, const UnaryParams&) { return std::cosh(x); }},
      {"Erf", &Erf},
      {"Exp", [](double x, const UnaryParams&) { return std::exp(x); }},
      {"Floor", [](double x, const UnaryParams&) { return std::floor(x); }},
      {"Log", [](double x, const UnaryParams&) { return std::log(x); }},
      {"Neg", [](double x, const UnaryParams&) { return -x; }},
      {"Reciprocal", [](double x, const UnaryParams&) { return 1.0 / x; }},
      {"Round", [](double x, const UnaryParams&) { return RoundHalfEven(x); }},
      {"Sign", [](double x, const UnaryParams&) { return std::isnan(x) ? x : double((x > 0) - (x < 0)); }},
      {"Sin", [](double x, const UnaryParams&) { return std::sin(x); }},
      {"Sinh", [](double x, const UnaryParams&) { return std::sinh(x); }},
      {"Sqrt", [](double x, const UnaryParams&) { return std::sqrt(x); }},
      {"Tan", [](double x, const UnaryParams&) { return std::tan(x); }},
      {"Tanh", [](double x, const UnaryParams&) { return std::tanh(x); }},
      {"Relu", [](double x, const UnaryParams&) { return x > 0 ? x : 0.0; }},
      {"Sigmoid", [](double x, const UnaryParams&) { return SigmoidOf(x); }},
      {"Softplus", [](double x, const UnaryParams&) { return Softplus(x); }},
      {"Softsign", [](double x, const UnaryParams&) { return x / (1 + std::fabs(x)); }},
      {"HardSwish", [](double x, const UnaryParams&) { return x * std::max(0.0, std::min(1.0, x / 6 + 0.5)); }},
      {"Mish", [](double x, const UnaryParams&) { return x * std::tanh(Softplus(x)); }},
      {"Swish", [](double x, const UnaryParams& p) { return x * SigmoidOf(p.alpha * x); }},
      {"Elu", [](double x, const UnaryParams& p) { return x >= 0 ? x : p.alpha * (std::exp(x) - 1); }},
      {"Selu", [](double x, const UnaryParams& p) { return p.gamma * (x > 0 ? x : p.alpha * (std::exp(x) - 1)); }},
      {"Celu", [](double x, const UnaryParams& p) { return std::max(0.0, x) + std::min(0.0, p.alpha * (std::exp(x / p.alpha) - 1)); }},
      {"LeakyRelu", [](double x, const UnaryParams& p) { return x >= 0 ? x : p.alpha * x; }},
      {"HardSigmoid", [](double x, const UnaryParams& p) { return std::max(0.0, std::min(1.0, p.alpha * x + p.beta)); }},
      {"ThresholdedRelu", [](double x, const UnaryParams& p) { return x > p.alpha ? x : 0.0; }},
      {"Shrink", [](double x, const UnaryParams& p) { return x < -p.lambd ? x + p.bias : (x > p.lambd ? x - p.bias : 0.0); }},
      {"Gelu", [](double x, const UnaryParams& p) {
         if (p.approximate == "tanh")
           return 0.5 * x * (1 + std::tanh(std::sqrt(2 / M_PI) * (x + 0.044715 * x * x * x)));
         return 0.5 * x * (1 + std::erf(x / std::sqrt(2.0)));
       }},
  };
  return t;
}

StatusOr<UnaryParams> ReadUnaryParams(const Node& n) {
  const std::string& op = n.op_type;
  UnaryParams p;
  double alpha_default = op == "Elu" ? 1.0 : op == "LeakyRelu" ? 0.01 : op == "HardSigmoid" ? 0.2
                         : op == "Selu" ? 1.67326319217681884765625 : op == "Celu" || op == "ThresholdedRelu" || op == "Swish" ? 1.0 : 0.0;
  KILN_ASSIGN_OR_RETURN(float a, n.attrs.GetFloat("alpha", static_cast<float>(alpha_default)));
  KILN_ASSIGN_OR_RETURN(float b, n.attrs.GetFloat("beta", 0.5f));
  KILN_ASSIGN_OR_RETURN(float g, n.attrs.GetFloat("gamma", 1.05070102214813232421875f));
  KILN_ASSIGN_OR_RETURN(float l, n.attrs.GetFloat("lambd", 0.5f));
  KILN_ASSIGN_OR_RETURN(float bias, n.attrs.GetFloat("bias", 0.0f));
  KILN_ASSIGN_OR_RETURN(p.approximate, n.attrs.GetString("approximate", "none"));
  p.alpha = a;
  p.beta = op == "HardSigmoid" ? b : 0.0;
  p.gamma = g;
  p.lambd = l;
  p.bias = bias;
  if (op == "Celu" && a == 0) return InvalidArgument("attribute 'alpha' must be non-zero");
  return p;
}

template <typename T>
constexpr bool kIsFloatLike = std::is_floating_point_v<T> || std::is_same_v<T, Float16> || std::is_same_v<T, BFloat16>;

// Integer versions of the unary ops that are defined on integers.
template <typename T>
StatusOr<T> UnaryInt(const std::string& op, T x) {
  if (op == "Abs") { if constexpr (std::is_signed_v<T>) return x < 0 ? T(-x) : x; else return x; }
  if (op == "Neg") return static_cast<T>(-static_cast<std::make_signed_t<T>>(x));
  if (op == "Sign") { if constexpr (std::is_signed_v<T>) return T((x > 0) - (x < 0)); else return T(x > 0); }
  if (op == "Relu") return x > 0 ? x : T(0);
  if (op == "BitwiseNot") return static_cast<T>(~x);
  if (op == "Ceil" || op == "Floor" || op == "Round") return x;
  return Unimplemented(op, " is not defined for integer inputs");
}

Status UnaryKernel(RefContext& ctx) {
  KILN_RETURN_IF_ERROR(ctx.RequireTensor(0));
  const Tensor& x = ctx.input(0);
  const std::string& op = ctx.node().op_type;
  if (op == "Not") {
    if (x.dtype() != DType::kBool) return InvalidArgument("Not takes bool input");
    Tensor y(DType::kBool, x.dims());
    for (int64_t i = 0; i < x.numel(); ++i) y.data<bool>()[i] = !x.data<bool>()[i];
    ctx.set_output(0, std::move(y));
    return Status::OK();
  }
  if (op == "IsNaN" || op == "IsInf") {
    KILN_ASSIGN_OR_RETURN(int64_t pos, ctx.attrs().GetInt("detect_positive", 1));
    KILN_ASSIGN_OR_RETURN(int64_t neg, ctx.attrs().GetInt("detect_negative", 1));
    Tensor y(DType::kBool, x.dims());
    for (int64_t i = 0; i < x.numel(); ++i) {
      double v = x.GetAsDouble(i);
      y.data<bool>()[i] = op == "IsNaN" ? std::isnan(v) : (std::isinf(v) && ((v > 0 && pos) || (v < 0 && neg)));
    }
    ctx.set_output(0, std::move(y));
    return Status::OK();
  }
  KILN_ASSIGN_OR_RETURN(UnaryParams p, ReadUnaryParams(ctx.node()));
  Tensor y(x.dtype(), x.dims());
  Status st;
  bool ok = VisitNumeric(x.dtype(), [&](auto tag) {
    using T = typename decltype(tag)::type;
    const T* in = x.data<T>();
    T* out = y.data<T>();
    if constexpr (kIsFloatLike<T>) {
      auto it = UnaryFloatTable().find(op);
      if (it == UnaryFloatTable().end()) { st = Unimplemented(op, " is not defined for ", DTypeName(x.dtype())); return; }
      for (int64_t i = 0; i < x.numel(); ++i) out[i] = FromDouble<T>(it->second(ToDouble(in[i]), p));
    } else if constexpr (std::is_same_v<T, bool>) {
      st = Unimplemented(op, " is not defined for bool");
    } else {
      for (int64_t i = 0; i < x.numel(); ++i) {
        auto r = UnaryInt<T>(op, in[i]);
        if (!r.ok()) { st = r.status(); return; }
        out[i] = *r;
      }
    }
  });
  if (!ok) return Unimplemented(op, " is not defined for ", DTypeName(x.dtype()));
  KILN_RETURN_IF_ERROR(st);
  ctx.set_output(0, std::move(y));
  return Status::OK();
}

// ---------------------------------------------------------------- binary

// Wide type in which T's arithmetic is done.
// fp32/fp16/bf16 arithmetic runs in float (IEEE fp32 semantics, as other runtimes do), fp64 in double.
template <typename T>
using Wide = std::conditional_t<kIsFloatLike<T>, std::conditional_t<std::is_same_v<T, double>, double, float>,
                                std::conditional_t<std::is_same_v<T, bool>, int64_t,
                                                   std::conditional_t<std::is_signed_v<T>, int64_t, uint64_t>>>;

template <typename W>
W PythonMod(W a, W b) {
  if (b == 0) return 0;
  if constexpr (std::is_signed_v<W>) {
    W r = a % b;
    if (r != 0 && ((r < 0) != (b < 0))) r += b;
    return r;
  } else {
    return a % b;
  }
}

// Arithmetic on two elements of storage type T; `op` names the ONNX op.
template <typename T>
struct BinaryArith {
  std::string op;
  bool fmod = false;
  bool shift_left = true;
  Status Check(DType dt) const {
    const bool is_bitwise = op == "BitShift" || op.rfind("Bitwise", 0) == 0;
    if (is_bitwise && !IsInteger(dt)) return InvalidArgument(op, " takes integer inputs, got ", DTypeName(dt));
    if ((op == "And" || op == "Or" || op == "Xor") && dt != DType::kBool)
      return InvalidArgument(op, " takes bool inputs, got ", DTypeName(dt));
    if (op == "Mod" && !fmod && IsFloat(dt)) return InvalidArgument("Mod on floating-point inputs requires fmod=1");
    return Status::OK();
  }
  T operator()(T ta, T tb) const {
    using W = Wide<T>;
    W a = static_cast<W>(ToDouble(ta)), b = static_cast<W>(ToDouble(tb));
    // (Integers sign-extend into W, as intended.)
    if constexpr (!kIsFloatLike<T>) { a = static_cast<W>(ta); b = static_cast<W>(tb); }  // NOLINT(bugprone-signed-char-misuse)
    W r = 0;
    // Integers wrap around on overflow (two's complement, as NumPy and ONNX Runtime do);
    // signed overflow in C++ is undefined, so the arithmetic runs unsigned.
    if constexpr (std::is_integral_v<W>) {
      using U = std::make_unsigned_t<W>;
      if (op == "Add" || op == "Sum") return static_cast<T>(static_cast<W>(static_cast<U>(a) + static_cast<U>(b)));
      if (op == "Sub") return static_cast<T>(static_cast<W>(static_cast<U>(a) - static_cast<U>(b)));
      if (op == "Mul") return static_cast<T>(static_cast<W>(static_cast<U>(a) * static_cast<U>(b)));
    }
    if (op == "Add" || op == "Sum") r = a + b;
    else if (op == "Sub") r = a - b;
    else if (op == "Mul") r = a * b;
    else if (op == "Div") {
      if constexpr (kIsFloatLike<T>) r = a / b;
      else r = b == 0 ? 0 : (std::is_signed_v<W> && b == W(-1) ? W(0) - a : a / b);
    } else if (op == "Max") r = std::isnan(ToDouble(ta)) || std::isnan(ToDouble(tb)) ? W(NAN) : std::max(a, b);
    else if (op == "Min") r = std::isnan(ToDouble(ta)) || std::isnan(ToDouble(tb)) ? W(NAN) : std::min(a, b);
    else if (op == "Mod") {
      if constexpr (kIsFloatLike<T>) r = static_cast<W>(std::fmod(a, b));
      else r = fmod ? (b == 0 ? 0 : a % b) : PythonMod(a, b);
    } else if (op == "PRelu") r = a < 0 ? a * b : a;
    else if constexpr (!kIsFloatLike<T>) {
      if (op == "BitShift") r = b >= W(sizeof(T) * 8) ? 0 : (shift_left ? W(a << b) : W(a >> b));
      else if (op == "BitwiseAnd" || op == "And") r = a & b;
      else if (op == "BitwiseOr" || op == "Or") r = a | b;
      else if (op == "BitwiseXor" || op == "Xor") r = a ^ b;
    }
    if constexpr (kIsFloatLike<T>) return FromDouble<T>(static_cast<double>(r));
    else return static_cast<T>(r);
  }
};

Status BinaryKernelImpl(RefContext& ctx, const std::vector<const Tensor*>& ins, Tensor* out) {
  const std::string& op = ctx.node().op_type;
  std::vector<std::vector<int64_t>> dims;
  for (const Tensor* t : ins) dims.push_back(t->dims());
  KILN_ASSIGN_OR_RETURN(std::vector<int64_t> od, BroadcastDims(dims));
  const DType dt = ins[0]->dtype();
  for (const Tensor* t : ins)
    if (t->dtype() != dt) return InvalidArgument("inputs must have the same element type");
  KILN_ASSIGN_OR_RETURN(int64_t fmod, ctx.attrs().GetInt("fmod", 0));
  KILN_ASSIGN_OR_RETURN(std::string dir, ctx.attrs().GetString("direction", "LEFT"));
  if (op == "BitShift" && dir != "LEFT" && dir != "RIGHT")
    return InvalidArgument("attribute 'direction' must be LEFT or RIGHT, got '", dir, "'");
  Tensor y(dt, od);
  Status st;
  bool ok = VisitNumeric(dt, [&](auto tag) {
    using T = typename decltype(tag)::type;
    BinaryArith<T> f{op == "Mean" ? "Sum" : op, fmod != 0, dir == "LEFT"};
    st = f.Check(dt);
    if (!st.ok()) return;
    // Fold left to right over the inputs (variadic ops).
    std::vector<const Tensor*> acc = {ins[0]};
    Tensor cur = *ins[0];
    for (size_t k = 1; k < ins.size(); ++k) {
      KILN_ASSIGN_OR_RETURN_VOID_(std::vector<int64_t> d2, BroadcastDims({cur.dims(), ins[k]->dims()}), st);
      Tensor next(dt, d2);
      const T* a = cur.data<T>();
      const T* b = ins[k]->data<T>();
      T* o = next.data<T>();
      for (BroadcastIter it(d2, {cur.dims(), ins[k]->dims()}); !it.done(); it.Next())
        o[it.index()] = f(a[it.offset(0)], b[it.offset(1)]);
      cur = std::move(next);
    }
    if (ins.size() == 1) cur = ins[0]->Clone();
    if (op == "Mean") {
      if constexpr (kIsFloatLike<T>) {
        for (int64_t i = 0; i < cur.numel(); ++i)
          cur.data<T>()[i] = FromDouble<T>(ToDouble(cur.data<T>()[i]) / static_cast<double>(ins.size()));
      } else {
        st = InvalidArgument("Mean takes floating-point inputs");
      }
    }
    y = std::move(cur);
  });
  if (!ok) return Unimplemented(op, " is not defined for ", DTypeName(dt));
  KILN_RETURN_IF_ERROR(st);
  *out = std::move(y);
  return Status::OK();
}

Status BinaryKernel(RefContext& ctx) {
  std::vector<const Tensor*> ins;
  for (int i = 0; i < ctx.num_inputs(); ++i) {
    KILN_RETURN_IF_ERROR(ctx.RequireTensor(i));
    ins.push_back(&ctx.input(i));
  }
  Tensor y;
  KILN_RETURN_IF_ERROR(BinaryKernelImpl(ctx, ins, &y));
  ctx.set_output(0, std::move(y));
  return Status::OK();
}

Status PowKernel(RefContext& ctx) {
  KILN_RETURN_IF_ERROR(ctx.RequireTensor(0));
  KILN_RETURN_IF_ERROR(ctx.RequireTensor(1));
  const Tensor& a = ctx.input(0);
  const Tensor& b = ctx.input(1);
  KILN_ASSIGN_OR_RETURN(std::vector<int64_t> od, BroadcastDims({a.dims(), b.dims()}));
  Tensor y(a.dtype(), od);
  for (BroadcastIter it(od, {a.dims(), b.dims()}); !it.done(); it.Next()) {
    double r = std::pow(a.GetAsDouble(it.offset(0)), b.GetAsDouble(it.offset(1)));
    ref::StoreDouble(y, it.index(), IsInteger(a.dtype()) ? std::trunc(r) : r);
  }
  ctx.set_output(0, std::move(y));
  return Status::OK();
}

Status CompareKernel(RefContext& ctx) {
  KILN_RETURN_IF_ERROR(ctx.RequireTensor(0));
  KILN_RETURN_IF_ERROR(ctx.RequireTensor(1));
  const Tensor& a = ctx.input(0);
  const Tensor& b = ctx.input(1);
  if (a.dtype() != b.dtype()) return InvalidArgument("inputs must have the same element type");
  KILN_ASSIGN_OR_RETURN(std::vector<int64_t> od, BroadcastDims({a.dims(), b.dims()}));
  const std::string& op = ctx.node().op_type;
  const int code = op == "Equal" ? 0 : op == "Greater" ? 1 : op == "GreaterOrEqual" ? 2 : op == "Less" ? 3 : 4;
  Tensor y(DType::kBool, od);
  auto cmp = [code](auto x, auto z) {
    switch (code) {
      case 0: return x == z;
      case 1: return x > z;
      case 2: return x >= z;
      case 3: return x < z;
      default: return x <= z;
    }
  };
  bool ok = VisitAny(a.dtype(), [&](auto tag) {
    using T = typename decltype(tag)::type;
    const T* pa = a.data<T>();
    const T* pb = b.data<T>();
    for (BroadcastIter it(od, {a.dims(), b.dims()}); !it.done(); it.Next()) {
      // (One branch per type family: the same text, different types.)
      // NOLINTNEXTLINE(bugprone-branch-clone)
      if constexpr (std::is_same_v<T, std::string>) y.data<bool>()[it.index()] = code == 0 && pa[it.offset(0)] == pb[it.offset(1)];
      else if constexpr (kIsFloatLike<T>) y.data<bool>()[it.index()] = cmp(ToDouble(pa[it.offset(0)]), ToDouble(pb[it.offset(1)]));
      else if constexpr (std::is_same_v<T, std::complex<float>> || std::is_same_v<T, std::complex<double>>) y.data<bool>()[it.index()] = code == 0 && pa[it.offset(0)] == pb[it.offset(1)];
      else y.data<bool>()[it.index()] = cmp(pa[it.offset(0)], pb[it.offset(1)]);
    }
  });
  if (!ok) return Unimplemented(op, " is not defined for ", DTypeName(a.dtype()));
  ctx.set_output(0, std::move(y));
  return Status::OK();
}

// ---------------------------------------------------------------- others

Status WhereKernel(RefContext& ctx) {
  for (int i = 0; i < 3; ++i) KILN_RETURN_IF_ERROR(ctx.RequireTensor(i));
  const Tensor& c = ctx.input(0);
  const Tensor& x = ctx.input(1);
  const Tensor& z = ctx.input(2);
  if (c.dtype() != DType::kBool) return InvalidArgument("condition must be bool");
  if (x.dtype() != z.dtype()) return InvalidArgument("inputs 1 and 2 must have the same element type");
  KILN_ASSIGN_OR_RETURN(std::vector<int64_t> od, BroadcastDims({c.dims(), x.dims(), z.dims()}));
  Tensor y(x.dtype(), od);
  VisitAny(x.dtype(), [&](auto tag) {
    using T = typename decltype(tag)::type;
    for (BroadcastIter it(od, {c.dims(), x.dims(), z.dims()}); !it.done(); it.Next())
      y.data<T>()[it.index()] = c.data<bool>()[it.offset(0)] ? x.data<T>()[it.offset(1)] : z.data<T>()[it.offset(2)];
  });
  ctx.set_output(0, std::move(y));
  return Status::OK();
}

Status ClipKernel(RefContext& ctx) {
  KILN_RETURN_IF_ERROR(ctx.RequireTensor(0));
  const Tensor& x = ctx.input(0);
  for (int i = 1; i < 3; ++i)
    if (ctx.has_input(i) && (ctx.input(i).numel() != 1 || ctx.input(i).dtype() != x.dtype()))
      return InvalidArgument("input ", i == 1 ? "'min'" : "'max'", " must be a scalar of the input's type");
  Tensor y(x.dtype(), x.dims());
  bool ok = VisitNumeric(x.dtype(), [&](auto tag) {
    using T = typename decltype(tag)::type;
    using W = Wide<T>;
    auto get = [](const Tensor& t) {
      if constexpr (kIsFloatLike<T>) return ToDouble(t.data<T>()[0]);
      else return static_cast<W>(t.data<T>()[0]);
    };
    W lo = ctx.has_input(1) ? W(get(ctx.input(1))) : std::numeric_limits<W>::lowest();
    W hi = ctx.has_input(2) ? W(get(ctx.input(2))) : std::numeric_limits<W>::max();
    for (int64_t i = 0; i < x.numel(); ++i) {
      W v;
      if constexpr (kIsFloatLike<T>) v = ToDouble(x.data<T>()[i]);
      else v = static_cast<W>(x.data<T>()[i]);  // NOLINT(bugprone-signed-char-misuse): sign-extends, as intended
      if (!(v != v)) v = std::min(std::max(v, lo), hi);  // NaN stays NaN
      if constexpr (kIsFloatLike<T>) y.data<T>()[i] = FromDouble<T>(v);
      else y.data<T>()[i] = static_cast<T>(v);
    }
  });
  if (!ok) return Unimplemented("Clip is not defined for ", DTypeName(x.dtype()));
  ctx.set_output(0, std::move(y));
  return Status::OK();
}

Status CastKernel(RefContext& ctx) {
  KILN_RETURN_IF_ERROR(ctx.RequireTensor(0));
  DType to;
  if (ctx.node().op_type == "CastLike") {
    KILN_RETURN_IF_ERROR(ctx.RequireTensor(1));
    to = ctx.input(1).dtype();
  } else {
    KILN_ASSIGN_OR_RETURN(int64_t t, ctx.attrs().RequireInt("to"));
    if (!IsValidDType(static_cast<int32_t>(t))) return InvalidArgument("attribute 'to' is not a valid type: ", t);
    to = static_cast<DType>(t);
  }
  KILN_ASSIGN_OR_RETURN(Tensor y, ctx.input(0).CastTo(to));
  ctx.set_output(0, std::move(y));
  return Status::OK();
}

Status IdentityKernel(RefContext& ctx) {
  ctx.set_output_value(0, ctx.input_value(0));
  return Status::OK();
}

Status DropoutKernel(RefContext& ctx) {
  KILN_RETURN_IF_ERROR(ctx.RequireTensor(0));
  const Tensor& x = ctx.input(0);
  bool training = ctx.has_input(2) && ctx.input(2).numel() == 1 && ctx.input(2).GetAsDouble(0) != 0;
  double ratio = ctx.has_input(1) ? ctx.input(1).GetAsDouble(0) : 0.5;
  if (ctx.has_input(1) && (ratio < 0 || ratio >= 1)) return InvalidArgument("ratio must be in [0, 1)");
  Tensor mask(DType::kBool, x.dims());
  if (!training || ratio == 0) {
    for (int64_t i = 0; i < x.numel(); ++i) mask.data<bool>()[i] = true;
    ctx.set_output(0, x);
  } else {
    KILN_ASSIGN_OR_RETURN(int64_t seed, ctx.attrs().GetInt("seed", 0));
    std::mt19937_64 rng(static_cast<uint64_t>(seed));
    std::uniform_real_distribution<double> u(0, 1);
    Tensor y(x.dtype(), x.dims());
    for (int64_t i = 0; i < x.numel(); ++i) {
      bool keep = u(rng) >= ratio;
      mask.data<bool>()[i] = keep;
      ref::StoreDouble(y, i, keep ? x.GetAsDouble(i) / (1 - ratio) : 0.0);
    }
    ctx.set_output(0, std::move(y));
  }
  if (ctx.has_output(1)) ctx.set_output(1, std::move(mask));
  return Status::OK();
}

// Random generators: deterministic for a given seed attribute (kiln's own stream, so the
// values differ from other runtimes; conformance data for them cannot match anyway).
Status RandomKernel(RefContext& ctx) {
  const std::string& op = ctx.node().op_type;
  std::vector<int64_t> dims;
  DType dt;
  if (op == "RandomUniform" || op == "RandomNormal") {
    KILN_ASSIGN_OR_RETURN(dims, ctx.attrs().GetInts("shape"));
    KILN_ASSIGN_OR_RETURN(int64_t d, ctx.attrs().GetInt("dtype", 1));
    dt = static_cast<DType>(d);
  } else {
    KILN_RETURN_IF_ERROR(ctx.RequireTensor(0));
    dims = ctx.input(0).dims();
    KILN_ASSIGN_OR_RETURN(int64_t d, ctx.attrs().GetInt("dtype", static_cast<int64_t>(ctx.input(0).dtype())));
    dt = static_cast<DType>(d);
  }
  KILN_ASSIGN_OR_RETURN(Tensor y, Tensor::Create(dt, dims, "output"));
  KILN_ASSIGN_OR_RETURN(float seed, ctx.attrs().GetFloat("seed", 0.f));
  std::mt19937_64 rng(static_cast<uint64_t>(seed));
  KILN_ASSIGN_OR_RETURN(float lo, ctx.attrs().GetFloat(op.find("Normal") != std::string::npos ? "mean" : "low", 0.f));
  KILN_ASSIGN_OR_RETURN(float hi, ctx.attrs().GetFloat(op.find("Normal") != std::string::npos ? "scale" : "high", 1.f));
  std::uniform_real_distribution<double> u(0, 1);
  std::normal_distribution<double> nd(lo, hi);
  for (int64_t i = 0; i < y.numel(); ++i) {
    double v;
    if (op == "Bernoulli") v = u(rng) < ctx.input(0).GetAsDouble(i) ? 1 : 0;
    else if (op.find("Normal") != std::string::npos) v = nd(rng);
    else v = lo + (hi - lo) * u(rng);
    ref::StoreDouble(y, i, v);
  }
  ctx.set_output(0, std::move(y));
  return Status::OK();
}

}  // namespace

void RegisterElementwiseKernels(RefKernelRegistry& r) {
  for (const auto& [op, fn] : UnaryFloatTable()) r.Add("", op, &UnaryKernel);
  for (const char* op : {"Not", "IsNaN", "IsInf", "BitwiseNot"}) r.Add("", op, &UnaryKernel);
  for (const char* op : {"Add", "Sub", "Mul", "Div", "Mod", "BitShift", "BitwiseAnd", "BitwiseOr", "BitwiseXor",
                         "PRelu", "And", "Or", "Xor", "Max", "Min", "Mean", "Sum"})
    r.Add("", op, &BinaryKernel);
  r.Add("", "Pow", &PowKernel);
  for (const char* op : {"Equal", "Greater", "GreaterOrEqual", "Less", "LessOrEqual"}) r.Add("", op, &CompareKernel);
  r.Add("", "Where", &WhereKernel);
  r.Add("", "Clip", &ClipKernel);
  r.Add("", "Cast", &CastKernel);
  r.Add("", "CastLike", &CastKernel);
  r.Add("", "Identity", &IdentityKernel);
  r.Add("", "Dropout", &DropoutKernel);
  for (const char* op : {"RandomUniformLike", "RandomNormalLike", "RandomUniform", "RandomNormal", "Bernoulli"})
    r.Add("", op, &RandomKernel);
}

}  // namespace kiln
