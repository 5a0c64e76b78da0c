#include "common/sequential_file.h"

#include <fcntl.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <linux/magic.h>
#include <sys/mman.h>
#include <sys/vfs.h>
#include <unistd.h>

#include <filesystem>
#include <string>
#include <vector>

#include "common/file_util.h"

namespace dfv {
namespace {

using ::testing::HasSubstr;

std::string FreshPath(const std::string& name) {
  const std::string path = (std::filesystem::path(::testing::TempDir()) / name).string();
  std::filesystem::remove(path);
  return path;
}

// Bytes no two positions of which repeat for a while, so a misplaced piece
// shows.
std::string Pattern(size_t size) {
  std::string data(size, '\0');
  uint32_t x = 2463534242u;
  for (char& c : data) {
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    c = static_cast<char>(x);
  }
  return data;
}

// Writes `data` in pieces of the given sizes (cycling), then finishes.
absl::Status WriteInPieces(SequentialFileWriter& writer, std::string_view data, const std::vector<size_t>& sizes) {
  for (size_t i = 0; !data.empty(); ++i) {
    const size_t n = std::min(data.size(), sizes[i % sizes.size()]);
    if (absl::Status status = writer.Append(data.substr(0, n)); !status.ok()) return status;
    data.remove_prefix(n);
  }
  return writer.Finish();
}

// Pages of the file in the page cache (mincore over a mapping of it).
size_t ResidentPages(const std::string& path, size_t size) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return 0;
  void* map = ::mmap(nullptr, size, PROT_READ, MAP_SHARED, fd, 0);
  ::close(fd);
  if (map == MAP_FAILED) return 0;
  const size_t page = static_cast<size_t>(::sysconf(_SC_PAGESIZE));
  std::vector<unsigned char> resident((size + page - 1) / page);
  size_t count = 0;
  if (::mincore(map, size, resident.data()) == 0) {
    for (unsigned char r : resident) count += r & 1;
  }
  ::munmap(map, size);
  return count;
}

TEST(SequentialFileWriterTest, WritesEveryByteInOrderWithAndWithoutDirectIo) {
  // Several direct buffers, a tail that fills no aligned block, pieces that
  // straddle the buffer's end.
  const std::string data = Pattern(3 * SequentialFileWriter::kDirectBufferBytes + 5000 + 123);
  for (bool direct : {false, true}) {
    const std::string path = FreshPath(direct ? "direct.bin" : "buffered.bin");
    absl::StatusOr<std::unique_ptr<SequentialFileWriter>> writer = SequentialFileWriter::Create(path, direct);
    ASSERT_TRUE(writer.ok()) << writer.status();
    if (!direct) EXPECT_FALSE((*writer)->direct());
    ASSERT_TRUE(WriteInPieces(**writer, data, {1, 700001, 4096, 1 << 20, 333}).ok());
    absl::StatusOr<std::string> read = ReadFileToString(path);
    ASSERT_TRUE(read.ok()) << read.status();
    EXPECT_EQ(read->size(), data.size()) << "direct=" << direct;
    EXPECT_TRUE(*read == data) << "direct=" << direct << ": the file's bytes differ from those written";
  }
}

// Where the file system takes O_DIRECT, the writer's full buffers never
// enter the page cache: only the tail (written through it at Finish) may be
// resident afterwards.
TEST(SequentialFileWriterTest, DirectWritesLeaveTheBytesOutOfThePageCache) {
  const std::string path = FreshPath("uncached.bin");
  absl::StatusOr<std::unique_ptr<SequentialFileWriter>> writer = SequentialFileWriter::Create(path, true);
  ASSERT_TRUE(writer.ok()) << writer.status();
  if (!(*writer)->direct()) {
    GTEST_SKIP() << "the file system under " << ::testing::TempDir() << " refuses O_DIRECT; the writer fell back";
  }
  struct statfs fs;
  if (::statfs(::testing::TempDir().c_str(), &fs) == 0 && fs.f_type == TMPFS_MAGIC) {
    GTEST_SKIP() << ::testing::TempDir() << " is tmpfs, whose files live in the page cache";
  }
  const size_t size = 8 * SequentialFileWriter::kDirectBufferBytes + 100;
  const std::string data = Pattern(size);
  ASSERT_TRUE(WriteInPieces(**writer, data, {1 << 20}).ok());
  const size_t page = static_cast<size_t>(::sysconf(_SC_PAGESIZE));
  EXPECT_LE(ResidentPages(path, size), 2u) << "of " << size / page << " pages";

  // The same bytes written through the page cache stay there (the check
  // above can tell the two apart).
  const std::string cached = FreshPath("cached.bin");
  writer = SequentialFileWriter::Create(cached, false);
  ASSERT_TRUE(writer.ok());
  ASSERT_TRUE(WriteInPieces(**writer, data, {1 << 20}).ok());
  EXPECT_GT(ResidentPages(cached, size), size / page / 2);
}

TEST(SequentialFileWriterTest, RefusesAnExistingFileAndUseAfterFinishNamingThePath) {
  const std::string path = FreshPath("once.bin");
  absl::StatusOr<std::unique_ptr<SequentialFileWriter>> writer = SequentialFileWriter::Create(path, true);
  ASSERT_TRUE(writer.ok());
  ASSERT_TRUE((*writer)->Append("abc").ok());
  ASSERT_TRUE((*writer)->Finish().ok());
  EXPECT_EQ((*writer)->Append("d").code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ((*writer)->Finish().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(*ReadFileToString(path), "abc");

  absl::StatusOr<std::unique_ptr<SequentialFileWriter>> again = SequentialFileWriter::Create(path, false);
  ASSERT_FALSE(again.ok());
  EXPECT_THAT(again.status().message(), HasSubstr("create " + path + ": File exists"));
  EXPECT_EQ(*ReadFileToString(path), "abc") << "the refused create left the file as it was";
}

}  // namespace
}  // namespace dfv
