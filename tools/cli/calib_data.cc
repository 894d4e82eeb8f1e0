#include "tools/cli/calib_data.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>

#include <nlohmann/json.hpp>
#include <stb_image.h>

#include "api/tensor_io.h"
#include "base/status.h"
#include "tools/cli/commands.h"

namespace kiln::cli {

namespace fs = std::filesystem;

namespace {

std::string Lower(std::string s) {
  for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}
bool IsTensorFile(const fs::path& p) {
  const std::string e = Lower(p.extension().string());
  return e == ".npy" || e == ".pb";
}
bool IsImageFile(const fs::path& p) {
  const std::string e = Lower(p.extension().string());
  return e == ".jpg" || e == ".jpeg" || e == ".png" || e == ".bmp";
}

std::string ShapeText(const std::vector<int64_t>& d) {
  std::string s;
  for (size_t i = 0; i < d.size(); ++i) s += (i ? "x" : "") + std::to_string(d[i]);
  return d.empty() ? "scalar" : s;
}

// The input's image geometry: channels-first or -last, C in {1, 3}.
struct ImageLayout {
  bool nhwc = false;
  int64_t c = 3, h = 0, w = 0;
};
std::optional<ImageLayout> ImageLayoutOf(const CalibrationInput& in) {
  if (in.shape.size() != 4 || in.dtype != DataType::kFloat32) return std::nullopt;
  ImageLayout l;
  if (in.shape[1] == 3 || in.shape[1] == 1) {
    l.c = in.shape[1];
    l.h = in.shape[2];
    l.w = in.shape[3];
  } else if (in.shape[3] == 3 || in.shape[3] == 1) {
    l.nhwc = true;
    l.c = in.shape[3];
    l.h = in.shape[1];
    l.w = in.shape[2];
  } else {
    return std::nullopt;
  }
  return l;
}

// Bilinear sample of an 8-bit image (half-pixel centers, edges clamped).
float Sample(const unsigned char* px, int w, int h, int ch, double x, double y, int c) {
  x = std::clamp(x, 0.0, static_cast<double>(w - 1));
  y = std::clamp(y, 0.0, static_cast<double>(h - 1));
  const int x0 = static_cast<int>(x), y0 = static_cast<int>(y);
  const int x1 = std::min(x0 + 1, w - 1), y1 = std::min(y0 + 1, h - 1);
  const double fx = x - x0, fy = y - y0;
  auto at = [&](int xx, int yy) { return static_cast<double>(px[(static_cast<size_t>(yy) * w + xx) * ch + c]); };
  return static_cast<float>((at(x0, y0) * (1 - fx) + at(x1, y0) * fx) * (1 - fy) +
                            (at(x0, y1) * (1 - fx) + at(x1, y1) * fx) * fy);
}

// Decodes and preprocesses one image into `dst` (one sample of the input: C*H*W floats).
Status LoadImage(const std::string& path, const ImageLayout& l, const ImagePreprocess& pp, float* dst) {
  int w = 0, h = 0, n = 0;
  const int want = l.c == 1 ? 1 : 3;
  unsigned char* px = stbi_load(path.c_str(), &w, &h, &n, want);
  if (px == nullptr) return InvalidArgument(path, ": not a decodable image (", stbi_failure_reason(), ")");
  std::unique_ptr<unsigned char, void (*)(void*)> owner(px, stbi_image_free);
  // The source window that maps onto the H x W output.
  double sx0 = 0, sy0 = 0, sw = w, sh = h;
  if (pp.resize == "crop") {
    // Shorter side to (target / crop_fraction), then the centered target: in source pixels,
    // a window of target * (shorter / resized_shorter).
    const double target_short = std::min(l.h, l.w) / pp.crop_fraction;
    const double k = std::min(w, h) / target_short;  // source pixels per resized pixel
    sw = l.w * k;
    sh = l.h * k;
    sx0 = (w - sw) / 2;
    sy0 = (h - sh) / 2;
  }
  const double kx = sw / static_cast<double>(l.w), ky = sh / static_cast<double>(l.h);
  for (int64_t y = 0; y < l.h; ++y)
    for (int64_t x = 0; x < l.w; ++x) {
      const double fx = sx0 + (x + 0.5) * kx - 0.5, fy = sy0 + (y + 0.5) * ky - 0.5;
      for (int64_t c = 0; c < l.c; ++c) {
        const int src_c = l.c == 1 ? 0 : static_cast<int>(pp.bgr ? 2 - c : c);
        const double v = Sample(px, w, h, want, fx, fy, src_c) * pp.scale;
        const size_t ci = static_cast<size_t>(c);
        const float out = static_cast<float>((v - pp.mean[ci]) / pp.std[ci]);
        const size_t at = l.nhwc ? static_cast<size_t>((y * l.w + x) * l.c + c) : static_cast<size_t>((c * l.h + y) * l.w + x);
        dst[at] = out;
      }
    }
  return Status::OK();
}

Status ReadPreprocessJson(const fs::path& file, ImagePreprocess* pp) {
  std::ifstream in(file);
  nlohmann::json j;
  try {
    in >> j;
    if (!j.is_object()) return InvalidArgument(file.string(), ": expected a JSON object");
    for (auto it = j.begin(); it != j.end(); ++it) {
      const std::string& k = it.key();
      if (k == "resize") pp->resize = it->get<std::string>();
      else if (k == "crop_fraction") pp->crop_fraction = it->get<double>();
      else if (k == "scale") pp->scale = it->get<double>();
      else if (k == "mean") pp->mean = it->get<std::vector<double>>();
      else if (k == "std") pp->std = it->get<std::vector<double>>();
      else if (k == "channel_order") pp->bgr = Lower(it->get<std::string>()) == "bgr";
      else return InvalidArgument(file.string(), ": unknown field '", k, "' (expected resize, crop_fraction, scale, mean, std, channel_order)");
    }
  } catch (const nlohmann::json::exception& e) {
    return InvalidArgument(file.string(), ": ", e.what());
  }
  return Status::OK();
}

Status CheckPreprocess(const ImagePreprocess& pp, int64_t channels) {
  if (pp.resize != "crop" && pp.resize != "stretch")
    return InvalidArgument("image resize '", pp.resize, "' (expected crop or stretch)");
  if (!(pp.crop_fraction > 0 && pp.crop_fraction <= 1)) return InvalidArgument("crop fraction ", pp.crop_fraction, " is not in (0, 1]");
  const size_t c = static_cast<size_t>(channels);
  if (pp.mean.size() != c && pp.mean.size() != 1) return InvalidArgument("image mean has ", pp.mean.size(), " values for ", c, " channels");
  if (pp.std.size() != c && pp.std.size() != 1) return InvalidArgument("image std has ", pp.std.size(), " values for ", c, " channels");
  for (double s : pp.std)
    if (!(s != 0) || !std::isfinite(s)) return InvalidArgument("image std holds ", s);
  return Status::OK();
}

HostTensor ToHost(const Tensor& t) {
  HostTensor h = HostTensor::Allocate(static_cast<DataType>(static_cast<int>(t.dtype())), t.dims());
  if (t.nbytes() > 0) std::memcpy(h.data(), t.raw_data(), t.nbytes());
  return h;
}

}  // namespace

StatusOr<CalibrationSource> CalibrationBatches(const std::string& dir, const std::vector<CalibrationInput>& inputs,
                                               const ImagePreprocessOverrides& ov) {
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) return InvalidArgument(dir, ": not a folder (--calib takes a folder of inputs)");
  std::vector<fs::path> entries;
  for (const auto& e : fs::directory_iterator(dir, ec)) entries.push_back(e.path());
  if (ec) return InvalidArgument(dir, ": ", ec.message());
  std::sort(entries.begin(), entries.end());
  CalibrationSource src;

