// Every op on every backend, over a dtype x shape x layout matrix: each case runs through
// RunOp (op_test_util.h), which runs the reference kernels (the oracle, with the inferred
// types checked) and then every other registered backend that takes the graph, whose
// outputs must match. Shapes cover ranks 0-5, odd sizes, every broadcast pattern and channel
// counts below, at and past the CPU backend's 16-lane blocks (the layouts its convolutions
// and pools pick: plain, channels-last, nChw16c); dtypes every one an op accepts in kiln's
// CPU kernels (float32/64, float16, int8/uint8/int32/int64, bool). A case must also run on
// the CPU backend (not be refused by it), so a silently narrowed capability fails here.
#include <gtest/gtest.h>

#include <algorithm>
#include <random>

#include "base/half.h"
#include "ops/op_test_util.h"

namespace kiln::testing {
namespace {

// Uniform values in [lo, hi) (integers: rounded; bool: a coin) of `dims` and `dt`.
Tensor Random(DType dt, std::vector<int64_t> dims, uint32_t seed, double lo = -2, double hi = 2) {
  Tensor t(dt, std::move(dims));
  std::mt19937 rng(seed);
  std::uniform_real_distribution<double> u(lo, hi);
  for (int64_t i = 0; i < t.numel(); ++i) {
    const double v = u(rng);
    switch (dt) {
      case DType::kFloat32: t.data<float>()[i] = static_cast<float>(v); break;
      case DType::kFloat64: t.data<double>()[i] = v; break;
      case DType::kFloat16: t.data<Float16>()[i] = Float16(static_cast<float>(v)); break;
      case DType::kInt8: t.data<int8_t>()[i] = static_cast<int8_t>(std::lround(v)); break;
      case DType::kUInt8: t.data<uint8_t>()[i] = static_cast<uint8_t>(std::lround(std::fabs(v))); break;
      case DType::kInt32: t.data<int32_t>()[i] = static_cast<int32_t>(std::lround(v)); break;
      case DType::kInt64: t.data<int64_t>()[i] = std::lround(v); break;
      case DType::kBool: t.data<bool>()[i] = v > (lo + hi) / 2; break;
      default: ADD_FAILURE() << "Random: no generator for " << DTypeName(dt); break;
    }
  }
  return t;
}

// Runs the case and checks that the CPU backend ran it too (RunOp compared it).
void Check(const std::string& what, const std::string& op, const std::vector<Tensor>& inputs, const AttrMap& attrs = {},
           const std::vector<int>& constant_inputs = {}, int num_outputs = 1) {
  SCOPED_TRACE(what);
  OpRun r = RunOp(op, inputs, attrs, num_outputs, constant_inputs);
  ASSERT_TRUE(r.status.ok()) << what << ": " << r.status.ToString();
  EXPECT_NE(std::find(r.backends.begin(), r.backends.end(), "cpu"), r.backends.end())
      << what << ": the cpu backend did not take it";
}

std::string Dims(const std::vector<int64_t>& d) { return DimsToString(d); }

TEST(BackendMatrix, UnaryElementwise) {
  struct Unary {
    const char* op;
    double lo, hi;  // the input range the op is defined on
    AttrMap attrs;
    bool ints;  // also integer dtypes
  };
  const std::vector<Unary> ops = {
      {"Relu", -2, 2, {}, true},       {"Neg", -2, 2, {}, true},          {"Abs", -2, 2, {}, true},
      {"Sigmoid", -6, 6, {}, false},   {"Tanh", -4, 4, {}, false},        {"Exp", -4, 4, {}, false},
      {"Log", 0.05, 4, {}, false},     {"Sqrt", 0, 4, {}, false},         {"Reciprocal", 0.2, 4, {}, false},
      {"Erf", -3, 3, {}, false},       {"Softplus", -4, 4, {}, false},    {"Softsign", -4, 4, {}, false},
      {"Floor", -4, 4, {}, false},     {"Ceil", -4, 4, {}, false},        {"Round", -4, 4, {}, false},
      {"Sin", -3, 3, {}, false},       {"Cos", -3, 3, {}, false},         {"Sign", -2, 2, {}, true},
      {"Elu", -3, 3, A({{"alpha", Attr::Float(0.7f)}}), false},
      {"LeakyRelu", -3, 3, A({{"alpha", Attr::Float(0.1f)}}), false},
      {"HardSigmoid", -4, 4, A({{"alpha", Attr::Float(0.3f)}, {"beta", Attr::Float(0.4f)}}), false},
      {"HardSwish", -4, 4, {}, false}, {"Selu", -3, 3, {}, false},
      {"Celu", -3, 3, A({{"alpha", Attr::Float(1.5f)}}), false},
      {"ThresholdedRelu", -3, 3, A({{"alpha", Attr::Float(0.5f)}}), false},
      {"Mish", -4, 4, {}, false},
  };
  const std::vector<std::vector<int64_t>> shapes = {{}, {7}, {3, 5}, {2, 3, 4, 5}, {1, 17, 3, 3}, {2, 1, 3, 2, 5}};
  for (const Unary& u : ops)
    for (DType dt : {DType::kFloat32, DType::kFloat64, DType::kFloat16, DType::kInt32, DType::kInt64, DType::kInt8}) {
      if (!u.ints && !IsFloat(dt)) continue;
      // ONNX defines these for float32/float16/float64 (and the integer ones listed).
      if (dt == DType::kInt8 && std::string(u.op) != "Relu" && std::string(u.op) != "Neg" &&
          std::string(u.op) != "Abs" && std::string(u.op) != "Sign")
        continue;
      if ((std::string(u.op) == "Mish" || std::string(u.op) == "HardSwish" || std::string(u.op) == "Celu") &&
          dt != DType::kFloat32 && dt != DType::kFloat16 && dt != DType::kFloat64)
        continue;
      for (size_t s = 0; s < shapes.size(); ++s)
        Check(StrCat(u.op, " ", DTypeName(dt), Dims(shapes[s])), u.op,
              {Random(dt, shapes[s], static_cast<uint32_t>(s + 1), u.lo, u.hi)}, u.attrs);
    }
}

TEST(BackendMatrix, BinaryElementwiseWithBroadcasting) {
  // Every broadcast pattern: equal, trailing vector, per-channel, both sides, scalar, rank 5.
  const std::vector<std::pair<std::vector<int64_t>, std::vector<int64_t>>> shapes = {
      {{2, 3, 4, 5}, {2, 3, 4, 5}}, {{2, 3, 4, 5}, {5}},    {{2, 3, 4, 5}, {3, 1, 1}}, {{1, 3, 1, 5}, {2, 1, 4, 1}},
      {{}, {7}},                    {{6, 1}, {1, 6}},       {{2, 17, 3, 3}, {1, 17, 1, 1}},
      {{2, 1, 3, 1, 4}, {1, 5, 1, 2, 1}}, {{4, 5}, {}},
  };
  struct Binary {
    const char* op;
    std::vector<DType> dtypes;
    double lo, hi;
  };
  const std::vector<DType> numeric = {DType::kFloat32, DType::kFloat64, DType::kFloat16, DType::kInt32, DType::kInt64,
                                      DType::kInt8, DType::kUInt8};
  const std::vector<Binary> ops = {
      {"Add", numeric, -3, 3},
      {"Sub", numeric, -3, 3},
      {"Mul", numeric, -3, 3},
      {"Div", {DType::kFloat32, DType::kFloat64, DType::kFloat16}, 0.25, 3},
      {"Max", numeric, -3, 3},
      {"Min", numeric, -3, 3},
      {"Pow", {DType::kFloat32, DType::kFloat64}, 0.1, 2},
      {"PRelu", {DType::kFloat32, DType::kFloat16}, -3, 3},
      {"Equal", {DType::kFloat32, DType::kInt32, DType::kInt64, DType::kBool}, -2, 2},
      {"Greater", {DType::kFloat32, DType::kInt64, DType::kUInt8}, -2, 2},
      {"Less", {DType::kFloat32, DType::kInt32, DType::kFloat16}, -2, 2},
      {"And", {DType::kBool}, -1, 1},
      {"Or", {DType::kBool}, -1, 1},
      {"Xor", {DType::kBool}, -1, 1},
  };
  for (const Binary& b : ops)
    for (DType dt : b.dtypes)
      for (size_t s = 0; s < shapes.size(); ++s) {
        const auto& [x, y] = shapes[s];
        // PRelu's slope broadcasts onto x (unidirectionally).
        if (std::string(b.op) == "PRelu" && (x.size() < y.size() || s == 3 || s == 5 || s == 7)) continue;
        Check(StrCat(b.op, " ", DTypeName(dt), Dims(x), Dims(y)), b.op,
              {Random(dt, x, static_cast<uint32_t>(10 + s), b.lo, b.hi),
               Random(dt, y, static_cast<uint32_t>(20 + s), b.lo, b.hi)});
      }
}

TEST(BackendMatrix, Convolution) {
  // Channel counts below, at and past a 16-lane block; kernels 1/3/5 (and 1-D, 3-D);
  // strides, pads, dilations; groups (depthwise and grouped); batch 1 and 2; with and
  // without bias.
  int n = 0;
  for (int64_t cin : {1, 3, 16, 17})
    for (int64_t cout : {4, 16, 19})
      for (int64_t k : {1, 3, 5})
        for (int64_t stride : {1, 2})
          for (int64_t group : {int64_t{1}, cin}) {
            if (group > 1 && cout % group != 0) continue;
            const int64_t batch = 1 + (n % 2), size = 7 + (n % 3), dil = k == 3 && n % 4 == 0 ? 2 : 1;
            const int64_t pad = (k / 2) * dil;
            const bool bias = n % 3 != 0;
            std::vector<Tensor> in = {Random(DType::kFloat32, {batch, cin, size, size + 1}, 100 + n),
                                      Random(DType::kFloat32, {cout, cin / group, k, k}, 200 + n, -0.5, 0.5)};
            if (bias) in.push_back(Random(DType::kFloat32, {cout}, 300 + n));
            Check(StrCat("Conv cin=", cin, " cout=", cout, " k=", k, " stride=", stride, " group=", group, " dil=",
                         dil, " batch=", batch, bias ? " bias" : ""),
                  "Conv", in,
                  A({{"strides", Attr::Ints({stride, stride})},
                     {"pads", Attr::Ints({pad, pad, pad, pad})},
                     {"dilations", Attr::Ints({dil, dil})},
                     {"group", Attr::Int(group)}}),
                  {1, 2});
            ++n;
          }
  // 1-D and 3-D convolutions, asymmetric pads, auto_pad.
  Check("Conv 1-D", "Conv",
        {Random(DType::kFloat32, {2, 5, 11}, 1), Random(DType::kFloat32, {6, 5, 3}, 2, -0.5, 0.5)},
        A({{"pads", Attr::Ints({1, 2})}}), {1});
  Check("Conv 3-D", "Conv",
        {Random(DType::kFloat32, {1, 3, 5, 6, 7}, 3), Random(DType::kFloat32, {4, 3, 3, 3, 3}, 4, -0.5, 0.5)},
        A({{"pads", Attr::Ints({1, 1, 1, 1, 1, 1})}}), {1});
  Check("Conv SAME_UPPER stride 2", "Conv",
        {Random(DType::kFloat32, {1, 8, 9, 10}, 5), Random(DType::kFloat32, {8, 8, 3, 3}, 6, -0.5, 0.5)},
        A({{"auto_pad", Attr::String("SAME_UPPER")}, {"strides", Attr::Ints({2, 2})}}), {1});
}

TEST(BackendMatrix, Pooling) {
  int n = 0;
  for (int64_t c : {1, 3, 16, 17})
    for (int64_t k : {2, 3})
      for (int64_t stride : {1, 2})
        for (int ceil : {0, 1}) {
          const std::vector<int64_t> dims = {1 + n % 2, c, 9, 10};
          const int64_t pad = k == 3 ? 1 : 0;
          const AttrMap a = A({{"kernel_shape", Attr::Ints({k, k})},
                               {"strides", Attr::Ints({stride, stride})},
                               {"pads", Attr::Ints({pad, pad, pad, pad})},
                               {"ceil_mode", Attr::Int(ceil)}});
          Check(StrCat("MaxPool c=", c, " k=", k, " s=", stride, " ceil=", ceil), "MaxPool",
                {Random(DType::kFloat32, dims, 400 + n)}, a);
          AttrMap avg = a;
          avg.set("count_include_pad", Attr::Int(n % 2));
          Check(StrCat("AveragePool c=", c, " k=", k, " s=", stride, " ceil=", ceil), "AveragePool",
                {Random(DType::kFloat32, dims, 500 + n)}, avg);
          ++n;
        }
  for (int64_t c : {3, 16, 17}) {
    Check(StrCat("GlobalAveragePool c=", c), "GlobalAveragePool", {Random(DType::kFloat32, {2, c, 5, 6}, 600)});
    Check(StrCat("GlobalMaxPool c=", c), "GlobalMaxPool", {Random(DType::kFloat32, {2, c, 5, 6}, 601)});
  }
  Check("MaxPool int8", "MaxPool", {Random(DType::kInt8, {1, 16, 6, 6}, 602, -100, 100)},
        A({{"kernel_shape", Attr::Ints({2, 2})}, {"strides", Attr::Ints({2, 2})}}));
  Check("MaxPool uint8", "MaxPool", {Random(DType::kUInt8, {1, 5, 6, 6}, 603, 0, 200)},
        A({{"kernel_shape", Attr::Ints({3, 3})}}));
}

TEST(BackendMatrix, MatMulAndGemm) {
  const std::vector<std::pair<std::vector<int64_t>, std::vector<int64_t>>> shapes = {
      {{5, 7}, {7, 3}},        {{1, 64}, {64, 17}},       {{2, 3, 5, 7}, {7, 4}}, {{2, 3, 5, 7}, {2, 3, 7, 4}},
      {{3, 5, 7}, {1, 7, 2}},  {{7}, {7, 3}},             {{5, 7}, {7}},          {{4, 1, 6, 8}, {3, 8, 2}},
  };
  int n = 0;
  for (const auto& [a, b] : shapes) {
    for (bool const_b : {false, true})
      Check(StrCat("MatMul ", Dims(a), Dims(b), const_b ? " constant B" : ""), "MatMul",
            {Random(DType::kFloat32, a, 700 + n), Random(DType::kFloat32, b, 800 + n)}, {},
            const_b ? std::vector<int>{1} : std::vector<int>{});
    ++n;
  }
  Check("MatMul float64", "MatMul", {Random(DType::kFloat64, {3, 4}, 1), Random(DType::kFloat64, {4, 5}, 2)});
  Check("MatMul int32", "MatMul", {Random(DType::kInt32, {3, 4}, 1), Random(DType::kInt32, {4, 5}, 2)});
  for (int ta : {0, 1})
    for (int tb : {0, 1})
      for (int c_rank : {0, 1, 2}) {
        std::vector<Tensor> in = {Random(DType::kFloat32, ta ? std::vector<int64_t>{6, 4} : std::vector<int64_t>{4, 6}, 900),
                                  Random(DType::kFloat32, tb ? std::vector<int64_t>{5, 6} : std::vector<int64_t>{6, 5}, 901)};
        in.push_back(Random(DType::kFloat32,
                            c_rank == 0 ? std::vector<int64_t>{} : c_rank == 1 ? std::vector<int64_t>{5}
                                                                               : std::vector<int64_t>{4, 5},
                            902));
        Check(StrCat("Gemm transA=", ta, " transB=", tb, " C rank ", c_rank), "Gemm", in,
              A({{"transA", Attr::Int(ta)}, {"transB", Attr::Int(tb)}, {"alpha", Attr::Float(0.7f)},
                 {"beta", Attr::Float(1.3f)}}),
              {1, 2});
      }
}

TEST(BackendMatrix, NormalizationAndSoftmax) {
  const std::vector<int64_t> dims = {2, 17, 3, 5};
  for (int64_t axis = -4; axis < 4; ++axis) {
    Check(StrCat("Softmax axis ", axis), "Softmax", {Random(DType::kFloat32, dims, 1000, -4, 4)},
          A({{"axis", Attr::Int(axis)}}));
    Check(StrCat("LogSoftmax axis ", axis), "LogSoftmax", {Random(DType::kFloat32, dims, 1001, -4, 4)},
          A({{"axis", Attr::Int(axis)}}));
  }
  for (int64_t axis : {-1, -2, 1}) {
    const std::vector<int64_t> normalized(dims.end() - (axis < 0 ? -axis : 4 - axis), dims.end());
    Check(StrCat("LayerNormalization axis ", axis), "LayerNormalization",
          {Random(DType::kFloat32, dims, 1002), Random(DType::kFloat32, normalized, 1003),
           Random(DType::kFloat32, normalized, 1004)},
          A({{"axis", Attr::Int(axis)}}), {1, 2});
  }
  Check("BatchNormalization", "BatchNormalization",
        {Random(DType::kFloat32, dims, 1005), Random(DType::kFloat32, {17}, 1006), Random(DType::kFloat32, {17}, 1007),
         Random(DType::kFloat32, {17}, 1008), Random(DType::kFloat32, {17}, 1009, 0.5, 2)},
        {}, {1, 2, 3, 4});
  Check("InstanceNormalization", "InstanceNormalization",
        {Random(DType::kFloat32, dims, 1010), Random(DType::kFloat32, {17}, 1011), Random(DType::kFloat32, {17}, 1012)},
        {}, {1, 2});
}

TEST(BackendMatrix, Reductions) {
  const std::vector<int64_t> dims = {2, 3, 4, 5};
  const std::vector<std::vector<int64_t>> axes = {{0}, {1}, {3}, {-1}, {1, 2}, {0, 3}, {0, 1, 2, 3}};
  for (const char* op : {"ReduceSum", "ReduceMean", "ReduceMax", "ReduceMin", "ReduceProd", "ReduceL1", "ReduceL2",
                         "ReduceLogSumExp", "ReduceSumSquare"})
    for (size_t a = 0; a < axes.size(); ++a)
      for (int keep : {0, 1}) {
        Tensor ax = Tensor::FromVector(axes[a]);
        const double lo = std::string(op) == "ReduceProd" ? 0.5 : -2;
        Check(StrCat(op, " axes ", Dims(axes[a]), " keepdims ", keep), op,
              {Random(DType::kFloat32, dims, static_cast<uint32_t>(1100 + a), lo, 2), ax},
              A({{"keepdims", Attr::Int(keep)}}), {1});
      }
  for (DType dt : {DType::kInt32, DType::kInt64})
    for (const char* op : {"ReduceSum", "ReduceMax", "ReduceMin"})
      Check(StrCat(op, " ", DTypeName(dt)), op, {Random(DType(dt), dims, 1200, -9, 9), Tensor::FromVector<int64_t>({1, 3})},
            {}, {1});
  for (const char* op : {"ArgMax", "ArgMin"})
    for (int64_t axis : {0, 1, -1})
      Check(StrCat(op, " axis ", axis), op, {Random(DType::kFloat32, dims, 1300)}, A({{"axis", Attr::Int(axis)}}));
}

TEST(BackendMatrix, DataMovement) {
  const std::vector<int64_t> dims = {2, 3, 4, 5};
  for (DType dt : {DType::kFloat32, DType::kInt64, DType::kUInt8, DType::kFloat16, DType::kBool}) {
    const std::string t = DTypeName(dt);
    for (int64_t axis = 0; axis < 4; ++axis) {
      std::vector<int64_t> other = dims;
      other[static_cast<size_t>(axis)] = 2;
      Check(StrCat("Concat ", t, " axis ", axis), "Concat", {Random(dt, dims, 1), Random(dt, other, 2), Random(dt, dims, 3)},
            A({{"axis", Attr::Int(axis)}}));
    }
    for (const std::vector<int64_t>& perm : std::vector<std::vector<int64_t>>{{0, 2, 3, 1}, {0, 3, 1, 2}, {3, 2, 1, 0}, {1, 0, 2, 3}})
      Check(StrCat("Transpose ", t, " ", Dims(perm)), "Transpose", {Random(dt, dims, 4)}, A({{"perm", Attr::Ints(perm)}}));
    Check(StrCat("Reshape ", t), "Reshape", {Random(dt, dims, 5), Tensor::FromVector<int64_t>({6, -1})}, {}, {1});
    Check(StrCat("Flatten ", t), "Flatten", {Random(dt, dims, 6)}, A({{"axis", Attr::Int(2)}}));
    Check(StrCat("Slice ", t), "Slice",
          {Random(dt, dims, 7), Tensor::FromVector<int64_t>({1, 0}), Tensor::FromVector<int64_t>({3, 100}),
           Tensor::FromVector<int64_t>({1, 3}), Tensor::FromVector<int64_t>({1, 2})},
          {}, {1, 2, 3, 4});
    Check(StrCat("Slice backwards ", t), "Slice",
          {Random(dt, dims, 8), Tensor::FromVector<int64_t>({-1}), Tensor::FromVector<int64_t>({-100}),
           Tensor::FromVector<int64_t>({2}), Tensor::FromVector<int64_t>({-2})},
          {}, {1, 2, 3, 4});
    Check(StrCat("Gather ", t), "Gather", {Random(dt, dims, 9), Tensor::FromVector<int64_t>({2, 0, -1, 1}, {2, 2})},
          A({{"axis", Attr::Int(2)}}), {1});
    Check(StrCat("Tile ", t), "Tile", {Random(dt, {2, 3}, 10), Tensor::FromVector<int64_t>({2, 3})}, {}, {1});
    Check(StrCat("Expand ", t), "Expand", {Random(dt, {3, 1}, 11), Tensor::FromVector<int64_t>({2, 3, 4})}, {}, {1});
    Check(StrCat("Pad ", t), "Pad", {Random(dt, {2, 3}, 12), Tensor::FromVector<int64_t>({1, 0, 2, 3})}, {}, {1});
    Check(StrCat("Split ", t), "Split", {Random(dt, dims, 13), Tensor::FromVector<int64_t>({1, 4})},
          A({{"axis", Attr::Int(3)}}), {1}, 2);
    Check(StrCat("Where ", t), "Where", {Random(DType::kBool, {3, 1, 5}, 14), Random(dt, {2, 3, 4, 5}, 15), Random(dt, {5}, 16)});
  }
  for (const char* mode : {"constant", "reflect", "edge"})
    Check(StrCat("Pad ", mode), "Pad",
          {Random(DType::kFloat32, {1, 3, 6, 7}, 17), Tensor::FromVector<int64_t>({0, 0, 2, 1, 0, 0, 1, 3})},
          A({{"mode", Attr::String(mode)}}), {1});
  for (const char* mode : {"nearest", "linear", "cubic"})
    Check(StrCat("Resize ", mode), "Resize",
          {Random(DType::kFloat32, {1, 3, 5, 6}, 18), Tensor(), Tensor::FromVector<float>({1, 1, 2, 1.5f})},
          A({{"mode", Attr::String(mode)}}), {2});
  const std::vector<DType> all = {DType::kFloat32, DType::kFloat64, DType::kFloat16, DType::kInt32,
                                  DType::kInt64,   DType::kInt8,    DType::kUInt8,   DType::kBool};
  for (DType from : all)
    for (DType to : all)
      Check(StrCat("Cast ", DTypeName(from), " to ", DTypeName(to)), "Cast", {Random(from, {3, 7}, 19, -3, 3)},
            A({{"to", Attr::Int(static_cast<int64_t>(to))}}));
}

}  // namespace
}  // namespace kiln::testing
