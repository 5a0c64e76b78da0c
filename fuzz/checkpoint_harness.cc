#include "fuzz/checkpoint_harness.h"

#include <sstream>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "common/jobspec/parse.h"
#include "fuzz/fuzz_util.h"
#include "worker/models/model.h"
#include "worker/models/registry.h"
#include "worker/train/checkpoint.h"

namespace dfv::fuzz {
namespace {

// Sprites at 16 x 16, one channel, narrow networks: a checkpoint of about
// 75 KB, small enough for a seed and quick to load.
constexpr char kJob[] = R"(name: checkpoint-fuzz
model: dcgan
model_params: {noise_dim: 4, feature_maps: 4}
dataset: {kind: sprites, image_size: 16, channels: 1, sprites_train: 64, sprites_test: 64}
train: {epochs: 1, batch_size: 8, seed: 1, threads: 1}
)";
constexpr int64_t kTrainSize = 64;   // dataset.sprites_train
constexpr int64_t kNumClasses = 30;  // sprites: 6 shapes x 5 colours

const jobspec::JobSpec& Spec() {
  static const jobspec::JobSpec* const spec = [] {
    absl::StatusOr<jobspec::JobSpec> parsed = jobspec::ParseJobSpec(kJob, jobspec::ParseOptions());
    DFV_FUZZ_CHECK(parsed.ok(), "the fuzz job does not parse: " + parsed.status().ToString());
    return new jobspec::JobSpec(*std::move(parsed));
  }();
  return *spec;
}

// Every parameter and buffer: its name and a copy of its value.
struct Snapshot {
  std::vector<std::string> names;
  std::vector<torch::Tensor> values;
};

Snapshot Take(models::Model& model) {
  Snapshot snapshot;
  for (auto& [module_name, module] : model.Modules()) {
    for (const auto& item : module->named_parameters()) {
      snapshot.names.push_back(absl::StrCat(module_name, ".", item.key()));
      snapshot.values.push_back(item.value().detach().clone());
    }
    for (const auto& item : module->named_buffers()) {
      snapshot.names.push_back(absl::StrCat(module_name, ".", item.key(), " (buffer)"));
      snapshot.values.push_back(item.value().detach().clone());
    }
  }
  return snapshot;
}

// Empty when `after` has the names, shapes and types of `before` (and, with
// `same_values`, the same values); otherwise what differs.
std::string Compare(const Snapshot& before, const Snapshot& after, bool same_values) {
  if (before.names != after.names) return "the model's parameter names changed";
  for (size_t i = 0; i < before.names.size(); ++i) {
    const torch::Tensor& a = before.values[i];
    const torch::Tensor& b = after.values[i];
    if (a.sizes() != b.sizes() || a.scalar_type() != b.scalar_type()) {
      std::ostringstream why;
      why << before.names[i] << " was " << a.sizes() << " " << a.scalar_type() << ", is now " << b.sizes()
          << " " << b.scalar_type();
      return why.str();
    }
    if (same_values && !torch::equal(a, b)) return before.names[i] + " changed";
  }
  return "";
}

}  // namespace

void InitCheckpointHarness() { torch::set_num_threads(1); }

std::unique_ptr<models::Model> BuildCheckpointFuzzModel() {
  torch::manual_seed(1);
  models::ModelContext context;
  context.spec = &Spec();
  context.channels = Spec().dataset.channels;
  context.image_size = Spec().dataset.image_size;
  context.num_classes = kNumClasses;
  context.train_size = kTrainSize;
  absl::StatusOr<std::unique_ptr<models::Model>> model = models::CreateModel(context);
  DFV_FUZZ_CHECK(model.ok(), "cannot build the fuzz model: " + model.status().ToString());
  return *std::move(model);
}

const std::string& CheckpointFuzzJobYaml() {
  static const std::string* const yaml = new std::string(jobspec::JobSpecToYaml(Spec()));
  return *yaml;
}

bool CheckCheckpointLoad(std::string_view file) {
  using train::kCheckpointHeaderBytes;
  const bool header_verifies = file.size() >= kCheckpointHeaderBytes &&
                               train::FrameCheckpoint(file.substr(kCheckpointHeaderBytes)) == file;
  std::unique_ptr<models::Model> model = BuildCheckpointFuzzModel();
  const Snapshot before = Take(*model);
  const std::string path = WriteScratchFile("input.ckpt", file);
  const absl::StatusOr<train::LoadedCheckpoint> loaded = train::LoadCheckpoint(path, *model);
  const Snapshot after = Take(*model);
  if (!loaded.ok()) {
    const absl::StatusCode code = loaded.status().code();
    DFV_FUZZ_CHECK(code == absl::StatusCode::kDataLoss || code == absl::StatusCode::kInvalidArgument,
                   loaded.status().ToString());
    if (!header_verifies) {
      const std::string changed = Compare(before, after, /*same_values=*/true);
      DFV_FUZZ_CHECK(changed.empty(), "a checkpoint that failed its checksum changed the model: " + changed);
    }
    return false;
  }
  DFV_FUZZ_CHECK(header_verifies, "accepted a checkpoint whose header or checksum does not verify");
  const std::string changed = Compare(before, after, /*same_values=*/false);
  DFV_FUZZ_CHECK(changed.empty(), "accepted a checkpoint that does not match the model: " + changed);
  return true;
}

bool CheckCheckpointPayloadLoad(std::string_view payload) {
  return CheckCheckpointLoad(train::FrameCheckpoint(payload));
}

}  // namespace dfv::fuzz