  if (inputs.size() > 1) {
    // One folder per batch, a file per input.
    std::vector<fs::path> batches;
    for (const fs::path& p : entries)
      if (fs::is_directory(p, ec)) batches.push_back(p);
    if (batches.empty())
      return InvalidArgument(dir, ": the model has ", inputs.size(),
                             " inputs: give one folder per batch, each with a NAME.npy or NAME.pb per input");
    src.batches = static_cast<int>(batches.size());
    src.description = StrCat(batches.size(), " batch folders");
    auto at = std::make_shared<size_t>(0);
    src.next = [batches, inputs, at](std::map<std::string, HostTensor>* out) -> StatusOr<bool> {
      if (*at >= batches.size()) return false;
      const fs::path& b = batches[(*at)++];
      for (const CalibrationInput& in : inputs) {
        fs::path file = b / (in.name + ".npy");
        std::error_code e;
        if (!fs::exists(file, e)) file = b / (in.name + ".pb");
        if (!fs::exists(file, e)) return InvalidArgument(b.string(), ": no ", in.name, ".npy or ", in.name, ".pb for input '", in.name, "'");
        KILN_ASSIGN_OR_RETURN(Tensor t, ReadTensorFile(file.string()));
        if (t.dims() != in.shape || static_cast<int>(t.dtype()) != static_cast<int>(in.dtype))
          return InvalidArgument(file.string(), ": holds ", DTypeName(t.dtype()), " ", ShapeText(t.dims()), "; input '", in.name,
                                 "' takes ", ShapeText(in.shape));
        (*out)[in.name] = ToHost(t);
      }
      return true;
    };
    return src;
  }

