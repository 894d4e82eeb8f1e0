// The network-definition API (include/kiln/network.h): each Add* appends ONNX-semantics
// nodes (default domain: "Conv", "Gemm", "Relu"...) to an IR graph and infers their types at
// once, so a mistake is reported by the call that made it, naming the layer. BuildFromNetwork
// copies the graph under its final names and hands it to the same builder as an ONNX model.
#include "kiln/network.h"

#include <algorithm>
#include <atomic>
#include <cstring>
#include <functional>
#include <set>

#include "api/engine_internal.h"
#include "api/optimize.h"
#include "base/checked_math.h"
#include "ir/infer.h"
#include "ir/op_schema.h"
#include "runtime/engine_impl.h"  // ToDType

namespace kiln {

struct NetworkDefinition::Impl {
  uint64_t id = 0;
  Graph graph;
  std::vector<std::string> final_names;  // per value: its name in the built engine
  std::set<std::string> names;           // every value/layer name in use (never reused)
  Status first_error;
  int num_layers = 0;

  // NetworkTensor's fields (Impl, a member of NetworkTensor's friend, may reach them).
  static NetworkTensor Handle(uint64_t network, ValueId v) { return NetworkTensor(network, v); }
  static uint64_t NetworkOf(NetworkTensor t) { return t.network_; }
  static int32_t IndexOf(NetworkTensor t) { return t.index_; }
};

namespace {

std::atomic<uint64_t> g_next_network_id{1};


bool IsPublicDType(DataType t) {
  switch (t) {
    case DataType::kFloat32: case DataType::kUInt8: case DataType::kInt8: case DataType::kInt32:
    case DataType::kInt64: case DataType::kBool: case DataType::kFloat16: case DataType::kFloat64:
    case DataType::kBFloat16: case DataType::kUInt16: case DataType::kInt16: case DataType::kUInt32:
    case DataType::kUInt64: case DataType::kComplex64: case DataType::kComplex128: case DataType::kString:
      return true;
  }
  return false;
}

std::string DimsText(const std::vector<int64_t>& dims) {
  std::string s;
  for (size_t i = 0; i < dims.size(); ++i) s += (i ? "x" : "") + std::to_string(dims[i]);
  return s;
}

}  // namespace

// One Add* call: names the layer, resolves its input handles, adds its constants and nodes
// (inferring each node's types as it goes) and turns any failure into an error naming the
// layer, recorded on the network.
class LayerBuilder {
 public:
  LayerBuilder(NetworkDefinition::Impl& net, const char* kind, const std::string& name)
      : net_(net), kind_(kind), name_(name) {}

  // Runs `body`, which returns the layer's output value.
  NetworkTensor Finish(const std::function<StatusOr<ValueId>()>& body) {
    auto out = Run(body);
    if (out.ok()) return NetworkDefinition::Impl::Handle(net_.id, *out);
    if (net_.first_error.ok()) net_.first_error = out.status();
    return NetworkTensor();
  }

  const std::string& name() const { return name_; }

  // The value behind input handle `t` (the layer's input number `i`).
  StatusOr<ValueId> In(NetworkTensor t, size_t i) {
    if (!t.valid())
      return InvalidArgument("input ", i, " is an invalid tensor (default-constructed, or returned by a layer that failed",
                             net_.first_error.ok() ? "" : StrCat(": ", net_.first_error.message()), ")");
    if (NetworkDefinition::Impl::NetworkOf(t) != net_.id)
      return InvalidArgument("input ", i, " is a tensor of another NetworkDefinition");
    const int32_t index = NetworkDefinition::Impl::IndexOf(t);
    if (index >= net_.graph.num_values()) return InvalidArgument("input ", i, " is not a tensor of this network");
    return static_cast<ValueId>(index);
  }
  // The input's tensor type, which must have a known rank.
  StatusOr<const TypeInfo*> RankedType(ValueId v) const {
    const TypeInfo& t = net_.graph.value(v).type;
    if (!t.is_tensor() || !t.shape.has_rank())
      return InvalidArgument("input '", net_.final_names[static_cast<size_t>(v)], "' has no known rank");
    return &t;
  }
  Status RequireFloat(ValueId v) const {
    const TypeInfo& t = net_.graph.value(v).type;
    if (t.dtype != DType::kFloat32)
      return InvalidArgument("input '", net_.final_names[static_cast<size_t>(v)], "' is ", DTypeName(t.dtype),
                             "; this layer takes float32");
    return Status::OK();
  }
  // Dim `axis` of value `v`, which must be known; `what` names it in errors.
  StatusOr<int64_t> KnownDim(ValueId v, int axis, const char* what) const {
    KILN_ASSIGN_OR_RETURN(const TypeInfo* t, RankedType(v));
    if (axis < 0 || axis >= t->shape.rank())
      return InvalidArgument("input '", net_.final_names[static_cast<size_t>(v)], "' of shape ", t->shape.ToString(),
                             " has no dim ", axis);
    const Dim& d = t->shape.dim(axis);
    if (!d.known())
      return InvalidArgument("the ", what, " (dim ", axis, " of input '", net_.final_names[static_cast<size_t>(v)],
                             "', shape ", t->shape.ToString(), ") must be fixed, not dynamic");
    return d.value;
  }

