#include "worker/daemon/subprocess.h"

#include <gtest/gtest.h>
#include <signal.h>

#include <filesystem>
#include <fstream>

#include "absl/strings/str_cat.h"
#include "common/cpu_cores.h"
#include "common/file_util.h"

namespace dfv::daemon {
namespace {

std::string ReadAll(Subprocess& child) {
  std::string out;
  bool eof = false;
  while (!eof) {
    auto chunk = child.ReadStdout(absl::Seconds(5), &eof);
    EXPECT_TRUE(chunk.ok()) << chunk.status();
    if (!chunk.ok()) break;
    out += *chunk;
  }
  return out;
}

TEST(Subprocess, ReadsStdoutAndExitCode) {
  auto child = Subprocess::Spawn({{"/bin/sh", "-c", "echo one; echo two; exit 7"}, "", ""});
  ASSERT_TRUE(child.ok()) << child.status();
  EXPECT_EQ(ReadAll(**child), "one\ntwo\n");
  ExitStatus exit = (*child)->Wait();
  EXPECT_TRUE(exit.exited);
  EXPECT_EQ(exit.code, 7);
  EXPECT_EQ(DescribeExit(exit), "exit status 7");
}

TEST(Subprocess, StderrGoesToTheLogFileAndWorkingDirIsSet) {
  std::filesystem::path dir = std::filesystem::path(::testing::TempDir()) / "subprocess_test";
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  const std::string log = (dir / "child.log").string();
  auto child = Subprocess::Spawn({{"/bin/sh", "-c", "echo oops >&2; pwd"}, dir.string(), log});
  ASSERT_TRUE(child.ok());
  EXPECT_EQ(ReadAll(**child), std::filesystem::canonical(dir).string() + "\n");
  (*child)->Wait();
  auto text = ReadFileToString(log);
  ASSERT_TRUE(text.ok());
  EXPECT_EQ(*text, "oops\n");
}

TEST(Subprocess, SignalReachesTheWholeGroup) {
  // The shell starts a grandchild; killing the group must stop both, so the
  // pipe (held open by the grandchild too) reaches EOF.
  auto child = Subprocess::Spawn({{"/bin/sh", "-c", "sleep 30 & sleep 30; wait"}, "", ""});
  ASSERT_TRUE(child.ok());
  bool eof = false;
  auto nothing = (*child)->ReadStdout(absl::Milliseconds(100), &eof);
  ASSERT_TRUE(nothing.ok());
  EXPECT_FALSE(eof);
  EXPECT_FALSE((*child)->TryWait().has_value());
  (*child)->Signal(SIGTERM);
  absl::Time start = absl::Now();
  EXPECT_EQ(ReadAll(**child), "");
  ExitStatus exit = (*child)->Wait();
  EXPECT_LT(absl::Now() - start, absl::Seconds(5));
  EXPECT_FALSE(exit.exited);
  EXPECT_EQ(exit.signal, SIGTERM);
}

TEST(Subprocess, EnvAddsToAndReplacesTheParentsEnvironment) {
  ::setenv("DFV_SUBPROCESS_TEST_KEPT", "kept", 1);
  ::setenv("DFV_SUBPROCESS_TEST_REPLACED", "old", 1);
  SpawnOptions options;
  options.argv = {"/bin/sh", "-c",
                  "echo \"$DFV_SUBPROCESS_TEST_KEPT $DFV_SUBPROCESS_TEST_REPLACED $DFV_SUBPROCESS_TEST_NEW\"; "
                  "env | grep -c '^DFV_SUBPROCESS_TEST_REPLACED='"};
  options.env = {"DFV_SUBPROCESS_TEST_REPLACED=new", "DFV_SUBPROCESS_TEST_NEW=x=y"};
  auto child = Subprocess::Spawn(options);
  ::unsetenv("DFV_SUBPROCESS_TEST_KEPT");
  ::unsetenv("DFV_SUBPROCESS_TEST_REPLACED");
  ASSERT_TRUE(child.ok()) << child.status();
  EXPECT_EQ(ReadAll(**child), "kept new x=y\n1\n");
  EXPECT_TRUE((*child)->Wait().exited);
}

TEST(Subprocess, CpusPinTheChildAndLeaveTheCallerAlone) {
  const std::vector<int> all = AffinityCpus();
  ASSERT_FALSE(all.empty());
  SpawnOptions options;
  options.argv = {"/bin/sh", "-c", "grep '^Cpus_allowed_list:' /proc/self/status"};
  options.cpus = {all.back()};
  auto child = Subprocess::Spawn(options);
  ASSERT_TRUE(child.ok()) << child.status();
  EXPECT_EQ(ReadAll(**child), absl::StrCat("Cpus_allowed_list:\t", all.back(), "\n"));
  EXPECT_TRUE((*child)->Wait().exited);
  EXPECT_EQ(AffinityCpus(), all) << "the spawning thread's mask is restored";
}

TEST(Subprocess, StdinPipeCarriesWhatTheParentWrites) {
  SpawnOptions options;
  options.argv = {"/bin/sh", "-c", "read line; echo \"got $line\"; cat"};
  options.stdin_pipe = true;
  auto child = Subprocess::Spawn(options);
  ASSERT_TRUE(child.ok()) << child.status();
  ASSERT_TRUE((*child)->WriteStdin("one\ntwo\n").ok());
  (*child)->CloseStdin();  // cat ends
  EXPECT_EQ(ReadAll(**child), "got one\ntwo\n");
  EXPECT_TRUE((*child)->Wait().exited);
  EXPECT_TRUE(absl::IsFailedPrecondition((*child)->WriteStdin("late")));
}

TEST(Subprocess, WritingToAChildThatExitedIsAnErrorNotASignal) {
  SpawnOptions options;
  options.argv = {"/bin/true"};
  options.stdin_pipe = true;
  auto child = Subprocess::Spawn(options);
  ASSERT_TRUE(child.ok()) << child.status();
  (*child)->Wait();
  // Its end of the socket is closed: EPIPE (with SIGPIPE this test would die).
  const std::string big(1 << 20, 'x');
  EXPECT_FALSE((*child)->WriteStdin(big).ok());
}

TEST(Subprocess, WithoutAStdinPipeWritingIsRefused) {
  auto child = Subprocess::Spawn({{"/bin/true"}, "", ""});
  ASSERT_TRUE(child.ok());
  EXPECT_TRUE(absl::IsFailedPrecondition((*child)->WriteStdin("x")));
  (*child)->Wait();
}

TEST(Subprocess, MissingProgramIsAnError) {
  auto child = Subprocess::Spawn({{"/nonexistent/trainer"}, "", ""});
  ASSERT_FALSE(child.ok());
  EXPECT_NE(child.status().message().find("/nonexistent/trainer"), std::string::npos);
  EXPECT_FALSE(Subprocess::Spawn({{}, "", ""}).ok());
}

TEST(Subprocess, DestructorKillsARunningChild) {
  pid_t pid;
  {
    auto child = Subprocess::Spawn({{"/bin/sleep", "30"}, "", ""});
    ASSERT_TRUE(child.ok());
    pid = (*child)->pid();
  }
  EXPECT_NE(kill(pid, 0), 0);  // reaped and gone
}

}  // namespace
}  // namespace dfv::daemon
