// Tensor family (data movement, shape, indexing): reference kernels against hand-computed
// (NumPy-checked) values, shape inference on constant and symbolic inputs, and error cases.
#include <string>
#include <vector>

#include "ir/op_schema.h"
#include "ops/op_test_util.h"

namespace kiln::testing {
namespace {

// Runs only type inference on a one-node graph whose inputs have the given types; inputs
// with a defined entry in `values` are constants. Returns the output types (or the error).
struct Inferred {
  Status status;
  std::vector<std::string> types;
};
Inferred InferOnly(const std::string& op, const std::vector<TypeInfo>& types, const std::vector<Tensor>& values,
                   const AttrMap& attrs = {}, int num_outputs = 1) {
  Graph g;
  Node n;
  n.name = op + "_node";
  n.op_type = op;
  n.attrs = attrs;
  for (size_t i = 0; i < types.size(); ++i) {
    std::string name = "in" + std::to_string(i);
    if (i < values.size() && values[i].defined()) {
      n.inputs.push_back(*g.AddConstant(name, values[i]));
    } else {
      ValueId v = *g.AddValue(name, types[i]);
      g.inputs().push_back(v);
      n.inputs.push_back(v);
    }
  }
  for (int o = 0; o < num_outputs; ++o) {
    ValueId v = *g.AddValue("out" + std::to_string(o));
    n.outputs.push_back(v);
    g.outputs().push_back(v);
  }
  Inferred r;
  auto added = g.AddNode(std::move(n));
  if (!added.ok()) { r.status = added.status(); return r; }
  r.status = InferTypes(g);
  if (r.status.ok())
    for (ValueId v : g.outputs()) r.types.push_back(g.value(v).type.ToString());
  return r;
}

TypeInfo T(DType dt, std::vector<Dim> dims) { return TypeInfo::Tensor(dt, Shape(std::move(dims))); }
Dim S(const char* sym) { return Dim::Symbol(sym); }

Tensor I32(std::vector<int32_t> v, std::vector<int64_t> dims) { return Tensor::FromVector(v, std::move(dims)); }
Tensor Scalar64(int64_t v) { return Tensor::Scalar<int64_t>(v); }

// ---------------------------------------------------------------- Reshape family

TEST(TensorReshape, ZeroCopiesAndAllowZeroKeepsZero) {
  OpRun r = RunOp("Reshape", {F32({1, 2, 3, 4, 5, 6}, {2, 3}), I64({0, 3}, {2})}, {}, 1, {1});
  ASSERT_TRUE(r.status.ok()) << r.status.ToString();
  EXPECT_EQ(OutType(r), "float32[2,3]");
  OpRun z = RunOp("Reshape", {F32({}, {0, 3}), I64({3, 0}, {2})}, A({{"allowzero", Attr::Int(1)}}), 1, {1});
  ASSERT_TRUE(z.status.ok()) << z.status.ToString();
  EXPECT_EQ(z.outputs[0].tensor.dims(), (std::vector<int64_t>{3, 0}));
}

TEST(TensorReshape, SymbolicAndUnknownShapeInput) {
  // Shape input not constant: rank from its length.
  Inferred r = InferOnly("Reshape", {T(DType::kFloat32, {S("N"), 4}), T(DType::kInt64, {3})}, {});
  ASSERT_TRUE(r.status.ok()) << r.status.ToString();
  EXPECT_EQ(r.types[0], "float32[?,?,?]");
  // 0 keeps the symbol; -1 cannot be resolved with a symbolic input.
  Inferred s = InferOnly("Reshape", {T(DType::kFloat32, {S("N"), 4}), T(DType::kInt64, {3})},
                         {Tensor(), I64({0, 2, -1}, {3})});
  ASSERT_TRUE(s.status.ok()) << s.status.ToString();
  EXPECT_EQ(s.types[0], "float32[N,2,?]");
}

TEST(TensorReshape, Errors) {
  EXPECT_TRUE(Has(RunOp("Reshape", {F32({1, 2}, {2}), I64({-1, -1}, {2})}, {}, 1, {1}).status, "-1"));
  EXPECT_TRUE(Has(RunOp("Reshape", {F32({1, 2}, {2}), I64({3}, {1})}, {}, 1, {1}).status, "cannot reshape"));
  EXPECT_FALSE(RunOp("Reshape", {F32({1, 2}, {2}), I64({-3}, {1})}, {}, 1, {1}).status.ok());
  // The same errors from the kernel when the shape is only known at run time.
  EXPECT_TRUE(Has(RunOp("Reshape", {F32({1, 2}, {2}), I64({3}, {1})}).status, "cannot reshape"));
  EXPECT_TRUE(Has(RunOp("Reshape", {F32({1, 2}, {2}), I64({2}, {1})}, A({{"allowzero", Attr::String("x")}})).status,
                  "allowzero"));
}

TEST(TensorFlatten, AxisSplitsDims) {
  OpRun r = RunOp("Flatten", {F32(std::vector<float>(24, 1.f), {2, 3, 4})}, A({{"axis", Attr::Int(-1)}}));
  ASSERT_TRUE(r.status.ok()) << r.status.ToString();
  EXPECT_EQ(r.outputs[0].tensor.dims(), (std::vector<int64_t>{6, 4}));
  OpRun z = RunOp("Flatten", {F32({1, 2, 3, 4, 5, 6}, {2, 3})}, A({{"axis", Attr::Int(0)}}));
  ASSERT_TRUE(z.status.ok());
  EXPECT_EQ(OutType(z), "float32[1,6]");
  EXPECT_TRUE(Has(RunOp("Flatten", {F32({1}, {1})}, A({{"axis", Attr::Int(3)}})).status, "axis"));
  Inferred s = InferOnly("Flatten", {T(DType::kFloat32, {S("N"), 3, 4})}, {});
  EXPECT_EQ(s.types[0], "float32[N,12]");
}

TEST(TensorSqueeze, AxesInputAndDefault) {
  OpRun r = RunOp("Squeeze", {F32({1, 2, 3}, {1, 3, 1}), I64({-1}, {1})}, {}, 1, {1});
  ASSERT_TRUE(r.status.ok()) << r.status.ToString();
  EXPECT_EQ(OutType(r), "float32[1,3]");
  OpRun all = RunOp("Squeeze", {F32({1, 2, 3}, {1, 3, 1})});
  ASSERT_TRUE(all.status.ok());
  EXPECT_EQ(all.outputs[0].tensor.dims(), (std::vector<int64_t>{3}));
  EXPECT_TRUE(Has(RunOp("Squeeze", {F32({1, 2, 3}, {1, 3, 1}), I64({1}, {1})}, {}, 1, {1}).status, "cannot squeeze"));
  EXPECT_TRUE(Has(RunOp("Squeeze", {F32({1, 2, 3}, {1, 3, 1}), I64({3}, {1})}, {}, 1, {1}).status, "axes"));
}

TEST(TensorUnsqueeze, NegativeAndUnsortedAxes) {
  OpRun r = RunOp("Unsqueeze", {F32({1, 2, 3}, {3}), I64({-1, 0}, {2})}, {}, 1, {1});
  ASSERT_TRUE(r.status.ok()) << r.status.ToString();
  EXPECT_EQ(OutType(r), "float32[1,3,1]");
  Inferred s = InferOnly("Unsqueeze", {T(DType::kFloat32, {S("B"), 5}), T(DType::kInt64, {1})}, {Tensor(), I64({1}, {1})});
  EXPECT_EQ(s.types[0], "float32[B,1,5]");
  EXPECT_TRUE(Has(RunOp("Unsqueeze", {F32({1}, {1}), I64({0, 0}, {2})}, {}, 1, {1}).status, "duplicate"));
  EXPECT_TRUE(Has(RunOp("Unsqueeze", {F32({1}, {1}), I64({5}, {1})}, {}, 1, {1}).status, "axes"));
}

// ---------------------------------------------------------------- Transpose / Concat / Split

TEST(TensorTranspose, DefaultReversesAndStrings) {
  Tensor s = Tensor::FromVector<std::string>({"a", "b", "c", "d", "e", "f"}, {2, 3});
  OpRun r = RunOp("Transpose", {s});
  ASSERT_TRUE(r.status.ok()) << r.status.ToString();
  EXPECT_TRUE(TensorsClose(r.outputs[0].tensor, Tensor::FromVector<std::string>({"a", "d", "b", "e", "c", "f"}, {3, 2})));
  Inferred sym = InferOnly("Transpose", {T(DType::kFloat16, {S("N"), 3, S("W")})}, {}, A({{"perm", Attr::Ints({2, 0, 1})}}));
  EXPECT_EQ(sym.types[0], "float16[W,N,3]");
  EXPECT_TRUE(Has(RunOp("Transpose", {F32({1, 2}, {1, 2})}, A({{"perm", Attr::Ints({0})}})).status, "perm"));
}

TEST(TensorConcat, AxisAndSymbols) {
  OpRun r = RunOp("Concat", {F32({1, 2}, {1, 2}), F32({3, 4, 5, 6}, {2, 2})}, A({{"axis", Attr::Int(0)}}));
  ASSERT_TRUE(r.status.ok()) << r.status.ToString();
  EXPECT_TRUE(TensorsClose(r.outputs[0].tensor, F32({1, 2, 3, 4, 5, 6}, {3, 2})));
  OpRun c1 = RunOp("Concat", {F32({1, 2}, {2, 1}), F32({3, 4, 5, 6}, {2, 2})}, A({{"axis", Attr::Int(-1)}}));
  ASSERT_TRUE(c1.status.ok());
  EXPECT_TRUE(TensorsClose(c1.outputs[0].tensor, F32({1, 3, 4, 2, 5, 6}, {2, 3})));
  Inferred sym = InferOnly("Concat", {T(DType::kFloat32, {S("N"), 2}), T(DType::kFloat32, {S("N"), 3})}, {},
                           A({{"axis", Attr::Int(1)}}));
  EXPECT_EQ(sym.types[0], "float32[N,5]");
  EXPECT_TRUE(Has(RunOp("Concat", {F32({1, 2}, {1, 2}), F32({3, 4, 5}, {1, 3})}, A({{"axis", Attr::Int(0)}})).status,
                  "dimension 1"));
  EXPECT_TRUE(Has(RunOp("Concat", {F32({1, 2}, {1, 2})}).status, "axis"));
  EXPECT_TRUE(Has(RunOp("Concat", {F32({1, 2}, {1, 2})}, A({{"axis", Attr::Int(2)}})).status, "axis"));
}

TEST(TensorSplit, SizesInputEqualAndUneven) {
  OpRun r = RunOp("Split", {F32({1, 2, 3, 4, 5, 6}, {6}), I64({2, 4}, {2})}, {}, 2, {1});
  ASSERT_TRUE(r.status.ok()) << r.status.ToString();
  EXPECT_TRUE(TensorsClose(r.outputs[0].tensor, F32({1, 2}, {2})));
  EXPECT_TRUE(TensorsClose(r.outputs[1].tensor, F32({3, 4, 5, 6}, {4})));
  // No sizes: ceil-sized chunks, the last one smaller (opset 18 num_outputs semantics).
  OpRun u = RunOp("Split", {F32({1, 2, 3, 4, 5}, {5})}, {}, 3);
  ASSERT_TRUE(u.status.ok()) << u.status.ToString();
  EXPECT_EQ(OutType(u, 2), "float32[1]");
  EXPECT_TRUE(TensorsClose(u.outputs[1].tensor, F32({3, 4}, {2})));
  EXPECT_TRUE(Has(RunOp("Split", {F32({1, 2, 3}, {3}), I64({1, 1}, {2})}, {}, 2, {1}).status, "sums to"));
  EXPECT_TRUE(Has(RunOp("Split", {F32({1, 2, 3}, {3}), I64({3}, {1})}, {}, 2, {1}).status, "entries"));
}

// ---------------------------------------------------------------- Slice

TEST(TensorSlice, ClampingAxesAndSteps) {
  // x = arange(12).reshape(3, 4); x[0:100, -3::2]
  std::vector<float> v(12);
  for (int i = 0; i < 12; ++i) v[static_cast<size_t>(i)] = static_cast<float>(i);
  OpRun r = RunOp("Slice", {F32(v, {3, 4}), I64({0, -3}, {2}), I64({100, INT64_MAX}, {2}), I64({0, 1}, {2}), I64({1, 2}, {2})},
                  {}, 1, {1, 2, 3, 4});
  ASSERT_TRUE(r.status.ok()) << r.status.ToString();
  EXPECT_TRUE(TensorsClose(r.outputs[0].tensor, F32({1, 3, 5, 7, 9, 11}, {3, 2})));
  // Negative step from a start past the end: x[::-2] on 5 elements -> 4, 2, 0.
  OpRun n = RunOp("Slice", {F32({0, 1, 2, 3, 4}, {5}), I64({100}, {1}), I64({INT64_MIN}, {1}), I64({0}, {1}), I64({-2}, {1})},
                  {}, 1, {1, 2, 3, 4});
  ASSERT_TRUE(n.status.ok()) << n.status.ToString();
  EXPECT_TRUE(TensorsClose(n.outputs[0].tensor, F32({4, 2, 0}, {3})));
  // A start before the beginning with a negative step clamps to 0: x[-10:-100:-1] -> [0].
  OpRun c = RunOp("Slice", {F32({0, 1, 2, 3, 4}, {5}), I64({-10}, {1}), I64({-100}, {1}), I64({0}, {1}), I64({-1}, {1})},
                  {}, 1, {1, 2, 3, 4});
  ASSERT_TRUE(c.status.ok()) << c.status.ToString();
  EXPECT_TRUE(TensorsClose(c.outputs[0].tensor, F32({0}, {1})));
  // Runtime (non-constant) starts give the same values.
  OpRun d = RunOp("Slice", {F32({0, 1, 2, 3, 4}, {5}), I64({-10}, {1}), I64({-100}, {1}), I64({0}, {1}), I64({-1}, {1})});
  ASSERT_TRUE(d.status.ok()) << d.status.ToString();
  EXPECT_TRUE(TensorsClose(d.outputs[0].tensor, F32({0}, {1})));
}

TEST(TensorSlice, SymbolicAndErrors) {
  Inferred s = InferOnly("Slice", {T(DType::kFloat32, {S("N"), 10}), T(DType::kInt64, {1}), T(DType::kInt64, {1}),
                                   T(DType::kInt64, {1})},
                         {Tensor(), I64({2}, {1}), I64({-2}, {1}), I64({1}, {1})});
  ASSERT_TRUE(s.status.ok()) << s.status.ToString();
  EXPECT_EQ(s.types[0], "float32[N,6]");
  EXPECT_TRUE(Has(RunOp("Slice", {F32({1, 2}, {2}), I64({0}, {1}), I64({1}, {1}), I64({0}, {1}), I64({0}, {1})}, {}, 1,
                        {1, 2, 3, 4}).status, "steps"));
  EXPECT_TRUE(Has(RunOp("Slice", {F32({1, 2}, {2}), I64({0}, {1}), I64({1}, {1}), I64({1}, {1})}, {}, 1, {1, 2, 3}).status,
                  "axes"));
  EXPECT_TRUE(Has(RunOp("Slice", {F32({1, 2}, {2}), I64({0, 0}, {2}), I64({1}, {1})}, {}, 1, {1, 2}).status, "same length"));
}

// ---------------------------------------------------------------- Gather / Scatter

TEST(TensorGather, AxisNegativeIndicesInt32) {
  // data = [[1,2,3],[4,5,6]]; take(data, [[-1, 0]], axis=1) -> [[[3,1]], [[6,4]]]
  OpRun r = RunOp("Gather", {F32({1, 2, 3, 4, 5, 6}, {2, 3}), I32({-1, 0}, {1, 2})}, A({{"axis", Attr::Int(1)}}));
  ASSERT_TRUE(r.status.ok()) << r.status.ToString();
  EXPECT_TRUE(TensorsClose(r.outputs[0].tensor, F32({3, 1, 6, 4}, {2, 1, 2})));
  OpRun s = RunOp("Gather", {I64({7, 8, 9}, {3}), Scalar64(1)});
  ASSERT_TRUE(s.status.ok());
  EXPECT_EQ(OutType(s), "int64[]");
  EXPECT_EQ(s.outputs[0].tensor.data<int64_t>()[0], 8);
  EXPECT_TRUE(Has(RunOp("Gather", {F32({1, 2}, {2}), I64({0}, {1})}, A({{"axis", Attr::Int(1)}})).status, "axis"));
  EXPECT_TRUE(Has(RunOp("Gather", {F32({1, 2}, {2}), F32({0}, {1})}).status, "indices"));
}

TEST(TensorGatherElements, Axis1) {
  // onnx gather_elements_0: data [[1,2],[3,4]], indices [[0,0],[1,0]], axis 1 -> [[1,1],[4,3]]
  OpRun r = RunOp("GatherElements", {F32({1, 2, 3, 4}, {2, 2}), I64({0, 0, 1, 0}, {2, 2})}, A({{"axis", Attr::Int(1)}}));
  ASSERT_TRUE(r.status.ok()) << r.status.ToString();
  EXPECT_TRUE(TensorsClose(r.outputs[0].tensor, F32({1, 1, 4, 3}, {2, 2})));
  EXPECT_TRUE(Has(RunOp("GatherElements", {F32({1, 2, 3, 4}, {2, 2}), I64({0, 2}, {1, 2})}, A({{"axis", Attr::Int(1)}})).status,
                  "out of range"));
  EXPECT_TRUE(Has(RunOp("GatherElements", {F32({1, 2, 3, 4}, {2, 2}), I64({0, 1}, {2})}).status, "rank"));
}

TEST(TensorGatherND, BatchDims) {
  // onnx gathernd_example_int32_batch_dim1: data arange(8).reshape(2,2,2), indices [[1],[0]], batch_dims 1
  // -> [[2,3],[4,5]]
  OpRun r = RunOp("GatherND", {I32({0, 1, 2, 3, 4, 5, 6, 7}, {2, 2, 2}), I64({1, 0}, {2, 1})},
                  A({{"batch_dims", Attr::Int(1)}}));
  ASSERT_TRUE(r.status.ok()) << r.status.ToString();
  EXPECT_TRUE(TensorsClose(r.outputs[0].tensor, I32({2, 3, 4, 5}, {2, 2})));
  OpRun full = RunOp("GatherND", {F32({0, 1, 2, 3}, {2, 2}), I64({0, 0, 1, 1}, {2, 2})});
  ASSERT_TRUE(full.status.ok());
  EXPECT_TRUE(TensorsClose(full.outputs[0].tensor, F32({0, 3}, {2})));
  EXPECT_FALSE(RunOp("GatherND", {F32({0, 1, 2, 3}, {2, 2}), I64({0, 0, 0}, {1, 3})}).status.ok());
  EXPECT_TRUE(Has(RunOp("GatherND", {F32({0, 1, 2, 3}, {2, 2}), I64({2, 0}, {1, 2})}).status, "out of range"));
}

TEST(TensorScatterElements, Reductions) {
  // data [[1,2,3,4,5]], indices [[1,1]], updates [[1.1,2.1]], axis 1
  const Tensor x = F32({1, 2, 3, 4, 5}, {1, 5}), idx = I64({1, 1}, {1, 2}), upd = F32({1.1f, 2.1f}, {1, 2});
  auto run = [&](const char* red) {
    return RunOp("ScatterElements", {x, idx, upd}, A({{"axis", Attr::Int(1)}, {"reduction", Attr::String(red)}}));
  };
  OpRun add = run("add");
  ASSERT_TRUE(add.status.ok()) << add.status.ToString();
  EXPECT_TRUE(TensorsClose(add.outputs[0].tensor, F32({1, 5.2f, 3, 4, 5}, {1, 5})));
  EXPECT_TRUE(TensorsClose(run("mul").outputs[0].tensor, F32({1, 2 * 1.1f * 2.1f, 3, 4, 5}, {1, 5})));
  EXPECT_TRUE(TensorsClose(run("max").outputs[0].tensor, F32({1, 2.1f, 3, 4, 5}, {1, 5})));
  EXPECT_TRUE(TensorsClose(run("min").outputs[0].tensor, F32({1, 1.1f, 3, 4, 5}, {1, 5})));
  EXPECT_TRUE(TensorsClose(run("none").outputs[0].tensor, F32({1, 2.1f, 3, 4, 5}, {1, 5})));
  EXPECT_TRUE(Has(run("avg").status, "reduction"));
  // Deprecated Scatter is ScatterElements; negative index counts from the end.
  OpRun sc = RunOp("Scatter", {x, I64({-1}, {1, 1}), F32({9}, {1, 1})}, A({{"axis", Attr::Int(1)}}));
  ASSERT_TRUE(sc.status.ok()) << sc.status.ToString();
  EXPECT_TRUE(TensorsClose(sc.outputs[0].tensor, F32({1, 2, 3, 4, 9}, {1, 5})));
  EXPECT_TRUE(Has(RunOp("ScatterElements", {x, I64({5}, {1, 1}), F32({9}, {1, 1})}, A({{"axis", Attr::Int(1)}})).status,
                  "out of range"));
  EXPECT_FALSE(RunOp("ScatterElements", {x, I64({1, 1}, {1, 2}), F32({9}, {1, 1})}).status.ok());
}

TEST(TensorScatterND, SlicesAndReduction) {
  // data arange(1..8), indices [[4],[3],[1],[7]], updates [9,10,11,12] -> [1,11,3,10,9,6,7,12]
  OpRun r = RunOp("ScatterND", {F32({1, 2, 3, 4, 5, 6, 7, 8}, {8}), I64({4, 3, 1, 7}, {4, 1}), F32({9, 10, 11, 12}, {4})});
  ASSERT_TRUE(r.status.ok()) << r.status.ToString();
  EXPECT_TRUE(TensorsClose(r.outputs[0].tensor, F32({1, 11, 3, 10, 9, 6, 7, 12}, {8})));
  // Row updates with duplicate indices under "add".
  OpRun a = RunOp("ScatterND", {I64({1, 1, 2, 2}, {2, 2}), I64({0, 0}, {2, 1}), I64({10, 20, 30, 40}, {2, 2})},
                  A({{"reduction", Attr::String("add")}}));
  ASSERT_TRUE(a.status.ok()) << a.status.ToString();
  EXPECT_TRUE(TensorsClose(a.outputs[0].tensor, I64({41, 61, 2, 2}, {2, 2})));
  EXPECT_FALSE(RunOp("ScatterND", {F32({1, 2}, {2}), I64({0}, {1, 1}), F32({1, 2}, {2})}).status.ok());
  EXPECT_TRUE(Has(RunOp("ScatterND", {F32({1, 2}, {2}), I64({-3}, {1, 1}), F32({1}, {1})}).status, "out of range"));
}

// ---------------------------------------------------------------- Expand / Tile / Pad

TEST(TensorExpand, BroadcastsBothWays) {
  OpRun r = RunOp("Expand", {F32({1, 2, 3}, {3, 1}), I64({2, 1, 2}, {3})}, {}, 1, {1});
  ASSERT_TRUE(r.status.ok()) << r.status.ToString();
  EXPECT_EQ(OutType(r), "float32[2,3,2]");
  EXPECT_TRUE(TensorsClose(r.outputs[0].tensor, F32({1, 1, 2, 2, 3, 3, 1, 1, 2, 2, 3, 3}, {2, 3, 2})));
  Inferred sym = InferOnly("Expand", {T(DType::kFloat32, {S("N"), 1}), T(DType::kInt64, {2})}, {Tensor(), I64({1, 4}, {2})});
  EXPECT_EQ(sym.types[0], "float32[N,4]");
  EXPECT_FALSE(RunOp("Expand", {F32({1, 2, 3}, {3}), I64({2}, {1})}, {}, 1, {1}).status.ok());
}

TEST(TensorTile, Repeats) {
  OpRun r = RunOp("Tile", {F32({1, 2, 3, 4}, {2, 2}), I64({1, 2}, {2})}, {}, 1, {1});
  ASSERT_TRUE(r.status.ok()) << r.status.ToString();
  EXPECT_TRUE(TensorsClose(r.outputs[0].tensor, F32({1, 2, 1, 2, 3, 4, 3, 4}, {2, 4})));
  EXPECT_TRUE(Has(RunOp("Tile", {F32({1, 2}, {2}), I64({1, 2}, {2})}, {}, 1, {1}).status, "repeats"));
  EXPECT_TRUE(Has(RunOp("Tile", {F32({1, 2}, {2}), I64({-1}, {1})}, {}, 1, {1}).status, "repeats"));
}

TEST(TensorPad, Modes) {
  // x = [1,2,3], pads [2, 1] -> constant 0, reflect, edge, wrap (np.pad)
  const Tensor x = F32({1, 2, 3}, {3}), pads = I64({2, 1}, {2});
  auto run = [&](const char* mode) { return RunOp("Pad", {x, pads}, A({{"mode", Attr::String(mode)}}), 1, {1}); };
  OpRun c = run("constant");
  ASSERT_TRUE(c.status.ok()) << c.status.ToString();
  EXPECT_TRUE(TensorsClose(c.outputs[0].tensor, F32({0, 0, 1, 2, 3, 0}, {6})));
  EXPECT_TRUE(TensorsClose(run("reflect").outputs[0].tensor, F32({3, 2, 1, 2, 3, 2}, {6})));
  EXPECT_TRUE(TensorsClose(run("edge").outputs[0].tensor, F32({1, 1, 1, 2, 3, 3}, {6})));
  EXPECT_TRUE(TensorsClose(run("wrap").outputs[0].tensor, F32({2, 3, 1, 2, 3, 1}, {6})));
  EXPECT_TRUE(Has(run("mirror").status, "mode"));
  // Constant value input, axes input (opset 18) and negative pads (crop).
  OpRun v = RunOp("Pad", {F32({1, 2, 3, 4}, {2, 2}), I64({1, -1}, {2}), F32({7}, {}), I64({-1}, {1})}, {}, 1, {1, 2, 3});
  ASSERT_TRUE(v.status.ok()) << v.status.ToString();
  EXPECT_TRUE(TensorsClose(v.outputs[0].tensor, F32({7, 1, 7, 3}, {2, 2})));
  EXPECT_TRUE(Has(RunOp("Pad", {x, I64({1}, {1})}, {}, 1, {1}).status, "pads"));
}

// ---------------------------------------------------------------- Shape producers

TEST(TensorShape, StartEndAndPropagation) {
  OpRun r = RunOp("Shape", {F32(std::vector<float>(24, 0.f), {2, 3, 4})}, A({{"start", Attr::Int(-2)}}));
  ASSERT_TRUE(r.status.ok()) << r.status.ToString();
  EXPECT_TRUE(TensorsClose(r.outputs[0].tensor, I64({3, 4}, {2})));
  EXPECT_EQ(OutType(r), "int64[2]");
  OpRun e = RunOp("Shape", {F32(std::vector<float>(24, 0.f), {2, 3, 4})}, A({{"start", Attr::Int(2)}, {"end", Attr::Int(1)}}));
  ASSERT_TRUE(e.status.ok());
  EXPECT_EQ(OutType(e), "int64[0]");
  Inferred sym = InferOnly("Shape", {T(DType::kFloat32, {S("N"), 3})}, {});
  EXPECT_EQ(sym.types[0], "int64[2]");
  OpRun sz = RunOp("Size", {F32(std::vector<float>(6, 0.f), {2, 3})});
  ASSERT_TRUE(sz.status.ok());
  EXPECT_EQ(sz.outputs[0].tensor.data<int64_t>()[0], 6);
}

TEST(TensorShape, ShapeGatherConcatReshapeChain) {
  // Reshape(x, Concat(Gather(Shape(x), 0), [-1])) on a static x: exact static output.
  Graph g;
  ValueId x = *g.AddValue("x", T(DType::kFloat32, {2, 3, 4}));
  g.inputs().push_back(x);
  auto node = [&](const char* op, std::vector<ValueId> ins, const char* out, AttrMap attrs = {}) {
    Node n;
    n.name = std::string(op) + "_" + out;
    n.op_type = op;
    n.inputs = std::move(ins);
    n.attrs = std::move(attrs);
    ValueId o = *g.AddValue(out);
    n.outputs = {o};
    EXPECT_TRUE(g.AddNode(std::move(n)).ok());
    return o;
  };
  ValueId shape = node("Shape", {x}, "shape");
  ValueId first = node("Gather", {shape, *g.AddConstant("zero", I64({0}, {1}))}, "first");
  ValueId target = node("Concat", {first, *g.AddConstant("minus1", I64({-1}, {1}))}, "target", A({{"axis", Attr::Int(0)}}));
  ValueId y = node("Reshape", {x, target}, "y");
  g.outputs().push_back(y);
  ConstantEvaluator eval = [](const Graph& gr, NodeId id, const std::vector<const Tensor*>& ins) {
    RefExecutor ex;
    return ex.EvaluateNode(gr, id, ins);
  };
  InferOptions opts;
  opts.evaluator = &eval;
  ASSERT_TRUE(InferTypes(g, opts).ok());
  EXPECT_EQ(g.value(y).type.ToString(), "float32[2,12]");
}

TEST(TensorConstantOfShape, ValueAndDefault) {
  Tensor seven = Tensor::FromVector<int32_t>({7}, {1});
  OpRun r = RunOp("ConstantOfShape", {I64({2, 3}, {2})}, A({{"value", Attr::TensorValue(seven)}}), 1, {0});
  ASSERT_TRUE(r.status.ok()) << r.status.ToString();
  EXPECT_EQ(OutType(r), "int32[2,3]");
  EXPECT_TRUE(TensorsClose(r.outputs[0].tensor, I32({7, 7, 7, 7, 7, 7}, {2, 3})));
  OpRun d = RunOp("ConstantOfShape", {I64({2}, {1})});
  ASSERT_TRUE(d.status.ok());
  EXPECT_TRUE(TensorsClose(d.outputs[0].tensor, F32({0, 0}, {2})));
  EXPECT_TRUE(Has(RunOp("ConstantOfShape", {I64({-2}, {1})}, {}, 1, {0}).status, "negative"));
  EXPECT_TRUE(Has(RunOp("ConstantOfShape", {I64({2}, {1})}, A({{"value", Attr::Float(1)}})).status, "value"));
  EXPECT_FALSE(RunOp("ConstantOfShape", {I64({INT64_MAX, INT64_MAX}, {2})}, {}, 1, {0}).status.ok());
}

TEST(TensorConstant, EveryValueForm) {
  OpRun f = RunOp("Constant", {}, A({{"value_floats", Attr::Floats({1.5f, 2})}}));
  ASSERT_TRUE(f.status.ok()) << f.status.ToString();
  EXPECT_TRUE(TensorsClose(f.outputs[0].tensor, F32({1.5f, 2}, {2})));
  OpRun i = RunOp("Constant", {}, A({{"value_int", Attr::Int(4)}}));
  ASSERT_TRUE(i.status.ok());
  EXPECT_EQ(OutType(i), "int64[]");
  OpRun s = RunOp("Constant", {}, A({{"value_strings", Attr::Strings({"a", "b"})}}));
  ASSERT_TRUE(s.status.ok());
  EXPECT_EQ(OutType(s), "string[2]");
  OpRun t = RunOp("Constant", {}, A({{"value", Attr::TensorValue(I64({1, 2, 3, 4}, {2, 2}))}}));
  ASSERT_TRUE(t.status.ok());
  EXPECT_TRUE(TensorsClose(t.outputs[0].tensor, I64({1, 2, 3, 4}, {2, 2})));
  EXPECT_TRUE(Has(RunOp("Constant", {}).status, "value"));
  EXPECT_TRUE(Has(RunOp("Constant", {}, A({{"value", Attr::Int(3)}})).status, "value"));
}

TEST(TensorRange, FloatIntAndEmpty) {
  OpRun r = RunOp("Range", {Tensor::Scalar<float>(1), Tensor::Scalar<float>(2), Tensor::Scalar<float>(0.3f)}, {}, 1, {0, 1, 2});
  ASSERT_TRUE(r.status.ok()) << r.status.ToString();
  EXPECT_EQ(OutType(r), "float32[4]");
  EXPECT_TRUE(TensorsClose(r.outputs[0].tensor, F32({1, 1.3f, 1.6f, 1.9f}, {4})));
  OpRun n = RunOp("Range", {Tensor::Scalar<int32_t>(10), Tensor::Scalar<int32_t>(6), Tensor::Scalar<int32_t>(-3)});
  ASSERT_TRUE(n.status.ok()) << n.status.ToString();
  EXPECT_TRUE(TensorsClose(n.outputs[0].tensor, I32({10, 7}, {2})));
  OpRun e = RunOp("Range", {Scalar64(5), Scalar64(1), Scalar64(1)}, {}, 1, {0, 1, 2});
  ASSERT_TRUE(e.status.ok());
  EXPECT_EQ(OutType(e), "int64[0]");
  EXPECT_TRUE(Has(RunOp("Range", {Scalar64(0), Scalar64(1), Scalar64(0)}).status, "delta"));
  EXPECT_FALSE(RunOp("Range", {Scalar64(0), Scalar64(INT64_MAX), Scalar64(1)}, {}, 1, {0, 1, 2}).status.ok());
}

TEST(TensorOneHot, AxisAndNegativeIndices) {
  // indices [0, -1, 5], depth 3, values [off=0, on=2], axis 0 -> columns (5 is out of range: all off)
  OpRun r = RunOp("OneHot", {I64({0, -1, 5}, {3}), Scalar64(3), F32({0, 2}, {2})}, A({{"axis", Attr::Int(0)}}), 1, {1});
  ASSERT_TRUE(r.status.ok()) << r.status.ToString();
  EXPECT_EQ(OutType(r), "float32[3,3]");
  EXPECT_TRUE(TensorsClose(r.outputs[0].tensor, F32({2, 0, 0, 0, 0, 0, 0, 2, 0}, {3, 3})));
  EXPECT_TRUE(Has(RunOp("OneHot", {I64({0}, {1}), Scalar64(3), F32({0, 2, 3}, {3})}).status, "values"));
  EXPECT_TRUE(Has(RunOp("OneHot", {I64({0}, {1}), Scalar64(3), F32({0, 1}, {2})}, A({{"axis", Attr::Int(2)}})).status, "axis"));
}

TEST(TensorDepthToSpace, DcrCrdAndInverse) {
  // x = arange(8).reshape(1, 8, 1, 1), blocksize 2
  std::vector<float> v{0, 1, 2, 3, 4, 5, 6, 7};
  OpRun dcr = RunOp("DepthToSpace", {F32(v, {1, 8, 1, 1})}, A({{"blocksize", Attr::Int(2)}}));
  ASSERT_TRUE(dcr.status.ok()) << dcr.status.ToString();
  EXPECT_TRUE(TensorsClose(dcr.outputs[0].tensor, F32({0, 2, 4, 6, 1, 3, 5, 7}, {1, 2, 2, 2})));
  OpRun crd = RunOp("DepthToSpace", {F32(v, {1, 8, 1, 1})}, A({{"blocksize", Attr::Int(2)}, {"mode", Attr::String("CRD")}}));
  ASSERT_TRUE(crd.status.ok());
  EXPECT_TRUE(TensorsClose(crd.outputs[0].tensor, F32(v, {1, 2, 2, 2})));
  OpRun s2d = RunOp("SpaceToDepth", {dcr.outputs[0].tensor}, A({{"blocksize", Attr::Int(2)}}));
  ASSERT_TRUE(s2d.status.ok()) << s2d.status.ToString();
  EXPECT_TRUE(TensorsClose(s2d.outputs[0].tensor, F32(v, {1, 8, 1, 1})));
  EXPECT_TRUE(Has(RunOp("DepthToSpace", {F32(v, {1, 8, 1, 1})}, A({{"blocksize", Attr::Int(3)}})).status, "divisible"));
  EXPECT_TRUE(Has(RunOp("DepthToSpace", {F32(v, {1, 8, 1, 1})}, A({{"blocksize", Attr::Int(2)}, {"mode", Attr::String("XYZ")}})).status,
                  "mode"));
  EXPECT_TRUE(Has(RunOp("SpaceToDepth", {F32(v, {8})}, A({{"blocksize", Attr::Int(2)}})).status, "4-D"));
}

// ---------------------------------------------------------------- Masks, selection

TEST(TensorTrilu, UpperLowerWithK) {
  const Tensor x = F32({1, 2, 3, 4, 5, 6, 7, 8, 9}, {3, 3});
  OpRun u = RunOp("Trilu", {x, Scalar64(1)});
  ASSERT_TRUE(u.status.ok()) << u.status.ToString();
  EXPECT_TRUE(TensorsClose(u.outputs[0].tensor, F32({0, 2, 3, 0, 0, 6, 0, 0, 0}, {3, 3})));
  OpRun l = RunOp("Trilu", {x, Scalar64(-1)}, A({{"upper", Attr::Int(0)}}));
  ASSERT_TRUE(l.status.ok());
  EXPECT_TRUE(TensorsClose(l.outputs[0].tensor, F32({0, 0, 0, 4, 0, 0, 7, 8, 0}, {3, 3})));
  EXPECT_TRUE(Has(RunOp("Trilu", {F32({1}, {1})}).status, "rank"));
}

TEST(TensorNonZero, Coordinates) {
  OpRun r = RunOp("NonZero", {Tensor::FromVector<bool>({true, false, false, true}, {2, 2})});
  ASSERT_TRUE(r.status.ok()) << r.status.ToString();
  EXPECT_TRUE(TensorsClose(r.outputs[0].tensor, I64({0, 1, 0, 1}, {2, 2})));
}

TEST(TensorCompress, AxisAndFlat) {
  // data [[1,2],[3,4],[5,6]], condition [0,1,1], axis 0 -> [[3,4],[5,6]]; no axis, [0,1,0,0,1] -> [2,5]
  const Tensor x = F32({1, 2, 3, 4, 5, 6}, {3, 2});
  OpRun r = RunOp("Compress", {x, Tensor::FromVector<bool>({false, true, true})}, A({{"axis", Attr::Int(0)}}));
  ASSERT_TRUE(r.status.ok()) << r.status.ToString();
  EXPECT_TRUE(TensorsClose(r.outputs[0].tensor, F32({3, 4, 5, 6}, {2, 2})));
  OpRun f = RunOp("Compress", {x, Tensor::FromVector<bool>({false, true, false, false, true})});
  ASSERT_TRUE(f.status.ok());
  EXPECT_TRUE(TensorsClose(f.outputs[0].tensor, F32({2, 5}, {2})));
  EXPECT_TRUE(Has(RunOp("Compress", {x, Tensor::FromVector<bool>({true, true, true, true})}, A({{"axis", Attr::Int(0)}})).status,
                  "condition"));
}

TEST(TensorEyeLike, DtypeAndK) {
  OpRun r = RunOp("EyeLike", {F32(std::vector<float>(6, 5.f), {2, 3})},
                  A({{"k", Attr::Int(1)}, {"dtype", Attr::Int(static_cast<int64_t>(DType::kInt32))}}));
  ASSERT_TRUE(r.status.ok()) << r.status.ToString();
  EXPECT_TRUE(TensorsClose(r.outputs[0].tensor, I32({0, 1, 0, 0, 0, 1}, {2, 3})));
  EXPECT_TRUE(Has(RunOp("EyeLike", {F32({1}, {1, 1})}, A({{"dtype", Attr::Int(99)}})).status, "dtype"));
  EXPECT_TRUE(Has(RunOp("EyeLike", {F32({1}, {1})}).status, "2-D"));
}

TEST(TensorCumSum, ExclusiveReverse) {
  const Tensor x = F32({1, 2, 3, 4, 5, 6}, {2, 3});
  OpRun r = RunOp("CumSum", {x, Scalar64(1)});
  ASSERT_TRUE(r.status.ok()) << r.status.ToString();
  EXPECT_TRUE(TensorsClose(r.outputs[0].tensor, F32({1, 3, 6, 4, 9, 15}, {2, 3})));
  OpRun er = RunOp("CumSum", {x, Tensor::Scalar<int32_t>(0)}, A({{"exclusive", Attr::Int(1)}, {"reverse", Attr::Int(1)}}));
  ASSERT_TRUE(er.status.ok());
  EXPECT_TRUE(TensorsClose(er.outputs[0].tensor, F32({4, 5, 6, 0, 0, 0}, {2, 3})));
  // int64 sums stay exact beyond 2^53.
  OpRun big = RunOp("CumSum", {I64({(int64_t{1} << 60) + 1, 1}, {2}), Scalar64(0)});
  ASSERT_TRUE(big.status.ok());
  EXPECT_EQ(big.outputs[0].tensor.data<int64_t>()[1], (int64_t{1} << 60) + 2);
  EXPECT_TRUE(Has(RunOp("CumSum", {x, Scalar64(2)}).status, "axis"));
}

TEST(TensorTopK, LargestSmallestStableTies) {
  // x = [[0,1,2,3],[4,5,6,7],[8,9,10,11]] style with ties: [3, 1, 3, 2]
  OpRun r = RunOp("TopK", {F32({3, 1, 3, 2}, {1, 4}), I64({3}, {1})}, {}, 2, {1});
  ASSERT_TRUE(r.status.ok()) << r.status.ToString();
  EXPECT_EQ(OutType(r), "float32[1,3]");
  EXPECT_TRUE(TensorsClose(r.outputs[0].tensor, F32({3, 3, 2}, {1, 3})));
  EXPECT_TRUE(TensorsClose(r.outputs[1].tensor, I64({0, 2, 3}, {1, 3})));
  OpRun s = RunOp("TopK", {F32({3, 1, 3, 2}, {4, 1}), I64({2}, {1})}, A({{"largest", Attr::Int(0)}, {"axis", Attr::Int(0)}}), 2);
  ASSERT_TRUE(s.status.ok());
  EXPECT_TRUE(TensorsClose(s.outputs[0].tensor, F32({1, 2}, {2, 1})));
  EXPECT_TRUE(TensorsClose(s.outputs[1].tensor, I64({1, 3}, {2, 1})));
  EXPECT_TRUE(Has(RunOp("TopK", {F32({3, 1}, {2}), I64({3}, {1})}, {}, 2).status, "K"));
  EXPECT_TRUE(Has(RunOp("TopK", {F32({3, 1}, {2}), I64({-1}, {1})}, {}, 2, {1}).status, "K"));
}

TEST(TensorArgMax, KeepdimsAndSelectLast) {
  const Tensor x = F32({2, 2, 1, 3, 3, 0}, {2, 3});
  OpRun r = RunOp("ArgMax", {x}, A({{"axis", Attr::Int(1)}}));
  ASSERT_TRUE(r.status.ok()) << r.status.ToString();
  EXPECT_TRUE(TensorsClose(r.outputs[0].tensor, I64({0, 0}, {2, 1})));
  OpRun last = RunOp("ArgMax", {x}, A({{"axis", Attr::Int(1)}, {"select_last_index", Attr::Int(1)}, {"keepdims", Attr::Int(0)}}));
  ASSERT_TRUE(last.status.ok());
  EXPECT_TRUE(TensorsClose(last.outputs[0].tensor, I64({1, 1}, {2})));
  OpRun mn = RunOp("ArgMin", {x}, A({{"axis", Attr::Int(0)}}));
  ASSERT_TRUE(mn.status.ok());
  EXPECT_TRUE(TensorsClose(mn.outputs[0].tensor, I64({0, 0, 1}, {1, 3})));
  EXPECT_TRUE(Has(RunOp("ArgMin", {x}, A({{"axis", Attr::Int(2)}})).status, "axis"));
}

TEST(TensorReverseSequence, BatchAndTimeAxes) {
  // x (time=3, batch=2): [[0,1],[2,3],[4,5]], lens [3,2] -> [[4,3],[2,1],[0,5]]
  OpRun r = RunOp("ReverseSequence", {F32({0, 1, 2, 3, 4, 5}, {3, 2}), I64({3, 2}, {2})});
  ASSERT_TRUE(r.status.ok()) << r.status.ToString();
  EXPECT_TRUE(TensorsClose(r.outputs[0].tensor, F32({4, 3, 2, 1, 0, 5}, {3, 2})));
  EXPECT_TRUE(Has(RunOp("ReverseSequence", {F32({0, 1, 2, 3, 4, 5}, {3, 2}), I64({4, 2}, {2})}).status, "sequence_lens"));
  EXPECT_TRUE(Has(RunOp("ReverseSequence", {F32({0, 1, 2, 3, 4, 5}, {3, 2}), I64({3}, {1})}).status, "sequence_lens"));
}

TEST(TensorUnique, SortedUnsortedAndAxis) {
  // onnx unique_not_sorted_without_axis: x = [2,1,1,3,4,3]
  const Tensor x = F32({2, 1, 1, 3, 4, 3}, {6});
  OpRun u = RunOp("Unique", {x}, A({{"sorted", Attr::Int(0)}}), 4);
  ASSERT_TRUE(u.status.ok()) << u.status.ToString();
  EXPECT_TRUE(TensorsClose(u.outputs[0].tensor, F32({2, 1, 3, 4}, {4})));
  EXPECT_TRUE(TensorsClose(u.outputs[1].tensor, I64({0, 1, 3, 4}, {4})));
  EXPECT_TRUE(TensorsClose(u.outputs[2].tensor, I64({0, 1, 1, 2, 3, 2}, {6})));
  EXPECT_TRUE(TensorsClose(u.outputs[3].tensor, I64({1, 2, 2, 1}, {4})));
  OpRun s = RunOp("Unique", {x}, {}, 4);
  ASSERT_TRUE(s.status.ok());
  EXPECT_TRUE(TensorsClose(s.outputs[0].tensor, F32({1, 2, 3, 4}, {4})));
  EXPECT_TRUE(TensorsClose(s.outputs[2].tensor, I64({1, 0, 0, 2, 3, 2}, {6})));
  // axis 0 of [[1,0],[1,0],[0,1]] -> rows [[0,1],[1,0]]
  OpRun a = RunOp("Unique", {F32({1, 0, 1, 0, 0, 1}, {3, 2})}, A({{"axis", Attr::Int(0)}}), 4);
  ASSERT_TRUE(a.status.ok()) << a.status.ToString();
  EXPECT_TRUE(TensorsClose(a.outputs[0].tensor, F32({0, 1, 1, 0}, {2, 2})));
  EXPECT_TRUE(TensorsClose(a.outputs[3].tensor, I64({1, 2}, {2})));
  OpRun str = RunOp("Unique", {Tensor::FromVector<std::string>({"b", "a", "b"})});
  ASSERT_TRUE(str.status.ok()) << str.status.ToString();
  EXPECT_TRUE(TensorsClose(str.outputs[0].tensor, Tensor::FromVector<std::string>({"a", "b"})));
  EXPECT_TRUE(Has(RunOp("Unique", {x}, A({{"axis", Attr::Int(1)}})).status, "axis"));
}

}  // namespace
}  // namespace kiln::testing