  // A float32 constant of `dims` from `w`, whose element count must match. `what` names it
  // ("weights", "bias"); `detail` says where the expected count comes from ("16x3x3x3").
  StatusOr<ValueId> FloatConst(const char* what, const Weights& w, const std::vector<int64_t>& dims) {
    KILN_ASSIGN_OR_RETURN(int64_t expected, CheckedNumel(dims, what));
    if (w.dtype != DataType::kFloat32)
      return InvalidArgument(what, " are ", DataTypeName(w.dtype), "; this layer takes float32 weights");
    if (w.count != expected)
      return InvalidArgument(what, std::strcmp(what, "weights") == 0 ? " have " : " has ", w.count,
                             " elements, expected ", expected, " (", DimsText(dims), ")");
    return Const(what, w, dims);
  }
  // A constant of any dtype; the count must match `dims`.
  StatusOr<ValueId> Const(const std::string& suffix, const Weights& w, const std::vector<int64_t>& dims) {
    const std::string what = suffix.empty() ? "values" : suffix;
    if (!IsPublicDType(w.dtype)) return InvalidArgument(what, ": invalid data type ", static_cast<int>(w.dtype));
    for (int64_t d : dims)
      if (d < 0) return InvalidArgument(what, ": negative dimension in ", DimsText(dims));
    KILN_ASSIGN_OR_RETURN(Tensor t, Tensor::Create(ToDType(w.dtype), dims, what));
    if (w.count != t.numel())
      return InvalidArgument(what, " have ", w.count, " elements, expected ", t.numel(), " (", DimsText(dims), ")");
    if (t.numel() > 0 && w.values == nullptr) return InvalidArgument(what, ": values are null");
    if (t.dtype() == DType::kString) {  // w.values: an array of std::string
      const auto* src = static_cast<const std::string*>(w.values);
      std::copy(src, src + t.numel(), t.data<std::string>());
    } else if (t.nbytes() > 0) {
      std::memcpy(t.raw_data(), w.values, t.nbytes());
    }
    return AddConstTensor(suffix, std::move(t));
  }
  // A constant named "<layer>.<suffix>" (or the layer's name for suffix "").
  StatusOr<ValueId> AddConstTensor(const std::string& suffix, Tensor t) {
    const std::string n = suffix.empty() ? name_ : UniqueName(StrCat(name_, ".", suffix));
    KILN_ASSIGN_OR_RETURN(ValueId v, net_.graph.AddConstant(n, std::move(t)));
    Named(v, n);
    return v;
  }
  StatusOr<ValueId> Int64Const(const std::string& suffix, const std::vector<int64_t>& values) {
    return AddConstTensor(suffix, Tensor::FromVector(values));
  }

  // Adds `op(inputs)` with `attrs`; its output is the layer's output (suffix "") or an
  // intermediate value "<layer>/<suffix>". Infers its type.
  StatusOr<ValueId> Op(const std::string& op, std::vector<ValueId> inputs, AttrMap attrs = {},
                       const std::string& suffix = "") {
    // The layer's own name was reserved for its output when the layer began.
    const std::string out_name = suffix.empty() ? name_ : UniqueName(StrCat(name_, "/", suffix));
    KILN_ASSIGN_OR_RETURN(ValueId out, net_.graph.AddValue(out_name));
    Named(out, out_name);
    Node node;
    node.name = suffix.empty() ? name_ : StrCat(name_, "/", suffix);
    node.op_type = op;
    node.inputs = std::move(inputs);
    node.outputs = {out};
    node.attrs = std::move(attrs);
    KILN_ASSIGN_OR_RETURN(NodeId id, net_.graph.AddNode(std::move(node)));
    Status st = InferNodeTypes(net_.graph, id);
    if (!st.ok()) {
      net_.graph.RemoveNode(id);
      return st.WithPrefix(op);
    }
    return out;
  }

 private:
  StatusOr<ValueId> Run(const std::function<StatusOr<ValueId>()>& body) {
    const int index = net_.num_layers++;
    if (name_.empty()) {
      name_ = UniqueName(StrCat(kind_, "_", index));
    } else if (net_.names.count(name_)) {
      return InvalidArgument("layer '", name_, "' (", kind_, "): the name is already used in this network");
    }
    net_.names.insert(name_);
    auto out = body();
    if (!out.ok()) return out.status().WithPrefix(StrCat("layer '", name_, "' (", kind_, ")"));
    return out;
  }
  std::string UniqueName(const std::string& base) {
    std::string n = base;
    for (int k = 1; net_.names.count(n) || net_.graph.FindValue(n); ++k) n = StrCat(base, "_", k);
    net_.names.insert(n);
    return n;
  }
  void Named(ValueId v, const std::string& n) {
    if (net_.final_names.size() <= static_cast<size_t>(v)) net_.final_names.resize(static_cast<size_t>(v) + 1);
    net_.final_names[static_cast<size_t>(v)] = n;
  }

