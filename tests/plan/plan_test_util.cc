#include "plan/plan_test_util.h"

#include <cstring>
#include <random>

#include "api/model.h"
#include "api/optimize.h"
#include "plan/plan_format.h"
#include "builder/plan_writer.h"

namespace kiln::testing {

std::string SourcePath(const std::string& relative) { return std::string(KILN_SOURCE_DIR) + "/" + relative; }

StatusOr<BuiltGraph> BuildFromOnnx(const std::string& path, bool specialize, bool optimize) {
  KILN_ASSIGN_OR_RETURN(OnnxModel model, LoadOnnxModel(path));
  BuiltGraph b;
  b.graph = std::move(model.graph);
  if (specialize) KILN_RETURN_IF_ERROR(SetInputShapes(*b.graph, {}));
  if (optimize) KILN_RETURN_IF_ERROR(OptimizeGraph(*b.graph).status());
  auto mem = PlanMemory(*b.graph);
  if (mem.ok()) b.mem = std::move(*mem);
  return b;
}

std::vector<RValue> DeterministicInputs(const Graph& g, uint32_t seed) {
  std::mt19937 rng(seed);
  std::vector<RValue> out;
  for (ValueId v : g.inputs()) {
    const TypeInfo& t = g.value(v).type;
    if (!t.is_tensor() || !t.shape.IsStatic() || t.dtype == DType::kUndefined) {
      out.emplace_back();
      continue;
    }
    Tensor x(t.dtype, t.shape.Sizes());
    VisitAny(t.dtype, [&](auto tag) {
      using T = typename decltype(tag)::type;
      for (int64_t i = 0; i < x.numel(); ++i) {
        if constexpr (std::is_same_v<T, std::string>)
          x.data<T>()[i] = std::to_string(rng() % 5);
        else if constexpr (std::is_same_v<T, std::complex<float>> || std::is_same_v<T, std::complex<double>>)
          x.data<T>()[i] = T(static_cast<float>(rng() % 7) / 4, 0);
        else if constexpr (std::is_same_v<T, bool>)
          x.data<T>()[i] = rng() % 2;
        else
          x.data<T>()[i] = FromDouble<T>(IsFloat(t.dtype) ? static_cast<double>(rng() % 2001) / 1000.0 - 1.0
                                                          : static_cast<double>(rng() % 3));
      }
    });
    out.emplace_back(std::move(x));
  }
  return out;
}

namespace {

::testing::AssertionResult SameTensor(const Tensor& a, const Tensor& b, const std::string& what) {
  if (a.dtype() != b.dtype() || a.dims() != b.dims())
    return ::testing::AssertionFailure() << what << ": " << a.ShapeString() << " vs " << b.ShapeString();
  if (a.dtype() == DType::kString) {
    for (int64_t i = 0; i < a.numel(); ++i)
      if (a.data<std::string>()[i] != b.data<std::string>()[i])
        return ::testing::AssertionFailure() << what << ": string " << i << " differs";
    return ::testing::AssertionSuccess();
  }
  if (a.nbytes() > 0 && std::memcmp(a.raw_data(), b.raw_data(), a.nbytes()) != 0)
    return ::testing::AssertionFailure() << what << ": bytes differ";
  return ::testing::AssertionSuccess();
}

}  // namespace

::testing::AssertionResult BitExact(const std::vector<RValue>& want, const std::vector<RValue>& got) {
  if (want.size() != got.size())
    return ::testing::AssertionFailure() << want.size() << " vs " << got.size() << " outputs";
  for (size_t i = 0; i < want.size(); ++i) {
    const std::string what = StrCat("output ", i);
    if (want[i].kind != got[i].kind) return ::testing::AssertionFailure() << what << ": kinds differ";
    if (want[i].is_tensor()) {
      auto r = SameTensor(want[i].tensor, got[i].tensor, what);
      if (!r) return r;
    }
    if (want[i].is_sequence()) {
      if (want[i].sequence.size() != got[i].sequence.size())
        return ::testing::AssertionFailure() << what << ": sequence lengths differ";
      for (size_t k = 0; k < want[i].sequence.size(); ++k) {
        auto r = SameTensor(want[i].sequence[k], got[i].sequence[k], StrCat(what, "[", k, "]"));
        if (!r) return r;
      }
    }
  }
  return ::testing::AssertionSuccess();
}

::testing::AssertionResult RoundTripsBitExact(const Graph& g, const MemoryPlan& mem, const std::vector<RValue>& inputs,
                                              LoadedPlan* loaded_out) {
  auto bytes = SerializePlan(g, mem, PlanOptions{});
  if (!bytes.ok()) return ::testing::AssertionFailure() << "serialize: " << bytes.status().ToString();
  auto loaded = LoadPlanFromBytes(bytes->data(), bytes->size(), "test.plan");
  if (!loaded.ok()) return ::testing::AssertionFailure() << "load: " << loaded.status().ToString();
  auto want = RunReference(g, inputs);
  if (!want.ok()) return ::testing::AssertionFailure() << "run the built graph: " << want.status().ToString();
  auto got = RunReference(*loaded->graph, inputs);
  if (!got.ok()) return ::testing::AssertionFailure() << "run the loaded plan: " << got.status().ToString();
  auto same = BitExact(*want, *got);
  if (same && loaded_out) *loaded_out = std::move(*loaded);
  return same;
}

PlanParts SplitPlan(const std::vector<uint8_t>& file) {
  PlanParts parts;
  const PlanHeader h = DecodePlanHeader(file.data());
  parts.weights.assign(file.begin() + static_cast<std::ptrdiff_t>(h.weights_offset),
                       file.begin() + static_cast<std::ptrdiff_t>(h.weights_offset + h.weights_size));
  parts.plan.reset(plan::fb::GetPlan(file.data() + h.flatbuffer_offset)->UnPack());
  return parts;
}

std::vector<uint8_t> JoinPlan(const PlanParts& parts) {
  flatbuffers::FlatBufferBuilder fbb;
  plan::fb::FinishPlanBuffer(fbb, plan::fb::Plan::Pack(fbb, parts.plan.get()));
  return AssemblePlanFile(parts.weights, {fbb.GetBufferPointer(), fbb.GetSize()});
}

std::string LoadError(const std::vector<uint8_t>& file, const LoadPlanOptions& options) {
  auto r = LoadPlanFromBytes(file.data(), file.size(), "bad.plan", options);
  return r.ok() ? std::string() : r.status().message();
}

}  // namespace kiln::testing
