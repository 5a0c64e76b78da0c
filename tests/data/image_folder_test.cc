// The image_folder data set: a tiny CelebA-style folder of PNG and JPEG files
// built in the test's temp dir, loaded directly and through LoadDataset and
// the job schema; the split rules; and the errors, each naming what is wrong.
#include "worker/data/image_folder.h"

#include <gtest/gtest.h>

#include <cstdio>
#include <jpeglib.h>

#include <filesystem>
#include <set>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/jobspec/parse.h"
#include "common/png.h"
#include "tests/data/test_util.h"
#include "worker/data/dataset.h"

namespace dfv::data {
namespace {

using testing::Contains;
using testing::FreshDir;
using testing::WriteRaw;

// A solid RGB image with `left` and `right` bands of `band` columns each, so
// a centred square crop of a wide image sees only `middle`.
Image8 Banded(int width, int height, int band, const uint8_t left[3], const uint8_t middle[3],
              const uint8_t right[3]) {
  Image8 image;
  image.width = width;
  image.height = height;
  image.channels = 3;
  for (int y = 0; y < height; ++y) {
    for (int x = 0; x < width; ++x) {
      const uint8_t* c = x < band ? left : (x >= width - band ? right : middle);
      image.pixels.insert(image.pixels.end(), c, c + 3);
    }
  }
  return image;
}

// Encodes with libjpeg (quality 95); grey when channels == 1.
std::string EncodeJpeg(const Image8& image) {
  jpeg_compress_struct cinfo;
  jpeg_error_mgr err;
  cinfo.err = jpeg_std_error(&err);
  jpeg_create_compress(&cinfo);
  unsigned char* buffer = nullptr;
  unsigned long size = 0;
  jpeg_mem_dest(&cinfo, &buffer, &size);
  cinfo.image_width = image.width;
  cinfo.image_height = image.height;
  cinfo.input_components = image.channels;
  cinfo.in_color_space = image.channels == 1 ? JCS_GRAYSCALE : JCS_RGB;
  jpeg_set_defaults(&cinfo);
  jpeg_set_quality(&cinfo, 95, TRUE);
  jpeg_start_compress(&cinfo, TRUE);
  while (cinfo.next_scanline < cinfo.image_height) {
    JSAMPROW row = const_cast<uint8_t*>(image.pixels.data()) + cinfo.next_scanline * image.width * image.channels;
    jpeg_write_scanlines(&cinfo, &row, 1);
  }
  jpeg_finish_compress(&cinfo);
  std::string out(reinterpret_cast<char*>(buffer), size);
  jpeg_destroy_compress(&cinfo);
  std::free(buffer);
  return out;
}

constexpr uint8_t kRed[3] = {255, 0, 0};
constexpr uint8_t kGreen[3] = {0, 200, 0};
constexpr uint8_t kBlue[3] = {0, 0, 255};

// Writes `n` images (even: wide banded PNG, odd: JPEG, every third JPEG
// grey) into `dir`/images_subdir and a list_attr_celeba.txt whose
// Eyeglasses column is 1 for every fourth image and -1 otherwise.
void WriteFolder(const std::string& dir, int n, const std::string& images_subdir = "") {
  const std::string image_dir = images_subdir.empty() ? dir : dir + "/" + images_subdir;
  std::filesystem::create_directories(image_dir);
  std::string attrs = absl::StrCat(n, "\nSmiling Eyeglasses Young\n");
  for (int i = 0; i < n; ++i) {
    char name[32];
    std::snprintf(name, sizeof(name), "%06d.%s", i + 1, i % 2 == 0 ? "png" : "jpg");
    if (i % 2 == 0) {
      ASSERT_TRUE(WritePngFile(image_dir + "/" + name, Banded(60, 40, 10, kRed, kGreen, kBlue)).ok());
    } else {
      Image8 image = Banded(48, 64, 0, kGreen, kGreen, kGreen);
      if (i % 3 == 0) {
        image.channels = 1;
        image.pixels.assign(48 * 64, 128);
      }
      WriteRaw(image_dir + "/" + name, EncodeJpeg(image));
    }
    absl::StrAppend(&attrs, name, "  ", i % 3 == 0 ? 1 : -1, " ", i % 4 == 0 ? 1 : -1, "  1\n");
  }
  WriteRaw(dir + "/list_attr_celeba.txt", attrs);
}

ImageFolderOptions Options(const std::string& dir, int size = 16) {
  ImageFolderOptions options;
  options.folder = dir;
  options.attribute = "Eyeglasses";
  options.image_size = size;
  options.threads = 2;
  return options;
}

TEST(ImageFolderTest, LoadsPngAndJpegCroppedResizedWithAttributeClasses) {
  const std::string dir = FreshDir("folder");
  WriteFolder(dir, 20);
  auto splits = LoadImageFolder(Options(dir));
  ASSERT_TRUE(splits.ok()) << splits.status();
  const ImageSet& train = splits->train;
  const ImageSet& test = splits->test;
  EXPECT_EQ(train.size, 18);  // no partition file: 90/10
  EXPECT_EQ(test.size, 2);
  for (const ImageSet* set : {&train, &test}) {
    EXPECT_TRUE(ValidateImageSet(*set).ok());
    EXPECT_EQ(set->channels, 3);
    EXPECT_EQ(set->height, 16);
    EXPECT_EQ(set->width, 16);
    EXPECT_EQ(set->num_classes, 2);
    EXPECT_EQ(set->class_names, (std::vector<std::string>{"Eyeglasses=-1", "Eyeglasses=1"}));
  }
  // Labels follow the file's Eyeglasses column (-1 -> 0, 1 -> 1), and every
  // image is its centred square: green for the banded PNGs and colour JPEGs,
  // grey 128 for the grey JPEGs.
  int64_t ones = 0;
  for (int64_t i = 0; i < train.size; ++i) {
    ones += train.labels[i];
    const uint8_t* img = train.Image(i);
    const int centre = 8 * 16 + 8;
    const uint8_t r = img[centre], g = img[256 + centre], b = img[512 + centre];
    const bool grey = r == g && g == b;
    if (grey) {
      EXPECT_NEAR(r, 128, 3);
    } else {
      EXPECT_LE(r, 8);
      EXPECT_NEAR(g, 200, 8);
      EXPECT_LE(b, 8);
      // No trace of the red and blue bands at the edges.
      EXPECT_LE(img[8 * 16], 8) << "image " << i << " left edge is red";
      EXPECT_LE(img[512 + 8 * 16 + 15], 8) << "image " << i << " right edge is blue";
    }
  }
  int64_t ones_total = ones;
  for (int64_t i = 0; i < test.size; ++i) ones_total += test.labels[i];
  EXPECT_EQ(ones_total, 5);  // rows 0, 4, 8, 12, 16
}

TEST(ImageFolderTest, SplitIsDeterministicFromTheSeedAndLimitsApply) {
  const std::string dir = FreshDir("split");
  WriteFolder(dir, 30);
  auto labels_of = [](const ImageSet& set) { return set.labels; };
  auto pixels_of = [](const ImageSet& set) { return set.pixels; };
  ImageFolderOptions options = Options(dir);
  options.split_seed = 7;
  auto a = LoadImageFolder(options);
  auto b = LoadImageFolder(options);
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_EQ(a->test.size, 3);
  EXPECT_EQ(pixels_of(a->test), pixels_of(b->test));
  EXPECT_EQ(labels_of(a->train), labels_of(b->train));

  // Some seed moves a different tenth into the test set.
  bool differs = false;
  for (uint64_t seed = 8; seed < 20 && !differs; ++seed) {
    options.split_seed = seed;
    auto c = LoadImageFolder(options);
    ASSERT_TRUE(c.ok());
    differs = pixels_of(c->test) != pixels_of(a->test) || labels_of(c->test) != labels_of(a->test);
  }
  EXPECT_TRUE(differs);

  options.train_limit = 5;
  options.test_limit = 1;
  auto limited = LoadImageFolder(options);
  ASSERT_TRUE(limited.ok());
  EXPECT_EQ(limited->train.size, 5);
  EXPECT_EQ(limited->test.size, 1);
}

TEST(ImageFolderTest, CelebaLayoutWithPartitionFile) {
  const std::string dir = FreshDir("celeba");
  WriteFolder(dir, 12, "img_align_celeba");
  std::string partition;
  for (int i = 0; i < 12; ++i) {
    char name[32];
    std::snprintf(name, sizeof(name), "%06d.%s", i + 1, i % 2 == 0 ? "png" : "jpg");
    absl::StrAppend(&partition, name, " ", i < 8 ? 0 : (i < 10 ? 1 : 2), "\r\n");
  }
  WriteRaw(dir + "/list_eval_partition.txt", partition);
  auto splits = LoadImageFolder(Options(dir, 28));
  ASSERT_TRUE(splits.ok()) << splits.status();
  EXPECT_EQ(splits->train.size, 8);  // partition 0
  EXPECT_EQ(splits->test.size, 4);   // partitions 1 and 2
  EXPECT_EQ(splits->train.labels, (std::vector<int64_t>{1, 0, 0, 0, 1, 0, 0, 0}));
  EXPECT_EQ(splits->test.labels, (std::vector<int64_t>{1, 0, 0, 0}));

  // A listed image without a partition entry is an error naming both.
  WriteRaw(dir + "/list_eval_partition.txt", "000001.png 0\n");
  auto missing = LoadImageFolder(Options(dir));
  EXPECT_EQ(missing.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(Contains(std::string(missing.status().message()), "000002.jpg")) << missing.status();
}

TEST(ImageFolderTest, ErrorsNameTheFieldOrFile) {
  const std::string dir = FreshDir("errors");
  WriteFolder(dir, 10);

  ImageFolderOptions unknown = Options(dir);
  unknown.attribute = "Eyeglases";
  auto status = LoadImageFolder(unknown).status();
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(Contains(std::string(status.message()), "dataset.attribute")) << status;
  EXPECT_TRUE(Contains(std::string(status.message()), "Smiling, Eyeglasses, Young")) << status;

  ImageFolderOptions constant = Options(dir);
  constant.attribute = "Young";
  status = LoadImageFolder(constant).status();
  EXPECT_TRUE(Contains(std::string(status.message()), "single value")) << status;

  ImageFolderOptions no_file = Options(dir);
  no_file.attr_file = "labels.txt";
  status = LoadImageFolder(no_file).status();
  EXPECT_EQ(status.code(), absl::StatusCode::kNotFound);
  EXPECT_TRUE(Contains(std::string(status.message()), "dataset.attr_file")) << status;

  EXPECT_EQ(LoadImageFolder(Options(dir + "/nowhere")).status().code(), absl::StatusCode::kNotFound);

  // A corrupt image names its file.
  WriteRaw(dir + "/000004.jpg", std::string("\xFF\xD8\xFF\xE0garbage", 11));
  status = LoadImageFolder(Options(dir)).status();
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(Contains(std::string(status.message()), "000004.jpg")) << status;
  WriteRaw(dir + "/000004.jpg", "plain text");
  status = LoadImageFolder(Options(dir)).status();
  EXPECT_TRUE(Contains(std::string(status.message()), "not a JPEG or PNG")) << status;

  // File names must stay inside the folder.
  const std::string escape = FreshDir("escape");
  WriteRaw(escape + "/list_attr_celeba.txt", "2\nEyeglasses\n../secret.png 1\nb.png -1\n");
  status = LoadImageFolder(Options(escape)).status();
  EXPECT_TRUE(Contains(std::string(status.message()), "not a safe relative path")) << status;
}

TEST(ImageFolderTest, AttributeFileParseErrorsNameTheLine) {
  EXPECT_TRUE(ParseAttributeFile("2\nA B\nx.jpg 1 -1\ny.jpg -1 1\n", "f").ok());
  auto short_row = ParseAttributeFile("2\nA B\nx.jpg 1 -1\ny.jpg -1\n", "f");
  EXPECT_TRUE(Contains(std::string(short_row.status().message()), "f:4: y.jpg has 1 values, expected 2"))
      << short_row.status();
  auto bad_value = ParseAttributeFile("1\nA B\nx.jpg 1 yes\n", "f");
  EXPECT_TRUE(Contains(std::string(bad_value.status().message()), "f:3: value \"yes\" of B")) << bad_value.status();
  auto bad_count = ParseAttributeFile("3\nA\nx.jpg 1\n", "f");
  EXPECT_TRUE(Contains(std::string(bad_count.status().message()), "says 3 images but the table has 1"))
      << bad_count.status();
  EXPECT_FALSE(ParseAttributeFile("many\nA\n", "f").ok());
  EXPECT_FALSE(ParseAttributeFile("", "f").ok());
}

jobspec::JobSpec Parse(const std::string& yaml, std::string* error) {
  error->clear();
  auto spec = jobspec::ParseJobSpec(yaml, jobspec::ParseOptions{});
  if (!spec.ok()) {
    *error = std::string(spec.status().message());
    return {};
  }
  return *spec;
}

TEST(ImageFolderTest, JobFileSelectsItAndLoadDatasetConvertsChannels) {
  const std::string dir = FreshDir("job");
  WriteFolder(dir, 20);
  std::string error;
  jobspec::JobSpec spec = Parse(absl::StrCat(R"(
name: faces
model: cycle_vae
dataset: {kind: image_folder, path: )", dir, R"(, attribute: Eyeglasses, image_size: 32, channels: 1}
)"),
                                &error);
  ASSERT_TRUE(error.empty()) << error;
  EXPECT_EQ(spec.dataset.params.GetString("attr_file"), "list_attr_celeba.txt");
  auto splits = LoadDataset(spec.dataset);
  ASSERT_TRUE(splits.ok()) << splits.status();
  EXPECT_EQ(splits->train->channels, 1);
  EXPECT_EQ(splits->train->height, 32);
  EXPECT_EQ(splits->train->size + splits->test->size, 20);

  // The schema names the missing or misplaced fields.
  Parse("name: a\nmodel: vae\ndataset: {kind: image_folder, attribute: Smiling}\n", &error);
  EXPECT_TRUE(Contains(error, "dataset.path")) << error;
  Parse("name: a\nmodel: vae\ndataset: {kind: image_folder, path: /x}\n", &error);
  EXPECT_TRUE(Contains(error, "dataset.attribute")) << error;
  Parse("name: a\nmodel: vae\ndataset: {kind: sprites, attribute: Smiling}\n", &error);
  EXPECT_TRUE(Contains(error, "dataset.attribute")) << error;
}

}  // namespace
}  // namespace dfv::data
