#include "common/file_util.h"

#include <gtest/gtest.h>

#include <filesystem>

#include "common/checksum.h"

namespace dfv {
namespace {

std::string TempPath(const std::string& name) {
  return (std::filesystem::path(::testing::TempDir()) / name).string();
}

TEST(FileUtilTest, AtomicWriteReplacesWholeFileAndLeavesNoTemp) {
  std::string dir = TempPath("atomic_dir");
  std::filesystem::remove_all(dir);
  ASSERT_TRUE(MakeDirs(dir).ok());
  std::string path = dir + "/f.bin";
  ASSERT_TRUE(WriteFileAtomically(path, "first version, longer").ok());
  ASSERT_TRUE(WriteFileAtomically(path, "second").ok());
  auto got = ReadFileToString(path);
  ASSERT_TRUE(got.ok());
  EXPECT_EQ(*got, "second");
  int entries = 0;
  for (const auto& e : std::filesystem::directory_iterator(dir)) {
    (void)e;
    ++entries;
  }
  EXPECT_EQ(entries, 1);
}

TEST(FileUtilTest, MissingFileIsNotFound) {
  EXPECT_EQ(ReadFileToString(TempPath("no_such_file")).status().code(), absl::StatusCode::kNotFound);
}

TEST(FileUtilTest, WriteIntoMissingFolderFailsCleanly) {
  auto st = WriteFileAtomically(TempPath("no_such_dir/x"), "data");
  EXPECT_FALSE(st.ok());
  EXPECT_NE(st.message().find("no_such_dir"), std::string::npos);
}

TEST(FileUtilTest, SafePathComponents) {
  EXPECT_TRUE(IsSafePathComponent("cyclevae-fashion_1.2"));
  EXPECT_FALSE(IsSafePathComponent(""));
  EXPECT_FALSE(IsSafePathComponent(".."));
  EXPECT_FALSE(IsSafePathComponent(".hidden"));
  EXPECT_FALSE(IsSafePathComponent("a/b"));
  EXPECT_FALSE(IsSafePathComponent("a b"));
  EXPECT_FALSE(IsSafePathComponent(std::string(129, 'a')));
}

TEST(ChecksumTest, KnownValueAndIncremental) {
  // CRC-32 of "123456789" is the standard check value 0xCBF43926.
  EXPECT_EQ(Crc32("123456789"), 0xCBF43926u);
  EXPECT_EQ(Crc32Update(Crc32("12345"), "6789"), 0xCBF43926u);
  EXPECT_EQ(Crc32Hex(0xCBF43926u), "crc32:cbf43926");
}

}  // namespace
}  // namespace dfv
