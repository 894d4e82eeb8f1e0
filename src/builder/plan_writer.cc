#include "builder/plan_writer.h"

#include "base/file.h"

#include <fcntl.h>
#include <unistd.h>

#include <xxhash.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <deque>
#include <functional>
#include <set>
#include <unordered_map>

#include "plan/plan_format.h"
#include "plan/plan_generated.h"

namespace kiln {

namespace fb = plan::fb;

namespace {

using flatbuffers::Offset;

using ByteWriter = std::function<Status(const void* data, size_t size)>;

// Names read by captures of graphs nested (at any depth) in `g`'s live nodes. An enclosing
// graph keeps values of these names even when none of its own nodes reads them: captures
// resolve by name at run time.
void CollectCaptureNames(const Graph& g, int depth, std::set<std::string>& names) {
  if (depth > kMaxPlanGraphDepth) return;  // EncodeGraph reports it
  auto visit = [&](const std::shared_ptr<Graph>& sub) {
    if (!sub) return;
    for (ValueId c : sub->captures()) names.insert(sub->value(c).name);
    CollectCaptureNames(*sub, depth + 1, names);
  };
  for (int n = 0; n < g.num_nodes(); ++n) {
    if (g.node(n).dead) continue;
    for (const auto& [name, a] : g.node(n).attrs.all()) {
      if (a.type == Attr::Type::kGraph) visit(a.g);
      if (a.type == Attr::Type::kGraphs)
        for (const auto& sub : a.graphs) visit(sub);
    }
  }
}

fb::AttrType ToFbAttrType(Attr::Type t) {
  switch (t) {
    case Attr::Type::kFloat:
      return fb::AttrType::Float;
    case Attr::Type::kInt:
      return fb::AttrType::Int;
    case Attr::Type::kString:
      return fb::AttrType::String;
    case Attr::Type::kTensor:
      return fb::AttrType::Tensor;
    case Attr::Type::kGraph:
      return fb::AttrType::Graph;
    case Attr::Type::kFloats:
      return fb::AttrType::Floats;
    case Attr::Type::kInts:
      return fb::AttrType::Ints;
    case Attr::Type::kStrings:
      return fb::AttrType::Strings;
    case Attr::Type::kTensors:
      return fb::AttrType::Tensors;
    case Attr::Type::kGraphs:
      return fb::AttrType::Graphs;
    case Attr::Type::kTypeProto:
      return fb::AttrType::TypeProto;
  }
  return fb::AttrType::Int;
}

fb::TypeKind ToFbKind(TypeInfo::Kind k) {
  switch (k) {
    case TypeInfo::Kind::kTensor:
      return fb::TypeKind::Tensor;
    case TypeInfo::Kind::kSequence:
      return fb::TypeKind::Sequence;
    case TypeInfo::Kind::kOptional:
      return fb::TypeKind::Optional;
  }
  return fb::TypeKind::Tensor;
}

// Builds the flatbuffer and lays out the weights section (the bytes stay in the graph's
// tensors until EmitPlan copies them out).
class PlanEncoder {
 public:
  struct Weight {
    const Tensor* tensor;
    uint64_t offset;  // from the start of the file
  };

  Status Encode(const Graph& g, const MemoryPlan& mem, const PlanOptions& options);

  const std::deque<Weight>& weights() const { return weights_; }
  uint64_t weights_size() const { return AlignPlanOffset(weights_end_) - kPlanHeaderSize; }
  std::span<const uint8_t> flatbuffer() const { return {fbb_.GetBufferPointer(), fbb_.GetSize()}; }

 private:
  // How a graph was stored: its kept values' new indices (-1: dropped) and its live nodes
  // in execution order.
  struct GraphIndex {
    std::vector<int32_t> value_index;
    std::vector<NodeId> order;
  };

  StatusOr<Offset<fb::Graph>> EncodeGraph(const Graph& g, int depth, GraphIndex* index);
  StatusOr<Offset<fb::Type>> EncodeType(const TypeInfo& t, int depth, const std::string& what);
  StatusOr<Offset<fb::TensorData>> EncodeTensor(const Tensor& t, const std::string& what);
  // The file offset of t's bytes (numeric, non-empty): placed now, or shared with bytes
  // placed already.
  uint64_t PlaceWeights(const Tensor& t);
  StatusOr<Offset<fb::Attribute>> EncodeAttr(const std::string& name, const Attr& a, int depth,
                                             const std::string& where);
  StatusOr<Offset<fb::MemoryPlan>> EncodeMemory(const Graph& g, const MemoryPlan& mem, const GraphIndex& index);
  StatusOr<Offset<flatbuffers::Vector<Offset<fb::IoBinding>>>> EncodeBindings(const Graph& g,
                                                                              const std::vector<ValueId>& ids,
                                                                              const GraphIndex& index);

