// A network defined layer by layer (no ONNX file): a LeNet-like CNN with made-up,
// deterministic weights, built into an engine, saved as a plan, loaded back and run.
// Usage: kiln_example_network_def [PLAN_PATH]   (default: lenet.plan in the current dir)
#include <kiln/kiln.h>
#include <kiln/network.h>

#include <cmath>
#include <iomanip>
#include <iostream>
#include <vector>

namespace {

// n weights for a layer with `fan_in` inputs: a fixed pattern scaled like He initialization.
std::vector<float> MadeUpWeights(size_t n, size_t fan_in, int seed) {
  std::vector<float> w(n);
  const float scale = std::sqrt(2.0f / static_cast<float>(fan_in));
  for (size_t i = 0; i < n; ++i) w[i] = scale * std::sin(0.7f * static_cast<float>(i) + 1.3f * static_cast<float>(seed));
  return w;
}

}  // namespace

int main(int argc, char** argv) {
  const std::string plan_path = argc > 1 ? argv[1] : "lenet.plan";
  using kiln::ActivationType;
  using kiln::PoolingType;

  kiln::NetworkDefinition net;
  auto x = net.AddInput("image", kiln::DataType::kFloat32, {1, 1, 28, 28});
  auto c1 = net.AddConvolution(x, 6, {5, 5}, MadeUpWeights(6 * 1 * 25, 25, 1), MadeUpWeights(6, 25, 2),
                               kiln::ConvParams{.pads = {2, 2}}, "conv1");  // [1, 6, 28, 28]
  auto r1 = net.AddActivation(c1, ActivationType::kRelu, "relu1");
  auto p1 = net.AddPooling(r1, PoolingType::kMax, {2, 2}, {}, "pool1");  // [1, 6, 14, 14]
  auto c2 = net.AddConvolution(p1, 16, {5, 5}, MadeUpWeights(16 * 6 * 25, 150, 3), MadeUpWeights(16, 150, 4), {},
                               "conv2");  // [1, 16, 10, 10]
  auto r2 = net.AddActivation(c2, ActivationType::kRelu, "relu2");
  auto p2 = net.AddPooling(r2, PoolingType::kMax, {2, 2}, {}, "pool2");  // [1, 16, 5, 5]
  auto f = net.AddFlatten(p2, 1, "flatten");                             // [1, 400]
  auto fc1 = net.AddFullyConnected(f, 120, MadeUpWeights(120 * 400, 400, 5), MadeUpWeights(120, 400, 6), "fc1");
  auto r3 = net.AddActivation(fc1, ActivationType::kRelu, "relu3");
  auto fc2 = net.AddFullyConnected(r3, 84, MadeUpWeights(84 * 120, 120, 7), MadeUpWeights(84, 120, 8), "fc2");
  auto r4 = net.AddActivation(fc2, ActivationType::kRelu, "relu4");
  auto fc3 = net.AddFullyConnected(r4, 10, MadeUpWeights(10 * 84, 84, 9), MadeUpWeights(10, 84, 10), "fc3");
  auto probs = net.AddSoftmax(fc3, -1, "softmax");
  (void)net.MarkOutput(probs, "probs");
  // Any mistake above is reported here (and was recorded by the call that made it).
  if (!net.status().ok()) { std::cerr << net.status().ToString() << "\n"; return 1; }

  auto built = kiln::BuildFromNetwork(net);
  if (!built.ok()) { std::cerr << built.status().ToString() << "\n"; return 1; }
  if (kiln::Status st = kiln::SavePlan(**built, plan_path); !st.ok()) { std::cerr << st.ToString() << "\n"; return 1; }
  std::cout << "built " << net.num_layers() << " layers, saved " << plan_path << "\n";

  auto engine = kiln::Engine::Load(plan_path);  // a plan loads without the optimizer
  if (!engine.ok()) { std::cerr << engine.status().ToString() << "\n"; return 1; }
  std::vector<float> image(28 * 28, 0.0f);
  for (int i = 6; i < 22; ++i) image[static_cast<size_t>(i * 28 + 14)] = 1.0f;  // a "1": one vertical stroke
  auto out = (*engine)->Infer({{"image", kiln::HostTensor::Wrap(image.data(), {1, 1, 28, 28})}});
  if (!out.ok()) { std::cerr << out.status().ToString() << "\n"; return 1; }
  const kiln::HostTensor& p = out->at("probs");
  std::cout << "probs:";
  for (int64_t i = 0; i < p.numel(); ++i) std::cout << " " << std::fixed << std::setprecision(4) << p.data_as<float>()[i];
  std::cout << "\n";
  return 0;
}
