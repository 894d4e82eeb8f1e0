// Gather along any axis (embedding lookups: token ids into a [vocab, dim] table; a class
// token x[:, 0]) as row copies: one memcpy per (outer index, index), with the index checked (ONNX allows [-n, n-1]; anything
// else is an error naming the node, as ORT gives), instead of the reference kernel's
// element-by-element walk. Any element type; the table may be a constant or an activation.
#include <omp.h>

#include <cstring>

#include "backends/cpu/lower_util.h"
#include "backends/cpu/parallel.h"
#include "ir/op_schema.h"

namespace kiln::cpu {

namespace {

class GatherRowsKernel : public Kernel {
 public:
  int data = -1, indices = -1, out = -1;
  DType index_type = DType::kInt64;
  int64_t rows = 0;       // data.dims[0]
  int64_t row_bytes = 0;  // bytes of one data[i]
  int64_t count = 0;      // number of indices
  int64_t outer = 1;      // product of data's dims before the axis (Gather along axis > 0)

  Status Execute(ExecContext& ctx, int) const override {
    const char* src = ctx.ptrs[static_cast<size_t>(data)];
    char* dst = ctx.ptrs[static_cast<size_t>(out)];
    const void* idx = ctx.ptrs[static_cast<size_t>(indices)];
    // Check every index first: a bad one must not leave a half-written output.
    for (int64_t i = 0; i < count; ++i) {
      const int64_t r = At(idx, i);
      if (r < -rows || r >= rows) return OutOfRange("index ", r, " at position ", i, " is out of range for ", rows, " rows");
    }
    const size_t bytes = static_cast<size_t>(row_bytes);
    // Task t: outer index t / count, index t % count.
    auto copy = [&](int64_t t) {
      const int64_t o = t / count, i = t % count;
      int64_t r = At(idx, i);
      if (r < 0) r += rows;
      std::memcpy(dst + static_cast<size_t>(o * count + i) * bytes, src + static_cast<size_t>(o * rows + r) * bytes, bytes);
    };
    const int64_t tasks = outer * count;
    if (tasks * row_bytes > (1 << 16)) {
      ParallelFor(tasks, 0, copy);
    } else {
      for (int64_t t = 0; t < tasks; ++t) copy(t);
    }
    return Status::OK();
  }

 private:
  int64_t At(const void* idx, int64_t i) const {
    return index_type == DType::kInt64 ? static_cast<const int64_t*>(idx)[i] : static_cast<const int32_t*>(idx)[i];
  }
};

}  // namespace

StatusOr<bool> LowerGather(Compiler& c, NodeId id) {
  const Graph& g = c.graph();
  const Node& node = g.node(id);
  if (node.op_type != "Gather" || IsFusedNode(node) || node.inputs.size() != 2 || node.outputs.size() != 1) return false;
  const ValueId data = node.inputs[0], indices = node.inputs[1], out = node.outputs[0];
  if (data == kNoValue || indices == kNoValue) return false;
  const DType it = DTypeOfValue(g, indices);
  if (it != DType::kInt64 && it != DType::kInt32) return false;
  const DType dt = DTypeOfValue(g, data);
  if (dt == DType::kString || dt == DType::kUndefined || DTypeSize(dt) == 0) return false;
  const std::vector<int64_t> dd = DimsOf(g, data);
  if (dd.empty()) return false;
  KILN_ASSIGN_OR_RETURN(int64_t axis, node.attrs.GetInt("axis", 0));
  if (axis < 0) axis += static_cast<int64_t>(dd.size());
  if (axis < 0 || axis >= static_cast<int64_t>(dd.size())) return false;
  auto k = std::make_unique<GatherRowsKernel>();
  k->index_type = it;
  k->rows = dd[static_cast<size_t>(axis)];
  k->outer = Numel(std::vector<int64_t>(dd.begin(), dd.begin() + axis));
  k->row_bytes = Numel(std::vector<int64_t>(dd.begin() + axis + 1, dd.end())) * static_cast<int64_t>(DTypeSize(dt));
  k->count = Numel(DimsOf(g, indices));
  k->data = dt == DType::kFloat32 ? c.Plain(c.SlotOf(data)) : c.SlotOf(data);
  k->indices = c.SlotOf(indices);
  if (Numel(DimsOf(g, out)) * static_cast<int64_t>(DTypeSize(dt)) != k->outer * k->count * k->row_bytes) return false;
  k->out = c.NewRawSlot(out, DimsOf(g, out), dt);
  k->reads = {k->data, k->indices};
  k->writes = {k->out};
  k->info = {node.name, node.op_type, "kiln:gather_rows", "", 0, id};
  c.AddKernel(std::move(k));
  return true;
}

}  // namespace kiln::cpu
