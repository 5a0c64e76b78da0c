#include "worker/data/sampler.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "worker/data/random.h"

namespace dfv::data {
namespace {

// Stream ids keep the shuffle and the two partner draws independent even
// though they share the user's seed.
constexpr uint64_t kEpochStream = 0x45504F4348303031ULL;  // "EPOCH001"
constexpr uint64_t kSameStream = 0x53414D4543303031ULL;   // "SAMEC001"
constexpr uint64_t kOtherStream = 0x4F54484552303031ULL;  // "OTHER001"

SplitMix64 DrawStream(uint64_t stream, const DrawKey& key) {
  return SplitMix64(MixSeed({stream, key.seed, static_cast<uint64_t>(key.epoch), static_cast<uint64_t>(key.step),
                             static_cast<uint64_t>(key.rank)}));
}

absl::Status CheckBatch(const std::vector<int64_t>& batch, int64_t n) {
  for (int64_t i : batch) {
    if (i < 0 || i >= n) {
      return absl::InvalidArgumentError(absl::StrCat("index ", i, " is outside the data set [0, ", n, ")"));
    }
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<EpochSampler> EpochSampler::Create(int64_t dataset_size, const ShardOptions& options) {
  if (dataset_size < 0) return absl::InvalidArgumentError(absl::StrCat("negative dataset size ", dataset_size));
  if (options.batch_size <= 0) {
    return absl::InvalidArgumentError(absl::StrCat("batch_size must be positive, got ", options.batch_size));
  }
  if (options.world_size <= 0) {
    return absl::InvalidArgumentError(absl::StrCat("world_size must be positive, got ", options.world_size));
  }
  if (options.rank < 0 || options.rank >= options.world_size) {
    return absl::InvalidArgumentError(
        absl::StrCat("rank ", options.rank, " is outside [0, ", options.world_size, ")"));
  }
  const int64_t global_batch = options.batch_size * options.world_size;
  const int64_t steps = dataset_size / global_batch;
  if (steps == 0) {
    return absl::FailedPreconditionError(absl::StrCat("the data set has ", dataset_size,
                                                      " items, fewer than one global batch (", options.world_size,
                                                      " ranks x ", options.batch_size, ")"));
  }
  return EpochSampler(dataset_size, options, steps);
}

std::vector<int64_t> EpochSampler::EpochPermutation(int64_t n, uint64_t seed, int64_t epoch) {
  return SeededPermutation(n, MixSeed({kEpochStream, seed, static_cast<uint64_t>(epoch)}));
}

std::vector<int64_t> EpochSampler::Shard(int64_t epoch) const {
  const std::vector<int64_t> perm = EpochPermutation(dataset_size_, options_.seed, epoch);
  const int64_t b = options_.batch_size;
  const int64_t global_batch = b * options_.world_size;
  std::vector<int64_t> shard;
  shard.reserve(static_cast<size_t>(steps_per_epoch_ * b));
  for (int64_t t = 0; t < steps_per_epoch_; ++t) {
    auto begin = perm.begin() + t * global_batch + options_.rank * b;
    shard.insert(shard.end(), begin, begin + b);
  }
  return shard;
}

std::vector<int64_t> EpochSampler::Batch(int64_t epoch, int64_t step) const {
  if (step < 0 || step >= steps_per_epoch_) return {};
  const std::vector<int64_t> perm = EpochPermutation(dataset_size_, options_.seed, epoch);
  const int64_t b = options_.batch_size;
  auto begin = perm.begin() + step * b * options_.world_size + options_.rank * b;
  return std::vector<int64_t>(begin, begin + b);
}

absl::StatusOr<PairSampler> PairSampler::Create(std::vector<int64_t> labels, int num_classes) {
  if (num_classes <= 0) return absl::InvalidArgumentError("num_classes must be positive");
  Buckets all(static_cast<size_t>(num_classes));
  for (size_t i = 0; i < labels.size(); ++i) {
    if (labels[i] < 0 || labels[i] >= num_classes) {
      return absl::InvalidArgumentError(
          absl::StrCat("label ", labels[i], " of item ", i, " is outside [0, ", num_classes, ")"));
    }
    all[static_cast<size_t>(labels[i])].push_back(static_cast<int64_t>(i));
  }
  return PairSampler(std::move(labels), std::move(all));
}

PairSampler::PairSampler(std::vector<int64_t> labels, Buckets all)
    : labels_(std::move(labels)), all_(std::move(all)), shard_(all_), shard_size_(size()) {}

void PairSampler::SetShard(const std::vector<int64_t>& shard) {
  for (auto& bucket : shard_) bucket.clear();
  shard_size_ = 0;
  for (int64_t i : shard) {
    if (i < 0 || i >= size()) continue;
    shard_[static_cast<size_t>(labels_[static_cast<size_t>(i)])].push_back(i);
    ++shard_size_;
  }
}

int PairSampler::NumClassesPresent() const {
  int present = 0;
  for (const auto& bucket : all_) present += bucket.empty() ? 0 : 1;
  return present;
}

absl::StatusOr<std::vector<int64_t>> PairSampler::SameClass(const std::vector<int64_t>& batch,
                                                            const DrawKey& key) const {
  if (auto st = CheckBatch(batch, size()); !st.ok()) return st;
  SplitMix64 rng = DrawStream(kSameStream, key);
  std::vector<int64_t> out;
  out.reserve(batch.size());
  for (int64_t i : batch) {
    const size_t label = static_cast<size_t>(labels_[static_cast<size_t>(i)]);
    const std::vector<int64_t>& bucket = shard_[label].size() >= 2 ? shard_[label] : all_[label];
    if (bucket.size() < 2) {  // all_[label] always holds i: it is alone in its class
      out.push_back(i);
      continue;
    }
    int64_t j;
    do {  // rejects i at most half the time (bucket has >= 2 members)
      j = bucket[static_cast<size_t>(UniformBelow(rng, bucket.size()))];
    } while (j == i);
    out.push_back(j);
  }
  return out;
}

absl::StatusOr<std::vector<int64_t>> PairSampler::OtherClass(const std::vector<int64_t>& batch,
                                                             const DrawKey& key) const {
  if (auto st = CheckBatch(batch, size()); !st.ok()) return st;
  SplitMix64 rng = DrawStream(kOtherStream, key);
  std::vector<int64_t> out;
  out.reserve(batch.size());
  for (int64_t i : batch) {
    const size_t label = static_cast<size_t>(labels_[static_cast<size_t>(i)]);
    const Buckets* buckets = &shard_;
    int64_t candidates = shard_size_ - static_cast<int64_t>(shard_[label].size());
    if (candidates == 0) {
      buckets = &all_;
      candidates = size() - static_cast<int64_t>(all_[label].size());
    }
    if (candidates == 0) {
      return absl::FailedPreconditionError(
          absl::StrCat("no item of a class other than ", label, " exists; other-class sampling needs 2 classes"));
    }
    // A uniform position among the other classes' members, in class order.
    int64_t k = static_cast<int64_t>(UniformBelow(rng, static_cast<uint64_t>(candidates)));
    for (size_t c = 0; c < buckets->size(); ++c) {
      if (c == label) continue;
      const int64_t n = static_cast<int64_t>((*buckets)[c].size());
      if (k < n) {
        out.push_back((*buckets)[c][static_cast<size_t>(k)]);
        break;
      }
      k -= n;
    }
  }
  return out;
}

}  // namespace dfv::data
