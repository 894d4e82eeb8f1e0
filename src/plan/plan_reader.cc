#include "plan/plan_reader.h"

#include "base/aligned.h"
#include "base/file.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <bit>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <initializer_list>
#include <set>
#include <type_traits>

#include "base/checked_math.h"
#include "ir/infer.h"
#include "ir/op_schema.h"
#include "plan/cpu_features.h"
#include "plan/plan_format.h"
#include "plan/plan_generated.h"

namespace kiln {

namespace fb = plan::fb;

namespace {

// The largest arena a plan may ask for (1 PiB): far beyond any machine, small enough that
// offset + size sums below cannot overflow.
constexpr int64_t kMaxArenaBytes = int64_t{1} << 50;
// The largest single tensor in bytes (kMaxElements of the widest dtype).
constexpr int64_t kMaxTensorBytes = kMaxElements * 16;

std::string Str(const flatbuffers::String* s) { return s ? s->str() : std::string(); }

template <typename T>
size_t Len(const flatbuffers::Vector<T>* v) {
  return v ? v->size() : 0;
}

// A vector of scalars, copied out byte-wise. The FlatBuffers 2.0 verifier checks a vector's
// bounds and its length field's alignment, but not that 8-byte elements are 8-byte aligned:
// element access on a crafted buffer could be a misaligned (undefined) load.
template <typename T>
std::vector<T> CopyScalars(const flatbuffers::Vector<T>* v) {
  static_assert(std::is_arithmetic_v<T> && std::endian::native == std::endian::little);
  std::vector<T> out(Len(v));
  if (!out.empty()) std::memcpy(out.data(), v->Data(), out.size() * sizeof(T));
  return out;
}

// Turns the FlatBuffers tables into IR. Every index, size and offset is checked before use;
// the Verifier has already made every table, vector and string safe to read.
class PlanDecoder {
 public:
  PlanDecoder(const uint8_t* file, const PlanHeader& h, std::shared_ptr<void> owner)
      : file_(file),
        weights_begin_(h.weights_offset),
        weights_end_(h.weights_offset + h.weights_size),
        owner_(std::move(owner)) {}

  Status DecodeGraph(const fb::Graph* fg, Graph& g, int depth, const std::string& where);
  StatusOr<TypeInfo> DecodeType(const fb::Type* t, int depth, const std::string& what);

 private:
  StatusOr<Tensor> DecodeTensor(const fb::TensorData* td, const std::string& what);
  StatusOr<Attr> DecodeAttr(const fb::Attribute* fa, int depth, const std::string& what);

