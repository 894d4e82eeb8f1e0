// `kiln quantize MODEL.onnx -o OUT.onnx (--calib DIR | --calib-cache FILE) [calibration options]`
// Writes kiln's INT8 calibration as a standard QDQ model (explicit quantization, as
// TensorRT's and ONNX Runtime's tools write them): before every convolution kiln runs in
// INT8, its input passes QuantizeLinear -> DequantizeLinear with the calibrated scale
// (int8 with zero point 0; uint8 with zero point 0 for tensors calibration never saw
// negative, unless --int8-only, which TensorRT requires), and its weights become int8
// constants, symmetric per output channel, behind a DequantizeLinear (axis 0). Everything
// else is left as it was. Other runtimes run the file with kiln's scales; `kiln build` of
// it runs the same layers in INT8 with the same scales (no calibration needed).
//
// The calibration runs on kiln's optimized graph; its activations are matched to the
// original model's convolution inputs by tensor name (convolutions whose input the
// optimizer renamed or removed stay float, and are counted).
#include <onnx/onnx_pb.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <map>
#include <set>

#include "api/engine_internal.h"
#include "api/model.h"
#include "api/optimize.h"
#include "base/file.h"
#include "tools/cli/calib_data.h"
#include "tools/cli/commands.h"

namespace kiln::cli {

namespace {

struct QuantizeArgs {
  std::string model, output;
  std::vector<std::string> shapes;
  int threads = 0;
  bool int8_only = false;
  CalibArgs int8;
};

const onnx::TensorProto* FindInitializer(const onnx::GraphProto& g, const std::string& name) {
  for (const onnx::TensorProto& t : g.initializer())
    if (t.name() == name) return &t;
  return nullptr;
}

// A float initializer's values (raw_data or float_data), or an empty vector.
std::vector<float> FloatValues(const onnx::TensorProto& t) {
  std::vector<float> v;
  if (t.data_type() != onnx::TensorProto::FLOAT || t.data_location() == onnx::TensorProto::EXTERNAL) return v;
  int64_t n = 1;
  for (int64_t d : t.dims()) n *= d;
  if (t.has_raw_data()) {
    if (t.raw_data().size() != static_cast<size_t>(n) * 4) return {};
    v.resize(static_cast<size_t>(n));
    std::memcpy(v.data(), t.raw_data().data(), t.raw_data().size());
  } else if (t.float_data_size() == n) {
    v.assign(t.float_data().begin(), t.float_data().end());
  }
  return v;
}

// Sets a float initializer's values (as float_data).
void SetFloats(onnx::TensorProto* t, const std::vector<float>& v) {
  t->clear_raw_data();
  t->clear_float_data();
  for (float f : v) t->add_float_data(f);
}

// Folds every inference BatchNormalization that alone reads a Conv's output into that
// Conv's weights and bias (as ONNX Runtime's quantization pre-processing does): a runtime
// cannot fold it into quantized weights, and a BN between a quantized Conv and its Q keeps
// the pair from becoming one integer convolution. Returns the number folded.
int FoldBatchNorms(onnx::GraphProto* gp) {
  std::map<std::string, int> readers;
  for (const onnx::NodeProto& n : gp->node())
    for (const std::string& i : n.input()) ++readers[i];
  for (const onnx::ValueInfoProto& o : gp->output()) ++readers[o.name()];
  std::map<std::string, int> producer;
  for (int i = 0; i < gp->node_size(); ++i)
    for (const std::string& o : gp->node(i).output()) producer[o] = i;
  auto init = [&](const std::string& name) -> onnx::TensorProto* {
    for (onnx::TensorProto& t : *gp->mutable_initializer())
      if (t.name() == name) return &t;
    return nullptr;
  };
  std::set<int> dead;
  int folded = 0;
  for (int bi = 0; bi < gp->node_size(); ++bi) {
    const onnx::NodeProto& bn = gp->node(bi);
    if (bn.op_type() != "BatchNormalization" || bn.input_size() != 5 || bn.output_size() < 1) continue;
    if (bn.output_size() > 1 && !bn.output(1).empty()) continue;  // training mode outputs
    auto pit = producer.find(bn.input(0));
    if (pit == producer.end() || readers[bn.input(0)] != 1) continue;
    onnx::NodeProto* conv = gp->mutable_node(pit->second);
    if (conv->op_type() != "Conv" || conv->input_size() < 2 || readers[conv->input(1)] != 1) continue;
    onnx::TensorProto* w = init(conv->input(1));
    if (!w || w->dims_size() < 3) continue;
    std::vector<float> wv = FloatValues(*w);
    const int64_t oc = w->dims(0);
    std::vector<std::vector<float>> p(4);
    bool okp = !wv.empty();
    for (int k = 0; k < 4 && okp; ++k) {
      const onnx::TensorProto* t = init(bn.input(k + 1));
      if (t) p[static_cast<size_t>(k)] = FloatValues(*t);
      okp = t && static_cast<int64_t>(p[static_cast<size_t>(k)].size()) == oc;
    }
    onnx::TensorProto* b = conv->input_size() > 2 && !conv->input(2).empty() ? init(conv->input(2)) : nullptr;
    if (!okp || (conv->input_size() > 2 && !conv->input(2).empty() && (!b || readers[conv->input(2)] != 1))) continue;
    std::vector<float> bv = b ? FloatValues(*b) : std::vector<float>(static_cast<size_t>(oc), 0.0f);
    if (static_cast<int64_t>(bv.size()) != oc) continue;
    float eps = 1e-5f;
    for (const onnx::AttributeProto& at : bn.attribute())
      if (at.name() == "epsilon") eps = at.f();
    const int64_t per = static_cast<int64_t>(wv.size()) / oc;
    for (int64_t o = 0; o < oc; ++o) {
      const size_t u = static_cast<size_t>(o);
      const float k = p[0][u] / std::sqrt(p[3][u] + eps);
      for (int64_t i = 0; i < per; ++i) wv[static_cast<size_t>(o * per + i)] *= k;
      bv[u] = (bv[u] - p[2][u]) * k + p[1][u];
    }
    SetFloats(w, wv);
    if (b) {
      SetFloats(b, bv);
    } else {
      onnx::TensorProto* nb = gp->add_initializer();
      nb->set_name(conv->input(1) + "_bn_bias");
      nb->set_data_type(onnx::TensorProto::FLOAT);
      nb->add_dims(oc);
      SetFloats(nb, bv);
      while (conv->input_size() < 3) conv->add_input("");
      conv->set_input(2, nb->name());
    }
    conv->set_output(0, bn.output(0));
    dead.insert(bi);
    ++folded;
  }
  if (!dead.empty()) {
    google::protobuf::RepeatedPtrField<onnx::NodeProto> kept;
    for (int i = 0; i < gp->node_size(); ++i)
      if (!dead.count(i)) *kept.Add() = gp->node(i);
    gp->mutable_node()->Swap(&kept);
  }
  return folded;
}

int Quantize(const QuantizeArgs& a) {
  auto fail = [](const std::string& m) {
    std::cerr << "error: " << m << "\n";
    return 1;
  };
  // 1. kiln's calibration on its optimized graph.
  auto parsed_shapes = ParseShapeSpecs(a.shapes);
  if (!parsed_shapes.ok()) return fail(parsed_shapes.status().message());
  const std::map<std::string, std::vector<int64_t>>& shapes = *parsed_shapes;
  auto model = LoadOnnxModel(a.model);
  if (!model.ok()) return fail(model.status().message());
  Graph& g = *model->graph;
  if (Status st = SetInputShapes(g, shapes); !st.ok()) return fail(a.model + ": " + st.message());
  if (auto r = OptimizeGraph(g); !r.ok()) return fail(a.model + ": " + r.status().message());
  BuildOptions options;
  options.threads = a.threads;
  options.precision = Precision::kInt8;
  auto src = SetUpCalibration(g, a.int8, &options.calibration);
  if (!src.ok()) return fail(a.model + ": " + src.status().message());
  if (src->batches > 0) {
    std::fprintf(stderr, "kiln quantize: calibrating (%s) on %s\n", a.int8.calibrator.c_str(), src->description.c_str());
    options.calibration.on_batch = [total = src->batches](int done) {
      if (done % 50 == 0 || done == total) std::fprintf(stderr, "kiln quantize: %d/%d batches\n", done, total);
    };
  }
  // Besides every INT8 layer's input, its output: ONNX Runtime fuses DQ -> Conv -> Q into
  // an integer convolution only with a Q after it.
  std::vector<ValueId> outputs_to_calibrate;
  for (NodeId n = 0; n < g.num_nodes(); ++n) {
    const Node& node = g.node(n);
    if (node.dead || node.op_type != "Conv") continue;
    for (ValueId o : node.outputs)
      if (o != kNoValue && g.value(o).type.dtype == DType::kFloat32) outputs_to_calibrate.push_back(o);
  }
  auto report = QuantizeInt8(g, options, outputs_to_calibrate);
  if (!report.ok()) return fail(a.model + ": " + report.status().message());
  std::map<std::string, Graph::QuantRange> ranges = report->extra_ranges;
  for (const auto& [name, r] : report->ranges) ranges[name] = r;  // a layer's input range wins

  // 2. The original model, with Q/DQ inserted.
  std::ifstream in(a.model, std::ios::binary);
  onnx::ModelProto mp;
  if (!mp.ParseFromIstream(&in)) return fail(a.model + ": cannot parse the ONNX model again");
  int64_t opset = 0;
  for (const onnx::OperatorSetIdProto& o : mp.opset_import())
    if (o.domain().empty() || o.domain() == "ai.onnx") opset = o.version();
  if (opset < 13)
    return fail(a.model + ": opset " + std::to_string(opset) +
                ": per-channel DequantizeLinear (axis) needs opset 13 or later; convert the model first");
  onnx::GraphProto* gp = mp.mutable_graph();
  const int bn_folded = FoldBatchNorms(gp);
  std::set<std::string> names;
  for (const onnx::TensorProto& t : gp->initializer()) names.insert(t.name());
  for (const onnx::NodeProto& n : gp->node())
    for (const std::string& o : n.output()) names.insert(o);
  for (const onnx::ValueInfoProto& v : gp->input()) names.insert(v.name());
  auto fresh = [&](const std::string& base) {
    std::string n = base;
    for (int i = 1; names.count(n); ++i) n = base + "_" + std::to_string(i);
    names.insert(n);
    return n;
  };
  auto scalar = [&](const std::string& name, int type, double value) {
    onnx::TensorProto* t = gp->add_initializer();
    t->set_name(name);
    t->set_data_type(type);
    if (type == onnx::TensorProto::FLOAT) t->add_float_data(static_cast<float>(value));
    else t->add_int32_data(static_cast<int32_t>(value));
  };
  std::vector<onnx::NodeProto> out_nodes;
  // Appends `op`(x, scale, zero point) -> a fresh output named after `base`; axis >= 0 for
  // per-axis (de)quantization. Returns the output's name.
  auto add_qdq_node = [&](const char* op, const std::string& base, const std::string& x, const std::string& scale,
                          const std::string& zero, int axis) {
    onnx::NodeProto n;
    n.set_op_type(op);
    n.set_name(fresh(base + "_" + op));
    const std::string out = fresh(base + (std::string(op) == "QuantizeLinear" ? "_quantized" : "_dequantized"));
    n.add_input(x), n.add_input(scale), n.add_input(zero), n.add_output(out);
    if (axis >= 0) {
      onnx::AttributeProto* at = n.add_attribute();
      at->set_name("axis");
      at->set_type(onnx::AttributeProto::INT);
      at->set_i(axis);
    }
    out_nodes.push_back(std::move(n));
    return out;
  };
  std::map<std::string, std::string> act_dq;      // activation -> its DequantizeLinear output
  std::map<std::string, std::string> weight_dq;   // weight initializer -> its DequantizeLinear output
  std::map<std::string, std::string> weight_scale;  // weight initializer -> its scale initializer
  std::set<std::string> dropped;  // float initializers replaced by quantized ones
  // Q -> DQ after a tensor's producer; every reader then reads the DQ output.
  auto quantize_tensor = [&](const std::string& x) {
    auto it = ranges.find(x);
    if (it == ranges.end() || act_dq.count(x)) return;
    const bool u8 = it->second.is_unsigned && !a.int8_only;
    double s = it->second.scale;
    if (it->second.is_unsigned && a.int8_only) s = it->second.scale * 255.0 / 127.0;  // same threshold, s8 grid
    const std::string sn = fresh(x + "_scale"), zn = fresh(x + "_zero_point");
    scalar(sn, onnx::TensorProto::FLOAT, s);
    scalar(zn, u8 ? onnx::TensorProto::UINT8 : onnx::TensorProto::INT8, 0);
    const std::string qn = add_qdq_node("QuantizeLinear", x, x, sn, zn, -1);
    act_dq[x] = add_qdq_node("DequantizeLinear", x, qn, sn, zn, -1);
  };
  for (const onnx::ValueInfoProto& v : gp->input()) quantize_tensor(v.name());
  int convs = 0, quantized = 0;
  std::vector<std::string> skipped;
  for (const onnx::NodeProto& node : gp->node()) {
    onnx::NodeProto q = node;
    for (int i = 0; i < q.input_size(); ++i)
      if (auto it = act_dq.find(q.input(i)); it != act_dq.end()) q.set_input(i, it->second);
    const bool conv = node.op_type() == "Conv" && (node.domain().empty() || node.domain() == "ai.onnx") && node.input_size() >= 2;
    convs += conv;
    const onnx::TensorProto* w = conv ? FindInitializer(*gp, node.input(1)) : nullptr;
    std::vector<float> wv = w ? FloatValues(*w) : std::vector<float>();
    if (conv && (!report->ranges.count(node.input(0)) || wv.empty() || w->dims_size() < 3)) {
      skipped.push_back(node.name().empty() ? node.output(0) : node.name());
    } else if (conv) {
      // The weights: int8 per output channel behind a DequantizeLinear(axis 0).
      const std::string& wname = node.input(1);
      if (!weight_dq.count(wname)) {
      const int64_t oc = w->dims(0);
      const int64_t per = static_cast<int64_t>(wv.size()) / oc;
      onnx::TensorProto* wq = gp->add_initializer();
      wq->set_name(fresh(wname + "_quantized"));
      wq->set_data_type(onnx::TensorProto::INT8);
      *wq->mutable_dims() = w->dims();
      std::string bytes(wv.size(), '\0');
      onnx::TensorProto* ws = gp->add_initializer();
      ws->set_name(fresh(wname + "_scale"));
      ws->set_data_type(onnx::TensorProto::FLOAT);
      ws->add_dims(oc);
      onnx::TensorProto* wz = gp->add_initializer();
      wz->set_name(fresh(wname + "_zero_point"));
      wz->set_data_type(onnx::TensorProto::INT8);
      wz->add_dims(oc);
      std::string zeros(static_cast<size_t>(oc), '\0');
      for (int64_t o = 0; o < oc; ++o) {
        float amax = 0;
        for (int64_t i = 0; i < per; ++i) amax = std::max(amax, std::fabs(wv[static_cast<size_t>(o * per + i)]));
        const float s = amax > 0 ? amax / 127.0f : 1.0f;
        ws->add_float_data(s);
        for (int64_t i = 0; i < per; ++i)
          bytes[static_cast<size_t>(o * per + i)] =
              static_cast<char>(static_cast<int8_t>(std::clamp(std::nearbyint(wv[static_cast<size_t>(o * per + i)] / s), -127.0f, 127.0f)));
      }
      wq->set_raw_data(bytes);
      wz->set_raw_data(zeros);
      weight_dq[wname] = add_qdq_node("DequantizeLinear", wname, wq->name(), ws->name(), wz->name(), 0);
      weight_scale[wname] = ws->name();
      dropped.insert(wname);
      }
      q.set_input(1, weight_dq[wname]);
      // The bias as int32 in units of (input scale x weight scale), behind a DequantizeLinear:
      // ONNX Runtime forms an integer convolution only when every input is dequantized.
      const onnx::TensorProto* b = node.input_size() > 2 && !node.input(2).empty() ? FindInitializer(*gp, node.input(2)) : nullptr;
      std::vector<float> bv = b ? FloatValues(*b) : std::vector<float>();
      if (!bv.empty() && static_cast<int64_t>(bv.size()) == w->dims(0)) {
        const auto& r = report->ranges.at(node.input(0));
        const double sx = r.is_unsigned && a.int8_only ? r.scale * 255.0 / 127.0 : r.scale;
        const auto* wscale = FindInitializer(*gp, weight_scale[wname]);
        onnx::TensorProto* bq = gp->add_initializer();
        bq->set_name(fresh(node.input(2) + "_quantized"));
        bq->set_data_type(onnx::TensorProto::INT32);
        bq->add_dims(static_cast<int64_t>(bv.size()));
        onnx::TensorProto* bs = gp->add_initializer();
        bs->set_name(fresh(node.input(2) + "_scale"));
        bs->set_data_type(onnx::TensorProto::FLOAT);
        bs->add_dims(static_cast<int64_t>(bv.size()));
        onnx::TensorProto* bz = gp->add_initializer();
        bz->set_name(fresh(node.input(2) + "_zero_point"));
        bz->set_data_type(onnx::TensorProto::INT32);
        bz->add_dims(static_cast<int64_t>(bv.size()));
        for (size_t o = 0; o < bv.size(); ++o) {
          const double sc = sx * wscale->float_data(static_cast<int>(o));
          bs->add_float_data(static_cast<float>(sc));
          bq->add_int32_data(static_cast<int32_t>(std::clamp(std::nearbyint(bv[o] / sc), -2147483647.0, 2147483647.0)));
          bz->add_int32_data(0);
        }
        q.set_input(2, add_qdq_node("DequantizeLinear", node.input(2), bq->name(), bs->name(), bz->name(), 0));
        dropped.insert(node.input(2));
      }
      ++quantized;
    }
    out_nodes.push_back(q);
    for (const std::string& o : node.output()) quantize_tensor(o);
  }
  gp->clear_node();
  for (onnx::NodeProto& n : out_nodes) *gp->add_node() = std::move(n);
  // Float weights no node reads any more go (the file holds the int8 copy).
  std::set<std::string> read;
  for (const onnx::NodeProto& n : gp->node())
    for (const std::string& i : n.input()) read.insert(i);
  for (const onnx::ValueInfoProto& o : gp->output()) read.insert(o.name());
  auto* inits = gp->mutable_initializer();
  for (int i = inits->size() - 1; i >= 0; --i)
    if (!read.count(inits->Get(i).name()) && dropped.count(inits->Get(i).name())) inits->DeleteSubrange(i, 1);

  std::string bytes;
  if (!mp.SerializeToString(&bytes)) return fail("cannot serialize the QDQ model (over 2 GiB?)");
  {
    auto w = AtomicFileWriter::Create(a.output);
    if (!w.ok()) return fail(w.status().message());
    if (Status st = w->Write(bytes.data(), bytes.size()); !st.ok()) return fail(st.message());
    if (Status st = w->Commit(); !st.ok()) return fail(st.message());
  }
  // The file must import (what other tools will do first).
  auto check = LoadOnnxModel(a.output);
  if (!check.ok()) {
    std::remove(a.output.c_str());
    return fail("internal error: the QDQ model written does not import: " + check.status().message());
  }
  std::printf("%s: %d of %d convolutions quantized (QDQ, %s activations, int8 per-channel weights, int32 bias; %d "
              "BatchNormalizations folded first), %s\n",
              a.output.c_str(), quantized, convs, a.int8_only ? "int8" : "int8/uint8", bn_folded,
              report->calibrated ? "calibrated" : "scales from the cache");
  if (!skipped.empty()) {
    std::printf("  left float (input not a calibrated tensor of the optimized graph, or weights not a float initializer):");
    for (size_t i = 0; i < skipped.size() && i < 10; ++i) std::printf(" %s", skipped[i].c_str());
    if (skipped.size() > 10) std::printf(" and %zu more", skipped.size() - 10);
    std::printf("\n");
  }
  return 0;
}

}  // namespace

Command AddQuantizeCommand(CLI::App& app) {
  auto args = std::make_shared<QuantizeArgs>();
  CLI::App* cmd = app.add_subcommand("quantize", "Calibrate a model and write it as a standard QDQ ONNX model (INT8 scales for other runtimes)");
  cmd->add_option("model", args->model, "ONNX model file")->required()->check(kPath);
  cmd->add_option("-o,--output", args->output, "The QDQ .onnx file to write")->required()->check(kPath);
  cmd->add_option("--shapes", args->shapes, "NAME=DIMS: fix an input's shape (dynamic dims), as for kiln build");
  cmd->add_option("--threads", args->threads, "Threads for the calibration runs (0 = all cores)");
  cmd->add_flag("--int8-only", args->int8_only, "Only int8 activations (TensorRT's requirement; default: uint8 for non-negative tensors)");
  AddCalibrationOptions(cmd, &args->int8);
  return {cmd, [args] { return Quantize(*args); }};
}

}  // namespace kiln::cli
