// ScatterND and ScatterElements without reduction, any element type: the data copied to the
// output once, then one block copy per index tuple (ScatterND: PyTorch's slice assignment,
// `x[..., :2] = y`) or one element copy per index (ScatterElements: torchvision's
// MultiScaleRoIAlign writes each level's rois back into place so), instead of the reference
// kernels' element-by-element walk. Every index is checked before anything is written
// (ONNX allows [-n, n-1]; anything else is an error naming the node, as ORT gives).
#include <cstring>

#include "backends/cpu/lower_util.h"
#include "backends/cpu/parallel.h"
#include "ir/op_schema.h"

namespace kiln::cpu {

namespace {

int64_t IndexAt(const void* p, DType t, int64_t i) {
  return t == DType::kInt64 ? static_cast<const int64_t*>(p)[i] : static_cast<const int32_t*>(p)[i];
}

class ScatterNDKernel : public Kernel {
 public:
  int data = -1, indices = -1, updates = -1, out = -1;
  DType index_type = DType::kInt64;
  std::vector<int64_t> data_dims;  // of the indexed leading dims (k of them)
  std::vector<int64_t> strides;    // their strides in blocks
  int64_t tuples = 0;              // number of index tuples
  int64_t block_bytes = 0;         // bytes of one updated block
  int64_t data_bytes = 0;

  Status Execute(ExecContext& ctx, int) const override {
    const char* src = ctx.ptrs[static_cast<size_t>(data)];
    const void* idx = ctx.ptrs[static_cast<size_t>(indices)];
    const char* upd = ctx.ptrs[static_cast<size_t>(updates)];
    char* dst = ctx.ptrs[static_cast<size_t>(out)];
    const int64_t k = static_cast<int64_t>(data_dims.size());
    std::vector<int64_t> offsets(static_cast<size_t>(tuples));
    for (int64_t t = 0; t < tuples; ++t) {
      int64_t off = 0;
      for (int64_t j = 0; j < k; ++j) {
        int64_t v = IndexAt(idx, index_type, t * k + j);
        const int64_t n = data_dims[static_cast<size_t>(j)];
        if (v < -n || v >= n) return OutOfRange("index ", v, " of tuple ", t, " is out of range for a dim of ", n);
        if (v < 0) v += n;
        off += v * strides[static_cast<size_t>(j)];
      }
      offsets[static_cast<size_t>(t)] = off;
    }
    if (dst != src) std::memcpy(dst, src, static_cast<size_t>(data_bytes));
    // In order: a later duplicate index wins, as in the reference kernel and ORT.
    for (int64_t t = 0; t < tuples; ++t)
      std::memcpy(dst + offsets[static_cast<size_t>(t)] * block_bytes, upd + t * block_bytes, static_cast<size_t>(block_bytes));
    return Status::OK();
  }
};

class ScatterElementsKernel : public Kernel {
 public:
  int data = -1, indices = -1, updates = -1, out = -1;
  DType index_type = DType::kInt64;
  size_t esize = 0;
  int axis = 0;
  std::vector<int64_t> index_dims, out_strides;
  int64_t axis_size = 0, data_bytes = 0;

