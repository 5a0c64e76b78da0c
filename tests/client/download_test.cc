// Tests of artifact downloads: names are checked before they become paths,
// transfers are checked against size and CRC-32, and a bad transfer never
// leaves a file (or a temporary) behind.
#include "client/download.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <string>
#include <vector>

#include "common/checksum.h"
#include "common/file_util.h"
#include "tests/client/fake_coordinator.h"

namespace dfv::client {
namespace {

namespace fs = std::filesystem;
using testing::ArtifactScript;
using ::testing::ElementsAre;
using testing::FakeCoordinator;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using testing::MakeInfo;
using testing::Transfer;

class DownloadTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::path(::testing::TempDir()) /
           ("dfv_download_" +
            std::string(::testing::UnitTest::GetInstance()->current_test_info()->name()));
    fs::remove_all(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }

  // Every file under the download folder, relative, sorted.
  std::vector<std::string> FilesThere() const {
    std::vector<std::string> files;
    if (!fs::exists(dir_)) return files;
    for (const auto& entry : fs::recursive_directory_iterator(dir_)) {
      if (entry.is_regular_file())
        files.push_back(fs::relative(entry.path(), dir_.string()).string());
    }
    std::sort(files.begin(), files.end());
    return files;
  }

  std::string ReadBack(const std::string& name) const {
    absl::StatusOr<std::string> text = ReadFileToString((dir_ / name).string());
    EXPECT_TRUE(text.ok()) << text.status();
    return text.value_or("");
  }

