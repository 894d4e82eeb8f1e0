#include "backends/ref/ref_backend.h"

#include "backends/ref/kernel.h"

namespace kiln::ref {

namespace {

class RefProgram final : public BackendProgram {
 public:
  explicit RefProgram(std::shared_ptr<const Graph> graph) : graph_(std::move(graph)) {
    step_of_node_.assign(static_cast<size_t>(graph_->num_nodes()), -1);
    for (NodeId n = 0; n < graph_->num_nodes(); ++n) {
      const Node& node = graph_->node(n);
      if (node.dead) continue;
      step_of_node_[static_cast<size_t>(n)] = static_cast<int>(steps_.size());
      steps_.emplace_back(node.name.empty() ? node.DisplayName(n) : node.name, node.op_type, "reference backend", "",
                          0.0, n);
    }
  }
  Backend backend() const override { return Backend::kRef; }
  std::unique_ptr<BackendContext> CreateContext() const override;
  const std::vector<StepInfo>& steps() const override { return steps_; }
  std::shared_ptr<const Graph> graph() const override { return graph_; }
  bool OutputTypes(std::vector<Tensor>* /*types*/) const override { return false; }  // known as it runs
  int StepOf(NodeId n) const {
    return n >= 0 && static_cast<size_t>(n) < step_of_node_.size() ? step_of_node_[static_cast<size_t>(n)] : -1;
  }

 private:
  std::shared_ptr<const Graph> graph_;
  std::vector<StepInfo> steps_;
  std::vector<int> step_of_node_;
};

class RefProgramContext final : public BackendContext {
 public:
  explicit RefProgramContext(std::shared_ptr<const RefProgram> program) : program_(std::move(program)) {}

  Status Run(const std::vector<RValue>& inputs, std::vector<RValue>* outputs,
             const std::vector<void*>* /*out_buffers*/) override {  // the runtime copies into them
    RefExecutor::Options options;
    std::vector<std::pair<NodeId, double>> node_ms;
    if (profiling_) options.node_ms = &node_ms;
    RefExecutor executor(options);
    KILN_ASSIGN_OR_RETURN(*outputs, executor.Run(*program_->graph(), inputs));
    if (profiling_) {
      step_ms_.assign(program_->steps().size(), 0.0);
      for (const auto& [n, ms] : node_ms)
        if (int s = program_->StepOf(n); s >= 0) step_ms_[static_cast<size_t>(s)] += ms;
    }
    return Status::OK();
  }

 private:
  std::shared_ptr<const RefProgram> program_;
};

std::unique_ptr<BackendContext> RefProgram::CreateContext() const {
  return std::make_unique<RefProgramContext>(std::static_pointer_cast<const RefProgram>(shared_from_this()));
}

class RefBackend final : public ExecutionBackend {
 public:
  Backend kind() const override { return Backend::kRef; }
  std::string WhyNotSupported(const Graph& /*g*/, NodeId /*n*/) const override { return ""; }  // every op
  Status CheckGraph(const Graph& /*g*/) const override { return Status::OK(); }
  Status CheckPrecision(const std::string& precision) const override {
    if (precision == "fp32") return Status::OK();
    return InvalidArgument("precision '", precision, "' needs the cpu backend (the reference backend is FP32)");
  }
  StatusOr<std::shared_ptr<const BackendProgram>> Compile(std::shared_ptr<const Graph> graph,
                                                          const BackendOptions& options) const override {
    KILN_RETURN_IF_ERROR(CheckPrecision(options.precision));
    return std::shared_ptr<const BackendProgram>(std::make_shared<RefProgram>(std::move(graph)));
  }
  int EffectiveThreads(int /*threads*/) const override { return 1; }
  bool fixed_shapes() const override { return false; }
};

}  // namespace

std::unique_ptr<ExecutionBackend> MakeBackend() { return std::make_unique<RefBackend>(); }

}  // namespace kiln::ref