  flatbuffers::FlatBufferBuilder fbb_{1 << 16};
  std::deque<Weight> weights_;                                        // stable addresses for by_hash_
  std::unordered_map<uint64_t, std::vector<const Weight*>> by_hash_;  // lookups only: no pointer order
  std::unordered_map<const void*, const Weight*> by_address_;         // lookups only, likewise
  uint64_t weights_end_ = kPlanHeaderSize;
};

StatusOr<Offset<fb::Type>> PlanEncoder::EncodeType(const TypeInfo& t, int depth, const std::string& what) {
  if (depth > kMaxPlanTypeDepth) return InvalidArgument(what, ": type nests deeper than ", kMaxPlanTypeDepth);
  Offset<fb::Type> elem = 0;
  if (t.kind != TypeInfo::Kind::kTensor && t.elem) {
    KILN_ASSIGN_OR_RETURN(elem, EncodeType(*t.elem, depth + 1, what));
  }
  std::vector<int64_t> dims;
  std::vector<std::string> symbols;
  bool any_symbol = false;
  for (const Dim& d : t.shape.dims()) {
    dims.push_back(d.known() ? d.value : -1);
    symbols.push_back(d.known() ? std::string() : d.symbol);
    any_symbol = any_symbol || !symbols.back().empty();
  }
  auto dims_off = t.shape.has_rank() ? fbb_.CreateVector(dims) : 0;
  auto symbols_off = any_symbol ? fbb_.CreateVectorOfStrings(symbols) : 0;
  return fb::CreateType(fbb_, ToFbKind(t.kind), static_cast<int32_t>(t.dtype), t.shape.has_rank(), dims_off,
                        symbols_off, elem);
}

StatusOr<Offset<fb::TensorData>> PlanEncoder::EncodeTensor(const Tensor& t, const std::string& what) {
  if (!t.defined()) return InvalidArgument(what, ": tensor has no element type");
  auto dims = fbb_.CreateVector(t.dims());
  if (t.dtype() == DType::kString) {
    std::vector<Offset<flatbuffers::String>> strs;
    strs.reserve(static_cast<size_t>(t.numel()));
    for (const std::string& s : t.span<std::string>()) strs.push_back(fbb_.CreateString(s));
    auto strings = fbb_.CreateVector(strs);
    return fb::CreateTensorData(fbb_, static_cast<int32_t>(t.dtype()), dims, 0, 0, strings);
  }
  const uint64_t size = t.nbytes();
  if (size == 0)
    return fb::CreateTensorData(fbb_, static_cast<int32_t>(t.dtype()), dims, AlignPlanOffset(weights_end_), 0);
  return fb::CreateTensorData(fbb_, static_cast<int32_t>(t.dtype()), dims, PlaceWeights(t), size);
}

uint64_t PlanEncoder::PlaceWeights(const Tensor& t) {
  const uint64_t size = t.nbytes();
  // A tensor over the first bytes of one placed already (a constant stored in a padded
  // kernel layout names the start of its node's kiln.packed_weights) shares its offset.
  if (auto it = by_address_.find(t.raw_data()); it != by_address_.end() && it->second->tensor->nbytes() >= size)
    return it->second->offset;
  // Identical bytes are stored once: models share weights between layers (often through
  // Identity nodes that the optimizer resolves into separate constants of one buffer).
  const uint64_t hash = XXH3_64bits(t.raw_data(), size);
  for (const Weight* w : by_hash_[hash]) {
    if (w->tensor->nbytes() == size && std::memcmp(w->tensor->raw_data(), t.raw_data(), size) == 0) return w->offset;
  }
  const uint64_t offset = AlignPlanOffset(weights_end_);
  weights_.push_back({&t, offset});
  by_hash_[hash].push_back(&weights_.back());
  by_address_.emplace(t.raw_data(), &weights_.back());
  weights_end_ = offset + size;
  return offset;
}

StatusOr<Offset<fb::Attribute>> PlanEncoder::EncodeAttr(const std::string& name, const Attr& a, int depth,
                                                        const std::string& where) {
  const std::string what = StrCat(where, ", attribute '", name, "'");
  Offset<flatbuffers::String> s = 0;
  Offset<fb::TensorData> t = 0;
  Offset<fb::Graph> g = 0;
  Offset<flatbuffers::Vector<float>> floats = 0;
  Offset<flatbuffers::Vector<int64_t>> ints = 0;
  Offset<flatbuffers::Vector<Offset<flatbuffers::String>>> strings = 0;
  Offset<flatbuffers::Vector<Offset<fb::TensorData>>> tensors = 0;
  Offset<flatbuffers::Vector<Offset<fb::Graph>>> graphs = 0;
  float f = 0;
  int64_t i = 0;
  switch (a.type) {
    case Attr::Type::kFloat:
      f = a.f;
      break;
    case Attr::Type::kInt:
      i = a.i;
      break;
    case Attr::Type::kString:
      s = fbb_.CreateString(a.s);
      break;
    case Attr::Type::kTypeProto:
      i = a.i;
      s = fbb_.CreateString(a.s);
      break;
    case Attr::Type::kTensor: {
      KILN_ASSIGN_OR_RETURN(t, EncodeTensor(a.t, what));
      break;
    }
    case Attr::Type::kGraph: {
      if (!a.g) return InvalidArgument(what, ": holds no graph");
      KILN_ASSIGN_OR_RETURN(g, EncodeGraph(*a.g, depth + 1, nullptr));
      break;
    }
    case Attr::Type::kFloats:
      floats = fbb_.CreateVector(a.floats);
      break;
    case Attr::Type::kInts:
      ints = fbb_.CreateVector(a.ints);
      break;
    case Attr::Type::kStrings:
      strings = fbb_.CreateVectorOfStrings(a.strings);
      break;
    case Attr::Type::kTensors: {
      std::vector<Offset<fb::TensorData>> ts;
      for (size_t k = 0; k < a.tensors.size(); ++k) {
        KILN_ASSIGN_OR_RETURN(auto off, EncodeTensor(a.tensors[k], StrCat(what, "[", k, "]")));
        ts.push_back(off);
      }
      tensors = fbb_.CreateVector(ts);
      break;
    }
    case Attr::Type::kGraphs: {
      std::vector<Offset<fb::Graph>> gs;
      for (size_t k = 0; k < a.graphs.size(); ++k) {
        if (!a.graphs[k]) return InvalidArgument(what, "[", k, "]: holds no graph");
        KILN_ASSIGN_OR_RETURN(auto off, EncodeGraph(*a.graphs[k], depth + 1, nullptr));
        gs.push_back(off);
      }
      graphs = fbb_.CreateVector(gs);
      break;
    }
  }
  auto name_off = fbb_.CreateString(name);
  // FlatBuffers leaves out a scalar equal to its default, and -0.0f == 0.0f: force a float
  // attribute's value in, so it reads back bit-exact.
  fbb_.ForceDefaults(a.type == Attr::Type::kFloat);
  auto off =
      fb::CreateAttribute(fbb_, name_off, ToFbAttrType(a.type), f, i, s, t, g, floats, ints, strings, tensors, graphs);
  fbb_.ForceDefaults(false);
  return off;
}

StatusOr<Offset<fb::Graph>> PlanEncoder::EncodeGraph(const Graph& g, int depth, GraphIndex* index_out) {
  const std::string where = StrCat("graph '", g.name, "'");
  if (depth > kMaxPlanGraphDepth)
    return InvalidArgument(where, ": subgraphs nest deeper than ", kMaxPlanGraphDepth, " levels");
  GraphIndex index;
  KILN_ASSIGN_OR_RETURN(index.order, g.TopologicalOrder());
  // Padded packed weights first, so that their constants (which name the first bytes of
  // them) share their range instead of a copy (FORMAT.md, kiln.packed_weights).
  for (NodeId id : index.order) {
    const Attr* a = g.node(id).attrs.find("kiln.packed_weights");
    if (a != nullptr && a->type == Attr::Type::kTensor && a->t.defined() && a->t.dtype() != DType::kString &&
        a->t.nbytes() > 0)
      PlaceWeights(a->t);
  }

  // Keep what the graph reads, defines or exposes; values left behind by passes (folded
  // weights, removed nodes' outputs) are dropped so their bytes never reach the file.
  std::vector<bool> keep(static_cast<size_t>(g.num_values()), false);
  auto mark = [&](ValueId v) {
    if (v != kNoValue) keep[static_cast<size_t>(v)] = true;
  };
  for (ValueId v : g.inputs()) mark(v);
  for (ValueId v : g.outputs()) mark(v);
  for (ValueId v : g.captures()) mark(v);
  for (NodeId id : index.order) {
    for (ValueId v : g.node(id).inputs) mark(v);
    for (ValueId v : g.node(id).outputs) mark(v);
  }
  std::set<std::string> captured;
  CollectCaptureNames(g, depth, captured);
  index.value_index.assign(static_cast<size_t>(g.num_values()), -1);
  std::vector<Offset<fb::Value>> values;
  for (int v = 0; v < g.num_values(); ++v) {
    const Value& val = g.value(v);
    if (!keep[static_cast<size_t>(v)] && !captured.count(val.name)) continue;
    index.value_index[static_cast<size_t>(v)] = static_cast<int32_t>(values.size());
    const std::string what = StrCat(where, ", value '", val.name, "'");
    Offset<fb::Type> type = 0;
    Offset<fb::TensorData> constant = 0;
    if (val.constant) {
      KILN_ASSIGN_OR_RETURN(constant, EncodeTensor(*val.constant, what));
    } else {
      KILN_ASSIGN_OR_RETURN(type, EncodeType(val.type, 0, what));
    }
    auto name = fbb_.CreateString(val.name);
    values.push_back(fb::CreateValue(fbb_, name, type, constant));
  }
  auto remap = [&](const std::vector<ValueId>& ids) {
    std::vector<int32_t> out;
    out.reserve(ids.size());
    for (ValueId v : ids) out.push_back(v == kNoValue ? -1 : index.value_index[static_cast<size_t>(v)]);
    return out;
  };

  std::vector<Offset<fb::Node>> nodes;
  for (NodeId id : index.order) {
    const Node& n = g.node(id);
    const std::string node_where = StrCat(where, ", node ", n.DisplayName(id));
    std::vector<Offset<fb::Attribute>> attrs;
    for (const auto& [name, a] : n.attrs.all()) {
      KILN_ASSIGN_OR_RETURN(auto off, EncodeAttr(name, a, depth, node_where));
      attrs.push_back(off);
    }
    auto name = fbb_.CreateString(n.name);
    auto op_type = fbb_.CreateString(n.op_type);
    auto domain = fbb_.CreateString(n.domain);
    auto inputs = fbb_.CreateVector(remap(n.inputs));
    auto outputs = fbb_.CreateVector(remap(n.outputs));
    auto attrs_off = fbb_.CreateVector(attrs);
    auto fused_from = fbb_.CreateVectorOfStrings(n.fused_from);
    nodes.push_back(fb::CreateNode(fbb_, name, op_type, domain, inputs, outputs, attrs_off, fused_from));
  }
  auto name = fbb_.CreateString(g.name);
  auto values_off = fbb_.CreateVector(values);
  auto nodes_off = fbb_.CreateVector(nodes);
  auto inputs = fbb_.CreateVector(remap(g.inputs()));
  auto outputs = fbb_.CreateVector(remap(g.outputs()));
  auto captures = fbb_.CreateVector(remap(g.captures()));
  if (index_out) *index_out = std::move(index);
  return fb::CreateGraph(fbb_, name, values_off, nodes_off, inputs, outputs, captures);
}

StatusOr<Offset<fb::MemoryPlan>> PlanEncoder::EncodeMemory(const Graph& g, const MemoryPlan& mem,
                                                           const GraphIndex& index) {
  if (mem.placements.empty()) return Offset<fb::MemoryPlan>(0);  // no plan: dynamic shapes
  if (mem.placements.size() != static_cast<size_t>(g.num_values()))
    return InvalidArgument("the memory plan has ", mem.placements.size(), " placements but graph '", g.name, "' has ",
                           g.num_values(), " values: plan memory for this graph");
  auto stored = [&](ValueId v) { return v == kNoValue ? -1 : index.value_index[static_cast<size_t>(v)]; };
  std::vector<Offset<fb::Placement>> placements;
  for (int v = 0; v < g.num_values(); ++v) {
    const TensorPlacement& p = mem.placements[static_cast<size_t>(v)];
    if (p.value == kNoValue) continue;
    if (p.value != v || stored(v) < 0 || (p.alias_of != kNoValue && stored(p.alias_of) < 0))
      return Internal("memory plan: placement of '", g.value(v).name, "' refers to a value the graph does not hold");
    placements.push_back(fb::CreatePlacement(fbb_, stored(v), p.offset, p.bytes, p.first_use, p.last_use,
                                             stored(p.alias_of), p.concat_slice, p.slice_offset, p.rows, p.row_bytes,
                                             p.row_pitch));
  }
  // Node ids become steps (indices in the stored node list).
  auto steps = [&](const std::vector<NodeId>& ids, const char* what) -> StatusOr<std::vector<int32_t>> {
    std::vector<int32_t> out;
    for (NodeId id : ids) {
      auto it = std::find(index.order.begin(), index.order.end(), id);
      if (it == index.order.end()) return Internal("memory plan: ", what, " #", id, " is not a live node");
      out.push_back(static_cast<int32_t>(it - index.order.begin()));
    }
    return out;
  };
  KILN_ASSIGN_OR_RETURN(std::vector<int32_t> eliminated, steps(mem.eliminated_concats, "eliminated concat"));
  KILN_ASSIGN_OR_RETURN(std::vector<int32_t> views, steps(mem.view_nodes, "view node"));
  auto eliminated_off = fbb_.CreateVector(eliminated);
  auto placements_off = fbb_.CreateVector(placements);
  auto views_off = fbb_.CreateVector(views);
  return fb::CreateMemoryPlan(fbb_, mem.arena_bytes, mem.naive_bytes, mem.num_tensors, mem.num_in_place,
                              mem.concat_slices, eliminated_off, placements_off, mem.slice_views, views_off);
}

StatusOr<Offset<flatbuffers::Vector<Offset<fb::IoBinding>>>> PlanEncoder::EncodeBindings(
    const Graph& g, const std::vector<ValueId>& ids, const GraphIndex& index) {
  std::vector<Offset<fb::IoBinding>> out;
  for (ValueId v : ids) {
    const Value& val = g.value(v);
    KILN_ASSIGN_OR_RETURN(auto type, EncodeType(val.type, 0, StrCat("graph input/output '", val.name, "'")));
    auto name = fbb_.CreateString(val.name);
    out.push_back(fb::CreateIoBinding(fbb_, name, index.value_index[static_cast<size_t>(v)], type));
  }
  return fbb_.CreateVector(out);
}

Status PlanEncoder::Encode(const Graph& g, const MemoryPlan& mem, const PlanOptions& options) {
  if (options.backend.empty()) return InvalidArgument("plan options: no backend");
  GraphIndex index;
  KILN_ASSIGN_OR_RETURN(auto graph, EncodeGraph(g, 0, &index));
  KILN_ASSIGN_OR_RETURN(auto memory, EncodeMemory(g, mem, index));
  KILN_ASSIGN_OR_RETURN(auto inputs, EncodeBindings(g, g.inputs(), index));
  KILN_ASSIGN_OR_RETURN(auto outputs, EncodeBindings(g, g.outputs(), index));
  auto backend = fbb_.CreateString(options.backend);
  auto isa = fbb_.CreateVectorOfStrings(options.isa_features);
  auto device = fbb_.CreateString(options.device);
  auto target = fb::CreateTarget(fbb_, backend, isa, device);
  auto version = fbb_.CreateString(KILN_VERSION);
  std::vector<Offset<fb::ShapeProfile>> profiles;
  for (size_t i = 0; i < options.profiles.size(); ++i) {
    KILN_RETURN_IF_ERROR(CheckShapeProfile(options.profiles[i], static_cast<int>(i)));
    std::vector<Offset<fb::ProfileInput>> ins;
    for (const auto& [name, r] : options.profiles[i]) {
      auto n = fbb_.CreateString(name);
      auto mn = fbb_.CreateVector(r.min), op = fbb_.CreateVector(r.opt), mx = fbb_.CreateVector(r.max);
      ins.push_back(fb::CreateProfileInput(fbb_, n, mn, op, mx));
    }
    profiles.push_back(fb::CreateShapeProfile(fbb_, fbb_.CreateVector(ins)));
  }
  auto profiles_off = fbb_.CreateVector(profiles);
  Offset<fb::BackendArena> cpu_arena = 0;
  if (!options.cpu_arena.empty())
    cpu_arena = fb::CreateBackendArena(fbb_, options.cpu_arena.bytes, fbb_.CreateVector(options.cpu_arena.offsets),
                                       fbb_.CreateVector(options.cpu_arena.sizes));
  auto plan = fb::CreatePlan(fbb_, kPlanFormatVersion, version, target, graph, memory, inputs, outputs, profiles_off,
                              options.batch_slice, cpu_arena);
  fb::FinishPlanBuffer(fbb_, plan);
  return Status::OK();
}

PlanHeader MakeHeader(uint64_t weights_size, uint64_t flatbuffer_size) {
  PlanHeader h;
  h.weights_offset = kPlanHeaderSize;
  h.weights_size = AlignPlanOffset(weights_size);
  h.flatbuffer_offset = h.weights_offset + h.weights_size;
  h.flatbuffer_size = flatbuffer_size;
  h.file_size = h.flatbuffer_offset + h.flatbuffer_size;
  return h;
}

// Writes the file's bytes in order: header (checksum as given), weights, padding, flatbuffer.
Status EmitPlan(const PlanEncoder& e, const PlanHeader& h, const ByteWriter& write) {
  static const uint8_t kZeros[kPlanAlignment] = {};
  uint8_t header[kPlanHeaderSize];
  EncodePlanHeader(h, header);
  KILN_RETURN_IF_ERROR(write(header, sizeof header));
  uint64_t pos = kPlanHeaderSize;
  auto pad_to = [&](uint64_t at) -> Status {
    while (pos < at) {
      const size_t n = static_cast<size_t>(std::min<uint64_t>(at - pos, sizeof kZeros));
      KILN_RETURN_IF_ERROR(write(kZeros, n));
      pos += n;
    }
    return Status::OK();
  };
  for (const PlanEncoder::Weight& w : e.weights()) {
    KILN_RETURN_IF_ERROR(pad_to(w.offset));
    KILN_RETURN_IF_ERROR(write(w.tensor->raw_data(), w.tensor->nbytes()));
    pos += w.tensor->nbytes();
  }
  KILN_RETURN_IF_ERROR(pad_to(h.flatbuffer_offset));
  return write(e.flatbuffer().data(), e.flatbuffer().size());
}

}  // namespace

StatusOr<std::vector<uint8_t>> SerializePlan(const Graph& optimized, const MemoryPlan& mem,
                                             const PlanOptions& options) {
  PlanEncoder e;
  KILN_RETURN_IF_ERROR(e.Encode(optimized, mem, options));
  const PlanHeader h = MakeHeader(e.weights_size(), e.flatbuffer().size());
  std::vector<uint8_t> file;
  file.reserve(h.file_size);
  KILN_RETURN_IF_ERROR(EmitPlan(e, h, [&](const void* data, size_t size) {
    file.insert(file.end(), static_cast<const uint8_t*>(data), static_cast<const uint8_t*>(data) + size);
    return Status::OK();
  }));
  RestampPlanChecksum(file);
  return file;
}

std::vector<uint8_t> AssemblePlanFile(std::span<const uint8_t> weights, std::span<const uint8_t> flatbuffer) {
  const PlanHeader h = MakeHeader(weights.size(), flatbuffer.size());
  std::vector<uint8_t> file(h.file_size, 0);
  EncodePlanHeader(h, file.data());
  std::copy(weights.begin(), weights.end(), file.begin() + static_cast<std::ptrdiff_t>(h.weights_offset));
  std::copy(flatbuffer.begin(), flatbuffer.end(), file.begin() + static_cast<std::ptrdiff_t>(h.flatbuffer_offset));
  RestampPlanChecksum(file);
  return file;
}

Status WritePlan(const Graph& optimized, const MemoryPlan& mem, const PlanOptions& options, const std::string& path) {
  PlanEncoder e;
  KILN_RETURN_IF_ERROR(e.Encode(optimized, mem, options).WithPrefix(path));
  PlanHeader h = MakeHeader(e.weights_size(), e.flatbuffer().size());

  KILN_ASSIGN_OR_RETURN(AtomicFileWriter out, AtomicFileWriter::Create(path));
  // One pass: stream the sections while hashing them, then put the checksum in the header.
  PlanChecksum checksum;
  KILN_RETURN_IF_ERROR(EmitPlan(e, h, [&](const void* data, size_t size) {
    checksum.Update(data, size);
    return out.Write(data, size);
  }));
  h.checksum = checksum.Digest();
  uint8_t header[kPlanHeaderSize];
  EncodePlanHeader(h, header);
  KILN_RETURN_IF_ERROR(out.WriteAt(header, sizeof header, 0));
  return out.Commit();  // on any error above, the writer removes its temporary file
}

}  // namespace kiln
