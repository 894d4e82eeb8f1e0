// Helpers for pass tests: build small graphs in a few lines, run a pass, compare the IR
// text with a golden string and the numbers with the unoptimized graph.
#pragma once

#include <gtest/gtest.h>

#include <memory>
#include <random>
#include <string>
#include <vector>

#include "backends/ref/kernel.h"
#include "ir/graph.h"
#include "passes/pass.h"

namespace kiln::cpu {
class Program;
}  // namespace kiln::cpu

namespace kiln::testing {

// An attribute map from {name, Attr} pairs.
AttrMap Attrs(std::initializer_list<std::pair<const char*, Attr>> kv);
// A float32 tensor of N(0, scale^2) values from a seeded generator.
Tensor RandomTensor(std::vector<int64_t> dims, uint32_t seed, float scale = 1.f);

class GraphBuilder {
 public:
  explicit GraphBuilder(std::string name = "g") { g_.name = std::move(name); }
  ValueId Input(const std::string& name, DType dt, std::vector<int64_t> dims);
  ValueId Const(const std::string& name, Tensor t);
  // Adds `op(inputs) -> outputs` named `name`; returns output 0.
  ValueId Op(const std::string& op, const std::string& name, std::vector<ValueId> inputs, AttrMap attrs = {},
             int num_outputs = 1);
  void Output(ValueId v) { g_.outputs().push_back(v); }
  // Infers all types (reference evaluator for data propagation); fails the test on error.
  Graph Build();

 private:
  Graph g_;
};

// Runs `pass` until it reports no change, verifying the graph and re-inferring types after each run.
void RunPassToFixedPoint(PassFn pass, Graph& g, PassContext* ctx = nullptr);

// Runs both graphs on the same random inputs and compares every output (rtol, atol).
::testing::AssertionResult SameOutputs(const Graph& a, const Graph& b, double rtol = 1e-4, double atol = 1e-5,
                                       uint32_t seed = 1);

// The CPU backend (src/backends/cpu, one thread, no tactic timing) on `optimized` vs the
// reference backend on `original`, same seeded inputs: |cpu - ref| <= tol * max(1, |ref|).
::testing::AssertionResult CpuMatchesReference(const Graph& original, const Graph& optimized, double tol);
// A compiled CPU program (of an optimized `original`) against the reference backend on
// `original`, as CpuMatchesReference.
::testing::AssertionResult ProgramMatchesReference(const Graph& original, std::shared_ptr<const cpu::Program> program,
                                                   double tol);
// The steps of `optimized`'s CPU program that run on a reference implementation (the
// slow paths `kiln build --strict` refuses), one line each; an error line if it does not compile.
std::vector<std::string> CpuSlowSteps(const Graph& optimized);

// Live node op types in topological order, e.g. "Conv+Relu,MaxPool" (fused epilogues joined by '+').
std::string OpSequence(const Graph& g);

}  // namespace kiln::testing
