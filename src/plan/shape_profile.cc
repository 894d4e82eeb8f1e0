#include "plan/shape_profile.h"

#include "ir/tensor.h"

namespace kiln {

Status CheckShapeProfile(const ShapeProfileSpec& p, int index) {
  for (const auto& [name, r] : p) {
    if (r.min.size() != r.opt.size() || r.min.size() != r.max.size())
      return InvalidArgument("profile ", index, ", input '", name, "': min ", DimsToString(r.min), ", opt ",
                             DimsToString(r.opt), " and max ", DimsToString(r.max), " differ in rank");
    for (size_t i = 0; i < r.min.size(); ++i)
      if (r.min[i] < 0 || r.min[i] > r.opt[i] || r.opt[i] > r.max[i])
        return InvalidArgument("profile ", index, ", input '", name, "' dimension ", i, ": need 0 <= min <= opt <= max, got ",
                               r.min[i], ", ", r.opt[i], ", ", r.max[i]);
  }
  return Status::OK();
}

bool ProfileContains(const ShapeProfileSpec& p, const std::map<std::string, std::vector<int64_t>>& shapes) {
  for (const auto& [name, dims] : shapes) {
    auto it = p.find(name);
    if (it == p.end()) continue;
    const ShapeRangeSpec& r = it->second;
    if (dims.size() != r.min.size()) return false;
    for (size_t i = 0; i < dims.size(); ++i)
      if (dims[i] < r.min[i] || dims[i] > r.max[i]) return false;
  }
  return true;
}

std::string DescribeProfile(const ShapeProfileSpec& p) {
  std::string out;
  for (const auto& [name, r] : p) {
    out += (out.empty() ? "" : ", ") + name + " [";
    for (size_t i = 0; i < r.min.size(); ++i) {
      out += i ? "," : "";
      out += r.min[i] == r.max[i] ? std::to_string(r.min[i]) : std::to_string(r.min[i]) + ".." + std::to_string(r.max[i]);
    }
    out += "]";
  }
  return out;
}

}  // namespace kiln
