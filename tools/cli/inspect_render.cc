#include "base/file.h"
#include "tools/cli/inspect_render.h"

#include <fcntl.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <sstream>
#include <utility>
#include <vector>

extern char** environ;

namespace kiln::cli {

namespace {

using nlohmann::json;

// Model strings come from protobuf fields that proto2 does not check for UTF-8; Graphviz and
// browsers reject or mangle invalid UTF-8, so each bad byte becomes U+FFFD.
std::string ValidUtf8(const std::string& s) {
  std::string out;
  out.reserve(s.size());
  size_t i = 0;
  while (i < s.size()) {
    const unsigned char c = static_cast<unsigned char>(s[i]);
    size_t len = c < 0x80 ? 1 : (c & 0xE0) == 0xC0 ? 2 : (c & 0xF0) == 0xE0 ? 3 : (c & 0xF8) == 0xF0 ? 4 : 0;
    bool ok = len > 0 && i + len <= s.size();
    uint32_t cp = len == 1 ? c : len == 2 ? (c & 0x1F) : len == 3 ? (c & 0x0F) : (c & 0x07);
    for (size_t k = 1; ok && k < len; ++k) {
      const unsigned char cc = static_cast<unsigned char>(s[i + k]);
      ok = (cc & 0xC0) == 0x80;
      cp = (cp << 6) | (cc & 0x3F);
    }
    // Overlong forms, surrogates and code points past U+10FFFF are invalid too.
    static constexpr uint32_t kMin[] = {0, 0, 0x80, 0x800, 0x10000};
    if (ok && (cp < kMin[len] || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))) ok = false;
    if (!ok) {
      out += "\xEF\xBF\xBD";
      ++i;
      continue;
    }
    out.append(s, i, len);
    i += len;
  }
  return out;
}

// Body of a DOT double-quoted string. Graphviz decodes HTML entities in every string (for all
// output formats), so a literal '&' must be written as "&amp;"; backslash starts escapes (\n, \N, \l).
std::string DotEscape(const std::string& s) {
  std::string out;
  for (char c : ValidUtf8(s)) {
    switch (c) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '&':
        out += "&amp;";
        break;
      case '\n':
        out += "\\n";
        break;
      default:
        out += (static_cast<unsigned char>(c) < 0x20 || c == 0x7F) ? ' ' : c;
    }
  }
  return out;
}

std::string HtmlEscape(const std::string& s) {
  std::string out;
  for (char c : ValidUtf8(s)) {
    switch (c) {
      case '&':
        out += "&amp;";
        break;
      case '<':
        out += "&lt;";
        break;
      case '>':
        out += "&gt;";
        break;
      case '"':
        out += "&quot;";
        break;
      case '\'':
        out += "&#39;";
        break;
      case '\n':
        out += "&#10;";
        break;
      default:
        out += (static_cast<unsigned char>(c) < 0x20 || c == 0x7F) ? ' ' : c;
    }
  }
  return out;
}

// Tolerant accessors: the renderers must not throw on a JSON object from an older kiln.
std::string Str(const json& o, const char* key) {
  if (!o.is_object()) return "";
  auto it = o.find(key);
  return it != o.end() && it->is_string() ? it->get<std::string>() : "";
}

std::vector<std::string> Strs(const json& o, const char* key) {
  std::vector<std::string> out;
  if (!o.is_object()) return out;
  auto it = o.find(key);
  if (it == o.end() || !it->is_array()) return out;
  for (const json& e : *it)
    if (e.is_string()) out.push_back(e.get<std::string>());
  return out;
}

const json& Array(const json& o, const char* key) {
  static const json kEmpty = json::array();
  if (!o.is_object()) return kEmpty;
  auto it = o.find(key);
  return it != o.end() && it->is_array() ? *it : kEmpty;
}

bool Bool(const json& o, const char* key, bool dflt) {
  if (!o.is_object()) return dflt;
  auto it = o.find(key);
  return it != o.end() && it->is_boolean() ? it->get<bool>() : dflt;
}

std::string NumText(const json& v) {
  if (v.is_number_integer() || v.is_number_unsigned()) return v.dump();
  if (v.is_number_float()) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%.3g", v.get<double>());
    return buf;
  }
  return v.is_string() ? v.get<std::string>() : v.dump();
}

double Num(const json& o, const char* key) {
  if (!o.is_object()) return 0;
  auto it = o.find(key);
  return it != o.end() && it->is_number() ? it->get<double>() : 0;
}

std::string Join(const std::vector<std::string>& v, const std::string& sep) {
  std::string out;
  for (const std::string& s : v) out += (out.empty() ? "" : sep) + s;
  return out;
}

