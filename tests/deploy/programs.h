// Finding and running the external programs the deploy tests need (promtool,
// prometheus), which CI installs from Debian's `prometheus` package.
// Thread-compatible.
#ifndef DFV_TESTS_DEPLOY_PROGRAMS_H_
#define DFV_TESTS_DEPLOY_PROGRAMS_H_

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace dfv::testing {

// The path of `name` on $PATH, or NOT_FOUND saying what to install.
absl::StatusOr<std::string> FindProgram(const std::string& name);

struct ProgramResult {
  int exit_code = -1;  // 128 + signal when killed
  std::string output;  // stdout, then stderr
};

// Runs argv (argv[0] a path) to completion, at most `timeout` (then it is
// killed and DEADLINE_EXCEEDED returned with what it printed). INTERNAL when it
// cannot be started.
absl::StatusOr<ProgramResult> RunProgram(const std::vector<std::string>& argv,
                                         absl::Duration timeout = absl::Seconds(60));

// A fresh, empty folder under the test temp dir (GoogleTest's TempDir()),
// named from `prefix`, this process and a counter.
std::string MakeTestDir(const std::string& prefix);

}  // namespace dfv::testing

#endif  // DFV_TESTS_DEPLOY_PROGRAMS_H_
