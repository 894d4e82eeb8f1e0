// Stress test for the Engine's thread-safety contract (include/kiln/kiln.h): one immutable
// engine, eight threads, each with its own ExecutionContext, many inferences each, every
// output bit-identical to the single-threaded result. scripts/tsan.sh runs it under
// ThreadSanitizer, which reports any data race between the contexts.
//
// KILN_STRESS_ITERS sets the inferences per thread: default 50, so that the ordinary ctest
// run stays fast; scripts/tsan.sh sets 1000 (8 threads x 1000 = 8000 inferences).
#include <gtest/gtest.h>

#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include "api/tensor_io.h"
#include "kiln/kiln.h"

namespace kiln {
namespace {

int StressIterations() {
  const char* s = std::getenv("KILN_STRESS_ITERS");
  if (s == nullptr || *s == '\0') return 50;
  const int n = std::atoi(s);
  return n > 0 ? n : 50;
}

TEST(EngineThreads, EightContextsManyInferences) {
  constexpr int kThreads = 8, kInputsPerThread = 2;
  const int iters = StressIterations();
  auto image = ReadNpy(std::string(KILN_SOURCE_DIR) + "/models/tiny_cnn_input.npy");
  ASSERT_TRUE(image.ok()) << image.status().ToString();
  const std::vector<int64_t> shape = image->dims();
  BuildOptions opts;
  opts.input_shapes = {{"input", shape}};
  auto loaded = LoadOrBuild(std::string(KILN_SOURCE_DIR) + "/models/tiny_cnn.onnx", opts);
  ASSERT_TRUE(loaded.ok()) << loaded.status().ToString();
  const std::shared_ptr<const Engine> engine = *loaded;
  const std::string in_name = engine->inputs().at(0).name;

  // Each thread alternates between its own two inputs, so a context that returned another
  // context's result (or its own stale one) would not match.
  std::vector<std::vector<float>> inputs;
  for (int i = 0; i < kThreads * kInputsPerThread; ++i) {
    std::vector<float> x(image->data<float>(), image->data<float>() + image->numel());
    for (size_t k = 0; k < x.size(); ++k) x[k] = x[k] * (1.0f + 0.05f * static_cast<float>(i)) + 0.01f * static_cast<float>((k + i) % 7);
    inputs.push_back(std::move(x));
  }
  // The single-threaded results, one context, in order.
  std::vector<std::vector<char>> expected;
  {
    auto ctx = engine->CreateContext();
    for (std::vector<float>& x : inputs) {
      ASSERT_TRUE(ctx->SetInput(in_name, HostTensor::Wrap(x.data(), shape)).ok());
      ASSERT_TRUE(ctx->Run().ok());
      auto y = ctx->Output(0);
      ASSERT_TRUE(y.ok()) << y.status().ToString();
      const char* p = static_cast<const char*>(y->data());
      expected.emplace_back(p, p + y->nbytes());
    }
  }
  for (size_t i = 1; i < expected.size(); ++i) ASSERT_NE(expected[i], expected[0]) << "inputs must give distinct outputs";

  std::vector<int> mismatches(kThreads, 0), errors(kThreads, 0);
  std::vector<std::string> first_error(kThreads);
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t)
    threads.emplace_back([&, t] {
      auto ctx = engine->CreateContext();
      for (int r = 0; r < iters; ++r) {
        const size_t which = static_cast<size_t>(t * kInputsPerThread + r % kInputsPerThread);
        Status st = ctx->SetInput(in_name, HostTensor::Wrap(inputs[which].data(), shape));
        if (st.ok()) st = ctx->Run();
        auto y = st.ok() ? ctx->Output(0) : StatusOr<HostTensor>(st);
        if (!y.ok()) {
          if (errors[t]++ == 0) first_error[t] = y.status().ToString();
          continue;
        }
        const std::vector<char>& want = expected[which];
        if (y->nbytes() != want.size() || std::memcmp(y->data(), want.data(), want.size()) != 0) ++mismatches[t];
      }
    });
  for (std::thread& th : threads) th.join();
  for (int t = 0; t < kThreads; ++t) {
    EXPECT_EQ(errors[t], 0) << "thread " << t << ": " << first_error[t];
    EXPECT_EQ(mismatches[t], 0) << "thread " << t << " of " << iters << " inferences";
  }
}

}  // namespace
}  // namespace kiln
