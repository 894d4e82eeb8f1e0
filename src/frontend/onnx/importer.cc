#include "frontend/onnx/importer.h"

#include "ir/op_schema.h"

#include <onnx/onnx_pb.h>

#include <google/protobuf/io/coded_stream.h>

#include <filesystem>
#include <fstream>

#include "base/file.h"

#include "frontend/onnx/normalize.h"
#include "frontend/onnx/tensor_proto.h"

namespace kiln {

namespace fs = std::filesystem;

namespace {

Status CheckNesting(const std::vector<Graph*>& outer, const std::string& what) {
  if (static_cast<int>(outer.size()) >= kMaxGraphNesting)
    return InvalidArgument(what, ": subgraphs nested more than ", kMaxGraphNesting,
                           " levels deep (If/Loop/Scan bodies inside each other); kiln's limit is ", kMaxGraphNesting);
  return Status::OK();
}

// Depth of the deepest subgraph under `gp` (0: none), walked without recursion; `top` gets
// the index of the main-graph node that holds it. Checked before import so that the error
// names that node once, instead of one prefix per level.
int MaxNesting(const onnx::GraphProto& gp, int* top) {
  std::vector<std::pair<const onnx::GraphProto*, int>> stack;
  int deepest = 0;
  *top = -1;
  for (int n = 0; n < gp.node_size(); ++n) {
    stack.clear();
    for (const auto& a : gp.node(n).attribute()) {
      if (a.has_g()) stack.push_back({&a.g(), 1});
      for (const auto& g : a.graphs()) stack.push_back({&g, 1});
    }
    while (!stack.empty()) {
      auto [g, depth] = stack.back();
      stack.pop_back();
      if (depth > deepest) deepest = depth, *top = n;
      if (depth > kMaxGraphNesting) break;  // deep enough to refuse
      for (const auto& node : g->node())
        for (const auto& a : node.attribute()) {
          if (a.has_g()) stack.push_back({&a.g(), depth + 1});
          for (const auto& sub : a.graphs()) stack.push_back({&sub, depth + 1});
        }
    }
  }
  return deepest;
}

class GraphImporter {
 public:
  GraphImporter(const std::map<std::string, int64_t>& opsets, const ExternalDataPolicy& policy)
      : opsets_(opsets), policy_(policy) {}

  // outer: enclosing graphs (innermost last) for name resolution of captured values.
  Status Convert(const onnx::GraphProto& gp, Graph& g, const std::vector<Graph*>& outer);

 private:
  StatusOr<Attr> ConvertAttr(const onnx::AttributeProto& ap, const std::string& where, const std::vector<Graph*>& outer);
  Status ConvertConstantNode(const onnx::NodeProto& np, Graph& g, const std::string& where);
  StatusOr<ValueId> ResolveInput(Graph& g, const std::string& name, const std::vector<Graph*>& outer);

