// The CPU backend behind the backend interface (backends/backend.h).
#include "backends/cpu/cpu_backend.h"
#include "backends/cpu/program.h"
#include "backends/partition.h"

namespace kiln::cpu {

namespace {

class CpuBackend final : public ExecutionBackend {
 public:
  Backend kind() const override { return Backend::kCpu; }
  // Any numeric tensor layer: oneDNN and kiln's kernels, else kiln's reference kernels
  // inside the program (a slow path it reports).
  std::string WhyNotSupported(const Graph& g, NodeId n) const override { return WhyNotTensorNode(g, n); }
  Status CheckGraph(const Graph& g) const override { return CheckSupported(g); }
  Status CheckPrecision(const std::string& precision) const override { return cpu::CheckPrecision(precision); }
  StatusOr<std::shared_ptr<const BackendProgram>> Compile(std::shared_ptr<const Graph> graph,
                                                          const BackendOptions& options) const override {
    KILN_ASSIGN_OR_RETURN(std::shared_ptr<const Program> program, cpu::Compile(graph, options));
    return std::shared_ptr<const BackendProgram>(std::move(program));
  }
  int EffectiveThreads(int threads) const override { return cpu::EffectiveThreads(threads); }
};

}  // namespace

std::unique_ptr<ExecutionBackend> MakeBackend() { return std::make_unique<CpuBackend>(); }

const Program* AsProgram(const BackendProgram* program) {
  return program != nullptr && program->backend() == Backend::kCpu ? static_cast<const Program*>(program) : nullptr;
}

}  // namespace kiln::cpu
