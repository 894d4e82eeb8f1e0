// The backend interface's shared helpers (backend.h).
#include "backends/backend.h"

namespace kiln {

bool IsReferenceImpl(const std::string& impl) {
  // kiln's own reference kernels ("ref", or the reference backend running a layer), and
  // oneDNN's reference implementations ("ref:any", "ref_int8:any", gemm-based on the
  // reference gemm), as a StepInfo::impl ("onednn:<primitive> <impl>") or as oneDNN's
  // impl_info_str. kiln's own kernels ("kiln:...") never are.
  if (impl == "ref" || impl == "reference backend") return true;
  if (impl.rfind("kiln:", 0) == 0) return false;
  std::string dnnl = impl;
  if (impl.rfind("onednn:", 0) == 0) {
    const size_t sp = impl.find(' ');
    dnnl = sp == std::string::npos ? "" : impl.substr(sp + 1);
  }
  return dnnl.rfind("ref", 0) == 0 || dnnl.find("gemm:ref") != std::string::npos;
}

std::vector<std::string> SlowStepLines(const std::vector<StepInfo>& steps) {
  std::vector<std::string> out;
  for (const StepInfo& s : steps)
    if (IsSlowStep(s)) out.push_back(StrCat(s.name, " (", s.op, "): ", s.impl, s.note.empty() ? "" : " - ", s.note));
  return out;
}

}  // namespace kiln