  const uint8_t* file_;
  uint64_t weights_begin_, weights_end_;
  std::shared_ptr<void> owner_;  // keeps the file's bytes alive for tensors that point into them
};

StatusOr<TypeInfo> PlanDecoder::DecodeType(const fb::Type* t, int depth, const std::string& what) {
  if (t == nullptr) return TypeInfo{};  // not known
  if (depth > kMaxPlanTypeDepth) return InvalidArgument(what, ": type nests deeper than ", kMaxPlanTypeDepth);
  if (t->dtype() != 0 && !IsValidDType(t->dtype())) return InvalidArgument(what, ": invalid element type ", t->dtype());
  switch (t->kind()) {
    case fb::TypeKind::Tensor:
      break;
    case fb::TypeKind::Sequence:
    case fb::TypeKind::Optional: {
      if (Len(t->dims()) != 0) return InvalidArgument(what, ": a sequence/optional type has dims");
      KILN_ASSIGN_OR_RETURN(TypeInfo elem, DecodeType(t->elem(), depth + 1, what));
      return t->kind() == fb::TypeKind::Sequence ? TypeInfo::Sequence(std::move(elem))
                                                 : TypeInfo::Optional(std::move(elem));
    }
    default:
      return InvalidArgument(what, ": invalid type kind ", static_cast<int>(t->kind()));
  }
  TypeInfo out = TypeInfo::Tensor(static_cast<DType>(t->dtype()), Shape());
  const std::vector<int64_t> stored = CopyScalars(t->dims());
  const size_t rank = stored.size();
  if (!t->has_rank()) {
    if (rank != 0) return InvalidArgument(what, ": dims given for a shape of unknown rank");
    return out;
  }
  if (Len(t->symbols()) != 0 && Len(t->symbols()) != rank)
    return InvalidArgument(what, ": ", Len(t->symbols()), " dim names for ", rank, " dims");
  std::vector<Dim> dims;
  std::vector<int64_t> sizes;
  dims.reserve(rank);
  for (size_t i = 0; i < rank; ++i) {
    const int64_t d = stored[i];
    if (d < -1) return InvalidArgument(what, ": dimension ", i, " is ", d, " (a size, or -1 for dynamic)");
    if (d >= 0) {
      dims.emplace_back(d);
      sizes.push_back(d);
      continue;
    }
    // An empty (but present) `symbols` means no names, like an absent one.
    std::string sym =
        Len(t->symbols()) == rank ? Str(t->symbols()->Get(static_cast<flatbuffers::uoffset_t>(i))) : std::string();
    dims.push_back(sym.empty() ? Dim::Unknown() : Dim::Symbol(std::move(sym)));
  }
  // The static part must have a representable size (it sizes buffers later).
  KILN_RETURN_IF_ERROR(CheckedNumel(sizes, what).status());
  out.shape = Shape(std::move(dims));
  return out;
}

StatusOr<Tensor> PlanDecoder::DecodeTensor(const fb::TensorData* td, const std::string& what) {
  if (td == nullptr) return InvalidArgument(what, ": tensor data missing");
  if (td->dtype() == 0 || !IsValidDType(td->dtype()))
    return InvalidArgument(what, ": invalid element type ", td->dtype());
  const DType dtype = static_cast<DType>(td->dtype());
  std::vector<int64_t> dims = CopyScalars(td->dims());
  KILN_ASSIGN_OR_RETURN(int64_t numel, CheckedNumel(dims, what));
  if (dtype == DType::kString) {
    // Bounded by the file: one stored string per element.
    if (Len(td->strings()) != static_cast<size_t>(numel))
      return InvalidArgument(what, ": ", Len(td->strings()), " strings for ", numel, " elements");
    if (td->offset() != 0 || td->size() != 0) return InvalidArgument(what, ": a string tensor has weight bytes");
    Tensor t(dtype, dims);
    for (int64_t i = 0; i < numel; ++i)
      t.data<std::string>()[i] = Str(td->strings()->Get(static_cast<flatbuffers::uoffset_t>(i)));
    return t;
  }
  if (Len(td->strings()) != 0) return InvalidArgument(what, ": a ", DTypeName(dtype), " tensor has strings");
  int64_t bytes = 0;
  if (!CheckedMul(numel, static_cast<int64_t>(DTypeSize(dtype)), &bytes) || td->size() != static_cast<uint64_t>(bytes))
    return InvalidArgument(what, ": ", td->size(), " weight bytes for ", numel, " elements of ", DTypeName(dtype));
  const uint64_t offset = td->offset();
  if (offset % kPlanAlignment != 0)
    return InvalidArgument(what, ": weights at file offset ", offset, " are not ", kPlanAlignment, "-byte aligned");
  if (offset < weights_begin_ || offset > weights_end_ || td->size() > weights_end_ - offset)
    return InvalidArgument(what, ": weights at file offset ", offset, " + ", td->size(),
                           " bytes lie outside the weights section [", weights_begin_, ", ", weights_end_, ")");
  if (numel == 0) return Tensor(dtype, dims);
  uint8_t* data = const_cast<uint8_t*>(file_ + offset);  // a private mapping or our own copy
  if (dtype == DType::kBool) {
    // Any other byte would be an invalid bool for the kernels that read it.
    for (int64_t i = 0; i < numel; ++i)
      if (data[i] > 1) return InvalidArgument(what, ": bool element ", i, " is ", int(data[i]), " (must be 0 or 1)");
  }
  return Tensor::FromExternal(dtype, std::move(dims), data, owner_);
}

StatusOr<Attr> PlanDecoder::DecodeAttr(const fb::Attribute* fa, int depth, const std::string& what) {
  Attr a;
  switch (fa->type()) {
    case fb::AttrType::Float:
      return Attr::Float(fa->f());
    case fb::AttrType::Int:
      return Attr::Int(fa->i());
    case fb::AttrType::String:
      return Attr::String(Str(fa->s()));
    case fb::AttrType::Floats:
      return Attr::Floats(CopyScalars(fa->floats()));
    case fb::AttrType::Ints:
      return Attr::Ints(CopyScalars(fa->ints()));
    case fb::AttrType::Strings: {
      std::vector<std::string> v;
      for (size_t i = 0; i < Len(fa->strings()); ++i)
        v.push_back(Str(fa->strings()->Get(static_cast<flatbuffers::uoffset_t>(i))));
      return Attr::Strings(std::move(v));
    }
    case fb::AttrType::Tensor: {
      KILN_ASSIGN_OR_RETURN(Tensor t, DecodeTensor(fa->t(), what));
      return Attr::TensorValue(std::move(t));
    }
    case fb::AttrType::Tensors: {
      a.type = Attr::Type::kTensors;
      for (size_t i = 0; i < Len(fa->tensors()); ++i) {
        KILN_ASSIGN_OR_RETURN(Tensor t, DecodeTensor(fa->tensors()->Get(static_cast<flatbuffers::uoffset_t>(i)),
                                                     StrCat(what, "[", i, "]")));
        a.tensors.push_back(std::move(t));
      }
      return a;
    }
    case fb::AttrType::Graph: {
      if (fa->g() == nullptr) return InvalidArgument(what, ": graph missing");
      auto g = std::make_shared<Graph>();
      KILN_RETURN_IF_ERROR(DecodeGraph(fa->g(), *g, depth + 1, what));
      return Attr::GraphValue(std::move(g));
    }
    case fb::AttrType::Graphs: {
      a.type = Attr::Type::kGraphs;
      for (size_t i = 0; i < Len(fa->graphs()); ++i) {
        auto g = std::make_shared<Graph>();
        KILN_RETURN_IF_ERROR(DecodeGraph(fa->graphs()->Get(static_cast<flatbuffers::uoffset_t>(i)), *g, depth + 1,
                                         StrCat(what, "[", i, "]")));
        a.graphs.push_back(std::move(g));
      }
      return a;
    }
    case fb::AttrType::TypeProto: {
      // The importer's encoding: the element type code in i, the kind in s.
      if (fa->i() < 0 || fa->i() > INT32_MAX || !IsValidDType(static_cast<int32_t>(fa->i())))
        return InvalidArgument(what, ": invalid element type ", fa->i());
      a.type = Attr::Type::kTypeProto;
      a.i = fa->i();
      a.s = Str(fa->s());
      return a;
    }
  }
  return InvalidArgument(what, ": invalid attribute type ", static_cast<int>(fa->type()));
}

// The fusion attributes' invariants, which the executor and type inference rely on
// (src/ir/op_schema.h): an epilogue is a graph with one output whose inputs are output 0
// and the node's inputs past kiln.main_inputs, all present; a split has one size per output.
Status CheckFusionAttrs(const Node& n, const std::string& where) {
  const Attr* main = n.attrs.find(kEpilogueMainInputs);
  size_t main_inputs = n.inputs.size();
  if (main != nullptr) {
    if (main->type != Attr::Type::kInt || main->i < 0 || static_cast<uint64_t>(main->i) > n.inputs.size())
      return InvalidArgument(where, ": ", kEpilogueMainInputs, " must be an int in [0, ", n.inputs.size(), "]");
    main_inputs = static_cast<size_t>(main->i);
  }
  if (const Attr* epi = n.attrs.find(kEpilogueAttr)) {
    if (epi->type != Attr::Type::kGraph || !epi->g)
      return InvalidArgument(where, ": ", kEpilogueAttr, " must be a graph");
    const size_t extras = n.inputs.size() - main_inputs;
    if (epi->g->inputs().size() != 1 + extras || epi->g->outputs().size() != 1)
      return InvalidArgument(where, ": the epilogue takes ", epi->g->inputs().size(), " inputs and gives ",
                             epi->g->outputs().size(), " outputs; the node feeds it ", 1 + extras, " and reads 1");
    for (size_t i = main_inputs; i < n.inputs.size(); ++i)
      if (n.inputs[i] == kNoValue) return InvalidArgument(where, ": epilogue input ", i, " is omitted");
    if (n.outputs.empty() || n.outputs[0] == kNoValue) return InvalidArgument(where, ": a fused node without output 0");
  }
  if (const Attr* sizes = n.attrs.find(kSplitSizesAttr)) {
    if (sizes->type != Attr::Type::kInts || sizes->ints.size() != n.outputs.size())
      return InvalidArgument(where, ": ", kSplitSizesAttr, " must list one size per output");
    for (int64_t s : sizes->ints)
      if (s < 0) return InvalidArgument(where, ": negative split size ", s);
  }
  if (const Attr* axis = n.attrs.find(kSplitAxisAttr); axis && axis->type != Attr::Type::kInt)
    return InvalidArgument(where, ": ", kSplitAxisAttr, " must be an int");
  return Status::OK();
}

Status PlanDecoder::DecodeGraph(const fb::Graph* fg, Graph& g, int depth, const std::string& where_in) {
  if (depth > kMaxPlanGraphDepth)
    return InvalidArgument(where_in, ": subgraphs nest deeper than ", kMaxPlanGraphDepth, " levels");
  g.name = Str(fg->name());
  const std::string where = depth == 0 ? StrCat("graph '", g.name, "'") : StrCat(where_in, ", graph '", g.name, "'");
  const size_t num_values = Len(fg->values());
  // Whether each value has its definition yet: constants, inputs and captures at once,
  // node outputs when their node comes (so the node list must be in execution order).
  std::vector<bool> defined(num_values, false);
  for (size_t i = 0; i < num_values; ++i) {
    const fb::Value* fv = fg->values()->Get(static_cast<flatbuffers::uoffset_t>(i));
    const std::string name = Str(fv->name());
    const std::string what = StrCat(where, ", value ", i, " '", name, "'");
    if (fv->constant()) {
      KILN_ASSIGN_OR_RETURN(Tensor t, DecodeTensor(fv->constant(), what));
      KILN_RETURN_IF_ERROR(g.AddConstant(name, std::move(t)).status().WithPrefix(where));
      defined[i] = true;
    } else {
      KILN_ASSIGN_OR_RETURN(TypeInfo type, DecodeType(fv->type(), 0, what));
      KILN_RETURN_IF_ERROR(g.AddValue(name, std::move(type)).status().WithPrefix(where));
    }
  }
  auto value_ref = [&](int32_t v, const std::string& what) -> Status {
    if (v < 0 || static_cast<size_t>(v) >= num_values)
      return InvalidArgument(what, ": value index ", v, " is out of range (", num_values, " values)");
    return Status::OK();
  };
  auto define = [&](const flatbuffers::Vector<int32_t>* ids, std::vector<ValueId>& out, const char* kind) -> Status {
    for (size_t i = 0; i < Len(ids); ++i) {
      const int32_t v = ids->Get(static_cast<flatbuffers::uoffset_t>(i));
      KILN_RETURN_IF_ERROR(value_ref(v, StrCat(where, ", ", kind, " ", i)));
      if (defined[static_cast<size_t>(v)])
        return InvalidArgument(where, ", ", kind, " '", g.value(v).name, "': the value is already defined");
      defined[static_cast<size_t>(v)] = true;
      out.push_back(v);
    }
    return Status::OK();
  };
  KILN_RETURN_IF_ERROR(define(fg->inputs(), g.inputs(), "input"));
  KILN_RETURN_IF_ERROR(define(fg->captures(), g.captures(), "capture"));
  for (ValueId c : g.captures())
    if (g.value(c).name.empty()) return InvalidArgument(where, ": a capture has no name (captures resolve by name)");

  for (size_t k = 0; k < Len(fg->nodes()); ++k) {
    const fb::Node* fn = fg->nodes()->Get(static_cast<flatbuffers::uoffset_t>(k));
    Node node;
    node.name = Str(fn->name());
    node.op_type = Str(fn->op_type());
    node.domain = Str(fn->domain());
    const std::string nw = StrCat(where, ", node ", node.DisplayName(static_cast<NodeId>(k)));
    if (node.op_type.empty()) return InvalidArgument(nw, ": empty op type");
    for (size_t i = 0; i < Len(fn->inputs()); ++i) {
      const int32_t v = fn->inputs()->Get(static_cast<flatbuffers::uoffset_t>(i));
      if (v != -1) {
        KILN_RETURN_IF_ERROR(value_ref(v, StrCat(nw, ", input ", i)));
        if (!defined[static_cast<size_t>(v)])
          return InvalidArgument(nw, ", input ", i, ": reads '", g.value(v).name,
                                 "' before anything defines it (nodes must be in execution order)");
      }
      node.inputs.push_back(v == -1 ? kNoValue : v);
    }
    for (size_t i = 0; i < Len(fn->outputs()); ++i) {
      const int32_t v = fn->outputs()->Get(static_cast<flatbuffers::uoffset_t>(i));
      if (v != -1) {
        KILN_RETURN_IF_ERROR(value_ref(v, StrCat(nw, ", output ", i)));
        if (defined[static_cast<size_t>(v)])
          return InvalidArgument(nw, ", output ", i, ": '", g.value(v).name, "' is already defined");
        defined[static_cast<size_t>(v)] = true;
      }
      node.outputs.push_back(v == -1 ? kNoValue : v);
    }
    for (size_t i = 0; i < Len(fn->attributes()); ++i) {
      const fb::Attribute* fa = fn->attributes()->Get(static_cast<flatbuffers::uoffset_t>(i));
      const std::string name = Str(fa->name());
      const std::string what = StrCat(nw, ", attribute '", name, "'");
      if (node.attrs.has(name)) return InvalidArgument(what, ": given twice");
      KILN_ASSIGN_OR_RETURN(Attr a, DecodeAttr(fa, depth, what));
      node.attrs.set(name, std::move(a));
    }
    for (size_t i = 0; i < Len(fn->fused_from()); ++i)
      node.fused_from.push_back(Str(fn->fused_from()->Get(static_cast<flatbuffers::uoffset_t>(i))));
    KILN_RETURN_IF_ERROR(CheckFusionAttrs(node, nw));
    KILN_RETURN_IF_ERROR(g.AddNode(std::move(node)).status().WithPrefix(nw));
  }
  for (size_t i = 0; i < Len(fg->outputs()); ++i) {
    const int32_t v = fg->outputs()->Get(static_cast<flatbuffers::uoffset_t>(i));
    KILN_RETURN_IF_ERROR(value_ref(v, StrCat(where, ", output ", i)));
    if (!defined[static_cast<size_t>(v)])
      return InvalidArgument(where, ", output ", i, ": '", g.value(v).name, "' is never defined");
    g.outputs().push_back(v);
  }
  return Status::OK();
}

// Bytes the planner gives a tensor of this type (PlanMemory's rule), or an error.
StatusOr<int64_t> PlannedBytes(const Value& v, const std::string& what) {
  const TypeInfo& t = v.type;
  if (!t.is_tensor() || !t.shape.IsStatic() || t.dtype == DType::kUndefined)
    return InvalidArgument(what, ": only tensors of a known static type are planned, '", v.name, "' is ", t.ToString());
  KILN_ASSIGN_OR_RETURN(int64_t numel, CheckedNumel(t.shape.Sizes(), what));
  return numel * static_cast<int64_t>(t.dtype == DType::kString ? 32 : DTypeSize(t.dtype));
}

StatusOr<MemoryPlan> DecodeMemory(const fb::MemoryPlan* fm, const Graph& g) {
  MemoryPlan m;
  const std::string where = "memory plan";
  m.arena_bytes = fm->arena_bytes();
  m.naive_bytes = fm->naive_bytes();
  m.num_tensors = fm->num_tensors();
  m.num_in_place = fm->num_in_place();
  m.concat_slices = fm->concat_slices();
  m.slice_views = fm->slice_views();
  if (m.arena_bytes < 0 || m.arena_bytes > kMaxArenaBytes || m.naive_bytes < 0 || m.num_tensors < 0 ||
      m.num_in_place < 0 || m.concat_slices < 0 || m.slice_views < 0)
    return InvalidArgument(where, ": arena of ", m.arena_bytes, " bytes or a negative count");
  m.placements.resize(static_cast<size_t>(g.num_values()));
  std::vector<bool> external(static_cast<size_t>(g.num_values()), false);
  for (ValueId v : g.outputs()) external[static_cast<size_t>(v)] = true;
  int32_t prev = -1;
  int64_t sum_bytes = 0;
  const int num_steps = g.num_nodes();
  for (size_t i = 0; i < Len(fm->placements()); ++i) {
    const fb::Placement* fp = fm->placements()->Get(static_cast<flatbuffers::uoffset_t>(i));
    const int32_t v = fp->value();
    if (v <= prev || v >= g.num_values())
      return InvalidArgument(where, ": placement ", i, " names value ", v, " (out of range or out of order)");
    prev = v;
    const Value& val = g.value(v);
    const std::string what = StrCat(where, ", value '", val.name, "'");
    if (val.producer < 0 || val.constant || external[static_cast<size_t>(v)])
      return InvalidArgument(what, ": only intermediate tensors live in the arena");
    KILN_ASSIGN_OR_RETURN(int64_t own_bytes, PlannedBytes(val, what));
    TensorPlacement& p = m.placements[static_cast<size_t>(v)];
    p.value = v;
    p.offset = fp->offset();
    p.bytes = fp->bytes();
    p.first_use = fp->first_use();
    p.last_use = fp->last_use();
    p.alias_of = fp->alias_of() == -1 ? kNoValue : fp->alias_of();
    p.concat_slice = fp->concat_slice();
    p.slice_offset = fp->slice_offset();
    p.rows = fp->rows();
    p.row_bytes = fp->row_bytes();
    p.row_pitch = fp->row_pitch();
    if (p.bytes < own_bytes || p.bytes > kMaxTensorBytes)
      return InvalidArgument(what, ": ", p.bytes, " bytes for a tensor of ", own_bytes);
    if (p.offset < 0 || p.offset > m.arena_bytes || p.bytes > m.arena_bytes - p.offset)
      return InvalidArgument(what, ": bytes [", p.offset, ", +", p.bytes, ") outside the arena of ", m.arena_bytes);
    if (p.first_use < 0 || p.first_use > p.last_use || p.last_use >= num_steps)
      return InvalidArgument(what, ": lifetime [", p.first_use, ", ", p.last_use, "] outside the ", num_steps,
                             " steps");
    if (p.alias_of != kNoValue && (p.alias_of < 0 || p.alias_of >= g.num_values() || p.alias_of == v))
      return InvalidArgument(what, ": alias_of ", p.alias_of, " is out of range");
    if (p.concat_slice) {
      int64_t extent = 0;
      if (p.alias_of == kNoValue || p.slice_offset < 0 || p.rows < 1 || p.row_bytes < 0 || p.row_pitch < 0 ||
          p.slice_offset > kMaxArenaBytes || p.row_bytes > kMaxArenaBytes || p.row_pitch > kMaxArenaBytes ||
          !CheckedMul(p.rows - 1, p.row_pitch, &extent) || extent > kMaxArenaBytes)
        return InvalidArgument(what, ": bad concat slice (offset ", p.slice_offset, ", ", p.rows, " rows of ",
                               p.row_bytes, " bytes, pitch ", p.row_pitch, ")");
    }
    const int64_t aligned = (p.bytes + kArenaAlignment - 1) / kArenaAlignment * kArenaAlignment;
    if (!CheckedAdd(sum_bytes, aligned, &sum_bytes)) return InvalidArgument(where, ": sizes overflow");
  }
  for (const TensorPlacement& p : m.placements)
    if (p.value != kNoValue && p.alias_of != kNoValue &&
        m.placements[static_cast<size_t>(p.alias_of)].value == kNoValue)
      return InvalidArgument(where, ", value '", g.value(p.value).name, "': aliases '", g.value(p.alias_of).name,
                             "', which has no placement");
  // A greedy plan never needs more than all its tensors side by side.
  if (m.arena_bytes > sum_bytes)
    return InvalidArgument(where, ": arena of ", m.arena_bytes, " bytes for tensors of ", sum_bytes, " in all");
  // Nodes that run no kernel: eliminated Concats, Split/Slice views. Each once, and of
  // the op the plan says.
  auto node_list = [&](const flatbuffers::Vector<int32_t>* ids, const char* what,
                       std::initializer_list<const char*> ops, std::vector<NodeId>& out) -> Status {
    std::set<int32_t> seen;
    for (size_t i = 0; i < Len(ids); ++i) {
      const int32_t n = ids->Get(static_cast<flatbuffers::uoffset_t>(i));
      bool op_ok = false;
      for (const char* op : ops) op_ok = op_ok || (n >= 0 && n < num_steps && g.node(n).op_type == op);
      if (!op_ok || !seen.insert(n).second)
        return InvalidArgument(where, ": ", what, " ", n, " is not a node of the right op (or is listed twice)");
      out.push_back(n);
    }
    return Status::OK();
  };
  KILN_RETURN_IF_ERROR(node_list(fm->eliminated_concats(), "eliminated concat", {"Concat"}, m.eliminated_concats));
  KILN_RETURN_IF_ERROR(node_list(fm->view_nodes(), "view node", {"Split", "Slice"}, m.view_nodes));
  KILN_RETURN_IF_ERROR(VerifyMemoryPlan(g, m).WithPrefix(where));
  return m;
}

Status CheckTarget(const fb::Target* t, const LoadPlanOptions& options, PlanTarget& out) {
  out.backend = Str(t->backend());
  out.device = Str(t->device());
  if (out.backend != "ref" && out.backend != "cpu")
    return InvalidArgument("plan targets backend '", out.backend, "'; this runtime has: cpu, ref");
  for (size_t i = 0; i < Len(t->isa_features()); ++i) {
    const std::string f = Str(t->isa_features()->Get(static_cast<flatbuffers::uoffset_t>(i)));
    bool present = false;
    if (options.cpu_features) {
      present = std::find(options.cpu_features->begin(), options.cpu_features->end(), f) != options.cpu_features->end();
    } else {
      auto has = CpuHasFeature(f);
      if (!has.ok()) return InvalidArgument("plan needs CPU feature '", f, "', which this kiln does not know");
      present = *has;
    }
    if (!present) return InvalidArgument("plan needs CPU feature '", f, "', which this CPU lacks");
    out.isa_features.push_back(f);
  }
  return Status::OK();
}

Status DecodeBindings(const flatbuffers::Vector<flatbuffers::Offset<fb::IoBinding>>* fbs, const Graph& g,
                      const std::vector<ValueId>& ids, const char* kind, PlanDecoder& decoder,
                      std::vector<PlanBinding>& out) {
  if (Len(fbs) != ids.size())
    return InvalidArgument(Len(fbs), " ", kind, " bindings for a graph with ", ids.size(), " ", kind, "s");
  for (size_t i = 0; i < ids.size(); ++i) {
    const fb::IoBinding* b = fbs->Get(static_cast<flatbuffers::uoffset_t>(i));
    PlanBinding pb;
    pb.name = Str(b->name());
    pb.value = b->value();
    const std::string what = StrCat(kind, " binding ", i, " '", pb.name, "'");
    KILN_ASSIGN_OR_RETURN(pb.type, decoder.DecodeType(b->type(), 0, what));
    const Value& v = g.value(ids[i]);
    if (pb.value != ids[i] || pb.name != v.name || pb.type.ToString() != v.type.ToString())
      return InvalidArgument(what, ": does not match graph ", kind, " '", v.name, "' (", v.type.ToString(), ")");
    out.push_back(std::move(pb));
  }
  return Status::OK();
}

uint32_t ReadLe32(const uint8_t* p) { return p[0] | (p[1] << 8) | (p[2] << 16) | (uint32_t{p[3]} << 24); }

// Checks and decodes a whole plan held at `data` (64-byte aligned, kept alive by `owner`).
StatusOr<LoadedPlan> ParsePlan(const uint8_t* data, size_t size, std::shared_ptr<void> owner,
                               const LoadPlanOptions& options) {
  if (size == 0) return InvalidArgument("empty file, not a kiln plan");
  if (!HasPlanMagic(data, size)) return InvalidArgument("not a kiln plan (no KILNPLAN magic)");
  // The version first: a newer plan may lay out everything after it differently.
  if (size >= 12) {
    const uint32_t version = ReadLe32(data + 8);
    // Versions grow by one per format change: one far beyond ours is corruption, not the future.
    if (version > kPlanFormatVersion + 256)
      return InvalidArgument("corrupt plan header: format version ", version,
                             " is not one any kiln writes (this runtime reads version ", kPlanFormatVersion, ")");
    if (version > kPlanFormatVersion)
      return InvalidArgument("plan format version ", version, " is newer than this runtime supports (",
                             kPlanFormatVersion, "); rebuild the plan with this kiln");
    if (version == 0) return InvalidArgument("invalid plan format version 0");
  }
  if (size < kPlanHeaderSize)
    return InvalidArgument("truncated: ", size, " bytes, shorter than the ", kPlanHeaderSize, "-byte header");
  const PlanHeader h = DecodePlanHeader(data);
  if (h.header_size != kPlanHeaderSize)
    return InvalidArgument("header size ", h.header_size, ", expected ", kPlanHeaderSize);
  if (h.file_size > size)
    return InvalidArgument("truncated: the header says ", h.file_size, " bytes, the file has ", size);
  if (h.file_size < size)
    return InvalidArgument(size - h.file_size, " bytes past the end of the plan (", h.file_size, " bytes)");
  // Sections in order, nothing between them: weights right after the header, the
  // flatbuffer right after the weights, up to the end of the file.
  if (h.weights_offset != kPlanHeaderSize || h.weights_size % kPlanAlignment != 0 ||
      h.weights_size > size - kPlanHeaderSize || h.flatbuffer_offset != h.weights_offset + h.weights_size ||
      h.flatbuffer_size != size - h.flatbuffer_offset)
    return InvalidArgument("bad section layout: weights at ", h.weights_offset, " +", h.weights_size,
                           ", flatbuffer at ", h.flatbuffer_offset, " +", h.flatbuffer_size, " in a file of ", size,
                           " bytes");
  if (h.flatbuffer_size < 8 || h.flatbuffer_size >= FLATBUFFERS_MAX_BUFFER_SIZE)
    return InvalidArgument("flatbuffer section of ", h.flatbuffer_size, " bytes");
  const uint64_t sum = ComputePlanChecksum({data, size});
  if (sum != h.checksum)
    return InvalidArgument("checksum mismatch (stored ", h.checksum, ", computed ", sum,
                           "): the file is damaged or was changed after it was built");

  const uint8_t* fbuf = data + h.flatbuffer_offset;
  if (!fb::PlanBufferHasIdentifier(fbuf)) return InvalidArgument("flatbuffer identifier is not 'KILN'");
  flatbuffers::Verifier::Options vo;
  // Every table of a plan kiln writes is a distinct object of at least 4 bytes: a bound on
  // tables visited keeps a buffer whose tables share children from costing more.
  vo.max_tables = static_cast<flatbuffers::uoffset_t>(h.flatbuffer_size / 4 + 1);
  vo.max_depth = 3 * kMaxPlanGraphDepth + kMaxPlanTypeDepth + 16;
  flatbuffers::Verifier verifier(fbuf, static_cast<size_t>(h.flatbuffer_size), vo);
  if (!fb::VerifyPlanBuffer(verifier))
    return InvalidArgument("malformed flatbuffer section (FlatBuffers verifier: bad offset, size or nesting)");
  const fb::Plan* p = fb::GetPlan(fbuf);
  if (p->format_version() != h.format_version)
    return InvalidArgument("format version ", p->format_version(), " in the flatbuffer, ", h.format_version,
                           " in the header");

  LoadedPlan out;
  out.format_version = h.format_version;
  out.kiln_version = Str(p->kiln_version());
  out.file_bytes = size;
  out.weights_bytes = h.weights_size;
  KILN_RETURN_IF_ERROR(CheckTarget(p->target(), options, out.target));
  PlanDecoder decoder(data, h, std::move(owner));
  out.graph = std::make_unique<Graph>();
  KILN_RETURN_IF_ERROR(decoder.DecodeGraph(p->graph(), *out.graph, 0, "graph"));
  const Graph& g = *out.graph;
  KILN_RETURN_IF_ERROR(DecodeBindings(p->inputs(), g, g.inputs(), "input", decoder, out.inputs));
  KILN_RETURN_IF_ERROR(DecodeBindings(p->outputs(), g, g.outputs(), "output", decoder, out.outputs));
  // The ops' own checks (input counts, attributes, shapes), as for an imported model: the
  // kernels rely on them. Types inferred here must agree with the stored ones.
  KILN_RETURN_IF_ERROR(InferTypes(*out.graph).WithPrefix("graph types"));
  if (p->memory()) {
    KILN_ASSIGN_OR_RETURN(out.memory, DecodeMemory(p->memory(), g));
  }
  for (size_t i = 0; i < Len(p->profiles()); ++i) {
    const fb::ShapeProfile* fp = p->profiles()->Get(static_cast<flatbuffers::uoffset_t>(i));
    ShapeProfileSpec spec;
    for (size_t j = 0; j < Len(fp->inputs()); ++j) {
      const fb::ProfileInput* in = fp->inputs()->Get(static_cast<flatbuffers::uoffset_t>(j));
      const std::string name = Str(in->name());
      auto vec = [](const flatbuffers::Vector<int64_t>* v) {
        std::vector<int64_t> o;
        for (size_t k = 0; k < Len(v); ++k) {
          int64_t x;
          std::memcpy(&x, v->Data() + k * sizeof(int64_t), sizeof x);  // 8-byte values may be unaligned
          o.push_back(x);
        }
        return o;
      };
      ShapeRangeSpec r{vec(in->min()), vec(in->opt()), vec(in->max())};
      auto vid = g.FindValue(name);
      bool is_input = false;
      for (ValueId v : g.inputs()) is_input = is_input || (vid && v == *vid);
      if (!is_input) return InvalidArgument("profile ", i, " names '", name, "', which is not a graph input");
      const Shape& s = g.value(*vid).type.shape;
      if (!s.has_rank() || s.rank() != static_cast<int>(r.min.size()))
        return InvalidArgument("profile ", i, ", input '", name, "': rank ", r.min.size(), " does not match the graph");
      if (!spec.emplace(name, std::move(r)).second) return InvalidArgument("profile ", i, " names '", name, "' twice");
    }
    KILN_RETURN_IF_ERROR(CheckShapeProfile(spec, static_cast<int>(i)));
    out.profiles.push_back(std::move(spec));
  }
  out.batch_slice = p->batch_slice();
  if (out.batch_slice < 0) return InvalidArgument("batch_slice ", out.batch_slice, " is negative");
  if (const fb::BackendArena* a = p->cpu_arena()) {
    // Every buffer inside the arena, aligned; whether they fit the program is the backend's
    // check (it verifies lifetimes against what it compiled).
    const auto* offs = a->offsets();
    const auto* sizes = a->sizes();
    if (offs == nullptr || sizes == nullptr || offs->size() != sizes->size())
      return InvalidArgument("cpu_arena: offsets and sizes differ in number");
    if (a->bytes() < 0 || a->bytes() > (int64_t{1} << 42)) return InvalidArgument("cpu_arena: size ", a->bytes(), " out of range");
    out.cpu_arena.bytes = a->bytes();
    for (flatbuffers::uoffset_t i = 0; i < offs->size(); ++i) {
      const int64_t o = offs->Get(i), n = sizes->Get(i);
      if (o < 0 || n < 0 || o % kArenaAlignment != 0 || n > a->bytes() || o > a->bytes() - n)
        return InvalidArgument("cpu_arena: buffer ", i, " (offset ", o, ", ", n, " bytes) is not inside the ", a->bytes(),
                               "-byte arena at an aligned offset");
      out.cpu_arena.offsets.push_back(o);
      out.cpu_arena.sizes.push_back(n);
    }
  }
  return out;
}

std::shared_ptr<uint8_t> AlignedCopy(const void* data, size_t size) {
  static_assert(kPlanAlignment <= kBufferAlignment);
  std::shared_ptr<uint8_t> p = std::static_pointer_cast<uint8_t>(AllocateAligned(AlignPlanOffset(size == 0 ? 1 : size)));
  if (p && size > 0) std::memcpy(p.get(), data, size);
  return p;
}

}  // namespace

uint32_t SupportedPlanFormatVersion() { return kPlanFormatVersion; }

StatusOr<LoadedPlan> LoadPlanFromBytes(const void* data, size_t size, const std::string& source,
                                       const LoadPlanOptions& options) {
  // Our own aligned copy: the weights are used in place and must be aligned for their type.
  std::shared_ptr<uint8_t> copy = AlignedCopy(data, size);
  if (!copy) return OutOfRange(source, ": cannot allocate ", size, " bytes");
  auto plan = ParsePlan(copy.get(), size, copy, options);
  if (!plan.ok()) return plan.status().WithPrefix(source);
  return plan;
}

StatusOr<LoadedPlan> LoadPlan(const std::string& path, const LoadPlanOptions& options) {
  KILN_ASSIGN_OR_RETURN(ReadOnlyFile file, ReadOnlyFile::Open(path));
  const size_t size = static_cast<size_t>(file.size());
  if (size == 0) return InvalidArgument(path, ": empty file, not a kiln plan");
  const int fd = file.fd();
  // A private, writable mapping: weights are used in place, and a kernel that writes into a
  // constant gets its own copy of the page instead of a crash or a changed file.
  void* addr = ::mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0);
  if (addr == MAP_FAILED) {
    // Not mappable (a pipe-like file system): read it into an aligned buffer instead.
    std::shared_ptr<uint8_t> buf = std::static_pointer_cast<uint8_t>(AllocateAligned(AlignPlanOffset(size)));
    if (!buf) return OutOfRange(path, ": cannot allocate ", size, " bytes");
    KILN_RETURN_IF_ERROR(file.ReadAt(0, file.size(), buf.get()));
    auto plan = ParsePlan(buf.get(), size, buf, options);
    if (!plan.ok()) return plan.status().WithPrefix(path);
    return plan;
  }
  // (The checksum maps the pages in, block by block on several threads: ComputePlanChecksum.)
  std::shared_ptr<void> mapping(addr, [size](void* p) { ::munmap(p, size); });
  auto plan = ParsePlan(static_cast<const uint8_t*>(addr), size, mapping, options);
  if (!plan.ok()) return plan.status().WithPrefix(path);
  plan->mapped = true;
  return plan;
}

bool IsPlanFile(const std::string& path) {
  auto file = ReadOnlyFile::Open(path);  // never blocks (a FIFO is refused, and then is no plan)
  uint8_t magic[sizeof kPlanMagic];
  return file.ok() && file->ReadAt(0, sizeof magic, magic).ok() && HasPlanMagic(magic, sizeof magic);
}

}  // namespace kiln
