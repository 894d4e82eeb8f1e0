// Opset normalization for the control-flow family. If, Loop, the sequence and optional
// ops only ever gained types across versions (sequences, optionals), so their newest form
// reads every older one unchanged. Scan-8 differs in meaning and is marked.
#include "frontend/onnx/normalize.h"
#include "ir/ops/families.h"

namespace kiln {

namespace {

// Scan-8 has a leading batch axis on every state and scan input, scans along axis 1, takes
// an optional sequence_lens as input 0 and names its input directions `directions`. Its
// semantics (one independent scan per batch entry, outputs padded to the longest
// sequence) cannot be expressed with the opset-9 attributes, so the node keeps its
// inputs and is marked with `kiln.scan8_batched`, which inference and the kernel read.
Status NormalizeScan(NormalizeContext& ctx) {
  if (ctx.opset() >= 9) return Status::OK();
  Node& node = ctx.node();
  if (node.inputs.empty()) return InvalidArgument("Scan-8 takes sequence_lens (may be empty) before its other inputs");
  for (const char* attr : {"scan_input_axes", "scan_output_axes", "scan_input_directions", "scan_output_directions"})
    if (node.attrs.has(attr)) return InvalidArgument("attribute '", attr, "' does not exist in Scan-8");
  if (const Attr* dirs = node.attrs.find("directions")) {
    Attr moved = *dirs;
    node.attrs.erase("directions");
    node.attrs.set("scan_input_directions", std::move(moved));
  }
  node.attrs.set("kiln.scan8_batched", Attr::Int(1));
  return Status::OK();
}

}  // namespace

void RegisterControlFlowNormalizers(NormalizerTable& t) { t.Add("Scan", &NormalizeScan); }

}  // namespace kiln
