// The CPU backend's compiler driver, arena planner and executor (see cpu_backend.h).
#include <omp.h>

#include <algorithm>
#include <chrono>
#include <cstddef>
#include <cstdio>
#include <type_traits>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <functional>
#include <new>
#include <numeric>
#include <sstream>
#include <unordered_map>

#include "backends/cpu/program.h"

#include <sys/stat.h>

#include <cerrno>
#include <cmath>

#include <sys/mman.h>

#include "base/arena.h"
#include "base/file.h"
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

// ---- PrimitiveKernel ----

void PrimitiveKernel::Bind(ExecContext& ctx, int index) const {
  auto& args = ctx.args[static_cast<size_t>(index)];
  auto& owned = ctx.owned[static_cast<size_t>(index)];
  for (const auto& [arg, slot] : slot_args) args.push_back({arg, ctx.mems[static_cast<size_t>(slot)].get()});
  for (const auto& [arg, mem] : const_args) args.push_back({arg, mem.get()});
  if (scratchpad) {
    owned.emplace_back(*scratchpad, ctx.program->engine, ctx.scratch);
    args.push_back({DNNL_ARG_SCRATCHPAD, owned.back().get()});
  }
}

Status PrimitiveKernel::Execute(ExecContext& ctx, int index) const {
  const auto& args = ctx.args[static_cast<size_t>(index)];
  dnnl_status_t st = dnnl_primitive_execute(prim.get(), ctx.stream.get(), static_cast<int>(args.size()), args.data());
  if (st != dnnl_success) return Internal("oneDNN primitive failed with status ", static_cast<int>(st));
  return Status::OK();
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
    const dnnl::memory::desc whole_md = [&]() -> dnnl::memory::desc {
      const dnnl::memory::dims d(out_dims.begin(), out_dims.end());
      using tag = dnnl::memory::format_tag;
      std::vector<tag> cands;
      if (rank == 4) cands = {tag::nchw, tag::nhwc, tag::nChw16c, tag::nChw8c};
      if (rank == 3) cands = {tag::ncw, tag::nwc, tag::nCw16c, tag::nCw8c};
      if (rank == 2) cands = {tag::nc};
      const dnnl::memory::dims pd(natural.data.dims, natural.data.dims + rank);
      for (tag t : cands)
        if (dnnl::memory::desc(pd, natural.data_type(), t) == natural) return dnnl::memory::desc(d, natural.data_type(), t);
      return dnnl::memory::desc();
    }();
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

namespace {
// The data type and format kind of a descriptor's raw bytes (from a file), as integers:
// the file may hold values no enumerator has.
std::pair<std::underlying_type_t<dnnl_data_type_t>, std::underlying_type_t<dnnl_format_kind_t>> RawKinds(const void* md) {
  std::underlying_type_t<dnnl_data_type_t> data_type;
  std::underlying_type_t<dnnl_format_kind_t> format_kind;
  static_assert(sizeof data_type == sizeof(dnnl_data_type_t) && sizeof format_kind == sizeof(dnnl_format_kind_t));
  std::memcpy(&data_type, static_cast<const char*>(md) + offsetof(dnnl_memory_desc_t, data_type), sizeof data_type);
  std::memcpy(&format_kind, static_cast<const char*>(md) + offsetof(dnnl_memory_desc_t, format_kind), sizeof format_kind);
  return {data_type, format_kind};
}
// A node's uint8 tensor attribute, or nullptr.
const Tensor* ByteAttr(const Node& node, const char* name) {
  const Attr* a = node.attrs.find(name);
  return a != nullptr && a->type == Attr::Type::kTensor && a->t.dtype() == DType::kUInt8 && a->t.rank() == 1 ? &a->t
                                                                                                            : nullptr;
}
}  // namespace

std::optional<dnnl::memory> Compiler::KernelCopy(const Node& node, const dnnl::memory::desc& want) {
  // Only compared with what this CPU's kernel asks for, never handed to oneDNN as a
  // descriptor, so a damaged one can only mean a repack.
  const Tensor* kmd = ByteAttr(node, kKernelMdAttr);
  const Tensor* kw = ByteAttr(node, kKernelWeightsAttr);
  if (kmd != nullptr && kw != nullptr && kmd->nbytes() == sizeof(dnnl_memory_desc_t) &&
      std::memcmp(kmd->raw_data(), &want.data, sizeof(dnnl_memory_desc_t)) == 0 &&
      kw->nbytes() == want.get_size() && reinterpret_cast<uintptr_t>(kw->raw_data()) % 64 == 0) {
    p_.weights_in_place_bytes += static_cast<int64_t>(want.get_size());
    return dnnl::memory(want, p_.engine, const_cast<void*>(kw->raw_data()));
  }
  return std::nullopt;
}

dnnl::memory Compiler::WeightsMemory(const Node& node, const void* data, const dnnl::memory::desc& from,
                                     const dnnl::memory::desc& want) {
  const int64_t bytes = static_cast<int64_t>(want.get_size());
  if (std::optional<dnnl::memory> kc = KernelCopy(node, want)) return *kc;
  if (from == want) {
    p_.weights_in_place_bytes += bytes;
    return dnnl::memory(want, p_.engine, const_cast<void*>(data));
  }
  p_.weights_repacked_bytes += bytes;
  return ConstantMemory(data, from, want);
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
  for (const auto& k : p_.kernels) p_.steps.push_back(k->info);
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
  const int64_t arena = PlaceBlocks(blocks);
  for (size_t i = 0; i < roots.size(); ++i) p_.slots[static_cast<size_t>(roots[i])].offset = blocks[i].offset;
  p_.arena_bytes = arena;
  return Status::OK();
}

// ---- public surface ----

Status CheckPrecision(const std::string& precision) {
  if (precision == "fp32") return Status::OK();
  if (precision == "bf16") {
    const dnnl::cpu_isa isa = dnnl::get_effective_cpu_isa();
    if (isa == dnnl::cpu_isa::avx512_core_bf16 || isa == dnnl::cpu_isa::avx512_core_amx) return Status::OK();
    return InvalidArgument("--precision bf16 needs a CPU with AVX512-BF16 or AMX; this one's best ISA for oneDNN is ",
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
    return Unimplemented("--precision fp16: the CPU backend has no FP16 kernels (oneDNN 2.6 offers none for this CPU, "
                         "which lacks AVX512-FP16); use bf16");
  return InvalidArgument("unknown precision '", precision, "' (expected fp32, bf16, int8 or fp16)");
}

std::shared_ptr<const Graph> ProgramGraph(const Program& program) { return program.graph; }

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

StatusOr<std::shared_ptr<const Program>> Compile(std::shared_ptr<const Graph> graph, const CompileOptions& options) {
  KILN_RETURN_IF_ERROR(CheckSupported(*graph));
  KILN_RETURN_IF_ERROR(CheckPrecision(options.precision));
  auto p = std::make_shared<Program>();
  p->graph = std::move(graph);
  Compiler c(*p, options);
  try {
    KILN_RETURN_IF_ERROR(c.Run());
  } catch (const dnnl::error& e) {
    return Internal("oneDNN: ", e.what());
  }
  for (StepInfo& s : p->steps)
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

const std::vector<StepInfo>& Steps(const Program& p) { return p.steps; }

std::vector<std::string> SlowSteps(const Program& p) {
  std::vector<std::string> out;
  for (const StepInfo& s : p.steps)
    if (IsSlowStep(s)) out.push_back(StrCat(s.name, " (", s.op, "): ", s.impl, s.note.empty() ? "" : " - ", s.note));
  return out;
}
int64_t ArenaBytes(const Program& p) { return p.arena_bytes; }

StatusOr<PackedSource> PackedWeightsSource(const Node& node, const Tensor& w) {
  const Attr* a = node.attrs.find(kPackedMdAttr);
  if (a == nullptr || a->type != Attr::Type::kTensor || a->t.dtype() != DType::kUInt8 ||
      a->t.nbytes() != sizeof(dnnl_memory_desc_t))
    return InvalidArgument("attribute ", kPackedMdAttr, " is not a weights descriptor");
  // Padded layouts keep their bytes in kiln.packed_weights (the constant names their start).
  const Tensor* blob = nullptr;
  if (node.attrs.has(kPackedWeightsAttr)) {
    blob = ByteAttr(node, kPackedWeightsAttr);
    if (blob == nullptr) return InvalidArgument("attribute ", kPackedWeightsAttr, " is not a byte vector");
  }
  dnnl_memory_desc_t d;
  std::memcpy(&d, a->t.raw_data(), sizeof d);
  const auto [data_type, format_kind] = RawKinds(a->t.raw_data());
  if (w.dtype() != DType::kFloat32 || data_type != dnnl_f32 || format_kind != dnnl_blocked || d.offset0 != 0 ||
      d.extra.flags != 0 || d.ndims < 1 || d.ndims > DNNL_MAX_NDIMS)
    return InvalidArgument("attribute ", kPackedMdAttr, ": not a dense f32 blocked layout");
  // dims: the constant's, or its grouped split [g, O/g, I, k...]; padded only with a blob.
  const int nd = d.ndims, wr = w.rank();
  bool dims_ok = nd == wr || nd == wr + 1;
  for (int i = 0; dims_ok && i < nd; ++i)
    dims_ok = d.dims[i] > 0 && d.padded_offsets[i] == 0 &&
              (blob != nullptr ? d.padded_dims[i] >= d.dims[i] && d.padded_dims[i] - d.dims[i] <= 4096
                               : d.padded_dims[i] == d.dims[i]);
  if (dims_ok && nd == wr) {
    for (int i = 0; i < nd; ++i) dims_ok = dims_ok && d.dims[i] == w.dim(i);
  } else if (dims_ok) {
    int64_t groups_times_out = 0;
    dims_ok = !__builtin_mul_overflow(d.dims[0], d.dims[1], &groups_times_out) && groups_times_out == w.dim(0);
    for (int i = 2; i < nd; ++i) dims_ok = dims_ok && d.dims[i] == w.dim(i - 1);
  }
  if (!dims_ok) return InvalidArgument("attribute ", kPackedMdAttr, ": dims do not match the weights ", w.ShapeString());
  // Dense: inner blocks divide their (padded) dims; outer strides, sorted, multiply up exactly.
  const auto& b = d.format_desc.blocking;
  if (b.inner_nblks < 0 || b.inner_nblks > DNNL_MAX_NDIMS) return InvalidArgument("attribute ", kPackedMdAttr, ": bad blocking");
  int64_t inner = 1;
  std::vector<int64_t> outer(d.padded_dims, d.padded_dims + nd);
  for (int i = 0; i < b.inner_nblks; ++i) {
    if (b.inner_idxs[i] < 0 || b.inner_idxs[i] >= nd) return InvalidArgument("attribute ", kPackedMdAttr, ": bad blocking");
    const int idx = static_cast<int>(b.inner_idxs[i]);
    if (b.inner_blks[i] <= 0 || outer[static_cast<size_t>(idx)] % b.inner_blks[i] != 0 ||
        __builtin_mul_overflow(inner, b.inner_blks[i], &inner))
      return InvalidArgument("attribute ", kPackedMdAttr, ": bad blocking");
    outer[static_cast<size_t>(idx)] /= b.inner_blks[i];
  }
  for (int i = 0; i < nd; ++i)
    if (b.strides[i] < 0 || b.strides[i] > (int64_t{1} << 40)) return InvalidArgument("attribute ", kPackedMdAttr, ": bad strides");
  std::vector<int> order(static_cast<size_t>(nd));
  for (int i = 0; i < nd; ++i) order[static_cast<size_t>(i)] = i;
  std::sort(order.begin(), order.end(), [&](int x, int y) { return b.strides[x] < b.strides[y]; });
  int64_t expect = inner;
  for (int i : order) {
    if (outer[static_cast<size_t>(i)] == 1) continue;  // its stride is never used
    if (b.strides[i] != expect || __builtin_mul_overflow(expect, outer[static_cast<size_t>(i)], &expect))
      return InvalidArgument("attribute ", kPackedMdAttr, ": not a dense layout");
  }
  const size_t have = blob != nullptr ? blob->nbytes() : w.nbytes();
  if (expect > (int64_t{1} << 60) || expect * static_cast<int64_t>(sizeof(float)) != static_cast<int64_t>(have))
    return InvalidArgument("attribute ", kPackedMdAttr, ": its size is not the weights' ", have, " bytes");
  // Rebuilt from the checked fields only: nothing else of the file's bytes reaches oneDNN.
  dnnl_memory_desc_t clean;
  std::memset(&clean, 0, sizeof clean);
  clean.ndims = nd;
  clean.data_type = dnnl_f32;
  clean.format_kind = dnnl_blocked;
  for (int i = 0; i < nd; ++i) {
    clean.dims[i] = d.dims[i];
    clean.padded_dims[i] = d.padded_dims[i];
    clean.format_desc.blocking.strides[i] = b.strides[i];
  }
  clean.format_desc.blocking.inner_nblks = b.inner_nblks;
  for (int i = 0; i < b.inner_nblks; ++i) {
    clean.format_desc.blocking.inner_blks[i] = b.inner_blks[i];
    clean.format_desc.blocking.inner_idxs[i] = b.inner_idxs[i];
  }
  return PackedSource{dnnl::memory::desc(clean), blob != nullptr ? blob->raw_data() : w.raw_data()};
}

size_t PackedDescriptorBytes() { return sizeof(dnnl_memory_desc_t); }

namespace {
// oneDNN's name for a blocked layout: dims outermost first (upper case when blocked), then
// the inner blocks ("Acdb16a": O blocks of 16 outermost, then H, W, I, the 16 O inside).
std::string LayoutTag(const dnnl_memory_desc_t& d) {
  const auto& b = d.format_desc.blocking;
  std::vector<int> order(static_cast<size_t>(d.ndims));
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](int x, int y) { return b.strides[x] > b.strides[y]; });
  std::string tag;
  for (int i : order) {
    bool blocked = false;
    for (int k = 0; k < b.inner_nblks; ++k) blocked = blocked || b.inner_idxs[k] == i;
    tag += static_cast<char>((blocked ? 'A' : 'a') + i);
  }
  for (int k = 0; k < b.inner_nblks; ++k) tag += StrCat(b.inner_blks[k], static_cast<char>('a' + b.inner_idxs[k]));
  return tag;
}
}  // namespace

std::string DescribePlanWeights(const Node& node, const Tensor& w) {
  if (node.attrs.has(kPackedMdAttr)) {
    auto src = PackedWeightsSource(node, w);
    if (!src.ok()) return "packed (invalid descriptor)";
    return StrCat("packed ", LayoutTag(src->md.data), node.attrs.has(kPackedWeightsAttr) ? " (padded)" : "");
  }
  const Tensor* kmd = ByteAttr(node, kKernelMdAttr);
  const Tensor* kw = ByteAttr(node, kKernelWeightsAttr);
  if (kmd == nullptr || kw == nullptr) return "";
  if (kmd->nbytes() != sizeof(dnnl_memory_desc_t)) return "kernel copy (invalid descriptor)";
  const auto [data_type, format_kind] = RawKinds(kmd->raw_data());
  const char* kind = format_kind == dnnl_format_kind_wino ? "winograd"
                     : data_type == dnnl_bf16             ? "bf16"
                     : format_kind == dnnl_blocked        ? "blocked"
                                                          : "other";
  return StrCat("kernel copy: ", kind);
}

StatusOr<Tensor> RowMajorWeights(const Node& node, const Tensor& w) {
  if (!node.attrs.has(kPackedMdAttr)) return w;  // (a kernel copy leaves the constant row-major)
  KILN_ASSIGN_OR_RETURN(PackedSource src, PackedWeightsSource(node, w));
  const dnnl::memory::dims d = src.md.dims();
  Tensor out(w.dtype(), w.dims());
  dnnl::engine eng(dnnl::engine::kind::cpu, 0);
  dnnl::memory from(src.md, eng, const_cast<void*>(src.data));
  dnnl::memory to(PlainMd(std::vector<int64_t>(d.begin(), d.end())), eng, out.raw_data());
  dnnl::stream st(eng);
  dnnl::reorder(from, to).execute(st, from, to);
  st.wait();
  return out;
}

Status UnpackWeights(Graph& g) {
  for (NodeId n = 0; n < g.num_nodes(); ++n) {
    Node& node = g.node(n);
    if (node.dead) continue;
    node.attrs.erase(kKernelMdAttr);
    node.attrs.erase(kKernelWeightsAttr);
    if (!node.attrs.has(kPackedMdAttr)) continue;
    const Node main = MainPartOf(node);
    if (main.inputs.size() < 2 || main.inputs[1] == kNoValue || !g.value(main.inputs[1]).constant)
      return InvalidArgument("node ", node.DisplayName(n), ": packed weights without a weight constant");
    Value& wv = g.value(main.inputs[1]);
    try {
      KILN_ASSIGN_OR_RETURN(Tensor plain, RowMajorWeights(node, *wv.constant));
      wv.constant = std::move(plain);
    } catch (const dnnl::error& e) {
      return InvalidArgument("node ", node.DisplayName(n), ": packed weights: ", e.what());
    }
    node.attrs.erase(kPackedMdAttr);
    node.attrs.erase(kPackedWeightsAttr);
  }
  return Status::OK();
}

std::vector<PackedWeights> PackedWeightList(const Program& p) {
  std::vector<PackedWeights> out;
  for (const auto& k : p.kernels) {
    const auto* pk = dynamic_cast<const PrimitiveKernel*>(k.get());
    if (pk == nullptr || pk->packed_value == kNoValue || !pk->packed) continue;
    const dnnl::memory::desc md = pk->packed.get_desc();
    std::vector<uint8_t> bytes(sizeof(dnnl_memory_desc_t));
    std::memcpy(bytes.data(), &md.data, bytes.size());
    out.push_back({pk->info.node, pk->packed_value, std::move(bytes), pk->packed.get_data_handle(), md.get_size(),
                   pk->packed_relayout});
  }
  return out;
}

WeightsPacking WeightsPackingOf(const Program& p) { return {p.weights_in_place_bytes, p.weights_repacked_bytes}; }

Status OutputTypes(const Program& p, std::vector<Tensor>* types) {
  types->clear();
  for (int s : p.output_slots) {
    const Slot& slot = p.slots[static_cast<size_t>(s)];
    types->push_back(Tensor::FromExternal(slot.dtype, slot.dims, nullptr, nullptr));
  }
  return Status::OK();
}

struct Context::State {
  ExecContext ctx;
  std::shared_ptr<char> arena, scratch;
  std::vector<std::vector<int>> input_users;  // per input: slots rooted at it
  // Per output: the slots rooted at its buffer when a caller buffer can replace that buffer
  // (an arena root of exactly the output's bytes, row-major, no other output in it); empty:
  // bound outputs are copied.
  std::vector<std::vector<int>> output_users;
  std::string error;  // the arena could not be allocated: every Run() fails with this
};

namespace {
// 64-byte aligned; throws std::bad_alloc when the memory is not there.
std::shared_ptr<char> AlignedBuffer(int64_t bytes) {
  const size_t size = (static_cast<size_t>(std::max<int64_t>(bytes, 64)) + 63) / 64 * 64;
  // Large buffers (activation arenas, scratchpads) on transparent huge pages where the
  // kernel offers them (madvise mode): a first run takes a page fault per 2 MiB instead of
  // per 4 KiB — thousands fewer on a large model, and each is expensive under
  // virtualization.
  constexpr size_t kHuge = size_t{2} << 20;
  if (size >= kHuge) {
    const size_t mapped = (size + kHuge - 1) / kHuge * kHuge + kHuge;  // room to align to 2 MiB
    void* m = ::mmap(nullptr, mapped, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (m == MAP_FAILED) throw std::bad_alloc();
    char* base = static_cast<char*>(m);
    char* aligned = reinterpret_cast<char*>((reinterpret_cast<uintptr_t>(base) + kHuge - 1) / kHuge * kHuge);
    ::madvise(aligned, mapped - kHuge, MADV_HUGEPAGE);  // (aligned - base < kHuge: it fits)
    return std::shared_ptr<char>(aligned, [base, mapped](char*) { ::munmap(base, mapped); });
  }
  void* p = std::aligned_alloc(64, size);
  if (p == nullptr) throw std::bad_alloc();
  return std::shared_ptr<char>(static_cast<char*>(p), [](char* q) { std::free(q); });
}
}  // namespace

Context::Context(std::shared_ptr<const Program> program) : program_(std::move(program)), state_(std::make_unique<State>()) {
  const Program& p = *program_;
  ExecContext& c = state_->ctx;
  c.program = &p;
  c.stream = dnnl::stream(p.engine);
  try {
    state_->arena = AlignedBuffer(p.arena_bytes);
    state_->scratch = AlignedBuffer(p.scratch_bytes);
  } catch (const std::bad_alloc&) {
    state_->error = StrCat("cannot allocate the activation arena (", p.arena_bytes, " bytes) and scratchpad (",
                           p.scratch_bytes, " bytes) of this engine");
    return;
  }
  c.scratch = state_->scratch.get();
  const size_t n = p.slots.size();
  c.ptrs.assign(n, nullptr);
  c.mems.resize(n);
  state_->input_users.resize(p.input_slots.size());
  for (size_t s = 0; s < n; ++s) {
    const Slot& root = p.slots[static_cast<size_t>(p.Root(static_cast<int>(s)))];
    char* ptr = nullptr;
    if (root.kind == Slot::Kind::kArena) ptr = state_->arena.get() + std::max<int64_t>(root.offset, 0);
    if (root.kind == Slot::Kind::kConstant) ptr = static_cast<char*>(const_cast<void*>(root.constant));
    if (root.kind == Slot::Kind::kInput) state_->input_users[static_cast<size_t>(root.input_index)].push_back(static_cast<int>(s));
    c.ptrs[s] = ptr;
    if (p.slots[s].has_md) c.mems[s] = dnnl::memory(p.slots[s].md, p.engine, ptr != nullptr ? ptr : state_->arena.get());
  }
  state_->output_users.resize(p.output_slots.size());
  for (size_t o = 0; o < p.output_slots.size(); ++o) {
    const int s = p.output_slots[o];
    const int r = p.Root(s);
    const Slot& root = p.slots[static_cast<size_t>(r)];
    const Slot& out = p.slots[static_cast<size_t>(s)];
    bool ok = root.kind == Slot::Kind::kArena && root.bytes == out.bytes && IsPlain(out) &&
              (!out.has_md || out.md.data.offset0 == 0);
    for (size_t o2 = 0; o2 < p.output_slots.size(); ++o2)
      ok = ok && (o2 == o || p.Root(p.output_slots[o2]) != r);
    if (!ok) continue;
    for (size_t t = 0; t < n; ++t)
      if (p.Root(static_cast<int>(t)) == r) state_->output_users[o].push_back(static_cast<int>(t));
  }
  c.args.resize(p.kernels.size());
  c.owned.resize(p.kernels.size());
  for (size_t k = 0; k < p.kernels.size(); ++k) p.kernels[k]->Bind(c, static_cast<int>(k));
}

Context::~Context() = default;

Status Context::Run(const std::vector<const Tensor*>& inputs, std::vector<Tensor>* outputs,
                    const std::vector<void*>* out_buffers) {
  const Program& p = *program_;
  ExecContext& c = state_->ctx;
  if (!state_->error.empty()) return InvalidArgument(state_->error);
  if (inputs.size() != p.input_slots.size()) return Internal("expected ", p.input_slots.size(), " inputs, got ", inputs.size());
  // Every run sets its thread count: OpenMP's is per calling thread and outlives a run, so
  // an engine with threads = 1 must not leave the next "all cores" engine on one thread.
  omp_set_num_threads(EffectiveThreads(p.threads));
  for (size_t i = 0; i < inputs.size(); ++i) {
    char* ptr = static_cast<char*>(const_cast<void*>(inputs[i]->raw_data()));
    for (int s : state_->input_users[i]) {
      c.ptrs[static_cast<size_t>(s)] = ptr;
      if (p.slots[static_cast<size_t>(s)].has_md) c.mems[static_cast<size_t>(s)].set_data_handle(ptr);
    }
  }
  // Bound outputs whose buffer can be the caller's: point every slot of it there for this
  // run (restored below, so that an unbound run writes to the arena again).
  auto redirect = [&](size_t o, char* ptr) {
    for (int s : state_->output_users[o]) {
      c.ptrs[static_cast<size_t>(s)] = ptr;
      if (p.slots[static_cast<size_t>(s)].has_md) c.mems[static_cast<size_t>(s)].set_data_handle(ptr);
    }
  };
  const size_t n_out = p.output_slots.size();
  std::vector<bool> direct(n_out, false);
  if (out_buffers != nullptr)
    for (size_t o = 0; o < n_out && o < out_buffers->size(); ++o)
      if ((*out_buffers)[o] != nullptr && !state_->output_users[o].empty()) {
        redirect(o, static_cast<char*>((*out_buffers)[o]));
        direct[o] = true;
      }
  struct Restore {
    std::function<void()> f;
    ~Restore() { f(); }
  } restore{[&] {
    for (size_t o = 0; o < n_out; ++o)
      if (direct[o]) redirect(o, state_->arena.get() + p.slots[static_cast<size_t>(p.Root(p.output_slots[o]))].offset);
  }};
  if (profiling_) step_ms_.assign(p.kernels.size(), 0.0);
  for (size_t k = 0; k < p.kernels.size(); ++k) {
    std::chrono::steady_clock::time_point t0;
    if (profiling_) t0 = std::chrono::steady_clock::now();
    Status st = p.kernels[k]->Execute(c, static_cast<int>(k));
    if (!st.ok()) {
      const StepInfo& info = p.kernels[k]->info;
      // "node 'gather_7' (Gather)", or "node #3 (Gather)" for an unnamed one, as at build.
      if (info.node >= 0 && info.node < p.graph->num_nodes())
        return st.WithPrefix(StrCat("node ", p.graph->node(info.node).DisplayName(info.node)));
      return st.WithPrefix(StrCat(info.name, " (", info.op, ")"));
    }
    if (profiling_) {
      c.stream.wait();
      step_ms_[k] = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
    }
  }
  c.stream.wait();
  outputs->clear();
  for (size_t o = 0; o < n_out; ++o) {
    const int s = p.output_slots[o];
    const Slot& slot = p.slots[static_cast<size_t>(s)];
    void* bound = out_buffers != nullptr && o < out_buffers->size() ? (*out_buffers)[o] : nullptr;
    if (bound != nullptr) {
      Tensor t = Tensor::FromExternal(slot.dtype, slot.dims, bound, nullptr);
      if (!direct[o] && t.nbytes() > 0) std::memcpy(bound, c.ptrs[static_cast<size_t>(s)], t.nbytes());
      outputs->push_back(std::move(t));
      continue;
    }
    Tensor t(slot.dtype, slot.dims);
    if (t.nbytes() > 0) std::memcpy(t.raw_data(), c.ptrs[static_cast<size_t>(s)], t.nbytes());
    outputs->push_back(std::move(t));
  }
  return Status::OK();
}

}  // namespace kiln::cpu
