// The CPU backend's compiler driver (lowering every node, layout conversions, constants)
// and arena planner, and the compile entry points (see cpu_backend.h).
#include <omp.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <functional>
#include <limits>
#include <sstream>
#include <unordered_map>

#include "backends/cpu/program.h"
#include "backends/cpu/int8.h"
#include "backends/cpu/lower_dnnl_util.h"
#include "base/arena.h"
#include "ir/fingerprint.h"
#include "ir/op_schema.h"

namespace kiln::cpu {

using dt = dnnl::memory::data_type;

dnnl::memory::dims ToDnnl(const std::vector<int64_t>& v) {
  if (v.empty()) return {1};
  return dnnl::memory::dims(v.begin(), v.end());
}

dnnl::memory::desc PlainMd(const std::vector<int64_t>& dims, dnnl::memory::data_type type) {
  dnnl::memory::dims d = ToDnnl(dims);
  dnnl::memory::dims strides(d.size(), 1);
  for (int i = static_cast<int>(d.size()) - 2; i >= 0; --i)
    strides[static_cast<size_t>(i)] = strides[static_cast<size_t>(i) + 1] * std::max<int64_t>(d[static_cast<size_t>(i) + 1], 1);
  return dnnl::memory::desc(d, type, strides);
}

bool IsPlain(const Slot& s) { return !s.has_md || s.md == PlainMd(s.dims); }

std::string MdString(const dnnl::memory::desc& md) {
  const dnnl_memory_desc_t& d = md.data;
  std::ostringstream os;
  os << d.ndims << ":" << static_cast<int>(d.data_type) << ":" << static_cast<int>(d.format_kind) << ":" << d.offset0;
  for (int i = 0; i < d.ndims; ++i) os << "," << d.dims[i] << "/" << d.padded_dims[i] << "/" << d.padded_offsets[i];
  if (d.format_kind == dnnl_blocked) {
    const auto& b = d.format_desc.blocking;
    os << "|s";
    for (int i = 0; i < d.ndims; ++i) os << "," << b.strides[i];
    os << "|b";
    for (int i = 0; i < b.inner_nblks; ++i) os << "," << b.inner_idxs[i] << "x" << b.inner_blks[i];
  }
  return os.str();
}

// ---- Compiler ----

int Compiler::NewSlot(ValueId v, const dnnl::memory::desc& md, const std::vector<int64_t>& dims, DType dtype) {
  Slot s;
  s.name = v == kNoValue ? std::string("tmp") : graph().value(v).name;
  s.dtype = dtype;
  s.dims = dims;
  s.has_md = true;
  s.md = md;
  s.bytes = static_cast<int64_t>(md.get_size());
  p_.slots.push_back(std::move(s));
  const int id = static_cast<int>(p_.slots.size()) - 1;
  if (v != kNoValue) value_slot_[v] = id;
  return id;
}

int Compiler::NewRawSlot(ValueId v, const std::vector<int64_t>& dims, DType dtype) {
  if (dtype == DType::kFloat32) return NewSlot(v, PlainMd(dims), dims);
  Slot s;
  s.name = v == kNoValue ? std::string("tmp") : graph().value(v).name;
  s.dtype = dtype;
  s.dims = dims;
  int64_t n = 1;
  for (int64_t d : dims) n *= d;
  s.bytes = n * static_cast<int64_t>(DTypeSize(dtype));
  p_.slots.push_back(std::move(s));
  const int id = static_cast<int>(p_.slots.size()) - 1;
  if (v != kNoValue) value_slot_[v] = id;
  return id;
}

int Compiler::SlotOf(ValueId v) {
  auto it = value_slot_.find(v);
  if (it != value_slot_.end()) return it->second;
  const Value& val = graph().value(v);
  // Only constants are created lazily; activations get their slot from their producer.
  const Tensor& t = *val.constant;
  int s = NewRawSlot(v, t.dims(), t.dtype());
  p_.slots[static_cast<size_t>(s)].kind = Slot::Kind::kConstant;
  p_.slots[static_cast<size_t>(s)].constant = t.raw_data();
  return s;
}

int Compiler::InLayout(int slot, const dnnl::memory::desc& md) {
  const Slot& s = p_.slots[static_cast<size_t>(slot)];
  if (s.md == md) return slot;
  if (md.data_type() == dnnl::memory::data_type::s8 || md.data_type() == dnnl::memory::data_type::u8) {
    // (An INT8 layout of a quantized slot keeps its scale.)
    if (s.qscale > 0) return Quantized(slot, md, s.qscale);
  }
  const std::string key = MdString(md);
  auto it = layout_cache_.find({slot, key});
  if (it != layout_cache_.end()) return it->second;
  const std::vector<int64_t> dims = s.dims;
  const std::string name = s.name;
  int out = NewSlot(kNoValue, md, dims);
  p_.slots[static_cast<size_t>(out)].name = name;
  AddReorder(slot, out, "reorder " + name, "Reorder");
  layout_cache_[{slot, key}] = out;
  return out;
}

int Compiler::Quantized(int slot, const dnnl::memory::desc& md, float scale) {
  const Slot& s = p_.slots[static_cast<size_t>(slot)];
  if (s.md == md && s.qscale == scale) return slot;
  char sc[32];
  std::snprintf(sc, sizeof sc, "@%a", static_cast<double>(scale));
  const std::string key = MdString(md) + sc;
  auto it = layout_cache_.find({slot, key});
  if (it != layout_cache_.end()) return it->second;
  const std::vector<int64_t> dims = s.dims;
  const std::string name = s.name;
  const DType dt = md.data_type() == dnnl::memory::data_type::u8 ? DType::kUInt8 : DType::kInt8;
  int out = NewSlot(kNoValue, md, dims, dt);
  p_.slots[static_cast<size_t>(out)].name = name;
  p_.slots[static_cast<size_t>(out)].qscale = scale;
  AddReorder(slot, out, "quantize " + name, "QuantizeLinear");
  layout_cache_[{slot, key}] = out;
  return out;
}

bool Compiler::IsLastUse(ValueId v, NodeId id) const {
  const Graph& g = graph();
  const Value& val = g.value(v);
  if (val.constant) return false;
  for (ValueId o : g.outputs())
    if (o == v) return false;
  for (NodeId c : val.consumers)
    if (c != id && !lowered_[static_cast<size_t>(c)]) return false;
  auto it = value_slot_.find(v);
  if (it == value_slot_.end()) return false;
  const int root = p_.Root(it->second);
  if (p_.slots[static_cast<size_t>(root)].kind != Slot::Kind::kArena) return false;
  for (const auto& [other, s] : value_slot_)
    if (other != v && p_.Root(s) == root) return false;
  // Layout copies of v made for other readers are separate buffers; reads of v through a
  // view slot come from values, which the loop above covers.
  return true;
}

namespace {

// Whether two descriptors of the same dims address every element at the same place, up to
// their offset: the same inner blocks and the same stride for every dim of size > 1.
bool SameBytesAs(const dnnl::memory::desc& a, const dnnl::memory::desc& b) {
  if (a.data.ndims != b.data.ndims || a.data.format_kind != dnnl_blocked || b.data.format_kind != dnnl_blocked ||
      a.data.data_type != b.data.data_type)
    return false;
  const auto &x = a.data.format_desc.blocking, &y = b.data.format_desc.blocking;
  if (x.inner_nblks != y.inner_nblks) return false;
  for (int i = 0; i < x.inner_nblks; ++i)
    if (x.inner_blks[i] != y.inner_blks[i] || x.inner_idxs[i] != y.inner_idxs[i]) return false;
  for (int d = 0; d < a.data.ndims; ++d) {
    if (a.data.dims[d] != b.data.dims[d] || a.data.padded_dims[d] != b.data.padded_dims[d]) return false;
    if (a.data.dims[d] > 1 && x.strides[d] != y.strides[d]) return false;
  }
  return true;
}

}  // namespace

std::optional<Compiler::ConcatPart> Compiler::ConcatTarget(ValueId v, const dnnl::memory::desc& natural) {
  const Graph& g = graph();
  const Value& val = g.value(v);
  if (val.consumers.size() != 1 || val.type.dtype != DType::kFloat32) return std::nullopt;
  for (ValueId o : g.outputs())
    if (o == v) return std::nullopt;
  const NodeId cid = val.consumers[0];
  const Node& cn = g.node(cid);
  if (cn.op_type != "Concat" || !(cn.domain.empty() || cn.domain == "ai.onnx") || IsFusedNode(cn)) return std::nullopt;
  const ValueId out = cn.outputs[0];
  if (g.value(out).type.dtype != DType::kFloat32) return std::nullopt;
  if (Int8OutputFor(g, out)) return std::nullopt;  // an INT8 concat (LowerConcat)
  const std::vector<int64_t> out_dims = g.value(out).type.shape.Sizes();
  const int rank = static_cast<int>(out_dims.size());
  auto axis_or = cn.attrs.GetInt("axis", 0);
  if (!axis_or.ok() || rank == 0) return std::nullopt;
  int64_t axis = *axis_or < 0 ? *axis_or + rank : *axis_or;
  if (axis < 0 || axis >= rank) return std::nullopt;
  // Every input: an activation read only by this concat (so nobody sees the shared buffer).
  int64_t offset = -1, running = 0;
  std::vector<int64_t> dims;
  for (ValueId in : cn.inputs) {
    if (in == kNoValue || g.value(in).constant || g.value(in).consumers.size() != 1) return std::nullopt;
    for (ValueId o : g.outputs())
      if (o == in) return std::nullopt;
    const std::vector<int64_t> d = g.value(in).type.shape.Sizes();
    if (in == v) {
      if (offset >= 0) return std::nullopt;  // v twice
      offset = running;
      dims = d;
    }
    running += d[static_cast<size_t>(axis)];
  }
  if (offset < 0 || natural.data.ndims != rank) return std::nullopt;
  auto it = concat_whole_.find(cid);
  if (it == concat_whole_.end()) {
    // The buffer takes the first producer's layout when it is a plain or channel-blocked one.
    const std::optional<dnnl::memory::format_tag> t = rank <= 4 ? ActivationTag(natural) : std::nullopt;
    const dnnl::memory::desc whole_md =
        t ? dnnl::memory::desc(dnnl::memory::dims(out_dims.begin(), out_dims.end()), natural.data_type(), *t)
          : dnnl::memory::desc();
    if (whole_md.get_size() == 0) return std::nullopt;
    // Blocked along the axis: every input's offset must be a multiple of the block.
    const auto& blk = whole_md.data.format_desc.blocking;
    int64_t block = 1;
    for (int i = 0; i < blk.inner_nblks; ++i)
      if (blk.inner_idxs[i] == axis) block *= blk.inner_blks[i];
    int64_t at = 0;
    for (ValueId in : cn.inputs) {
      if (at % block != 0) return std::nullopt;
      at += g.value(in).type.shape.Sizes()[static_cast<size_t>(axis)];
    }
    if (whole_md.data.dims[axis] != whole_md.data.padded_dims[axis]) return std::nullopt;
    const int whole = NewSlot(out, whole_md, out_dims);
    it = concat_whole_.emplace(cid, whole).first;
  }
  const int whole = it->second;
  dnnl::memory::dims offs(static_cast<size_t>(rank), 0);
  offs[static_cast<size_t>(axis)] = offset;
  dnnl::memory::desc sub;
  try {
    sub = p_.slots[static_cast<size_t>(whole)].md.submemory_desc(ToDnnl(dims), offs);
  } catch (const dnnl::error&) {
    return std::nullopt;
  }
  if (sub.data_type() != natural.data_type()) return std::nullopt;
  // Where the piece is one dense run of the buffer — every dim before the axis is 1 and the
  // axis is outermost in memory (row-major, or channel-blocked at a block-aligned offset:
  // batch 1) — the producer gets a dense descriptor and a pointer into the buffer: oneDNN's
  // convolutions take no strided destination (they fall back to ref:any), a dense one at
  // an offset is just a tensor. Otherwise the strided piece, for producers that take it.
  const std::optional<dnnl::memory::format_tag> whole_tag = ActivationTag(p_.slots[static_cast<size_t>(whole)].md);
  const dnnl::memory::desc dense = whole_tag ? dnnl::memory::desc(ToDnnl(dims), natural.data_type(), *whole_tag)
                                             : dnnl::memory::desc();
  if (dense.get_size() > 0 && SameBytesAs(dense, sub)) {
    const int view = ViewMd(whole, dense, dims);
    p_.slots[static_cast<size_t>(view)].alias_bytes =
        sub.data.offset0 * static_cast<int64_t>(dnnl::memory::data_type_size(sub.data_type()));
    value_slot_[v] = view;
    return ConcatPart{view, dense};
  }
  const int view = ViewMd(whole, sub, dims);
  value_slot_[v] = view;
  return ConcatPart{view, sub};
}

int Compiler::CopyTo(int slot, const dnnl::memory::desc& md) {
  const Slot& s = p_.slots[static_cast<size_t>(slot)];
  const std::vector<int64_t> dims = s.dims;
  const std::string name = s.name;
  const float qscale = s.qscale;
  int out = NewSlot(kNoValue, md, dims);
  p_.slots[static_cast<size_t>(out)].name = name;
  if (md.data_type() == dnnl::memory::data_type::s8 || md.data_type() == dnnl::memory::data_type::u8)
    p_.slots[static_cast<size_t>(out)].qscale = qscale;
  AddReorder(slot, out, "copy " + name, "Reorder");
  return out;
}

void Compiler::AddReorder(int src, int dst, std::string name, std::string op, int node) {
  const dnnl::memory::desc& from = p_.slots[static_cast<size_t>(src)].md;
  const dnnl::memory::desc& to = p_.slots[static_cast<size_t>(dst)].md;
  auto k = std::make_unique<PrimitiveKernel>();
  // Between quantization scales: dst = src * (src scale / dst scale), a float slot's scale 1.
  const float qs = p_.slots[static_cast<size_t>(src)].qscale, qd = p_.slots[static_cast<size_t>(dst)].qscale;
  const float ratio = (qs > 0 ? qs : 1.0f) / (qd > 0 ? qd : 1.0f);
  dnnl::primitive_attr attr;
  if (ratio != 1.0f) attr.set_output_scales(0, {ratio});
  dnnl::reorder::primitive_desc pd(p_.engine, from, p_.engine, to, attr);
  k->prim = dnnl::reorder(pd);
  k->slot_args = {{DNNL_ARG_SRC, src}, {DNNL_ARG_DST, dst}};
  k->reads = {src};
  k->writes = {dst};
  k->info = {std::move(name), std::move(op), std::string("onednn:reorder ") + pd.impl_info_str(), "", 0, node};
  AddKernel(std::move(k));
}

int Compiler::View(int slot, const std::vector<int64_t>& dims) {
  const Slot& s = p_.slots[static_cast<size_t>(slot)];
  if (s.dims == dims) return slot;
  if (s.dtype != DType::kFloat32) {
    int v = NewRawSlot(kNoValue, dims, s.dtype);
    p_.slots[static_cast<size_t>(v)].alias_of = slot;
    p_.slots[static_cast<size_t>(v)].name = p_.slots[static_cast<size_t>(slot)].name;
    return v;
  }
  return ViewMd(slot, PlainMd(dims, s.has_md ? s.md.data_type() : dnnl::memory::data_type::f32), dims);
}

int Compiler::ViewMd(int slot, const dnnl::memory::desc& md, const std::vector<int64_t>& dims) {
  const std::string name = p_.slots[static_cast<size_t>(slot)].name;
  const DType dtype = p_.slots[static_cast<size_t>(slot)].dtype;
  int v = NewSlot(kNoValue, md, dims, dtype);
  p_.slots[static_cast<size_t>(v)].alias_of = slot;
  p_.slots[static_cast<size_t>(v)].name = name;
  return v;
}

int Compiler::slot_md_plain(int slot) {
  const Slot& s = p_.slots[static_cast<size_t>(slot)];
  if (IsPlain(s)) return slot;
  return InLayout(slot, PlainMd(s.dims));
}

void Compiler::AddKernel(std::unique_ptr<Kernel> k) {
  if (auto* pk = dynamic_cast<PrimitiveKernel*>(k.get())) {
    // The scratchpad each primitive needs (user mode: one buffer per context, sized for the
    // largest), through the C API: the C++ one has no query on a bare primitive.
    const_dnnl_primitive_desc_t cpd = nullptr;
    if (dnnl_primitive_get_primitive_desc(pk->prim.get(), &cpd) == dnnl_success && cpd != nullptr) {
      const dnnl_memory_desc_t* sp = dnnl_primitive_desc_query_md(cpd, dnnl_query_scratchpad_md, 0);
      if (sp != nullptr && dnnl_memory_desc_get_size(sp) > 0) {
        pk->scratchpad = dnnl::memory::desc(*sp);
        p_.scratch_bytes = std::max<int64_t>(p_.scratch_bytes, static_cast<int64_t>(dnnl_memory_desc_get_size(sp)));
      }
    }
  }
  p_.kernels.push_back(std::move(k));
}

dnnl::memory Compiler::ConstantMemory(const void* data, const dnnl::memory::desc& from, const dnnl::memory::desc& want) {
  dnnl::memory src(from, p_.engine, const_cast<void*>(data));
  dnnl::memory dst(want, p_.engine);
  dnnl::stream s(p_.engine);
  // Packing weights is build/load work, not inference: it uses every core whatever the
  // engine's thread count (it is most of a plan's load time).
  omp_set_num_threads(omp_get_num_procs());
  dnnl::reorder(src, dst).execute(s, src, dst);
  s.wait();
  omp_set_num_threads(EffectiveThreads(options_.threads));
  return dst;
}

double Compiler::TimeTactic(const std::string& key, const std::function<std::function<void()>()>& prepare) {
  TacticTimer* timer = options_.timer;
  if (std::optional<double> hit = timer->Lookup(key)) return *hit;
  const std::function<void()> run = prepare();
  StatusOr<double> ms = timer->Measure(key, [&] {
    run();
    return Status::OK();
  });
  return ms.ok() ? *ms : std::numeric_limits<double>::infinity();
}

double Compiler::TimeReorder(const dnnl::memory::desc& from, const dnnl::memory::desc& to) {
  const std::string key = "reorder " + MdKey(from) + " > " + MdKey(to) + " t" + std::to_string(p_.threads);
  return TimeTactic(key, [&] {
    dnnl::reorder::primitive_desc pd(p_.engine, from, p_.engine, to);
    return PrimitiveRunner(dnnl::reorder(pd), pd, {DNNL_ARG_FROM, DNNL_ARG_TO});
  });
}

dnnl::primitive_desc Compiler::MemoPd(const std::string& key, const std::function<dnnl::primitive_desc()>& make) {
  auto it = key.empty() ? pd_memo_.end() : pd_memo_.find(key);
  if (it != pd_memo_.end()) return it->second;
  dnnl::primitive_desc pd;
  try {
    pd = make();
  } catch (const dnnl::error&) {
    pd = dnnl::primitive_desc();
  }
  if (!key.empty()) pd_memo_.emplace(key, pd);
  return pd;
}

std::function<void()> Compiler::PrimitiveRunner(const dnnl::primitive& prim, const dnnl::primitive_desc_base& pd,
                                                const std::vector<int>& arg_ids) {
  std::unordered_map<int, dnnl::memory> args;
  for (int a : arg_ids) {
    dnnl::memory::desc md = pd.query_md(dnnl::query::exec_arg_md, a);
    dnnl::memory m(md, p_.engine);
    std::memset(m.get_data_handle(), 0, md.get_size());
    args[a] = m;
  }
  dnnl::memory::desc sp = pd.scratchpad_desc();
  if (sp.get_size() > 0) args[DNNL_ARG_SCRATCHPAD] = dnnl::memory(sp, p_.engine);
  auto stream = std::make_shared<dnnl::stream>(p_.engine);
  return [prim, args = std::move(args), stream] {
    prim.execute(*stream, args);
    stream->wait();
  };
}

Status Compiler::LowerNode(NodeId id) {
  const Node& n = graph().node(id);
  using Lower = StatusOr<bool> (*)(Compiler&, NodeId);
  static const Lower kLowerings[] = {&LowerConv, &LowerMatMul, &LowerPool, &LowerConcat, &LowerNormSoftmax,
                                     &LowerElementwise, &LowerView, &LowerTranspose, &LowerSlice, &LowerSplit,
                                     &LowerConvTranspose, &LowerResize, &LowerResizeKiln, &LowerGather, &LowerPad, &LowerStridedCopy, &LowerCompare, &LowerScatter};
  static const Lower kKilnLowerings[] = {&LowerAttention};
  const bool onnx = n.domain.empty() || n.domain == "ai.onnx";
  if (onnx || n.domain == "kiln") {
    for (Lower f : onnx ? std::vector<Lower>(std::begin(kLowerings), std::end(kLowerings))
                        : std::vector<Lower>(std::begin(kKilnLowerings), std::end(kKilnLowerings))) {
      StatusOr<bool> r = false;
      try {
        r = f(*this, id);
      } catch (const dnnl::error& e) {
        r = false;  // oneDNN has no implementation for this case: use the reference kernel
      }
      if (!r.ok()) return r.status().WithPrefix(StrCat("node ", n.DisplayName(id)));
      if (*r) return Status::OK();
    }
  }
  Status st = LowerReference(*this, id);
  if (!st.ok()) return st.WithPrefix(StrCat("node ", n.DisplayName(id)));
  return st;
}

Status Compiler::Run() {
  omp_set_num_threads(EffectiveThreads(options_.threads));
  p_.threads = options_.threads;
  const Graph& g = graph();
  for (ValueId v : g.inputs()) {
    const Value& val = g.value(v);
    if (val.constant) continue;
    int s = NewRawSlot(v, val.type.shape.Sizes(), val.type.dtype);
    p_.slots[static_cast<size_t>(s)].kind = Slot::Kind::kInput;
    p_.slots[static_cast<size_t>(s)].input_index = static_cast<int>(p_.input_slots.size());
    p_.input_slots.push_back(s);
  }
  KILN_ASSIGN_OR_RETURN(std::vector<NodeId> order, g.TopologicalOrder());
  lowered_.assign(static_cast<size_t>(g.num_nodes()), false);
  for (NodeId id : order) {
    KILN_RETURN_IF_ERROR(LowerNode(id));
    lowered_[static_cast<size_t>(id)] = true;
  }
  for (ValueId v : g.outputs()) {
    if (!value_slot_.count(v) && !g.value(v).constant)
      return Internal("graph output '", g.value(v).name, "' is not computed by any layer");
    p_.output_slots.push_back(Plain(SlotOf(v)));
  }
  KILN_RETURN_IF_ERROR(PlanArena());
  for (const auto& k : p_.kernels) p_.step_list.push_back(k->info);
  return Status::OK();
}

// Arena offsets (base/arena.h) for the roots over their [first write, last read] steps.
Status Compiler::PlanArena() {
  const int n = static_cast<int>(p_.slots.size());
  const int end = static_cast<int>(p_.kernels.size());
  std::vector<int> first(static_cast<size_t>(n), end + 1), last(static_cast<size_t>(n), -1);
  for (int k = 0; k < end; ++k) {
    for (int s : p_.kernels[static_cast<size_t>(k)]->writes) {
      int r = p_.Root(s);
      first[static_cast<size_t>(r)] = std::min(first[static_cast<size_t>(r)], k);
      last[static_cast<size_t>(r)] = std::max(last[static_cast<size_t>(r)], k);
    }
    for (int s : p_.kernels[static_cast<size_t>(k)]->reads) {
      int r = p_.Root(s);
      last[static_cast<size_t>(r)] = std::max(last[static_cast<size_t>(r)], k);
      first[static_cast<size_t>(r)] = std::min(first[static_cast<size_t>(r)], k);
    }
  }
  for (int s : p_.output_slots) last[static_cast<size_t>(p_.Root(s))] = end;
  std::vector<int> roots;
  for (int s = 0; s < n; ++s)
    if (p_.slots[static_cast<size_t>(s)].alias_of < 0 && p_.slots[static_cast<size_t>(s)].kind == Slot::Kind::kArena &&
        last[static_cast<size_t>(s)] >= 0)
      roots.push_back(s);
  std::vector<ArenaBlock> blocks;
  for (int s : roots) blocks.push_back({p_.slots[static_cast<size_t>(s)].bytes, first[static_cast<size_t>(s)], last[static_cast<size_t>(s)]});
  // A plan's placement of these same buffers (the builder's, stored with the plan): used as
  // it is when every buffer matches and no two alive together share bytes.
  if (const BackendArena* planned = options_.arena; planned != nullptr && planned->offsets.size() == blocks.size()) {
    std::vector<ArenaBlock> placed = blocks;
    bool fits = true;
    for (size_t i = 0; i < placed.size() && fits; ++i) {
      placed[i].offset = planned->offsets[i];
      fits = planned->sizes[i] == placed[i].bytes && placed[i].offset >= 0 &&
             placed[i].offset <= planned->bytes - placed[i].bytes;
    }
    if (fits && !FindArenaOverlap(placed)) {
      for (size_t i = 0; i < roots.size(); ++i) p_.slots[static_cast<size_t>(roots[i])].offset = placed[i].offset;
      p_.arena_size = planned->bytes;
      p_.arena_from_plan = true;
      return Status::OK();
    }
  }
  const int64_t arena = PlaceBlocks(blocks);
  // The memory plan's verifier, on what runs: a placement bug is an error, not wrong results.
  if (auto clash = FindArenaOverlap(blocks))
    return Internal("arena plan: buffers ", roots[clash->first], " and ", roots[clash->second], " are alive together and share bytes");
  for (size_t i = 0; i < roots.size(); ++i) p_.slots[static_cast<size_t>(roots[i])].offset = blocks[i].offset;
  p_.arena_size = arena;
  return Status::OK();
}

// ---- public surface ----

Status CheckPrecision(const std::string& precision) {
  if (precision == "fp32") return Status::OK();
  if (precision == "bf16") {
    const dnnl::cpu_isa isa = dnnl::get_effective_cpu_isa();
    if (isa == dnnl::cpu_isa::avx512_core_bf16 || isa == dnnl::cpu_isa::avx512_core_amx) return Status::OK();
    return InvalidArgument("precision bf16 needs a CPU with AVX512-BF16 or AMX; this one's best ISA for oneDNN is ",
                           static_cast<int>(isa), " (see ONEDNN_VERBOSE)");
  }
  if (precision == "int8") {
    // oneDNN's JIT INT8 convolutions: AVX2 and up (VNNI/AMX make them fast).
    const dnnl::cpu_isa isa = dnnl::get_effective_cpu_isa();
    if (isa == dnnl::cpu_isa::sse41 || isa == dnnl::cpu_isa::avx)
      return InvalidArgument("precision int8 needs a CPU with AVX2 or better");
    return Status::OK();
  }
  if (precision == "fp16")
    return Unimplemented("precision fp16: the CPU backend has no FP16 kernels (oneDNN 2.6 offers none for this CPU, "
                         "which lacks AVX512-FP16); use bf16");
  return InvalidArgument("unknown precision '", precision, "' (expected fp32, bf16, int8 or fp16)");
}

std::shared_ptr<const Graph> ProgramGraph(const Program& program) { return program.source; }

int EffectiveThreads(int threads) { return threads > 0 ? threads : omp_get_num_procs(); }

Status CheckSupported(const Graph& g) {
  for (int n = 0; n < g.num_nodes(); ++n) {
    const Node& node = g.node(n);
    if (node.dead) continue;
    for (const auto& [name, a] : node.attrs.all())
      if ((a.type == Attr::Type::kGraph && name != kEpilogueAttr) || a.type == Attr::Type::kGraphs)
        return Unimplemented("node ", node.DisplayName(n), " has a subgraph (control flow)");
    for (ValueId v : node.outputs) {
      if (v == kNoValue) continue;
      const TypeInfo& t = g.value(v).type;
      if (!t.is_tensor() || t.dtype == DType::kUndefined || t.dtype == DType::kString || !t.shape.IsStatic())
        return Unimplemented("value '", g.value(v).name, "' of type ", t.ToString(), " has no static tensor shape");
    }
  }
  for (ValueId v : g.inputs()) {
    const TypeInfo& t = g.value(v).type;
    if (!t.is_tensor() || t.dtype == DType::kString || !t.shape.IsStatic())
      return Unimplemented("graph input '", g.value(v).name, "' has no static tensor shape");
  }
  for (ValueId v : g.outputs())
    if (!g.value(v).type.is_tensor() || g.value(v).type.dtype == DType::kString)
      return Unimplemented("graph output '", g.value(v).name, "' is not a numeric tensor");
  return Status::OK();
}

namespace {

StatusOr<std::shared_ptr<const Program>> CompileSeeded(const std::shared_ptr<const Graph>& graph,
                                                       const CompileOptions& options, ChainSeed seed) {
  auto p = std::make_shared<Program>();
  p->source = graph;
  Compiler c(*p, options, seed);
  try {
    KILN_RETURN_IF_ERROR(c.Run());
  } catch (const dnnl::error& e) {
    return Internal("oneDNN: ", e.what());
  }
  for (StepInfo& s : p->step_list)
    if (s.note.empty() && s.impl != "ref" && IsReferenceImpl(s.impl))
      s.note = "oneDNN has only its reference implementation for this layout / post-op combination";
  if (options.strict) {
    const std::vector<std::string> slow = SlowSteps(*p);
    if (!slow.empty()) {
      std::string list;
      for (const std::string& s : slow) list += "\n  " + s;
      return FailedPrecondition(slow.size(), " step(s) would run on a reference implementation (strict mode):", list);
    }
  }
  return std::shared_ptr<const Program>(std::move(p));
}

// The program's run time on zeroed inputs, through the builder's timer (cached by `key`).
StatusOr<double> TimeProgram(const std::shared_ptr<const Program>& p, const std::string& key, TacticTimer& timer) {
  std::vector<Tensor> zeros;
  std::vector<const Tensor*> ins;
  for (ValueId v : p->source->inputs()) {
    const Value& val = p->source->value(v);
    if (val.constant) continue;
    zeros.emplace_back(val.type.dtype, val.type.shape.Sizes());
    if (zeros.back().nbytes() > 0) std::memset(zeros.back().raw_data(), 0, zeros.back().nbytes());
  }
  for (const Tensor& t : zeros) ins.push_back(&t);
  Context ctx(p);
  std::vector<Tensor> outs;
  // Whole programs differ by a few percent: more runs than a kernel candidate gets.
  return timer.Measure(key, [&] { return ctx.RunTensors(ins, &outs); }, TimingBudget{5, 15, 1000});
}

// What the whole-program timing keys on: the ops and shapes (the timing cache's problem).
std::string ProgramKey(const Graph& g, const CompileOptions& options) {
  return StrCat("program ", ProblemFingerprint(g), " t", options.threads, " ", options.precision);
}

}  // namespace

// Layouts are chosen per layer (each convolution's timed candidates, reorders priced in),
// which cannot see that a chain is better off in another layout from its start: a
// first-layer kernel in channels-last commits the chain to it. When the builder times
// (a timer), the program is also compiled with its chains seeded channel-blocked and the
// faster whole program wins (timed on zeroed inputs, cached like a tactic). A plan records
// the tactics ("direct@blocked" where a chain started blocked), so loading replays the choice.
StatusOr<std::shared_ptr<const Program>> Compile(const std::shared_ptr<const Graph>& graph, const CompileOptions& options) {
  KILN_RETURN_IF_ERROR(CheckSupported(*graph));
  KILN_RETURN_IF_ERROR(CheckPrecision(options.precision));
  KILN_ASSIGN_OR_RETURN(std::shared_ptr<const Program> any, CompileSeeded(graph, options, ChainSeed::kAny));
  if (options.timer == nullptr || options.precision != "fp32") return any;
  bool choice = false;
  for (const StepInfo& s : any->step_list) choice = choice || (s.op == "Conv" && !s.tactic.empty());
  if (!choice) return any;  // no convolution had a choice: nothing a seed changes
  auto blocked = CompileSeeded(graph, options, ChainSeed::kBlocked);
  if (!blocked.ok()) return any;
  bool differs = (*blocked)->step_list.size() != any->step_list.size();
  for (size_t i = 0; !differs && i < any->step_list.size(); ++i)
    differs = any->step_list[i].tactic != (*blocked)->step_list[i].tactic ||
              any->step_list[i].impl != (*blocked)->step_list[i].impl;
  if (!differs) return any;
  const std::string key = ProgramKey(*graph, options);
  KILN_ASSIGN_OR_RETURN(double any_ms, TimeProgram(any, key + " seed=any", *options.timer));
  KILN_ASSIGN_OR_RETURN(double blocked_ms, TimeProgram(*blocked, key + " seed=blocked", *options.timer));
  // Within 2 % (this machine's timing noise) the program with fewer layout copies wins
  // (less memory traffic, and less that depends on one CPU's timings); then the default.
  auto copies = [](const Program& p) {
    int n = 0;
    for (const StepInfo& st : p.step_list) n += st.op == "Reorder" || st.op == "Concat";
    return n;
  };
  const int any_copies = copies(*any), blocked_copies = copies(**blocked);
  if (blocked_ms < 0.98 * any_ms) return *blocked;
  if (blocked_ms <= 1.02 * any_ms && blocked_copies < any_copies) return *blocked;
  return any;
}

const std::vector<StepInfo>& Steps(const Program& p) { return p.step_list; }

std::vector<std::string> SlowSteps(const Program& p) { return SlowStepLines(p.step_list); }
int64_t ArenaBytes(const Program& p) { return p.arena_size; }

BackendArena ArenaLayout(const Program& p) {
  BackendArena a;
  a.bytes = p.arena_size;
  for (const Slot& s : p.slots)
    if (s.alias_of < 0 && s.kind == Slot::Kind::kArena && s.offset >= 0) {
      a.offsets.push_back(s.offset);
      a.sizes.push_back(s.bytes);
    }
  return a;
}

bool ArenaFromPlan(const Program& p) { return p.arena_from_plan; }

Status OutputTypes(const Program& p, std::vector<Tensor>* types) {
  types->clear();
  for (int s : p.output_slots) {
    const Slot& slot = p.slots[static_cast<size_t>(s)];
    types->push_back(Tensor::FromExternal(slot.dtype, slot.dims, nullptr, nullptr));
  }
  return Status::OK();
}

}  // namespace kiln::cpu
