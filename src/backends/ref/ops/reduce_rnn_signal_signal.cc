// Signal ops: DFT, STFT (direct O(n^2) transforms in double: the oracle, not a fast FFT)
// Hann/Hamming/Blackman windows and MelWeightMatrix (following ONNX's reference construction exactly).
#include <cmath>

#include "backends/ref/ops/sub_families.h"
#include "backends/ref/kernel.h"
#include "backends/ref/ops/broadcast.h"
#include "ir/op_schema.h"

namespace kiln {

namespace {

// One DFT of `n` complex samples (re, im) into `out_len` bins.
void Dft1d(const std::vector<double>& re, const std::vector<double>& im, bool inverse, int64_t out_len,
           std::vector<double>& ore, std::vector<double>& oim) {
  const int64_t n = static_cast<int64_t>(re.size());
  ore.assign(static_cast<size_t>(out_len), 0.0);
  oim.assign(static_cast<size_t>(out_len), 0.0);
  const double sign = inverse ? 1.0 : -1.0;
  for (int64_t k = 0; k < out_len; ++k) {
    double sr = 0, si = 0;
    for (int64_t t = 0; t < n; ++t) {
      // Reduce k*t mod n first: keeps the angle small and exact for large n.
      const double ang = sign * 2 * M_PI * double((k * t) % n) / double(n);
      const double c = std::cos(ang), s = std::sin(ang);
      sr += re[static_cast<size_t>(t)] * c - im[static_cast<size_t>(t)] * s;
      si += re[static_cast<size_t>(t)] * s + im[static_cast<size_t>(t)] * c;
    }
    ore[static_cast<size_t>(k)] = inverse ? sr / double(n) : sr;
    oim[static_cast<size_t>(k)] = inverse ? si / double(n) : si;
  }
}

// Reads a scalar (or 1-element) integer input; `what` names it for errors.
StatusOr<int64_t> ReadIntScalar(const Tensor& t, const char* what) {
  if (t.numel() != 1 || t.rank() > 1) return InvalidArgument("input '", what, "' must be a scalar");
  KILN_ASSIGN_OR_RETURN(std::vector<int64_t> v, t.ToInt64Vector());
  return v[0];
}

// DFT of input [batch, signal dims..., 1 or 2] along `axis`, which counts over the full
// rank (opset 17) and must be neither the last (real/imaginary) axis nor out of range.
Status DftKernel(RefContext& ctx) {
  KILN_RETURN_IF_ERROR(ctx.RequireTensor(0));
  const Tensor& x = ctx.input(0);
  KILN_ASSIGN_OR_RETURN(int64_t axis, ctx.attrs().GetInt("axis", 1));
  KILN_ASSIGN_OR_RETURN(int64_t inverse, ctx.attrs().GetInt("inverse", 0));
  KILN_ASSIGN_OR_RETURN(int64_t onesided, ctx.attrs().GetInt("onesided", 0));
  if (!IsFloat(x.dtype())) return InvalidArgument("input must be a float tensor");
  if (x.rank() < 2 || (x.dim(x.rank() - 1) != 1 && x.dim(x.rank() - 1) != 2))
    return InvalidArgument("input must be [..., 1] (real) or [..., 2] (complex), got ", x.ShapeString());
  if (inverse && onesided) return InvalidArgument("attributes 'inverse' and 'onesided' cannot both be set");
  KILN_ASSIGN_OR_RETURN(int ax, NormalizeAxis(axis, x.rank()));
  if (ax == x.rank() - 1) return InvalidArgument("attribute 'axis' must not be the last (real/imaginary) axis");
  const bool complex_in = x.dim(x.rank() - 1) == 2;
  int64_t n = x.dim(ax);
  if (ctx.has_input(1)) {
    KILN_ASSIGN_OR_RETURN(n, ReadIntScalar(ctx.input(1), "dft_length"));
    if (n <= 0) return InvalidArgument("input 'dft_length' must be positive, got ", n);
  }
  const int64_t out_len = onesided ? n / 2 + 1 : n;
  std::vector<int64_t> od = x.dims();
  od[static_cast<size_t>(ax)] = out_len;
  od.back() = 2;
  KILN_ASSIGN_OR_RETURN(Tensor y, Tensor::Create(x.dtype(), od, "DFT output"));
  int64_t outer = 1, inner = 1;
  for (int d = 0; d < ax; ++d) outer *= x.dim(d);
  for (int d = ax + 1; d < x.rank() - 1; ++d) inner *= x.dim(d);
  const int64_t in_len = x.dim(ax), comp = x.dim(x.rank() - 1);
  std::vector<double> re(static_cast<size_t>(n)), im(static_cast<size_t>(n)), ore, oim;
  for (int64_t o = 0; o < outer; ++o)
    for (int64_t i = 0; i < inner; ++i) {
      // Truncate to, or zero-pad up to, dft_length.
      for (int64_t t = 0; t < n; ++t) {
        const bool in_range = t < in_len;
        const int64_t base = ((o * in_len + t) * inner + i) * comp;
        re[static_cast<size_t>(t)] = in_range ? x.GetAsDouble(base) : 0.0;
        im[static_cast<size_t>(t)] = in_range && complex_in ? x.GetAsDouble(base + 1) : 0.0;
      }
      Dft1d(re, im, inverse != 0, out_len, ore, oim);
      for (int64_t k = 0; k < out_len; ++k) {
        const int64_t base = ((o * out_len + k) * inner + i) * 2;
        ref::StoreDouble(y, base, ore[static_cast<size_t>(k)]);
        ref::StoreDouble(y, base + 1, oim[static_cast<size_t>(k)]);
      }
    }
  ctx.set_output(0, std::move(y));
  return Status::OK();
}

// STFT of signal [batch, length, 1 or 2]: frames of frame_length samples every frame_step,
// each multiplied by the window (when given) and transformed.
Status StftKernel(RefContext& ctx) {
  KILN_RETURN_IF_ERROR(ctx.RequireTensor(0));
  KILN_RETURN_IF_ERROR(ctx.RequireTensor(1));
  const Tensor& x = ctx.input(0);
  if (!IsFloat(x.dtype())) return InvalidArgument("input 'signal' must be a float tensor");
  if (x.rank() != 3 || (x.dim(2) != 1 && x.dim(2) != 2))
    return InvalidArgument("input 'signal' must be [batch, length, 1 or 2], got ", x.ShapeString());
  KILN_ASSIGN_OR_RETURN(int64_t onesided, ctx.attrs().GetInt("onesided", 1));
  KILN_ASSIGN_OR_RETURN(int64_t step, ReadIntScalar(ctx.input(1), "frame_step"));
  if (step <= 0) return InvalidArgument("input 'frame_step' must be positive");
  int64_t len = -1;
  if (ctx.has_input(2)) {
    if (ctx.input(2).rank() != 1 || !IsFloat(ctx.input(2).dtype())) return InvalidArgument("input 'window' must be a 1-D float tensor");
    len = ctx.input(2).numel();
  }
  if (ctx.has_input(3)) {
    KILN_ASSIGN_OR_RETURN(int64_t fl, ReadIntScalar(ctx.input(3), "frame_length"));
    if (len >= 0 && fl != len) return InvalidArgument("input 'frame_length' (", fl, ") differs from the window length (", len, ")");
    len = fl;
  }
  if (len < 0) return InvalidArgument("STFT needs input 'window' or 'frame_length'");
  if (len == 0 || len > x.dim(1)) return InvalidArgument("frame length ", len, " must be in [1, signal length]");
  const int64_t frames = (x.dim(1) - len) / step + 1, bins = onesided ? len / 2 + 1 : len, comp = x.dim(2);
  KILN_ASSIGN_OR_RETURN(Tensor y, Tensor::Create(x.dtype(), {x.dim(0), frames, bins, 2}, "STFT output"));
  std::vector<double> re(static_cast<size_t>(len)), im(static_cast<size_t>(len)), ore, oim;
  for (int64_t b = 0; b < x.dim(0); ++b)
    for (int64_t f = 0; f < frames; ++f) {
      for (int64_t t = 0; t < len; ++t) {
        const double w = ctx.has_input(2) ? ctx.input(2).GetAsDouble(t) : 1.0;
        const int64_t base = (b * x.dim(1) + f * step + t) * comp;
        re[static_cast<size_t>(t)] = x.GetAsDouble(base) * w;
        im[static_cast<size_t>(t)] = comp == 2 ? x.GetAsDouble(base + 1) * w : 0.0;
      }
      Dft1d(re, im, false, bins, ore, oim);
      for (int64_t k = 0; k < bins; ++k) {
        ref::StoreDouble(y, ((b * frames + f) * bins + k) * 2, ore[static_cast<size_t>(k)]);
        ref::StoreDouble(y, ((b * frames + f) * bins + k) * 2 + 1, oim[static_cast<size_t>(k)]);
      }
    }
  ctx.set_output(0, std::move(y));
  return Status::OK();
}

// output_datatype of the windows and MelWeightMatrix: any real numeric type.
Status CheckRealOutputType(int64_t dt) {
  const DType t = static_cast<DType>(dt);
  if (!IsValidDType(static_cast<int32_t>(dt)) || !(IsFloat(t) || IsInteger(t)))
    return InvalidArgument("attribute 'output_datatype' must be a real numeric type, got ", dt);
  return Status::OK();
}

// Hann / Hamming / Blackman windows (periodic: N' = size, symmetric: N' = size - 1).
Status WindowKernel(RefContext& ctx) {
  KILN_RETURN_IF_ERROR(ctx.RequireTensor(0));
  KILN_ASSIGN_OR_RETURN(int64_t size, ReadIntScalar(ctx.input(0), "size"));
  if (size < 0 || size > (int64_t{1} << 30)) return InvalidArgument("input 'size' (", size, ") out of range");
  KILN_ASSIGN_OR_RETURN(int64_t periodic, ctx.attrs().GetInt("periodic", 1));
  KILN_ASSIGN_OR_RETURN(int64_t dt, ctx.attrs().GetInt("output_datatype", 1));
  KILN_RETURN_IF_ERROR(CheckRealOutputType(dt));
  const std::string& op = ctx.node().op_type;
  const double n_den = periodic ? double(size) : double(size - 1);
  Tensor y(static_cast<DType>(dt), {size});
  for (int64_t i = 0; i < size; ++i) {
    const double x = n_den > 0 ? 2 * M_PI * double(i) / n_den : 0.0;
    double v;
    if (op == "HannWindow") v = 0.5 - 0.5 * std::cos(x);
    else if (op == "HammingWindow") v = 25.0 / 46.0 - (1 - 25.0 / 46.0) * std::cos(x);
    else v = 0.42 - 0.5 * std::cos(x) + 0.08 * std::cos(2 * x);
    ref::StoreDouble(y, i, v);
  }
  ctx.set_output(0, std::move(y));
  return Status::OK();
}

Status MelWeightMatrixKernel(RefContext& ctx) {
  for (int i = 0; i < 5; ++i) {
    KILN_RETURN_IF_ERROR(ctx.RequireTensor(i));
    const DType t = ctx.input(i).dtype();
    if (ctx.input(i).numel() != 1 || !(IsFloat(t) || IsInteger(t))) return InvalidArgument("input ", i, " must be a numeric scalar");
  }
  const int64_t mel = static_cast<int64_t>(ctx.input(0).GetAsDouble(0));
  const int64_t dft = static_cast<int64_t>(ctx.input(1).GetAsDouble(0));
  const double rate = ctx.input(2).GetAsDouble(0), lo = ctx.input(3).GetAsDouble(0), hi = ctx.input(4).GetAsDouble(0);
  KILN_ASSIGN_OR_RETURN(int64_t dt, ctx.attrs().GetInt("output_datatype", 1));
  KILN_RETURN_IF_ERROR(CheckRealOutputType(dt));
  if (mel <= 0 || dft <= 0 || rate <= 0 || mel > (1 << 20) || dft > (1 << 24))
    return InvalidArgument("num_mel_bins, dft_length or sample_rate out of range");
  const int64_t spec_bins = dft / 2 + 1;
  const double lo_mel = 2595 * std::log10(1 + lo / 700), hi_mel = 2595 * std::log10(1 + hi / 700);
  const double step = (hi_mel - lo_mel) / double(mel + 2);  // as ONNX's reference: over num_mel_bins + 2 points
  std::vector<int64_t> bins(static_cast<size_t>(mel + 2));
  for (int64_t i = 0; i < mel + 2; ++i) {
    double hz = 700 * (std::pow(10, (double(i) * step + lo_mel) / 2595) - 1);
    bins[static_cast<size_t>(i)] = static_cast<int64_t>(std::floor(double(dft + 1) * hz / rate));
  }
  KILN_ASSIGN_OR_RETURN(Tensor y, Tensor::Create(static_cast<DType>(dt), {spec_bins, mel}, "MelWeightMatrix output"));
  auto set = [&](int64_t j, int64_t i, double v) {
    if (j >= 0 && j < spec_bins) ref::StoreDouble(y, j * mel + i, v);
  };
  for (int64_t i = 0; i < mel; ++i) {
    const int64_t l = bins[static_cast<size_t>(i)], c = bins[static_cast<size_t>(i + 1)], h = bins[static_cast<size_t>(i + 2)];
    if (c - l == 0) set(c, i, 1.0);
    else for (int64_t j = l; j <= c; ++j) set(j, i, double(j - l) / double(c - l));
    if (h - c > 0) for (int64_t j = c; j < h; ++j) set(j, i, double(h - j) / double(h - c));
  }
  ctx.set_output(0, std::move(y));
  return Status::OK();
}

}  // namespace

void RegisterSignalKernels(RefKernelRegistry& r) {
  r.Add("", "DFT", &DftKernel);
  r.Add("", "STFT", &StftKernel);
  r.Add("", "MelWeightMatrix", &MelWeightMatrixKernel);
  for (const char* op : {"HannWindow", "HammingWindow", "BlackmanWindow"}) r.Add("", op, &WindowKernel);
}

}  // namespace kiln
