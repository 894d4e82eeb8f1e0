// Layouts decided along chains (issue "no cliffs", part 3): a convolution's candidates
// include its input's layout kept through it ("direct@in"), and the reorders a candidate
// in a foreign layout costs are priced into its time. With a timer whose times are fixed,
// the choice is deterministic: these tests drive the cost model both ways, check the
// recorded tactics replay without a timer (a plan's load), and that concats of pieces in
// mixed layouts copy in the layout most of their bytes are in.
#include <gtest/gtest.h>

#include <map>

#include "api/optimize.h"
#include "backends/cpu/cpu_backend.h"
#include "base/tactic_timer.h"
#include "passes/pass_test_util.h"

namespace kiln::testing {
namespace {

// Times by key: reorders `reorder_ms`, a kept-layout candidate `keep_ms`, any other `other_ms`.
// Runs each candidate once (it must run) and counts the keys it was asked about.
class FixedTimer : public TacticTimer {
 public:
  // `cheap_keep`: a key substring (a layer's weight dims) whose kept-layout candidates take
  // 0.1 ms whatever keep_ms says; `cheap`: one whose candidates (any) take 0.1 ms.
  // Whole programs (cpu::Compile's seed choice, keys "program ... seed=X"): `seed_blocked_ms`
  // for the blocked seed, 1 ms for the other (default: the per-layer choice wins).
  FixedTimer(double reorder_ms, double keep_ms, double other_ms, std::string cheap_keep = "", std::string cheap = "",
             double seed_blocked_ms = 10.0)
      : reorder_ms_(reorder_ms), keep_ms_(keep_ms), other_ms_(other_ms), cheap_keep_(std::move(cheap_keep)),
        cheap_(std::move(cheap)), seed_blocked_ms_(seed_blocked_ms) {}
  std::optional<double> Lookup(const std::string& key) const override {
    auto it = seen_.find(key);
    if (it == seen_.end()) return std::nullopt;
    return it->second;
  }
  StatusOr<double> Measure(const std::string& key, const std::function<Status()>& run, const TimingBudget&) override {
    KILN_RETURN_IF_ERROR(run());
    const bool keep = key.find("@in") != std::string::npos;
    if (key.rfind("program ", 0) == 0) {
      const double ms = key.find("seed=blocked") != std::string::npos ? seed_blocked_ms_ : 1.0;
      seen_[key] = ms;
      return ms;
    }
    const double ms = key.rfind("reorder ", 0) == 0                                      ? reorder_ms_
                      : keep && !cheap_keep_.empty() && key.find(cheap_keep_) != std::string::npos ? 0.1
                      : !cheap_.empty() && key.find(cheap_) != std::string::npos                 ? 0.1
                      : keep                                                             ? keep_ms_
                                                                                         : other_ms_;
    seen_[key] = ms;
    return ms;
  }
  int reorders_timed() const {
    int n = 0;
    for (const auto& [k, v] : seen_) n += k.rfind("reorder ", 0) == 0;
    return n;
  }

