// kiln: command-line entry point. `kiln --help` lists the subcommands.
#include <iostream>
#include <vector>

#include "tools/cli/commands.h"

int main(int argc, char** argv) {
  CLI::App app{"kiln: deep-learning inference optimizer and runtime"};
  app.set_version_flag("--version", std::string("kiln ") + KILN_VERSION);
  app.require_subcommand(1);
  std::vector<kiln::cli::Command> commands = {
      kiln::cli::AddRunCommand(app),
      kiln::cli::AddInspectCommand(app),
      kiln::cli::AddBuildCommand(app),
      kiln::cli::AddBenchCommand(app),
      kiln::cli::AddServeCommand(app),
      kiln::cli::AddCompareCommand(app),
      kiln::cli::AddQuantizeCommand(app),
  };
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }
  for (auto& c : commands)
    if (c.app->parsed()) return c.run();
  return 2;
}
