// Runs one of the build's command-line programs (build/tools/NAME) as a user would, with
// shell words already quoted, and collects its exit status, standard output and
// standard error. Shared by the CLI suites.
#pragma once

#include <sys/wait.h>

#include <cstdio>
#include <string>

#include "test_support.h"

namespace peft_test {

struct ToolRun {
  int status = -1;
  std::string out, err;
};

inline ToolRun run_tool(const std::string& name, const std::string& args) {
  const auto binary = env_dir("PEFT_BUILD_ROOT", "build") / "tools" / name;
  BOOST_REQUIRE_MESSAGE(fs::exists(binary), binary << " is not built");
  TempDir dir;
  const std::string cmd = "'" + binary.string() + "' " + args + " 2>'" + (dir / "err").string() + "'";
  ToolRun r;
  FILE* p = popen(cmd.c_str(), "r");
  BOOST_REQUIRE(p);
  char buf[4096];
  for (size_t n; (n = fread(buf, 1, sizeof buf, p)) > 0;) r.out.append(buf, n);
  const int w = pclose(p);
  r.status = WIFEXITED(w) ? WEXITSTATUS(w) : -1;
  r.err = read_file(dir / "err");
  return r;
}

}  // namespace peft_test