 private:
  double reorder_ms_, keep_ms_, other_ms_;
  std::string cheap_keep_, cheap_;
  double seed_blocked_ms_;
  std::map<std::string, double> seen_;
};

ValueId Conv(GraphBuilder& b, const std::string& name, ValueId x, int64_t cin, int64_t cout, int64_t k, int64_t group,
             uint32_t seed) {
  const int64_t p = k / 2;
  return b.Op("Relu", name + "_relu",
              {b.Op("Conv", name,
                    {x, b.Const(name + "_w", RandomTensor({cout, cin / group, k, k}, seed, 0.3f)),
                     b.Const(name + "_b", RandomTensor({cout}, seed + 1))},
                    Attrs({{"pads", Attr::Ints({p, p, p, p})}, {"group", Attr::Int(group)}}))});
}

// RegNet's block: 1x1, grouped 3x3, 1x1 -- kernels whose preferred layouts differ.
Graph RegNetLikeChain() {
  GraphBuilder b;
  ValueId x = b.Input("x", DType::kFloat32, {1, 32, 14, 14});
  ValueId h = Conv(b, "a", x, 32, 64, 1, 1, 1);
  h = Conv(b, "b", h, 64, 64, 3, 4, 3);
  h = Conv(b, "c", h, 64, 64, 1, 1, 5);
  h = Conv(b, "d", h, 64, 64, 3, 1, 7);
  b.Output(Conv(b, "e", h, 64, 32, 1, 1, 9));
  return b.Build();
}

struct Compiled {
  std::shared_ptr<const cpu::Program> program;
  std::shared_ptr<const Graph> graph;
};

Compiled CompileWith(const Graph& g, TacticTimer* timer) {
  auto o = std::make_shared<Graph>(g);
  EXPECT_TRUE(OptimizeGraph(*o).ok());
  cpu::CompileOptions opts;
  opts.threads = 1;
  opts.timer = timer;
  auto p = cpu::Compile(o, opts);
  EXPECT_TRUE(p.ok()) << p.status().ToString();
  return {p.ok() ? *p : nullptr, o};
}

int CountOp(const cpu::Program& p, const std::string& op) {
  int n = 0;
  for (const cpu::StepInfo& s : cpu::Steps(p)) n += s.op == op;
  return n;
}

// A plan records the tactics; compiling its graph again without a timer (a load) must give
// the same steps (implementation and tactic). Returns the replayed program (null on error).
std::shared_ptr<const cpu::Program> ReplayWithoutATimer(const Compiled& c) {
  auto replay = std::make_shared<Graph>(*c.graph);
  for (const cpu::StepInfo& s : cpu::Steps(*c.program))
    if (s.node >= 0 && !s.tactic.empty()) replay->node(s.node).attrs.set("kiln.tactic", Attr::String(s.tactic));
  cpu::CompileOptions opts;
  opts.threads = 1;
  auto p = cpu::Compile(replay, opts);
  EXPECT_TRUE(p.ok()) << p.status().ToString();
  if (!p.ok()) return nullptr;
  const auto& a = cpu::Steps(*c.program);
  const auto& b = cpu::Steps(**p);
  EXPECT_EQ(a.size(), b.size());
  for (size_t i = 0; i < a.size() && i < b.size(); ++i) {
    EXPECT_EQ(a[i].impl, b[i].impl) << a[i].name;
    EXPECT_EQ(a[i].tactic, b[i].tactic) << a[i].name;
  }
  return *p;
}

void ExpectMatchesReference(const Graph& original, const std::shared_ptr<const cpu::Program>& program) {
  EXPECT_TRUE(ProgramMatchesReference(original, program, 1e-3));
}

TEST(LayoutChoice, KeptLayoutWinsWhenReordersCostMore) {
  const Graph g = RegNetLikeChain();
  FixedTimer timer(/*reorder=*/0.5, /*keep=*/1.0, /*other=*/1.0);
  Compiled c = CompileWith(g, &timer);
  ASSERT_TRUE(c.program);
  // The graph input is row-major; every layer keeps the layout it gets: no reorder at all.
  EXPECT_EQ(CountOp(*c.program, "Reorder"), 0);
  EXPECT_GT(timer.reorders_timed(), 0);  // the foreign layouts were priced
  ExpectMatchesReference(g, c.program);
}

TEST(LayoutChoice, ForeignLayoutWinsWhenItIsFasterByMoreThanItsReorders) {
  const Graph g = RegNetLikeChain();
  FixedTimer timer(/*reorder=*/0.01, /*keep=*/5.0, /*other=*/1.0);
  Compiled c = CompileWith(g, &timer);
  ASSERT_TRUE(c.program);
  for (const cpu::StepInfo& s : cpu::Steps(*c.program))
    if (s.op == "Conv") EXPECT_EQ(s.tactic.find("@in"), std::string::npos) << s.name << ": " << s.tactic;
  ExpectMatchesReference(g, c.program);
}

// A plan records the tactics; compiling its graph again without a timer gives the same steps.
TEST(LayoutChoice, RecordedTacticsReplayWithoutATimer) {
  const Graph g = RegNetLikeChain();
  FixedTimer timer(0.5, 1.0, 1.0);
  Compiled c = CompileWith(g, &timer);
  ASSERT_TRUE(c.program);
  const std::shared_ptr<const cpu::Program> replayed = ReplayWithoutATimer(c);
  ASSERT_TRUE(replayed);
  ExpectMatchesReference(g, replayed);
}

// LR-ASPP's head: a convolution whose epilogue multiplies by a per-sample, per-channel
// gate ([N, C, 1, 1], N = 2), its input in the layout the stem chose (channels-last on
// AVX-512, where oneDNN 2.6's gemm convolution gets the gate wrong: KnownWrongConv), the
// gated convolution offered its input's layout at a tenth of any other's time.
TEST(LayoutChoice, KeptLayoutWithAPerSampleGate) {
  GraphBuilder b;
  ValueId x = b.Input("x", DType::kFloat32, {2, 96, 10, 10});
  ValueId h = Conv(b, "stem", x, 96, 64, 3, 1, 31);
  ValueId gate = b.Op("Sigmoid", "gate", {Conv(b, "scale", b.Op("GlobalAveragePool", "gap", {h}), 64, 16, 1, 1, 33)});
  ValueId y = b.Op("Mul", "gated", {Conv(b, "cbr", h, 64, 16, 1, 1, 35), gate});
  b.Output(Conv(b, "head", y, 16, 8, 1, 1, 37));
  const Graph g = b.Build();
  FixedTimer timer(/*reorder=*/0, /*keep=*/5.0, /*other=*/1.0, /*cheap_keep=*/"w[16,64,1,1]");
  Compiled c = CompileWith(g, &timer);
  ASSERT_TRUE(c.program);
  ExpectMatchesReference(g, c.program);
}

// SqueezeNet's fire module with the 3x3 expansion on Winograd (blocked output) and the 1x1
// in its input's layout: the concat's buffer takes the 1x1's layout, the Winograd piece is
// reordered densely and copied (not reordered into a strided part of the buffer: oneDNN's
// slow generic reorder, which does not scale over threads).
TEST(LayoutChoice, FireModuleWithAWinogradPiece) {
  GraphBuilder b;
  ValueId x = b.Input("x", DType::kFloat32, {1, 32, 14, 14});
  ValueId sq = Conv(b, "squeeze", x, 32, 16, 1, 1, 41);
  ValueId cat = b.Op("Concat", "cat", {Conv(b, "e1", sq, 16, 32, 1, 1, 43), Conv(b, "e3", sq, 16, 32, 3, 1, 45)},
                     Attrs({{"axis", Attr::Int(1)}}));
  b.Output(Conv(b, "next", cat, 64, 16, 1, 1, 47));
  const Graph g = b.Build();
  FixedTimer timer(/*reorder=*/0.01, /*keep=*/1.0, /*other=*/1.0, "", /*cheap=*/"winograd");
  Compiled c = CompileWith(g, &timer);
  ASSERT_TRUE(c.program);
  for (const cpu::StepInfo& st : cpu::Steps(*c.program))
    if (st.op == "Concat") EXPECT_EQ(st.impl.rfind("kiln:concat_copy", 0), 0u) << st.name << ": " << st.impl;
  EXPECT_TRUE(cpu::SlowSteps(*c.program).empty());
  ExpectMatchesReference(g, c.program);
}

// Two Winograd convolutions (blocked nChw16c outputs) into one channel Concat. At batch 1
// a block-aligned channel slice of a blocked buffer is one dense run of bytes: each
// convolution writes its piece straight into the concat's buffer (a dense descriptor at a
// byte offset; oneDNN's convolutions take no strided destination) and no concat step runs.
// At batch 2 the slices interleave per sample: a copy concat, same results.
TEST(LayoutChoice, BlockedPiecesWriteIntoTheConcatAtBatchOne) {
  for (int64_t batch : {1, 2}) {
    SCOPED_TRACE(StrCat("batch ", batch));
    GraphBuilder b;
    // Two inputs, so that sibling fusion does not merge w1 and w2 into one wider conv.
    ValueId x = b.Input("x", DType::kFloat32, {batch, 16, 10, 10});
    ValueId y = b.Input("y", DType::kFloat32, {batch, 16, 10, 10});
    ValueId cat = b.Op("Concat", "cat", {Conv(b, "w1", x, 16, 32, 3, 1, 51), Conv(b, "w2", y, 16, 48, 3, 1, 53)},
                       Attrs({{"axis", Attr::Int(1)}}));
    b.Output(Conv(b, "next", cat, 80, 16, 3, 1, 55));
    const Graph g = b.Build();
    FixedTimer timer(/*reorder=*/0.01, /*keep=*/1.0, /*other=*/1.0, "", /*cheap=*/"winograd");
    Compiled c = CompileWith(g, &timer);
    ASSERT_TRUE(c.program);
    const std::shared_ptr<const cpu::Program>* p = &c.program;
    int winograd = 0;
    for (const cpu::StepInfo& st : cpu::Steps(**p)) winograd += st.tactic.find("winograd") != std::string::npos;
    if (winograd < 2) GTEST_SKIP() << "no Winograd kernel on this CPU (AVX-512 only)";
    std::string steps;
    for (const cpu::StepInfo& st : cpu::Steps(**p)) steps += StrCat("\n  ", st.name, " ", st.op, " ", st.impl, " ", st.tactic);
    EXPECT_EQ(CountOp(**p, "Concat"), batch == 1 ? 0 : 1) << steps;
    EXPECT_TRUE(cpu::SlowSteps(**p).empty());
    ExpectMatchesReference(g, *p);
  }
}

// The whole-program choice (cpu::Compile with a timer): the program is also compiled with
// its chains seeded channel-blocked; on equal times the one with fewer layout copies wins
// (here: the fire module's expansions write into the concat's blocked buffer, no copy, no
// reorder but the input's). A plan's recorded tactics replay that program without a timer.
TEST(LayoutChoice, BlockedSeedWinsATieWithFewerCopiesAndReplays) {
  GraphBuilder b;
  ValueId h = b.Input("x", DType::kFloat32, {1, 32, 14, 14});
  for (int fire = 0; fire < 2; ++fire) {  // two SqueezeNet fire modules
    const std::string f = StrCat("f", fire);
    const uint32_t seed = 61 + 10 * static_cast<uint32_t>(fire);
    ValueId sq = Conv(b, f + "_squeeze", h, fire == 0 ? 32 : 64, 16, 1, 1, seed);
    h = b.Op("Concat", f + "_cat", {Conv(b, f + "_e1", sq, 16, 32, 1, 1, seed + 2), Conv(b, f + "_e3", sq, 16, 32, 3, 1, seed + 4)},
             Attrs({{"axis", Attr::Int(1)}}));
  }
  b.Output(b.Op("GlobalAveragePool", "gap", {Conv(b, "next", h, 64, 16, 3, 1, 91)}));
  const Graph g = b.Build();
  // Per layer, oneDNN's preferred layouts win (kept ones cost 5x, reorders next to nothing);
  // both whole programs take the same time.
  FixedTimer timer(/*reorder=*/0.01, /*keep=*/5.0, /*other=*/1.0, "", "", /*seed_blocked=*/1.0);
  Compiled c = CompileWith(g, &timer);
  ASSERT_TRUE(c.program);
  int blocked = 0;
  for (const cpu::StepInfo& st : cpu::Steps(*c.program)) blocked += st.tactic.find("@blocked") != std::string::npos;
  ASSERT_GT(blocked, 0) << "the blocked seed did not win the tie";  // (AVX2: nChw8c)
  EXPECT_EQ(CountOp(*c.program, "Concat"), 0);
  EXPECT_LE(CountOp(*c.program, "Reorder"), 2);  // the input into nChw16c, the output back
  EXPECT_TRUE(cpu::SlowSteps(*c.program).empty());
  ExpectMatchesReference(g, c.program);
  ReplayWithoutATimer(c);  // a plan's load: the same program
}

// A concat of pieces in mixed layouts copies in the layout most bytes are in (one reorder
// for the small row-major piece, none for the conv outputs), and computes the concat.
TEST(LayoutChoice, ConcatOfMixedLayoutsCopiesInTheMajorityLayout) {
  GraphBuilder b;
  ValueId x = b.Input("x", DType::kFloat32, {1, 16, 12, 12});
  ValueId s = b.Input("s", DType::kFloat32, {1, 16, 12, 12});
  ValueId a = Conv(b, "a", x, 16, 32, 3, 1, 11);
  ValueId c2 = Conv(b, "c", x, 16, 48, 1, 1, 13);
  ValueId cat = b.Op("Concat", "cat", {a, b.Op("Sigmoid", "sig", {s}), c2}, Attrs({{"axis", Attr::Int(1)}}));
  // Read by two layers, so no producer writes into the concat's buffer.
  b.Output(Conv(b, "after", cat, 96, 16, 1, 1, 15));
  b.Output(Conv(b, "after2", a, 32, 16, 1, 1, 17));
  const Graph g = b.Build();
  Compiled c = CompileWith(g, nullptr);
  ASSERT_TRUE(c.program);
  int concat_steps = 0;
  for (const cpu::StepInfo& st : cpu::Steps(*c.program)) {
    if (st.op != "Concat") continue;
    ++concat_steps;
    EXPECT_EQ(st.impl.rfind("kiln:concat_copy", 0), 0u) << st.impl;
  }
  EXPECT_EQ(concat_steps, 1);
  // Reorders: x into the convolutions' layout, the Sigmoid's row-major output into the
  // concat's, the two graph outputs to row-major; the conv outputs and the concat are used
  // where they are (all row-major was 6: + the two conv outputs, + the concat for `after`).
  int reorders = 0;
  for (const cpu::StepInfo& st : cpu::Steps(*c.program)) reorders += st.op == "Reorder";
  EXPECT_LE(reorders, 4);
  EXPECT_TRUE(cpu::SlowSteps(*c.program).empty());
  ExpectMatchesReference(g, c.program);
}

}  // namespace
}  // namespace kiln::testing
