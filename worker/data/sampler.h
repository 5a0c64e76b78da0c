// Index-level samplers for data-parallel training: which dataset items rank r
// of world_size reads at each step, and the partner items (same class, other
// class) that pairing models need. Torch-free; BatchLoader builds on them.
//
// Everything is a pure function of (seed, epoch, step, rank, world_size) and
// the labels: permutations use a Fisher-Yates shuffle on raw std::mt19937_64
// bits and partner draws a splitmix64 stream (random.h), never the
// implementation-defined std:: distributions, so a resumed or re-run job sees
// exactly the same indices on any standard library.
#ifndef DFV_WORKER_DATA_SAMPLER_H_
#define DFV_WORKER_DATA_SAMPLER_H_

#include <cstdint>
#include <vector>

#include "absl/status/statusor.h"

namespace dfv::data {

struct ShardOptions {
  int64_t batch_size = 1;  // items per step on each rank (> 0)
  uint64_t seed = 0;       // shuffling seed; the same on every rank
  int rank = 0;            // this rank, in [0, world_size)
  int world_size = 1;      // number of ranks (> 0)
};

// Splits each epoch's permutation of the data set into per-rank batches.
//
// Epoch e shuffles all N indices with EpochPermutation(N, seed, e). Step t of
// the epoch takes the global batch perm[t*W*B, (t+1)*W*B) (W = world_size,
// B = batch_size) and rank r reads its slice [r*B, (r+1)*B) of it. So shards
// are disjoint and equal-sized, StepsPerEpoch() = floor(N / (W*B)) for every
// rank, fewer than W*B items are left out per epoch (a different few each
// epoch), and the W ranks' batches at a step, concatenated in rank order, are
// exactly the batch a single process with batch W*B reads at that step.
//
// A value type; const methods are safe to call concurrently.
class EpochSampler {
 public:
  // INVALID_ARGUMENT for bad options or dataset_size < 0; FAILED_PRECONDITION
  // when the data set is smaller than one global batch (W*B).
  static absl::StatusOr<EpochSampler> Create(int64_t dataset_size, const ShardOptions& options);

  int64_t StepsPerEpoch() const { return steps_per_epoch_; }
  int64_t dataset_size() const { return dataset_size_; }
  const ShardOptions& options() const { return options_; }

  // The permutation of 0..n-1 for `epoch` (the same on every rank).
  static std::vector<int64_t> EpochPermutation(int64_t n, uint64_t seed, int64_t epoch);

  // The indices this rank reads in `epoch`, StepsPerEpoch() * batch_size of
  // them, in reading order: element t*B + k is item k of step t. O(N).
  std::vector<int64_t> Shard(int64_t epoch) const;

  // The indices of one step (a slice of Shard(epoch)); empty unless
  // 0 <= step < StepsPerEpoch(). O(N): callers reading many steps keep
  // Shard(epoch) instead.
  std::vector<int64_t> Batch(int64_t epoch, int64_t step) const;

 private:
  EpochSampler(int64_t dataset_size, const ShardOptions& options, int64_t steps_per_epoch)
      : dataset_size_(dataset_size), options_(options), steps_per_epoch_(steps_per_epoch) {}

  int64_t dataset_size_;
  ShardOptions options_;
  int64_t steps_per_epoch_;
};

// What a partner draw is keyed by; each (seed, epoch, step, rank) has its own
// random stream, so draws do not depend on which steps were read before.
struct DrawKey {
  uint64_t seed = 0;
  int64_t epoch = 0;
  int64_t step = 0;  // step within the epoch
  int rank = 0;
};

// Draws partners for a batch: for item i, another item j != i of the same
// class, or an item of a different class. Draws are uniform over the
// candidates in the current shard (SetShard) when the shard has any; for the
// same class that means at least 2 members of the class in the shard, else
// the whole data set is used. If a class has a single member in the whole data
// set, its same-class partner is the item itself (nothing else exists).
//
// A value type. SetShard mutates; the draw methods are const and safe to call
// concurrently with each other, not with SetShard.
class PairSampler {
 public:
  // labels[i] in [0, num_classes) for every item. INVALID_ARGUMENT otherwise.
  static absl::StatusOr<PairSampler> Create(std::vector<int64_t> labels, int num_classes);

  // Restricts draws (where possible, see above) to `shard`, normally
  // EpochSampler::Shard(epoch) of this rank. Indices out of range are
  // ignored. Until the first call the shard is the whole data set.
  void SetShard(const std::vector<int64_t>& shard);

  // One same-class partner per entry of `batch`. INVALID_ARGUMENT for an
  // index out of range.
  absl::StatusOr<std::vector<int64_t>> SameClass(const std::vector<int64_t>& batch, const DrawKey& key) const;

  // One different-class partner per entry of `batch`. INVALID_ARGUMENT for an
  // index out of range; FAILED_PRECONDITION when the data set has one class.
  absl::StatusOr<std::vector<int64_t>> OtherClass(const std::vector<int64_t>& batch, const DrawKey& key) const;

  // Number of classes with at least one item in the whole data set.
  int NumClassesPresent() const;
  int64_t size() const { return static_cast<int64_t>(labels_.size()); }

 private:
  using Buckets = std::vector<std::vector<int64_t>>;  // class -> item indices

  PairSampler(std::vector<int64_t> labels, Buckets all);

  std::vector<int64_t> labels_;
  Buckets all_;    // whole data set, by class
  Buckets shard_;  // current shard, by class
  int64_t shard_size_ = 0;
};

}  // namespace dfv::data

#endif  // DFV_WORKER_DATA_SAMPLER_H_
