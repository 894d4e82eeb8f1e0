// kiln's own Concat: when every piece and the output share one layout in which each piece
// is one contiguous run per outer index — row-major along any axis, or a channel-blocked
// layout (nChw8c, nChw16c, ...) along the channels when every piece's channel count is a
// multiple of the block — the concat is a memcpy per (outer index, piece), at memory speed.
// oneDNN 2.6's simple:any concat copies blocked layouts element-wise (~1 GB/s: DenseNet's
// 62 concats were a quarter of its run time).
#include <algorithm>
#include <cstring>
#include <functional>

#include "backends/cpu/lower_util.h"
#include "backends/cpu/parallel.h"

namespace kiln::cpu {

namespace {

class CopyConcatKernel : public Kernel {
 public:
  std::vector<int> srcs;
  int dst = -1;
  int64_t outer = 1;                 // outer indices
  std::vector<int64_t> chunk;        // bytes per outer index, per piece
  std::vector<int64_t> offset;       // byte offset of each piece inside one outer index
  int64_t out_chunk = 0;             // bytes per outer index of the output
  bool rows = false;                 // many small runs: parallel over outer indices

  Status Execute(ExecContext& ctx, int) const override {
    char* d = ctx.ptrs[static_cast<size_t>(dst)];
    const int64_t pieces = static_cast<int64_t>(srcs.size());
    if (rows) {
      // Small pieces per outer index (channels-last: one pixel's channels): tasks are blocks
      // of outer indices, each copying every piece's run.
      constexpr int64_t kRows = 64;
      auto block = [&](int64_t b) {
        const int64_t lo = b * kRows, hi = std::min(outer, lo + kRows);
        for (int64_t p = 0; p < pieces; ++p) {
          const char* s = ctx.ptrs[static_cast<size_t>(srcs[static_cast<size_t>(p)])];
          const int64_t bytes = chunk[static_cast<size_t>(p)], at = offset[static_cast<size_t>(p)];
          for (int64_t o = lo; o < hi; ++o) std::memcpy(d + o * out_chunk + at, s + o * bytes, static_cast<size_t>(bytes));
        }
      };
      const int64_t blocks = (outer + kRows - 1) / kRows;
      if (outer * out_chunk > (1 << 16) && blocks > 1) ParallelFor(blocks, 0, block);
      else for (int64_t b = 0; b < blocks; ++b) block(b);
      return Status::OK();
    }
    // Tasks: (outer index, piece), each split into <= 256 KiB parts so that a few big
    // pieces still spread over the threads.
    constexpr int64_t kPart = 256 << 10;
    std::vector<int64_t> parts(static_cast<size_t>(pieces)), first(static_cast<size_t>(pieces) + 1, 0);
    for (int64_t p = 0; p < pieces; ++p) {
      parts[static_cast<size_t>(p)] = std::max<int64_t>(1, (chunk[static_cast<size_t>(p)] + kPart - 1) / kPart);
      first[static_cast<size_t>(p) + 1] = first[static_cast<size_t>(p)] + parts[static_cast<size_t>(p)];
    }
    const int64_t per_outer = first.back();
    auto task = [&](int64_t t) {
      const int64_t o = t / per_outer;
      int64_t r = t % per_outer, p = 0;
      while (r >= first[static_cast<size_t>(p) + 1]) ++p;
      const int64_t part = r - first[static_cast<size_t>(p)];
      const int64_t bytes = chunk[static_cast<size_t>(p)];
      const int64_t lo = std::min(bytes, part * kPart), hi = std::min(bytes, lo + kPart);
      if (hi <= lo) return;
      const char* s = ctx.ptrs[static_cast<size_t>(srcs[static_cast<size_t>(p)])];
      std::memcpy(d + o * out_chunk + offset[static_cast<size_t>(p)] + lo, s + o * bytes + lo, static_cast<size_t>(hi - lo));
    };
    const int64_t tasks = outer * per_outer;
    if (outer * out_chunk > (1 << 16) && tasks > 1) ParallelFor(tasks, 0, task);
    else for (int64_t t = 0; t < tasks; ++t) task(t);
    return Status::OK();
  }
};

constexpr int kChannelsLast = -2;

// The block size of `md`'s single inner block on dim 1 (nChw8c -> 8), 0 for a plain
// row-major layout, kChannelsLast for a dense channels-last one (nwc, nhwc, ndhwc), -1 for
// anything else.
int ChannelBlock(const dnnl::memory::desc& md) {
  const dnnl_memory_desc_t& d = md.data;
  if (d.format_kind != dnnl_blocked || d.offset0 != 0) return -1;
  // (Row-major first: with one channel, or one pixel, channels-last is the same bytes.)
  if (md == PlainMd(std::vector<int64_t>(d.dims, d.dims + d.ndims), md.data_type())) return 0;
  using tag = dnnl::memory::format_tag;
  const tag last = ChannelsLastTag(static_cast<size_t>(d.ndims));
  if (last != tag::undef && md == dnnl::memory::desc(md.dims(), md.data_type(), last)) return kChannelsLast;
  for (int i = 0; i < d.ndims; ++i)
    if (d.padded_dims[i] != d.dims[i] || d.padded_offsets[i] != 0) return -1;
  const auto& b = d.format_desc.blocking;
  // Outer strides must be those of a dense [N, C/blk, spatial..., blk] (or row-major) layout.
  if (b.inner_nblks == 0) return md == PlainMd(std::vector<int64_t>(d.dims, d.dims + d.ndims)) ? 0 : -1;
  if (b.inner_nblks != 1 || b.inner_idxs[0] != 1 || d.ndims < 2) return -1;
  const int64_t blk = b.inner_blks[0];
  int64_t stride = blk;
  for (int i = d.ndims - 1; i >= 0; --i) {
    const int64_t extent = i == 1 ? d.dims[1] / blk : d.dims[i];
    if (i == 1 && d.dims[1] % blk != 0) return -1;
    if (b.strides[i] != stride && extent > 1) return -1;
    stride *= extent;
  }
  return static_cast<int>(blk);
}

dnnl::memory::desc LayoutOfClass(int blk, const std::vector<int64_t>& dims,
                                 dnnl::memory::data_type dt = dnnl::memory::data_type::f32) {
  if (blk == 0) return PlainMd(dims, dt);
  if (blk == kChannelsLast) return dnnl::memory::desc(ToDnnl(dims), dt, ChannelsLastTag(dims.size()));
  return dnnl::memory::desc(ToDnnl(dims), dt, BlockedChannelTag(dims.size(), blk));
}

bool CopyableType(dnnl::memory::data_type dt) {
  using mdt = dnnl::memory::data_type;
  return dt == mdt::f32 || dt == mdt::s8 || dt == mdt::u8;
}

// The layout class (ChannelBlock) to concatenate `srcs` along `axis` in: the one the most
// bytes are in already, where `in_place` says a piece counts as there; -1 when none fits.
int MajorityLayoutClass(const Program& p, const std::vector<int>& srcs, int64_t axis,
                        const std::function<bool(const Slot&, int)>& in_place) {
  std::vector<int> classes = {0};
  for (int s : srcs) {
    const Slot& sl = p.slots[static_cast<size_t>(s)];
    const int k = sl.has_md ? ChannelBlock(sl.md) : -1;
    if (k != -1 && std::find(classes.begin(), classes.end(), k) == classes.end()) classes.push_back(k);
  }
  int best = -1;
  int64_t best_cost = -1;
  for (int k : classes) {
    bool ok = k == 0 || axis == 1;
    int64_t moved = 0;
    for (int s : srcs) {
      const Slot& sl = p.slots[static_cast<size_t>(s)];
      ok = ok && sl.dims.size() >= 2 && (k <= 0 || sl.dims[1] % k == 0) &&
           (k != kChannelsLast || ChannelsLastTag(sl.dims.size()) != dnnl::memory::format_tag::undef) &&
           (k <= 0 || BlockedChannelTag(sl.dims.size(), k) != dnnl::memory::format_tag::undef);
      if (!in_place(sl, k)) moved += sl.bytes;
    }
    if (ok && (best_cost < 0 || moved < best_cost)) {
      best = k;
      best_cost = moved;
    }
  }
  return best;
}

}  // namespace

std::vector<int> PiecesInCommonLayout(Compiler& c, const std::vector<int>& srcs, int64_t axis) {
  const Program& p = c.program();
  int best = MajorityLayoutClass(p, srcs, axis, [](const Slot& sl, int k) {
    return sl.has_md && sl.md.data_type() == dnnl::memory::data_type::f32 && ChannelBlock(sl.md) == k;
  });
  if (best == -1) best = 0;  // (the caller falls back to row-major pieces)
  std::vector<int> out;
  for (int s : srcs) out.push_back(c.InLayout(s, LayoutOfClass(best, p.slots[static_cast<size_t>(s)].dims)));
  return out;
}

bool AddInt8CopyConcat(Compiler& c, const std::vector<int>& srcs, const std::vector<std::vector<int64_t>>& piece_dims,
                       const std::vector<int64_t>& out_dims, int64_t axis, ValueId out, const std::string& name, int node,
                       float scale, bool is_unsigned) {
  const Program& p = c.program();
  // The layout most pieces' bytes are in already, in this scale.
  const int best = MajorityLayoutClass(p, srcs, axis, [scale](const Slot& sl, int k) {
    return sl.has_md && ChannelBlock(sl.md) == k && sl.qscale == scale;
  });
  if (best == -1) return false;
  const auto dt = is_unsigned ? dnnl::memory::data_type::u8 : dnnl::memory::data_type::s8;
  std::vector<int> q;
  for (int s : srcs) q.push_back(c.Quantized(s, LayoutOfClass(best, p.slots[static_cast<size_t>(s)].dims, dt), scale));
  return AddCopyConcat(c, q, piece_dims, out_dims, axis, out, name, node);
}

bool AddCopyConcatInto(Compiler& c, std::vector<int> srcs, const std::vector<std::vector<int64_t>>& piece_dims,
                       const std::vector<int64_t>& out_dims, int64_t axis, ValueId out, const std::string& name, int node,
                       int into) {
  if (AddCopyConcat(c, srcs, piece_dims, out_dims, axis, out, name, node, into)) return true;
  const Slot& whole = c.program().slots[static_cast<size_t>(into)];
  const int blk = whole.has_md && whole.md.data_type() == dnnl::memory::data_type::f32 ? ChannelBlock(whole.md) : -1;
  if (blk == -1 || (blk != 0 && axis != 1)) return false;
  for (size_t i = 0; i < srcs.size(); ++i) {
    if (srcs[i] < 0) continue;
    const Slot& sl = c.program().slots[static_cast<size_t>(srcs[i])];
    if (!sl.has_md || sl.dtype != DType::kFloat32 || (blk > 0 && sl.dims[1] % blk != 0)) return false;
    if (ChannelBlock(sl.md) != blk) srcs[i] = c.InLayout(srcs[i], LayoutOfClass(blk, sl.dims));
  }
  return AddCopyConcat(c, srcs, piece_dims, out_dims, axis, out, name, node, into);
}

bool AddCopyConcat(Compiler& c, const std::vector<int>& srcs, const std::vector<std::vector<int64_t>>& piece_dims,
                   const std::vector<int64_t>& out_dims, int64_t axis, ValueId out, const std::string& name, int node,
                   int into) {
  if (piece_dims.size() != srcs.size()) return false;
  if (srcs.empty()) return false;
  const Program& p = c.program();
  int first = -1;
  for (int s : srcs)
    if (s >= 0 && first < 0) first = s;
  if (first < 0) return true;  // every piece is in place already
  const dnnl::memory::desc& md0 = p.slots[static_cast<size_t>(first)].md;
  const int blk = ChannelBlock(md0);
  const dnnl::memory::data_type dt = md0.data_type();
  if (blk == -1 || !CopyableType(dt)) return false;
  const int64_t elem = static_cast<int64_t>(dnnl::memory::data_type_size(dt));
  if (blk != 0 && axis != 1) return false;
  auto k = std::make_unique<CopyConcatKernel>();
  // Channels-last along the channels: per pixel (n, spatial...) each piece's channels.
  const bool last = blk == kChannelsLast;
  for (int64_t a = 0; a < axis; ++a) k->outer *= out_dims[static_cast<size_t>(a)];
  if (last)
    for (size_t a = 2; a < out_dims.size(); ++a) k->outer *= out_dims[a];
  // Pieces given as -1 are in the output already (their producers wrote there): skipped,
  // their extent taken from `piece_dims`.
  int64_t off = 0;
  std::vector<int> copied;
  for (size_t i = 0; i < srcs.size(); ++i) {
    const int s = srcs[i];
    std::vector<int64_t> dims = s >= 0 ? p.slots[static_cast<size_t>(s)].dims : piece_dims[i];
    if (s >= 0) {
      const Slot& sl = p.slots[static_cast<size_t>(s)];
      if (!sl.has_md || ChannelBlock(sl.md) != blk || sl.md.data_type() != dt || sl.qscale != p.slots[static_cast<size_t>(first)].qscale)
        return false;
    }
    if (blk > 0 && dims[1] % blk != 0) return false;
    int64_t inner = 1;
    for (size_t a = static_cast<size_t>(axis); a < (last ? 2 : dims.size()); ++a) inner *= dims[a];
    if (s >= 0) {
      k->chunk.push_back(inner * elem);
      k->offset.push_back(off);
      copied.push_back(s);
    }
    off += inner * elem;
  }
  k->out_chunk = off;
  dnnl::memory::desc out_md;
  if (blk == 0) {
    out_md = PlainMd(out_dims, dt);
  } else if (last) {
    out_md = dnnl::memory::desc(ToDnnl(out_dims), dt, ChannelsLastTag(out_dims.size()));
  } else {
    // The same blocked layout over the output dims.
    dnnl::memory::dims od(out_dims.begin(), out_dims.end());
    const auto tag = BlockedChannelTag(out_dims.size(), blk);
    if (tag == dnnl::memory::format_tag::undef) return false;
    out_md = dnnl::memory::desc(od, dt, tag);
    if (ChannelBlock(out_md) != blk) return false;
  }
  if (static_cast<int64_t>(out_md.get_size()) != k->outer * k->out_chunk) return false;
  if (into >= 0 && p.slots[static_cast<size_t>(into)].md != out_md) return false;
  k->srcs = copied;
  int64_t largest = 0;
  for (int64_t b : k->chunk) largest = std::max(largest, b);
  k->rows = largest < 4096 && k->outer > 1;
  const Slot& s0 = p.slots[static_cast<size_t>(first)];
  if (into >= 0) {
    k->dst = into;
  } else {
    k->dst = c.NewSlot(out, out_md, out_dims, s0.dtype);
    c.program().slots[static_cast<size_t>(k->dst)].qscale = s0.qscale;
  }
  k->reads = copied;
  if (into >= 0) k->reads.push_back(into);  // the in-place pieces live there
  k->writes = {k->dst};
  k->info = {name, "Concat",
             blk == 0 ? "kiln:concat_copy" : last ? "kiln:concat_copy channels_last" : StrCat("kiln:concat_copy blocked", blk),
             "", 0, node};
  c.AddKernel(std::move(k));
  return true;
}

}  // namespace kiln::cpu
