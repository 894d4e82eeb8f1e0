// Batch-parallel execution (batch_parallel.h): running slices, choosing the schedule,
// the slice programs of dynamic engines.
#include <malloc.h>
#include <omp.h>

#include <algorithm>
#include <cstring>

#include "backends/cpu/parallel.h"
#include "ir/fingerprint.h"
#include "runtime/batch_parallel.h"
#include "runtime/engine_impl.h"
#include "runtime/specialize.h"

namespace kiln {

namespace {

// The program for `slice` samples of `g` (single-threaded), or null with `why` set when
// the graph mixes samples (or cannot be specialized for that batch).
StatusOr<std::shared_ptr<const BackendProgram>> CompileSlice(const ExecutionBackend& backend,
                                                             const std::shared_ptr<const Graph>& g, BackendOptions co,
                                                             int64_t batch, int64_t slice, std::string* why) {
  auto small = std::make_shared<Graph>(DeepCopy(*g));
  std::map<std::string, std::vector<int64_t>> shapes;
  for (ValueId v : g->inputs()) {
    const Value& val = g->value(v);
    if (val.constant) continue;
    std::vector<int64_t> d = val.type.shape.Sizes();
    d[0] = slice;
    // The input's batch was fixed at build: re-open it for the slice's (shapes then re-infer).
    small->value(v).type.shape = Shape::FromDims(d);
    shapes[val.name] = std::move(d);
  }
  ClearSubgraphTypes(*small);
  Status st = SetInputShapes(*small, shapes);
  if (st.ok()) st = BatchSeparable(*g, *small, batch, slice);
  if (st.ok()) st = backend.CheckGraph(*small);
  if (!st.ok()) {
    *why = st.message();
    return std::shared_ptr<const BackendProgram>();
  }
  co.threads = 1;
  return backend.Compile(small, co);
}

// Zero-filled inputs of `g`'s input types, for timing whole-program schedules.
std::vector<Tensor> ZeroInputs(const Graph& g) {
  std::vector<Tensor> out;
  for (ValueId v : g.inputs()) {
    const Value& val = g.value(v);
    if (val.constant) continue;
    Tensor t(val.type.dtype, val.type.shape.Sizes());
    if (t.nbytes() > 0) std::memset(t.raw_data(), 0, t.nbytes());
    out.push_back(std::move(t));
  }
  return out;
}

}  // namespace

Status RunSlices(std::vector<std::unique_ptr<BackendContext>>& contexts, int threads, int64_t batch, int64_t slice,
                 const std::vector<const Tensor*>& inputs, const std::vector<void*>& out_ptrs,
                 const std::vector<size_t>& out_bytes) {
  const int64_t n = batch / slice;
  std::vector<Status> status(static_cast<size_t>(n));
  const int nt =
      static_cast<int>(std::min<int64_t>({static_cast<int64_t>(threads), n, static_cast<int64_t>(contexts.size())}));
  cpu::ParallelFor(n, nt, [&](int64_t s) {
    BackendContext& c = *contexts[static_cast<size_t>(omp_get_thread_num())];
    std::vector<RValue> views;
    views.reserve(inputs.size());
    for (const Tensor* t : inputs) {
      std::vector<int64_t> d = t->dims();
      d[0] /= n;
      const size_t bytes = t->nbytes() / static_cast<size_t>(n);
      views.emplace_back(Tensor::FromExternal(
          t->dtype(), std::move(d),
          static_cast<char*>(const_cast<void*>(t->raw_data())) + static_cast<size_t>(s) * bytes, nullptr));
    }
    std::vector<void*> outs(out_ptrs.size());
    for (size_t o = 0; o < outs.size(); ++o)
      outs[o] = static_cast<char*>(out_ptrs[o]) + static_cast<size_t>(s) * (out_bytes[o] / static_cast<size_t>(n));
    std::vector<RValue> results;
    Status st = c.Run(views, &results, &outs);
    // A backend that did not write into the slice's rows: copy its results there.
    for (size_t o = 0; st.ok() && o < outs.size(); ++o) {
      const size_t rows = out_bytes[o] / static_cast<size_t>(n);
      if (o >= results.size() || !results[o].is_tensor() || results[o].tensor.nbytes() != rows) {
        st = Internal("batch slice ", s, ": output ", o, " is not the slice's ", rows, " bytes");
      } else if (results[o].tensor.raw_data() != outs[o] && rows > 0) {
        std::memcpy(outs[o], results[o].tensor.raw_data(), rows);
      }
    }
    status[static_cast<size_t>(s)] = std::move(st);
  });
  for (const Status& st : status) KILN_RETURN_IF_ERROR(st);
  return Status::OK();
}

Status ChooseBatchSchedule(Engine::Impl& impl, const std::shared_ptr<const Graph>& g, const BackendOptions& co,
                           BatchParallel mode, int64_t plan_slice, TacticTimer* timer) {
  const ExecutionBackend& backend = *impl.backend;
  const int threads = backend.EffectiveThreads(co.threads);
  const int64_t batch = CommonInputBatch(*g);
  if (mode == BatchParallel::kOff || (plan_slice == 0 && mode == BatchParallel::kAuto)) return Status::OK();
  if (threads < 2 || batch < 2) {
    if (mode == BatchParallel::kOn)
      impl.batch_note =
          StrCat("batch-parallel needs batch > 1 and threads > 1 (batch ", batch, ", ", threads, " threads)");
    return Status::OK();
  }
  std::vector<int64_t> candidates;
  if (plan_slice > 0) {
    candidates.push_back(plan_slice);
  } else {
    // One sample per slice (each thread's activations stay in its cache); with "auto"
    // also one slice per thread (better weight reuse in large matmuls).
    candidates.push_back(1);
    if (mode == BatchParallel::kAuto && batch % threads == 0 && batch / threads > 1)
      candidates.push_back(batch / threads);
  }
  std::vector<std::pair<int64_t, std::shared_ptr<const BackendProgram>>> programs;
  for (int64_t k : candidates) {
    if (k >= batch || batch % k != 0) {
      impl.batch_note = StrCat("a batch of ", batch, " does not split into slices of ", k);
      continue;
    }
    std::string why;
    KILN_ASSIGN_OR_RETURN(std::shared_ptr<const BackendProgram> p, CompileSlice(backend, g, co, batch, k, &why));
    if (!p) {
      impl.batch_note = StrCat("batch-parallel: not used: ", why);
      break;  // the same reason holds for every slice size
    }
    programs.emplace_back(k, std::move(p));
  }
  if (programs.empty()) return Status::OK();
  size_t best = 0;
  if (mode == BatchParallel::kAuto && plan_slice < 0) {
    // Time the whole-batch program and each slice schedule on zeros (the timing cache
    // makes the choice reproducible).
    const std::string key =
        StrCat("batch_parallel ", ProblemFingerprint(*g), " threads=", threads, " precision=", co.precision);
    std::vector<Tensor> zeros = ZeroInputs(*g);
    std::vector<const Tensor*> ins;
    for (const Tensor& t : zeros) ins.push_back(&t);
    const std::vector<RValue> values(zeros.begin(), zeros.end());
    if (timer == nullptr) return Internal("batch-parallel schedule: timing without a timer");
    // Whole programs differ by a few percent: more runs than a kernel candidate gets.
    const TimingBudget budget{5, 15, 1000};
    auto timed = [&](const std::string& k, const std::function<Status()>& run) {
      return timer->Measure(k, run, budget);
    };
    double whole_ms = 0;
    {
      std::unique_ptr<BackendContext> whole = impl.program->CreateContext();
      std::vector<RValue> outs;
      KILN_ASSIGN_OR_RETURN(whole_ms, timed(key + " whole", [&] { return whole->Run(values, &outs); }));
    }
    std::vector<Tensor> types;
    if (!impl.program->OutputTypes(&types)) return Internal("batch-parallel schedule: output shapes unknown");
    std::vector<Tensor> out_tensors;
    std::vector<void*> out_ptrs;
    std::vector<size_t> out_bytes;
    for (const Tensor& t : types) {
      out_tensors.emplace_back(t.dtype(), t.dims());
      out_ptrs.push_back(out_tensors.back().raw_data());
      out_bytes.push_back(t.nbytes());
    }
    double best_ms = 0;
    for (size_t i = 0; i < programs.size(); ++i) {
      std::vector<std::unique_ptr<BackendContext>> ctxs;
      for (int t = 0; t < threads; ++t) ctxs.push_back(programs[i].second->CreateContext());
      KILN_ASSIGN_OR_RETURN(double ms, timed(StrCat(key, " slice=", programs[i].first), [&] {
                              return RunSlices(ctxs, threads, batch, programs[i].first, ins, out_ptrs, out_bytes);
                            }));
      if (i == 0 || ms < best_ms) {
        best = i;
        best_ms = ms;
      }
    }
    // The simpler schedule unless slicing is clearly faster.
    for (size_t i = 0; i < programs.size(); ++i)
      if (i != best) programs[i].second.reset();
    if (!(best_ms < 0.97 * whole_ms)) {
#ifdef __GLIBC__
      malloc_trim(0);
#endif
      impl.batch_note = StrCat("batch-parallel: not used: the whole batch is faster (", whole_ms, " ms vs ", best_ms,
                               " ms in slices of ", programs[best].first, ")");
      return Status::OK();
    }
    impl.batch_note = StrCat("timed: ", best_ms, " ms vs ", whole_ms, " ms for the whole batch");
  }
  impl.slice_program = programs[best].second;
  impl.slice = programs[best].first;
  impl.batch = batch;
  impl.slice_threads = threads;
  impl.program.reset();  // the slices replace the whole-batch program
#ifdef __GLIBC__
  malloc_trim(0);  // the dropped programs' packed weights and arenas go back to the system
#endif
  return Status::OK();
}

// (DynamicSlices: null for batch 1, a batch the slice size does not divide, or shapes for
// which the graph does not keep samples apart.)
StatusOr<std::shared_ptr<const BackendProgram>> DynamicSlices(
    const Engine::Impl& e, const std::map<std::string, std::vector<int64_t>>& shapes) {
  std::lock_guard<std::mutex> lock(e.mu);
  if (auto it = e.dyn_slices.find(shapes); it != e.dyn_slices.end()) return it->second;
  constexpr size_t kMaxEntries = 64;
  if (e.dyn_slices.size() >= kMaxEntries) e.dyn_slices.clear();
  if (e.slice_programs.size() >= kMaxEntries) e.slice_programs.clear();
  std::shared_ptr<const BackendProgram> result;
  int64_t batch = 0;
  bool same_batch = true;
  for (const auto& [name, d] : shapes) {
    if (d.empty())
      same_batch = false;
    else if (batch == 0)
      batch = d[0];
    else
      same_batch = same_batch && d[0] == batch;
  }
  if (same_batch && batch >= 2 && e.dyn_slice < batch && batch % e.dyn_slice == 0) {
    std::map<std::string, std::vector<int64_t>> small_shapes = shapes;
    for (auto& [name, d] : small_shapes) d[0] = e.dyn_slice;
    auto big = std::make_shared<Graph>(DeepCopy(*e.graph));
    auto small = std::make_shared<Graph>(DeepCopy(*e.graph));
    Status st = SetInputShapes(*big, shapes);
    if (st.ok()) st = SetInputShapes(*small, small_shapes);
    if (st.ok()) st = BatchSeparable(*big, *small, batch, e.dyn_slice);
    if (st.ok()) st = e.backend->CheckGraph(*small);
    if (st.ok()) {
      if (auto it = e.slice_programs.find(small_shapes); it != e.slice_programs.end()) {
        result = it->second;
      } else {
        BackendOptions co = e.compile_options;
        co.threads = 1;
        co.timer = nullptr;
        KILN_ASSIGN_OR_RETURN(result, e.backend->Compile(small, co));
        e.slice_programs.emplace(small_shapes, result);
      }
    }
  }
  e.dyn_slices.emplace(shapes, result);
  return result;
}

}  // namespace kiln
