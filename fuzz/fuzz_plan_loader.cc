// libFuzzer target: bytes -> the plan loader (src/plan/plan_reader.h), the same code that
// Engine::Load runs on a .plan file. The rule it checks: any bytes give a plan or a clear
// error, never a crash, hang or out-of-bounds read (AddressSanitizer + UBSan watch).
//
// Each input is loaded twice: as it is (the header checks), and with its header's size
// fields and checksum made consistent with the bytes, so that mutations get past the
// checksum to the FlatBuffers verifier and the semantic checks behind it. A plan that loads
// then has its packed-weight descriptors checked and unpacked, as the CPU backend and the
// reference backend do with a CPU plan (descriptors are untrusted bytes too).
#include <cstddef>
#include <cstdint>
#include <vector>

#include "backends/cpu/cpu_backend.h"
#include "ir/op_schema.h"
#include "plan/plan_format.h"
#include "plan/plan_reader.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  (void)kiln::LoadPlanFromBytes(data, size, "fuzz");
  if (size < kiln::kPlanHeaderSize || !kiln::HasPlanMagic(data, size)) return 0;
  std::vector<uint8_t> file(data, data + size);
  kiln::PlanHeader h = kiln::DecodePlanHeader(file.data());
  h.file_size = size;
  if (h.flatbuffer_offset <= size) h.flatbuffer_size = size - h.flatbuffer_offset;
  kiln::EncodePlanHeader(h, file.data());
  kiln::RestampPlanChecksum(file);
  auto plan = kiln::LoadPlanFromBytes(file.data(), file.size(), "fuzz");
  if (!plan.ok()) return 0;
  kiln::Graph& g = *plan->graph;
  for (kiln::NodeId n = 0; n < g.num_nodes(); ++n) {
    const kiln::Node main = kiln::MainPartOf(g.node(n));
    if (main.inputs.size() > 1 && main.inputs[1] != kiln::kNoValue && g.value(main.inputs[1]).constant)
      (void)kiln::cpu::DescribePlanWeights(g.node(n), *g.value(main.inputs[1]).constant);
  }
  (void)kiln::cpu::UnpackWeights(g);
  return 0;
}
