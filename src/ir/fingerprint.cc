#include "ir/fingerprint.h"

#include <cstdio>
#include <functional>

namespace kiln {

std::string ProblemFingerprint(const Graph& g) {
  std::string text;
  for (ValueId v : g.inputs()) text += g.value(v).type.ToString() + ";";
  for (NodeId id = 0; id < g.num_nodes(); ++id) {
    const Node& n = g.node(id);
    if (n.dead) continue;
    text += n.op_type + "(";
    for (ValueId v : n.outputs)
      if (v != kNoValue) text += g.value(v).type.ToString() + ",";
    text += ")";
  }
  char hex[17];
  std::snprintf(hex, sizeof hex, "%016zx", std::hash<std::string>{}(text));
  return hex;
}

}  // namespace kiln
