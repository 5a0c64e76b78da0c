#include "worker/train/checkpoint.h"

#include <ATen/CPUGeneratorImpl.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <mutex>
#include <sstream>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/match.h"
#include "common/checksum.h"
#include "common/file_util.h"
#include "common/jobspec/parse.h"
#include "common/status_macros.h"

namespace dfv::train {
namespace {

constexpr char kMagic[8] = {'D', 'F', 'V', 'C', 'K', 'P', 'T', '1'};
constexpr size_t kHeaderSize = kCheckpointHeaderBytes;
static_assert(kHeaderSize == sizeof(kMagic) + 4 + 8);

void PutLe(std::string& out, uint64_t v, int bytes) {
  for (int i = 0; i < bytes; ++i) out.push_back(static_cast<char>((v >> (8 * i)) & 0xff));
}
uint64_t GetLe(const char* p, int bytes) {
  uint64_t v = 0;
  for (int i = 0; i < bytes; ++i) v |= static_cast<uint64_t>(static_cast<uint8_t>(p[i])) << (8 * i);
  return v;
}

// Reads the file and returns its verified payload.
absl::StatusOr<std::string> ReadVerifiedPayload(const std::string& path) {
  DFV_ASSIGN_OR_RETURN(std::string bytes, ReadFileToString(path));
  if (bytes.size() < kHeaderSize || std::memcmp(bytes.data(), kMagic, sizeof(kMagic)) != 0) {
    if (bytes.size() < kHeaderSize && bytes.size() > 0 &&
        std::memcmp(bytes.data(), kMagic, std::min(bytes.size(), sizeof(kMagic))) == 0) {
      return absl::DataLossError(absl::StrCat(path, ": checkpoint truncated inside its header"));
    }
    return absl::InvalidArgumentError(absl::StrCat(path, ": not a dfv checkpoint (bad magic)"));
  }
  const uint32_t crc = static_cast<uint32_t>(GetLe(bytes.data() + 8, 4));
  const uint64_t length = GetLe(bytes.data() + 12, 8);
  if (bytes.size() - kHeaderSize != length) {
    return absl::DataLossError(absl::StrCat(path, ": checkpoint holds ", bytes.size() - kHeaderSize,
                                            " payload bytes, header says ", length));
  }
  std::string payload = bytes.substr(kHeaderSize);
  if (Crc32(payload) != crc) {
    return absl::DataLossError(absl::StrCat(path, ": checkpoint checksum mismatch (file corrupt)"));
  }
  return payload;
}

}  // namespace

std::string FrameCheckpoint(std::string_view payload) {
  std::string file(kMagic, sizeof(kMagic));
  PutLe(file, Crc32(payload), 4);
  PutLe(file, payload.size(), 8);
  file += payload;
  return file;
}

absl::Status CheckCheckpointFitsJob(const std::string& checkpoint_job_yaml, const jobspec::JobSpec& spec,
                                    const std::string& path) {
  if (checkpoint_job_yaml.empty()) return absl::OkStatus();
  jobspec::ParseOptions options;
  options.source_name = absl::StrCat(path, " (its job)");
  options.drop_other_kind_fields = true;
  absl::StatusOr<jobspec::JobSpec> saved = jobspec::ParseJobSpec(checkpoint_job_yaml, options);
  if (!saved.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat("checkpoint ", path, " was written by a job this version cannot read: ", saved.status().message()));
  }
  std::vector<std::string> differs;
  if (saved->model != spec.model) differs.push_back(absl::StrCat("model ", saved->model, ", not ", spec.model));
  if (saved->dataset.image_size != spec.dataset.image_size) {
    differs.push_back(absl::StrCat("image size ", saved->dataset.image_size, ", not ", spec.dataset.image_size));
  }
  if (saved->dataset.channels != 0 && spec.dataset.channels != 0 && saved->dataset.channels != spec.dataset.channels) {
    differs.push_back(absl::StrCat(saved->dataset.channels, " channel(s), not ", spec.dataset.channels));
  }
  if (differs.empty()) return absl::OkStatus();
  return absl::InvalidArgumentError(absl::StrCat("checkpoint ", path, " does not fit this job: it has ",
                                                 absl::StrJoin(differs, "; ")));
}

std::string CheckpointFileName(int64_t step) { return absl::StrFormat("step-%08d.ckpt", step); }