  const std::map<std::string, int64_t>& opsets_;
  const ExternalDataPolicy& policy_;
};

std::string NodeWhere(const onnx::NodeProto& np, int index) {
  std::string n = np.name().empty() ? StrCat("#", index) : StrCat("'", np.name(), "'");
  return StrCat("node ", n, " (", np.domain().empty() ? "" : np.domain() + ".", np.op_type(), ")");
}

// NodeWhere composed only when printed (an error needs it; the nodes that import fine do not).
struct LazyNodeWhere {
  const onnx::NodeProto& np;
  int index;
  operator std::string() const { return NodeWhere(np, index); }
  friend std::ostream& operator<<(std::ostream& os, const LazyNodeWhere& w) { return os << NodeWhere(w.np, w.index); }
};

StatusOr<ValueId> GraphImporter::ResolveInput(Graph& g, const std::string& name, const std::vector<Graph*>& outer) {
  if (auto v = g.FindValue(name)) return *v;
  for (auto it = outer.rbegin(); it != outer.rend(); ++it) {
    if (auto ov = (*it)->FindValue(name)) {
      // A capture of an enclosing graph's value: a value of the same name in this graph,
      // resolved at run time through the scope chain.
      KILN_ASSIGN_OR_RETURN(ValueId v, g.AddValue(name, (*it)->value(*ov).type));
      g.captures().push_back(v);
      return v;
    }
  }
  return NotFound("input '", name, "' is not produced by any node, graph input or initializer");
}

StatusOr<Attr> GraphImporter::ConvertAttr(const onnx::AttributeProto& ap, const std::string& where,
                                          const std::vector<Graph*>& outer) {
  using AP = onnx::AttributeProto;
  std::string what = StrCat(where, ", attribute '", ap.name(), "'");
  AP::AttributeType type = ap.type();
  if (type == AP::UNDEFINED) {  // very old models: infer from the field that is set
    if (ap.has_f()) type = AP::FLOAT;
    else if (ap.has_i()) type = AP::INT;
    else if (ap.has_s()) type = AP::STRING;
    else if (ap.has_t()) type = AP::TENSOR;
    else if (ap.has_g()) type = AP::GRAPH;
    else if (ap.floats_size()) type = AP::FLOATS;
    else if (ap.ints_size()) type = AP::INTS;
    else if (ap.strings_size()) type = AP::STRINGS;
    else if (ap.tensors_size()) type = AP::TENSORS;
    else if (ap.graphs_size()) type = AP::GRAPHS;
    else return InvalidArgument(what, ": has no type and no value");
  }
  Attr a;
  switch (type) {
    case AP::FLOAT: a = Attr::Float(ap.f()); break;
    case AP::INT: a = Attr::Int(ap.i()); break;
    case AP::STRING: a = Attr::String(ap.s()); break;
    case AP::FLOATS: a = Attr::Floats({ap.floats().begin(), ap.floats().end()}); break;
    case AP::INTS: a = Attr::Ints({ap.ints().begin(), ap.ints().end()}); break;
    case AP::STRINGS: a = Attr::Strings({ap.strings().begin(), ap.strings().end()}); break;
    case AP::TENSOR: {
      KILN_ASSIGN_OR_RETURN(Tensor t, TensorFromProto(ap.t(), policy_, what));
      a = Attr::TensorValue(std::move(t));
      break;
    }
    case AP::TENSORS: {
      a.type = Attr::Type::kTensors;
      for (const auto& tp : ap.tensors()) {
        KILN_ASSIGN_OR_RETURN(Tensor t, TensorFromProto(tp, policy_, what));
        a.tensors.push_back(std::move(t));
      }
      break;
    }
    case AP::GRAPH: {
      KILN_RETURN_IF_ERROR(CheckNesting(outer, what));
      auto sub = std::make_shared<Graph>();
      KILN_RETURN_IF_ERROR(Convert(ap.g(), *sub, outer).WithPrefix(what));
      a = Attr::GraphValue(std::move(sub));
      break;
    }
    case AP::GRAPHS: {
      a.type = Attr::Type::kGraphs;
      KILN_RETURN_IF_ERROR(CheckNesting(outer, what));
      for (const auto& gp : ap.graphs()) {
        auto sub = std::make_shared<Graph>();
        KILN_RETURN_IF_ERROR(Convert(gp, *sub, outer).WithPrefix(what));
        a.graphs.push_back(std::move(sub));
      }
      break;
    }
    case AP::TYPE_PROTO: {
      a.type = Attr::Type::kTypeProto;
      KILN_ASSIGN_OR_RETURN(TypeInfo t, TypeFromProto(ap.tp(), what));
      // Stored as the dtype code (tensor element type) in i; Optional/SequenceEmpty need only that.
      const TypeInfo* e = &t;
      while (e->kind != TypeInfo::Kind::kTensor && e->elem) e = e->elem.get();
      a.i = static_cast<int64_t>(e->dtype);
      a.s = t.kind == TypeInfo::Kind::kSequence ? "sequence" : t.kind == TypeInfo::Kind::kOptional ? "optional" : "tensor";
      break;
    }
    default:
      return Unimplemented(what, ": attribute type ", static_cast<int>(type), " is not supported");
  }
  return a;
}

// Constant nodes become initializers: their value is known at import.
Status GraphImporter::ConvertConstantNode(const onnx::NodeProto& np, Graph& g, const std::string& where) {
  if (np.output_size() != 1) return InvalidArgument(where, ": must have exactly one output");
  if (np.attribute_size() != 1)
    return InvalidArgument(where, ": must have exactly one value attribute, has ", np.attribute_size());
  const auto& ap = np.attribute(0);
  std::string what = StrCat(where, ", attribute '", ap.name(), "'");
  Tensor t;
  if (ap.name() == "value") {
    if (!ap.has_t()) return InvalidArgument(what, ": must be a TENSOR");
    KILN_ASSIGN_OR_RETURN(t, TensorFromProto(ap.t(), policy_, what));
  } else if (ap.name() == "value_float") {
    t = Tensor::Scalar(ap.f());
  } else if (ap.name() == "value_floats") {
    t = Tensor::FromVector(std::vector<float>(ap.floats().begin(), ap.floats().end()));
  } else if (ap.name() == "value_int") {
    t = Tensor::Scalar<int64_t>(ap.i());
  } else if (ap.name() == "value_ints") {
    t = Tensor::FromVector(std::vector<int64_t>(ap.ints().begin(), ap.ints().end()));
  } else if (ap.name() == "value_string") {
    t = Tensor::Scalar<std::string>(ap.s());
  } else if (ap.name() == "value_strings") {
    t = Tensor::FromVector(std::vector<std::string>(ap.strings().begin(), ap.strings().end()));
  } else if (ap.name() == "sparse_value") {
    const auto& sp = ap.sparse_tensor();
    KILN_ASSIGN_OR_RETURN(Tensor values, TensorFromProto(sp.values(), policy_, what + " values"));
    KILN_ASSIGN_OR_RETURN(Tensor indices, TensorFromProto(sp.indices(), policy_, what + " indices"));
    std::vector<int64_t> dims(sp.dims().begin(), sp.dims().end());
    KILN_ASSIGN_OR_RETURN(t, Tensor::Create(values.dtype(), dims, what));
    KILN_ASSIGN_OR_RETURN(std::vector<int64_t> idx, indices.ToInt64Vector());
    const int64_t nnz = values.numel();
    const bool flat = indices.rank() == 1;
    if (static_cast<int64_t>(idx.size()) != (flat ? nnz : nnz * static_cast<int64_t>(dims.size())))
      return InvalidArgument(what, ": indices do not match the number of values");
    std::vector<int64_t> strides = StridesOf(dims);
    const size_t esize = DTypeSize(values.dtype());
    for (int64_t k = 0; k < nnz; ++k) {
      int64_t off = 0;
      if (flat) off = idx[static_cast<size_t>(k)];
      else
        for (size_t d = 0; d < dims.size(); ++d) {
          int64_t i = idx[static_cast<size_t>(k) * dims.size() + d];
          if (i < 0 || i >= dims[d]) return InvalidArgument(what, ": index out of range");
          off += i * strides[d];
        }
      if (off < 0 || off >= t.numel()) return InvalidArgument(what, ": index out of range");
      std::memcpy(static_cast<char*>(t.raw_data()) + off * esize, static_cast<const char*>(values.raw_data()) + k * esize, esize);
    }
  } else {
    return InvalidArgument(what, ": unknown Constant attribute");
  }
  ValueId v = *g.FindValue(np.output(0));
  Value& val = g.value(v);
  val.type = TypeInfo::Tensor(t.dtype(), Shape::FromDims(t.dims()));
  val.constant = std::move(t);
  return Status::OK();
}

Status GraphImporter::Convert(const onnx::GraphProto& gp, Graph& g, const std::vector<Graph*>& outer) {
  g.name = gp.name();
  {
    size_t outputs = 0;
    for (const auto& np : gp.node()) outputs += static_cast<size_t>(np.output_size());
    g.Reserve(static_cast<size_t>(gp.node_size()),
              static_cast<size_t>(gp.initializer_size() + gp.input_size()) + outputs);
  }
  for (const auto& init : gp.initializer()) {
    KILN_ASSIGN_OR_RETURN(Tensor t, TensorFromProto(init, policy_, StrCat("initializer '", init.name(), "'")));
    KILN_RETURN_IF_ERROR(g.AddConstant(init.name(), std::move(t)).status());
  }
  if (gp.sparse_initializer_size() > 0) return Unimplemented("sparse initializers are not supported");
  for (const auto& vi : gp.input()) {
    if (g.FindValue(vi.name())) continue;  // IR < 4: initializers are listed as inputs too
    KILN_ASSIGN_OR_RETURN(TypeInfo t, TypeFromProto(vi.type(), StrCat("graph input '", vi.name(), "'")));
    // Subgraph inputs may leave their type to the op (Loop/Scan bodies); the main graph's may not.
    if (outer.empty() && t.kind == TypeInfo::Kind::kTensor && t.dtype == DType::kUndefined)
      return InvalidArgument("graph input '", vi.name(), "' has no element type");
    KILN_ASSIGN_OR_RETURN(ValueId v, g.AddValue(vi.name(), std::move(t)));
    g.inputs().push_back(v);
  }
  // Values of all node outputs first, so node order in the file does not matter (the
  // topological order is checked later) and duplicates are caught.
  for (int i = 0; i < gp.node_size(); ++i) {
    const auto& np = gp.node(i);
    for (const std::string& o : np.output()) {
      if (o.empty()) continue;
      auto added = g.AddValue(o);
      if (!added.ok()) return added.status().WithPrefix(NodeWhere(np, i));
    }
  }
  std::vector<Graph*> inner = outer;
  inner.push_back(&g);
  for (int i = 0; i < gp.node_size(); ++i) {
    const auto& np = gp.node(i);
    const LazyNodeWhere where{np, i};
    const std::string domain = np.domain() == "ai.onnx" ? "" : np.domain();
    if (domain.empty() && np.op_type() == "Constant") {
      KILN_RETURN_IF_ERROR(ConvertConstantNode(np, g, where));
      continue;
    }
    Node node;
    node.name = np.name();
    node.op_type = np.op_type();
    node.domain = domain;
    for (const std::string& in : np.input()) {
      if (in.empty()) { node.inputs.push_back(kNoValue); continue; }
      auto v = ResolveInput(g, in, outer);
      if (!v.ok()) return v.status().WithPrefix(where);
      node.inputs.push_back(*v);
    }
    for (const std::string& o : np.output()) node.outputs.push_back(o.empty() ? kNoValue : *g.FindValue(o));
    for (const auto& ap : np.attribute()) {
      KILN_ASSIGN_OR_RETURN(Attr a, ConvertAttr(ap, where, inner));
      node.attrs.set(ap.name(), std::move(a));
    }
    auto opset_it = opsets_.find(domain);
    if (opset_it == opsets_.end())
      return InvalidArgument(where, ": the model imports no opset for domain '", domain.empty() ? "ai.onnx" : domain, "'");
    if (NormalizeFn fn = NormalizerTable::Global().Find(domain, node.op_type)) {
      // The opset normalizers read the required inputs: an empty name there is an error
      // first (Loop's M/cond and Scan-8's sequence_lens may be empty).
      // Every op with a normalizer has a data input 0 (older opsets may have fewer inputs
      // than the current form — attributes the normalizer turns into inputs).
      if (node.inputs.empty()) return InvalidArgument(where, ": has no inputs");
      if (const OpSchema* schema = OpRegistry::Global().Find(domain, node.op_type);
          schema != nullptr && !(domain.empty() && (node.op_type == "Loop" || node.op_type == "Scan"))) {
        for (int in = 0; in < schema->min_inputs && in < static_cast<int>(node.inputs.size()); ++in)
          if (node.inputs[static_cast<size_t>(in)] == kNoValue)
            return InvalidArgument(where, ": required input ", in, " is empty");
      }
      NormalizeContext nctx(g, node, static_cast<int>(opset_it->second));
      if (Status st = fn(nctx); !st.ok()) return st.WithPrefix(where);
    }
    auto added = g.AddNode(std::move(node));
    if (!added.ok()) return added.status().WithPrefix(where);
  }
  // Declared types: graph outputs and value_info annotate values produced above.
  auto annotate = [&](const onnx::ValueInfoProto& vi, const char* kind) -> Status {
    auto v = g.FindValue(vi.name());
    if (!v) return Status::OK();
    if (!vi.has_type()) return Status::OK();
    KILN_ASSIGN_OR_RETURN(TypeInfo t, TypeFromProto(vi.type(), StrCat(kind, " '", vi.name(), "'")));
    Value& val = g.value(*v);
    if (val.constant) return Status::OK();
    if (val.type.kind == TypeInfo::Kind::kTensor && val.type.dtype == DType::kUndefined && !val.type.shape.has_rank())
      val.type = std::move(t);
    return Status::OK();
  };
  for (const auto& vi : gp.value_info()) KILN_RETURN_IF_ERROR(annotate(vi, "value_info"));
  for (const auto& vi : gp.output()) {
    auto v = g.FindValue(vi.name());
    if (!v) {
      auto r = ResolveInput(g, vi.name(), outer);  // a subgraph may return an outer value
      if (!r.ok()) return NotFound("graph output '", vi.name(), "' is not produced by any node, input or initializer");
      v = *r;
    }
    KILN_RETURN_IF_ERROR(annotate(vi, "graph output"));
    g.outputs().push_back(*v);
  }
  // Structure: every value read is defined; no cycles.
  for (int n = 0; n < g.num_nodes(); ++n)
    for (ValueId in : g.node(n).inputs) {
      if (in == kNoValue) continue;
      const Value& v = g.value(in);
      bool is_input = std::find(g.inputs().begin(), g.inputs().end(), in) != g.inputs().end();
      bool is_capture = std::find(g.captures().begin(), g.captures().end(), in) != g.captures().end();
      if (v.producer < 0 && !v.constant && !is_input && !is_capture)
        return InvalidArgument(g.node(n).DisplayName(n), ": input '", v.name, "' is never produced");
    }
  return g.TopologicalOrder().status();
}

}  // namespace

StatusOr<OnnxModel> ImportOnnxBytes(const void* data, size_t size, const std::string& base_dir,
                                    const std::string& source) {
  if (size > static_cast<size_t>(kMaxModelBytes))
    return InvalidArgument(source, ": model is larger than 2 GiB; store weights as external data");
  onnx::ModelProto mp;
  google::protobuf::io::CodedInputStream stream(static_cast<const uint8_t*>(data), static_cast<int>(size));
  stream.SetTotalBytesLimit(static_cast<int>(kMaxModelBytes));
  // Each subgraph level is three message levels (graph > node > attribute): leave protobuf
  // room for kMaxGraphNesting of them, so that the importer, not the parser, reports a model
  // nested too deeply, naming the node.
  stream.SetRecursionLimit(kProtoRecursionLimit);
  if (!mp.ParseFromCodedStream(&stream) || !stream.ConsumedEntireMessage())
    return InvalidArgument(source, ": not a valid ONNX model (protobuf parse failed: truncated, not ONNX, or messages "
                                   "nested more than ", kProtoRecursionLimit, " levels deep)");
  if (!mp.has_graph()) return InvalidArgument(source, ": model has no graph");
  // As onnx.checker: an IR version must be given and known. (kiln's protos are IR 8; IR 9-11
  // add element types -- float8, int4, float4 -- that import refuses by type where used.)
  if (mp.ir_version() <= 0)
    return InvalidArgument(source, ": model has no ir_version (", mp.ir_version(), "); ONNX requires one (1-",
                           kMaxKnownIrVersion, ")");
  if (mp.ir_version() > kMaxKnownIrVersion)
    return InvalidArgument(source, ": model has ir_version ", mp.ir_version(), ", newer than the newest kiln knows (",
                           kMaxKnownIrVersion, ")");
  if (mp.opset_import_size() == 0)
    return InvalidArgument(source, ": model has ir_version ", mp.ir_version(),
                           " but no opset_import; every model must say which opsets it uses (IR 1-2 models without "
                           "one are not supported: re-export or convert with onnx.version_converter)");
  OnnxModel model;
  model.ir_version = mp.ir_version();
  model.producer = mp.producer_name() + (mp.producer_version().empty() ? "" : " " + mp.producer_version());
  for (const auto& os : mp.opset_import()) {
    std::string d = os.domain() == "ai.onnx" ? "" : os.domain();
    if (os.version() <= 0)
      return InvalidArgument(source, ": opset_import for domain '", d.empty() ? "ai.onnx" : d, "' has version ",
                             os.version());
    if (!model.opsets.emplace(d, os.version()).second)
      return InvalidArgument(source, ": opset_import names domain '", d.empty() ? "ai.onnx" : d, "' more than once");
  }
  auto def = model.opsets.find("");
  if (def != model.opsets.end()) {
    if (def->second > kMaxKnownOpset)
      model.warnings.push_back(StrCat(source, ": model uses opset ", def->second, ", newer than the newest kiln knows (",
                                      kMaxKnownOpset, "); importing with opset ", kMaxKnownOpset, " semantics"));
    if (def->second < 7)
      model.warnings.push_back(StrCat(source, ": model uses opset ", def->second, " (< 7): only partly supported"));
  }
  int top = -1;
  if (const int depth = MaxNesting(mp.graph(), &top); depth > kMaxGraphNesting) {
    const auto& n = mp.graph().node(top);
    return InvalidArgument(source, ": node '", n.name(), "' (", n.op_type(), "): subgraphs nested more than ",
                           kMaxGraphNesting, " levels deep (If/Loop/Scan bodies inside each other); kiln's limit is ",
                           kMaxGraphNesting);
  }
  ExternalDataPolicy policy{base_dir};
  model.graph = std::make_unique<Graph>();
  GraphImporter gi(model.opsets, policy);
  Status st = gi.Convert(mp.graph(), *model.graph, {});
  if (!st.ok()) return st.WithPrefix(source);
  for (const auto& vi : mp.graph().output()) {
    auto t = vi.has_type() ? TypeFromProto(vi.type(), vi.name()) : StatusOr<TypeInfo>(TypeInfo{});
    model.declared_outputs.push_back(t.ok() ? *t : TypeInfo{});
  }
  return model;
}

StatusOr<OnnxModel> ImportOnnxFile(const std::string& path) {
  KILN_ASSIGN_OR_RETURN(ReadOnlyFile in, ReadOnlyFile::Open(path));
  if (in.size() == 0) return InvalidArgument(path, ": file is empty");
  if (in.size() > kMaxModelBytes)
    return InvalidArgument(path, ": model is larger than 2 GiB; store weights as external data");
  KILN_ASSIGN_OR_RETURN(std::string bytes, in.ReadAll(kMaxModelBytes));
  fs::path dir = fs::path(path).parent_path();
  return ImportOnnxBytes(bytes.data(), bytes.size(), dir.empty() ? "." : dir.string(), path);
}

}  // namespace kiln
