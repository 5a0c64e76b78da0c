#include "worker/data/batch_loader.h"

#include <algorithm>
#include <exception>
#include <system_error>
#include <utility>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "worker/data/tensor.h"

namespace dfv::data {
namespace {

torch::Tensor IndicesToTensor(const std::vector<int64_t>& indices) {
  torch::Tensor t = torch::empty({static_cast<int64_t>(indices.size())}, torch::kInt64);
  std::copy(indices.begin(), indices.end(), t.data_ptr<int64_t>());
  return t;
}

}  // namespace

absl::StatusOr<std::unique_ptr<BatchLoader>> BatchLoader::Create(std::shared_ptr<const ImageSet> set,
                                                                 const LoaderOptions& options) {
  if (set == nullptr) return absl::InvalidArgumentError("BatchLoader: no image set");
  if (auto st = ValidateImageSet(*set); !st.ok()) {
    return absl::InvalidArgumentError(absl::StrCat("BatchLoader: ", st.message()));
  }
  if (options.prefetch < 1 || options.prefetch > 1024) {
    return absl::InvalidArgumentError(
        absl::StrCat("BatchLoader: prefetch must be in [1, 1024], got ", options.prefetch));
  }
  ShardOptions shard;
  shard.batch_size = options.batch_size;
  shard.seed = options.seed;
  shard.rank = options.rank;
  shard.world_size = options.world_size;
  DFV_ASSIGN_OR_RETURN(EpochSampler sampler, EpochSampler::Create(set->size, shard));
  DFV_ASSIGN_OR_RETURN(PairSampler pairs, PairSampler::Create(set->labels, set->num_classes));
  if (options.other_class && pairs.NumClassesPresent() < 2) {
    return absl::FailedPreconditionError("BatchLoader: other_class needs a data set with at least 2 classes");
  }
  std::unique_ptr<BatchLoader> loader(new BatchLoader(std::move(set), options, std::move(sampler), std::move(pairs)));
  try {
    loader->StartProducer(0);
  } catch (const std::system_error& e) {
    return absl::ResourceExhaustedError(absl::StrCat("BatchLoader: cannot start its thread: ", e.what()));
  }
  return loader;
}

BatchLoader::BatchLoader(std::shared_ptr<const ImageSet> set, const LoaderOptions& options, EpochSampler sampler,
                         PairSampler pairs)
    : set_(std::move(set)), options_(options), sampler_(std::move(sampler)), pairs_(std::move(pairs)) {}

BatchLoader::~BatchLoader() { StopProducer(); }

void BatchLoader::StartProducer(int64_t step) {
  next_step_ = step;
  {
    absl::MutexLock lock(&mu_);
    stop_ = false;
  }
  producer_ = std::thread([this, step] { Produce(step); });
}

void BatchLoader::StopProducer() {
  {
    absl::MutexLock lock(&mu_);
    stop_ = true;
    not_full_.SignalAll();
  }
  if (producer_.joinable()) producer_.join();
  absl::MutexLock lock(&mu_);
  queue_.clear();
  error_ = absl::OkStatus();
}

void BatchLoader::Produce(int64_t step) {
  while (true) {
    absl::StatusOr<Batch> batch;
    // No exception may leave this thread: anything thrown becomes the
    // Status that Next() returns.
    try {
      batch = Assemble(step);
    } catch (const c10::Error& e) {
      batch = absl::InternalError(
          absl::StrCat("BatchLoader: step ", step, ": LibTorch error: ", e.what_without_backtrace()));
    } catch (const std::exception& e) {
      batch = absl::InternalError(absl::StrCat("BatchLoader: step ", step, ": ", e.what()));
    } catch (...) {
      batch = absl::InternalError(absl::StrCat("BatchLoader: step ", step, ": unknown exception"));
    }
    absl::MutexLock lock(&mu_);
    while (!stop_ && static_cast<int>(queue_.size()) >= options_.prefetch) not_full_.Wait(&mu_);
    if (stop_) return;
    if (!batch.ok()) {
      error_ = batch.status();
      not_empty_.SignalAll();
      return;
    }
    queue_.push_back(*std::move(batch));
    not_empty_.Signal();
    ++step;
  }
}

absl::StatusOr<Batch> BatchLoader::Assemble(int64_t step) {
  const int64_t steps_per_epoch = sampler_.StepsPerEpoch();
  const int64_t epoch = step / steps_per_epoch;
  const int64_t step_in_epoch = step % steps_per_epoch;
  if (epoch != shard_epoch_) {
    shard_ = sampler_.Shard(epoch);
    if (options_.same_class_pair || options_.other_class) pairs_.SetShard(shard_);
    shard_epoch_ = epoch;
  }
  const int64_t b = options_.batch_size;
  const std::vector<int64_t> indices(shard_.begin() + step_in_epoch * b, shard_.begin() + (step_in_epoch + 1) * b);
  const DrawKey key{options_.seed, epoch, step_in_epoch, options_.rank};

  Batch batch;
  batch.epoch = epoch;
  batch.step_in_epoch = step_in_epoch;
  batch.global_step = step;
  DFV_ASSIGN_OR_RETURN(batch.images, ImagesToTensor(*set_, indices));
  DFV_ASSIGN_OR_RETURN(batch.labels, LabelsToTensor(*set_, indices));
  batch.indices = IndicesToTensor(indices);
  if (options_.same_class_pair) {
    DFV_ASSIGN_OR_RETURN(std::vector<int64_t> same, pairs_.SameClass(indices, key));
    DFV_ASSIGN_OR_RETURN(batch.same_images, ImagesToTensor(*set_, same));
    batch.same_indices = IndicesToTensor(same);
  }
  if (options_.other_class) {
    DFV_ASSIGN_OR_RETURN(std::vector<int64_t> other, pairs_.OtherClass(indices, key));
    DFV_ASSIGN_OR_RETURN(batch.other_images, ImagesToTensor(*set_, other));
    DFV_ASSIGN_OR_RETURN(batch.other_labels, LabelsToTensor(*set_, other));
    batch.other_indices = IndicesToTensor(other);
  }
  return batch;
}

absl::StatusOr<Batch> BatchLoader::Next() {
  absl::MutexLock lock(&mu_);
  // The producer always either delivers a batch or records an error, so this
  // wait ends (it is stopped only by Seek or the destructor, which the
  // consumer thread itself calls).
  while (queue_.empty() && error_.ok()) not_empty_.Wait(&mu_);
  if (queue_.empty()) return error_;
  Batch batch = std::move(queue_.front());
  queue_.pop_front();
  not_full_.Signal();
  ++next_step_;
  return batch;
}

void BatchLoader::Seek(int64_t global_step) {
  StopProducer();
  try {
    StartProducer(std::max<int64_t>(global_step, 0));
  } catch (const std::system_error& e) {
    absl::MutexLock lock(&mu_);
    error_ = absl::ResourceExhaustedError(absl::StrCat("BatchLoader: cannot restart its thread: ", e.what()));
  }
}

}  // namespace dfv::data