// Text of a layer's tooltip (DOT) and SVG <title> (HTML): what it is and what it absorbed.
std::string LayerTooltip(const json& l) {
  std::string t = Str(l, "name") + " (" + Str(l, "op") + ")";
  const std::vector<std::string> fused = Strs(l, "fused_from");
  t += fused.empty() ? "\nabsorbed no other source nodes" : "\nabsorbed " + Join(fused, ", ");
  if (!Bool(l, "kernel", true)) {
    const std::string why = Str(l, "eliminated");
    t += "\nno kernel" + (why.empty() ? std::string(" (view)") : " (" + why + ")");
  }
  return t;
}

// The graph both renderers draw, built once from the JSON so the DOT node ids the HTML report
// rewrites are the same ones InspectToDot emitted.
struct GNode {
  std::string id;  // DOT id: L<i> for layer i, in<k> / out<k> for graph inputs / outputs
  std::string label, tooltip;
  bool io = false, fused = false, kernel = true;
  int layer = -1;
};
struct GEdge {
  std::string from, to;
  std::vector<std::string> values;  // value names carried (usually one)
};
struct RenderGraph {
  std::vector<GNode> nodes;
  std::vector<GEdge> edges;
};

RenderGraph BuildGraph(const json& j) {
  RenderGraph g;
  const json& layers = Array(j, "layer_list");
  std::map<std::string, std::string> producer;  // value name -> DOT id
  std::set<std::string> read;
  for (size_t i = 0; i < layers.size(); ++i) {
    for (const json& o : Array(layers[i], "outputs")) producer[Str(o, "name")] = "L" + std::to_string(i);
    for (const std::string& v : Strs(layers[i], "inputs")) read.insert(v);
  }
  // Graph inputs and outputs; a JSON object without them (older kiln) gets them inferred: values read
  // but produced by no layer, and values produced but read by no layer.
  std::vector<std::string> gin, gout;
  if (j.contains("graph_inputs")) {
    gin = Strs(j, "graph_inputs");
  } else {
    for (const json& l : layers)
      for (const std::string& v : Strs(l, "inputs"))
        if (!producer.count(v) && std::find(gin.begin(), gin.end(), v) == gin.end()) gin.push_back(v);
  }
  if (j.contains("graph_outputs")) {
    gout = Strs(j, "graph_outputs");
  } else {
    for (const json& l : layers)
      for (const json& o : Array(l, "outputs"))
        if (!read.count(Str(o, "name"))) gout.push_back(Str(o, "name"));
  }
  auto add_input = [&](const std::string& name) {
    GNode n;
    n.id = "in" + std::to_string(g.nodes.size());
    n.label = name;
    n.tooltip = "graph input " + name;
    n.io = true;
    g.nodes.push_back(n);
    producer.emplace(name, n.id);  // a layer output of the same name (not expected) keeps priority
  };
  for (const std::string& v : gin) add_input(v);

  std::map<std::pair<std::string, std::string>, size_t> edge_index;
  auto add_edge = [&](const std::string& from, const std::string& to, const std::string& value) {
    auto [it, inserted] = edge_index.emplace(std::make_pair(from, to), g.edges.size());
    if (inserted) g.edges.push_back({from, to, {}});
    std::vector<std::string>& vals = g.edges[it->second].values;
    if (std::find(vals.begin(), vals.end(), value) == vals.end()) vals.push_back(value);
  };
  for (size_t i = 0; i < layers.size(); ++i) {
    const json& l = layers[i];
    GNode n;
    n.id = "L" + std::to_string(i);
    n.layer = static_cast<int>(i);
    n.fused = !Strs(l, "fused_from").empty();
    n.kernel = Bool(l, "kernel", true);
    std::vector<std::string> shapes;
    const json& outs = Array(l, "outputs");
    for (size_t k = 0; k < outs.size() && k < 3; ++k) shapes.push_back(Str(outs[k], "shape"));
    if (outs.size() > 3) shapes.push_back("+" + std::to_string(outs.size() - 3) + " more outputs");
    n.label = Str(l, "name") + "\n" + Str(l, "op") + (shapes.empty() ? "" : "\n" + Join(shapes, "\n"));
    n.tooltip = LayerTooltip(l);
    for (const std::string& v : Strs(l, "inputs")) {
      if (!producer.count(v)) add_input(v);  // read but neither produced nor a graph input: still show it
      add_edge(producer[v], n.id, v);
    }
    g.nodes.push_back(n);
  }
  for (size_t k = 0; k < gout.size(); ++k) {
    GNode n;
    n.id = "out" + std::to_string(k);
    n.label = gout[k];
    n.tooltip = "graph output " + gout[k];
    n.io = true;
    g.nodes.push_back(n);
    if (auto it = producer.find(gout[k]); it != producer.end()) add_edge(it->second, n.id, gout[k]);
  }
  return g;
}

}  // namespace

