#include "ir/ops/sub_families.h"
#include "ir/ops/einsum_equation.h"

#include <algorithm>
#include <cctype>
#include <map>

#include "ir/op_schema.h"

namespace kiln {

namespace {

// Labels of one term; "..." becomes `ell` codes 128+k, right-aligned over the ellipsis span.
StatusOr<std::vector<int>> ParseTerm(const std::string& term, int rank, int ell_rank, bool is_output) {
  std::vector<int> labels;
  size_t dots = term.find("...");
  int explicit_count = 0;
  for (char c : term) if (std::isalpha(static_cast<unsigned char>(c))) ++explicit_count;
  const int span = dots == std::string::npos ? 0 : (is_output ? ell_rank : rank - explicit_count);
  if (span < 0) return InvalidArgument("equation term '", term, "' has more labels than the operand has dims");
  for (size_t i = 0; i < term.size(); ++i) {
    char c = term[i];
    if (c == ' ') continue;
    if (c == '.') {
      if (term.compare(i, 3, "...") != 0) return InvalidArgument("bad ellipsis in '", term, "'");
      for (int k = 0; k < span; ++k) labels.push_back(128 + (ell_rank - span) + k);
      i += 2;
      continue;
    }
    if (!std::isalpha(static_cast<unsigned char>(c))) return InvalidArgument("bad label '", c, "' in equation");
    labels.push_back(static_cast<unsigned char>(c));
  }
  if (!is_output && static_cast<int>(labels.size()) != rank)
    return InvalidArgument("equation term '", term, "' has ", labels.size(), " labels for an operand of rank ", rank);
  return labels;
}

}  // namespace

StatusOr<EinsumEquation> ParseEinsum(const std::string& eq_in, const std::vector<int>& ranks) {
  std::string eq;
  for (char c : eq_in) if (c != ' ') eq += c;
  const size_t arrow = eq.find("->");
  const std::string lhs = eq.substr(0, arrow);
  std::vector<std::string> terms;
  size_t start = 0;
  while (true) {
    size_t comma = lhs.find(',', start);
    terms.push_back(lhs.substr(start, comma == std::string::npos ? std::string::npos : comma - start));
    if (comma == std::string::npos) break;
    start = comma + 1;
  }
  if (terms.size() != ranks.size()) return InvalidArgument("equation has ", terms.size(), " operands, node has ", ranks.size(), " inputs");
  int ell_rank = 0;
  for (size_t i = 0; i < terms.size(); ++i) {
    if (terms[i].find("...") == std::string::npos) continue;
    int explicit_count = 0;
    for (char c : terms[i]) if (std::isalpha(static_cast<unsigned char>(c))) ++explicit_count;
    ell_rank = std::max(ell_rank, ranks[i] - explicit_count);
  }
  EinsumEquation e;
  for (size_t i = 0; i < terms.size(); ++i) {
    KILN_ASSIGN_OR_RETURN(std::vector<int> l, ParseTerm(terms[i], ranks[i], ell_rank, false));
    e.inputs.push_back(std::move(l));
  }
  if (arrow != std::string::npos) {
    KILN_ASSIGN_OR_RETURN(e.output, ParseTerm(eq.substr(arrow + 2), 0, ell_rank, true));
  } else {  // implicit: ellipsis dims, then labels seen once, alphabetically
    for (int k = 0; k < ell_rank; ++k) e.output.push_back(128 + k);
    std::map<int, int> count;
    for (const auto& in : e.inputs) for (int l : in) if (l < 128) count[l]++;
    for (const auto& [l, c] : count) if (c == 1) e.output.push_back(l);
  }
  return e;
}

Status InferEinsumShape(InferenceContext& ctx) {
  KILN_ASSIGN_OR_RETURN(std::string eq, ctx.attrs().GetString("equation", ""));
  std::vector<int> ranks;
  for (int i = 0; i < ctx.num_inputs(); ++i) {
    if (!ctx.input_type(i).shape.has_rank()) { ctx.set_output(0, ctx.input_type(0).dtype, Shape()); return Status::OK(); }
    ranks.push_back(ctx.input_type(i).shape.rank());
  }
  KILN_ASSIGN_OR_RETURN(EinsumEquation e, ParseEinsum(eq, ranks));
  std::map<int, Dim> size;
  for (int i = 0; i < ctx.num_inputs(); ++i)
    for (size_t d = 0; d < e.inputs[static_cast<size_t>(i)].size(); ++d) {
      const Dim& dim = ctx.input_type(i).shape.dim(static_cast<int>(d));
      Dim& s = size[e.inputs[static_cast<size_t>(i)][d]];
      if (!s.known() || s.value == 1) s = dim;
    }
  std::vector<Dim> out;
  for (int l : e.output) out.push_back(size.count(l) ? size[l] : Dim(1));
  ctx.set_output(0, ctx.input_type(0).dtype, Shape(std::move(out)));
  return Status::OK();
}

}  // namespace kiln