  NetworkDefinition::Impl& net_;
  const char* kind_;
  std::string name_;
};

namespace {

// ONNX pads from the API's form: one per spatial dim (both sides) or begins then ends.
StatusOr<std::vector<int64_t>> OnnxPads(const std::vector<int64_t>& pads, size_t spatial) {
  if (pads.empty()) return std::vector<int64_t>(2 * spatial, 0);
  for (int64_t p : pads)
    if (p < 0) return InvalidArgument("negative padding ", p);
  if (pads.size() == spatial) {
    std::vector<int64_t> out = pads;
    out.insert(out.end(), pads.begin(), pads.end());
    return out;
  }
  if (pads.size() == 2 * spatial) return pads;
  return InvalidArgument(pads.size(), " pads for ", spatial, " spatial dims (give ", spatial, " or ", 2 * spatial, ")");
}

// Per-spatial-dim values (strides, dilations): `dflt` when empty, else one per dim, each >= 1.
StatusOr<std::vector<int64_t>> SpatialValues(const std::vector<int64_t>& v, size_t spatial, int64_t dflt,
                                             const char* what) {
  if (v.empty()) return std::vector<int64_t>(spatial, dflt);
  if (v.size() != spatial) return InvalidArgument(v.size(), " ", what, " for ", spatial, " spatial dims");
  for (int64_t x : v)
    if (x < 1) return InvalidArgument(what, " must be >= 1, got ", x);
  return v;
}

// Checks that `input` is [N, C, spatial...] with `spatial` spatial dims.
Status CheckSpatialRank(LayerBuilder& L, ValueId x, size_t spatial) {
  KILN_ASSIGN_OR_RETURN(const TypeInfo* t, L.RankedType(x));
  if (static_cast<size_t>(t->shape.rank()) != spatial + 2)
    return InvalidArgument("input of shape ", t->shape.ToString(), " must have rank ", spatial + 2, " ([N, C, ",
                           spatial, " spatial dims]) for a ", spatial, "-d window");
  return Status::OK();
}

}  // namespace

// ---- NetworkDefinition ----

NetworkDefinition::NetworkDefinition() : impl_(std::make_unique<Impl>()) {
  impl_->id = g_next_network_id.fetch_add(1);
  impl_->graph.name = "network";
}
NetworkDefinition::~NetworkDefinition() = default;
NetworkDefinition::NetworkDefinition(NetworkDefinition&&) noexcept = default;
NetworkDefinition& NetworkDefinition::operator=(NetworkDefinition&&) noexcept = default;

Status NetworkDefinition::status() const { return impl_->first_error; }
int NetworkDefinition::num_layers() const { return impl_->num_layers; }

NetworkTensor NetworkDefinition::AddInput(const std::string& name, DataType dtype, const std::vector<int64_t>& dims) {
  Impl& net = *impl_;
  Status st;
  if (name.empty()) st = InvalidArgument("input: the name is empty");
  else if (net.names.count(name)) st = InvalidArgument("input '", name, "': the name is already used in this network");
  else if (!IsPublicDType(dtype)) st = InvalidArgument("input '", name, "': invalid data type ", static_cast<int>(dtype));
  std::vector<Dim> shape;
  for (size_t i = 0; st.ok() && i < dims.size(); ++i) {
    if (dims[i] < -1) st = InvalidArgument("input '", name, "': dimension ", i, " is ", dims[i], " (a size, or -1 for dynamic)");
    shape.push_back(dims[i] == -1 ? Dim::Symbol(StrCat(name, "_dim", i)) : Dim(dims[i]));
  }
  if (st.ok()) {
    auto v = net.graph.AddValue(name, TypeInfo::Tensor(ToDType(dtype), Shape(std::move(shape))));
    if (v.ok()) {
      net.names.insert(name);
      net.graph.inputs().push_back(*v);
      net.final_names.resize(static_cast<size_t>(net.graph.num_values()));
      net.final_names[static_cast<size_t>(*v)] = name;
      return Impl::Handle(net.id, *v);
    }
    st = v.status();
  }
  if (net.first_error.ok()) net.first_error = st;
  return NetworkTensor();
}

NetworkTensor NetworkDefinition::AddConstant(const std::vector<int64_t>& dims, const Weights& values,
                                             const std::string& name) {
  LayerBuilder L(*impl_, "Constant", name);
  return L.Finish([&]() -> StatusOr<ValueId> {
    return L.Const("", values, dims);  // the constant itself, under the layer's name
  });
}

NetworkTensor NetworkDefinition::AddConvolution(NetworkTensor input, int64_t out_channels,
                                                const std::vector<int64_t>& kernel, const Weights& weights,
                                                const Weights& bias, const ConvParams& params,
                                                const std::string& name) {
  LayerBuilder L(*impl_, "Convolution", name);
  return L.Finish([&]() -> StatusOr<ValueId> {
    KILN_ASSIGN_OR_RETURN(ValueId x, L.In(input, 0));
    KILN_RETURN_IF_ERROR(L.RequireFloat(x));
    if (kernel.empty()) return InvalidArgument("the kernel has no dims");
    for (int64_t k : kernel)
      if (k < 1) return InvalidArgument("kernel dims must be >= 1, got ", DimsText(kernel));
    if (out_channels < 1) return InvalidArgument("out_channels must be >= 1, got ", out_channels);
    const size_t spatial = kernel.size();
    KILN_RETURN_IF_ERROR(CheckSpatialRank(L, x, spatial));
    KILN_ASSIGN_OR_RETURN(int64_t in_channels, L.KnownDim(x, 1, "input channel count"));
    const int64_t groups = params.groups;
    if (groups < 1 || in_channels % groups != 0 || out_channels % groups != 0)
      return InvalidArgument("groups = ", groups, " must be >= 1 and divide both the input channels (", in_channels,
                             ") and out_channels (", out_channels, ")");
    KILN_ASSIGN_OR_RETURN(std::vector<int64_t> strides, SpatialValues(params.strides, spatial, 1, "strides"));
    KILN_ASSIGN_OR_RETURN(std::vector<int64_t> dilations, SpatialValues(params.dilations, spatial, 1, "dilations"));
    KILN_ASSIGN_OR_RETURN(std::vector<int64_t> pads, OnnxPads(params.pads, spatial));
    std::vector<int64_t> wdims = {out_channels, in_channels / groups};
    wdims.insert(wdims.end(), kernel.begin(), kernel.end());
    KILN_ASSIGN_OR_RETURN(ValueId w, L.FloatConst("weights", weights, wdims));
    std::vector<ValueId> ins = {x, w};
    if (bias.count != 0) {
      KILN_ASSIGN_OR_RETURN(ValueId b, L.FloatConst("bias", bias, {out_channels}));
      ins.push_back(b);
    }
    AttrMap a;
    a.set("kernel_shape", Attr::Ints(kernel));
    a.set("strides", Attr::Ints(strides));
    a.set("dilations", Attr::Ints(dilations));
    a.set("pads", Attr::Ints(pads));
    a.set("group", Attr::Int(groups));
    return L.Op("Conv", std::move(ins), std::move(a));
  });
}

NetworkTensor NetworkDefinition::AddFullyConnected(NetworkTensor input, int64_t out_features, const Weights& weights,
                                                   const Weights& bias, const std::string& name) {
  LayerBuilder L(*impl_, "FullyConnected", name);
  return L.Finish([&]() -> StatusOr<ValueId> {
    KILN_ASSIGN_OR_RETURN(ValueId x, L.In(input, 0));
    KILN_RETURN_IF_ERROR(L.RequireFloat(x));
    if (out_features < 1) return InvalidArgument("out_features must be >= 1, got ", out_features);
    KILN_ASSIGN_OR_RETURN(const TypeInfo* t, L.RankedType(x));
    const int rank = t->shape.rank();
    if (rank < 1) return InvalidArgument("input is a scalar; it needs a feature dim");
    KILN_ASSIGN_OR_RETURN(int64_t k, L.KnownDim(x, rank - 1, "input feature count"));
    if (bias.count != 0 && bias.count != out_features)
      return InvalidArgument("bias has ", bias.count, " elements, expected ", out_features, " (", out_features, ")");
    if (rank == 2) {  // Gemm(x, W, b) with W transposed: W stays in its [out, K] layout
      KILN_ASSIGN_OR_RETURN(ValueId w, L.FloatConst("weights", weights, {out_features, k}));
      std::vector<ValueId> ins = {x, w};
      if (bias.count != 0) {
        KILN_ASSIGN_OR_RETURN(ValueId b, L.FloatConst("bias", bias, {out_features}));
        ins.push_back(b);
      }
      AttrMap a;
      a.set("transB", Attr::Int(1));
      return L.Op("Gemm", std::move(ins), std::move(a));
    }
    // Any other rank: MatMul with W^T ([K, out]) over the last dim, then the bias.
    int64_t expected = 0;
    if (!CheckedMul(out_features, k, &expected) || weights.count != expected)
      return InvalidArgument("weights have ", weights.count, " elements, expected ", expected, " (", out_features, "x",
                             k, ")");
    if (weights.dtype != DataType::kFloat32 || weights.values == nullptr)
      return InvalidArgument("weights must be float32 values");
    std::vector<float> wt(static_cast<size_t>(expected));
    const auto* src = static_cast<const float*>(weights.values);
    for (int64_t o = 0; o < out_features; ++o)
      for (int64_t i = 0; i < k; ++i) wt[static_cast<size_t>(i * out_features + o)] = src[o * k + i];
    KILN_ASSIGN_OR_RETURN(ValueId w, L.FloatConst("weights", Weights(wt), {k, out_features}));
    if (bias.count == 0) return L.Op("MatMul", {x, w});
    KILN_ASSIGN_OR_RETURN(ValueId b, L.FloatConst("bias", bias, {out_features}));
    KILN_ASSIGN_OR_RETURN(ValueId mm, L.Op("MatMul", {x, w}, {}, "matmul"));
    return L.Op("Add", {mm, b});
  });
}

NetworkTensor NetworkDefinition::AddMatrixMultiply(NetworkTensor a, NetworkTensor b, const std::string& name) {
  LayerBuilder L(*impl_, "MatrixMultiply", name);
  return L.Finish([&]() -> StatusOr<ValueId> {
    KILN_ASSIGN_OR_RETURN(ValueId va, L.In(a, 0));
    KILN_ASSIGN_OR_RETURN(ValueId vb, L.In(b, 1));
    return L.Op("MatMul", {va, vb});
  });
}

namespace {

const char* ActivationName(ActivationType t) {
  switch (t) {
    case ActivationType::kRelu: return "Relu";
    case ActivationType::kSigmoid: return "Sigmoid";
    case ActivationType::kTanh: return "Tanh";
    case ActivationType::kLeakyRelu: return "LeakyRelu";
    case ActivationType::kClip: return "Clip";
    case ActivationType::kGelu: return "Gelu";
    case ActivationType::kGeluTanh: return "GeluTanh";
    case ActivationType::kSilu: return "Silu";
    case ActivationType::kElu: return "Elu";
    case ActivationType::kSoftplus: return "Softplus";
    case ActivationType::kHardSigmoid: return "HardSigmoid";
  }
  return nullptr;
}

struct ActivationArgs {
  bool given = false;  // alpha/beta passed by the caller
  float alpha = 0, beta = 0;
};

StatusOr<ValueId> BuildActivation(LayerBuilder& L, NetworkTensor input, ActivationType type, ActivationArgs args) {
  KILN_ASSIGN_OR_RETURN(ValueId x, L.In(input, 0));
  const char* op = ActivationName(type);
  if (op == nullptr) return InvalidArgument("unknown activation type ", static_cast<int>(type));
  const bool takes_alpha = type == ActivationType::kLeakyRelu || type == ActivationType::kClip ||
                           type == ActivationType::kElu || type == ActivationType::kHardSigmoid;
  const bool takes_beta = type == ActivationType::kClip || type == ActivationType::kHardSigmoid;
  if (args.given && ((!takes_alpha && args.alpha != 0) || (!takes_beta && args.beta != 0)))
    return InvalidArgument(op, " takes no ", takes_alpha ? "beta" : "alpha/beta", " parameter");
  AttrMap a;
  switch (type) {
    case ActivationType::kClip: {
      if (!args.given) return InvalidArgument("Clip needs its bounds: AddActivation(x, kClip, min, max)");
      if (args.alpha > args.beta) return InvalidArgument("Clip min ", args.alpha, " is above max ", args.beta);
      KILN_RETURN_IF_ERROR(L.RequireFloat(x));
      KILN_ASSIGN_OR_RETURN(ValueId lo, L.AddConstTensor("min", Tensor::Scalar(args.alpha)));
      KILN_ASSIGN_OR_RETURN(ValueId hi, L.AddConstTensor("max", Tensor::Scalar(args.beta)));
      return L.Op("Clip", {x, lo, hi});
    }
    case ActivationType::kSilu: {
      KILN_ASSIGN_OR_RETURN(ValueId s, L.Op("Sigmoid", {x}, {}, "sigmoid"));
      return L.Op("Mul", {x, s});
    }
    case ActivationType::kGelu:
      return L.Op("Gelu", {x});
    case ActivationType::kGeluTanh:
      a.set("approximate", Attr::String("tanh"));
      return L.Op("Gelu", {x}, std::move(a));
    case ActivationType::kLeakyRelu:
    case ActivationType::kElu:
      if (args.given) a.set("alpha", Attr::Float(args.alpha));
      return L.Op(op, {x}, std::move(a));
    case ActivationType::kHardSigmoid:
      if (args.given) {
        a.set("alpha", Attr::Float(args.alpha));
        a.set("beta", Attr::Float(args.beta));
      }
      return L.Op(op, {x}, std::move(a));
    default:
      return L.Op(op, {x});
  }
}

}  // namespace

NetworkTensor NetworkDefinition::AddActivation(NetworkTensor input, ActivationType type, const std::string& name) {
  LayerBuilder L(*impl_, "Activation", name);
  return L.Finish([&]() { return BuildActivation(L, input, type, {}); });
}

NetworkTensor NetworkDefinition::AddActivation(NetworkTensor input, ActivationType type, float alpha, float beta,
                                               const std::string& name) {
  LayerBuilder L(*impl_, "Activation", name);
  return L.Finish([&]() { return BuildActivation(L, input, type, {true, alpha, beta}); });
}

NetworkTensor NetworkDefinition::AddElementWise(NetworkTensor a, NetworkTensor b, ElementWiseOp op,
                                                const std::string& name) {
  LayerBuilder L(*impl_, "ElementWise", name);
  return L.Finish([&]() -> StatusOr<ValueId> {
    KILN_ASSIGN_OR_RETURN(ValueId va, L.In(a, 0));
    KILN_ASSIGN_OR_RETURN(ValueId vb, L.In(b, 1));
    const char* onnx_op = nullptr;
    switch (op) {
      case ElementWiseOp::kAdd: onnx_op = "Add"; break;
      case ElementWiseOp::kSub: onnx_op = "Sub"; break;
      case ElementWiseOp::kMul: onnx_op = "Mul"; break;
      case ElementWiseOp::kDiv: onnx_op = "Div"; break;
      case ElementWiseOp::kMax: onnx_op = "Max"; break;
      case ElementWiseOp::kMin: onnx_op = "Min"; break;
      case ElementWiseOp::kPow: onnx_op = "Pow"; break;
    }
    if (onnx_op == nullptr) return InvalidArgument("unknown elementwise op ", static_cast<int>(op));
    return L.Op(onnx_op, {va, vb});
  });
}

NetworkTensor NetworkDefinition::AddPooling(NetworkTensor input, PoolingType type, const std::vector<int64_t>& window,
                                            const PoolParams& params, const std::string& name) {
  LayerBuilder L(*impl_, "Pooling", name);
  return L.Finish([&]() -> StatusOr<ValueId> {
    KILN_ASSIGN_OR_RETURN(ValueId x, L.In(input, 0));
    if (type != PoolingType::kMax && type != PoolingType::kAverage)
      return InvalidArgument("unknown pooling type ", static_cast<int>(type));
    if (window.empty()) return InvalidArgument("the window has no dims");
    for (int64_t k : window)
      if (k < 1) return InvalidArgument("window dims must be >= 1, got ", DimsText(window));
    KILN_RETURN_IF_ERROR(CheckSpatialRank(L, x, window.size()));
    std::vector<int64_t> strides = window;
    if (!params.strides.empty()) {
      KILN_ASSIGN_OR_RETURN(strides, SpatialValues(params.strides, window.size(), 1, "strides"));
    }
    KILN_ASSIGN_OR_RETURN(std::vector<int64_t> pads, OnnxPads(params.pads, window.size()));
    for (size_t i = 0; i < window.size(); ++i)
      if (pads[i] >= window[i] || pads[i + window.size()] >= window[i])
        return InvalidArgument("padding ", DimsText(pads), " must be smaller than the window ", DimsText(window));
    AttrMap a;
    a.set("kernel_shape", Attr::Ints(window));
    a.set("strides", Attr::Ints(strides));
    a.set("pads", Attr::Ints(pads));
    a.set("ceil_mode", Attr::Int(params.ceil_mode ? 1 : 0));
    if (type == PoolingType::kAverage) a.set("count_include_pad", Attr::Int(params.count_include_pad ? 1 : 0));
    return L.Op(type == PoolingType::kMax ? "MaxPool" : "AveragePool", {x}, std::move(a));
  });
}

NetworkTensor NetworkDefinition::AddGlobalPooling(NetworkTensor input, PoolingType type, const std::string& name) {
  LayerBuilder L(*impl_, "GlobalPooling", name);
  return L.Finish([&]() -> StatusOr<ValueId> {
    KILN_ASSIGN_OR_RETURN(ValueId x, L.In(input, 0));
    if (type != PoolingType::kMax && type != PoolingType::kAverage)
      return InvalidArgument("unknown pooling type ", static_cast<int>(type));
    KILN_ASSIGN_OR_RETURN(const TypeInfo* t, L.RankedType(x));
    if (t->shape.rank() < 3) return InvalidArgument("input of shape ", t->shape.ToString(), " has no spatial dims");
    return L.Op(type == PoolingType::kMax ? "GlobalMaxPool" : "GlobalAveragePool", {x});
  });
}

NetworkTensor NetworkDefinition::AddSoftmax(NetworkTensor input, int axis, const std::string& name) {
  LayerBuilder L(*impl_, "Softmax", name);
  return L.Finish([&]() -> StatusOr<ValueId> {
    KILN_ASSIGN_OR_RETURN(ValueId x, L.In(input, 0));
    AttrMap a;
    a.set("axis", Attr::Int(axis));
    return L.Op("Softmax", {x}, std::move(a));
  });
}

NetworkTensor NetworkDefinition::AddConcatenation(const std::vector<NetworkTensor>& inputs, int axis,
                                                  const std::string& name) {
  LayerBuilder L(*impl_, "Concatenation", name);
  return L.Finish([&]() -> StatusOr<ValueId> {
    if (inputs.empty()) return InvalidArgument("no inputs");
    std::vector<ValueId> ins;
    for (size_t i = 0; i < inputs.size(); ++i) {
      KILN_ASSIGN_OR_RETURN(ValueId v, L.In(inputs[i], i));
      ins.push_back(v);
    }
    AttrMap a;
    a.set("axis", Attr::Int(axis));
    return L.Op("Concat", std::move(ins), std::move(a));
  });
}

NetworkTensor NetworkDefinition::AddReshape(NetworkTensor input, const std::vector<int64_t>& dims,
                                            const std::string& name) {
  LayerBuilder L(*impl_, "Reshape", name);
  return L.Finish([&]() -> StatusOr<ValueId> {
    KILN_ASSIGN_OR_RETURN(ValueId x, L.In(input, 0));
    KILN_ASSIGN_OR_RETURN(ValueId shape, L.Int64Const("shape", dims));
    return L.Op("Reshape", {x, shape});
  });
}

NetworkTensor NetworkDefinition::AddFlatten(NetworkTensor input, int axis, const std::string& name) {
  LayerBuilder L(*impl_, "Flatten", name);
  return L.Finish([&]() -> StatusOr<ValueId> {
    KILN_ASSIGN_OR_RETURN(ValueId x, L.In(input, 0));
    AttrMap a;
    a.set("axis", Attr::Int(axis));
    return L.Op("Flatten", {x}, std::move(a));
  });
}

NetworkTensor NetworkDefinition::AddTranspose(NetworkTensor input, const std::vector<int64_t>& perm,
                                              const std::string& name) {
  LayerBuilder L(*impl_, "Transpose", name);
  return L.Finish([&]() -> StatusOr<ValueId> {
    KILN_ASSIGN_OR_RETURN(ValueId x, L.In(input, 0));
    KILN_ASSIGN_OR_RETURN(const TypeInfo* t, L.RankedType(x));
    std::vector<bool> seen(static_cast<size_t>(t->shape.rank()), false);
    bool ok = perm.size() == seen.size();
    for (int64_t p : perm) {
      ok = ok && p >= 0 && p < t->shape.rank() && !seen[static_cast<size_t>(p)];
      if (ok) seen[static_cast<size_t>(p)] = true;
    }
    if (!ok) return InvalidArgument("perm [", DimsText(perm), "] is not a permutation of the ", t->shape.rank(),
                                    " dims of input ", t->shape.ToString());
    AttrMap a;
    a.set("perm", Attr::Ints(perm));
    return L.Op("Transpose", {x}, std::move(a));
  });
}

NetworkTensor NetworkDefinition::AddBatchNormalization(NetworkTensor input, const Weights& scale, const Weights& bias,
                                                       const Weights& mean, const Weights& variance, float epsilon,
                                                       const std::string& name) {
  LayerBuilder L(*impl_, "BatchNormalization", name);
  return L.Finish([&]() -> StatusOr<ValueId> {
    KILN_ASSIGN_OR_RETURN(ValueId x, L.In(input, 0));
    KILN_RETURN_IF_ERROR(L.RequireFloat(x));
    KILN_ASSIGN_OR_RETURN(int64_t c, L.KnownDim(x, 1, "channel count"));
    if (!(epsilon >= 0)) return InvalidArgument("epsilon must be >= 0, got ", epsilon);
    KILN_ASSIGN_OR_RETURN(ValueId s, L.FloatConst("scale", scale, {c}));
    KILN_ASSIGN_OR_RETURN(ValueId b, L.FloatConst("bias", bias, {c}));
    KILN_ASSIGN_OR_RETURN(ValueId m, L.FloatConst("mean", mean, {c}));
    KILN_ASSIGN_OR_RETURN(ValueId v, L.FloatConst("variance", variance, {c}));
    AttrMap a;
    a.set("epsilon", Attr::Float(epsilon));
    return L.Op("BatchNormalization", {x, s, b, m, v}, std::move(a));
  });
}

NetworkTensor NetworkDefinition::AddScale(NetworkTensor input, const Weights& scale, const Weights& shift,
                                          const std::string& name) {
  LayerBuilder L(*impl_, "Scale", name);
  return L.Finish([&]() -> StatusOr<ValueId> {
    KILN_ASSIGN_OR_RETURN(ValueId x, L.In(input, 0));
    KILN_RETURN_IF_ERROR(L.RequireFloat(x));
    KILN_ASSIGN_OR_RETURN(int64_t c, L.KnownDim(x, 1, "channel count"));
    KILN_ASSIGN_OR_RETURN(const TypeInfo* t, L.RankedType(x));
    // [C, 1, ...]: broadcasts over dim 1 of [N, C, ...].
    std::vector<int64_t> dims(static_cast<size_t>(t->shape.rank() - 1), 1);
    dims[0] = c;
    KILN_ASSIGN_OR_RETURN(ValueId s, L.FloatConst("scale", scale, dims));
    if (shift.count == 0) return L.Op("Mul", {x, s});
    KILN_ASSIGN_OR_RETURN(ValueId b, L.FloatConst("shift", shift, dims));
    KILN_ASSIGN_OR_RETURN(ValueId scaled, L.Op("Mul", {x, s}, {}, "mul"));
    return L.Op("Add", {scaled, b});
  });
}

NetworkTensor NetworkDefinition::AddLayerNormalization(NetworkTensor input, const Weights& scale, const Weights& bias,
                                                       int axis, float epsilon, const std::string& name) {
  LayerBuilder L(*impl_, "LayerNormalization", name);
  return L.Finish([&]() -> StatusOr<ValueId> {
    KILN_ASSIGN_OR_RETURN(ValueId x, L.In(input, 0));
    KILN_RETURN_IF_ERROR(L.RequireFloat(x));
    KILN_ASSIGN_OR_RETURN(const TypeInfo* t, L.RankedType(x));
    const int rank = t->shape.rank();
    KILN_ASSIGN_OR_RETURN(int a, NormalizeAxis(axis, rank));
    if (!(epsilon >= 0)) return InvalidArgument("epsilon must be >= 0, got ", epsilon);
    std::vector<int64_t> dims;
    for (int i = a; i < rank; ++i) {
      KILN_ASSIGN_OR_RETURN(int64_t d, L.KnownDim(x, i, "normalized dim"));
      dims.push_back(d);
    }
    KILN_ASSIGN_OR_RETURN(ValueId s, L.FloatConst("scale", scale, dims));
    std::vector<ValueId> ins = {x, s};
    if (bias.count != 0) {
      KILN_ASSIGN_OR_RETURN(ValueId b, L.FloatConst("bias", bias, dims));
      ins.push_back(b);
    }
    AttrMap attrs;
    attrs.set("axis", Attr::Int(a));
    attrs.set("epsilon", Attr::Float(epsilon));
    return L.Op("LayerNormalization", std::move(ins), std::move(attrs));
  });
}

NetworkTensor NetworkDefinition::AddReduce(NetworkTensor input, ReduceOp op, const std::vector<int64_t>& axes,
                                           bool keep_dims, const std::string& name) {
  LayerBuilder L(*impl_, "Reduce", name);
  return L.Finish([&]() -> StatusOr<ValueId> {
    KILN_ASSIGN_OR_RETURN(ValueId x, L.In(input, 0));
    const char* onnx_op = nullptr;
    switch (op) {
      case ReduceOp::kSum: onnx_op = "ReduceSum"; break;
      case ReduceOp::kMean: onnx_op = "ReduceMean"; break;
      case ReduceOp::kMax: onnx_op = "ReduceMax"; break;
      case ReduceOp::kMin: onnx_op = "ReduceMin"; break;
      case ReduceOp::kProd: onnx_op = "ReduceProd"; break;
      case ReduceOp::kSumSquare: onnx_op = "ReduceSumSquare"; break;
      case ReduceOp::kL2: onnx_op = "ReduceL2"; break;
    }
    if (onnx_op == nullptr) return InvalidArgument("unknown reduce op ", static_cast<int>(op));
    AttrMap a;
    a.set("keepdims", Attr::Int(keep_dims ? 1 : 0));
    if (axes.empty()) return L.Op(onnx_op, {x}, std::move(a));  // every dim
    KILN_ASSIGN_OR_RETURN(ValueId ax, L.Int64Const("axes", axes));
    return L.Op(onnx_op, {x, ax}, std::move(a));
  });
}

Status NetworkDefinition::MarkOutput(NetworkTensor t, const std::string& name) {
  Impl& net = *impl_;
  const std::string shown = name.empty() ? std::string("output") : StrCat("output '", name, "'");
  Status st;
  if (!t.valid()) {
    st = InvalidArgument(shown, ": an invalid tensor (default-constructed, or returned by a layer that failed)");
  } else if (Impl::NetworkOf(t) != net.id) {
    st = InvalidArgument(shown, ": the tensor belongs to another NetworkDefinition");
  } else if (Impl::IndexOf(t) >= net.graph.num_values()) {
    st = InvalidArgument(shown, ": not a tensor of this network");
  } else {
    const ValueId v = Impl::IndexOf(t);
    const std::string& current = net.final_names[static_cast<size_t>(v)];
    const Value& val = net.graph.value(v);
    auto& outs = net.graph.outputs();
    if (std::find(outs.begin(), outs.end(), v) != outs.end())
      st = InvalidArgument(shown, ": tensor '", current, "' is already an output");
    else if (val.producer < 0)
      st = InvalidArgument(shown, ": tensor '", current, "' is a network input or constant, not a layer's output");
    else if (!name.empty() && name != current && net.names.count(name))
      st = InvalidArgument(shown, ": the name is already used in this network");
    if (st.ok()) {
      if (!name.empty() && name != current) {
        net.names.insert(name);
        net.final_names[static_cast<size_t>(v)] = name;
      }
      outs.push_back(v);
      return Status::OK();
    }
  }
  if (net.first_error.ok()) net.first_error = st;
  return st;
}

StatusOr<TensorInfo> NetworkDefinition::GetTensorInfo(NetworkTensor t) const {
  const Impl& net = *impl_;
  if (!t.valid()) return InvalidArgument("an invalid tensor (default-constructed, or returned by a layer that failed)");
  if (Impl::NetworkOf(t) != net.id) return InvalidArgument("the tensor belongs to another NetworkDefinition");
  const ValueId id = Impl::IndexOf(t);
  if (id >= net.graph.num_values()) return InvalidArgument("not a tensor of this network");
  const Value& v = net.graph.value(id);
  TensorInfo info{net.final_names[static_cast<size_t>(id)], static_cast<DataType>(static_cast<int>(v.type.dtype)), {}};
  if (v.type.shape.has_rank())
    for (const Dim& d : v.type.shape.dims()) info.shape.push_back(d.known() ? d.value : -1);
  return info;
}

// ---- BuildFromNetwork ----

namespace {

// The network's graph under its final names, with its own copy of every constant (the
// optimizer may rewrite the engine's graph; the network stays as it was).
StatusOr<std::shared_ptr<Graph>> CopyForBuild(const NetworkDefinition::Impl& net) {
  const Graph& src = net.graph;
  auto g = std::make_shared<Graph>();
  g->name = src.name;
  for (ValueId v = 0; v < src.num_values(); ++v) {
    const Value& val = src.value(v);
    const std::string& name = net.final_names[static_cast<size_t>(v)];
    ValueId id = 0;
    if (val.constant) {
      KILN_ASSIGN_OR_RETURN(id, g->AddConstant(name, val.constant->Clone()));
    } else {
      KILN_ASSIGN_OR_RETURN(id, g->AddValue(name, val.producer >= 0 ? TypeInfo{} : val.type));
    }
    if (id != v) return Internal("network value ids changed while copying");
  }
  for (NodeId n = 0; n < src.num_nodes(); ++n) {
    if (src.node(n).dead) continue;
    Node node = src.node(n);
    KILN_RETURN_IF_ERROR(g->AddNode(std::move(node)).status());
  }
  g->inputs() = src.inputs();
  g->outputs() = src.outputs();
  InferOptions io;
  io.evaluator = &ReferenceEvaluator();
  KILN_RETURN_IF_ERROR(InferTypes(*g, io));
  return g;
}

}  // namespace

StatusOr<std::shared_ptr<const Engine>> BuildFromNetwork(const NetworkDefinition& network, const BuildOptions& options) {
  const NetworkDefinition::Impl& net = network.impl();
  if (!net.first_error.ok()) return net.first_error;
  if (net.graph.outputs().empty())
    return FailedPrecondition("the network has no outputs: mark at least one with MarkOutput");
  KILN_ASSIGN_OR_RETURN(std::shared_ptr<Graph> g, CopyForBuild(net));
  auto engine = BuildEngineFromGraph(std::move(g), options);
  if (!engine.ok()) return engine.status().WithPrefix("network");
  return engine;
}

}  // namespace kiln
