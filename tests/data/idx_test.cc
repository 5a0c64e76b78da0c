#include "worker/data/idx.h"

#include <gtest/gtest.h>
#include <zlib.h>

#include <string>
#include <vector>

#include "common/file_util.h"
#include "tests/data/test_util.h"

namespace dfv::data {
namespace {

using testing::Contains;
using testing::FreshDir;
using testing::WriteRaw;

std::string Bytes(std::initializer_list<int> values) {
  std::string s;
  for (int v : values) s.push_back(static_cast<char>(v));
  return s;
}

// The IDX header for unsigned bytes with the given dims.
std::string Header(const std::vector<uint32_t>& dims) {
  std::string s = Bytes({0, 0, 8, static_cast<int>(dims.size())});
  for (uint32_t d : dims) {
    for (int shift = 24; shift >= 0; shift -= 8) s.push_back(static_cast<char>((d >> shift) & 0xFF));
  }
  return s;
}

void WriteGzip(const std::string& path, const std::string& bytes) {
  gzFile f = gzopen(path.c_str(), "wb");
  ASSERT_NE(f, nullptr);
  ASSERT_EQ(gzwrite(f, bytes.data(), static_cast<unsigned>(bytes.size())), static_cast<int>(bytes.size()));
  ASSERT_EQ(gzclose(f), Z_OK);
}

TEST(IdxTest, ReadsHandWrittenPlainLabelsFile) {
  std::string path = FreshDir("d") + "/labels-idx1-ubyte";
  WriteRaw(path, Header({3}) + Bytes({7, 8, 9}));
  auto got = ReadIdx(path);
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_EQ(got->dims, std::vector<int64_t>{3});
  EXPECT_EQ(got->data, (std::vector<uint8_t>{7, 8, 9}));
}

TEST(IdxTest, WriteThenReadRoundTripsPlainAndGzipped) {
  std::string dir = FreshDir("d");
  IdxArray array;
  array.dims = {3, 2, 4};
  for (int i = 0; i < 24; ++i) array.data.push_back(static_cast<uint8_t>(i * 11));
  for (bool gzip : {false, true}) {
    std::string path = dir + (gzip ? "/images.gz" : "/images");
    ASSERT_TRUE(WriteIdx(path, array, gzip).ok());
    auto raw = ReadFileToString(path);
    ASSERT_TRUE(raw.ok());
    if (gzip) {
      EXPECT_EQ(static_cast<uint8_t>((*raw)[0]), 0x1f);  // gzip magic
      EXPECT_EQ(static_cast<uint8_t>((*raw)[1]), 0x8b);
    } else {
      EXPECT_EQ(raw->substr(0, 4), Bytes({0, 0, 8, 3}));
      EXPECT_EQ(raw->size(), 4u + 12u + 24u);
    }
    auto got = ReadIdx(path);
    ASSERT_TRUE(got.ok()) << got.status();
    EXPECT_EQ(got->dims, array.dims);
    EXPECT_EQ(got->data, array.data);
  }
}

TEST(IdxTest, ReadsFileGzippedByZlibTool) {
  std::string path = FreshDir("d") + "/x.gz";
  WriteGzip(path, Header({2, 2}) + Bytes({1, 2, 3, 4}));
  auto got = ReadIdx(path);
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_EQ(got->dims, (std::vector<int64_t>{2, 2}));
  EXPECT_EQ(got->data, (std::vector<uint8_t>{1, 2, 3, 4}));
}

TEST(IdxTest, TruncatedDataIsDataLoss) {
  std::string path = FreshDir("d") + "/images";
  WriteRaw(path, Header({2, 2, 2}) + Bytes({1, 2, 3, 4, 5, 6, 7}));
  auto got = ReadIdx(path);
  ASSERT_EQ(got.status().code(), absl::StatusCode::kDataLoss) << got.status();
  EXPECT_TRUE(Contains(std::string(got.status().message()), path));
  EXPECT_TRUE(Contains(std::string(got.status().message()), "truncated"));
}

TEST(IdxTest, TruncatedHeaderIsDataLoss) {
  std::string dir = FreshDir("d");
  WriteRaw(dir + "/a", Bytes({0, 0}));
  EXPECT_EQ(ReadIdx(dir + "/a").status().code(), absl::StatusCode::kDataLoss);
  WriteRaw(dir + "/b", Bytes({0, 0, 8, 3, 0, 0, 0, 1, 0, 0}));
  EXPECT_EQ(ReadIdx(dir + "/b").status().code(), absl::StatusCode::kDataLoss);
  WriteRaw(dir + "/empty", "");
  EXPECT_EQ(ReadIdx(dir + "/empty").status().code(), absl::StatusCode::kDataLoss);
}

TEST(IdxTest, TruncatedGzipStreamIsDataLoss) {
  std::string dir = FreshDir("d");
  IdxArray array{{1000}, std::vector<uint8_t>(1000)};
  for (int i = 0; i < 1000; ++i) array.data[static_cast<size_t>(i)] = static_cast<uint8_t>((i * 7919) % 251);
  ASSERT_TRUE(WriteIdx(dir + "/full.gz", array, true).ok());
  auto raw = ReadFileToString(dir + "/full.gz");
  ASSERT_TRUE(raw.ok());
  std::string cut = dir + "/cut.gz";
  WriteRaw(cut, raw->substr(0, raw->size() / 2));
  auto got = ReadIdx(cut);
  ASSERT_EQ(got.status().code(), absl::StatusCode::kDataLoss) << got.status();
  EXPECT_TRUE(Contains(std::string(got.status().message()), cut));
}

TEST(IdxTest, WrongMagicIsInvalidArgument) {
  std::string dir = FreshDir("d");
  WriteRaw(dir + "/png", Bytes({0x89, 'P', 'N', 'G', 0, 0, 0, 0}));
  auto got = ReadIdx(dir + "/png");
  ASSERT_EQ(got.status().code(), absl::StatusCode::kInvalidArgument) << got.status();
  EXPECT_TRUE(Contains(std::string(got.status().message()), dir + "/png"));
  EXPECT_TRUE(Contains(std::string(got.status().message()), "magic"));

  // Element type 0x0D (float) is valid IDX but not supported.
  WriteRaw(dir + "/float", Bytes({0, 0, 0x0D, 1, 0, 0, 0, 1, 0, 0, 0, 0}));
  got = ReadIdx(dir + "/float");
  ASSERT_EQ(got.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(Contains(std::string(got.status().message()), "not supported"));

  // Zero and too many dimensions.
  WriteRaw(dir + "/zero", Bytes({0, 0, 8, 0}));
  EXPECT_EQ(ReadIdx(dir + "/zero").status().code(), absl::StatusCode::kInvalidArgument);
  WriteRaw(dir + "/many", Bytes({0, 0, 8, 9}) + std::string(36, '\1'));
  EXPECT_EQ(ReadIdx(dir + "/many").status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(IdxTest, HeaderClaimingMoreItemsThanPresentIsDataLoss) {
  std::string dir = FreshDir("d");
  WriteRaw(dir + "/labels", Header({5}) + Bytes({1, 2, 3}));
  EXPECT_EQ(ReadIdx(dir + "/labels").status().code(), absl::StatusCode::kDataLoss);
  WriteGzip(dir + "/labels.gz", Header({5}) + Bytes({1, 2, 3}));
  EXPECT_EQ(ReadIdx(dir + "/labels.gz").status().code(), absl::StatusCode::kDataLoss);
}

TEST(IdxTest, HeaderClaimingFewerItemsThanPresentIsDataLoss) {
  std::string dir = FreshDir("d");
  WriteRaw(dir + "/labels", Header({2}) + Bytes({1, 2, 3}));
  auto got = ReadIdx(dir + "/labels");
  ASSERT_EQ(got.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_TRUE(Contains(std::string(got.status().message()), dir + "/labels"));
  EXPECT_TRUE(Contains(std::string(got.status().message()), "1 more"));
  // Trailing garbage after a complete gzipped array, larger than one read.
  WriteGzip(dir + "/labels.gz", Header({2}) + Bytes({1, 2}) + std::string(10000, 'x'));
  got = ReadIdx(dir + "/labels.gz");
  ASSERT_EQ(got.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_TRUE(Contains(std::string(got.status().message()), "10000 more"));
}

TEST(IdxTest, AbsurdHeaderIsRejectedWithoutAllocating) {
  std::string dir = FreshDir("d");
  // 2^32-1 cubed: far beyond the limit, refused before reading data.
  WriteRaw(dir + "/huge", Header({0xFFFFFFFFu, 0xFFFFFFFFu, 0xFFFFFFFFu}) + Bytes({1, 2, 3}));
  auto got = ReadIdx(dir + "/huge");
  ASSERT_EQ(got.status().code(), absl::StatusCode::kInvalidArgument) << got.status();
  EXPECT_TRUE(Contains(std::string(got.status().message()), "exceed"));
  // Within the limit (3.6 GB claimed) but only 3 bytes present: a quick
  // DATA_LOSS, memory bounded by what is read.
  WriteRaw(dir + "/big", Header({60000u, 60000u}) + Bytes({1, 2, 3}));
  got = ReadIdx(dir + "/big");
  ASSERT_EQ(got.status().code(), absl::StatusCode::kDataLoss) << got.status();
  EXPECT_TRUE(Contains(std::string(got.status().message()), "holds only 3"));
}

TEST(IdxTest, MissingFileIsNotFound) {
  std::string path = FreshDir("d") + "/no-such-file.gz";
  auto got = ReadIdx(path);
  ASSERT_EQ(got.status().code(), absl::StatusCode::kNotFound);
  EXPECT_TRUE(Contains(std::string(got.status().message()), path));
}

TEST(IdxTest, AFolderIsRefusedNamingIt) {
  std::string path = FreshDir("folder");
  auto got = ReadIdx(path);
  ASSERT_EQ(got.status().code(), absl::StatusCode::kInvalidArgument) << got.status();
  EXPECT_TRUE(Contains(std::string(got.status().message()), "IDX file " + path + " is not a regular file"))
      << got.status();
}

TEST(IdxTest, WriteRejectsInconsistentArray) {
  std::string dir = FreshDir("d");
  EXPECT_EQ(WriteIdx(dir + "/x", IdxArray{{2, 2}, {1, 2, 3}}, false).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(WriteIdx(dir + "/y", IdxArray{{}, {}}, false).code(), absl::StatusCode::kInvalidArgument);
}

TEST(IdxImageSetTest, LoadsImagesAndLabels) {
  std::string dir = FreshDir("d");
  WriteRaw(dir + "/images", Header({2, 2, 3}) + Bytes({0, 1, 2, 3, 4, 5, 10, 11, 12, 13, 14, 15}));
  WriteRaw(dir + "/labels", Header({2}) + Bytes({4, 1}));
  auto set = LoadIdxImageSet(dir + "/images", dir + "/labels");
  ASSERT_TRUE(set.ok()) << set.status();
  EXPECT_EQ(set->size, 2);
  EXPECT_EQ(set->channels, 1);
  EXPECT_EQ(set->height, 2);
  EXPECT_EQ(set->width, 3);
  EXPECT_EQ(set->labels, (std::vector<int64_t>{4, 1}));
  EXPECT_EQ(set->num_classes, 5);
  EXPECT_EQ(set->Image(1)[0], 10);
  EXPECT_TRUE(ValidateImageSet(*set).ok());
}

TEST(IdxImageSetTest, CountMismatchNamesBothFiles) {
  std::string dir = FreshDir("d");
  WriteRaw(dir + "/images", Header({2, 1, 1}) + Bytes({0, 1}));
  WriteRaw(dir + "/labels", Header({3}) + Bytes({0, 1, 2}));
  auto set = LoadIdxImageSet(dir + "/images", dir + "/labels");
  ASSERT_EQ(set.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(Contains(std::string(set.status().message()), dir + "/images"));
  EXPECT_TRUE(Contains(std::string(set.status().message()), dir + "/labels"));
}

TEST(IdxImageSetTest, SwappedFilesAreInvalidArgument) {
  std::string dir = FreshDir("d");
  WriteRaw(dir + "/images", Header({2, 1, 1}) + Bytes({0, 1}));
  WriteRaw(dir + "/labels", Header({2}) + Bytes({0, 1}));
  auto set = LoadIdxImageSet(dir + "/labels", dir + "/images");
  ASSERT_EQ(set.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(Contains(std::string(set.status().message()), "0x00000801"));
}

TEST(IdxImageSetTest, WriteIdxImageSetRoundTrips) {
  std::string dir = FreshDir("d");
  ImageSet set;
  set.size = 3;
  set.channels = 1;
  set.height = 2;
  set.width = 2;
  set.pixels = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 255};
  set.labels = {2, 0, 1};
  set.num_classes = 3;
  set.class_names = {"a", "b", "c"};
  ASSERT_TRUE(WriteIdxImageSet(set, dir + "/i.gz", dir + "/l.gz", true).ok());
  auto got = LoadIdxImageSet(dir + "/i.gz", dir + "/l.gz");
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_EQ(got->pixels, set.pixels);
  EXPECT_EQ(got->labels, set.labels);
  set.channels = 3;
  set.pixels.resize(36);
  EXPECT_EQ(WriteIdxImageSet(set, dir + "/i", dir + "/l", false).code(), absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace dfv::data