absl::Status SaveCheckpoint(const std::string& path, models::Model& model, const TrainState& state,
                            const std::string& job_yaml) {
  std::string payload;
  try {
    torch::serialize::OutputArchive archive;
    archive.write("format", c10::IValue(int64_t{1}));
    archive.write("step", c10::IValue(state.step));
    archive.write("epoch", c10::IValue(state.epoch));
    archive.write("job_yaml", c10::IValue(job_yaml));
    {
      at::Generator generator = at::detail::getDefaultCPUGenerator();
      std::lock_guard<std::mutex> lock(generator.mutex());
      archive.write("rng_cpu", generator.get_state());
    }
    for (auto& [name, module] : model.Modules()) {
      torch::serialize::OutputArchive sub;
      module->save(sub);
      archive.write("module." + name, sub);
    }
    for (auto& [name, optimizer] : model.Optimizers()) {
      torch::serialize::OutputArchive sub;
      optimizer->save(sub);
      archive.write("optimizer." + name, sub);
    }
    std::ostringstream out;
    archive.save_to(out);
    payload = std::move(out).str();
  } catch (const std::exception& e) {
    return absl::InternalError(absl::StrCat("serialising checkpoint for ", path, ": ", e.what()));
  }
  return WriteFileAtomically(path, FrameCheckpoint(payload));
}

absl::StatusOr<LoadedCheckpoint> LoadCheckpoint(const std::string& path, models::Model& model) {
  DFV_ASSIGN_OR_RETURN(std::string payload, ReadVerifiedPayload(path));
  LoadedCheckpoint loaded;
  try {
    torch::serialize::InputArchive archive;
    std::istringstream in(payload);
    archive.load_from(in);
    c10::IValue v;
    archive.read("step", v);
    loaded.state.step = v.toInt();
    archive.read("epoch", v);
    loaded.state.epoch = v.toInt();
    archive.read("job_yaml", v);
    loaded.job_yaml = v.toStringRef();
    for (auto& [name, module] : model.Modules()) {
      torch::serialize::InputArchive sub;
      if (!archive.try_read("module." + name, sub)) {
        return absl::InvalidArgumentError(
            absl::StrCat(path, ": checkpoint has no module '", name, "' (was it made by another model?)"));
      }
      module->load(sub);
    }
    for (auto& [name, optimizer] : model.Optimizers()) {
      torch::serialize::InputArchive sub;
      if (!archive.try_read("optimizer." + name, sub)) {
        return absl::InvalidArgumentError(absl::StrCat(path, ": checkpoint has no optimiser '", name, "'"));
      }
      optimizer->load(sub);
    }
    torch::Tensor rng;
    archive.read("rng_cpu", rng);
    at::Generator generator = at::detail::getDefaultCPUGenerator();  // shares the global state
    std::lock_guard<std::mutex> lock(generator.mutex());
    generator.set_state(rng);
  } catch (const std::exception& e) {
    return absl::InvalidArgumentError(
        absl::StrCat(path, ": checkpoint does not match this job's model: ", e.what()));
  }
  return loaded;
}

std::vector<std::string> ListCheckpoints(const std::string& dir) {
  std::vector<std::pair<int64_t, std::string>> found;
  std::error_code ec;
  for (const auto& entry : std::filesystem::directory_iterator(dir, ec)) {
    const std::string name = entry.path().filename().string();
    if (!absl::StartsWith(name, "step-") || !absl::EndsWith(name, ".ckpt")) continue;
    int64_t step = 0;
    if (!absl::SimpleAtoi(name.substr(5, name.size() - 10), &step)) continue;
    found.emplace_back(step, entry.path().string());
  }
  std::sort(found.begin(), found.end());
  std::vector<std::string> paths;
  for (auto& [step, path] : found) paths.push_back(std::move(path));
  return paths;
}

absl::Status PruneCheckpoints(const std::string& dir, int64_t keep_last) {
  std::vector<std::string> all = ListCheckpoints(dir);
  for (size_t i = 0; i + keep_last < all.size(); ++i) {
    std::error_code ec;
    std::filesystem::remove(all[i], ec);
    if (ec) return absl::InternalError(absl::StrCat("removing old checkpoint ", all[i], ": ", ec.message()));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::string> NewestValidCheckpoint(const std::string& dir) {
  std::vector<std::string> all = ListCheckpoints(dir);
  for (auto it = all.rbegin(); it != all.rend(); ++it) {
    auto payload = ReadVerifiedPayload(*it);
    if (payload.ok()) return *it;
    spdlog::warn("skipping checkpoint {}: {}", *it, payload.status().ToString());
  }
  return absl::NotFoundError(absl::StrCat("no valid checkpoint in ", dir));
}

}  // namespace dfv::train