  fs::path dir_;
};

TEST(ValidateArtifactNameTest, AcceptsRelativePathsOfSafeComponents) {
  for (const std::string& name :
       std::vector<std::string>{"report.json", "grids/swap-step00000500.png",
                                "checkpoints/step-500.ckpt", "a/b/c_d-e.f"}) {
    EXPECT_TRUE(ValidateArtifactName(name).ok()) << name;
  }
}

TEST(ValidateArtifactNameTest, RefusesAnythingThatCouldEscapeTheFolder) {
  for (const std::string& name :
       std::vector<std::string>{"", "/etc/passwd", "../x", "a/../../b", "a/./b", "a//b", "a/",
                                ".hidden", "grids/.x", "a\\b", "with space.png", "caf\xc3\xa9.png",
                                std::string(129, 'a'), std::string("a\0b", 3)}) {
    absl::Status status = ValidateArtifactName(name);
    EXPECT_TRUE(absl::IsInvalidArgument(status)) << "accepted: " << name;
  }
  EXPECT_THAT(ValidateArtifactName("../x").message(), HasSubstr("unsafe component '..'"));
  EXPECT_THAT(ValidateArtifactName("/etc/passwd").message(), HasSubstr("absolute"));
  std::string long_name;
  for (int i = 0; i < 60; ++i) long_name += "abcdefghi/";
  long_name += "x";
  EXPECT_THAT(ValidateArtifactName(long_name).message(), HasSubstr("longer than 512"));
}

TEST(ParseCrc32ChecksumTest, EightHexDigitsAfterThePrefix) {
  EXPECT_EQ(ParseCrc32Hex("crc32:0000beef").value(), 0xbeefu);
  EXPECT_EQ(ParseCrc32Hex("crc32:DEADBEEF").value(), 0xdeadbeefu);
  EXPECT_EQ(ParseCrc32Hex(Crc32Hex(Crc32("hello"))).value(), Crc32("hello"));
  for (const std::string& bad :
       std::vector<std::string>{"", "crc32:", "crc32:beef", "crc32:deadbeef0", "crc32:xyzxyzxy",
                                "md5:deadbeef", "crc32:+eadbeef", "deadbeef"}) {
    EXPECT_TRUE(absl::IsInvalidArgument(ParseCrc32Hex(bad).status())) << bad;
  }
}

TEST_F(DownloadTest, WritesTheVerifiedBytesUnderTheName) {
  FakeCoordinator coordinator;
  const std::string data = "PNG bytes, eleven chunks of four";
  coordinator.AddArtifact("grids/swap.png", data);
  auto result = DownloadArtifact(coordinator, "j-000001", coordinator.artifact_list.artifacts(0),
                                 dir_.string());
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_EQ(result->path, (dir_ / "grids/swap.png").string());
  EXPECT_FALSE(result->already_present);
  EXPECT_EQ(result->info.size(), static_cast<int64_t>(data.size()));
  EXPECT_EQ(ReadBack("grids/swap.png"), data);
  EXPECT_THAT(FilesThere(), ElementsAre("grids/swap.png"));  // no temporaries left
}

TEST_F(DownloadTest, DataInTheFirstChunkCounts) {
  FakeCoordinator coordinator;
  const std::string data = "all in one";
  const v1::ArtifactInfo info = MakeInfo("report.json", data, v1::REPORT);
  v1::ArtifactChunk only;
  *only.mutable_info() = info;
  only.set_data(data);
  coordinator.transfers["report.json"] = ArtifactScript{{only}, absl::OkStatus()};
  ASSERT_TRUE(DownloadArtifact(coordinator, "j-000001", info, dir_.string()).ok());
  EXPECT_EQ(ReadBack("report.json"), data);
}

TEST_F(DownloadTest, EmptyArtifact) {
  FakeCoordinator coordinator;
  coordinator.AddArtifact("log/empty.txt", "", v1::LOG);
  ASSERT_TRUE(DownloadArtifact(coordinator, "j-000001", coordinator.artifact_list.artifacts(0),
                               dir_.string())
                  .ok());
  EXPECT_EQ(ReadBack("log/empty.txt"), "");
}

TEST_F(DownloadTest, ChecksumMismatchIsDataLossAndWritesNothing) {
  FakeCoordinator coordinator;
  const std::string data = "the real bytes";
  v1::ArtifactInfo info = MakeInfo("checkpoints/step-5.ckpt", data, v1::CHECKPOINT);
  std::string corrupt = data;
  corrupt[3] ^= 0x01;  // one flipped bit, same length
  coordinator.transfers[info.name()] = Transfer(info, corrupt);
  auto result = DownloadArtifact(coordinator, "j-000001", info, dir_.string());
  EXPECT_TRUE(absl::IsDataLoss(result.status())) << result.status();
  EXPECT_THAT(result.status().message(),
              HasSubstr("checksum mismatch: expected " + info.checksum() + ", got " +
                        Crc32Hex(Crc32(corrupt))));
  EXPECT_THAT(FilesThere(), IsEmpty());
}

TEST_F(DownloadTest, AnUnsafeNameIsRefusedBeforeAnythingIsAsked) {
  FakeCoordinator coordinator;
  const v1::ArtifactInfo info = MakeInfo("../outside.png", "x");
  auto result = DownloadArtifact(coordinator, "j-000001", info, dir_.string());
  EXPECT_TRUE(absl::IsInternal(result.status())) << result.status();
  EXPECT_THAT(coordinator.artifact_requests, IsEmpty());
  EXPECT_FALSE(fs::exists(dir_.parent_path() / "outside.png"));
}

TEST_F(DownloadTest, ShortTransferIsDataLoss) {
  FakeCoordinator coordinator;
  const std::string data = "twelve bytes";
  v1::ArtifactInfo info = MakeInfo("metrics.csv", data, v1::METRICS);
  coordinator.transfers[info.name()] = Transfer(info, data.substr(0, 7));
  auto result = DownloadArtifact(coordinator, "j-000001", info, dir_.string());
  EXPECT_TRUE(absl::IsDataLoss(result.status())) << result.status();
  EXPECT_THAT(result.status().message(), HasSubstr("ended after 7 of 12 bytes"));
  EXPECT_THAT(FilesThere(), IsEmpty());
}

TEST_F(DownloadTest, LongTransferIsDataLoss) {
  FakeCoordinator coordinator;
  v1::ArtifactInfo info = MakeInfo("metrics.csv", "short", v1::METRICS);
  coordinator.transfers[info.name()] = Transfer(info, "short, then more than announced");
  auto result = DownloadArtifact(coordinator, "j-000001", info, dir_.string());
  EXPECT_TRUE(absl::IsDataLoss(result.status())) << result.status();
  EXPECT_THAT(result.status().message(), HasSubstr("longer than the 5 bytes announced"));
  EXPECT_THAT(FilesThere(), IsEmpty());
}

TEST_F(DownloadTest, FirstChunkMustDescribeTheRequestedArtifact) {
  FakeCoordinator coordinator;
  const v1::ArtifactInfo info = MakeInfo("report.json", "{}", v1::REPORT);

  v1::ArtifactChunk no_info;
  no_info.set_data("{}");
  coordinator.transfers["report.json"] = ArtifactScript{{no_info}, absl::OkStatus()};
  auto result = DownloadArtifact(coordinator, "j-000001", info, dir_.string());
  EXPECT_TRUE(absl::IsDataLoss(result.status())) << result.status();
  EXPECT_THAT(result.status().message(), HasSubstr("carries no info"));

  coordinator.transfers["report.json"] = Transfer(MakeInfo("other.json", "{}"), "{}");
  result = DownloadArtifact(coordinator, "j-000001", info, dir_.string());
  EXPECT_TRUE(absl::IsDataLoss(result.status())) << result.status();
  EXPECT_THAT(result.status().message(), HasSubstr("sent 'other.json' instead"));

  v1::ArtifactInfo unchecked = info;
  unchecked.set_checksum("sha1:abc");
  coordinator.transfers["report.json"] = Transfer(unchecked, "{}");
  result = DownloadArtifact(coordinator, "j-000001", info, dir_.string());
  EXPECT_TRUE(absl::IsDataLoss(result.status())) << result.status();
  EXPECT_THAT(result.status().message(), HasSubstr("not crc32"));

  coordinator.transfers["report.json"] = ArtifactScript{{}, absl::OkStatus()};
  result = DownloadArtifact(coordinator, "j-000001", info, dir_.string());
  EXPECT_TRUE(absl::IsDataLoss(result.status())) << result.status();
  EXPECT_THAT(FilesThere(), IsEmpty());
}

TEST_F(DownloadTest, StreamErrorsComeBackAsTheyAre) {
  FakeCoordinator coordinator;
  const std::string data = "abcdefgh";
  v1::ArtifactInfo info = MakeInfo("report.json", data, v1::REPORT);
  ArtifactScript script = Transfer(info, data.substr(0, 4));
  script.end = absl::UnavailableError("cannot reach coordinator at 127.0.0.1:7070: reset");
  coordinator.transfers[info.name()] = script;
  auto result = DownloadArtifact(coordinator, "j-000001", info, dir_.string());
  EXPECT_TRUE(absl::IsUnavailable(result.status())) << result.status();
  EXPECT_THAT(FilesThere(), IsEmpty());

  // Unknown artifact: the fake answers NOT_FOUND.
  result = DownloadArtifact(coordinator, "j-000001", MakeInfo("nope.png", "x"), dir_.string());
  EXPECT_TRUE(absl::IsNotFound(result.status())) << result.status();
}

TEST_F(DownloadTest, AnIdenticalFileAlreadyThereIsNotFetchedAgain) {
  FakeCoordinator coordinator;
  coordinator.AddArtifact("report.json", "{\"mse\": 0.03}", v1::REPORT);
  coordinator.AddArtifact("metrics.csv", "step,loss\n1,0.5\n", v1::METRICS);
  ASSERT_TRUE(MakeDirs(dir_.string()).ok());
  ASSERT_TRUE(WriteFileAtomically((dir_ / "report.json").string(), "{\"mse\": 0.03}").ok());
  // Same size, different bytes: fetched again and replaced.
  ASSERT_TRUE(WriteFileAtomically((dir_ / "metrics.csv").string(), "step,loss\n1,0.9\n").ok());

  auto summary = DownloadArtifacts(coordinator, "j-000001", dir_.string(), nullptr);
  ASSERT_TRUE(summary.ok()) << summary.status();
  ASSERT_EQ(summary->artifacts.size(), 2u);
  EXPECT_TRUE(summary->artifacts[0].already_present);
  EXPECT_FALSE(summary->artifacts[1].already_present);
  EXPECT_EQ(summary->bytes_fetched, 16);
  EXPECT_THAT(coordinator.artifact_requests, ElementsAre("metrics.csv"));
  EXPECT_EQ(ReadBack("metrics.csv"), "step,loss\n1,0.5\n");
}

TEST_F(DownloadTest, DownloadsEveryListedArtifactInOrder) {
  FakeCoordinator coordinator;
  coordinator.AddArtifact("job.yaml", "name: x\n", v1::JOB_SPEC);
  coordinator.AddArtifact("grids/reconstruction-step00000100.png", std::string(1000, 'g'));
  coordinator.AddArtifact("checkpoints/step-100.ckpt", std::string(5000, '\x7f'), v1::CHECKPOINT);
  std::vector<std::string> heard;
  auto summary =
      DownloadArtifacts(coordinator, "j-000001", dir_.string(),
                        [&](const DownloadedArtifact& a) { heard.push_back(a.info.name()); });
  ASSERT_TRUE(summary.ok()) << summary.status();
  EXPECT_THAT(heard, ElementsAre("job.yaml", "grids/reconstruction-step00000100.png",
                                 "checkpoints/step-100.ckpt"));
  EXPECT_EQ(summary->bytes_fetched, 8 + 1000 + 5000);
  EXPECT_THAT(FilesThere(), ElementsAre("checkpoints/step-100.ckpt",
                                        "grids/reconstruction-step00000100.png", "job.yaml"));
  EXPECT_EQ(ReadBack("checkpoints/step-100.ckpt"), std::string(5000, '\x7f'));
}

TEST_F(DownloadTest, AnUnsafeNameStopsTheDownloadBeforeAnyFileIsWritten) {
  FakeCoordinator coordinator;
  coordinator.AddArtifact("report.json", "{}", v1::REPORT);
  coordinator.AddArtifact("../../.bashrc", "echo pwned", v1::LOG);
  auto summary = DownloadArtifacts(coordinator, "j-000001", dir_.string(), nullptr);
  EXPECT_TRUE(absl::IsInternal(summary.status())) << summary.status();
  EXPECT_THAT(summary.status().message(), HasSubstr("refusing what the coordinator sent"));
  EXPECT_THAT(summary.status().message(), HasSubstr("'../../.bashrc'"));
  EXPECT_THAT(coordinator.artifact_requests, IsEmpty());
  EXPECT_FALSE(fs::exists(dir_));
}

}  // namespace
}  // namespace dfv::client
