// Renders the optimized graph that `kiln inspect` describes (its JSON object, docs/inspect-json.md)
// as Graphviz DOT (`--dot FILE`) and as a self-contained HTML report with an inline SVG (`--html FILE`).
// Everything works from the JSON alone, so the renderings show exactly what `--json` reports.
#pragma once

#include <nlohmann/json.hpp>
#include <string>

#include "base/status.h"

namespace kiln::cli {

// DOT text of the optimized graph: a box per layer (name, op, output shapes), an ellipse per graph
// input and output, an edge from each producer layer to each consumer layer. Fused layers (non-empty
// `fused_from`) are filled blue, layers without a kernel are dashed. Each layer's tooltip lists the
// source nodes it absorbed. With `link_layers`, layer boxes link to `#layer-N` anchors (for the HTML
// report's table). Model-provided strings are escaped, so any node name gives valid DOT.
std::string InspectToDot(const nlohmann::json& j, bool link_layers = false);

// Runs Graphviz `dot -Tsvg` (found on PATH) on `dot` via temp files and returns the <svg> element
// (XML prolog and doctype stripped, ready to inline in HTML). Errors when `dot` is missing or fails.
StatusOr<std::string> DotToSvg(const std::string& dot);

// A self-contained HTML page (no scripts, styles or fonts from the network): the summary, `svg`
// inline (from DotToSvg(InspectToDot(j, true))) with each node's <title> listing its absorbed
// source nodes, and a table of the layers.
std::string InspectToHtml(const nlohmann::json& j, const std::string& svg);

// Writes `data` to PATH.tmp, then renames it to PATH, so PATH never holds a partial file.
// Errors name PATH and the reason.
Status WriteFileAtomic(const std::string& path, const std::string& data);

// `kiln inspect --dot DOT_PATH --html HTML_PATH`: renders and writes the files whose path is non-empty.
Status WriteInspectFiles(const nlohmann::json& j, const std::string& dot_path, const std::string& html_path);

}  // namespace kiln::cli
