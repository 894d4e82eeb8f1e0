// The kiln CLI's subcommands. Each cmd_<name>.cc adds its subcommand to the app and
// returns the handler the dispatcher calls when that subcommand is chosen.
#pragma once

#include <CLI/CLI.hpp>
#include <functional>

namespace kiln::cli {

using Handler = std::function<int()>;

struct Command {
  CLI::App* app;  // the subcommand
  Handler run;    // called when it was chosen; returns the exit code
};

Command AddRunCommand(CLI::App& app);

}  // namespace kiln::cli