  if (inputs.empty()) return InvalidArgument("the model has no inputs to calibrate with");
  const CalibrationInput in = inputs[0];
  std::vector<fs::path> files;
  int images = 0;
  for (const fs::path& p : entries) {
    if (!fs::is_regular_file(p, ec)) continue;
    if (IsTensorFile(p)) files.push_back(p);
    else if (IsImageFile(p)) {
      files.push_back(p);
      ++images;
    }
  }
  if (files.empty()) return InvalidArgument(dir, ": no .npy, .pb or image files (.jpg, .png, .bmp) in it");
  ImagePreprocess pp;
  if (fs::exists(fs::path(dir) / "preprocess.json", ec))
    KILN_RETURN_IF_ERROR(ReadPreprocessJson(fs::path(dir) / "preprocess.json", &pp));
  if (ov.resize) pp.resize = *ov.resize;
  if (ov.crop_fraction) pp.crop_fraction = *ov.crop_fraction;
  if (ov.scale) pp.scale = *ov.scale;
  if (ov.mean) pp.mean = *ov.mean;
  if (ov.std) pp.std = *ov.std;
  if (ov.channel_order) pp.bgr = Lower(*ov.channel_order) == "bgr";
  std::optional<ImageLayout> layout = ImageLayoutOf(in);
  if (images > 0) {
    if (!layout)
      return InvalidArgument(dir, ": holds images, but input '", in.name, "' (", ShapeText(in.shape),
                             ") is no float NCHW/NHWC image batch of 1 or 3 channels");
    KILN_RETURN_IF_ERROR(CheckPreprocess(pp, layout->c));
    if (pp.mean.size() == 1) pp.mean.assign(static_cast<size_t>(layout->c), pp.mean[0]);
    if (pp.std.size() == 1) pp.std.assign(static_cast<size_t>(layout->c), pp.std[0]);
  }
  // Samples per batch: the input's batch dimension (files of batch 1 and images stack).
  const int64_t batch = in.shape.empty() ? 1 : std::max<int64_t>(1, in.shape[0]);
  std::vector<int64_t> one = in.shape;
  if (!one.empty()) one[0] = 1;
  int64_t sample_elems = 1;
  for (int64_t d : one) sample_elems *= d;
  // A whole-shape tensor is one batch; batch-1 tensors and images count 1/batch each.
  src.batches = static_cast<int>(files.size() / static_cast<size_t>(batch));
  if (src.batches == 0) src.batches = 1;
  src.description = images > 0 ? StrCat(files.size(), " files (", images, " images, ", pp.resize, " to ", layout->h, "x",
                                        layout->w, ", scale ", pp.scale, ", ", pp.bgr ? "BGR" : "RGB", ")")
                                : StrCat(files.size(), " tensor files");
  auto at = std::make_shared<size_t>(0);
  src.next = [files, in, pp, layout, batch, one, sample_elems, at](std::map<std::string, HostTensor>* out) -> StatusOr<bool> {
    if (*at >= files.size()) return false;
    HostTensor t = HostTensor::Allocate(in.dtype, in.shape);
    const size_t esize = DataTypeSize(in.dtype);
    int64_t filled = 0;
    while (filled < batch && *at < files.size()) {
      const fs::path& f = files[(*at)++];
      char* dst = static_cast<char*>(t.data()) + static_cast<size_t>(filled * sample_elems) * esize;
      if (IsImageFile(f)) {
        KILN_RETURN_IF_ERROR(LoadImage(f.string(), *layout, pp, reinterpret_cast<float*>(dst)));
        ++filled;
        continue;
      }
      KILN_ASSIGN_OR_RETURN(Tensor x, ReadTensorFile(f.string()));
      if (static_cast<int>(x.dtype()) != static_cast<int>(in.dtype))
        return InvalidArgument(f.string(), ": holds ", DTypeName(x.dtype()), "; input '", in.name, "' takes ",
                               DataTypeName(in.dtype));
      if (x.dims() == in.shape && filled == 0) {
        std::memcpy(t.data(), x.raw_data(), x.nbytes());
        filled = batch;
      } else if (x.dims() == one) {
        std::memcpy(dst, x.raw_data(), x.nbytes());
        ++filled;
      } else {
        return InvalidArgument(f.string(), ": holds ", ShapeText(x.dims()), "; input '", in.name, "' takes ",
                               ShapeText(in.shape), batch > 1 ? StrCat(" (or ", ShapeText(one), " per sample)") : "");
      }
    }
    if (filled < batch) return false;  // a last partial batch is left out
    (*out)[in.name] = std::move(t);
    return true;
  };
  return src;
}