std::string InspectToDot(const json& j, bool link_layers) {
  const RenderGraph g = BuildGraph(j);
  std::string title = Str(j, "model");
  if (j.contains("layers") && j.contains("kernels"))
    title += ": " + NumText(j["layers"]) + " layers, " + NumText(j["kernels"]) + " kernels per inference";
  std::string out = "digraph kiln {\n";
  out += "  graph [rankdir=TB, fontname=\"Helvetica\", fontsize=12, labelloc=t, label=\"" + DotEscape(title) + "\"];\n";
  out += "  node [shape=box, style=\"rounded,filled\", fillcolor=\"#eeeeee\", fontname=\"Helvetica\", fontsize=10];\n";
  out += "  edge [color=\"#666666\", arrowsize=0.6];\n";
  for (const GNode& n : g.nodes) {
    out += "  " + n.id + " [label=\"" + DotEscape(n.label) + "\", tooltip=\"" + DotEscape(n.tooltip) + "\"";
    if (n.io) {
      out += ", shape=ellipse, style=filled, fillcolor=\"#fff2cc\"";
    } else {
      if (n.fused) out += ", fillcolor=\"#cfe2ff\"";
      if (!n.kernel) out += ", style=\"rounded,filled,dashed\", fontcolor=\"#555555\"";
      if (link_layers) out += ", URL=\"#layer-" + std::to_string(n.layer) + "\"";
    }
    out += "];\n";
  }
  for (const GEdge& e : g.edges)
    out += "  " + e.from + " -> " + e.to + " [tooltip=\"" + DotEscape(Join(e.values, ", ")) + "\"];\n";
  out += "}\n";
  return out;
}

