// Shape profiles: the input shapes an engine with dynamic dimensions serves. Each profile
// gives, per input, the smallest, the typical and the largest shape; a request is served by
// the first profile whose ranges contain every input's shape.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "base/status.h"

namespace kiln {

struct ShapeRangeSpec {
  std::vector<int64_t> min, opt, max;
};
using ShapeProfileSpec = std::map<std::string, ShapeRangeSpec>;

// Same ranks, 0 <= min <= opt <= max per dimension; errors name the profile and input.
Status CheckShapeProfile(const ShapeProfileSpec& p, int index);
// Whether every shape in `shapes` lies in the profile's ranges (inputs the profile does not
// name are not constrained).
bool ProfileContains(const ShapeProfileSpec& p, const std::map<std::string, std::vector<int64_t>>& shapes);
// "input [1..8,3,224,224]" for messages.
std::string DescribeProfile(const ShapeProfileSpec& p);

}  // namespace kiln
