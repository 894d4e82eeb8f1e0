// The kiln CLI's subcommands. Each cmd_<name>.cc adds its subcommand to the app and
// returns the handler the dispatcher calls when that subcommand is chosen.
#pragma once

#include <CLI/CLI.hpp>
#include <functional>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "base/status.h"
#include "kiln/kiln.h"

namespace kiln::cli {

using Handler = std::function<int()>;

struct Command {
  CLI::App* app;  // the subcommand
  Handler run;    // called when it was chosen; returns the exit code
};

Command AddRunCommand(CLI::App& app);
Command AddInspectCommand(CLI::App& app);
Command AddBuildCommand(CLI::App& app);
Command AddBenchCommand(CLI::App& app);
Command AddServeCommand(CLI::App& app);
Command AddCompareCommand(CLI::App& app);
Command AddQuantizeCommand(CLI::App& app);

// "NAME=1x3x224x224" -> {NAME, {1,3,224,224}}.
StatusOr<std::pair<std::string, std::vector<int64_t>>> ParseShapeSpec(const std::string& spec);
// Every --shapes value, by input name.
StatusOr<std::map<std::string, std::vector<int64_t>>> ParseShapeSpecs(const std::vector<std::string>& specs);
// Prints the engine's slow paths (layers on reference implementations) as a warning on
// stderr, `what` naming the command's object; nothing when there are none.
void WarnSlowPaths(const Engine& engine, const std::string& what);

// Parses the engine flags every command shares into `options`; an error names the flag
// ("--backend 'gpu': unknown backend ..."). An empty string leaves that option as it is.
Status ParseEngineFlags(const std::string& backend, const std::string& precision, const std::string& batch_parallel,
                        BuildOptions* options);
inline constexpr const char* kStrictHelp =
    "Fail if any layer would run on a reference implementation (kiln's reference kernels, oneDNN's ref:any)";
// A file or directory option: an empty value ("") is an error, not "no file".
inline const CLI::Validator kPath(
    [](std::string& v) { return v.empty() ? std::string("an empty path is not a file name") : std::string(); }, "PATH");
// Number of nodes in the ONNX file's main graph (Constant nodes included); -1 if unreadable.
int CountOnnxNodes(const std::string& path);

}  // namespace kiln::cli
