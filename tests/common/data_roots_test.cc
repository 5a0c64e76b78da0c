// CheckUnderDataRoots on a real folder tree with real symlinks.
#include "common/data_roots.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>

#include "absl/strings/match.h"

namespace dfv {
namespace {

namespace fs = std::filesystem;

// <tmp>/data_roots/{root/mnist, root2, outside/secret} and symlinks:
//   root/out -> ../outside          (a link out of the root)
//   root/alias -> mnist             (a link that stays inside)
//   linked-root -> root             (a root that is itself a link)
//   root/../root2                   (a sibling whose name starts like it: rootX)
class DataRootsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    // One folder per test: CTest runs the tests of this suite in parallel.
    base_ = fs::path(::testing::TempDir()) / "data_roots" /
            ::testing::UnitTest::GetInstance()->current_test_info()->name();
    fs::remove_all(base_);
    fs::create_directories(base_ / "root" / "mnist");
    fs::create_directories(base_ / "root2");
    fs::create_directories(base_ / "outside" / "secret");
    fs::create_directory_symlink("../outside", base_ / "root" / "out");
    fs::create_directory_symlink("mnist", base_ / "root" / "alias");
    fs::create_directory_symlink("root", base_ / "linked-root");
  }

  std::string P(const std::string& relative) const { return (base_ / relative).string(); }

  absl::Status Check(const std::string& path, const std::vector<std::string>& roots) const {
    return CheckUnderDataRoots("dataset.path", path, roots);
  }

  fs::path base_;
};

TEST_F(DataRootsTest, PathsInsideARootPass) {
  EXPECT_TRUE(Check(P("root/mnist"), {P("root")}).ok());
  EXPECT_TRUE(Check(P("root"), {P("root")}).ok());  // the root itself
  EXPECT_TRUE(Check(P("root/mnist"), {P("outside"), P("root")}).ok());  // any root will do
  EXPECT_TRUE(Check(P("root/mnist/"), {P("root/")}).ok());
}

TEST_F(DataRootsTest, PathsOutsideEveryRootAreRefusedNamingPathAndRoots) {
  absl::Status s = Check(P("outside/secret"), {P("root")});
  EXPECT_EQ(s.code(), absl::StatusCode::kPermissionDenied) << s;
  EXPECT_TRUE(absl::StrContains(s.message(), "dataset.path: " + P("outside/secret"))) << s;
  EXPECT_TRUE(absl::StrContains(s.message(), P("root"))) << s;
  EXPECT_TRUE(absl::StrContains(s.message(), "--data-root")) << s;
  EXPECT_EQ(Check("/etc", {P("root")}).code(), absl::StatusCode::kPermissionDenied);
}

TEST_F(DataRootsTest, ComparesWholeComponentsNotStringPrefixes) {
  EXPECT_EQ(Check(P("root2"), {P("root")}).code(), absl::StatusCode::kPermissionDenied);
}

TEST_F(DataRootsTest, DotDotCannotClimbOut) {
  absl::Status s = Check(P("root/mnist/../../outside/secret"), {P("root")});
  EXPECT_EQ(s.code(), absl::StatusCode::kPermissionDenied) << s;
  // Named as given and as resolved.
  EXPECT_TRUE(absl::StrContains(s.message(), "(" + P("outside/secret") + ")")) << s;
  EXPECT_TRUE(Check(P("root/mnist/../mnist"), {P("root")}).ok());
}

TEST_F(DataRootsTest, ASymlinkOutOfARootIsRefused) {
  EXPECT_EQ(Check(P("root/out/secret"), {P("root")}).code(), absl::StatusCode::kPermissionDenied);
  EXPECT_EQ(Check(P("root/out"), {P("root")}).code(), absl::StatusCode::kPermissionDenied);
}

TEST_F(DataRootsTest, ASymlinkInsideARootPasses) {
  EXPECT_TRUE(Check(P("root/alias"), {P("root")}).ok());
}

TEST_F(DataRootsTest, ARootThatIsASymlinkIsResolvedToo) {
  EXPECT_TRUE(Check(P("root/mnist"), {P("linked-root")}).ok());
  EXPECT_TRUE(Check(P("linked-root/mnist"), {P("root")}).ok());
  EXPECT_EQ(Check(P("linked-root/out/secret"), {P("linked-root")}).code(), absl::StatusCode::kPermissionDenied);
}

TEST_F(DataRootsTest, ANonexistentPathIsJudgedByWhereItWouldBe) {
  EXPECT_TRUE(Check(P("root/not-yet/there"), {P("root")}).ok());
  EXPECT_EQ(Check(P("nowhere/data"), {P("root")}).code(), absl::StatusCode::kPermissionDenied);
  EXPECT_EQ(Check(P("root/not-yet/../../outside"), {P("root")}).code(), absl::StatusCode::kPermissionDenied);
  // A root that does not exist allows only what would lie under it.
  EXPECT_TRUE(Check(P("later/x"), {P("later")}).ok());
}

TEST_F(DataRootsTest, RelativePathsAndRootsResolveAgainstTheCurrentDirectory) {
  const fs::path before = fs::current_path();
  fs::current_path(base_);
  EXPECT_TRUE(Check("root/mnist", {"root"}).ok());
  EXPECT_TRUE(Check("root/mnist", {P("root")}).ok());
  EXPECT_EQ(Check("outside", {"root"}).code(), absl::StatusCode::kPermissionDenied);
  absl::StatusOr<std::vector<std::string>> roots = ResolveDataRoots({"linked-root", "later"});
  fs::current_path(before);
  ASSERT_TRUE(roots.ok()) << roots.status();
  EXPECT_EQ(*roots, (std::vector<std::string>{P("root"), P("later")}));
}

TEST_F(DataRootsTest, EmptyPathOrNoRootsIsAnError) {
  EXPECT_EQ(Check("", {P("root")}).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(Check(P("root"), {}).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(ResolveDataRoots({""}).status().code(), absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace dfv