  Status Execute(ExecContext& ctx, int) const override {
    const char* src = ctx.ptrs[static_cast<size_t>(data)];
    const void* idx = ctx.ptrs[static_cast<size_t>(indices)];
    const char* upd = ctx.ptrs[static_cast<size_t>(updates)];
    char* dst = ctx.ptrs[static_cast<size_t>(out)];
    const int64_t n = Numel(index_dims);
    for (int64_t i = 0; i < n; ++i) {
      const int64_t v = IndexAt(idx, index_type, i);
      if (v < -axis_size || v >= axis_size)
        return OutOfRange("index ", v, " at position ", i, " is out of range for an axis of ", axis_size);
    }
    if (dst != src) std::memcpy(dst, src, static_cast<size_t>(data_bytes));
    const int rank = static_cast<int>(index_dims.size());
    std::vector<int64_t> coord(static_cast<size_t>(rank), 0);
    int64_t base = 0;  // output offset of `coord` without the axis term
    for (int64_t i = 0; i < n; ++i) {
      int64_t v = IndexAt(idx, index_type, i);
      if (v < 0) v += axis_size;
      std::memcpy(dst + static_cast<size_t>(base + v * out_strides[static_cast<size_t>(axis)]) * esize,
                  upd + static_cast<size_t>(i) * esize, esize);
      for (int d = rank - 1; d >= 0; --d) {  // next index position, row-major
        const size_t u = static_cast<size_t>(d);
        if (++coord[u] < index_dims[u]) {
          if (d != axis) base += out_strides[u];
          break;
        }
        if (d != axis) base -= (coord[u] - 1) * out_strides[u];
        coord[u] = 0;
      }
    }
    return Status::OK();
  }
};

std::vector<int64_t> Strides(const std::vector<int64_t>& dims) {
  std::vector<int64_t> s(dims.size(), 1);
  for (int a = static_cast<int>(dims.size()) - 2; a >= 0; --a) s[static_cast<size_t>(a)] = s[static_cast<size_t>(a) + 1] * dims[static_cast<size_t>(a) + 1];
  return s;
}

}  // namespace

StatusOr<bool> LowerScatter(Compiler& c, NodeId id) {
  const Graph& g = c.graph();
  const Node& node = g.node(id);
  const bool nd = node.op_type == "ScatterND";
  if ((!nd && node.op_type != "ScatterElements") || IsFusedNode(node) || node.inputs.size() != 3 || node.outputs.size() != 1)
    return false;
  if (const Attr* r = node.attrs.find("reduction"); r != nullptr && !(r->type == Attr::Type::kString && r->s == "none"))
    return false;  // add/mul/max/min: the reference kernel
  const ValueId vd = node.inputs[0], vi = node.inputs[1], vu = node.inputs[2], vo = node.outputs[0];
  if (vd == kNoValue || vi == kNoValue || vu == kNoValue || vo == kNoValue) return false;
  const DType dt = DTypeOfValue(g, vd), it = DTypeOfValue(g, vi);
  if (dt == DType::kString || dt == DType::kUndefined || DTypeSize(dt) == 0 || DTypeOfValue(g, vu) != dt) return false;
  if (it != DType::kInt64 && it != DType::kInt32) return false;
  const std::vector<int64_t> dd = DimsOf(g, vd), id_dims = DimsOf(g, vi), ud = DimsOf(g, vu);
  if (dd != DimsOf(g, vo) || dd.empty()) return false;
  const int64_t esize = static_cast<int64_t>(DTypeSize(dt));
  auto slot = [&](ValueId v) { return DTypeOfValue(g, v) == DType::kFloat32 ? c.Plain(c.SlotOf(v)) : c.SlotOf(v); };
  std::unique_ptr<Kernel> kernel;
  if (nd) {
    if (id_dims.empty()) return false;
    const int64_t k = id_dims.back();
    if (k < 1 || k > static_cast<int64_t>(dd.size())) return false;
    auto kn = std::make_unique<ScatterNDKernel>();
    kn->index_type = it;
    kn->data_dims.assign(dd.begin(), dd.begin() + k);
    const std::vector<int64_t> block_dims(dd.begin() + k, dd.end());
    kn->strides = Strides(kn->data_dims);
    kn->tuples = Numel(std::vector<int64_t>(id_dims.begin(), id_dims.end() - 1));
    kn->block_bytes = Numel(block_dims) * esize;
    kn->data_bytes = Numel(dd) * esize;
    // updates: indices.shape[:-1] + data.shape[k:]
    std::vector<int64_t> want(id_dims.begin(), id_dims.end() - 1);
    want.insert(want.end(), block_dims.begin(), block_dims.end());
    if (want != ud) return false;
    kn->data = slot(vd), kn->indices = c.SlotOf(vi), kn->updates = slot(vu);
    kn->out = c.NewRawSlot(vo, dd, dt);
    kn->reads = {kn->data, kn->indices, kn->updates};
    kn->writes = {kn->out};
    kernel = std::move(kn);
  } else {
    KILN_ASSIGN_OR_RETURN(int64_t axis, node.attrs.GetInt("axis", 0));
    const int rank = static_cast<int>(dd.size());
    if (axis < 0) axis += rank;
    if (axis < 0 || axis >= rank || id_dims.size() != dd.size() || ud != id_dims) return false;
    for (int a = 0; a < rank; ++a)
      if (id_dims[static_cast<size_t>(a)] > dd[static_cast<size_t>(a)] && a != axis) return false;
    auto ke = std::make_unique<ScatterElementsKernel>();
    ke->index_type = it;
    ke->esize = DTypeSize(dt);
    ke->axis = static_cast<int>(axis);
    ke->index_dims = id_dims;
    ke->out_strides = Strides(dd);
    ke->axis_size = dd[static_cast<size_t>(axis)];
    ke->data_bytes = Numel(dd) * esize;
    ke->data = slot(vd), ke->indices = c.SlotOf(vi), ke->updates = slot(vu);
    ke->out = c.NewRawSlot(vo, dd, dt);
    ke->reads = {ke->data, ke->indices, ke->updates};
    ke->writes = {ke->out};
    kernel = std::move(ke);
  }
  kernel->info = {node.name, node.op_type, nd ? "kiln:scatter_nd" : "kiln:scatter_elements", "", 0, id};
  kernel->info.elements = Numel(dd);
  c.AddKernel(std::move(kernel));
  return true;
}

}  // namespace kiln::cpu
