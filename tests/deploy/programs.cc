#include "tests/deploy/programs.h"

#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <filesystem>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "common/file_util.h"
#include "gtest/gtest.h"
#include "worker/daemon/subprocess.h"

namespace dfv::testing {

absl::StatusOr<std::string> FindProgram(const std::string& name) {
  const char* path = std::getenv("PATH");
  for (absl::string_view dir : absl::StrSplit(path == nullptr ? "" : path, ':', absl::SkipEmpty())) {
    const std::string candidate = absl::StrCat(dir, "/", name);
    if (access(candidate.c_str(), X_OK) == 0) return candidate;
  }
  return absl::NotFoundError(absl::StrCat(
      name, " is not on PATH: install the Debian package that provides it (scripts/install-deps.sh installs what the tests use)"));
}

std::string MakeTestDir(const std::string& prefix) {
  static std::atomic<int> counter{0};
  const std::string dir = (std::filesystem::path(::testing::TempDir()) /
                           absl::StrCat(prefix, "-", getpid(), "-", counter.fetch_add(1)))
                              .string();
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  return dir;
}

absl::StatusOr<ProgramResult> RunProgram(const std::vector<std::string>& argv, absl::Duration timeout) {
  const std::string dir = MakeTestDir("run");
  daemon::SpawnOptions options;
  options.argv = argv;
  options.stderr_path = dir + "/stderr";
  absl::StatusOr<std::unique_ptr<daemon::Subprocess>> process = daemon::Subprocess::Spawn(options);
  if (!process.ok()) return process.status();
  ProgramResult result;
  const absl::Time deadline = absl::Now() + timeout;
  bool eof = false;
  while (!eof && absl::Now() < deadline) {
    absl::StatusOr<std::string> chunk = (*process)->ReadStdout(absl::Milliseconds(100), &eof);
    if (!chunk.ok()) return chunk.status();
    result.output += *chunk;
  }
  if (!eof) (*process)->Signal(SIGKILL);
  const daemon::ExitStatus exit = (*process)->Wait();
  result.exit_code = exit.exited ? exit.code : 128 + exit.signal;
  absl::StatusOr<std::string> err = ReadFileToString(options.stderr_path);
  if (err.ok()) result.output += *err;
  std::error_code ignored;
  std::filesystem::remove_all(dir, ignored);
  if (!eof) {
    return absl::DeadlineExceededError(absl::StrCat(argv[0], " ran past ", absl::FormatDuration(timeout), ":\n",
                                                    result.output));
  }
  return result;
}

}  // namespace dfv::testing