void AddCalibrationOptions(CLI::App* cmd, CalibArgs* args) {
  cmd->add_option("--calib", args->calib,
                  "INT8 calibration data: a folder of .npy/.pb tensors or images (.jpg/.png/.bmp) for a one-input "
                  "model, or of one folder per batch (NAME.npy per input)")
      ->check(kPath);
  cmd->add_option("--calibrator", args->calibrator, "entropy (default; KL divergence), percentile or minmax");
  cmd->add_option("--percentile", args->percentile, "The percentile of |x| the percentile calibrator keeps (default 99.99)");
  cmd->add_option("--calib-cache", args->calib_cache,
                  "Calibration cache: written after calibrating with --calib, read (no data needed) without it")
      ->check(kPath);
  cmd->add_option("--calib-batches", args->calib_batches, "Calibrate on at most this many batches (default: all)");
  cmd->add_option("--keep-fp32", args->keep_fp32, "Layers (node names, comma-separated) that stay FP32")->delimiter(',');
  cmd->add_option("--accuracy-budget", args->accuracy_budget_pct,
                  "Largest output error allowed, in percent (relative L2 vs FP32 on held-out batches): the most "
                  "sensitive layers stay FP32 until it fits (needs --calib)");
  cmd->add_option("--holdout-batches", args->holdout_batches,
                  "Batches of --calib kept apart to measure the accuracy budget (default 8)");
  cmd->add_option_function<std::string>("--calib-resize", [args](const std::string& v) { args->image.resize = v; },
                                        "Images: crop (default: shorter side to size/crop-fraction, center crop) or stretch");
  cmd->add_option_function<double>("--calib-crop-fraction", [args](double v) { args->image.crop_fraction = v; },
                                   "Images: the center crop's share of the resized shorter side (default 0.875)");
  cmd->add_option_function<double>("--calib-scale", [args](double v) { args->image.scale = v; },
                                   "Images: pixel (0-255) multiplier before mean/std (default 1/255)");
  cmd->add_option_function<std::vector<double>>("--calib-mean", [args](const std::vector<double>& v) { args->image.mean = v; },
                                                "Images: per-channel mean subtracted (after scale), e.g. 0.485,0.456,0.406")
      ->delimiter(',');
  cmd->add_option_function<std::vector<double>>("--calib-std", [args](const std::vector<double>& v) { args->image.std = v; },
                                                "Images: per-channel std divided by, e.g. 0.229,0.224,0.225")
      ->delimiter(',');
  cmd->add_option_function<std::string>("--calib-channel-order", [args](const std::string& v) { args->image.channel_order = v; },
                                        "Images: rgb (default) or bgr");
}

StatusOr<CalibrationSource> SetUpCalibration(const Graph& g, const CalibArgs& a, BuildOptions::Calibration* cal) {
  cal->calibrator = a.calibrator;
  cal->percentile = a.percentile;
  cal->cache = a.calib_cache;
  cal->max_batches = a.calib_batches;
  cal->keep_fp32 = a.keep_fp32;
  cal->accuracy_budget = a.accuracy_budget_pct / 100.0;
  cal->holdout_batches = a.holdout_batches;
  if (a.calib.empty()) {
    if (a.calib_cache.empty())
      return InvalidArgument("INT8 needs --calib DIR (calibration data) or --calib-cache FILE (an earlier calibration)");
    return CalibrationSource{};
  }
  std::vector<CalibrationInput> inputs;
  for (ValueId v : g.inputs()) {
    const Value& val = g.value(v);
    if (val.constant) continue;
    if (!val.type.is_tensor() || !val.type.shape.IsStatic())
      return InvalidArgument("input '", val.name, "' has no fixed shape: give it with --shapes to calibrate");
    inputs.push_back({val.name, static_cast<DataType>(static_cast<int>(val.type.dtype)), val.type.shape.Sizes()});
  }
  KILN_ASSIGN_OR_RETURN(CalibrationSource src, CalibrationBatches(a.calib, inputs, a.image));
  if (a.calib_batches > 0) src.batches = std::min(a.calib_batches, src.batches);
  cal->next_batch = src.next;
  return src;
}

}  // namespace kiln::cli
