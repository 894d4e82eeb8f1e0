// The runtime alone (libkiln_runtime): load a plan, run it on zeros, print the outputs.
// Usage: kiln_example_runtime_infer MODEL.plan   (kiln build MODEL.onnx -o MODEL.plan)
#include <kiln/runtime.h>

#include <iostream>

int main(int argc, char** argv) {
  if (argc != 2) { std::cerr << "usage: " << argv[0] << " MODEL.plan\n"; return 2; }
  auto engine = kiln::Engine::Load(argv[1]);
  if (!engine.ok()) { std::cerr << engine.status().ToString() << "\n"; return 1; }
  std::map<std::string, kiln::HostTensor> inputs;
  for (const kiln::TensorInfo& in : (*engine)->inputs()) inputs[in.name] = kiln::HostTensor::Copy<char>(in.dtype, in.shape, {});
  auto outputs = (*engine)->Infer(inputs);
  if (!outputs.ok()) { std::cerr << outputs.status().ToString() << "\n"; return 1; }
  for (const auto& [name, t] : *outputs) std::cout << name << ": " << t.numel() << " x " << kiln::DataTypeName(t.dtype()) << "\n";
  return 0;
}
