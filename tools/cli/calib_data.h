// Calibration batches from a folder (`kiln build --precision int8 --calib DIR`).
//
// A model with one input: every .npy / .pb tensor file and every image (.jpg, .jpeg, .png,
// .bmp) in DIR, in name order. A tensor of the input's shape is one batch; tensors of
// batch 1 (and images) are stacked until they fill the input's batch. Images are decoded by
// stb_image and preprocessed for an NCHW or NHWC input of 1 or 3 channels: the shorter
// side resized to size/crop_fraction (bilinear), the center size cropped ("crop"), or the
// whole image resized ("stretch"); then (pixel * scale - mean[c]) / std[c], RGB or BGR.
// The options come from the command line, or from DIR/preprocess.json when it exists
// ({"resize": "crop", "crop_fraction": 0.875, "scale": 0.00392157, "mean": [..], "std": [..],
//   "channel_order": "rgb"}), the command line winning.
// A model with several inputs: DIR holds one folder per batch, each with a tensor file per
// input named after it (NAME.npy or NAME.pb).
#pragma once

#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>

#include "ir/graph.h"
#include "kiln/kiln.h"

namespace kiln::cli {

struct ImagePreprocess {
  std::string resize = "crop";  // "crop" or "stretch"
  double crop_fraction = 0.875;
  double scale = 1.0 / 255.0;
  std::vector<double> mean = {0, 0, 0};
  std::vector<double> std = {1, 1, 1};
  bool bgr = false;
};

// Fields the command line set (they win over preprocess.json).
struct ImagePreprocessOverrides {
  std::optional<std::string> resize;
  std::optional<double> crop_fraction, scale;
  std::optional<std::vector<double>> mean, std;
  std::optional<std::string> channel_order;
};

struct CalibrationInput {
  std::string name;
  DataType dtype;
  std::vector<int64_t> shape;  // static
};

// Lists DIR and returns the batch source for BuildOptions::Calibration::next_batch (it reads
// files as it goes; errors name the file and what it should have held).
struct CalibrationSource {
  std::function<StatusOr<bool>(std::map<std::string, HostTensor>*)> next;
  int batches = 0;
  std::string description;  // "500 images (crop 224x224 ...)"
};
StatusOr<CalibrationSource> CalibrationBatches(const std::string& dir, const std::vector<CalibrationInput>& inputs,
                                               const ImagePreprocessOverrides& overrides);

// The calibration options `kiln build` and `kiln quantize` share.
struct CalibArgs {
  std::string calib, calibrator = "entropy", calib_cache;
  double percentile = 99.99;
  int calib_batches = 0;
  std::vector<std::string> keep_fp32;
  double accuracy_budget_pct = 0;
  int holdout_batches = 8;
  ImagePreprocessOverrides image;
};
void AddCalibrationOptions(CLI::App* cmd, CalibArgs* args);

// Fills `cal` from the arguments for a graph whose inputs have fixed shapes: the batch
// source over --calib (when given) and the cache/calibrator settings. Returns the source's
// description and batch count (0 batches: no data, the cache is read).
StatusOr<CalibrationSource> SetUpCalibration(const Graph& g, const CalibArgs& args, BuildOptions::Calibration* cal);

}  // namespace kiln::cli
