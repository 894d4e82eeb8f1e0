// Packed weights in plans: the descriptors and kernel copies a plan stores for a layer's
// weights, checked and used in place when compiling (PackedWeightsSource, Compiler::KernelCopy),
// listed for saving (PackedWeightList), described, and turned back into row-major constants.
#include <algorithm>
#include <cstddef>
#include <cstring>
#include <numeric>
#include <type_traits>

#include "backends/cpu/program.h"
#include "ir/op_schema.h"

namespace kiln::cpu {

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
  // The byte image the plan stored against this kernel's (oneDNN zero-fills descriptors, so
  // padding compares equal; a difference would only cost a repack).
  if (kmd != nullptr && kw != nullptr && kmd->nbytes() == sizeof(dnnl_memory_desc_t) &&
      std::memcmp(  // NOLINT(bugprone-suspicious-memory-comparison)
kmd->raw_data(), &want.data, sizeof(dnnl_memory_desc_t)) == 0 &&
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

}  // namespace kiln::cpu