StatusOr<std::string> DotToSvg(const std::string& dot) {
  const char* tmp_root = std::getenv("TMPDIR");
  std::string dir = std::string(tmp_root && *tmp_root ? tmp_root : "/tmp") + "/kiln-dot-XXXXXX";
  if (mkdtemp(dir.data()) == nullptr)
    return IoError(dir, ": cannot create a temporary directory for Graphviz: ", std::strerror(errno));
  struct Cleanup {
    std::string dir;
    ~Cleanup() {
      std::error_code ec;
      std::filesystem::remove_all(dir, ec);
    }
  } cleanup{dir};
  const std::string in = dir + "/graph.dot", out = dir + "/graph.svg", err = dir + "/dot.stderr";
  {
    std::ofstream f(in, std::ios::binary);
    f << dot;
    if (!f.flush()) return IoError(in, ": cannot write: ", std::strerror(errno));
  }
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
  posix_spawn_file_actions_addopen(&fa, 2, err.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
  std::vector<std::string> args = {"dot", "-Tsvg", "-o", out, in};
  std::vector<char*> argv;
  for (std::string& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  pid_t pid = -1;
  const int rc = posix_spawnp(&pid, "dot", &fa, nullptr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&fa);
  static constexpr const char* kMissing =
      "Graphviz 'dot' not found on PATH; --html needs it to draw the graph (install the graphviz package)";
  if (rc == ENOENT) return NotFound(kMissing);
  if (rc != 0) return IoError("cannot run Graphviz 'dot': ", std::strerror(rc));
  int ws = 0;
  while (waitpid(pid, &ws, 0) < 0)
    if (errno != EINTR) return IoError("waiting for Graphviz 'dot': ", std::strerror(errno));
  // 127 is how a child reports a failed exec where posix_spawnp cannot (older C libraries).
  if (WIFEXITED(ws) && WEXITSTATUS(ws) == 127) return NotFound(kMissing);
  if (!WIFEXITED(ws) || WEXITSTATUS(ws) != 0) {
    std::ifstream ef(err);
    std::string msg, line;
    for (int n = 0; n < 3 && std::getline(ef, line); ++n) msg += (msg.empty() ? "" : "; ") + line;
    const std::string how = WIFEXITED(ws) ? StrCat("exit status ", WEXITSTATUS(ws)) : StrCat("signal ", WTERMSIG(ws));
    return Internal("Graphviz 'dot -Tsvg' failed (", how, ")", msg.empty() ? "" : ": ", msg);
  }
  std::ifstream f(out, std::ios::binary);
  std::stringstream ss;
  ss << f.rdbuf();
  std::string svg = ss.str();
  // Drop the XML prolog, doctype and generator comment: inline SVG in HTML starts at <svg.
  const size_t start = svg.find("<svg");
  if (!f || start == std::string::npos) return Internal("Graphviz 'dot -Tsvg' wrote no <svg> element");
  return svg.substr(start);
}

std::string InspectToHtml(const json& j, const std::string& svg_in) {
  const RenderGraph g = BuildGraph(j);
  // Graphviz titles each node's <g> with its DOT id; browsers show <title> as the tooltip, so the id
  // is replaced by the node's description (for layers: the source nodes it absorbed).
  std::string svg = svg_in.substr(std::min(svg_in.find("<svg"), svg_in.size()));
  auto retitle = [&svg](const std::string& id, const std::string& text) {
    const std::string from = "<title>" + id + "</title>";
    if (size_t pos = svg.find(from); pos != std::string::npos)
      svg.replace(pos, from.size(), "<title>" + HtmlEscape(text) + "</title>");
  };
  for (const GNode& n : g.nodes) retitle(n.id, n.tooltip);
  // Edges are titled "FROM->TO", XML-escaped (Graphviz writes '-' as &#45;): show the values they carry.
  for (const GEdge& e : g.edges) retitle(e.from + "&#45;&gt;" + e.to, Join(e.values, ", "));

  const json& mem = j.contains("memory") ? j["memory"] : json::object();
  auto mib = [](double bytes) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%.2f MiB", bytes / 1048576.0);
    return std::string(buf);
  };
  std::string memory = mib(Num(mem, "arena_bytes")) + " arena vs " + mib(Num(mem, "naive_bytes")) + " naive";
  if (Num(mem, "naive_bytes") > 0) {
    char buf[32];
    std::snprintf(buf, sizeof buf, " (%.1f%%)", 100.0 * Num(mem, "arena_bytes") / Num(mem, "naive_bytes"));
    memory += buf;
  }
  // The remaining memory fields (tensor counts and whatever later kilns add) as "name value".
  std::vector<std::string> extra;
  if (mem.is_object())
    for (const auto& [k, v] : mem.items()) {
      if (k == "arena_bytes" || k == "naive_bytes" || k == "ratio") continue;
      std::string name = k;
      std::replace(name.begin(), name.end(), '_', ' ');
      extra.push_back(HtmlEscape(name) + " " + HtmlEscape(NumText(v)));
    }
  std::string fusions;
  int total = 0;
  if (j.contains("rewrites") && j["rewrites"].is_object())
    for (const auto& [pass, count] : j["rewrites"].items()) {
      fusions += "<li><code>" + HtmlEscape(pass) + "</code>: " + HtmlEscape(NumText(count)) + "</li>";
      total += count.is_number() ? count.get<int>() : 0;
    }
  auto num = [&](const char* key) { return j.contains(key) ? HtmlEscape(NumText(j[key])) : std::string("?"); };

  std::string h;
  h += "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n";
  h += "<title>kiln inspect: " + HtmlEscape(Str(j, "model")) + "</title>\n";
  h += R"(<style>
body { font-family: sans-serif; margin: 1.5em; color: #222; }
h1 { font-size: 1.4em; }
table { border-collapse: collapse; margin: 1em 0; }
th, td { border: 1px solid #ccc; padding: 0.3em 0.6em; text-align: left; vertical-align: top; font-size: 0.9em; }
th { background: #f4f4f4; }
table.summary th { width: 14em; }
ul { margin: 0; padding-left: 1.2em; }
.graph { overflow: auto; border: 1px solid #ccc; padding: 0.5em; max-height: 90vh; }
.legend span { display: inline-block; padding: 0.1em 0.6em; margin-right: 0.8em;
               border: 1px solid #666; border-radius: 4px; }
tr.nokernel td { color: #666; }
tr:target td { background: #fff6bf; }
.small { font-size: 0.85em; color: #555; }
</style>
</head>
<body>
)";
  h += "<h1>kiln inspect: " + HtmlEscape(Str(j, "model")) + "</h1>\n<table class=\"summary\">\n";
  const bool plan = Str(j, "format") == "plan";
  if (plan) {
    std::vector<std::string> features = Strs(j, "isa_features");
    h += "<tr><th>plan</th><td>format " + num("format_version") + ", built by kiln " + HtmlEscape(Str(j, "kiln_version")) +
         ", backend " + HtmlEscape(Str(j, "backend")) + ", CPU features needed: " +
         HtmlEscape(features.empty() ? std::string("none") : Join(features, ", ")) + "</td></tr>\n";
    h += "<tr><th>bytes</th><td>file " + num("file_bytes") + ", weights " + num("weights_bytes") + " (in kernel layouts " +
         num("packed_weights_bytes") + ", kernel copies " + num("kernel_copy_bytes") + ")</td></tr>\n";
  } else {
    h += "<tr><th>ONNX nodes</th><td>" + num("onnx_nodes") + "</td></tr>\n";
    h += "<tr><th>imported nodes</th><td>" + num("imported_nodes") + "</td></tr>\n";
  }
  h += "<tr><th>layers</th><td>" + num("layers") + "</td></tr>\n";
  h += "<tr><th>kernels per inference</th><td>" + num("kernels") + "</td></tr>\n";
  if (!plan)
    h += "<tr><th>rewrites per pass (" + std::to_string(total) + " in all)</th><td>" +
         (fusions.empty() ? std::string("none") : "<ul>" + fusions + "</ul>") + "</td></tr>\n";
  h += "<tr><th>memory plan</th><td>" + memory +
       (extra.empty() ? "" : "<br><span class=\"small\">" + Join(extra, ", ") + "</span>") + "</td></tr>\n</table>\n";
  h += "<p class=\"legend\"><span style=\"background:#cfe2ff\">fused layer</span><span "
       "style=\"background:#eeeeee\">layer"
       "</span><span style=\"border-style:dashed\">no kernel (view)</span><span style=\"background:#fff2cc;"
       "border-radius:1em\">graph input / output</span> <span class=\"small\">hover a node for the source nodes it "
       "absorbed; click a layer for its row below</span></p>\n";
  h += "<div class=\"graph\">\n" + svg + "\n</div>\n";
  h += "<table class=\"layers\">\n<tr><th>#</th><th>layer</th><th>op</th><th>outputs</th><th>precision</th>"
       "<th>absorbed source nodes</th></tr>\n";
  const json& layers = Array(j, "layer_list");
  for (size_t i = 0; i < layers.size(); ++i) {
    const json& l = layers[i];
    const bool kernel = Bool(l, "kernel", true);
    std::string op = "<code>" + HtmlEscape(Str(l, "op")) + "</code>";
    if (!kernel) {
      const std::string why = Str(l, "eliminated");
      op += "<br><span class=\"small\">no kernel" + (why.empty() ? std::string(" (view)") : ": " + HtmlEscape(why)) +
            "</span>";
    }
    std::vector<std::string> outs;
    for (const json& o : Array(l, "outputs"))
      outs.push_back("<code>" + HtmlEscape(Str(o, "name")) + "</code> " + HtmlEscape(Str(o, "dtype")) + " " +
                     HtmlEscape(Str(o, "shape")));
    // A plan's recorded tactic and weights layout, under the precision.
    std::string choices;
    for (const char* key : {"tactic", "weights"})
      if (!Str(l, key).empty()) choices += "<br><span class=\"small\">" + HtmlEscape(Str(l, key)) + "</span>";
    std::vector<std::string> fused;
    for (const std::string& s : Strs(l, "fused_from")) fused.push_back("<code>" + HtmlEscape(s) + "</code>");
    h += "<tr id=\"layer-" + std::to_string(i) + "\"" + (kernel ? "" : " class=\"nokernel\"") + "><td>" +
         std::to_string(i) + "</td><td><code>" + HtmlEscape(Str(l, "name")) + "</code></td><td>" + op + "</td><td>" +
         Join(outs, "<br>") + "</td><td>" + HtmlEscape(Str(l, "precision")) + choices + "</td><td>" + Join(fused, "<br>") +
         "</td></tr>\n";
  }
  h += "</table>\n</body>\n</html>\n";
  return h;
}

Status WriteFileAtomic(const std::string& path, const std::string& data) {
  // base/file.h's writer: a temporary file of a unique name, synced, renamed into place.
  KILN_ASSIGN_OR_RETURN(AtomicFileWriter out, AtomicFileWriter::Create(path));
  KILN_RETURN_IF_ERROR(out.Write(data.data(), data.size()));
  return out.Commit();
}

Status WriteInspectFiles(const json& j, const std::string& dot_path, const std::string& html_path) {
  if (!dot_path.empty()) KILN_RETURN_IF_ERROR(WriteFileAtomic(dot_path, InspectToDot(j)));
  if (!html_path.empty()) {
    auto svg = DotToSvg(InspectToDot(j, /*link_layers=*/true));
    if (!svg.ok()) return svg.status().WithPrefix(html_path);
    KILN_RETURN_IF_ERROR(WriteFileAtomic(html_path, InspectToHtml(j, *svg)));
  }
  return Status::OK();
}

}  // namespace kiln::cli
