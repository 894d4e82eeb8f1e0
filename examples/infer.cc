// The smallest kiln program: load a model, run it on one input, print the outputs.
// Usage: kiln_example_infer MODEL(.onnx|.plan)
#include <kiln/kiln.h>

#include <iostream>
#include <vector>

int main(int argc, char** argv) {
  if (argc != 2) { std::cerr << "usage: " << argv[0] << " MODEL\n"; return 2; }
  auto engine = kiln::Engine::Load(argv[1]);
  if (!engine.ok()) { std::cerr << engine.status().ToString() << "\n"; return 1; }
  const kiln::TensorInfo& in = (*engine)->inputs().at(0);
  std::vector<int64_t> shape = in.shape;
  for (int64_t& d : shape) d = d < 0 ? 1 : d;  // dynamic dims: batch 1
  kiln::HostTensor x = kiln::HostTensor::Allocate(in.dtype, shape);
  std::fill_n(static_cast<char*>(x.data()), x.nbytes(), 0);
  auto outputs = (*engine)->Infer({{in.name, x}});
  if (!outputs.ok()) { std::cerr << outputs.status().ToString() << "\n"; return 1; }
  for (const auto& [name, t] : *outputs) std::cout << name << ": " << t.numel() << " x " << kiln::DataTypeName(t.dtype()) << "\n";
  return 0;
}
